"""What a run records about where it came from: library versions, the data it saw, the command.

A run names each dataset it saw portably, so that a run folder can move to another machine:
its name, layout, file count and content fingerprint, and a path relative to a named base
(:data:`PATH_BASES`), never an absolute path of the machine that fitted it:

>>> record = data_record(pd.DataFrame({"image_id": ["a.jpg"], "hash": ["h"], "label": ["x"], "split": [None]}),
...                      "results/faces", "results/runs/svm")
>>> record["path"], record["relative_to"], record["n_images"]
('../../faces', 'run', 1)
>>> str(located(record, "results/runs/svm"))
'results/faces'
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable

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


#: the folder that holds the embedlab package: a source checkout's root, where shipped runs find their data
REPOSITORY = Path(__file__).resolve().parents[2]
#: what a run's recorded data paths are relative to: ``run``, the run folder (runs that ``fit`` writes), or
#: ``repository`` (:data:`REPOSITORY`; the runs shipped in ``embedlab/pretrained/``, trained from a checkout)
PATH_BASES = ("run", "repository")


def path_base(relative_to: str, run_folder: str | os.PathLike) -> Path:
    """The folder a recorded path named ``relative_to`` (one of :data:`PATH_BASES`) starts from."""
    return Path(run_folder) if relative_to == "run" else REPOSITORY


def portable_path(path: str | os.PathLike, run_folder: str | os.PathLike, relative_to: str = "run") -> str:
    """``path`` relative to ``run_folder`` (or to the repository), with ``/`` between its parts."""
    start = os.path.abspath(path_base(relative_to, run_folder))
    return Path(os.path.relpath(os.path.abspath(path), start)).as_posix()


def data_record(table: pd.DataFrame, path: str | os.PathLike | None, run_folder: str | os.PathLike) -> dict:
    """How a run names a dataset it saw: ``name``, ``layout``, ``n_images``, ``fingerprint`` and ``path``
    (relative to the run folder, ``relative_to: run``; None for a table given in memory)."""
    name = table.attrs.get("name") or (Path(str(path)).stem if path else None)
    return {"name": name, "layout": table.attrs.get("layout"), "n_images": int(len(table)),
            "fingerprint": data_fingerprint(table),
            "path": portable_path(path, run_folder) if path else None, "relative_to": "run"}


def located(record: Any, run_folder: str | os.PathLike) -> Path | None:
    """Where a recorded dataset is now: its ``path`` joined to its base (see :data:`PATH_BASES`).

    A record of an older run, a bare path (absolute, or relative to where it was fitted), is taken
    as it is; no path (a table given in memory) is None.
    """
    if isinstance(record, str):
        return Path(record) if record else None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str) or not record["path"]:
        return None
    path = Path(record["path"])
    if path.is_absolute() or record.get("relative_to") not in PATH_BASES:
        return path
    return Path(os.path.normpath(path_base(record["relative_to"], run_folder) / path))


def rebased(record: Any, run_folder: str | os.PathLike, relative_to: str = "repository") -> Any:
    """``record`` (a data record, or an older run's bare path) with its path relative to another base:
    a run folder about to move (shipped into ``embedlab/pretrained/``) keeps finding its data."""
    path = located(record, run_folder)
    if path is None:
        return record
    out = dict(record) if isinstance(record, dict) else {"name": path.stem}
    out.update(path=portable_path(path, run_folder, relative_to), relative_to=relative_to)
    return out


def run_datasets(params: dict[str, Any], run_folder: str | os.PathLike) -> dict[str, Path]:
    """The datasets a run names (``data``, then each of ``eval_on``) where they are now, by name;
    runs of every version (records, or the bare paths older runs wrote)."""
    records = [params.get("data")] + list(params.get("eval_on") or [])
    out: dict[str, Path] = {}
    for record in records:
        path = located(record, run_folder)
        if path is not None:
            name = record.get("name") if isinstance(record, dict) else None
            out.setdefault(str(name or path.stem), path)
    return out


def command_line() -> str:
    """The command this process was started with, quoted for a shell."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def utc_now() -> str:
    """The time a run was created, ISO 8601 in UTC to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
