"""dlib's HOG face detector in PyTorch: dlib's boxes and scores, and a detector file it can trust."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.core.errors import FeatureError
from embedlab.datasets.images import read_image
from embedlab.features import dlib_hog as hg
from embedlab.features import dlib_mmod as mm

MIN_IOU, MAX_SCORE_DIFF = 0.95, 1e-3


@pytest.fixture(scope="module")
def detector_bytes() -> bytes:
    return hg.default_detector_bytes()


@pytest.fixture(scope="module")
def detector():
    return hg.load_face_detector()


def assert_same_detections(found, expected, where):
    assert len(found) == len(expected), (where, found, expected)
    for box in expected:  # matched by overlap, not by order: near-equal scores may swap
        best = max(found, key=lambda f: hg.box_iou(f, box))
        assert hg.box_iou(best, box) >= MIN_IOU, (where, found, expected)
        assert abs(best[4] - box[4]) <= MAX_SCORE_DIFF, (where, found, expected)


def test_reads_the_detector_dlib_saves(detector_bytes):
    w = hg.parse_detector(detector_bytes)
    assert w.sha256 == hg.OFFICIAL_SHA256
    assert (w.cell_size, w.padding, w.window, w.filter_size) == (8, 0, (80, 80), (10, 10))
    assert w.weights.shape == (5, 31 * 10 * 10 + 1) and w.min_level_size == (64, 64)
    assert 0.3 < w.nms_iou < 0.4 and 0.7 < w.nms_covered < 0.8
    assert np.all((3 < w.thresholds) & (w.thresholds < 4.5))
    filters = hg.separable_filters(w)
    assert filters.shape == (5, 31, 10, 10)
    # dropping the small singular values changes each filter, but only a little
    assert 0 < np.abs(filters - w.weights[:, :-1].reshape(filters.shape)).max() < 1e-2


def test_orientation_table_is_dlibs_float_arithmetic():
    table_o, table_v = hg.orientation_table()

    def at(gx, gy):
        return int(table_o[gx * hg.GRADIENTS + gy]), float(table_v[gx * hg.GRADIENTS + gy])

    assert at(0, 0) == (0, 0.0)
    assert at(3, 4) == (3, 5.0)  # 53 degrees: nearer 60 than 40
    assert at(-1, 0)[0] == 9 and at(0, -1)[0] == 13
    assert at(0, 1)[0] == 4  # 4 and 5 tie exactly (0.9848 each): the first wins, as in dlib's loop
    assert set(np.unique(table_o)) == set(range(18))


def test_pyramid_levels_are_dlibs_to_the_pixel(sample):
    import dlib
    import torch

    down = dlib.pyramid_down(6)
    for path in sorted((sample / "real-vs-fake").rglob("*.jpg"))[:1] + [sample / "face-photos" / "obama2.jpg"]:
        image = read_image(str(path))
        for _ in range(3):
            expected = np.asarray(down(image))
            size = hg.pyramid_down_size(*image.shape[:2])
            assert expected.shape[:2] == size
            np.testing.assert_array_equal(mm.resize_batch(torch.from_numpy(image)[None], *size)[0].numpy(),
                                          expected, err_msg=str(path))
            image = expected


@pytest.mark.parametrize("upsample", [1, 0])
def test_detections_match_dlib_on_the_sample(sample, detector, upsample):
    # the aligned 256 px real and fake faces at face_recognition's default upsample, and the
    # photographs (up to 2204 px) without upsampling
    if upsample:
        paths = sorted((sample / "real-vs-fake").rglob("*.jpg"))[::10]
    else:
        paths = sorted((sample / "face-photos").glob("*.jpg"))
    images = [read_image(str(p)) for p in paths]
    expected = hg.dlib_detections(images, upsample=upsample)
    assert sum(map(len, expected)) >= len(paths)
    for path, f, e in zip(paths, detector.detect(images, upsample=upsample), expected):
        assert_same_detections(f, e, path)


def test_windows_below_the_threshold_match_too(sample, detector):
    # a lowered threshold lets through many more windows (and their suppression): a stricter check
    # of the features and filters than the few faces
    paths = sorted((sample / "real-vs-fake").rglob("*.jpg"))[5::10]
    images = [read_image(str(p)) for p in paths]
    expected = hg.dlib_detections(images, upsample=0, adjust_threshold=-1.0)
    assert sum(map(len, expected)) > len(paths)
    for path, f, e in zip(paths, detector.detect(images, upsample=0, adjust_threshold=-1.0), expected):
        assert_same_detections(f, e, path)


def test_detections_do_not_depend_on_batching(sample, detector):
    images = [read_image(str(p)) for p in sorted((sample / "real-vs-fake").rglob("*.jpg"))[:5]]
    images.append(np.full((100, 140, 3), 90, np.uint8))  # another size, and no face
    images.append(np.zeros((20, 30, 3), np.uint8))       # too small for a single window
    together = detector.detect(images, upsample=0, batch_size=3)
    alone = [detector.detect([image], upsample=0)[0] for image in images]
    assert together[-2:] == [[], []] and all(together[:-2])
    for t, a in zip(together, alone):
        assert [b[:4] for b in t] == [b[:4] for b in a]
        np.testing.assert_allclose([b[4] for b in t], [b[4] for b in a], atol=1e-5)
    with pytest.raises(FeatureError, match="uint8 RGB images"):
        detector.detect([np.zeros((50, 50), np.uint8)])


@pytest.mark.parametrize("keep", [0, 1, 15, 2000, -1])
def test_truncated_detector_file_is_refused(detector_bytes, tmp_path, keep):
    path = tmp_path / "detector.svm"
    path.write_bytes(detector_bytes[:keep] if keep >= 0 else detector_bytes[:-1])
    with pytest.raises(FeatureError, match="truncated") as err:
        hg.read_detector_file(path)
    assert str(path) in str(err.value)


def flipped(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


def test_damaged_or_foreign_files_are_refused(detector_bytes, tmp_path):
    rng = np.random.default_rng(0)
    for pos in list(range(40)) + list(rng.integers(0, len(detector_bytes), 10)):
        data = flipped(detector_bytes, int(pos))
        with pytest.raises(FeatureError):
            hg.parse_detector(data, "copy.svm")
        try:  # without the content check, only FeatureError may come out, never a crash
            hg.parse_detector(data, "copy.svm", sha256=None)
        except FeatureError:
            pass
    path = tmp_path / "detector.svm"
    path.write_bytes(detector_bytes + b"\x00")
    with pytest.raises(FeatureError, match="unexpected bytes"):
        hg.read_detector_file(path)
    with pytest.raises(FeatureError, match="not dlib's HOG frontal face detector"):
        hg.parse_detector(open(mm.default_detector_path(), "rb").read(), "mmod.dat", sha256=None)
    with pytest.raises(FeatureError, match="cannot read dlib model file"):
        hg.read_detector_file(tmp_path / "nope.svm")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_cuda_matches_dlib(sample):
    gpu = hg.load_face_detector(device="cuda")
    paths = sorted((sample / "real-vs-fake").rglob("*.jpg"))[::10]
    images = [read_image(str(p)) for p in paths]
    for path, f, e in zip(paths, gpu.detect(images, upsample=1), hg.dlib_detections(images, upsample=1)):
        assert_same_detections(f, e, path)


def test_encode_with_the_torch_hog_detector_matches_face_recognition(sample):
    import face_recognition

    from embedlab.features import create_extractor

    paths = sorted((sample / "real-vs-fake").rglob("*.jpg"))[3::20] + [sample / "face-photos" / "obama.jpg"]
    images = [read_image(str(p)) for p in paths]
    extractor = create_extractor("encoding[detector_engine=torch,upsample=0]", device="cpu")
    dlibs = create_extractor("encoding[upsample=0]")
    assert extractor.key() != dlibs.key()
    assert extractor.key() == create_extractor("encoding[detector_engine=torch,upsample=0,engine=dlib]").key()
    assert "detector_engine" not in dlibs.cache_params() and dlibs.finds_faces_with() == "dlib"
    assert dlibs.key() == create_extractor("encoding[detector_engine=dlib,upsample=0]").key()
    for path, image, result in zip(paths, images, extractor.extract_many(images)):
        boxes = face_recognition.face_locations(image, number_of_times_to_upsample=0, model="hog")
        assert not isinstance(result, Exception), (path, result)
        vector, info = result
        box = (info["face_top"], info["face_right"], info["face_bottom"], info["face_left"])
        assert box in boxes and info["n_faces"] == len(boxes), path
        expected = face_recognition.face_encodings(image, known_face_locations=[box])[0]
        assert np.abs(vector - expected).max() <= 1e-4, path


def _detections(detector, images, upsample):
    return [[(r.left(), r.top(), r.right(), r.bottom(), s) for r, s in zip(*detector.run(i, upsample, 0.0)[:2])]
            for i in images]


def test_the_shipped_detector_file_is_the_detector_dlib_builds(detector_bytes, sample):
    import dlib

    from embedlab.features import facerec

    assert facerec.FRONTAL_DETECTOR_FILE.read_bytes() == detector_bytes  # what the installed dlib saves
    images = [read_image(str(p)) for p in sorted((sample / "face-photos").glob("*.jpg"))[:3]]
    from_file = facerec.frontal_face_detector()
    assert _detections(from_file, images, 1) == _detections(dlib.get_frontal_face_detector(), images, 1)


def test_a_damaged_detector_file_falls_back_to_dlibs_own(tmp_path, monkeypatch, sample):
    import dlib

    from embedlab.features import facerec

    damaged = tmp_path / "frontal_face_detector.svm"
    damaged.write_bytes(facerec.FRONTAL_DETECTOR_FILE.read_bytes()[:5000])
    monkeypatch.setattr(facerec, "FRONTAL_DETECTOR_FILE", damaged)
    image = [read_image(str(sample / "face-photos" / "obama.jpg"))]
    assert _detections(facerec.frontal_face_detector(), image, 0) == _detections(dlib.get_frontal_face_detector(),
                                                                                 image, 0)
