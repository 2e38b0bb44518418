"""dlib's face descriptor network in PyTorch: same encodings as dlib, and a model file it can trust."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import embedlab
from embedlab.core.errors import FeatureError, NoFaceFound
from embedlab.features import create_extractor
from embedlab.features import dlib_resnet as dr
from embedlab.datasets.images import read_image
from embedlab_cli.main import app

MAX_DIFF, MIN_COSINE = 1e-4, 0.99999


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return open(dr.default_model_path(), "rb").read()


@pytest.fixture(scope="module")
def net():
    return dr.load_descriptor_net(device="cpu")


def sample_faces(sample, n_aligned=12):
    """The face photos plus a few aligned real/fake crops from the bundled sample."""
    photos = sorted((sample / "face-photos").glob("*.jpg"))
    aligned = sorted((sample / "real-vs-fake").rglob("*.jpg"))
    step = max(1, len(aligned) // n_aligned)
    return photos + aligned[::step][:n_aligned]


def test_reads_the_published_file_layer_by_layer(model_bytes):
    weights = dr.parse_model(model_bytes)
    kinds = [layer.kind for layer in weights.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds[-1] == "fc"
    assert kinds.count("add_prev") == 14 and kinds.count("skip") == 4
    np.testing.assert_allclose(weights.channel_means, (122.782, 117.001, 104.298), rtol=1e-6)
    stem = weights.layers[0]
    assert stem.params["weight"].shape == (32, 3, 7, 7) and stem.params["weight"].dtype == np.float32
    assert weights.layers[-1].params["weight"].shape == (256, 128)
    assert weights.sha256 == dr.OFFICIAL_SHA256


def test_torch_network_matches_dlib_on_sample_faces(sample):
    import face_recognition

    extractor = create_extractor("encoding", engine="torch", device="cpu")
    paths = sample_faces(sample)
    images = [read_image(str(p)) for p in paths]
    results = extractor.extract_many(images)
    for path, image, result in zip(paths, images, results):
        assert not isinstance(result, Exception), (path, result)
        vector, info = result
        box = (info["face_top"], info["face_right"], info["face_bottom"], info["face_left"])
        expected = face_recognition.face_encodings(image, known_face_locations=[box])[0]
        cosine = vector @ expected / np.linalg.norm(vector) / np.linalg.norm(expected)
        assert np.abs(vector - expected).max() <= MAX_DIFF, path
        assert cosine >= MIN_COSINE, path
        assert vector.dtype == np.float32 and vector.shape == (128,)


def test_network_alone_matches_dlib_on_reference_chips(net):
    chips = dr.reference_chips(4)
    diff = np.abs(net.encode(chips) - dr.dlib_encodings(chips)).max()
    assert diff <= MAX_DIFF
    assert dr.check_against_dlib(net) <= MAX_DIFF


def test_encodings_do_not_depend_on_batching(net):
    chips = dr.reference_chips(11)
    batched = net.encode(chips)  # 8 + 3: a padded last batch too
    single = np.stack([net.encode(chips[i:i + 1])[0] for i in range(len(chips))])
    np.testing.assert_array_equal(batched, single)
    np.testing.assert_array_equal(net.encode(chips[::-1])[::-1], batched)
    with pytest.raises(FeatureError, match="uint8 arrays of shape"):
        net.encode(np.zeros((1, 112, 112, 3), np.uint8))


def test_batch_extraction_reports_faceless_images_in_place(sample):
    extractor = create_extractor("encoding", engine="torch", device="cpu")
    faces = [read_image(str(p)) for p in sorted((sample / "real-vs-fake").rglob("*.jpg"))[:2]]
    blank = np.full((120, 120, 3), 90, np.uint8)
    results = extractor.extract_many([faces[0], blank, faces[1]])
    assert isinstance(results[1], NoFaceFound)
    for image, result in zip((faces[0], faces[1]), (results[0], results[2])):
        single, info = extractor.extract(image)
        np.testing.assert_array_equal(result[0], single)
        assert result[1] == info
    with pytest.raises(NoFaceFound):
        extractor.extract(blank)


def test_engines_share_one_cache(sample, tmp_path):
    torch_ex = create_extractor("encoding[detector=none]")
    assert torch_ex.engine == "torch"  # the default
    assert torch_ex.key() == create_extractor("encoding[detector=none,engine=dlib]").key()
    assert torch_ex.key() == create_extractor("encoding[detector=none,device=cpu]").key()
    with pytest.raises(FeatureError, match="engine='tensorflow' is not one of torch, dlib"):
        create_extractor("encoding[engine=tensorflow]")
    runner = CliRunner()
    args = ["encode", str(sample / "face-photos"), "--cache-dir", str(tmp_path), "--workers", "1", "-q"]
    first = runner.invoke(app, [*args, "--engine", "dlib"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*args, "--engine", "torch", "--device", "cpu"])
    assert second.exit_code == 0, second.output
    assert "nothing to compute" in second.output
    bad = runner.invoke(app, [*args, "--engine", "onnx"])
    assert bad.exit_code == 2 and "'onnx' is not one of" in " ".join(bad.output.replace("│", " ").split())


def test_encode_with_both_engines_agrees(sample, tmp_path):
    data = sample / "real-vs-fake" / "test"
    dlib_df = embedlab.encode(data, "encoding[detector=none,engine=dlib]", workers=0, cache_dir=tmp_path / "a")
    torch_df = embedlab.encode(data, "encoding[detector=none,engine=torch]", workers=0, chunk_size=5,
                               cache_dir=tmp_path / "b")
    assert dlib_df["encoding.ok"].all() and torch_df["encoding.ok"].all()
    a, b = np.stack(dlib_df["encoding"]), np.stack(torch_df["encoding"])
    assert np.abs(a - b).max() <= MAX_DIFF


@pytest.mark.parametrize("keep", [0, 1, 15, 300, 2_000, 11_000_000, -1])
def test_truncated_model_file_is_refused(model_bytes, tmp_path, keep):
    path = tmp_path / "model.dat"
    path.write_bytes(model_bytes[:keep] if keep >= 0 else model_bytes[:-1])
    with pytest.raises(FeatureError, match="truncated") as err:
        dr.read_model_file(path)
    assert str(path) in str(err.value)


def test_trailing_bytes_are_refused(model_bytes):
    with pytest.raises(FeatureError, match="1 unexpected bytes after the network"):
        dr.parse_model(model_bytes + b"\0", sha256=None)


def flipped(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


@pytest.mark.parametrize("marker, offset, message", [
    (b"loss_metric_2", 3, "expected metric loss layer"),
    (b"loss_metric_2", 26, "unexpected version 253 of fc layer 0"),
    (b"input_rgb_image_sized", 2, "expected input layer"),
    (b"con_4", 4, "expected convolution layer"),
    (b"max_pool_2", 10, "bad integer encoding for pool rows"),
])
def test_flipped_structure_bytes_name_what_is_wrong(model_bytes, marker, offset, message):
    data = flipped(model_bytes, model_bytes.index(marker) + offset)
    with pytest.raises(FeatureError, match=message) as err:
        dr.parse_model(data, "copy.dat", sha256=None)
    assert "copy.dat is corrupt or not dlib's face recognition network" in str(err.value)


def test_any_flipped_byte_is_refused_and_never_crashes_the_reader(model_bytes):
    rng = np.random.default_rng(0)
    # the layout-heavy head of the file, and anywhere at all (weights included)
    positions = list(rng.integers(0, 400, 40)) + list(rng.integers(0, len(model_bytes), 10))
    for pos in positions:
        data = flipped(model_bytes, int(pos))
        with pytest.raises(FeatureError):
            dr.parse_model(data, "copy.dat")
        try:  # without the content check, only FeatureError may come out, never a crash
            dr.parse_model(data, "copy.dat", sha256=None)
        except FeatureError:
            pass


def test_weight_corruption_is_caught_by_the_content_check(model_bytes, tmp_path):
    path = tmp_path / "model.dat"
    path.write_bytes(flipped(model_bytes, len(model_bytes) // 2))
    with pytest.raises(FeatureError, match="not its published content"):
        dr.read_model_file(path)


def test_a_network_that_strays_from_dlib_is_refused(model_bytes):
    import torch

    bad = dr.build_descriptor_net(dr.parse_model(model_bytes))
    with torch.no_grad():
        bad.fc.weight[0, 0] += 0.5
    with pytest.raises(FeatureError, match="differs from dlib's network"):
        dr.check_against_dlib(bad)


def test_devices(monkeypatch):
    import torch

    assert dr.resolve_device("cpu") == "cpu"
    assert dr.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(FeatureError, match="not one of auto, cpu, cuda"):
        dr.resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FeatureError, match="no CUDA GPU"):
        dr.resolve_device("cuda")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_cuda_matches_dlib():
    gpu = dr.load_descriptor_net(device="cuda")
    assert dr.check_against_dlib(gpu) <= MAX_DIFF


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(FeatureError, match="cannot read dlib model file"):
        dr.read_model_file(tmp_path / "nope.dat")
