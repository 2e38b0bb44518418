"""Where the time of `embedlab encode` goes: each stage, per image, for each detector and engine.

Stages, timed one after the other on the same images in one process:
decode (file -> RGB array), detect (HOG at upsample 1 and 0, HOG ``auto``,
dlib's CNN detector and its PyTorch port, both at upsample 1), landmarks
(dlib's 5-point model), chip (dlib's aligned 150 px crop), descriptor (dlib's
network one chip at a time, the PyTorch network in a batch) and cache write
(one Parquet part per chunk of 16 rows, as `encode` writes them).

    .venv/bin/python bench/stages.py                        # 200 of the real/fake images, 1 thread
    .venv/bin/python bench/stages.py --limit 50 --cnn-limit 10 --threads 2

dlib's CNN detector takes about a second per image, so it runs on the first
``--cnn-limit`` images only. Writes results/bench/stages.json and prints the
table the README quotes.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time

from bench_data import bench_parser, load_average, table_or_exit, use_threads  # noqa: E402  (bench/ is on sys.path)


def per_image_ms(seconds: float, n: int) -> float:
    return 1000 * seconds / max(n, 1)


def timed(fn, items):
    started = time.perf_counter()
    out = [fn(x) for x in items]
    return out, time.perf_counter() - started


def main() -> int:
    parser = bench_parser(__doc__, "stages.json", limit=200)
    parser.add_argument("--cnn-limit", type=int, default=20, help="images for dlib's CNN detector")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch and BLAS)")
    args = parser.parse_args()
    use_threads(args.threads)

    import numpy as np
    import torch

    from embedlab.compute.cache import FeatureCache
    from embedlab.datasets.images import read_image
    from embedlab.features import create_extractor, dlib_mmod, dlib_resnet
    from embedlab.features.encoding import largest_box
    from embedlab.features.facerec import import_face_recognition

    torch.set_num_threads(args.threads)
    table = table_or_exit(args.data, args.limit)
    paths = table["path"].tolist()
    n, n_cnn = len(paths), min(args.cnn_limit, len(paths))
    fr = import_face_recognition()
    import dlib

    net = dlib_resnet.load_descriptor_net(device="cpu")
    detector = dlib_mmod.load_face_detector(device="cpu")
    cnn_dlib = fr.api.cnn_face_detector
    print(f"{n} images ({n_cnn} for dlib's CNN detector), {args.threads} threads, load {load_average()}", flush=True)

    stages: dict[str, float] = {}
    images, s = timed(read_image, paths)
    stages["decode"] = per_image_ms(s, n)
    boxes, s = timed(lambda im: fr.face_locations(im, 1, "hog"), images)
    stages["detect: HOG, upsample 1 (dlib)"] = per_image_ms(s, n)
    _, s = timed(lambda im: fr.face_locations(im, 0, "hog"), images)
    stages["detect: HOG, upsample 0 (dlib)"] = per_image_ms(s, n)
    auto = create_extractor("encoding[upsample=auto]")
    auto.prepare()
    _, s = timed(lambda im: auto.locate(im), images)
    stages["detect: HOG, upsample auto (dlib)"] = per_image_ms(s, n)
    _, s = timed(lambda im: cnn_dlib(im, 1), images[:n_cnn])
    stages["detect: CNN, upsample 1 (dlib)"] = per_image_ms(s, n_cnn)
    detector.detect(images[:1], upsample=1)  # first call: thread pools and allocations
    started = time.perf_counter()
    for start in range(0, n, 16):
        detector.detect(images[start:start + 16], upsample=1)
    stages["detect: CNN, upsample 1 (torch, batches of 16)"] = per_image_ms(time.perf_counter() - started, n)

    located = [(im, largest_box(b)) for im, b in zip(images, boxes) if b]
    shapes, s = timed(lambda ib: fr.api._raw_face_landmarks(ib[0], [ib[1]], "small")[0], located)
    stages["landmarks (dlib, 5 points)"] = per_image_ms(s, len(located))
    chips, s = timed(lambda ish: np.asarray(dlib.get_face_chip(ish[0], ish[1], size=150, padding=0.25)),
                     [(im, sh) for (im, _), sh in zip(located, shapes)])
    stages["chip (dlib)"] = per_image_ms(s, len(chips))
    _, s = timed(lambda c: fr.api.face_encoder.compute_face_descriptor(c), chips)
    stages["descriptor (dlib, one chip at a time)"] = per_image_ms(s, len(chips))
    batch = np.stack(chips)
    net.encode(batch[:8])
    started = time.perf_counter()
    vectors = net.encode(batch)
    stages["descriptor (torch, one batch)"] = per_image_ms(time.perf_counter() - started, len(chips))

    ex = create_extractor("encoding")
    rows = [{"hash": f"{i:064x}", "ok": True, "vector": v, "face_found": True, "n_faces": 1, "face_top": 0,
             "face_right": 1, "face_bottom": 1, "face_left": 0} for i, v in enumerate(vectors)]
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        started = time.perf_counter()
        for start in range(0, len(rows), 16):
            cache.append("stages", rows[start:start + 16], ex.dim, ex.info_columns)
        stages["cache write (chunks of 16)"] = per_image_ms(time.perf_counter() - started, len(rows))

    def pipeline(detect: str, descriptor: str) -> float:
        keys = ["decode", detect, "landmarks (dlib, 5 points)", "chip (dlib)", descriptor, "cache write (chunks of 16)"]
        return sum(stages[k] for k in keys)

    totals = {
        "HOG, dlib engine": pipeline("detect: HOG, upsample 1 (dlib)", "descriptor (dlib, one chip at a time)"),
        "HOG, torch engine": pipeline("detect: HOG, upsample 1 (dlib)", "descriptor (torch, one batch)"),
        "CNN, dlib engine": pipeline("detect: CNN, upsample 1 (dlib)", "descriptor (dlib, one chip at a time)"),
        "CNN, torch engine": pipeline("detect: CNN, upsample 1 (torch, batches of 16)",
                                      "descriptor (torch, one batch)"),
    }
    result = {"data": str(args.data), "images": n, "cnn_dlib_images": n_cnn, "faces": len(located),
              "threads": args.threads, "unit": "milliseconds per image", "stages": stages,
              "pipeline_totals": totals,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "load_average_after": load_average()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("| stage | ms per image |\n|---|---|")
    for name, ms in stages.items():
        print(f"| {name} | {ms:.1f} |")
    for name, ms in totals.items():
        print(f"| **sum, {name}** | {ms:.1f} |")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
