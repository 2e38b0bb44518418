"""Where embedlab keeps what it makes, unless told otherwise: one place for every default path, and for
the defaults that help texts and the README state (the CLI's help is written from these)."""

from __future__ import annotations

from pathlib import Path

#: the small datasets bundled with the repository (what `embedlab demo` runs on)
SAMPLE_DATA_DIR = Path("data") / "sample"
#: everything embedlab makes, unless told otherwise
RESULTS_DIR = Path("results")
#: the feature cache (see :mod:`embedlab.compute.cache`)
DEFAULT_CACHE_DIR = RESULTS_DIR / "cache"
#: run folders (see :mod:`embedlab.runs`)
DEFAULT_RUNS_DIR = RESULTS_DIR / "runs"
#: face crops that network predictions make from portraits
DEFAULT_CROPS_DIR = RESULTS_DIR / "crops"
#: the HTML report (see :mod:`embedlab.report`)
DEFAULT_REPORT = RESULTS_DIR / "report.html"

#: the face detector an ``encoding`` spec that names none runs (``encoding`` = ``encoding[detector=hog]``)
DEFAULT_DETECTOR = "hog"
#: dataset layouts whose images are small, tight face crops (FER-2013's 48x48 faces): a face
#: detector misses most faces in them, so there a bare ``encoding`` (no detector named) means
#: ``encoding[detector=none]``, the whole image as the face. The 140k faces (256 px) are not among
#: them: the default detector finds their faces, and its landmark-aligned chip gives the better encoding
#: (an SVM on the 1,800 dev images scores test ROC AUC 0.955 with HOG, 0.862 with detector=none).
ALIGNED_FACE_LAYOUTS = ("fer2013-folders", "fer2013-csv")
