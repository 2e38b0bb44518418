"""Content hashes of image files, remembered by file identity, as git's index remembers blobs.

Hashing every file's bytes is what makes the feature cache trustworthy, and on a warm run it is
most of the work: about 8 s for the 140k faces. The index keeps, per absolute path, the hash
with the file's device, inode, size, modification time and change time when it was read. A file
whose five values are unchanged is not read again. A write through ``write()`` changes a file's
change time (which ``touch`` and ``os.utime`` cannot set back), so an edited, replaced or
re-permissioned file is hashed anew. As for git, one kind of write can go unseen: a second write
through a memory mapping to a page already dirty, which Linux does not time-stamp; and a network
file system may report another machine's edit late. ``encode --rehash`` reads every file.

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
from typing import Iterable

from embedlab.core.io import atomic_write
from embedlab.datasets.names import disk_path

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
    added or forgotten, merged with what other runs saved meanwhile. A missing, unreadable or
    malformed index is an empty one: the files are hashed, nothing fails. With ``trust=False``
    nothing is looked up, what is read is remembered, and entries of files that no longer exist
    are dropped: a rehash that also repairs the index. ``create_folder`` lets :meth:`save` create
    the index's folder (a run that writes a cache there anyway); otherwise it writes only into an
    existing one.
    """

    def __init__(self, path: str | os.PathLike, *, trust: bool = True, create_folder: bool = False):
        self.path = Path(path)
        self.trust = trust
        self.create_folder = create_folder
        self._entries: dict[str, tuple[tuple[int, ...], str]] | None = None
        self._added: dict[str, tuple[tuple[int, ...], str]] = {}
        self._forgotten: set[str] = set()

    def _read(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """The entries on disk, keeping only well-formed rows; empty if there is no readable index."""
        if not self.path.is_file():
            return {}
        try:
            import pyarrow.parquet as pq

            cols = pq.read_table(self.path, columns=["path", "hash", *_FIELDS]).to_pydict()
            rows = zip(cols["path"], cols["hash"], zip(*(cols[f] for f in _FIELDS)))
            return {p: (tuple(k), h) for p, h, k in rows
                    if isinstance(p, str) and isinstance(h, str) and all(type(v) is int for v in k)}
        except Exception as exc:  # a damaged index costs a rehash, never a failure
            log.debug("file hash index %s unreadable (%s); hashing every file", self.path, exc)
            return {}

    def _load(self) -> dict[str, tuple[tuple[int, ...], str]]:
        if self._entries is None:
            self._entries = self._read() if self.trust else {}
        return self._entries

    def __len__(self) -> int:
        return len(self._load())

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        """The remembered hash of ``path`` if its identity is unchanged, else None."""
        if not self.trust:
            return None
        entry = self._load().get(path)
        return entry[1] if entry is not None and entry[0] == identity(st) else None

    def remember(self, path: str, st: os.stat_result, content_hash: str, *, now_ns: int | None = None) -> None:
        """Keep ``content_hash`` for ``path``, read from the file ``st`` describes (taken before the read),
        unless that file changed too recently to be sure no write followed in the same tick."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        if now_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_SECONDS * 1e9:
            return
        entry = (identity(st), content_hash)
        if self._load().get(path) != entry:
            self._entries[path] = self._added[path] = entry
            self._forgotten.discard(path)

    def forget(self, paths: Iterable[str]) -> None:
        """Drop what is remembered of ``paths`` (absolute), for example files found to hold other
        bytes than their entry says: the next listing reads them."""
        entries = self._load()
        for path in paths:
            entries.pop(path, None)
            self._added.pop(path, None)
            self._forgotten.add(path)

    def save(self) -> None:
        """Write the index if anything changed; an index that cannot be written is left as it is."""
        if not self._added and not self._forgotten:
            return
        if not self.path.parent.is_dir():
            if not self.create_folder:
                return  # a command that only reads a cache never creates one
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                return
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            on_disk = self._read()  # what other runs saved meanwhile stays
            if not self.trust:
                on_disk = {p: e for p, e in on_disk.items() if os.path.lexists(disk_path(p))}
            entries = {p: e for p, e in on_disk.items() if p not in self._forgotten} | self._added
            paths = list(entries)
            columns = {"path": pa.array(paths, pa.string()),
                       "hash": pa.array([entries[p][1] for p in paths], pa.string())}
            for i, name in enumerate(_FIELDS):
                kind = pa.int64() if name.endswith("_ns") else pa.uint64()
                columns[name] = pa.array([entries[p][0][i] for p in paths], kind)
            atomic_write(self.path, lambda tmp: pq.write_table(pa.table(columns), tmp))
            self._entries, self._added, self._forgotten = entries, {}, set()
        except Exception as exc:
            log.debug("file hash index %s not written (%s)", self.path, exc)
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self, older_than_s: float = 3600) -> None:
        """Temporary files a killed save left beside the index."""
        try:
            for tmp in self.path.parent.glob(f".tmp-*-{self.path.name}"):
                if time.time() - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink()
        except OSError:
            pass
