"""dlib's 128-d face descriptor, through face_recognition."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from embedlab.core.defaults import DEFAULT_DETECTOR
from embedlab.core.errors import FeatureError, NoFaceFound
from embedlab.core.io import file_digest
from embedlab.features import dlib_hog, dlib_mmod, dlib_resnet
from embedlab.features.base import EXTRACTORS, FeatureExtractor, check_choice
from embedlab.features.facerec import hog_face_locations, import_face_recognition, import_face_recognition_models

DETECTORS = ("hog", "cnn", "none")
LANDMARKS = ("small", "large")
ON_MISSING = ("skip", "whole")
ENGINES = ("torch", "dlib")
DETECTOR_ENGINES = ("auto", "torch", "dlib")


#: the dlib model files face_recognition uses, in face_recognition_models' ``models`` folder
MODEL_FILES = {
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks_large": "shape_predictor_68_face_landmarks.dat",
    "landmarks_small": "shape_predictor_5_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}


def model_files() -> dict[str, str]:
    """Paths of the dlib model files face_recognition uses.

    Found without importing face_recognition (which loads every model) or
    face_recognition_models (which imports pkg_resources): a warm run needs
    only the files' digests.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        import_face_recognition_models()  # raises the FeatureError that says how to install it
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return {kind: str(folder / name) for kind, name in MODEL_FILES.items()}


