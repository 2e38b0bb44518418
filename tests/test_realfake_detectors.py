"""The five real/fake detectors on dlib's face backbone: inputs, one epoch each, exact reload."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embedlab import fit, load_run
from embedlab.datasets.images import read_image
from embedlab.features import dlib_resnet as dr
from embedlab.features.encoding import FaceEncoding
from embedlab.nets import NETWORKS
from embedlab.nets.images import InputSettings, prepare_images
from tests.two_sources import two_sources  # noqa: F401  (fixture)

#: the study's five detectors, as embedlab names them, with settings small enough for the sample
DETECTORS = {
    "cnn": {"size": 32, "widths": [4, 8], "dense": 8},
    "dlib-resnet": {"freeze": "stage4", "face_crop": "chip"},
    "encoding-mlp": {"hidden": 16, "dense": 8},
    "fusion-cnn": {"size": 32, "widths": [4, 8], "dense": 8},
    "fusion-dlib-resnet": {"dense": 16},
}


def test_chip_input_is_dlibs_aligned_face_chip(two_sources):
    paths = sorted((two_sources / "test" / "fake" / "sd").glob("*.jpg"))[:2]
    arr, info = prepare_images([str(p) for p in paths], InputSettings(150, 3, face_crop="chip"))
    finder = FaceEncoding(detector="hog")
    finder.prepare()
    for got, path, row in zip(arr, paths, info):
        image = read_image(str(path))
        box, _ = finder.locate(image)
        assert row["face_cropped"] and row["face_found"]
        assert np.array_equal(got, dr.face_chips(image, [box])[0])


def test_the_face_backbone_is_the_default_resnet_detector():
    fusion = NETWORKS.create("fusion-dlib-resnet")
    assert fusion.uses_images and fusion.uses_encoding
    assert fusion.defaults["weights"] == "dlib" and fusion.defaults["face_crop"] == "chip"
    # trace-preserving augmentation: mirror only, no resampling of the pixels
    assert fusion.defaults["rotate"] == fusion.defaults["zoom"] == fusion.defaults["shift"] == 0.0
    assert NETWORKS.create("resnet50").defaults["weights"] == "random"


@pytest.fixture(scope="module")
def built_cache(two_sources, tmp_path_factory):
    """The two-source dataset's face encodings and 150 px face chips, computed once for the module:
    four tests read them, each from its own copy (``cache``)."""
    from embedlab.datasets import load
    from embedlab.nets.inputs import prepare_inputs

    cache = tmp_path_factory.mktemp("detectors") / "cache"
    spec = NETWORKS.create("fusion-dlib-resnet")
    prepare_inputs(spec, spec.resolve(DETECTORS["fusion-dlib-resnet"]), load(two_sources), ["real", "fake"], cache)
    return cache


@pytest.fixture
def cache(built_cache, tmp_path) -> Path:
    return Path(shutil.copytree(built_cache, tmp_path / "cache"))


@pytest.mark.parametrize("network", sorted(DETECTORS))
def test_detector_trains_an_epoch_and_reloads_exactly(network, two_sources, tmp_path, cache):
    run = fit(two_sources, model=network, params=DETECTORS[network], epochs=1, device="cpu", name=network,
              runs_dir=tmp_path / "runs", cache_dir=cache)
    test = run.metrics["sets"]["test"]
    assert set(test["per_source"]) == {"sd", "stylegan"}
    assert run.params["threshold"]["chosen_on"] == "valid"
    images = sorted(str(p) for p in (two_sources / "test").rglob("*.jpg"))
    first = run.predict(images, cache_dir=cache, crops_dir=None)
    again = load_run(run.path).predict(images, cache_dir=cache, crops_dir=None)
    assert np.array_equal(first["proba_fake"].to_numpy(), again["proba_fake"].to_numpy())
    stored = run.predictions().query("set == 'test'").set_index("path")["proba_fake"]
    got = again.set_index("path")["proba_fake"]
    assert np.allclose(got.loc[stored.index].to_numpy(), stored.to_numpy(), atol=1e-6)
    assert set(again["pred"]) <= {"real", "fake"}


def test_balancing_by_source_draws_a_rare_generator_as_often_as_a_common_one(two_sources, tmp_path, cache):
    import torch

    from embedlab.nets.inputs import prepare_inputs
    from embedlab.nets.training import source_weights
    from embedlab.datasets import load

    table = load(two_sources).query("split == 'train'").reset_index(drop=True)
    spec = NETWORKS.create("encoding-mlp")
    inputs, usable, _ = prepare_inputs(spec, spec.resolve({}), table, ["real", "fake"], cache)
    kept = table[usable].reset_index(drop=True)
    w = source_weights(inputs.labels.numpy(), inputs.groups, 2, 1.0)
    draws = torch.multinomial(torch.tensor(w / w.sum()), 20000, replacement=True).numpy()
    drawn = kept.loc[draws].groupby(["label", "source"]).size() / len(draws)
    assert kept.query("label == 'fake'")["source"].value_counts().nunique() > 1  # the sources differ in size
    assert abs(drawn["fake", "sd"] - drawn["fake", "stylegan"]) < 0.02
    assert abs(drawn["real", "real"] - 0.5) < 0.02
    run = fit(two_sources, model="encoding-mlp", params={"hidden": 16, "dense": 8, "balance": "sources"}, epochs=1,
              device="cpu", name="by-source", runs_dir=tmp_path / "runs", cache_dir=cache)
    assert run.model_params["balance"] == "sources"
