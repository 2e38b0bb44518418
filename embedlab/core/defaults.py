"""Where embedlab keeps what it makes, unless told otherwise: one place for every default path."""

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
