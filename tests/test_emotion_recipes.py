"""The two shipped emotion recipes and what the adapted one is built from: an identity split of
repeated faces, a sampler that lifts a small source without evening it out, fine-tuning from a run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from embedlab.api import load_run
from embedlab.core.errors import ModelError
from embedlab.datasets.splits import split_by_identity
from embedlab.nets import fit_network
from embedlab.nets.fit import start_from
from embedlab.nets.models import NETWORKS, build_module
from embedlab.nets.training import source_weights
from embedlab.runs import pretrained_run

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
EMOTION_TASKS = ("emotion", "emotion-adapted")
TINY_CNN = {"size": 16, "widths": [4, 8], "dense": 8}


def identities(n_people: int, per_person: int, rng) -> np.ndarray:
    """Encodings of ``n_people`` faces, each drawn ``per_person`` times close to its own centre."""
    centres = rng.normal(size=(n_people, 128)) * 0.5
    return np.concatenate([c + rng.normal(size=(per_person, 128)) * 0.02 for c in centres])


@pytest.mark.parametrize("seed", range(5))
def test_the_identity_split_never_parts_two_faces_within_the_distance(seed):
    rng = np.random.default_rng(seed)
    enc = identities(30, 4, rng)
    enc = np.concatenate([enc, enc[:10] + 0.3 / np.sqrt(128)])  # near twins of earlier faces, to chain
    rows = list(enc) + [None, None]  # two images without a face
    splits, ids = split_by_identity(rows, distance=0.6, seed=seed)
    d = cdist(enc, enc)
    near = np.argwhere(d < 0.6)
    assert len(near) > len(enc)  # the data holds pairs to keep together, not just each face and itself
    assert all(splits[i] == splits[j] for i, j in near)
    assert all(ids[i] == ids[j] for i, j in near)
    assert set(splits) == {"train", "valid", "test"} and len(splits) == len(rows)
    assert ids[-1] != ids[-2]  # faceless images are no one's twin
    share = {s: float(np.mean(splits == s)) for s in ("train", "valid", "test")}
    assert abs(share["train"] - 0.6) < 0.1 and abs(share["test"] - 0.2) < 0.1


def test_the_identity_split_checks_its_settings():
    with pytest.raises(ValueError, match="distance"):
        split_by_identity([np.zeros(128)], distance=0)
    with pytest.raises(ValueError, match="shares"):
        split_by_identity([np.zeros(128)], shares=(0.5, 0.5, 0.5))
    assert split_by_identity([])[0].tolist() == []


def test_source_power_lifts_a_small_source_but_keeps_each_class_share():
    labels = np.array([0] * 100 + [1] * 100 + [0] * 4)
    groups = np.array([0] * 100 + [1] * 100 + [2] * 4)  # class 0: a large source and one of 4 images
    shares = {}
    for power in (0.0, 0.5, 1.0):
        w = source_weights(labels, groups, 2, 1.0, source_power=power)  # classes evened out
        w = w / w.sum()
        assert w[labels == 0].sum() == pytest.approx(0.5) and w[labels == 1].sum() == pytest.approx(0.5)
        shares[power] = w[groups == 2].sum() / w[labels == 0].sum()
    assert shares[0.0] == pytest.approx(4 / 104)
    assert shares[1.0] == pytest.approx(0.5)
    assert shares[0.0] < shares[0.5] < shares[1.0]


@pytest.fixture(scope="module")
def fer_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return fit_network(SAMPLE / "fer2013", "cnn", TINY_CNN, epochs=1, runs_dir=runs, name="fer", device="cpu",
                       cache_dir=runs / "cache")


def test_a_network_starts_from_a_run_of_the_same_network_and_classes(fer_run, sample, tmp_path):
    spec = NETWORKS.create("cnn")
    module = build_module(spec, spec.resolve(TINY_CNN), len(fer_run.classes))
    start_from(module, fer_run.path, spec, fer_run.classes)
    for name, value in fer_run.module.state_dict().items():
        assert np.array_equal(module.state_dict()[name].numpy(), value.numpy()), name
    with pytest.raises(ModelError, match="classes"):
        start_from(module, fer_run.path, spec, ["fake", "real"])
    with pytest.raises(ModelError, match="not emotion-cnn"):
        start_from(module, fer_run.path, NETWORKS.create("emotion-cnn"), fer_run.classes)
    tuned = fit_network(sample / "fer2013", "cnn", {**TINY_CNN, "init_from": str(fer_run.path)}, epochs=1,
                        runs_dir=tmp_path, name="tuned", device="cpu", cache_dir=fer_run.path.parent / "cache")
    assert tuned.params["model_params"]["init_from"] == str(fer_run.path)


@pytest.mark.parametrize("task", EMOTION_TASKS)
def test_both_shipped_emotion_models_load_predict_and_refuse_damaged_files(task, sample, tmp_path):
    run = load_run(pretrained_run(task))
    assert run.params["kind"] == "network" and len(run.classes) == 7 and run.params["command"]
    out = run.predict([sample / "face-photos" / "obama.jpg", sample / "synthetic-emotions"], cache_dir=None,
                      crops_dir=tmp_path / "crops")
    probas = out[[f"proba_{c}" for c in run.classes]].to_numpy(float)
    assert set(out["pred"]) <= set(run.classes) and np.allclose(probas.sum(axis=1), 1, atol=1e-5)
    damaged = tmp_path / task
    shutil.copytree(run.path, damaged)
    weights = (damaged / "model.pt").read_bytes()
    (damaged / "model.pt").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ModelError, match="model.pt"):
        load_run(damaged).module  # noqa: B018
    (damaged / "params.json").write_text('{"kind": "network", "task"')
    with pytest.raises(ModelError, match="params.json"):
        load_run(damaged)


def test_the_adapted_model_learned_from_portraits_split_by_identity():
    params = load_run(pretrained_run("emotion-adapted")).params
    assert params["data"]["layout"] == "manifest"
    assert params["model_params"]["init_from"] == "embedlab/pretrained/emotion"
    assert "--recipe emotion-adapted" in params["command"]
