"""Files written whole or not at all, JSON that takes numpy values, and content digests.

Every file embedlab writes goes to a temporary name beside its target and is
moved into place with ``os.replace``: a reader never sees a half-written file,
and a process killed mid-write leaves the old file (or none) behind.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "a.json"
>>> write_json(path, {"n": np.int64(3)})
>>> path.read_text()
'{\\n  "n": 3\\n}'
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from embedlab.core.errors import UsageError


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, fsync: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it into place.

    ``fsync`` flushes the data to disk first, for files that must survive a power cut
    (the feature cache). The temporary file is removed when ``write`` fails.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_output_file(path: str | os.PathLike) -> Path:
    """An output file's path, checked before any work: not a folder, in a folder that is (or can be made)
    writable; else a UsageError naming it.

    >>> check_output_file("/proc/no/such/r.html")
    Traceback (most recent call last):
    ...
    embedlab.core.errors.UsageError: /proc/no/such/r.html: cannot write there (No such file or directory)
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give the name of the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: cannot write there (the folder {path.parent} is not writable)")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_default(value: Any) -> Any:
    """What ``json.dumps`` cannot write itself: numpy scalars and arrays, paths, tuples; else ``str``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (numpy's too) replaced by None, as strict JSON has no NaN.

    >>> finite({"auc": float("nan"), "n": [1.0, np.float32("inf")]})
    {'auc': None, 'n': [1.0, None]}
    """
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def to_json(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON (``null`` for NaN and infinities) that any parser reads."""
    return json.dumps(finite(obj), indent=indent, sort_keys=sort_keys, default=json_default, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = False, fsync: bool = False) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = to_json(obj, sort_keys=sort_keys)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


@lru_cache(maxsize=None)
def file_digest(path: str) -> str:
    """The first 16 hex digits of a file's SHA-256: model files are identified by content."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
