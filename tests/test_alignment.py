"""face_crop=align: every face rotated, scaled and placed by its eyes as FER-2013 frames them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from embedlab.datasets.images import content_hash, read_file, read_image
from embedlab.nets import alignment, fit_network
from embedlab.nets.images import FACE_CROPS, InputSettings, NetworkInput, cached_inputs, prepare_images, to_input

def test_alignment_places_eyes_where_fer_template_says(sample):
    paths = sorted((sample / "synthetic-emotions").rglob("*.jpg")) + sorted((sample / "face-photos").glob("*.jpg"))
    placed = 0
    for path in paths:
        image = read_image(str(path))
        eyes, n_faces = alignment.find_eyes(image)
        if eyes is None:  # HOG misses a few medium shots; those keep the central square
            continue
        crop = alignment.aligned_crop(image, eyes)
        side = crop.shape[0]
        assert crop.shape[:2] == (side, side)
        # found again in the aligned crop, the eyes are level and where FER-2013's template puts them
        (lx, ly), (rx, ry) = alignment.find_eyes(crop)[0]
        (tlx, tly), (trx, try_) = alignment.fer_eyes(side)
        assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 3, path.name
        for got, want in ((lx, tlx), (ly, tly), (rx, trx), (ry, try_)):
            assert abs(got - want) < 0.03 * side, (path.name, (lx, ly, rx, ry), alignment.fer_eyes(side))
        placed += 1
    assert placed >= 14, f"{placed} of {len(paths)} faces found"


def test_a_rotated_face_is_turned_back_level(sample):
    image = read_image(str(sample / "face-photos" / "obama.jpg"))
    tilted = np.asarray(Image.fromarray(image).rotate(15, resample=Image.Resampling.BICUBIC, expand=True))
    (lx, ly), (rx, ry) = alignment.find_eyes(tilted)[0]
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) > 10
    crop = alignment.aligned_crop(tilted, ((lx, ly), (rx, ry)))
    (lx, ly), (rx, ry) = alignment.find_eyes(crop)[0]
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 3


def test_small_fer_crops_are_searched_enlarged(sample):
    files = sorted((sample / "fer2013").rglob("*.jpg"))
    found = [alignment.find_eyes(read_image(str(f)))[0] is not None for f in files]
    # at 48 px as they are, dlib's HOG finds almost none of them
    assert sum(found) >= len(files) // 2, f"{sum(found)} of {len(files)}"
    view, factor, pad = alignment.search_view(np.zeros((48, 48, 3), np.uint8))
    assert pad == 24 and factor == 4 and view.shape == (384, 384, 3)


def test_align_is_a_face_crop_with_its_own_cache_key(sample, tmp_path):
    assert "align" in FACE_CROPS
    keys = {fc: NetworkInput(48, 1, fc).key() for fc in FACE_CROPS}
    assert len(set(keys.values())) == len(FACE_CROPS)
    assert "landmarks" in NetworkInput(48, 1, "align").fingerprint()
    path = str(sample / "face-photos" / "obama.jpg")
    digest = content_hash(read_file(path))
    arr, info = cached_inputs([digest], [path], InputSettings(48, 1, "align"), tmp_path)
    other, _ = cached_inputs([digest], [path], InputSettings(48, 1, "always"), tmp_path)
    assert len(list((tmp_path / "network-inputs").glob("*.npy"))) == 2
    assert info[0]["face_cropped"] and info[0]["face_found"] and not np.array_equal(arr, other)
    image = read_image(path)
    expected = to_input(alignment.aligned_crop(image, alignment.find_eyes(image)[0]), 48, 1)
    np.testing.assert_array_equal(arr[0], expected)


def test_no_face_keeps_the_central_square(tmp_path):
    arr, info = prepare_images([""], InputSettings(48, 1, "align"), images=[np.full((60, 80, 3), 128, np.uint8)])
    assert info[0]["face_cropped"] and info[0]["face_found"] is False
    assert arr.shape == (1, 48, 48, 1) and (arr == 128).all()


def test_a_run_trained_aligned_predicts_on_aligned_crops(sample, tmp_path):
    run = fit_network(sample / "fer2013", "emotion-cnn", {"widths": [4, 8, 8, 8], "blocks": [1, 1, 1, 1],
                                                          "face_crop": "align"},
                      runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", device="cpu", epochs=1, name="al")
    assert run.model_params["face_crop"] == "align"
    # training aligned the FER faces too: they are not taken as ready-made crops
    assert run.metrics["sets"]["test"]["face_crops"]["cropped"] == run.metrics["sets"]["test"]["n"]
    path = sample / "face-photos" / "obama.jpg"
    out = run.predict([path], cache_dir=tmp_path / "cache", crops_dir=tmp_path / "crops")
    assert bool(out["face_cropped"].iloc[0]) and bool(out["face_found"].iloc[0])
    saved = np.asarray(Image.open(out["crop_path"].iloc[0]))
    image = read_image(str(path))
    expected = to_input(alignment.aligned_crop(image, alignment.find_eyes(image)[0]), 48, 1)[:, :, 0]
    np.testing.assert_array_equal(saved, expected)


def test_the_template_is_the_one_measured_on_fer():
    import json
    from pathlib import Path

    measured = json.loads((Path(__file__).resolve().parents[1] / "results" / "bench" / "fer_alignment.json").read_text())
    assert alignment.FER_EYES_X == pytest.approx(measured["eyes_x"]["median"], abs=0.001)
    assert alignment.FER_EYES_Y == pytest.approx(measured["eyes_y"]["median"], abs=0.0005)
    assert alignment.FER_EYE_DISTANCE == pytest.approx(measured["eye_distance"]["median"], abs=0.0005)


def test_a_set_prepared_before_serves_the_images_a_new_set_shares_with_it(sample, tmp_path, monkeypatch):
    from embedlab.nets import images as images_module

    paths = sorted(str(p) for p in (sample / "real-vs-fake").rglob("*.jpg"))[:4]
    digests = [content_hash(read_file(p)) for p in paths]
    settings = InputSettings(48, 1, "always")
    whole, whole_info = cached_inputs(digests[:3], paths[:3], settings, tmp_path)
    prepared = []
    real = images_module.prepare_images

    def counting(uris, *args, **kwargs):
        prepared.extend(uris)
        return real(uris, *args, **kwargs)

    monkeypatch.setattr(images_module, "prepare_images", counting)
    # a fold of the first set, in another order, and one image it never held
    order = [2, 0, 3]
    arr, info = cached_inputs([digests[i] for i in order], [paths[i] for i in order], settings, tmp_path)
    assert prepared == [paths[3]]  # only the new image was decoded and cropped
    np.testing.assert_array_equal(arr[:2], whole[[2, 0]])
    assert info[:2] == [whole_info[2], whole_info[0]]
    fresh, fresh_info = real([paths[3]], settings)
    np.testing.assert_array_equal(arr[2], fresh[0])
    # prepared another way (another size), nothing is shared
    prepared.clear()
    cached_inputs(digests[:2], paths[:2], InputSettings(32, 1, "always"), tmp_path)
    assert prepared == paths[:2]
