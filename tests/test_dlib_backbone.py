"""dlib's face descriptor network as a trainable backbone (``dlib-resnet``) and as a feature."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import embedlab
from embedlab.core.errors import FeatureError, ModelError
from embedlab.features import create_extractor
from embedlab.features import dlib_resnet as dr
from embedlab.features.encoding import FaceEncoding
from embedlab.datasets.images import read_image
from embedlab.nets import NETWORKS, fit_network, load_network_run
from embedlab.nets.models import build_module
from embedlab.nets.training import Inference, Inputs, run_model

SPEC = NETWORKS.create("dlib-resnet")


def aligned_chips(paths):
    """dlib's 150x150 chips of the largest face of each image, cut as face_recognition cuts them."""
    finder = FaceEncoding(detector="hog")
    finder.prepare()
    chips = []
    for path in paths:
        image = read_image(str(path))
        box, _ = finder.locate(image)
        chips.append(dr.face_chips(image, [box])[0])
    return np.stack(chips)


def test_backbone_holds_the_weights_of_dlibs_model_file():
    module = build_module(SPEC, SPEC.resolve({}), 7)
    reference = dr.load_descriptor_net(device="cpu")
    trunk = module.image_branch.net
    assert torch.equal(trunk.stem.weight, reference.stem.weight)
    assert torch.equal(trunk.blocks[-1].conv2.weight, reference.blocks[-1].conv2.weight)
    assert torch.equal(trunk.fc.weight, reference.fc.weight)
    untrained = build_module(SPEC, SPEC.resolve({"weights": "random"}), 7)
    assert not torch.equal(untrained.image_branch.net.stem.weight, reference.stem.weight)


def test_with_its_own_head_it_gives_the_encoding_feature(sample, tmp_path):
    paths = sorted((sample / "face-photos").glob("*.jpg")) + sorted((sample / "real-vs-fake" / "test").rglob("*.jpg"))[:6]
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, p in enumerate(paths):
        shutil.copy(p, folder / f"{i:02d}.jpg")
    paths = sorted(folder.glob("*.jpg"))
    df = embedlab.encode(folder, "encoding", cache_dir=tmp_path / "cache", workers=0)
    df = df.set_index(df["path"].map(lambda p: Path(p).name)).loc[[p.name for p in paths]]
    expected, ok = embedlab.feature_matrix(df, ["encoding"])
    assert ok.all()
    module = build_module(SPEC, SPEC.resolve({"layer": "encoding"}), 2)
    got = run_model(module, Inputs(torch.from_numpy(aligned_chips(paths))), torch.device("cpu"),
                    Inference(3, "binary"), embed=True)
    assert got.shape == (len(paths), 128)
    assert np.abs(got - expected).max() < 1e-4


def test_intermediate_layers_are_cached_features(sample, tmp_path):
    data = sample / "real-vs-fake" / "test"  # 16 real and fake faces
    df = embedlab.encode(data, "cnn:dlib-resnet[layer=stage3]", cache_dir=tmp_path / "cache", workers=0)
    X, ok = embedlab.feature_matrix(df, ["cnn"])
    assert X.shape == (len(df), 128) and ok.all() and np.isfinite(X).all()
    again = embedlab.encode(data, "cnn:dlib-resnet[layer=stage3]", cache_dir=tmp_path / "cache", workers=0)
    assert again.attrs["summary"]["computed_images"] == 0
    # aligned chips at the encoding layer are the encoding itself
    photos = sample / "face-photos"
    both = embedlab.encode(photos, "cnn:dlib-resnet[layer=encoding,align=hog],encoding",
                           cache_dir=tmp_path / "cache", workers=0)
    A, _ = embedlab.feature_matrix(both, ["cnn"])
    B, _ = embedlab.feature_matrix(both, ["encoding"])
    assert np.abs(A - B).max() < 1e-4
    with pytest.raises(FeatureError, match="layer"):
        create_extractor("cnn:dlib-resnet[layer=stage9]").validate()
    with pytest.raises(FeatureError, match="too small"):
        create_extractor("cnn:dlib-resnet[size=64]").validate()
    # torchvision backbones keep the cache keys they had
    assert "layer" not in create_extractor("cnn:resnet18[weights=random]").cache_params()


def test_freezing_keeps_the_frozen_stages_as_dlib_trained_them(sample, tmp_path):
    run = fit_network(sample / "fer2013", "dlib-resnet",
                      {"size": 48, "channels": 1, "input_size": 131, "freeze": "stage3", "lr": 1e-2},
                      epochs=1, runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", device="cpu")
    reference = dr.load_descriptor_net(device="cpu")
    trained = run.module.image_branch.net
    assert torch.equal(trained.stem.weight, reference.stem.weight)
    end = dr.STAGES["stage3"]
    assert torch.equal(trained.blocks[end - 1].conv2.weight, reference.blocks[end - 1].conv2.weight)
    assert not torch.equal(trained.blocks[end].conv1.weight, reference.blocks[end].conv1.weight)
    # reopened from its folder, it predicts what it predicted when trained
    again = load_network_run(run.path)
    table = embedlab.datasets.load(sample / "fer2013")
    a = run.predict(table, cache_dir=None, crops_dir=None)
    b = again.predict(table, cache_dir=None, crops_dir=None)
    np.testing.assert_array_equal(a.filter(like="proba_").to_numpy(), b.filter(like="proba_").to_numpy())


def test_flip_averaging_is_symmetric(sample):
    module = build_module(SPEC, SPEC.resolve({"size": 48, "channels": 1}), 7)
    images = torch.from_numpy(np.stack([read_image(str(p))[:, :, :1]
                                        for p in sorted((sample / "fer2013" / "test").rglob("*.jpg"))[:4]]))
    mirrored = images.flip(2)
    dev = torch.device("cpu")
    plain = run_model(module, Inputs(images), dev, Inference(1, "multiclass"))
    both = run_model(module, Inputs(images), dev, Inference(1, "multiclass", tta_flip=True))
    both_mirrored = run_model(module, Inputs(mirrored), dev, Inference(1, "multiclass", tta_flip=True))
    np.testing.assert_allclose(both, both_mirrored, atol=1e-5)
    assert not np.allclose(plain, both)
    np.testing.assert_allclose(both.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_model_file_is_refused(tmp_path, damage):
    data = bytearray(open(dr.default_model_path(), "rb").read())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path = tmp_path / "damaged.dat"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="damaged.dat"):
        build_module(SPEC, SPEC.resolve({"weights": str(path)}), 7)


def test_bad_options_name_the_option():
    with pytest.raises(ModelError, match="freeze"):
        build_module(SPEC, SPEC.resolve({"freeze": "stage7"}), 7)
    with pytest.raises(ModelError, match="input_size"):
        build_module(SPEC, SPEC.resolve({"input_size": 100}), 7)
    with pytest.raises(ModelError, match="layer"):
        build_module(SPEC, SPEC.resolve({"layer": "fc7"}), 7)
