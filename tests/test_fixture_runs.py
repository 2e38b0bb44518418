"""Run folders written by an earlier embedlab still open and predict the same.

``tests/fixtures/runs`` holds a tiny classifier run and a tiny network run,
written on ``data/sample/real-vs-fake`` before the library's modules moved,
with the predictions they gave then (``expected_predictions.csv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedlab.features import create_extractor
from embedlab.api import load_run
from embedlab.runs import list_runs

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"
TEST_IMAGES = Path(__file__).resolve().parents[1] / "data" / "sample" / "real-vs-fake" / "test"

#: Cache keys computed before the restructuring: a changed key would orphan every cache entry.
CACHE_KEYS = {
    "pixels": "pixels-906bde94d24bd1f7",
    "pixels[size=8]": "pixels-dbfdbaf662fbee34",
    "spectrum[size=64]": "spectrum-164880d6c87b23a2",
    "cnn:resnet18[weights=random]": "cnn-767d0b753c9c359f",
    "cnn:resnet18[weights=random,size=64]": "cnn-e5a6cf81cee13c70",
    "encoding": "encoding-84b7eb7986f3d52d",
    "encoding[detector=none]": "encoding-784abbfe3e8cf0a2",
    "encoding[detector=cnn,jitters=2,engine=dlib]": "encoding-b2247ea115c4068d",
    "encoding[engine=torch]": "encoding-84b7eb7986f3d52d",
}


@pytest.mark.parametrize("spec", sorted(CACHE_KEYS))
def test_cache_keys_are_unchanged(spec):
    assert create_extractor(spec).key() == CACHE_KEYS[spec]


def test_fixture_runs_are_listed():
    runs = list_runs(FIXTURES)
    assert sorted(runs["name"]) == ["classifier-logreg", "network-cnn"]
    assert sorted(runs["kind"]) == ["classifier", "network"]


@pytest.mark.parametrize("name", ["classifier-logreg", "network-cnn"])
def test_a_run_written_before_still_loads_and_predicts_the_same(name, tmp_path):
    run = load_run(FIXTURES / name)
    assert run.params["name"] == name
    assert not run.predictions().empty
    options = {"workers": 1} if run.params["kind"] == "classifier" else {"crops_dir": None}
    got = run.predict(TEST_IMAGES, cache_dir=tmp_path / "cache", **options)
    expected = pd.read_csv(FIXTURES / name / "expected_predictions.csv")
    assert got["image_id"].tolist() == expected["image_id"].tolist()
    assert got["pred"].tolist() == expected["pred"].tolist()
    probas = [c for c in expected.columns if c.startswith("proba_")]
    np.testing.assert_allclose(got[probas].to_numpy(float), expected[probas].to_numpy(float), atol=1e-5)


def test_get_params_gives_every_parameter_and_the_cache_key_only_those_that_matter():
    cnn = create_extractor("cnn:resnet18[weights=random,batch_size=4]")
    assert cnn.get_params()["batch_size"] == 4 and set(cnn.get_params()) == set(cnn.param_names())
    assert "batch_size" not in cnn.cache_params()
    encoding = create_extractor("encoding[engine=dlib]")
    assert encoding.get_params()["engine"] == "dlib" and "engine" not in encoding.cache_params()
    assert encoding.describe()["params"] == encoding.cache_params()
