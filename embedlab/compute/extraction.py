"""Computing features for a dataset, in parallel, through the cache.

>>> import embedlab, tempfile
>>> df = embedlab.encode("data/sample/fer2013", "pixels[size=8]", workers=1,
...                      cache_dir=tempfile.mkdtemp())
>>> df["pixels"].iloc[0].shape, df.attrs["summary"]["features"]["pixels"]["computed"]
((64,), 70)
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab import datasets
from embedlab.compute.cache import FeatureCache
from embedlab.compute.distributed import run_chunks
from embedlab.compute.workers import Task, extract_chunk, init_worker
from embedlab.core.defaults import DEFAULT_CACHE_DIR
from embedlab.core.errors import EmbedlabError, FeatureError
from embedlab.core.system import default_workers
from embedlab.features import FeatureExtractor, create_extractor, split_feature_list

ProgressCallback = Callable[[int, int], None]


def resolve_features(features: str | FeatureExtractor | Sequence[str | FeatureExtractor]) -> list[FeatureExtractor]:
    """Extractors from a spec string (``"encoding,spectrum"``), instances or a list of both."""
    if isinstance(features, (str, FeatureExtractor)):
        features = split_feature_list(features) if isinstance(features, str) else [features]
    extractors = [create_extractor(f) for f in features]
    if not extractors:
        raise FeatureError("no feature named; choose from the feature registry (e.g. encoding)")
    names = [e.name for e in extractors]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FeatureError(f"feature {dupes[0]!r} named twice; encode one variant per run")
    return extractors


def encode(
    data: str | os.PathLike | pd.DataFrame,
    features: str | FeatureExtractor | Sequence[str | FeatureExtractor] = "encoding",
    *,
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    workers: int | None = None,
    per_class: int | None = None,
    seed: int = 0,
    layout: str = "auto",
    chunk_size: int = 16,
    scheduler: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Features for every image of ``data``, computed once and cached.

    ``data`` is a dataset path (any layout :func:`embedlab.datasets.load`
    reads) or a table it returned. Returns that table with, per feature
    ``f``, a column ``f`` (a ``float32`` vector, or None where extraction
    failed), ``f.ok``, ``f.reason`` and ``f.error``, and the extractor's
    extra columns as ``f.<name>``. ``df.attrs["summary"]`` counts what was
    computed, taken from the cache and failed (by reason); ``df.attrs["features"]``
    describes each extractor and its cache key.

    ``scheduler`` sends the work to a Dask cluster (``tcp://host:8786``) or a
    local one (``local:N``) instead of this machine's process pool; results
    land in the same cache either way.
    """
    started = time.perf_counter()
    df = data.copy() if isinstance(data, pd.DataFrame) else datasets.load(data, layout=layout)
    if isinstance(data, pd.DataFrame):
        df.attrs.update(data.attrs)
    if per_class is not None:
        df = datasets.sample_per_class(df, per_class, seed=seed)
    extractors = resolve_features(features)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise EmbedlabError(f"--workers must be at least 1, got {workers}")
    cache = FeatureCache(cache_dir)

    unique = df.drop_duplicates("hash")[["hash", "path"]]
    pending: dict[str, list[int]] = {}
    cached_counts = []
    for i, ex in enumerate(extractors):
        cache.write_meta(ex.key(), ex.describe())
        known = cache.known_hashes(ex.key())
        missing = unique.loc[~unique["hash"].isin(known)]
        cached_counts.append(len(unique) - len(missing))
        for h in missing["hash"]:
            pending.setdefault(h, []).append(i)
    tasks = [Task(h, uri, pending[h]) for h, uri in zip(unique["hash"], unique["path"]) if h in pending]
    uncached_failures: list[list[dict]] = [[] for _ in extractors]
    computed = [0] * len(extractors)

    def commit(chunk_rows: list[list[dict]]) -> None:
        for i, rows in enumerate(chunk_rows):
            keep = [r for r in rows if r.pop("cacheable", True)]
            uncached_failures[i].extend(r for r in rows if r not in keep)
            ex = extractors[i]
            cache.append(ex.key(), keep, ex.dim, ex.info_columns)
            computed[i] += len(rows)

    total = len(tasks)
    done = 0
    if on_progress:
        on_progress(0, total)
    chunks = [tasks[s:s + chunk_size] for s in range(0, total, chunk_size)]
    if chunks and scheduler is not None:
        def chunk_done(chunk_rows: list[list[dict]], n_images: int) -> None:
            nonlocal done
            commit(chunk_rows)
            done += n_images
            if on_progress:
                on_progress(done, total)

        run_chunks(chunks, extractors, scheduler, chunk_done)
    elif chunks and (workers == 1 or len(chunks) == 1):
        for ex in extractors:
            ex.prepare()
        for chunk in chunks:
            commit(extract_chunk(chunk, extractors))
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    elif chunks:
        threads = 1 if workers > 1 else None
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=get_context("spawn"),
                                 initializer=init_worker, initargs=(extractors, threads, os.getpid())) as pool:
            queue = iter(chunks)
            running: dict[Future, list[Task]] = {}
            try:
                # Keep only a few chunks in flight so that a kill loses little work.
                for chunk in queue:
                    running[pool.submit(extract_chunk, chunk)] = chunk
                    if len(running) >= 2 * workers:
                        break
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        chunk = running.pop(fut)
                        commit(fut.result())
                        done += len(chunk)
                        if on_progress:
                            on_progress(done, total)
                        nxt = next(queue, None)
                        if nxt is not None:
                            running[pool.submit(extract_chunk, nxt)] = nxt
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    for ex in extractors:
        cache.compact(ex.key())
    result = _attach(df, extractors, cache, uncached_failures)
    seconds = time.perf_counter() - started
    result.attrs["features"] = {ex.name: ex.describe() for ex in extractors}
    result.attrs["summary"] = _summary(result, extractors, computed, cached_counts, seconds, total)
    return result


