"""Peak memory of a network fit against the number of images: training streams from disk.

    .venv/bin/python bench/train_memory.py                  # 2,000 and 20,000 images
    .venv/bin/python bench/train_memory.py --sizes 200,2000  # a quick look

Writes generated 256 px JPEGs (smooth random faces of colour, half labelled real, half fake,
in the Kaggle layout) once under ``--work``, then fits the ``npr`` network on each size in a
fresh process for one epoch, and records that process's peak resident memory (and its loader
worker's) in ``results/bench/train_memory.json``. Target: the 20k-image fit at most 1.2x the
2k one and under 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_data import OUT_DIR, load_average  # noqa: E402

TARGETS = {"ratio_20k_to_2k": 1.2, "peak_gb": 3.0}
FIT = """
import json, resource, sys, time
from embedlab.nets import fit_network
started = time.time()
fit_network(sys.argv[1], "npr", {"crop": 32, "eval_crops": 1, "widths": [16, 32, 32], "loader_workers": 1,
            "batch_size": 64, "workers_threads": 2}, epochs=1, runs_dir=sys.argv[2], cache_dir=sys.argv[3],
            name="memory", device="cpu")
print("RESULT " + json.dumps({"seconds": round(time.time() - started, 1),
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "loader_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def write_images(root: Path, n: int) -> Path:
    """``n`` 256 px JPEGs in ``root/{train,valid,test}/{real,fake}`` (80/10/10), written once."""
    import numpy as np
    from PIL import Image

    folder = root / f"images-{n}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    rng = np.random.default_rng(n)
    for i in range(n):
        split = "train" if i % 10 < 8 else "valid" if i % 10 == 8 else "test"
        label = "real" if i % 2 else "fake"
        (folder / split / label).mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC).save(
            folder / split / label / f"{i:06d}.jpg", quality=90)
    done.touch()
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/embedlab-train-memory"))
    ap.add_argument("--out", type=Path, default=OUT_DIR / "train_memory.json")
    args = ap.parse_args()

    script = args.work / "fit.py"
    args.work.mkdir(parents=True, exist_ok=True)
    script.write_text(FIT)
    results = {}
    for n in [int(s) for s in args.sizes.split(",")]:
        data = write_images(args.work, n)
        runs = args.work / f"runs-{n}-{int(time.time())}"
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        out = subprocess.run([sys.executable, str(script), str(data), str(runs), str(args.work / f"cache-{n}")],
                             cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"error: the fit on {n} images failed:\n{out.stderr[-2000:]}")
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
        results[str(n)] = json.loads(line[len("RESULT "):])
        print(f"{n} images: {results[str(n)]}", flush=True)
    sizes = sorted(results, key=int)
    summary = {}
    if len(sizes) >= 2:
        small, large = results[sizes[0]], results[sizes[-1]]
        summary = {"ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
                   "largest_peak_gb": round(large["peak_rss_mb"] / 1024, 3)}
    record = {"command": "python bench/train_memory.py " + " ".join(sys.argv[1:]), "results": results,
              "summary": summary, "targets": TARGETS, "load_average": load_average(),
              "self_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
