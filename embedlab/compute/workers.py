"""The worker side of feature extraction: what one process does with one chunk of images.

The same :func:`extract_chunk` runs in this process, in the spawned process
pool of :func:`embedlab.compute.extraction.encode`, and on Dask workers
(:mod:`embedlab.compute.distributed`). Bad images become failure rows, never
exceptions, so one corrupt file cannot stop a run.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from embedlab.core.errors import FeatureError, ImageReadError, NoFaceFound
from embedlab.datasets.images import read_listed_image
from embedlab.features import FeatureExtractor


@dataclass
class Task:
    hash: str
    uri: str
    features: list[int]  # indices into the extractor list still missing for this image


def failure_reason(exc: BaseException) -> str:
    """A short category for the summary; the full message is kept beside it."""
    if isinstance(exc, NoFaceFound):
        return "no face found"
    if isinstance(exc, ImageReadError):
        return exc.reason
    return type(exc).__name__


def failure_row(hash_: str, exc: BaseException, error: str) -> dict:
    """A failure row; only failures that follow from the image's bytes are cached (``cacheable``).

    A file that is too large for today's limits, or unreadable now, is tried again on the next run.
    """
    reason = failure_reason(exc)
    content = not isinstance(exc, ImageReadError) or reason in ("decode error", "unsupported format")
    return {"hash": hash_, "ok": False, "reason": reason, "error": error,
            "cacheable": content and isinstance(exc, (FeatureError, ImageReadError))}


# -- worker side ------------------------------------------------------------
_WORKER_EXTRACTORS: list[FeatureExtractor] = []


def exit_with_parent(parent: int) -> None:
    """End this worker when the process that started it dies (e.g. ``kill -9``)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="embedlab-parent-watch", daemon=True).start()


def init_worker(extractors: list[FeatureExtractor], threads: int | None, parent: int | None = None) -> None:
    global _WORKER_EXTRACTORS
    if parent is not None:
        exit_with_parent(parent)
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["MKL_NUM_THREADS"] = str(threads)
    _WORKER_EXTRACTORS = extractors
    for ex in extractors:
        ex.prepare()


def extract_chunk(tasks: list[Task], extractors: list[FeatureExtractor] | None = None) -> list[list[dict]]:
    """Rows per extractor for one chunk of images; bad images become failure rows."""
    extractors = extractors if extractors is not None else _WORKER_EXTRACTORS
    rows: list[list[dict]] = [[] for _ in extractors]
    images: dict[str, np.ndarray] = {}
    for task in tasks:
        try:
            images[task.hash] = read_listed_image(task.uri, task.hash)
        except ImageReadError as exc:
            for i in task.features:
                rows[i].append(failure_row(task.hash, exc, str(exc)))
    for i, ex in enumerate(extractors):
        todo = [t for t in tasks if i in t.features and t.hash in images]
        if not todo:
            continue
        batch = getattr(ex, "extract_many", None)
        if batch is not None:
            try:
                results = batch([images[t.hash] for t in todo])
            except Exception:  # fall back to one at a time to isolate the culprit
                results = None
            if results is not None:
                # A batch method returns the FeatureError of an image it could not handle in its place.
                for t, result in zip(todo, results):
                    if isinstance(result, FeatureError):
                        rows[i].append(failure_row(t.hash, result, f"{t.uri}: {result}"))
                    else:
                        vec, info = result
                        rows[i].append({"hash": t.hash, "ok": True, "vector": vec, **info})
                continue
        for t in todo:
            try:
                vec, info = ex.extract(images[t.hash])
                rows[i].append({"hash": t.hash, "ok": True, "vector": vec, **info})
            except (FeatureError, ImageReadError) as exc:
                rows[i].append(failure_row(t.hash, exc, f"{t.uri}: {exc}"))
            except Exception as exc:  # unexpected: reported, never cached, so a rerun retries it
                rows[i].append(failure_row(t.hash, exc, f"{t.uri}: {type(exc).__name__}: {exc}"))
    return rows
