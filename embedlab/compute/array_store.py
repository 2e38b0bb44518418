"""Arrays per image, keyed by the image's content: for results too large for the feature cache's rows.

The feature cache (:mod:`embedlab.compute.cache`) reads a key's rows whole, which suits
vectors of a few hundred values; a network's 150x150x3 input is 67,500 values per image, and a
photo's faces are a variable number of crops. Such results live here instead, one ``.npz`` file
per image content hash::

    <root>/<key>/meta.json              what made the arrays, as the feature cache writes it
    <root>/<key>/<hh>/<hash>.npz        the arrays of one image (hh: the hash's first two digits)

Each file is written to a temporary name and moved into place, so a reader never sees half of
one; a damaged file reads as missing and is computed again.

>>> import tempfile, numpy as np
>>> store = ArrayStore(tempfile.mkdtemp(), "demo-1")
>>> store.put("ab12", {"input": np.ones((2, 2), np.uint8)})
>>> store.get("ab12")["input"].sum(), store.get("cd34")
(np.uint64(4), None)
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.core.io import atomic_write, atomic_write_bytes


class ArrayStore:
    """Named arrays per image content hash under ``root/key``."""

    def __init__(self, root: str | os.PathLike, key: str):
        self.folder = Path(root) / key

    def path(self, content: str) -> Path:
        return self.folder / content[:2] / f"{content}.npz"

    def write_meta(self, meta: dict[str, Any]) -> None:
        path = self.folder / "meta.json"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(meta, indent=2, sort_keys=True, default=str).encode())

    def get(self, content: str) -> dict[str, np.ndarray] | None:
        """The arrays stored for ``content``, or None when there are none (or they are damaged)."""
        try:
            with np.load(self.path(content), allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None  # damaged: computed again, and overwritten

    def put(self, content: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.path(content)
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would add ".npz" to a temporary name
                np.savez(fh, **arrays)

        atomic_write(path, write)
