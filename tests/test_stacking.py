"""Stacked detectors: a logistic regression on other runs' scores, fitted on their validation rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import embedlab
from embedlab.core.errors import ModelError
from embedlab.stacking import COMPONENTS

RVF = Path(__file__).resolve().parents[1] / "data" / "sample" / "real-vs-fake"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    common = dict(runs_dir=root / "runs", cache_dir=root / "cache", workers=0)
    pixels = embedlab.fit(RVF, "pixels[size=8]", "logreg", name="pixels", **common)
    spectrum = embedlab.fit(RVF, "spectrum[size=32]", "logreg", name="spectrum", **common)
    return root, pixels, spectrum


def test_the_stack_is_fitted_on_valid_rows_and_predicts_what_it_stored(parts):
    root, pixels, spectrum = parts
    stack = embedlab.fit_stack({"pixels": pixels.path, "spectrum": spectrum.path}, runs_dir=root / "runs",
                               name="both")
    assert stack.params["kind"] == "stacked" and stack.params["threshold"]["chosen_on"] == "valid"
    assert stack.params["combiner"]["n"] == stack.metrics["sets"]["valid"]["n"]
    assert sorted(p.name for p in (stack.path / COMPONENTS).iterdir()) == ["pixels", "spectrum"]
    assert {"train", "valid", "test"} <= set(stack.metrics["sets"])

    # reopened: the same probabilities from the images as were stored, and the verdict at its threshold
    again = embedlab.load_run(stack.path)
    stored = again.predictions().query("set == 'test'").set_index("path")
    out = again.predict(sorted(str(p) for p in (RVF / "test").rglob("*.jpg")), cache_dir=root / "cache",
                        workers=0).set_index("path")
    assert np.allclose(out.loc[stored.index, "proba_fake"], stored["proba_fake"], atol=1e-9)
    cut = again.params["threshold"]["value"]
    assert (out["pred"] == np.where(out["proba_fake"] >= cut, "fake", "real")).all()

    # the combiner is a logistic regression on the components' log-odds: recompute one row by hand
    row = stored.iloc[0]
    comps = {n: embedlab.load_run(stack.path / COMPONENTS / n).predictions().query("set == 'test'")
             .set_index("path").loc[row.name, "proba_fake"] for n in ("pixels", "spectrum")}
    c = again.params["combiner"]
    z = sum(w * np.log(comps[n] / (1 - comps[n])) for w, n in zip(c["coef"][::2], ("pixels", "spectrum")))
    assert 1 / (1 + np.exp(-(z + c["intercept"]))) == pytest.approx(row["proba_fake"], abs=1e-9)


def test_a_moved_stack_still_predicts_and_a_damaged_one_says_why(parts, tmp_path):
    root, pixels, spectrum = parts
    stack = embedlab.fit_stack({"a": pixels.path, "b": spectrum.path}, runs_dir=root / "runs", name="moved")
    moved = tmp_path / "elsewhere"
    shutil.copytree(stack.path, moved)
    shutil.rmtree(stack.path)
    out = embedlab.load_run(moved).predict([str(sorted((RVF / "test" / "fake").iterdir())[0])],
                                           cache_dir=root / "cache", workers=0)
    assert out["pred"].iloc[0] in ("fake", "real")
    shutil.rmtree(moved / COMPONENTS / "b")
    with pytest.raises(ModelError, match="components"):
        embedlab.load_run(moved)
    params = json.loads((moved / "params.json").read_text())
    params["combiner"]["coef"] = [1.0]
    (moved / "params.json").write_text(json.dumps(params))
    with pytest.raises(ModelError, match="coef"):
        embedlab.load_run(moved)


def test_only_binary_runs_of_the_same_classes_stack(parts, tmp_path):
    root, pixels, _ = parts
    emotions = embedlab.fit(RVF.parent / "fer2013", "pixels[size=8]", "logreg", runs_dir=tmp_path, workers=0,
                            cache_dir=root / "cache")
    with pytest.raises(ModelError, match="binary runs of the same classes"):
        embedlab.fit_stack({"a": pixels.path, "b": emotions.path}, runs_dir=tmp_path)
    with pytest.raises(ModelError, match="at least two"):
        embedlab.fit_stack({"a": pixels.path}, runs_dir=tmp_path)


def test_a_shipped_stack_carries_its_components_and_names_its_data_portably(parts, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from train_emotion import ship

    root, pixels, spectrum = parts
    stack = embedlab.fit_stack({"pixels": pixels.path, "spectrum": spectrum.path}, runs_dir=root / "runs",
                               name="to-ship", command="python bench/realfake_generalisation.py --ship a,b")
    assert {stack.metrics["sets"][s]["dataset"] for s in ("train", "valid", "test")} == {"real-vs-fake"}
    shipped = ship(stack.path, tmp_path / "pretrained" / "real-fake")
    for folder in (shipped, shipped / COMPONENTS / "pixels", shipped / COMPONENTS / "spectrum"):
        params = json.loads((folder / "params.json").read_text())
        assert params["data"]["relative_to"] == "repository" and not Path(params["data"]["path"]).is_absolute()
        assert params["image_paths_relative_to"] == "repository"
    assert (shipped / COMPONENTS / "pixels" / "model.skops").is_file()
    assert (shipped / "COMMAND").read_text() == "python bench/realfake_generalisation.py --ship a,b\n"
    assert "A stack of `pixels` (logreg on pixels[size=8]), `spectrum`" in (shipped / "README.md").read_text()
    images = sorted(str(p) for p in (RVF / "test").rglob("*.jpg"))
    again = embedlab.load_run(shipped).predict(images, cache_dir=root / "cache", workers=0)
    before = stack.predict(images, cache_dir=root / "cache", workers=0)
    assert np.allclose(again["proba_fake"], before["proba_fake"]) and (again["pred"] == before["pred"]).all()
