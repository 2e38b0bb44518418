"""An on-disk feature cache that survives crashes and concurrent runs.

Layout, one folder per extractor key (see ``FeatureExtractor.key``)::

    results/cache/<key>/meta.json        what the extractor was, and its parameters
    results/cache/<key>/part-*.parquet   rows: hash, ok, reason, error, vector, info...

Rows are keyed by image *content* hash, never by path. Every part is written
to a temporary name and moved into place with ``os.replace``, so a reader
never sees a half-written part and a run killed at any moment loses at most
the chunk it was computing. Parts are only ever added, and readers keep the
first row per hash, so two runs writing at once cannot corrupt the cache;
``compact`` merges parts under a lock.

>>> import tempfile, numpy as np
>>> cache = FeatureCache(tempfile.mkdtemp())
>>> part = cache.append("demo-1", [{"hash": "ab", "ok": True, "vector": np.ones(2, np.float32)}], dim=2)
>>> bool(cache.read("demo-1").loc["ab", "ok"])
True
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from embedlab.core.defaults import DEFAULT_CACHE_DIR
from embedlab.core.errors import CacheError
from embedlab.core.io import atomic_write, atomic_write_bytes
from embedlab.datasets.hash_index import INDEX_NAME, FileHashIndex

BASE_FIELDS = [("hash", pa.string()), ("ok", pa.bool_()), ("reason", pa.string()), ("error", pa.string())]
#: merge a key's parts into one once it has more than this many
COMPACT_AFTER = 32


class FeatureCache:
    """Feature rows per extractor key, stored as Parquet parts under ``root``."""

    def __init__(self, root: str | os.PathLike = DEFAULT_CACHE_DIR):
        self.root = Path(root)

    # -- layout -----------------------------------------------------------
    def entry(self, key: str) -> Path:
        return self.root / key

    def parts(self, key: str) -> list[Path]:
        folder = self.entry(key)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("part-*.parquet"))

    def new_part(self, key: str) -> Path:
        """A fresh part name: time-ordered, unique across processes."""
        return self.entry(key) / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"

    def file_index(self, *, trust: bool = True, for_writing: bool = False) -> FileHashIndex:
        """The content hashes of the image files this cache has seen, by file identity (see
        :mod:`embedlab.datasets.hash_index`): a warm run reads no image file it remembers unchanged.

        ``trust=False`` reads every file and repairs the index; ``for_writing`` (a run that computes
        features) lets the index create the cache folder, so that a first run saves it too.
        """
        return FileHashIndex(self.root / INDEX_NAME, trust=trust, create_folder=for_writing)

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "meta.json").is_file())

    def meta(self, key: str) -> dict[str, Any]:
        path = self.entry(key) / "meta.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise CacheError(f"{path}: no such cache entry") from None
        except (OSError, ValueError) as exc:
            raise CacheError(f"{path}: unreadable cache metadata ({exc})") from None

    def write_meta(self, key: str, meta: dict[str, Any]) -> None:
        folder = self.entry(key)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "meta.json"
        if not path.exists():
            atomic_write_bytes(path, json.dumps(meta, indent=2, sort_keys=True, default=str).encode())

    # -- writing ----------------------------------------------------------
    def schema(self, dim: int, info_columns: dict[str, str] | None = None) -> pa.Schema:
        fields = [pa.field(n, t) for n, t in BASE_FIELDS]
        fields.append(pa.field("vector", pa.list_(pa.float32(), dim)))
        for name, dtype in (info_columns or {}).items():
            fields.append(pa.field(name, pa.from_numpy_dtype(np.dtype(dtype))))
        return pa.schema(fields)

    def append(self, key: str, rows: list[dict[str, Any]], dim: int,
               info_columns: dict[str, str] | None = None) -> Path | None:
        """Commit rows atomically as one new part; returns its path."""
        if not rows:
            return None
        schema = self.schema(dim, info_columns)
        columns: dict[str, list] = {f.name: [] for f in schema}
        for row in rows:
            for name in columns:
                value = row.get(name)
                if name == "vector" and value is not None:
                    value = np.asarray(value, dtype=np.float32)
                    if value.shape != (dim,):
                        raise CacheError(f"cache {key}: vector of shape {value.shape}, expected ({dim},)")
                columns[name].append(value)
        table = pa.table(columns, schema=schema)
        folder = self.entry(key)
        folder.mkdir(parents=True, exist_ok=True)
        return atomic_write(self.new_part(key), lambda tmp: pq.write_table(table, tmp), fsync=True)

    # -- reading ----------------------------------------------------------
    def read_table(self, key: str, columns: list[str] | None = None) -> pa.Table | None:
        """Every part of ``key`` as one Arrow table (None when it has none), rows as written."""
        for attempt in range(5):
            tables = []
            try:
                for part in self.parts(key):
                    tables.append(pq.read_table(part, columns=columns))
            except FileNotFoundError:  # a concurrent compaction removed a part: list again
                time.sleep(0.05 * (attempt + 1))
                continue
            except (OSError, pa.ArrowException) as exc:
                raise CacheError(f"cache entry {self.entry(key)}: unreadable part ({exc})") from None
            if not tables:
                return None
            return pa.concat_tables(tables, promote_options="default")
        raise CacheError(f"cache entry {self.entry(key)}: parts kept changing while reading")

    def known_hashes(self, key: str) -> set[str]:
        table = self.read_table(key, columns=["hash"])
        return set() if table is None else set(table.column("hash").to_pylist())

    def read(self, key: str, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """Rows indexed by content hash (first row per hash wins); ``vector`` as arrays."""
        table = self.read_table(key)
        if table is None:
            return pd.DataFrame(columns=[n for n, _ in BASE_FIELDS] + ["vector"]).set_index("hash")
        dim = table.schema.field("vector").type.list_size
        flat = table.column("vector").combine_chunks()
        valid = np.asarray(flat.is_valid())
        values = np.asarray(flat.flatten(), dtype=np.float32)
        matrix = np.full((len(table), dim), np.nan, dtype=np.float32)
        matrix[valid] = values.reshape(-1, dim)
        df = table.drop(["vector"]).to_pandas()
        df["vector"] = [row if ok else None for row, ok in zip(matrix, valid)]
        df = df.drop_duplicates("hash", keep="first").set_index("hash")
        if hashes is not None:
            df = df.loc[df.index.intersection(pd.Index(list(hashes)))]
        return df

    # -- housekeeping -----------------------------------------------------
    @contextmanager
    def _lock(self, key: str, blocking: bool = False) -> Iterator[bool]:
        folder = self.entry(key)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def compact(self, key: str, min_parts: int = COMPACT_AFTER) -> bool:
        """Merge a key's parts into one (deduplicated); skipped if another run holds the lock."""
        with self._lock(key) as locked:
            if not locked:
                return False
            parts = self.parts(key)
            if len(parts) <= max(min_parts, 1):
                return False
            tables = [pq.read_table(p) for p in parts]
            merged = pa.concat_tables(tables, promote_options="default")
            hashes = merged.column("hash").to_numpy(zero_copy_only=False)
            _, first = np.unique(hashes, return_index=True)
            merged = merged.take(pa.array(np.sort(first)))
            atomic_write(self.new_part(key), lambda tmp: pq.write_table(merged, tmp))
            for p in parts:
                p.unlink(missing_ok=True)
            self._remove_stale_temporaries(key)
            return True

    def _remove_stale_temporaries(self, key: str, older_than_s: float = 3600) -> None:
        now = time.time()
        for tmp in self.entry(key).glob(".tmp-*"):
            try:
                if now - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink()
            except FileNotFoundError:
                pass

    def summary(self) -> pd.DataFrame:
        """One row per cache entry: key, extractor, parameters, rows, failures, size."""
        rows = []
        for key in self.keys():
            meta = self.meta(key)
            table = self.read_table(key, columns=["hash", "ok"])
            n = 0 if table is None else len(set(table.column("hash").to_pylist()))
            failed = 0 if table is None else int((~np.asarray(table.column("ok"))).sum())
            size = sum(p.stat().st_size for p in self.parts(key))
            rows.append({"key": key, "feature": meta.get("name"), "params": meta.get("params"),
                         "images": n, "failed": failed, "bytes": size})
        return pd.DataFrame(rows)
