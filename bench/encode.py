"""Encoding throughput: face_recognition's naive loop against `embedlab encode`, cold and warm.

The naive loop is what users write with face_recognition: one image at a
time, in one process, `load_image_file` + `face_locations` + `face_encodings`.
embedlab does the same work (HOG detector, one upsampling, small landmarks)
through its process pool, then again from the warm cache.

    .venv/bin/python bench/encode.py                       # the 1,800 real/fake images
    .venv/bin/python bench/encode.py --limit 200 --workers 2

Writes results/bench/encode.json and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_data import DEFAULT_DATA, ROOT, benchmark_table  # noqa: E402  (bench/ is on sys.path)


def naive_loop(paths: list[str]) -> tuple[float, int]:
    import face_recognition

    started = time.perf_counter()
    found = 0
    for path in paths:
        image = face_recognition.load_image_file(path)
        boxes = face_recognition.face_locations(image)
        found += bool(face_recognition.face_encodings(image, boxes))
    return time.perf_counter() - started, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset folder (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--workers", type=int, default=2, help="embedlab worker processes")
    parser.add_argument("--engine", default="torch", choices=("torch", "dlib"),
                        help="how embedlab runs dlib's descriptor network (see bench/encode_torch.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "encode.json")
    args = parser.parse_args()

    import embedlab

    table = benchmark_table(args.data, args.limit)
    if table is None:
        print(f"error: {args.data} not found; pass --data PATH", file=sys.stderr)
        return 2
    paths = table["path"].tolist()
    print(f"{len(paths)} images from {args.data}; load average {os.getloadavg()}")

    naive_s, naive_found = naive_loop(paths)
    print(f"naive face_recognition loop: {naive_s:.1f} s ({len(paths) / naive_s:.2f} img/s)")

    def run_embedlab(cache: Path):
        # timed as a user runs it: listing and hashing the dataset included
        started = time.perf_counter()
        listed = benchmark_table(args.data, args.limit)
        df = embedlab.encode(listed, f"encoding[detector=hog,engine={args.engine}]", workers=args.workers,
                             cache_dir=cache)
        return df, time.perf_counter() - started

    cache = Path(tempfile.mkdtemp(prefix="embedlab-bench-"))
    try:
        cold, cold_s = run_embedlab(cache)
        print(f"embedlab encode, cold, {args.workers} workers: {cold_s:.1f} s ({len(paths) / cold_s:.2f} img/s)")
        warm, warm_s = run_embedlab(cache)
        print(f"embedlab encode, warm: {warm_s:.2f} s")
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    result = {
        "data": str(args.data), "images": len(paths), "workers": args.workers, "engine": args.engine,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_average_after": os.getloadavg()},
        "naive_seconds": naive_s, "naive_images_per_second": len(paths) / naive_s,
        "naive_faces_found": naive_found,
        "cold_seconds": cold_s, "cold_images_per_second": len(paths) / cold_s,
        "cold_faces_found": int(cold["encoding.face_found"].fillna(False).sum()),
        "warm_seconds": warm_s, "warm_computed": warm.attrs["summary"]["features"]["encoding"]["computed"],
        "speedup_cold_vs_naive": naive_s / cold_s,
        "speedup_warm_vs_cold": cold_s / warm_s,
        "targets": {"cold_vs_naive": 1.8, "warm_vs_cold": 20},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"cold vs naive: {result['speedup_cold_vs_naive']:.2f}x (target 1.8x); "
          f"warm vs cold: {result['speedup_warm_vs_cold']:.1f}x (target 20x) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
