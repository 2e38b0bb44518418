"""Loading face_recognition and its dlib model files, with errors that say how to fix them.

face_recognition loads dlib's models when imported and quits the interpreter
when its models package is missing; both become a :class:`FeatureError` here.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from pathlib import Path

from embedlab.core.errors import FeatureError

#: dlib's HOG frontal face detector as ``dlib.get_frontal_face_detector().save(path)`` writes it
#: (dlib's own data, under dlib's Boost Software License): read from this file in a millisecond,
#: the same detector that ``get_frontal_face_detector`` rebuilds from dlib's embedded copy in 0.4-0.8 s
FRONTAL_DETECTOR_FILE = Path(__file__).with_name("frontal_face_detector.svm")
#: SHA-256 of those bytes (checked with dlib 20.0; a test compares them with what the installed dlib saves)
FRONTAL_DETECTOR_SHA256 = "f3f7aa833fb4a14a46fc48689f45b98d85ef72d6dfaf8bdc012b7d3c522a5426"


def import_face_recognition():
    """The ``face_recognition`` module, or a FeatureError that says how to install it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation from the models package
            import face_recognition_models  # noqa: F401
            import face_recognition
    except ImportError as exc:
        raise FeatureError(
            "feature 'encoding' needs face_recognition and dlib: run `make env`, or "
            "pip install dlib-bin face_recognition_models 'setuptools<81' && "
            f"pip install --no-deps face_recognition ({exc})"
        ) from None
    except SystemExit:  # face_recognition quits when its models package fails to import
        raise FeatureError(
            "face_recognition could not load face_recognition_models; it needs setuptools<81 "
            "(pkg_resources) in the environment"
        ) from None
    except RuntimeError as exc:  # dlib loads the model files at import time
        raise FeatureError(f"face_recognition could not load a dlib model file; reinstall "
                           f"face_recognition_models ({exc})") from None
    return face_recognition


def import_face_recognition_models():
    """The ``face_recognition_models`` module (paths of dlib's model files)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation from the models package
            import face_recognition_models
    except ImportError as exc:
        raise FeatureError(f"dlib's face recognition models come with face_recognition_models; "
                           f"pip install face_recognition_models ({exc})") from None
    return face_recognition_models


# face_recognition loads five dlib models when it is imported (about a second, most of it the
# 68-point landmark model and the descriptor network). Finding a face with HOG and cutting its
# chip need two of them; these functions do what face_recognition's do with only those, loaded
# on first use, so that predicting on one photo does not wait for the others.
#: face_recognition_models' landmark model files, by face_recognition's ``model`` names
LANDMARK_FILES = {"small": "shape_predictor_5_face_landmarks.dat", "large": "shape_predictor_68_face_landmarks.dat"}


def models_folder():
    """face_recognition_models' ``models`` folder, found without importing it (it imports pkg_resources)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        import_face_recognition_models()  # raises the FeatureError that says how to install it
    return Path(list(spec.submodule_search_locations)[0]) / "models"


_LOADED: dict = {}


def _dlib_model(name: str):
    if name not in _LOADED:
        try:
            import dlib
        except ImportError as exc:
            raise FeatureError(f"finding faces needs dlib: run `make env`, or pip install dlib-bin ({exc})") from None
        if name == "hog":
            _LOADED[name] = frontal_face_detector()
        else:
            path = models_folder() / LANDMARK_FILES[name]
            try:
                _LOADED[name] = dlib.shape_predictor(str(path))
            except RuntimeError as exc:
                raise FeatureError(f"{path}: dlib cannot load this landmark model; reinstall "
                                   f"face_recognition_models ({exc})") from None
    return _LOADED[name]


def frontal_face_detector():
    """``dlib.get_frontal_face_detector()``, read from :data:`FRONTAL_DETECTOR_FILE` when that file holds
    the expected bytes (else built by dlib as usual)."""
    import dlib

    try:
        data = FRONTAL_DETECTOR_FILE.read_bytes()
        if hashlib.sha256(data).hexdigest() == FRONTAL_DETECTOR_SHA256:
            return dlib.fhog_object_detector(str(FRONTAL_DETECTOR_FILE))
    except (OSError, RuntimeError):  # missing or unreadable: dlib's own copy is the same detector
        pass
    return dlib.get_frontal_face_detector()


#: the last few images' HOG detections, by content: a stacked detector's components look for the
#: faces of the same photo one after the other (a third of a second each for a 1024 px photo)
_RECENT_DETECTIONS: OrderedDict[tuple, list] = OrderedDict()
RECENT_DETECTIONS_KEPT = 8


def hog_face_locations(image, upsample: int = 1) -> list[tuple[int, int, int, int]]:
    """``face_recognition.face_locations(image, upsample, model="hog")``: (top, right, bottom, left) boxes,
    clipped to the image."""
    import numpy as np

    image = np.ascontiguousarray(image)
    key = (image.shape, image.dtype.str, upsample, hashlib.blake2b(image.data, digest_size=16).digest())
    if key in _RECENT_DETECTIONS:
        _RECENT_DETECTIONS.move_to_end(key)
        return list(_RECENT_DETECTIONS[key])
    h, w = image.shape[:2]
    boxes = [(max(r.top(), 0), min(r.right(), w), min(r.bottom(), h), max(r.left(), 0))
             for r in _dlib_model("hog")(image, upsample)]
    _RECENT_DETECTIONS[key] = boxes
    while len(_RECENT_DETECTIONS) > RECENT_DETECTIONS_KEPT:
        _RECENT_DETECTIONS.popitem(last=False)
    return list(boxes)


def face_landmarks(image, boxes, model: str = "small") -> list:
    """dlib's landmark detections of the faces in ``boxes`` (top, right, bottom, left), as
    face_recognition computes them before it cuts a face's chip (``_raw_face_landmarks``)."""
    import dlib

    predictor = _dlib_model(model)
    return [predictor(image, dlib.rectangle(b[3], b[0], b[1], b[2])) for b in boxes]
