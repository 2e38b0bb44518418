"""Listing a large dataset: what every command does before any feature is read.

Times ``embedlab.datasets.load`` on a folder of many files (by default FER-2013's 35,887): with a
fresh file hash index (every file read and hashed, the index written), warm (the index consulted,
no file read), and with no index at all (every file read and hashed, as before the index existed).
Each is the best of ``--repeat`` runs; the page cache is warm after the first, as on any rerun.

    .venv/bin/python bench/listing.py
    .venv/bin/python bench/listing.py --data ../shared/data/real-vs-fake/real_vs_fake/real-vs-fake

Writes results/bench/listing.json.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_data import ROOT, bench_parser, data_or_exit, load_average  # noqa: E402  (bench/ is on sys.path)


def best_of(repeat: int, run) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> int:
    parser = bench_parser(__doc__, "listing.json", with_limit=False)
    parser.set_defaults(data=ROOT.parent / "shared" / "data" / "fer2013")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the best kept")
    args = parser.parse_args()
    data_or_exit(args.data)

    from embedlab import datasets
    from embedlab.compute.cache import FeatureCache

    print(f"listing {args.data}; load average {load_average()}", flush=True)
    caches = []

    def cold():
        cache = Path(tempfile.mkdtemp(prefix="embedlab-bench-listing-"))
        caches.append(cache)
        return datasets.load(args.data, hash_index=FeatureCache(cache).file_index(for_writing=True))

    try:
        cold_s, table = best_of(args.repeat, cold)
        warm_s, warm = best_of(args.repeat, lambda: datasets.load(args.data,
                                                                   hash_index=FeatureCache(caches[-1]).file_index()))
        plain_s, plain = best_of(args.repeat, lambda: datasets.load(args.data))
    finally:
        for cache in caches:
            shutil.rmtree(cache, ignore_errors=True)
    same = table["hash"].tolist() == warm["hash"].tolist() == plain["hash"].tolist()
    result = {"data": str(args.data), "files": len(table), "layout": table.attrs["layout"],
              "cold_index_seconds": cold_s, "warm_index_seconds": warm_s, "no_index_seconds": plain_s,
              "speedup_warm_vs_no_index": plain_s / warm_s, "same_hashes": same, "repeat": args.repeat,
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "load_average_after": load_average()}}
    print(f"{len(table)} files: index built {cold_s:.2f} s, warm {warm_s:.2f} s, no index {plain_s:.2f} s "
          f"({plain_s / warm_s:.1f}x); same hashes: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
