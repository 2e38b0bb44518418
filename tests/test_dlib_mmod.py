"""dlib's CNN face detector in PyTorch: dlib's boxes and confidences, and a model file it can trust."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.core.errors import FeatureError
from embedlab.datasets.images import read_image
from embedlab.features import dlib_mmod as mm

MIN_IOU, MAX_CONFIDENCE_DIFF = 0.95, 1e-3


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return open(mm.default_detector_path(), "rb").read()


@pytest.fixture(scope="module")
def detector():
    return mm.load_face_detector(device="cpu")



def assert_same_detections(found, expected, where):
    assert len(found) == len(expected), (where, found, expected)
    for box in expected:  # matched by overlap, not by order: near-equal confidences may swap
        best = max(found, key=lambda f: mm.box_iou(f, box))
        assert mm.box_iou(best, box) >= MIN_IOU, (where, found, expected)
        assert abs(best[4] - box[4]) <= MAX_CONFIDENCE_DIFF, (where, found, expected)


def test_reads_the_published_file(model_bytes):
    weights = mm.parse_detector(model_bytes)
    kinds = [layer.kind for layer in weights.layers]
    assert kinds.count("con") == 7 and kinds.count("affine") == 6 and kinds.count("relu") == 6
    assert [layer.args for layer in weights.layers if layer.kind == "con"] == [
        (16, 5, 5, 2, 2), (32, 5, 5, 2, 2), (32, 5, 5, 2, 2), (45, 5, 5, 1, 1), (45, 5, 5, 1, 1),
        (45, 5, 5, 1, 1), (1, 9, 9, 1, 1)]
    assert weights.window == (80, 80) and weights.padding == (10, 11)
    assert 0.3 < weights.nms_iou < 0.4 and weights.nms_covered == 1.0
    np.testing.assert_allclose(weights.channel_means, (122.782, 117.001, 104.298), rtol=1e-6)
    assert weights.sha256 == mm.OFFICIAL_SHA256


def test_upsampling_is_dlibs_to_the_pixel(sample):
    import dlib

    for path in sorted((sample / "real-vs-fake").rglob("*.jpg"))[:2] + [sample / "face-photos" / "obama2.jpg"]:
        image = read_image(str(path))
        up = mm.upsample_image(image)
        assert up.shape[:2] == mm.upsampled_size(*image.shape[:2])
        np.testing.assert_array_equal(up, np.asarray(dlib.resize_image(image, *up.shape[:2])), err_msg=str(path))


def test_pyramid_layout_tiles_every_level_without_overlap():
    rows, cols, rects = mm.tiled_pyramid(513, 514)
    assert rects[0] == (11, 11, 524, 523) and cols == 514 + 22
    sizes = [(r[3] - r[1] + 1, r[2] - r[0] + 1) for r in rects]
    for big, small in zip(sizes, sizes[1:]):
        assert small == mm.pyramid_down_size(*big)
    assert sizes[-1][0] >= mm.MIN_LEVEL_HEIGHT
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[2] < cols and 0 <= a[1] and a[3] < rows
        for b in rects[i + 1:]:
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1], (a, b)


@pytest.mark.parametrize("upsample", [1, 0])
def test_detections_match_dlib_on_the_sample(sample, detector, upsample):
    # aligned 256 px real and fake faces (one face each) at face_recognition's default upsample,
    # and the photographs without upsampling (with it, dlib takes many seconds each), at most 1200 px
    # (the 2204 px one at every other pixel: dlib's own detector spends most of the test on its pixels)
    if upsample:
        paths = sorted((sample / "real-vs-fake").rglob("*.jpg"))[::10]
    else:
        paths = sorted((sample / "face-photos").glob("*.jpg"))
    images = [read_image(str(p)) for p in paths]
    images = [np.ascontiguousarray(i[::2, ::2]) if max(i.shape[:2]) > 1200 else i for i in images]
    found = detector.detect(images, upsample=upsample)
    expected = mm.dlib_detections(images, upsample=upsample)
    assert sum(map(len, expected)) >= len(paths)
    for path, f, e in zip(paths, found, expected):
        assert_same_detections(f, e, path)


def test_detections_do_not_depend_on_batching(sample, detector):
    images = [read_image(str(p)) for p in sorted((sample / "real-vs-fake").rglob("*.jpg"))[:5]]
    images.append(np.full((100, 140, 3), 90, np.uint8))  # another size, and no face
    together = detector.detect(images, upsample=0, batch_size=3)
    alone = [detector.detect([image], upsample=0)[0] for image in images]
    assert together[-1] == [] and all(together[:-1])
    for t, a in zip(together, alone):
        assert [b[:4] for b in t] == [b[:4] for b in a]
        np.testing.assert_allclose([b[4] for b in t], [b[4] for b in a], atol=1e-5)
    with pytest.raises(FeatureError, match="uint8 RGB images"):
        detector.detect([np.zeros((50, 50), np.uint8)])


@pytest.mark.parametrize("keep", [0, 1, 15, 200, 300_000, -1])
def test_truncated_model_file_is_refused(model_bytes, tmp_path, keep):
    path = tmp_path / "detector.dat"
    path.write_bytes(model_bytes[:keep] if keep >= 0 else model_bytes[:-1])
    with pytest.raises(FeatureError, match="truncated") as err:
        mm.read_detector_file(path)
    assert str(path) in str(err.value)


def flipped(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


@pytest.mark.parametrize("marker, offset, message", [
    (b"loss_mmod_", 3, "expected MMOD loss layer"),
    (b"input_rgb_image_pyramid", 4, "expected input layer"),
    (b"con_4", 4, "expected convolution layer"),
    (b"bn_con2", 2, "expected affine layer"),
    (b"relu_", 3, "expected relu layer"),
])
def test_flipped_structure_bytes_are_refused(model_bytes, marker, offset, message):
    data = flipped(model_bytes, model_bytes.index(marker) + offset)
    with pytest.raises(FeatureError, match=message) as err:
        mm.parse_detector(data, "copy.dat", sha256=None)
    assert "copy.dat is corrupt or not dlib's MMOD face detector" in str(err.value)


def test_damaged_or_foreign_files_are_refused(model_bytes, tmp_path):
    rng = np.random.default_rng(0)
    for pos in list(rng.integers(0, 300, 30)) + list(rng.integers(0, len(model_bytes), 10)):
        data = flipped(model_bytes, int(pos))
        with pytest.raises(FeatureError):
            mm.parse_detector(data, "copy.dat")
        try:  # without the content check, only FeatureError may come out, never a crash
            mm.parse_detector(data, "copy.dat", sha256=None)
        except FeatureError:
            pass
    path = tmp_path / "detector.dat"
    path.write_bytes(flipped(model_bytes, len(model_bytes) // 2))
    with pytest.raises(FeatureError, match="not its published content"):
        mm.read_detector_file(path)
    with pytest.raises(FeatureError, match="not dlib's MMOD face detector"):
        mm.parse_detector(open(mm.dlib_resnet.default_model_path(), "rb").read(), "resnet.dat", sha256=None)
    with pytest.raises(FeatureError, match="cannot read dlib model file"):
        mm.read_detector_file(tmp_path / "nope.dat")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_cuda_matches_dlib(sample):
    gpu = mm.load_face_detector(device="cuda")
    paths = sorted((sample / "real-vs-fake").rglob("*.jpg"))[::10]
    images = [read_image(str(p)) for p in paths]
    for path, f, e in zip(paths, gpu.detect(images, upsample=1), mm.dlib_detections(images, upsample=1)):
        assert_same_detections(f, e, path)


def test_encode_with_the_torch_detector_matches_face_recognitions_cnn(sample, tmp_path):
    import face_recognition

    from embedlab.features import create_extractor

    paths = sorted((sample / "real-vs-fake").rglob("*.jpg"))[::20]
    images = [read_image(str(p)) for p in paths]
    extractor = create_extractor("encoding[detector=cnn]", device="cpu")
    assert extractor.key() != create_extractor("encoding[detector=cnn,engine=dlib]").key()
    assert extractor.key() == create_extractor("encoding[detector=cnn,jitters=1,device=cuda]").key()
    assert "detector_engine" not in create_extractor("encoding").cache_params()
    for path, image, result in zip(paths, images, extractor.extract_many(images)):
        boxes = face_recognition.face_locations(image, model="cnn")
        assert not isinstance(result, Exception), (path, result)
        vector, info = result
        box = (info["face_top"], info["face_right"], info["face_bottom"], info["face_left"])
        assert box in boxes and info["n_faces"] == len(boxes), path
        expected = face_recognition.face_encodings(image, known_face_locations=[box])[0]
        assert np.abs(vector - expected).max() <= 1e-4, path
