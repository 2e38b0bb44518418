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

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_data import ROOT, bench_parser, benchmark_table, load_average, table_or_exit  # noqa: E402  (bench/ is on sys.path)


def naive_loop(paths: list[str]) -> tuple[float, float, list[dict]]:
    """face_recognition's `model="cnn"` loop, keeping what it found for the exactness checks.

    ``face_locations(image, model="cnn")`` is ``_raw_face_locations`` plus a
    conversion of each box; calling the raw form gives the same work and keeps
    dlib's confidences. Returns the loop's seconds, the seconds spent in dlib's
    detector alone, and per image the detections and the largest face's encoding.
    """
    import face_recognition
    from face_recognition.api import _raw_face_locations, _rect_to_css, _trim_css_to_bounds

    found, detect_s = [], 0.0
    started = time.perf_counter()
    for path in paths:
        image = face_recognition.load_image_file(path)
        t = time.perf_counter()
        raw = _raw_face_locations(image, 1, "cnn")
        detect_s += time.perf_counter() - t
        boxes = [_trim_css_to_bounds(_rect_to_css(d.rect), image.shape) for d in raw]
        encodings = face_recognition.face_encodings(image, boxes)
        largest = max(range(len(boxes)), key=lambda i: (boxes[i][2] - boxes[i][0]) * (boxes[i][1] - boxes[i][3]),
                      default=None)
        found.append({"detections": [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(),
                                      float(d.confidence)) for d in raw],
                      "encoding": None if largest is None else encodings[largest]})
    return time.perf_counter() - started, detect_s, found


def compare_encodings(vectors: list, loop_found: list[dict]) -> dict:
    """embedlab's encoding of each image against the loop's encoding of its largest face."""
    import numpy as np

    both = [(v, f["encoding"]) for v, f in zip(vectors, loop_found) if v is not None and f["encoding"] is not None]
    diffs = [float(np.abs(np.asarray(v) - e).max()) for v, e in both]
    return {"images_compared": len(both),
            "face_found_differs": sum((v is None) != (f["encoding"] is None) for v, f in zip(vectors, loop_found)),
            "max_abs_difference": max(diffs, default=None)}


def detector_exactness(paths: list[str], loop_found: list[dict], dlib_detect_s: float, chunk: int = 16) -> dict:
    """The PyTorch detector alone (one process, 2 threads) against the detections the loop recorded."""
    import torch

    from embedlab.datasets.images import read_image
    from embedlab.features import dlib_mmod
    from mmod import MAX_CONFIDENCE_DIFF, MIN_IOU, compare

    torch.set_num_threads(2)
    detector = dlib_mmod.load_face_detector(device="cpu")
    per_image, torch_s = [], 0.0
    for start in range(0, len(paths), chunk):
        images = [read_image(p) for p in paths[start:start + chunk]]
        t = time.perf_counter()
        found = detector.detect(images, upsample=1)
        torch_s += time.perf_counter() - t
        per_image += [compare(f, e["detections"]) for f, e in zip(found, loop_found[start:start + chunk])]
    ious = [v for r in per_image for v in r["ious"]]
    diffs = [v for r in per_image for v in r["confidence_diffs"]]
    mismatched = [p for p, r in zip(paths, per_image) if r["dlib_faces"] != r["torch_faces"]]
    out = {"images": len(paths), "threads": 2,
           "dlib_faces": sum(r["dlib_faces"] for r in per_image),
           "torch_faces": sum(r["torch_faces"] for r in per_image),
           "images_with_a_different_face_count": mismatched, "min_iou": min(ious, default=None),
           "max_confidence_diff": max(diffs, default=None),
           "faces_below_min_iou": sum(v < MIN_IOU for v in ious),
           "faces_over_confidence_diff": sum(v > MAX_CONFIDENCE_DIFF for v in diffs),
           "dlib_detector_seconds": dlib_detect_s, "torch_detector_seconds": torch_s,
           "detector_speedup": dlib_detect_s / torch_s}
    out["exact"] = not mismatched and not out["faces_below_min_iou"] and not out["faces_over_confidence_diff"]
    return out


def main() -> int:
    parser = bench_parser(__doc__, None)
    parser.add_argument("--loop-limit", type=int, default=None, help="images for face_recognition's loop")
    parser.add_argument("--skip-loop", action="store_true", help="time embedlab only")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: 2 on CPU, 1 on CUDA)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16], help="images per chunk (several: one run each)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import embedlab
    import torch

    table = table_or_exit(args.data, args.limit)
    paths = table["path"].tolist()
    workers = args.workers or (2 if args.device == "cpu" else 1)
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    print(f"{len(paths)} images, {args.device} {card or ''}, {workers} workers; load {load_average()}", flush=True)
    result = {"data": str(args.data), "images": len(paths), "device": args.device, "gpu": card,
              "workers": workers, "runs": [],
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "load_average_before": load_average()}}
    if not args.skip_loop:
        loop_paths = paths[:args.loop_limit] if args.loop_limit else paths
        loop_s, loop_detect_s, loop_found = naive_loop(loop_paths)
        result["loop"] = {"images": len(loop_paths), "seconds": loop_s, "images_per_second": len(loop_paths) / loop_s,
                          "detector_seconds": loop_detect_s,
                          "images_with_a_face": sum(f["encoding"] is not None for f in loop_found),
                          "faces_found": sum(len(f["detections"]) for f in loop_found)}
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
            run["encodings_vs_loop"] = compare_encodings(df["encoding"].tolist()[:len(loop_found)], loop_found)
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
    if "loop" in result and args.device == "cpu":
        result["detector"] = detector_exactness(loop_paths, loop_found, loop_detect_s)
        print(json.dumps(result["detector"]), flush=True)
    result["machine"]["load_average_after"] = load_average()
    out = args.out or ROOT / "results" / "bench" / f"encode_cnn_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