def largest_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The (top, right, bottom, left) box of largest area."""
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))


@EXTRACTORS.register("encoding")
class FaceEncoding(FeatureExtractor):
    """dlib's 128-d face descriptor (face_recognition.face_encodings).

    detector: ``hog`` or ``cnn`` to find the face, ``none`` to take the whole
    image as the face (for aligned crops such as the 140k faces).
    upsample: how many times to upsample the image when looking for faces;
    ``auto`` looks without upsampling first and upsamples once only the images
    where no face was found (faster, and its own cache entry).
    landmarks: ``small`` (5 points) or ``large`` (68 points) landmark model.
    jitters: how many jittered copies to average (slower, a little steadier).
    on_missing: when no face is found, ``skip`` the image (recorded as such)
    or fall back to the ``whole`` image. With several faces, the largest wins.
    engine: ``torch`` runs dlib's descriptor network in PyTorch, in batches
    (checked against dlib's when loaded; see :mod:`embedlab.features.dlib_resnet`),
    ``dlib`` runs it in dlib. Both give the same encodings (within 1e-4), so
    they share cache entries. jitters > 1 always uses dlib. With ``detector=cnn``
    the torch engine also finds the faces in PyTorch, in batches
    (dlib's MMOD detector, :mod:`embedlab.features.dlib_mmod`); its boxes match
    dlib's but a face right at the detection threshold may come or go, so the
    two engines keep separate cache entries then.
    detector_engine: who finds the faces: ``auto`` (the torch engine's choice
    above for ``cnn``; dlib for ``hog``), ``torch`` or ``dlib``. ``torch`` with
    ``hog`` runs dlib's HOG detector in PyTorch (:mod:`embedlab.features.dlib_hog`):
    dlib's faces, boxes and scores on the 1,800 real/fake images, but slower than
    dlib's own on the CPU (``bench/hog.py``), hence not the default. Faces found in
    PyTorch have their own cache entries.
    device: where the torch engine runs: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    name = "encoding"
    version = "1"
    primary_param = "detector"
    info_columns = {"face_found": "bool", "n_faces": "int16", "face_top": "int32",
                    "face_right": "int32", "face_bottom": "int32", "face_left": "int32"}

    def __init__(self, detector: str = DEFAULT_DETECTOR, upsample: int | str = 1, landmarks: str = "small",
                 jitters: int = 1, on_missing: str = "skip", engine: str = "torch", device: str = "auto",
                 detector_engine: str = "auto"):
        self.detector = detector
        self.upsample = upsample
        self.landmarks = landmarks
        self.jitters = jitters
        self.on_missing = on_missing
        self.engine = engine
        self.device = device
        self.detector_engine = detector_engine

    def validate(self) -> None:
        check_choice(self, "detector", DETECTORS)
        check_choice(self, "landmarks", LANDMARKS)
        check_choice(self, "on_missing", ON_MISSING)
        check_choice(self, "engine", ENGINES)
        check_choice(self, "device", ("auto", "cpu", "cuda"))
        check_choice(self, "detector_engine", DETECTOR_ENGINES)
        for p, lo in (("upsample", 0), ("jitters", 1)):
            v = getattr(self, p)
            if p == "upsample" and v == "auto":
                continue
            if not isinstance(v, int) or v < lo:
                allowed = f"an integer >= {lo}" + (" or auto" if p == "upsample" else "")
                raise FeatureError(f"feature 'encoding': {p} must be {allowed}, got {v!r}")

    def cache_params(self):
        params = self.get_params()
        params.pop("engine")  # the engines agree within 1e-4 (tests/test_dlib_resnet.py): one cache
        params.pop("device")
        params.pop("detector_engine")
        if self.finds_faces_with() == "torch":
            params["detector_engine"] = "torch"  # its own entries: a face at dlib's threshold may differ
        if self.detector == "none":  # these do not change the output then
            params.pop("upsample")
            params.pop("on_missing")
        return params

    def fingerprint(self):
        files = model_files()
        used = [files["recognition"], files[f"landmarks_{self.landmarks}"]]
        if self.detector == "cnn":
            used.append(files["cnn_detector"])
        digests = {Path(p).name: file_digest(p) for p in used}
        if self.detector == "hog" and self.finds_faces_with() == "torch":
            digests["frontal_face_detector.svm"] = dlib_hog.OFFICIAL_SHA256  # checked when it loads
        return digests

    @property
    def dim(self) -> int:
        return 128

    def finds_faces_with(self) -> str | None:
        """``torch`` or ``dlib``: who runs the face detector (None with ``detector=none``)."""
        if self.detector == "none":
            return None
        if self.detector_engine != "auto":
            return self.detector_engine
        return self.engine if self.detector == "cnn" else "dlib"

    def prepare(self) -> None:
        threads = os.environ.get("OMP_NUM_THREADS")  # set per worker process by embedlab.encode
        uses_torch = (self.engine == "torch" and self.jitters == 1) or self.finds_faces_with() == "torch"
        if uses_torch and threads:
            import torch

            torch.set_num_threads(int(threads))
        if self.engine == "torch" and self.jitters == 1 and not hasattr(self, "_net"):
            self._net = dlib_resnet.load_descriptor_net(device=self.device)
            dlib_resnet.check_against_dlib(self._net)
        if self.finds_faces_with() == "torch" and not hasattr(self, "_detector"):
            if self.detector == "cnn":
                self._detector = dlib_mmod.load_face_detector(device=self.device)
            else:
                self._detector = dlib_hog.load_face_detector(device=dlib_resnet.resolve_device(self.device))
        if self.engine != "torch" or self.jitters != 1 or (self.detector == "cnn"
                                                           and self.finds_faces_with() == "dlib"):
            self._fr = import_face_recognition()  # dlib's own encoder, jittering or CNN detector
        # face_recognition loads five dlib models on import (1.7 s per worker process); the HOG
        # detector and the landmarks come from facerec instead, the same dlib objects, loaded alone
        self._prepared = True

    def locate(self, image: np.ndarray) -> tuple[tuple[int, int, int, int] | None, int]:
        """The face box to encode (or None) and how many faces were found."""
        return self.locate_many([image])[0]

    def locate_many(self, images: list[np.ndarray]) -> list:
        """``(box, n_faces)`` per image (box None when no face was found), or the FeatureError it raised.

        Boxes are face_recognition's ``(top, right, bottom, left)``, clipped to the image.
        """
        if self.detector == "none":
            return [((0, im.shape[1], im.shape[0], 0), 1) for im in images]
        if not getattr(self, "_prepared", False):
            self.prepare()
        found = self._detect(images, 0 if self.upsample == "auto" else self.upsample)
        if self.upsample == "auto":  # upsample only the images where nothing was found
            again = [i for i, boxes in enumerate(found) if not isinstance(boxes, Exception) and not boxes]
            for i, boxes in zip(again, self._detect([images[i] for i in again], 1)):
                found[i] = boxes
        return [boxes if isinstance(boxes, Exception) else self._pick(im, boxes) for im, boxes in zip(images, found)]

    def _detect(self, images: list[np.ndarray], upsample: int) -> list:
        """The face boxes found in each image (or the FeatureError raised), in face_recognition's form."""
        if not images:
            return []
        if hasattr(self, "_detector"):
            return [[_css(box, im.shape) for box in boxes]
                    for im, boxes in zip(images, self._detector.detect(images, upsample=upsample))]
        found: list = []
        for image in images:
            try:
                found.append(hog_face_locations(image, upsample) if self.detector == "hog" else
                             self._fr.face_locations(image, number_of_times_to_upsample=upsample, model=self.detector))
            except FeatureError as exc:
                found.append(exc)
        return found

    def _pick(self, image: np.ndarray, boxes: list) -> tuple[tuple[int, int, int, int] | None, int]:
        if boxes:
            return largest_box(boxes), len(boxes)
        h, w = image.shape[:2]
        return ((0, w, h, 0) if self.on_missing == "whole" else None), 0

    def extract(self, image):
        result = self.extract_many([image])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def extract_many(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, dict] | FeatureError]:
        """``(vector, info)`` per image, or the :class:`FeatureError` (e.g. NoFaceFound) it raised.

        With the torch engine the aligned chips of all images go through the
        network in one batch (and with ``detector=cnn`` the images through
        the detector); landmarks and alignment stay in dlib.
        """
        if not getattr(self, "_prepared", False):
            self.prepare()
        results: list = [None] * len(images)
        chips, found = [], []
        for i, (image, located) in enumerate(zip(images, self.locate_many(images))):
            if isinstance(located, Exception):
                results[i] = located
                continue
            box, n_faces = located
            if box is None:
                results[i] = NoFaceFound("no face found")
            elif hasattr(self, "_net"):
                chips.append(dlib_resnet.face_chips(image, [box], landmarks=self.landmarks)[0])
                found.append((i, _box_info(box, n_faces)))
            else:
                enc = self._fr.face_encodings(image, known_face_locations=[box],
                                              num_jitters=self.jitters, model=self.landmarks)
                results[i] = (np.asarray(enc[0], dtype=np.float32), _box_info(box, n_faces))
        if chips:
            for (i, info), vector in zip(found, self._net.encode(np.stack(chips))):
                results[i] = (vector, info)
        return results


def _css(box: tuple, shape: tuple) -> tuple[int, int, int, int]:
    """dlib's (left, top, right, bottom, ...) -> face_recognition's (top, right, bottom, left), clipped as it clips."""
    left, top, right, bottom = box[:4]
    return max(top, 0), min(right, shape[1]), min(bottom, shape[0]), max(left, 0)


def _box_info(box: tuple[int, int, int, int], n_faces: int) -> dict:
    top, right, bottom, left = box
    return {"face_found": n_faces > 0, "n_faces": n_faces, "face_top": top,
            "face_right": right, "face_bottom": bottom, "face_left": left}
