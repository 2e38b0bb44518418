"""Networks: each trains on the bundled sample, learns, saves, reopens and resumes exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from embedlab.core.errors import ModelError, UnknownNameError
from embedlab.nets import NETWORKS, fit_network, load_network_run
from embedlab.nets.images import fer_crop_box
from conftest import seed_cache

ENCODING = "encoding[detector=none]"  # the 140k faces are aligned crops
# Tiny versions of every network, so one epoch on the sample takes a second or two.
TINY = {
    "cnn": ("real-vs-fake", {"size": 16, "widths": [4, 8], "dense": 8}),
    "resnet18": ("real-vs-fake", {"size": 32}),
    "resnet50": ("real-vs-fake", {"size": 32}),
    "encoding-mlp": ("real-vs-fake", {"encoding": ENCODING, "hidden": 16, "dense": 8}),
    "fusion-cnn": ("real-vs-fake", {"size": 16, "widths": [4, 8], "dense": 8, "encoding": ENCODING}),
    "fusion-resnet": ("real-vs-fake", {"size": 32, "dense": 8, "encoding": ENCODING}),
    "vgg16-emotion": ("fer2013", {"size": 32, "dense": 16}),
    "emotion-cnn": ("fer2013", {"widths": [4, 8, 8, 8], "blocks": [1, 1, 1, 1]}),
    # dlib's pretrained network at the smallest input that reaches its last stage; stem frozen
    "dlib-resnet": ("fer2013", {"size": 48, "channels": 1, "input_size": 131, "freeze": "stage1"}),
    # ImageNet EfficientNet-Lite2 on small whole images, all but its last two blocks frozen
    "effnet-lite2": ("real-vs-fake", {"size": 32, "input_size": 64, "freeze": 19, "face_crop": "never"}),
    "npr": ("real-vs-fake", {"crop": 32, "eval_crops": 2, "widths": [16, 16, 16], "loader_workers": 0}),
    "fusion-dlib-resnet": ("real-vs-fake", {"size": 48, "input_size": 131, "freeze": "stage1", "dense": 8,
                                            "encoding": ENCODING, "face_crop": "never"}),
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory, rvf_encodings):
    return seed_cache(rvf_encodings, tmp_path_factory.mktemp("nets") / "cache")


def _fit(sample, runs, cache, network, params=None, **kw):
    data, tiny = TINY[network]
    return fit_network(sample / data, network, {**tiny, **(params or {})}, runs_dir=runs, cache_dir=cache,
                       device="cpu", **kw)


def test_every_network_is_registered_and_unknown_names_are_listed():
    assert set(TINY) == set(NETWORKS.names())
    with pytest.raises(UnknownNameError, match="emotion-cnn"):
        NETWORKS.create("no-such-net")
    with pytest.raises(ModelError, match="no parameter"):
        NETWORKS.create("cnn").resolve({"widthz": 3})


def test_builders_take_only_model_parameters_and_resolve_still_lists_every_one():
    from embedlab.nets.models import TRAINING_DEFAULTS, NetworkSpec, network

    for name in NETWORKS.names():
        spec = NETWORKS.create(name)
        assert set(spec.build_param_names()) <= set(spec.model_param_names()), name
        assert set(spec.resolve({})) == set(TRAINING_DEFAULTS) | set(spec.defaults), name
    # the input's settings stay the network's parameters, read where its inputs are prepared
    npr = NETWORKS.create("npr")
    assert {"crop", "eval_crops", "face_crop"} <= set(npr.resolve({})) and "crop" not in npr.build_param_names()
    with pytest.raises(ModelError, match="network 'npr' has no parameter cropp; its parameters: .*crop"):
        npr.resolve({"cropp": 32})
    # a builder that takes **params gets every model parameter; one naming an unknown one is refused
    spec = NetworkSpec("x", "image", lambda n_out, **params: params, {"size": 8, "widths": (4,)})
    assert spec.build_param_names() == ["size", "widths"]
    with pytest.raises(TypeError, match="widthz"):
        network("not-registered", "image", "", widths=(4,))(lambda n_out, widthz: None)
    assert "not-registered" not in NETWORKS


@pytest.mark.parametrize("network", sorted(TINY))
def test_one_epoch_then_save_load_predict_round_trip(network, sample, tmp_path, shared_cache):
    run = _fit(sample, tmp_path, shared_cache, network, epochs=1, name="r")
    folder = tmp_path / "r"
    for f in ("params.json", "metrics.json", "predictions.parquet", "history.csv", "model.pt", "last.pt"):
        assert (folder / f).is_file(), f
    params = json.loads((folder / "params.json").read_text())
    assert params["kind"] == "network" and params["model"] == network and params["model_files"] == ["model.pt"]
    history = pd.read_csv(folder / "history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    assert history["epoch"].tolist() == [1] and np.isfinite(history["train_loss"]).all()
    sets = run.metrics["sets"]
    assert {"train", "valid", "test"} <= set(sets)
    assert sets["test"]["n"] > 0 and 0 <= sets["test"]["accuracy"] <= 1
    assert set(sets["test"]["per_class"]) == set(run.classes)
    if params["task"] == "binary":
        assert params["positive_class"] == "fake" and "roc_auc" in sets["test"]

    # reopened from disk, the network predicts exactly what was stored
    reopened = load_network_run(folder)
    stored = reopened.predictions().query("set == 'test'").reset_index(drop=True)
    from embedlab import datasets

    table = datasets.load(sample / TINY[network][0])
    table = table.set_index("image_id").loc[stored["image_id"]].reset_index()
    fresh = reopened.predict(table, cache_dir=shared_cache, crops_dir=None)
    probas = [f"proba_{c}" for c in run.classes]
    np.testing.assert_allclose(fresh[probas].to_numpy(float), stored[probas].to_numpy(float), rtol=0, atol=1e-6)
    assert fresh["pred"].tolist() == stored["pred"].tolist()
    np.testing.assert_allclose(fresh[probas].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("network", ["cnn", "encoding-mlp"])
def test_loss_falls_when_overfitting_a_few_images(network, sample, tmp_path, shared_cache):
    params = {"augment": False, "dropout": 0.0, "lr": 1e-2, "batch_size": 8, "patience": 0,
              "schedule": "constant", "balance": "none"}
    run = _fit(sample, tmp_path, shared_cache, network, params, epochs=15, name="o")
    loss = run.history()["train_loss"].to_numpy()
    assert loss[-3:].mean() < 0.5 * loss[:2].mean(), loss


def test_interrupted_run_resumes_to_the_same_end(sample, tmp_path, shared_cache):
    params = {"patience": 0, "lr": 5e-3}
    full = _fit(sample, tmp_path, shared_cache, "emotion-cnn", params, epochs=4, name="full", seed=3)

    def interrupt(done, total, info):
        if info.get("end_of_epoch") and info["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(sample, tmp_path, shared_cache, "emotion-cnn", params, epochs=4, name="cut", seed=3,
             on_progress=interrupt)
    assert len(pd.read_csv(tmp_path / "cut" / "history.csv")) == 2
    assert not (tmp_path / "cut" / "metrics.json").exists()
    with pytest.raises(ModelError, match="already exists"):
        _fit(sample, tmp_path, shared_cache, "emotion-cnn", params, epochs=4, name="cut", seed=3)
    resumed = fit_network(sample / "fer2013", "emotion-cnn", runs_dir=tmp_path, cache_dir=shared_cache,
                          device="cpu", name="cut", resume=True)
    a, b = full.history(), resumed.history()
    assert b["epoch"].tolist() == [1, 2, 3, 4]
    cols = ["train_loss", "train_acc", "val_loss", "val_acc", "lr"]
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-5, atol=1e-6)
    assert resumed.metrics["training"]["best_epoch"] == full.metrics["training"]["best_epoch"]
    pa, pb = full.predictions(), resumed.predictions()
    probas = [c for c in pa.columns if c.startswith("proba_")]
    np.testing.assert_allclose(pa[probas].to_numpy(float), pb[probas].to_numpy(float), atol=1e-5)


def test_a_run_stopped_in_its_first_epoch_says_how_to_reuse_its_name(sample, tmp_path, shared_cache):
    def interrupt(done, total, info):
        raise KeyboardInterrupt  # at the first batch: no epoch finished, no checkpoint

    with pytest.raises(KeyboardInterrupt):
        _fit(sample, tmp_path, shared_cache, "emotion-cnn", {}, epochs=2, name="early", on_progress=interrupt)
    assert sorted(p.name for p in (tmp_path / "early").iterdir()) == ["params.json"]
    with pytest.raises(ModelError, match="stopped before it finished an epoch.*remove that folder"):
        _fit(sample, tmp_path, shared_cache, "emotion-cnn", {}, epochs=2, name="early")
    with pytest.raises(ModelError, match="no checkpoint to resume from.*fit again without resuming"):
        fit_network(sample / "fer2013", "emotion-cnn", runs_dir=tmp_path, cache_dir=shared_cache,
                    device="cpu", name="early", resume=True)


def test_penultimate_layer_is_a_feature(sample, tmp_path, shared_cache):
    import embedlab

    run = _fit(sample, tmp_path, shared_cache, "emotion-cnn", epochs=1, name="feat")
    df = embedlab.encode(sample / "fer2013", f"cnn:{tmp_path / 'feat'}", cache_dir=shared_cache, workers=0)
    X, ok = embedlab.feature_matrix(df, ["cnn"])
    assert ok.all() and X.shape == (len(df), run.embedding_dim)
    direct, _ = run.embed(df, cache_dir=shared_cache)
    np.testing.assert_allclose(X, direct, atol=1e-5)


def test_portraits_are_face_cropped_like_fer_and_crops_kept(sample, tmp_path, shared_cache):
    run = _fit(sample, tmp_path, shared_cache, "emotion-cnn", epochs=1, name="emo",
               eval_on=[sample / "synthetic-emotions"])
    synth = run.metrics["sets"]["synthetic-emotions"]
    assert synth["role"] == "eval" and synth["n"] == 15
    assert set(synth["missing_classes"]) == {"disgust", "fear"}
    crops = sorted((tmp_path / "emo" / "crops" / "synthetic-emotions").glob("*.png"))
    assert len(crops) == 15
    out = run.predict([sample / "face-photos" / "obama.jpg"], cache_dir=None, crops_dir=tmp_path / "crops")
    assert bool(out["face_cropped"].iloc[0]) and bool(out["face_found"].iloc[0])
    from PIL import Image

    crop = Image.open(out["crop_path"].iloc[0])
    assert crop.size == (48, 48) and crop.mode == "L"
    # FER-2013 inputs (48x48 already) are used as they are
    fer = run.predict([sample / "fer2013" / "test" / "happy"], cache_dir=None, crops_dir=tmp_path / "crops")
    assert not fer["face_cropped"].any()


def test_fer_crop_box_is_square_and_centred_on_the_face():
    top, right, bottom, left = fer_crop_box((100, 220, 200, 120), 400, 400, scale=1.5, shift=0.0)
    assert bottom - top == right - left == 150
    assert (top + bottom) / 2 == 150 and (left + right) / 2 == 170


def test_shipped_emotion_model_predicts_offline(sample, tmp_path):
    from embedlab.api import load_run
    from embedlab.runs import pretrained_run

    run = load_run(pretrained_run("emotion"))
    assert run.params["kind"] == "network" and len(run.classes) == 7
    assert (run.path / "model.pt").stat().st_size <= 30 * 2**20
    assert run.params["command"] and run.metrics["sets"]["test"]["n"] == 7178
    out = run.predict([sample / "face-photos" / "obama.jpg"], cache_dir=None, crops_dir=tmp_path)
    probas = out[[f"proba_{c}" for c in run.classes]].to_numpy(float)
    assert out["pred"].iloc[0] in run.classes and abs(probas.sum() - 1) < 1e-5


def test_inputs_sharper_than_the_training_images_are_blurred_to_match():
    from embedlab.datasets.images import read_image
    from embedlab.nets.images import InputSettings, match_blur, prepare_images, sharpness

    sharp = read_image("data/sample/fer2013/test/happy/PublicTest_10130075.jpg")[:, :, :1]
    soft, blurred = match_blur(sharp, sigma=3.0, above=8.0)
    assert blurred and sharpness(soft) < 8.0 < sharpness(sharp)
    again, blurred_again = match_blur(soft, sigma=3.0, above=8.0)
    assert not blurred_again and np.array_equal(again, soft)
    arr, info = prepare_images(["data/sample/fer2013/test/happy/PublicTest_10130075.jpg"],
                               InputSettings(48, 1, blur=(0.0, 8.0)))
    assert not info[0]["blurred"] and np.array_equal(arr[0], sharp)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_stays_on_only_where_the_cpu_computes_it_natively(monkeypatch, caplog, native):
    from embedlab.nets import fit as nets_fit

    monkeypatch.setattr(nets_fit, "native_bf16", lambda: native)
    p = {"bf16": True, "workers_threads": 0}
    with caplog.at_level("WARNING", logger="embedlab.nets.fit"):
        assert nets_fit.set_up_device("cpu", p).type == "cpu"
    assert p["bf16"] is native
    assert ("no native bfloat16" in caplog.text) is (not native)


def test_native_bf16_reads_the_cpu_flags():
    from embedlab.core.system import native_bf16

    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "") \
        if os.path.exists("/proc/cpuinfo") else ""
    expected = ("avx512_bf16" in flags.split() or "amx_bf16" in flags.split()) if flags else None
    assert native_bf16() is expected
