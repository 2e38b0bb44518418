"""Loading face_recognition and its dlib model files, with errors that say how to fix them.

face_recognition loads dlib's models when imported and quits the interpreter
when its models package is missing; both become a :class:`FeatureError` here.
"""

from __future__ import annotations

import warnings

from embedlab.core.errors import FeatureError


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
