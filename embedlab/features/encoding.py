"""dlib's 128-d face descriptor, through face_recognition."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedlab.core.errors import FeatureError, NoFaceFound
from embedlab.core.io import file_digest
from embedlab.features import dlib_resnet
from embedlab.features.base import EXTRACTORS, FeatureExtractor, check_choice
from embedlab.features.facerec import import_face_recognition, import_face_recognition_models

DETECTORS = ("hog", "cnn", "none")
LANDMARKS = ("small", "large")
ON_MISSING = ("skip", "whole")
ENGINES = ("torch", "dlib")


def model_files() -> dict[str, str]:
    """Paths of the dlib model files face_recognition uses."""
    import_face_recognition()
    frm = import_face_recognition_models()

    return {
        "recognition": frm.face_recognition_model_location(),
        "landmarks_large": frm.pose_predictor_model_location(),
        "landmarks_small": frm.pose_predictor_five_point_model_location(),
        "cnn_detector": frm.cnn_face_detector_model_location(),
    }


def largest_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The (top, right, bottom, left) box of largest area."""
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))


@EXTRACTORS.register("encoding")
class FaceEncoding(FeatureExtractor):
    """dlib's 128-d face descriptor (face_recognition.face_encodings).

    detector: ``hog`` or ``cnn`` to find the face, ``none`` to take the whole
    image as the face (for aligned crops such as the 140k faces).
    upsample: how many times to upsample the image when looking for faces.
    landmarks: ``small`` (5 points) or ``large`` (68 points) landmark model.
    jitters: how many jittered copies to average (slower, a little steadier).
    on_missing: when no face is found, ``skip`` the image (recorded as such)
    or fall back to the ``whole`` image. With several faces, the largest wins.
    engine: ``torch`` runs dlib's descriptor network in PyTorch, in batches
    (checked against dlib's when loaded; see :mod:`embedlab.features.dlib_resnet`),
    ``dlib`` runs it in dlib. Both give the same encodings (within 1e-4), so
    they share cache entries. jitters > 1 always uses dlib.
    device: where the torch engine runs: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    name = "encoding"
    version = "1"
    primary_param = "detector"
    info_columns = {"face_found": "bool", "n_faces": "int16", "face_top": "int32",
                    "face_right": "int32", "face_bottom": "int32", "face_left": "int32"}

    def __init__(self, detector: str = "hog", upsample: int = 1, landmarks: str = "small",
                 jitters: int = 1, on_missing: str = "skip", engine: str = "torch", device: str = "auto"):
        self.detector = detector
        self.upsample = upsample
        self.landmarks = landmarks
        self.jitters = jitters
        self.on_missing = on_missing
        self.engine = engine
        self.device = device

    def validate(self) -> None:
        check_choice(self, "detector", DETECTORS)
        check_choice(self, "landmarks", LANDMARKS)
        check_choice(self, "on_missing", ON_MISSING)
        check_choice(self, "engine", ENGINES)
        check_choice(self, "device", ("auto", "cpu", "cuda"))
        for p, lo in (("upsample", 0), ("jitters", 1)):
            v = getattr(self, p)
            if not isinstance(v, int) or v < lo:
                raise FeatureError(f"feature 'encoding': {p} must be an integer >= {lo}, got {v!r}")

    def cache_params(self):
        params = self.get_params()
        params.pop("engine")  # the engines agree within 1e-4 (tests/test_dlib_resnet.py): one cache
        params.pop("device")
        if self.detector == "none":  # these do not change the output then
            params.pop("upsample")
            params.pop("on_missing")
        return params

    def fingerprint(self):
        files = model_files()
        used = [files["recognition"], files[f"landmarks_{self.landmarks}"]]
        if self.detector == "cnn":
            used.append(files["cnn_detector"])
        return {Path(p).name: file_digest(p) for p in used}

    @property
    def dim(self) -> int:
        return 128

    def prepare(self) -> None:
        if self.engine == "torch" and self.jitters == 1 and not hasattr(self, "_net"):
            threads = os.environ.get("OMP_NUM_THREADS")  # set per worker process by embedlab.encode
            if threads:
                import torch

                torch.set_num_threads(int(threads))
            self._net = dlib_resnet.load_descriptor_net(device=self.device)
            dlib_resnet.check_against_dlib(self._net)
        self._fr = import_face_recognition()

    def locate(self, image: np.ndarray) -> tuple[tuple[int, int, int, int] | None, int]:
        """The face box to encode (or None) and how many faces were found."""
        h, w = image.shape[:2]
        if self.detector == "none":
            return (0, w, h, 0), 1
        boxes = self._fr.face_locations(image, number_of_times_to_upsample=self.upsample,
                                        model=self.detector)
        if boxes:
            return largest_box(boxes), len(boxes)
        return ((0, w, h, 0) if self.on_missing == "whole" else None), 0

    def extract(self, image):
        if not hasattr(self, "_fr"):
            self.prepare()
        if hasattr(self, "_net"):
            result = self.extract_many([image])[0]
            if isinstance(result, Exception):
                raise result
            return result
        box, n_faces = self.locate(image)
        if box is None:
            raise NoFaceFound("no face found")
        enc = self._fr.face_encodings(image, known_face_locations=[box],
                                      num_jitters=self.jitters, model=self.landmarks)
        return np.asarray(enc[0], dtype=np.float32), _box_info(box, n_faces)

    def extract_many(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, dict] | FeatureError]:
        """``(vector, info)`` per image, or the :class:`FeatureError` (e.g. NoFaceFound) it raised.

        With the torch engine, faces are found and aligned one image at a time
        in dlib and the aligned chips go through the network in one batch.
        """
        if not hasattr(self, "_fr"):
            self.prepare()
        if not hasattr(self, "_net"):
            results: list = []
            for image in images:
                try:
                    results.append(self.extract(image))
                except FeatureError as exc:
                    results.append(exc)
            return results
        results = [None] * len(images)
        chips, found = [], []
        for i, image in enumerate(images):
            try:
                box, n_faces = self.locate(image)
                if box is None:
                    raise NoFaceFound("no face found")
            except FeatureError as exc:
                results[i] = exc
                continue
            chips.append(dlib_resnet.face_chips(image, [box], landmarks=self.landmarks)[0])
            found.append((i, _box_info(box, n_faces)))
        if chips:
            for (i, info), vector in zip(found, self._net.encode(np.stack(chips))):
                results[i] = (vector, info)
        return results


def _box_info(box: tuple[int, int, int, int], n_faces: int) -> dict:
    top, right, bottom, left = box
    return {"face_found": n_faces > 0, "n_faces": n_faces, "face_top": top,
            "face_right": right, "face_bottom": bottom, "face_left": left}
