"""Encoding throughput: face_recognition's naive loop against `embedlab encode`, cold and warm.

The naive loop is what users write with face_recognition: one image at a
time, in one process, `load_image_file` + `face_locations` + `face_encodings`.
embedlab does the same work (HOG detector, one upsampling, small landmarks)
through its process pool, then again from the warm cache; then both once more
through the command line, as users run it (a fresh interpreter each time, so
imports count), and it checks that the encodings equal the loop's.

    .venv/bin/python bench/encode.py                       # the 1,800 real/fake images
    .venv/bin/python bench/encode.py --limit 200 --workers 2

Writes results/bench/encode.json and prints the ratios.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_data import bench_parser, benchmark_table, load_average, table_or_exit  # noqa: E402  (bench/ is on sys.path)


def naive_loop(paths: list[str]) -> tuple[float, list]:
    """face_recognition's loop; returns its seconds and, per image, the largest face's encoding (or None)."""
    import face_recognition

    encodings = []
    started = time.perf_counter()
    for path in paths:
        image = face_recognition.load_image_file(path)
        boxes = face_recognition.face_locations(image)
        found = face_recognition.face_encodings(image, boxes)
        largest = max(range(len(boxes)), key=lambda i: (boxes[i][2] - boxes[i][0]) * (boxes[i][1] - boxes[i][3]),
                      default=None)
        encodings.append(None if largest is None else found[largest])
    return time.perf_counter() - started, encodings


def cli_seconds(args: list[str]) -> float:
    """One `embedlab` command as users run it: a fresh interpreter, imports and all."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "embedlab_cli.main", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = bench_parser(__doc__, "encode.json")
    parser.add_argument("--workers", type=int, default=2, help="embedlab worker processes")
    parser.add_argument("--engine", default="torch", choices=("torch", "dlib"),
                        help="how embedlab runs dlib's descriptor network (see bench/encode_torch.py)")
    args = parser.parse_args()

    import numpy as np

    import embedlab

    table = table_or_exit(args.data, args.limit)
    paths = table["path"].tolist()
    print(f"{len(paths)} images from {args.data}; load average {load_average()}")

    naive_s, naive_encodings = naive_loop(paths)
    print(f"naive face_recognition loop: {naive_s:.1f} s ({len(paths) / naive_s:.2f} img/s)", flush=True)
    spec = f"encoding[detector=hog,engine={args.engine}]"

    def run_embedlab(cache: Path):
        # timed as a user runs it: listing and hashing the dataset included
        started = time.perf_counter()
        listed = benchmark_table(args.data, args.limit)
        df = embedlab.encode(listed, spec, workers=args.workers, cache_dir=cache)
        return df, time.perf_counter() - started

    cache = Path(tempfile.mkdtemp(prefix="embedlab-bench-"))
    try:
        cold, cold_s = run_embedlab(cache)
        print(f"embedlab.encode, cold, {args.workers} workers: {cold_s:.1f} s ({len(paths) / cold_s:.2f} img/s)")
        warm, warm_s = run_embedlab(cache)
        print(f"embedlab.encode, warm: {warm_s:.2f} s")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    # the same through the command line, as users run it (full dataset only: the CLI takes a folder)
    cli = None
    if args.limit is None:
        cache = Path(tempfile.mkdtemp(prefix="embedlab-bench-cli-"))
        try:
            command = ["encode", str(args.data), "-f", spec, "-w", str(args.workers), "--cache-dir", str(cache)]
            cli_cold = cli_seconds(command)
            cli_warm = min(cli_seconds(command) for _ in range(3))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        cli = {"command": "embedlab " + " ".join(command[:1] + ["DATA"] + command[2:-1] + ["CACHE"]),
               "cold_seconds": cli_cold, "warm_seconds_best_of_3": cli_warm,
               "speedup_cold_vs_naive": naive_s / cli_cold, "speedup_warm_vs_cold": cli_cold / cli_warm}
        print(f"CLI: cold {cli_cold:.1f} s, warm {cli_warm:.2f} s ({cli_cold / cli_warm:.0f}x)", flush=True)

    both = [(v, e) for v, e in zip(cold["encoding"], naive_encodings) if v is not None and e is not None]
    result = {
        "data": str(args.data), "images": len(paths), "workers": args.workers, "engine": args.engine, "spec": spec,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_average_after": load_average()},
        "naive_seconds": naive_s, "naive_images_per_second": len(paths) / naive_s,
        "naive_faces_found": sum(e is not None for e in naive_encodings),
        "cold_seconds": cold_s, "cold_images_per_second": len(paths) / cold_s,
        "cold_faces_found": int(cold["encoding.face_found"].fillna(False).sum()),
        "encodings_vs_naive": {
            "images_compared": len(both),
            "face_found_differs": sum((v is None) != (e is None) for v, e in zip(cold["encoding"], naive_encodings)),
            "max_abs_difference": max((float(np.abs(np.asarray(v) - e).max()) for v, e in both), default=None)},
        "warm_seconds": warm_s, "warm_computed": warm.attrs["summary"]["features"]["encoding"]["computed"],
        "speedup_cold_vs_naive": naive_s / cold_s,
        "speedup_warm_vs_cold": cold_s / warm_s,
        "cli": cli,
        "targets": {"cold_vs_naive": 8, "cli_warm_vs_cold": 50},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"cold vs naive: {result['speedup_cold_vs_naive']:.2f}x (target 8x); "
          f"library warm vs cold: {result['speedup_warm_vs_cold']:.1f}x -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
