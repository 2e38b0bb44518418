"""Encoding with dlib's CNN face detector: face_recognition's `model="cnn"` loop against `embedlab encode`.

The loop is what face_recognition users write: one image at a time,
`face_locations(image, model="cnn")` then `face_encodings`. embedlab runs
`encoding[detector=cnn]` with the torch engine: the detector and the
descriptor network in PyTorch, in batches (``--batch-size`` images a chunk),
through its worker processes on the CPU, or in one process on CUDA.

    .venv/bin/python bench/encode_cnn.py --limit 100                  # CPU, 2 workers
    .venv/bin/python bench/encode_cnn.py --device cuda --batch-size 32 64 128 256 --skip-loop

dlib's CNN detector takes about a second per image on one core, so the loop
runs on ``--loop-limit`` images (all of ``--limit`` by default). Writes
results/bench/encode_cnn_<device>.json, with the GPU's name when one is used.
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
        boxes = face_recognition.face_locations(image, model="cnn")
        found += bool(face_recognition.face_encodings(image, boxes))
    return time.perf_counter() - started, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset folder (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--loop-limit", type=int, default=None, help="images for face_recognition's loop")
    parser.add_argument("--skip-loop", action="store_true", help="time embedlab only")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: 2 on CPU, 1 on CUDA)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16], help="images per chunk (several: one run each)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import embedlab
    import torch

    table = benchmark_table(args.data, args.limit)
    if table is None:
        print(f"error: {args.data} not found; pass --data PATH", file=sys.stderr)
        return 2
    paths = table["path"].tolist()
    workers = args.workers or (2 if args.device == "cpu" else 1)
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    print(f"{len(paths)} images, {args.device} {card or ''}, {workers} workers; load {os.getloadavg()}", flush=True)
    result = {"data": str(args.data), "images": len(paths), "device": args.device, "gpu": card,
              "workers": workers, "runs": [],
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "load_average_before": os.getloadavg()}}
    if not args.skip_loop:
        loop_paths = paths[:args.loop_limit] if args.loop_limit else paths
        loop_s, loop_found = naive_loop(loop_paths)
        result["loop"] = {"images": len(loop_paths), "seconds": loop_s, "images_per_second": len(loop_paths) / loop_s,
                          "faces_found": loop_found}
        print(f"face_recognition cnn loop: {len(loop_paths) / loop_s:.2f} img/s", flush=True)
    for batch in args.batch_size:
        cache = Path(tempfile.mkdtemp(prefix="embedlab-bench-"))
        try:
            started = time.perf_counter()
            df = embedlab.encode(benchmark_table(args.data, args.limit), f"encoding[detector=cnn,device={args.device}]",
                                 workers=workers, chunk_size=batch, cache_dir=cache)
            cold_s = time.perf_counter() - started
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        faces = int(df["encoding.n_faces"].fillna(0).sum())
        run = {"batch_size": batch, "seconds": cold_s, "images_per_second": len(paths) / cold_s,
               "faces_per_second": faces / cold_s, "faces_found": faces,
               "images_with_a_face": int(df["encoding.face_found"].fillna(False).sum())}
        if "loop" in result:
            run["speedup_vs_loop"] = run["images_per_second"] / result["loop"]["images_per_second"]
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
    result["machine"]["load_average_after"] = os.getloadavg()
    out = args.out or ROOT / "results" / "bench" / f"encode_cnn_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
