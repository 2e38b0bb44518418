"""What a run records about where it came from: library versions, the data it saw, the command."""

from __future__ import annotations

import hashlib
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from importlib.metadata import PackageNotFoundError, version
from typing import Iterable

import pandas as pd

#: Packages whose versions a run records.
VERSIONED = ("embedlab", "numpy", "pandas", "scikit-learn", "scipy", "xgboost", "skops", "dlib-bin",
             "face_recognition", "face_recognition_models", "torch")


def library_versions(packages: Iterable[str] = VERSIONED) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def data_fingerprint(table: pd.DataFrame) -> str:
    """A digest of which images, with which labels and splits, a model saw."""
    cols = [table[c].map(str).tolist() for c in ("image_id", "hash", "label", "split")]
    lines = sorted("\t".join(parts) for parts in zip(*cols))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]




def command_line() -> str:
    """The command this process was started with, quoted for a shell."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def utc_now() -> str:
    """The time a run was created, ISO 8601 in UTC to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
