"""Computing features for a dataset, in parallel, through the cache.

>>> import embedlab, tempfile
>>> df = embedlab.encode("data/sample/fer2013", "pixels[size=8]", workers=1,
...                      cache_dir=tempfile.mkdtemp())
>>> df["pixels"].iloc[0].shape, df.attrs["summary"]["features"]["pixels"]["computed"]
((64,), 70)
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.compute.cache import FeatureCache
from embedlab.compute.distributed import ChunkDone, parse_scheduler, run_chunks
from embedlab.compute.workers import Task, extract_chunk, init_worker
from embedlab.core.defaults import ALIGNED_FACE_LAYOUTS, DEFAULT_CACHE_DIR
from embedlab.core.errors import FeatureError, UsageError, WorkerStartError
from embedlab.core.specs import parse_spec
from embedlab.core.system import default_workers
from embedlab.datasets import as_table, images_of, sample_per_class
from embedlab.features import FeatureExtractor, create_extractor, split_feature_list

if TYPE_CHECKING:
    from joblib.externals.loky import ProcessPoolExecutor

ProgressCallback = Callable[[int, int], None]
log = logging.getLogger(__name__)



def table_for_cache(data: Any, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, layout: str = "auto", *,
                    rehash: bool = False, writing: bool = True) -> pd.DataFrame:
    """``data`` as a table (:func:`embedlab.datasets.as_table`), listed with the file hash index of
    the cache at ``cache_dir``: an image file it remembers unchanged is not read again. ``rehash``
    reads every file; ``writing`` (a run that fills the cache) lets a first run create its folder."""
    index = FeatureCache(cache_dir).file_index(trust=not rehash, for_writing=writing)
    return as_table(data, layout=layout, hash_index=index)


def images_for_cache(data: Any, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, *,
                     rehash: bool = False) -> pd.DataFrame:
    """The images to predict on (:func:`embedlab.datasets.images_of`: a table as it is, or files, folders,
    arrays), listed with the file hash index of the cache at ``cache_dir`` as :func:`table_for_cache` lists."""
    index = FeatureCache(cache_dir).file_index(trust=not rehash, for_writing=True)
    return images_of(data, hash_index=index)


def with_layout_defaults(features: Any, layout: str | None) -> tuple[Any, list[str]]:
    """``features`` with ``detector=none`` added to each ``encoding`` spec that names no detector,
    when ``layout`` is in :data:`ALIGNED_FACE_LAYOUTS`; and a note per spec changed.

    >>> with_layout_defaults("encoding[jitters=2],spectrum", "fer2013-folders")[0]
    ['encoding[jitters=2,detector=none]', 'spectrum']
    >>> with_layout_defaults("encoding:hog", "fer2013-folders")[0]
    ['encoding:hog']
    """
    if layout not in ALIGNED_FACE_LAYOUTS:
        return features, []
    specs = split_feature_list(features) if isinstance(features, str) else list(features)
    out, notes = [], []
    for spec in specs:
        if isinstance(spec, str) and _names_no_detector(spec):
            m = parse_spec(spec)
            given = f"{m['params']}," if m["params"] else ""
            spec = f"{m['name']}[{given}detector=none]"
            notes.append(f"{spec}: {layout} images are aligned face crops, so no face detector runs on them "
                         "(name one, e.g. encoding[detector=hog], to run it)")
        out.append(spec)
    return out, notes


def _names_no_detector(spec: str) -> bool:
    m = parse_spec(spec)
    given = {item.split("=", 1)[0].strip() for item in (m["params"] or "").split(",") if "=" in item}
    return m["name"] == "encoding" and m["primary"] is None and "detector" not in given


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


# The keyword arguments are the public interface (embedlab.encode, the CLI, the fits); the work is
# split into planning what is missing, running it on one of three backends, and attaching it.
#: with the default worker count, fewer images than this to compute are computed in this process by
#: the predictions: starting worker processes (each loads dlib) would take longer than the work
IN_PROCESS_BELOW = 8


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
    rehash: bool = False,
) -> pd.DataFrame:
    """Features for every image of ``data``, computed once and cached.

    ``data`` is a dataset path (any layout :func:`embedlab.datasets.load`
    reads), a table it returned, or images (paths, numpy arrays, PIL images). On a layout of
    aligned face crops (:data:`ALIGNED_FACE_LAYOUTS`) an ``encoding`` spec naming no detector runs
    none (``df.attrs["notes"]`` says so). Returns that table with, per feature
    ``f``, a column ``f`` (a ``float32`` vector, or None where extraction
    failed), ``f.ok``, ``f.reason`` and ``f.error``, and the extractor's
    extra columns as ``f.<name>``. ``df.attrs["summary"]`` counts what was
    computed, taken from the cache and failed (by reason); ``df.attrs["features"]``
    describes each extractor and its cache key.

    ``workers`` worker processes compute what the cache lacks (default: all cores); an image that
    kills its worker (a crash, the out-of-memory killer) costs only that worker's chunk, which is
    retried once and then recorded as failed. ``workers=0`` works in this process instead: no
    start-up time, but such an image ends the run.

    ``scheduler`` sends the work to a Dask cluster (``tcp://host:8786``) or a
    local one (``local:N``) instead of this machine's process pool; results
    land in the same cache either way.

    A file the cache has hashed before is not read again to list it while its size, inode and
    times are unchanged (:mod:`embedlab.datasets.hash_index`); ``rehash=True`` reads every file.
    """
    started = time.perf_counter()
    if scheduler is not None:
        parse_scheduler(scheduler)  # a bad address is a usage error before any work
    df = table_for_cache(data, cache_dir, layout, rehash=rehash)
    if per_class is not None:
        df = sample_per_class(df, per_class, seed=seed)
    features, notes = with_layout_defaults(features, df.attrs.get("layout"))
    extractors = resolve_features(features)
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise UsageError(f"--workers must be 0 (work in this process) or more, got {workers}")
    cache = FeatureCache(cache_dir)
    tasks, cached_counts = missing_tasks(df, extractors, cache)
    committer = Committer(cache, extractors, len(tasks), on_progress)
    chunks = [tasks[s:s + chunk_size] for s in range(0, len(tasks), chunk_size)]
    for ex, n in zip(extractors, cached_counts):
        log.debug("%s: cache key %s under %s; %d image(s) cached", ex.name, ex.key(), cache.root, n)
    where = (f"scheduler {scheduler}" if scheduler is not None else
             "this process" if workers == 0 else f"{workers} worker process(es)")
    if chunks:
        log.debug("%d image(s) to compute in %d chunk(s) of up to %d, in %s", len(tasks), len(chunks), chunk_size,
                  where)
    else:
        log.debug("nothing to compute: every image is cached")
    compute_chunks(chunks, extractors, workers, scheduler, committer.commit)
    for ex in extractors:
        cache.compact(ex.key())
    result = _attach(df, extractors, cache, committer.uncached_failures)
    forget_changed_files(result, extractors, cache)
    seconds = time.perf_counter() - started
    result.attrs["features"] = {ex.name: ex.describe() for ex in extractors}
    result.attrs["summary"] = _summary(result, extractors, committer.computed, cached_counts, seconds, len(tasks))
    result.attrs["notes"] = notes
    return result


def forget_changed_files(df: pd.DataFrame, extractors: list[FeatureExtractor], cache: FeatureCache) -> None:
    """Files that held other bytes than they were listed with leave the cache's file hash index,
    so that the next listing reads them, whatever their times say."""
    changed = np.zeros(len(df), bool)
    for ex in extractors:
        if f"{ex.name}.reason" in df.columns:
            changed |= (df[f"{ex.name}.reason"] == "changed").to_numpy()
    if changed.any():
        index = cache.file_index()
        index.forget(os.path.abspath(p) for p in df.loc[changed, "path"])
        index.save()


def failures(data: Any, features: str | Sequence[str] = "encoding", *,
             cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, layout: str = "auto") -> pd.DataFrame:
    """The images of ``data`` whose features failed, as the cache recorded them: one row per image
    and feature (``image_id``, ``path``, ``feature``, ``reason``, ``error``). Nothing is computed;
    ``df.attrs["checked"]`` and ``df.attrs["not_computed"]`` count, per feature, the images found
    in the cache and those not computed yet.
    """
    table = table_for_cache(data, cache_dir, layout, writing=False)
    features, _ = with_layout_defaults(features, table.attrs.get("layout"))
    cache = FeatureCache(cache_dir)
    parts, checked, not_computed = [], {}, {}
    unread = table["read_reason"].notna().to_numpy()  # files that give no image: encode records them so too
    for ex in resolve_features(features):
        rows = cache.read(ex.key(), hashes=table["hash"].dropna().unique()).reindex(table["hash"])
        known = rows["ok"].notna().to_numpy() | unread
        failed = known & (~rows["ok"].fillna(True).astype(bool).to_numpy() | unread)
        reason = np.where(unread, table["read_reason"].to_numpy(object), rows["reason"].to_numpy(object))
        error = np.where(unread, table["read_error"].to_numpy(object), rows["error"].to_numpy(object))
        checked[ex.name], not_computed[ex.name] = int(known.sum()), int((~known).sum())
        parts.append(table.loc[failed, ["image_id", "path"]].assign(
            feature=ex.name, reason=reason[failed], error=error[failed]))
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(checked=checked, not_computed=not_computed)
    return out


def missing_tasks(df: pd.DataFrame, extractors: list[FeatureExtractor],
                  cache: FeatureCache) -> tuple[list[Task], list[int]]:
    """One task per image that misses a feature in the cache, and how many each extractor found cached."""
    unique = df[df["hash"].notna()].drop_duplicates("hash")[["hash", "path"]]
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
    return tasks, cached_counts


class Committer:
    """Commits each finished chunk to the cache, in this process, and moves the progress callback."""

    def __init__(self, cache: FeatureCache, extractors: list[FeatureExtractor], total: int,
                 on_progress: ProgressCallback | None):
        self.cache, self.extractors, self.total, self.on_progress = cache, extractors, total, on_progress
        self.uncached_failures: list[list[dict]] = [[] for _ in extractors]
        self.computed = [0] * len(extractors)
        self.done = 0
        if on_progress:
            on_progress(0, total)

    def commit(self, chunk_rows: list[list[dict]], n_images: int) -> None:
        for i, rows in enumerate(chunk_rows):
            cacheable = [r.pop("cacheable", True) for r in rows]
            keep = [r for r, c in zip(rows, cacheable) if c]
            self.uncached_failures[i].extend(r for r, c in zip(rows, cacheable) if not c)
            ex = self.extractors[i]
            self.cache.append(ex.key(), keep, ex.dim, ex.info_columns)
            self.computed[i] += len(rows)
            log.debug("%s: chunk of %d image(s) committed (%d failed, %d not cached)", ex.name, n_images,
                      sum(not r.get("ok", True) for r in rows), len(rows) - len(keep))
        self.done += n_images
        if self.on_progress:
            self.on_progress(self.done, self.total)


def compute_chunks(chunks: list[list[Task]], extractors: list[FeatureExtractor], workers: int,
                   scheduler: str | None, chunk_done: ChunkDone) -> None:
    """Extract ``chunks`` where they were asked for: on the Dask ``scheduler`` when one is given, in this
    process with ``workers=0``, else in a pool of ``workers`` processes; ``chunk_done(rows, n_images)``
    runs here as each chunk finishes. :func:`encode` and the network predictions share this."""
    if not chunks:
        return
    if scheduler is not None:
        run_chunks(chunks, extractors, scheduler, chunk_done)
    elif workers == 0:
        run_here(chunks, extractors, chunk_done)
    else:
        run_in_pool(chunks, extractors, workers, chunk_done)


def run_here(chunks: list[list[Task]], extractors: list[FeatureExtractor], chunk_done: ChunkDone) -> None:
    """Extract every chunk in this process (``workers=0``): no start-up time, but an image that
    crashes the process ends the run (the chunks committed before it stay cached)."""
    for ex in extractors:
        ex.prepare()
    for chunk in chunks:
        chunk_done(extract_chunk(chunk, extractors), len(chunk))


def run_in_pool(chunks: list[list[Task]], extractors: list[FeatureExtractor], workers: int,
                chunk_done: ChunkDone) -> None:
    """Extract the chunks in a pool of spawned processes; ``chunk_done`` runs here as each finishes.

    A worker that dies (killed, out of memory) breaks the pool: the chunks it held are retried once,
    each alone in a fresh process, and a chunk that kills that one too becomes failure rows with the
    reason "worker died"; the other chunks go on in a new pool.
    """
    pending = deque(chunks)
    while pending:
        for chunk in _until_a_worker_dies(pending, extractors, workers, chunk_done):
            _retry_alone(chunk, extractors, chunk_done)


def _pool(workers: int, extractors: list[FeatureExtractor]) -> ProcessPoolExecutor:
    from joblib.externals.loky import ProcessPoolExecutor
    from joblib.externals.loky.backend import get_context

    threads = 1 if workers > 1 else None
    # loky (joblib's process pool) starts clean interpreters like spawn, but never re-runs the
    # caller's script in them: a plain script without `if __name__ == "__main__":` works.
    pool = ProcessPoolExecutor(max_workers=workers, context=get_context("loky"),
                               initializer=init_worker, initargs=(extractors, threads, os.getpid()))
    # A worker that dies before it is given an image is no image's fault: say so, rather than
    # record every image as "worker died".
    try:
        pool.submit(os.getpid).result()
    except (BrokenProcessPool, BrokenPipeError, PermissionError) as exc:  # a pipe breaks when no interpreter runs
        pool.shutdown(wait=False, kill_workers=True)
        codes = re.search(r"exit codes of the workers are (\{.*?\})", str(exc))
        codes = f", exit codes {codes[1]}" if codes else ""
        raise WorkerStartError(
            f"worker processes could not start (they exited before any image{codes}): "
            f"this user may not be able to run {sys.executable}, or loading the models failed there; "
            "--workers 0 (workers=0) works in this process instead") from None
    return pool


def _until_a_worker_dies(pending: deque, extractors: list[FeatureExtractor], workers: int,
                         chunk_done: ChunkDone) -> list[list[Task]]:
    """Run chunks from ``pending`` until it is empty, or a worker dies: then return the chunks lost."""
    pool = _pool(min(workers, len(pending)), extractors)
    running: dict[Future, list[Task]] = {}
    try:
        while pending or running:
            # Keep only a few chunks in flight so that a kill loses little work.
            while pending and len(running) < 2 * workers:
                chunk = pending.popleft()
                try:
                    running[pool.submit(extract_chunk, chunk)] = chunk
                except BrokenProcessPool:  # a worker died since the last chunk finished
                    pending.appendleft(chunk)
                    return _settle(running, chunk_done)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    rows = fut.result()
                except BrokenProcessPool:
                    return _settle(running, chunk_done)
                chunk_done(rows, len(running.pop(fut)))
        return []
    finally:
        for fut in running:
            fut.cancel()
        pool.shutdown(wait=False, kill_workers=True)


def _settle(running: dict[Future, list[Task]], chunk_done: ChunkDone) -> list[list[Task]]:
    """After a worker died: commit the chunks that finished all the same, and return the others."""
    lost = []
    for fut, chunk in running.items():
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            chunk_done(fut.result(), len(chunk))
        else:
            lost.append(chunk)
    return lost


def _retry_alone(chunk: list[Task], extractors: list[FeatureExtractor], chunk_done: ChunkDone) -> None:
    """A chunk whose worker died, once more in a fresh process; if that dies too, its images fail."""
    log.debug("a worker died; its chunk of %d image(s) runs again, alone, in a fresh process", len(chunk))
    with _pool(1, extractors) as pool:
        try:
            rows = pool.submit(extract_chunk, chunk).result()
        except BrokenProcessPool:
            rows = died_rows(chunk, len(extractors))
    chunk_done(rows, len(chunk))


def died_rows(chunk: list[Task], n_extractors: int) -> list[list[dict]]:
    """Failure rows for a chunk that killed its worker twice; never cached, so a rerun tries again."""
    names = ", ".join(os.path.basename(t.uri) for t in chunk)
    rows: list[list[dict]] = [[] for _ in range(n_extractors)]
    for t in chunk:
        for i in t.features:
            rows[i].append({"hash": t.hash, "ok": False, "reason": "worker died", "cacheable": False,
                            "error": f"{t.uri}: worker died (its process was killed, e.g. out of memory, "
                                     f"twice on the chunk of {len(chunk)} image(s): {names})"})
    return rows


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
        _name_own_files(out, ex.name)
        if "read_reason" in out:  # files that gave no image when the dataset was listed
            unread = out["read_reason"].notna().to_numpy()
            out.loc[unread, f"{ex.name}.reason"] = out.loc[unread, "read_reason"]
            out.loc[unread, f"{ex.name}.error"] = out.loc[unread, "read_error"]
        for col in ex.info_columns:
            if col in aligned:
                out[f"{ex.name}.{col}"] = aligned[col].to_numpy()
    return out


def _name_own_files(out: pd.DataFrame, name: str) -> None:
    """A failure found on another file with the same bytes is shown under this row's own file name."""
    errors = out[f"{name}.error"]
    for i in np.flatnonzero(~out[f"{name}.ok"].to_numpy(bool) & errors.notna().to_numpy()):
        path, error = str(out["path"].iloc[i]), str(errors.iloc[i])
        if not error.startswith(f"{path}: "):
            out.iloc[i, out.columns.get_loc(f"{name}.error")] = (
                f"{path}: {out[f'{name}.reason'].iloc[i]} (the same bytes as another file: {error})")


def _summary(df, extractors, computed, cached_counts, seconds, total) -> dict[str, Any]:
    per_feature = {}
    for i, ex in enumerate(extractors):
        failed = df.loc[~df[f"{ex.name}.ok"]]
        failed = failed[failed["hash"].isna() | ~failed.duplicated("hash")]  # each unread file counts
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
        "unread_files": int(df["hash"].isna().sum()),
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
