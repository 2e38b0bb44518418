"""Face encodings with the face box given: face_recognition's loop, embedlab's dlib engine, its torch engine.

All methods do the same work on the same images in the same run: decode the
image, take the whole aligned crop as the face box, find the 5 landmarks,
cut dlib's 150x150 chip, run the descriptor network. They differ in how:

- ``naive``: what users write with face_recognition, one image at a time in one
  process (``load_image_file`` + ``face_encodings(img, known_face_locations=[box])``);
- ``dlib``: ``embedlab.encode(..., "encoding[detector=none,engine=dlib]")`` with 2 workers;
- ``torch``: the same with ``engine=torch`` (dlib's network in PyTorch, batched),
  with 1 worker (torch using every core) and with 2 workers (one thread each).

The torch engine's encodings are then compared with the naive loop's (dlib's
own) for every image: largest absolute difference per dimension and smallest
cosine similarity, against the targets 1e-4 and 0.99999.

    nice -n 10 .venv/bin/python bench/encode_torch.py             # the 1,800 real/fake images
    .venv/bin/python bench/encode_torch.py --limit 100             # a quick look
    .venv/bin/python bench/encode_torch.py --device cuda           # where a GPU is available

Writes results/bench/encode_torch.json (speed) and
results/bench/encode_torch_exactness.json (agreement with dlib).
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

import numpy as np

from bench_data import OUT_DIR as OUT, bench_parser, load_average, table_or_exit  # bench/ is on sys.path


def naive_loop(paths: list[str]) -> tuple[float, np.ndarray]:
    import face_recognition

    vectors = []
    started = time.perf_counter()
    for path in paths:
        image = face_recognition.load_image_file(path)
        h, w = image.shape[:2]
        vectors.append(face_recognition.face_encodings(image, known_face_locations=[(0, w, h, 0)])[0])
    return time.perf_counter() - started, np.array(vectors)


def embedlab_run(table, engine: str, workers: int, device: str) -> tuple[float, np.ndarray, dict]:
    import embedlab

    spec = f"encoding[detector=none,engine={engine}" + (f",device={device}]" if engine == "torch" else "]")
    cache = Path(tempfile.mkdtemp(prefix="embedlab-bench-"))
    try:
        started = time.perf_counter()
        df = embedlab.encode(table, spec, workers=workers, cache_dir=cache)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if not df["encoding.ok"].all():
        raise SystemExit(f"{spec}: {int((~df['encoding.ok']).sum())} images failed")
    return seconds, np.stack(df["encoding"].to_numpy()), df.attrs["summary"]


def network_only(paths: list[str], device: str, n: int = 64) -> dict:
    """Chips per second through the network alone: dlib's and the torch one."""
    from embedlab.features import dlib_resnet as dr
    from embedlab.datasets.images import read_image

    chips = np.concatenate([dr.face_chips(img, [(0, img.shape[1], img.shape[0], 0)])
                            for img in (read_image(p) for p in paths[:n])])
    net = dr.load_descriptor_net(device=device)
    net.encode(chips[:dr.BATCH_SIZE])  # warm-up
    started = time.perf_counter()
    net.encode(chips)
    torch_s = time.perf_counter() - started
    started = time.perf_counter()
    dr.dlib_encodings(chips[:16])
    dlib_s = time.perf_counter() - started
    return {"chips": len(chips), "device": str(net.device), "torch_chips_per_second": len(chips) / torch_s,
            "dlib_chips_per_second_one_thread": 16 / dlib_s}


def agreement(reference: np.ndarray, other: np.ndarray, ids: list[str]) -> dict:
    diff = np.abs(reference - other)
    cosine = (reference * other).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(other, axis=1)
    worst = int(diff.max(1).argmax())
    return {
        "images": len(ids),
        "max_abs_diff": float(diff.max()),
        "max_abs_diff_per_dimension": [float(x) for x in diff.max(0)],
        "mean_abs_diff": float(diff.mean()),
        "min_cosine": float(cosine.min()),
        "worst_image": ids[worst],
        "images_over_tolerance": int((diff.max(1) > 1e-4).sum()),
        "images_under_min_cosine": int((cosine < 0.99999).sum()),
    }


