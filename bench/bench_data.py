"""What every encoding benchmark shares: the images it runs on, listed the same way for each, its
command-line start (``--data``, ``--limit``, ``--out``), its CPU thread count and the machine's load."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_DATA = SHARED_DATA / "real-vs-fake" / "real_vs_fake" / "real-vs-fake"
OUT_DIR = ROOT / "results" / "bench"


def bench_parser(doc: str, out: str | None, *, limit: int | None = None, with_limit: bool = True,
                 data_help: str = "dataset folder") -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes: ``--data``, ``--limit`` and ``--out``
    (default ``results/bench/<out>``; with ``out=None`` the script adds its own ``--out``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"{data_help} (default: %(default)s)")
    if with_limit:
        parser.add_argument("--limit", type=int, default=limit,
                            help="images to use (default: %(default)s)" if limit else "use only the first N images")
    if out is not None:
        parser.add_argument("--out", type=Path, default=OUT_DIR / out, help="result file (default: %(default)s)")
    return parser


def use_threads(n: int) -> None:
    """Run BLAS and OpenMP on ``n`` threads: call before numpy or torch is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def benchmark_table(data: Path, limit: int | None = None):
    """The dataset at ``data`` in image-id order, cut to ``limit`` images; None if it is missing."""
    from embedlab import datasets

    if not data.exists():
        return None
    table = datasets.load(data).sort_values("image_id", ignore_index=True)
    return table.head(limit) if limit else table


def data_or_exit(data: Path) -> Path:
    """``data``, or exit with status 2 and a message naming the missing folder."""
    if not data.exists():
        print(f"error: {data} not found; pass --data PATH", file=sys.stderr)
        raise SystemExit(2)
    return data


def table_or_exit(data: Path, limit: int | None = None):
    """:func:`benchmark_table` of a folder that must exist (see :func:`data_or_exit`)."""
    return benchmark_table(data_or_exit(data), limit)


def portraits_by_face(folder: Path, cache_dir: Path, distance: float = 0.4, shares=(0.6, 0.2), seed: int = 0):
    """The SD 1.5 portraits at ``folder``, each with a split drawn by face: portraits whose dlib
    encodings lie within ``distance`` of each other share one (train, valid, test by ``shares``).

    Returns ``(table with path and split, number of face groups)``, in path order.
    """
    import numpy as np
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import cdist

    import embedlab

    portraits = embedlab.encode(folder, "encoding", cache_dir=cache_dir).sort_values("path").reset_index(drop=True)
    enc = np.stack([v if v is not None else np.full(128, 1e3 * (i + 1)) for i, v in enumerate(portraits["encoding"])])
    n_groups, group = connected_components(cdist(enc, enc) < distance, directed=False)
    sizes, share, split_of = np.bincount(group), 0, {}
    for g in np.random.default_rng(seed).permutation(n_groups):
        split_of[g] = ("train" if share < shares[0] * len(enc) else
                       "valid" if share < (shares[0] + shares[1]) * len(enc) else "test")
        share += sizes[g]
    return portraits.assign(split=[split_of[g] for g in group])[["path", "split"]], n_groups


def parse_value(text: str):
    """A ``-p KEY=VALUE`` value: JSON where ``text`` is JSON (numbers, booleans, lists), else the text itself."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def epoch_printer(name: str):
    """A training progress callback that prints one line per epoch, headed by ``name``."""
    def progress(done, total, info):
        if info.get("end_of_epoch"):
            print(f"{name} epoch {info['epoch']}/{info['epochs']}: train loss {info['train_loss']:.3f} "
                  f"acc {info['train_acc']:.3f}, val loss {info['val_loss']:.3f} acc {info['val_acc']:.3f}, "
                  f"{info['seconds']:.0f} s", flush=True)
    return progress