def _attach(df: pd.DataFrame, extractors: list[FeatureExtractor], cache: FeatureCache,
            uncached_failures: list[list[dict]]) -> pd.DataFrame:
    out = df.reset_index(drop=True)
    for i, ex in enumerate(extractors):
        rows = cache.read(ex.key(), hashes=out["hash"].unique())
        if uncached_failures[i]:
            extra = pd.DataFrame(uncached_failures[i]).set_index("hash")
            rows = pd.concat([rows, extra[~extra.index.isin(rows.index)]])
        aligned = rows.reindex(out["hash"])
        out[ex.name] = list(aligned["vector"]) if len(aligned) else []
        out[f"{ex.name}.ok"] = aligned["ok"].fillna(False).astype(bool).to_numpy()
        out[f"{ex.name}.reason"] = aligned["reason"].to_numpy() if "reason" in aligned else None
        out[f"{ex.name}.error"] = aligned["error"].to_numpy() if "error" in aligned else None
        for col in ex.info_columns:
            if col in aligned:
                out[f"{ex.name}.{col}"] = aligned[col].to_numpy()
    return out


def _summary(df, extractors, computed, cached_counts, seconds, total) -> dict[str, Any]:
    per_feature = {}
    for i, ex in enumerate(extractors):
        failed = df.loc[~df[f"{ex.name}.ok"]].drop_duplicates("hash")
        per_feature[ex.name] = {
            "key": ex.key(),
            "computed": computed[i],
            "cached": cached_counts[i],
            "failed": len(failed),
            "failures": failed[f"{ex.name}.reason"].fillna("unknown").value_counts().to_dict(),
        }
    return {
        "images": len(df),
        "unique_images": int(df["hash"].nunique()),
        "computed_images": total,
        "seconds": seconds,
        "images_per_second": total / seconds if seconds > 0 else float("nan"),
        "features": per_feature,
    }


def feature_matrix(df: pd.DataFrame, features: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate feature columns of an :func:`encode` result.

    Returns ``(X, ok)``: ``X`` has one row per image (NaN rows where any
    feature failed) and ``ok`` marks the rows where every feature is present.
    """
    names = list(features)
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise FeatureError(f"feature column(s) {', '.join(missing)} not in the table; encode them first")
    ok = np.logical_and.reduce([df[f"{n}.ok"].to_numpy(bool) for n in names])
    blocks = []
    for n in names:
        dim = next((len(v) for v in df[n] if v is not None), 0)
        block = np.full((len(df), dim), np.nan, dtype=np.float32)
        for r, v in enumerate(df[n]):
            if v is not None:
                block[r] = v
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.empty((len(df), 0), np.float32), ok
