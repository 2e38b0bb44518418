"""Content hashes of image files, remembered by file identity, as git's index remembers blobs.

Hashing every file's bytes is what makes the feature cache trustworthy, and on a warm run it is
most of the work: about 8 s for the 140k faces. The index keeps, per absolute path, the hash
with the file's device, inode, size, modification time and change time when it was read. A file
whose five values are unchanged is not read again. Any write to a file changes its change time
(which ``touch`` and ``os.utime`` cannot set back), so an edited, replaced or re-permissioned
file is always hashed anew.

Files changed within :data:`RACY_SECONDS` of being hashed are not remembered: a write in the same
timestamp tick as the read would otherwise go unseen (git's "racily clean" entries).

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> image = folder / "face.jpg"; _ = image.write_bytes(b"...")
>>> index = FileHashIndex(folder / INDEX_NAME)
>>> index.remember(str(image), os.stat(image), "4f1c", now_ns=time.time_ns() + 10**10)
>>> index.save(); FileHashIndex(folder / INDEX_NAME).lookup(str(image), os.stat(image))
'4f1c'
>>> _ = image.write_bytes(b"..!"); FileHashIndex(folder / INDEX_NAME).lookup(str(image), os.stat(image)) is None
True
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from embedlab.core.io import atomic_write

#: a file changed this recently when it was hashed is hashed again next time
RACY_SECONDS = 2.0
#: the index's name inside a feature cache folder
INDEX_NAME = "file-hashes.parquet"
_FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns")

log = logging.getLogger("embedlab")


def identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What must be unchanged for a remembered hash to stand."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class FileHashIndex:
    """Path -> content hash, trusted while the file's identity (:func:`identity`) is unchanged.

    Read once, on the first lookup; :meth:`save` writes it back atomically when something was
    added. A missing or unreadable index is an empty one: the files are hashed, nothing fails.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._entries: dict[str, tuple[tuple[int, ...], str]] | None = None
        self._added = 0

    def _load(self) -> dict[str, tuple[tuple[int, ...], str]]:
        if self._entries is None:
            self._entries = {}
            if self.path.is_file():
                try:
                    import pyarrow.parquet as pq

                    cols = pq.read_table(self.path).to_pydict()
                    keys = zip(*(cols[f] for f in _FIELDS))
                    self._entries = {p: (tuple(k), h) for p, k, h in zip(cols["path"], keys, cols["hash"])}
                except Exception as exc:  # a damaged index costs a rehash, never a failure
                    log.debug("file hash index %s unreadable (%s); hashing every file", self.path, exc)
        return self._entries

    def __len__(self) -> int:
        return len(self._load())

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        """The remembered hash of ``path`` if its identity is unchanged, else None."""
        entry = self._load().get(path)
        return entry[1] if entry is not None and entry[0] == identity(st) else None

    def remember(self, path: str, st: os.stat_result, content_hash: str, *, now_ns: int | None = None) -> None:
        """Keep ``content_hash`` for ``path``, as read after ``st`` was taken (unless changed too recently)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if now_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_SECONDS * 1e9:
            return
        key = identity(st)
        entries = self._load()
        if entries.get(path) != (key, content_hash):
            entries[path] = (key, content_hash)
            self._added += 1

    def save(self) -> None:
        """Write the index if anything was added; a cache folder that cannot be written is left alone."""
        if not self._added:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        entries = self._load()
        paths = list(entries)
        columns = {"path": paths, "hash": [entries[p][1] for p in paths]}
        for i, name in enumerate(_FIELDS):
            columns[name] = pa.array([entries[p][0][i] for p in paths], pa.int64())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda tmp: pq.write_table(pa.table(columns), tmp))
            self._added = 0
        except OSError as exc:
            log.debug("file hash index %s not written (%s)", self.path, exc)
