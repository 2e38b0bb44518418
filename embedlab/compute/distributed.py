"""Running feature extraction on a Dask cluster instead of this machine's pool.

:func:`embedlab.encode` hands its chunks of images here when it is given a
``scheduler``. Each chunk becomes one Dask task; workers prepare each
extractor once (models load on first use and stay loaded), and the client
commits every finished chunk to the feature cache as it arrives, so the
cache never depends on where features were computed.

Scheduler addresses:

- ``tcp://host:8786`` (any address ``distributed.Client`` accepts, ``tls://``
  included): a running cluster started with ``dask scheduler`` and
  ``dask worker``;
- ``local:N`` (or ``local`` for one worker per core): a ``LocalCluster`` of N
  single-threaded worker processes on this machine, closed afterwards;
- a path to a scheduler file (``*.json``, as written by
  ``dask scheduler --scheduler-file``).

Faults: a worker that dies has its chunks recomputed on another one (Dask
retries a task up to ``distributed.scheduler.allowed-failures`` worker deaths,
3 by default); each chunk is committed once, and the cache keeps the first row
per image anyway. Workers read images by the path in the dataset table, so
they must see the same files: a shared file system mounted at the same path,
or fsspec URLs (``s3://``, ``gs://``, ``http://``... see docs/distributed.md).
Before any work, every worker checks that it can read the first image and
computes the same cache keys as this process (same embedlab, same models).

>>> parse_scheduler("local:2")
('local', 2)
>>> parse_scheduler("tcp://10.0.0.5:8786")
('address', 'tcp://10.0.0.5:8786')
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

import embedlab
from embedlab.compute.workers import extract_chunk
from embedlab.core.errors import EmbedlabError, UsageError
from embedlab.core.system import default_workers
from embedlab.datasets.images import is_csv_row, split_csv_row

#: how long to wait for a remote scheduler to answer and for its first worker
CONNECT_TIMEOUT_S = 30

ChunkDone = Callable[[list[list[dict]], int], None]

#: Dask settings for ``local:N`` clusters, which share this machine's cores with the
#: work itself. Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns
#: off glibc's adaptive mmap threshold: every large buffer of the face descriptor
#: network is then mapped and zeroed afresh (4x the page faults, ~25% more CPU per
#: image). The profiler and the monitors only feed a dashboard that local:N does not
#: show; with them and work stealing at their defaults an idle 2-worker cluster
#: burns 6% of a core, 1% without (bench/encode_dask.py measures the difference).
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.scheduler.work-stealing": False,  # tasks are queued on the scheduler anyway
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise EmbedlabError(
            "--scheduler needs Dask's distributed scheduler: pip install 'embedlab[dask]' "
            "(on this machine and on every worker)"
        ) from None
    return distributed


#: the address schemes Dask's distributed scheduler speaks
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")


def parse_scheduler(scheduler: str) -> tuple[str, Any]:
    """``("local", n_workers)``, ``("file", path)`` or ``("address", address)``."""
    text = str(scheduler).strip()
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2] or str(default_workers())
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"--scheduler {text!r}: use local:N with N >= 1 worker processes")
        return "local", int(count)
    if text.endswith(".json"):
        if not Path(text).is_file():
            raise UsageError(f"--scheduler {text!r}: no such scheduler file")
        return "file", text
    if text.partition("://")[0] in SCHEMES and text.partition("://")[2] \
            or ("://" not in text and ":" in text and text.rpartition(":")[2].isdigit()):
        return "address", text
    raise UsageError(
        f"--scheduler {text!r} is not understood; use tcp://HOST:8786 for a running Dask "
        "scheduler, local:N for N worker processes on this machine, or a scheduler file (*.json)"
    )


def connect(scheduler: str, stack: ExitStack):
    """A ``distributed.Client`` for ``scheduler``, closed (with any local cluster) by ``stack``."""
    distributed = _import_distributed()
    kind, value = parse_scheduler(scheduler)
    try:
        if kind == "local":
            import dask

            with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read as the nannies and workers start
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=value, threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=logging.ERROR))
            return stack.enter_context(distributed.Client(cluster))
        if kind == "file":
            return stack.enter_context(distributed.Client(scheduler_file=value, timeout=CONNECT_TIMEOUT_S))
        return stack.enter_context(distributed.Client(value, timeout=CONNECT_TIMEOUT_S))
    except (OSError, TimeoutError) as exc:
        raise EmbedlabError(
            f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`"
        ) from None


def wait_for_workers(client, scheduler: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise EmbedlabError(
            f"--scheduler {scheduler}: no worker joined within {timeout:.0f} s; "
            f"start some with `dask worker {client.scheduler.address}`"
        ) from None


# -- worker side ------------------------------------------------------------
#: extractors prepared in this worker process (models stay loaded between chunks), by class and
#: parameters: not by cache key alone, which leaves out settings such as the encoding engine
_PREPARED: dict[str, Any] = {}
_PREPARE_LOCK = threading.Lock()

Recipe = tuple[str, type, dict]  # (cache key, extractor class, parameters)


def recipe(extractor) -> Recipe:
    """What a worker needs to rebuild an extractor: never its loaded models."""
    params = {p: getattr(extractor, p) for p in extractor.param_names()}
    return extractor.key(), type(extractor), params


def _prepared(recipes: Sequence[Recipe]) -> list:
    out = []
    with _PREPARE_LOCK:  # a worker with several threads prepares each extractor once
        for key, cls, params in recipes:
            ident = f"{key} {cls.__module__}.{cls.__qualname__} {sorted(params.items())!r}"
            ex = _PREPARED.get(ident)
            if ex is None:
                ex = cls(**params)
                ex.validate()
                ex.prepare()
                _PREPARED[ident] = ex
            out.append(ex)
    return out


def run_chunk(chunk: list, recipes: Sequence[Recipe]) -> list[list[dict]]:
    """The Dask task: rows per extractor for one chunk (see :func:`embedlab.compute.workers.extract_chunk`)."""
    return extract_chunk(chunk, _prepared(recipes))


def check_worker(uri: str, recipes: Sequence[Recipe]) -> dict[str, Any]:
    """Run on every worker before any work: can it read ``uri``, and what keys does it compute?"""
    import socket

    report: dict[str, Any] = {"host": socket.gethostname(), "version": embedlab.__version__,
                              "read_error": None, "keys": []}
    try:
        open_image_source(uri)
    except Exception as exc:  # any reason at all stops the run before work is sent
        report["read_error"] = f"{type(exc).__name__}: {exc}"
    try:
        report["keys"] = [cls(**params).key() for _, cls, params in recipes]
    except Exception as exc:
        report["keys"] = [f"error: {type(exc).__name__}: {exc}"]
    return report


def open_image_source(uri: str) -> None:
    """Read the first byte of an image's file (a CSV row's file, or an fsspec URL)."""
    path = split_csv_row(uri)[0] if is_csv_row(uri) else uri
    if "://" in path:
        import fsspec

        with fsspec.open(path, "rb") as fh:
            fh.read(1)
        return
    with open(path, "rb") as fh:
        fh.read(1)


# -- client side ------------------------------------------------------------
def check_workers(client, uri: str, recipes: Sequence[Recipe], scheduler: str) -> None:
    """Stop with a clear message unless every worker reads ``uri`` and agrees on cache keys."""
    reports = client.run(check_worker, uri, list(recipes), on_error="return")
    expected = [key for key, _, _ in recipes]
    for worker, report in sorted(reports.items()):
        if isinstance(report, BaseException):
            raise EmbedlabError(f"worker {worker} (scheduler {scheduler}) failed its start-up check: "
                                f"{type(report).__name__}: {report}")
        where = f"worker {worker} on host {report['host']}"
        if report["read_error"]:
            raise EmbedlabError(
                f"{where} cannot read the first image {uri} ({report['read_error']}); workers read "
                "images by the same path as this machine, so put the dataset on a file system every "
                "worker mounts at that path, or use fsspec URLs"
            )
        if report["keys"] != expected:
            raise EmbedlabError(
                f"{where} (embedlab {report['version']}) computes feature cache keys {report['keys']} "
                f"where this machine computes {expected}: install the same embedlab version and "
                "model files on every worker"
            )


def run_chunks(chunks: list[list], extractors: Sequence, scheduler: str, chunk_done: ChunkDone) -> None:
    """Extract every chunk on the cluster; call ``chunk_done(rows, n_images)`` here as each finishes.

    ``chunk_done`` runs in this process, once per chunk, in completion order,
    so the caller commits to its cache and moves its progress bar there.
    Interrupting (Ctrl-C) cancels what is left; finished chunks stay committed.
    """
    distributed = _import_distributed()
    recipes = [recipe(ex) for ex in extractors]
    with ExitStack() as stack:
        client = connect(scheduler, stack)
        wait_for_workers(client, scheduler)
        check_workers(client, chunks[0][0].uri, recipes, scheduler)
        # pure=False: a recomputation is a new attempt, never a stale result;
        # retries covers errors raised by the task itself (a flaky network mount).
        futures = {client.submit(run_chunk, chunk, recipes, pure=False, retries=2): i
                   for i, chunk in enumerate(chunks)}
        committed: set[int] = set()
        try:
            for future in distributed.as_completed(futures):
                i = futures[future]
                try:
                    rows = future.result()
                except EmbedlabError:
                    raise
                except distributed.KilledWorker as exc:
                    raise EmbedlabError(
                        f"chunk {i} (first image {chunks[i][0].uri}) stopped the run: {exc} "
                        "(it may need more memory than a worker has)"
                    ) from None
                except Exception as exc:
                    raise EmbedlabError(
                        f"chunk {i} (first image {chunks[i][0].uri}) failed on the cluster: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                future.release()
                if i in committed:  # a chunk is committed once, whatever the cluster did
                    continue
                committed.add(i)
                chunk_done(rows, len(chunks[i]))
        except BaseException:
            client.cancel(list(futures))
            raise
