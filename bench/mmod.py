"""dlib's CNN face detector: the PyTorch port against dlib's own, for exactness and speed.

Runs dlib's ``cnn_face_detection_model_v1`` and embedlab's PyTorch detector
(:mod:`embedlab.features.dlib_mmod`) on the same images, both on the same
number of CPU threads, in alternating chunks so that both see the same
machine load. Checks, per image: the same number of faces, box IoU >= 0.95
for every matched face, and confidences within 1e-3.

Images: the 1,800 real/fake images at face_recognition's default upsample
(1) and the face-photos set (photographs up to 0.5 megapixel upsampled once,
larger ones not: upsampled, dlib takes half a minute or more on each).

    .venv/bin/python bench/mmod.py                        # everything, 2 threads
    .venv/bin/python bench/mmod.py --limit 100 --threads 1

Writes results/bench/mmod.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from bench_data import ROOT, bench_parser, load_average, table_or_exit, use_threads  # noqa: E402  (bench/ is on sys.path)

PHOTOS = ROOT.parent / "shared" / "data" / "face-photos"
MIN_IOU, MAX_CONFIDENCE_DIFF = 0.95, 1e-3
LARGE = 500_000  # pixels above which photographs are not upsampled



def compare(found, expected) -> dict:
    """Per image: counts, and for each of dlib's faces the best-overlapping torch face."""
    from embedlab.features.dlib_mmod import box_iou  # here: main() sets the thread count before numpy loads

    out = {"dlib_faces": len(expected), "torch_faces": len(found), "ious": [], "confidence_diffs": []}
    for box in expected:
        if found:
            best = max(found, key=lambda f: box_iou(f, box))
            out["ious"].append(box_iou(best, box))
            out["confidence_diffs"].append(abs(best[4] - box[4]))
    return out


def main() -> int:
    parser = bench_parser(__doc__, "mmod.json", data_help="real/fake folder")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="face-photos folder (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both detectors")
    parser.add_argument("--chunk", type=int, default=16, help="images per alternation (and per torch call)")
    parser.add_argument("--device", default="cpu", help="where the torch detector runs")
    parser.add_argument("--sets", default="face-photos,real-vs-fake",
                        help="which image sets, comma-separated (default: %(default)s)")
    args = parser.parse_args()
    use_threads(args.threads)

    import numpy as np
    import torch

    from embedlab.datasets.images import read_image
    from embedlab.features import dlib_mmod

    torch.set_num_threads(args.threads)
    table = table_or_exit(args.data, args.limit)
    # in a fixed shuffled order, so that a run stopped early has covered every split and class alike
    order = np.random.default_rng(0).permutation(len(table))
    sets = [("real-vs-fake", table["path"].iloc[order].tolist())] if "real-vs-fake" in args.sets else []
    if args.photos.exists() and "face-photos" in args.sets:
        sets.insert(0, ("face-photos", sorted(str(p) for p in args.photos.rglob("*")
                                              if p.suffix.lower() in (".jpg", ".png"))))
    detector = dlib_mmod.load_face_detector(device=args.device)
    dlib_mmod.dlib_detections([np.zeros((64, 64, 3), np.uint8)])  # load dlib's model outside the timing
    print(f"load average {load_average()}, {args.threads} threads, torch on {args.device}", flush=True)

    result = {"threads": args.threads, "device": args.device, "sets": {},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "load_average_before": load_average()},
              "criteria": {"same_face_count": True, "min_iou": MIN_IOU, "max_confidence_diff": MAX_CONFIDENCE_DIFF}}
    for name, paths in sets:
        per_image, dlib_s, torch_s = [], 0.0, 0.0
        for start in range(0, len(paths), args.chunk):
            chunk = paths[start:start + args.chunk]
            images = [read_image(p) for p in chunk]
            ups = [1 if im.shape[0] * im.shape[1] <= LARGE else 0 for im in images]
            t = time.perf_counter()
            expected = [dlib_mmod.dlib_detections([im], upsample=u)[0] for im, u in zip(images, ups)]
            dlib_s += time.perf_counter() - t
            t = time.perf_counter()
            found = [None] * len(images)
            for u in set(ups):
                idx = [i for i, v in enumerate(ups) if v == u]
                for i, dets in zip(idx, detector.detect([images[i] for i in idx], upsample=u)):
                    found[i] = dets
            torch_s += time.perf_counter() - t
            for path, u, f, e in zip(chunk, ups, found, expected):
                per_image.append({"path": path, "upsample": u, **compare(f, e)})
            print(f"{name}: {len(per_image)}/{len(paths)} dlib {dlib_s:.1f} s, torch {torch_s:.1f} s", flush=True)
            summarise(result, name, per_image, len(paths), dlib_s, torch_s)
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


def summarise(result: dict, name: str, per_image: list[dict], total: int, dlib_s: float, torch_s: float) -> None:
    ious = [v for r in per_image for v in r["ious"]]
    diffs = [v for r in per_image for v in r["confidence_diffs"]]
    mismatched = [r["path"] for r in per_image if r["dlib_faces"] != r["torch_faces"]]
    result["sets"][name] = {
        "images": len(per_image), "of": total, "upsample": sorted({r["upsample"] for r in per_image}),
        "dlib_faces": sum(r["dlib_faces"] for r in per_image),
        "torch_faces": sum(r["torch_faces"] for r in per_image),
        "images_with_a_different_face_count": mismatched,
        "min_iou": min(ious, default=None), "max_confidence_diff": max(diffs, default=None),
        "faces_below_min_iou": sum(v < MIN_IOU for v in ious),
        "faces_over_confidence_diff": sum(v > MAX_CONFIDENCE_DIFF for v in diffs),
        "dlib_seconds": dlib_s, "torch_seconds": torch_s, "speedup": dlib_s / torch_s,
        "dlib_images_per_second": len(per_image) / dlib_s, "torch_images_per_second": len(per_image) / torch_s,
    }
    s = result["sets"][name]
    s["exact"] = not mismatched and not s["faces_below_min_iou"] and not s["faces_over_confidence_diff"]


if __name__ == "__main__":
    sys.exit(main())