def main() -> int:
    parser = bench_parser(__doc__, None)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="torch engine device")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import torch


    table = table_or_exit(args.data, args.limit)
    paths, ids = table["path"].tolist(), table["image_id"].tolist()
    n = len(paths)
    print(f"{n} images from {args.data}; load average {load_average()}", flush=True)

    runs: dict[str, dict] = {}
    vectors: dict[str, np.ndarray] = {}

    def record(name: str, seconds: float, **extra) -> None:
        runs[name] = {"seconds": seconds, "images_per_second": n / seconds, "load_average_after": load_average(),
                      **extra}
        print(f"{name:>24}: {seconds:7.1f} s  {n / seconds:7.2f} img/s  (load {load_average()})", flush=True)

    seconds, vectors["naive"] = naive_loop(paths)
    record("naive", seconds, what="face_recognition loop, one process")
    for engine, workers in (("dlib", 2), ("torch", 1), ("torch", 2)):
        seconds, vectors[f"{engine}_{workers}w"], summary = embedlab_run(table, engine, workers, args.device)
        record(f"{engine}_{workers}w", seconds, what=f"embedlab.encode engine={engine} workers={workers}",
               pipeline_seconds=summary["seconds"])
    torch_best = max(("torch_1w", "torch_2w"), key=lambda k: runs[k]["images_per_second"])
    ratios = {
        "torch_vs_naive": runs[torch_best]["images_per_second"] / runs["naive"]["images_per_second"],
        "torch_vs_dlib_2_workers": runs[torch_best]["images_per_second"] / runs["dlib_2w"]["images_per_second"],
        "torch_1w_vs_naive": runs["torch_1w"]["images_per_second"] / runs["naive"]["images_per_second"],
        "torch_2w_vs_naive": runs["torch_2w"]["images_per_second"] / runs["naive"]["images_per_second"],
        "dlib_2w_vs_naive": runs["dlib_2w"]["images_per_second"] / runs["naive"]["images_per_second"],
    }
    net = network_only(paths, args.device)
    print(f"network alone: torch {net['torch_chips_per_second']:.1f} chips/s on {net['device']}, "
          f"dlib {net['dlib_chips_per_second_one_thread']:.1f} chips/s", flush=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
               "python": platform.python_version(), "torch": torch.__version__,
               "torch_threads": torch.get_num_threads(),
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "load_average_at_end": load_average()}
    result = {"data": str(args.data), "images": n, "device": args.device, "machine": machine, "runs": runs,
              "best_torch": torch_best, "ratios": ratios, "network_only": net,
              "targets": {"torch_vs_naive": 4.0, "torch_vs_dlib_2_workers": 2.0}}
    exact = {"data": str(args.data), "reference": "naive (face_recognition.face_encodings, dlib's network)",
             "tolerance": {"max_abs_diff": 1e-4, "min_cosine": 0.99999},
             "torch_1w_vs_dlib": agreement(vectors["naive"], vectors["torch_1w"], ids),
             "torch_2w_vs_dlib": agreement(vectors["naive"], vectors["torch_2w"], ids),
             "dlib_engine_vs_dlib": agreement(vectors["naive"], vectors["dlib_2w"], ids),
             "torch_1w_vs_torch_2w_identical": bool(np.array_equal(vectors["torch_1w"], vectors["torch_2w"]))}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "encode_torch.json").write_text(json.dumps(result, indent=2))
    (args.out / "encode_torch_exactness.json").write_text(json.dumps(exact, indent=2))
    t = exact["torch_1w_vs_dlib"]
    print(f"torch vs naive {ratios['torch_vs_naive']:.2f}x (target 4x), vs dlib 2 workers "
          f"{ratios['torch_vs_dlib_2_workers']:.2f}x (target 2x); exactness: max diff {t['max_abs_diff']:.2g}, "
          f"min cosine {t['min_cosine']:.8f} over {t['images']} images -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
