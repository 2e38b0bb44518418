"""Encoding throughput on a Dask cluster against the local process pool, same worker count.

Both paths encode the same images into fresh temporary caches: the local
pool (``workers=N``) and a ``LocalCluster`` of N single-threaded worker
processes (``scheduler="local:N"``). Times are end to end, as a user waits
for them: pool or cluster start-up, model loading on the workers, the
start-up check, extraction and the cache commits. CPU seconds (this process
and all its workers) are recorded too: unlike throughput they hardly depend
on what else the machine runs. The caches are compared afterwards (same
hashes, identical vectors).

    nice -n 10 .venv/bin/python bench/encode_dask.py             # the 1,800 real/fake images
    .venv/bin/python bench/encode_dask.py --limit 200 --rounds 2

Writes results/bench/encode_dask.json (throughputs, ratio, machine load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real-vs-fake" / "real_vs_fake" / "real-vs-fake"


def load_average() -> dict:
    one, five, fifteen = os.getloadavg()
    text = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"uptime": text, "load_1min": one, "load_5min": five, "load_15min": fifteen}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (pool workers, nannies and their workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(table, features: str, workers: int, scheduler: str | None, cache: Path) -> dict:
    import embedlab

    load_before = load_average()
    cpu = cpu_seconds()
    started = time.perf_counter()
    df = embedlab.encode(table, features, cache_dir=cache, workers=workers, scheduler=scheduler)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    summary = df.attrs["summary"]
    return {"path": scheduler or f"process pool, workers={workers}", "images": summary["computed_images"],
            "seconds": round(seconds, 2), "images_per_second": round(summary["computed_images"] / seconds, 3),
            "cpu_seconds": round(cpu, 1),
            "cpu_ms_per_image": round(1000 * cpu / max(summary["computed_images"], 1), 2),
            "failed": {n: s["failed"] for n, s in summary["features"].items()},
            "load_before": load_before, "load_after": load_average()}


def same_cache(a: Path, b: Path, keys: list[str]) -> bool:
    from embedlab.compute.cache import FeatureCache

    for key in keys:
        ra, rb = FeatureCache(a).read(key), FeatureCache(b).read(key)
        if set(ra.index) != set(rb.index):
            return False
        rb = rb.loc[ra.index]
        if not all((x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
                   for x, y in zip(ra["vector"], rb["vector"])):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--features", default="encoding")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="Use the first N images only.")
    parser.add_argument("--rounds", type=int, default=1,
                        help="Repeat both paths, alternating which goes first; the best of each is kept.")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "encode_dask.json")
    args = parser.parse_args()

    import dask
    import distributed

    import embedlab
    from embedlab.compute.extraction import resolve_features

    table = embedlab.datasets.load(args.data)
    if args.limit:
        table = table.head(args.limit)
    keys = [e.key() for e in resolve_features(args.features)]
    scheduler = f"local:{args.workers}"
    runs: dict[str, list[dict]] = {"local": [], "dask": []}
    identical = True
    for r in range(args.rounds):
        order = ["local", "dask"] if r % 2 == 0 else ["dask", "local"]
        tmp = Path(tempfile.mkdtemp(prefix="encode-dask-"))
        try:
            for path in order:
                runs[path].append(run(table, args.features, args.workers, scheduler if path == "dask" else None,
                                      tmp / path))
                print(f"round {r + 1} {path}: {runs[path][-1]['images_per_second']:.2f} images/s "
                      f"({runs[path][-1]['seconds']:.1f} s)", flush=True)
            identical &= same_cache(tmp / "local", tmp / "dask", keys)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    best = {p: max(rs, key=lambda x: x["images_per_second"]) for p, rs in runs.items()}
    ratio = best["dask"]["images_per_second"] / best["local"]["images_per_second"]
    result = {
        "benchmark": "encode: Dask LocalCluster against the local process pool",
        "data": str(args.data), "images": len(table), "features": args.features, "workers": args.workers,
        "scheduler": scheduler, "rounds": args.rounds,
        "local_images_per_second": best["local"]["images_per_second"],
        "dask_images_per_second": best["dask"]["images_per_second"],
        "ratio_dask_over_local": round(ratio, 3), "target_ratio": 0.9, "meets_target": ratio >= 0.9,
        "caches_identical": identical,
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "dask": dask.__version__, "distributed": distributed.__version__,
                    "note": "cores shared with other jobs; see load_before/load_after per run",
                    "load_at_end": load_average()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"local pool {result['local_images_per_second']:.2f} images/s, dask {result['dask_images_per_second']:.2f} "
          f"images/s, ratio {ratio:.3f} (target >= 0.9); caches identical: {identical}; wrote {args.out}")


if __name__ == "__main__":
    main()
