"""Predictions on every core: worker processes give the tables this process gives, the cache answers
a second predict without reading an image, and a worker that dies costs only its chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import embedlab.datasets.images as images_module
from dying_worker import InputDiesOnWhite
from embedlab.api import load_run, predict_faces
from embedlab.datasets import images_of
from embedlab.features import dlib_resnet
from embedlab.features.facerec import face_landmarks, hog_face_locations, import_face_recognition
from embedlab.nets import prediction
from embedlab.nets.inputs import prepare_inputs
from embedlab.nets.training import Inference, run_model
from embedlab.runs import pretrained_run

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
PHOTOS = sorted((SAMPLE / "face-photos").glob("*.jpg")) + sorted((SAMPLE / "synthetic-emotions").rglob("*.jpg"))[:4] \
    + sorted((SAMPLE / "real-vs-fake" / "test").rglob("*.jpg"))[:3]


def network(run):
    """The PyTorch network a shipped run is, or holds (a stacked run's network component)."""
    if run.params["kind"] == "stacked":
        return next(c for c in run.components.values() if c.params["kind"] == "network")
    return run


@pytest.fixture(scope="module")
def runs():
    return {task: network(load_run(pretrained_run(task))) for task in ("real-fake", "emotion")}


def test_faces_are_found_and_cut_as_face_recognition_does():
    fr = import_face_recognition()
    for path in PHOTOS[:5]:
        image = fr.load_image_file(str(path))
        boxes = hog_face_locations(image, 1)
        assert boxes == fr.face_locations(image, number_of_times_to_upsample=1, model="hog")
        ours = [[(p.x, p.y) for p in s.parts()] for s in face_landmarks(image, boxes)]
        theirs = [[(p.x, p.y) for p in s.parts()] for s in fr.api._raw_face_landmarks(image, boxes, model="small")]
        assert ours == theirs


def test_a_photo_looked_at_twice_is_searched_once(monkeypatch):
    import embedlab.features.facerec as facerec

    image = import_face_recognition().load_image_file(str(PHOTOS[0]))
    first = hog_face_locations(image, 1)
    searched = []
    real = facerec._dlib_model

    def counting(name):
        searched.append(name)
        return real(name)

    monkeypatch.setattr(facerec, "_dlib_model", counting)
    assert hog_face_locations(image.copy(), 1) == first and searched == []  # the same pixels: remembered
    changed = image.copy()
    changed[0, 0] ^= 1
    assert hog_face_locations(changed, 1) == first and searched == ["hog"]  # other pixels: searched again
    assert hog_face_locations(image, 0) is not None and searched == ["hog", "hog"]  # another upsampling


@pytest.mark.parametrize("task", ["real-fake", "emotion"])
def test_predict_on_workers_gives_the_table_of_this_process_and_of_the_serial_path(task, runs, tmp_path):
    run = runs[task]
    here = run.predict(PHOTOS, cache_dir=tmp_path / "c0", crops_dir=tmp_path / "crops0", workers=0)
    pooled = run.predict(PHOTOS, cache_dir=tmp_path / "c2", crops_dir=tmp_path / "crops2", workers=2)
    same = [c for c in here.columns if c != "crop_path"]
    pd.testing.assert_frame_equal(here[same], pooled[same])
    assert here["ok"].all() and here["face_cropped"].all()
    for a, b in zip(here["crop_path"], pooled["crop_path"]):  # the same crops, each in its folder
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    # exactly the probabilities of the serial path that made every input of a set in one loop
    p = run.model_params
    inputs, usable, _ = prepare_inputs(run.spec, p, images_of(PHOTOS), run.classes, None)
    serial = run_model(run.module, inputs, run.module_device,
                       Inference(int(p["channels"]), run.params["task"], positive_index=run.positive_index,
                                 tta_flip=bool(p.get("tta_flip"))))
    assert usable.all()
    assert np.array_equal(here[[f"proba_{c}" for c in run.classes]].to_numpy(), serial)


def test_a_second_predict_reads_no_image_and_keeps_the_crops(runs, tmp_path, monkeypatch):
    run = runs["real-fake"]
    options = dict(cache_dir=tmp_path / "cache", crops_dir=tmp_path / "crops", workers=0)
    first = run.predict(PHOTOS, **options)  # files older than the hash index's racy window
    crop = Path(first["crop_path"].iloc[0])
    crop.unlink()  # one crop lost: made again from the stored input, without the image

    def no_reading(*args, **kwargs):
        raise AssertionError("an image was read")

    monkeypatch.setattr(images_module, "read_file", no_reading)
    monkeypatch.setattr(images_module, "read_file_stat", no_reading)
    second = run.predict(PHOTOS, **options)
    pd.testing.assert_frame_equal(first, second)
    assert crop.is_file()


def test_a_dying_predict_worker_costs_only_its_chunk(runs, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 200, (40, 40, 3), dtype=np.uint8)).save(folder / f"ok{i}.png")
    Image.new("RGB", (40, 40), (255, 255, 255)).save(folder / "white.png")  # kills every worker that reads it
    run = runs["emotion"]
    made = prediction.input_maker
    monkeypatch.setattr(prediction, "input_maker", lambda p: InputDiesOnWhite.make(made(p)))
    out = run.predict([folder], cache_dir=tmp_path / "cache", crops_dir=None, workers=2).set_index("image_id")
    white = out.loc["images/white.png"]
    assert white["reason"] == "worker died" and pd.isna(white["pred"]) and "white.png" in white["error"]
    # 8 images on 2 workers are chunks of 4: white.png's chunk fails with it, the other is predicted
    lost = out.index[out["reason"] == "worker died"]
    assert len(lost) == 4
    monkeypatch.setattr(prediction, "input_maker", made)
    expected = run.predict([folder], cache_dir=tmp_path / "fresh", crops_dir=None, workers=0).set_index("image_id")
    kept = out.index[out["ok"]]
    assert len(kept) == 4
    why = ["reason", "error"]  # None beside a "worker died" is NaN in a column of strings
    pd.testing.assert_frame_equal(out.loc[kept].drop(columns=why), expected.loc[kept].drop(columns=why))
    assert out.loc[kept, why].isna().all().all() and expected.loc[kept, why].isna().all().all()
    # a death is not cached: the same predict again, with a worker that lives, predicts every image
    again = run.predict([folder], cache_dir=tmp_path / "cache", crops_dir=None, workers=2).set_index("image_id")
    pd.testing.assert_frame_equal(again, expected)


def test_per_face_on_workers_gives_the_table_of_this_process(runs, tmp_path):
    run = runs["emotion"]
    here = predict_faces(run, PHOTOS[:4], cache_dir=tmp_path / "c0", crops_dir=None, workers=0)
    pooled = predict_faces(run, PHOTOS[:4], cache_dir=tmp_path / "c2", crops_dir=None, workers=2)
    pd.testing.assert_frame_equal(here, pooled)
    assert here["face"].notna().all()
    warm = predict_faces(run, PHOTOS[:4], cache_dir=tmp_path / "c2", crops_dir=None, workers=2)
    pd.testing.assert_frame_equal(here, warm)


def test_face_chips_are_cut_as_face_recognition_cuts_them():
    fr = import_face_recognition()
    import dlib

    image = fr.load_image_file(str(PHOTOS[0]))
    boxes = fr.face_locations(image)
    shapes = fr.api._raw_face_landmarks(image, boxes, model="small")
    theirs = dlib.get_face_chips(image, dlib.full_object_detections(shapes), size=dlib_resnet.CHIP_SIZE,
                                 padding=dlib_resnet.CHIP_PADDING)
    assert np.array_equal(dlib_resnet.face_chips(image, boxes), np.stack([np.asarray(c) for c in theirs]))
