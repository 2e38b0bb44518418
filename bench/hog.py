"""dlib's HOG face detector: the PyTorch port against dlib's own, for exactness and speed.

Runs dlib's ``get_frontal_face_detector`` (what face_recognition's
``face_locations(model="hog")`` runs) and embedlab's PyTorch detector
(:mod:`embedlab.features.dlib_hog`) on the same images, both on the same number
of CPU threads, in alternating chunks so that both see the same machine load.
Checks, per image: the same number of faces, box IoU >= 0.95 for every matched
face, and scores within 1e-3; at upsample 0 and at face_recognition's default 1.

    .venv/bin/python bench/hog.py                        # the 1,800 images, 2 threads
    .venv/bin/python bench/hog.py --limit 100 --threads 1 --upsample 0

Writes results/bench/hog.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from bench_data import bench_parser, load_average, table_or_exit, use_threads  # noqa: E402  (bench/ is on sys.path)

MIN_IOU, MAX_SCORE_DIFF = 0.95, 1e-3


def compare(found, expected) -> dict:
    """Per image: counts, and for each of dlib's faces the best-overlapping torch face."""
    from embedlab.features.dlib_hog import box_iou  # here: main() sets the thread count before numpy loads

    out = {"dlib_faces": len(expected), "torch_faces": len(found), "ious": [], "score_diffs": []}
    for box in expected:
        if found:
            best = max(found, key=lambda f: box_iou(f, box))
            out["ious"].append(box_iou(best, box))
            out["score_diffs"].append(abs(best[4] - box[4]))
    return out


def main() -> int:
    parser = bench_parser(__doc__, "hog.json", data_help="real/fake folder")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both detectors")
    parser.add_argument("--chunk", type=int, default=16, help="images per alternation (and per torch call)")
    parser.add_argument("--device", default="cpu", help="where the torch detector runs")
    parser.add_argument("--upsample", default="0,1", help="upsample counts, comma-separated (default: %(default)s)")
    args = parser.parse_args()
    use_threads(args.threads)

    import numpy as np
    import torch

    from embedlab.datasets.images import read_image
    from embedlab.features import dlib_hog

    torch.set_num_threads(args.threads)
    table = table_or_exit(args.data, args.limit)
    # in a fixed shuffled order, so that a run stopped early has covered every split and class alike
    order = np.random.default_rng(0).permutation(len(table))
    paths = table["path"].iloc[order].tolist()
    detector = dlib_hog.load_face_detector(device=args.device)
    warm = [np.zeros((256, 256, 3), np.uint8)]
    dlib_hog.dlib_detections(warm), detector.detect(warm, upsample=1)  # first-call costs outside the timing
    print(f"load average {load_average()}, {args.threads} threads, torch on {args.device}", flush=True)

    result = {"threads": args.threads, "device": args.device, "chunk": args.chunk, "sets": {},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "load_average_before": load_average()},
              "criteria": {"same_face_count": True, "min_iou": MIN_IOU, "max_score_diff": MAX_SCORE_DIFF,
                           "speedup_at_least": 3.0}}
    for upsample in [int(u) for u in args.upsample.split(",")]:
        name = f"real-vs-fake, upsample {upsample}"
        per_image, dlib_s, torch_s = [], 0.0, 0.0
        for start in range(0, len(paths), args.chunk):
            chunk = paths[start:start + args.chunk]
            images = [read_image(p) for p in chunk]
            t = time.perf_counter()
            expected = dlib_hog.dlib_detections(images, upsample=upsample)
            dlib_s += time.perf_counter() - t
            t = time.perf_counter()
            found = detector.detect(images, upsample=upsample)
            torch_s += time.perf_counter() - t
            for path, f, e in zip(chunk, found, expected):
                per_image.append({"path": path, **compare(f, e)})
            print(f"{name}: {len(per_image)}/{len(paths)} dlib {dlib_s:.1f} s, torch {torch_s:.1f} s, "
                  f"load {load_average()[0]}", flush=True)
            summarise(result, name, upsample, per_image, len(paths), dlib_s, torch_s)
            write(result, args.out)
        print(json.dumps({k: v for k, v in result["sets"][name].items()
                          if k != "images_with_a_different_face_count"}), flush=True)
    result["machine"]["load_average_after"] = load_average()
    write(result, args.out)
    print(f"-> {args.out}")
    return 0


def write(result: dict, out: Path) -> None:
    """Written after every chunk: a long run that is stopped still leaves its figures."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)


def summarise(result: dict, name: str, upsample: int, per_image: list[dict], total: int,
              dlib_s: float, torch_s: float) -> None:
    ious = [v for r in per_image for v in r["ious"]]
    diffs = [v for r in per_image for v in r["score_diffs"]]
    mismatched = [r["path"] for r in per_image if r["dlib_faces"] != r["torch_faces"]]
    result["sets"][name] = {
        "images": len(per_image), "of": total, "upsample": upsample,
        "dlib_faces": sum(r["dlib_faces"] for r in per_image),
        "torch_faces": sum(r["torch_faces"] for r in per_image),
        "images_with_a_different_face_count": mismatched,
        "min_iou": min(ious, default=None), "max_score_diff": max(diffs, default=None),
        "faces_below_min_iou": sum(int(v < MIN_IOU) for v in ious),
        "faces_over_score_diff": sum(int(v > MAX_SCORE_DIFF) for v in diffs),
        "dlib_seconds": dlib_s, "torch_seconds": torch_s, "speedup": dlib_s / torch_s,
        "dlib_ms_per_image": 1000 * dlib_s / len(per_image), "torch_ms_per_image": 1000 * torch_s / len(per_image),
        "load_average": load_average(),
    }
    s = result["sets"][name]
    s["exact"] = not mismatched and not s["faces_below_min_iou"] and not s["faces_over_score_diff"]


if __name__ == "__main__":
    sys.exit(main())
