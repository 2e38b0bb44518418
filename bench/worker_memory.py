"""Resident memory of one worker on the largest images embedlab accepts under its default limits.

Each case runs in a fresh spawned process, as an encode worker does: it prepares the extractor,
notes its resident memory, then reads one image and extracts the feature, and notes the peak
resident memory (VmHWM, reset after preparing). Images: a JPEG and a PNG of exactly the pixel limit (EMBEDLAB_MAX_PIXELS,
16 million by default), and a 8900x8900 JPEG (79 Mpixel, the size that cost 4.8 GB per worker
before the limit) that Pillow's draft mode decodes at a quarter of its side.

    python bench/worker_memory.py        # writes results/bench/worker_memory.json
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACE = ROOT / "data" / "sample" / "face-photos" / "obama.jpg"
OUT = ROOT / "results" / "bench" / "worker_memory.json"
FEATURES = ["none", "pixels", "spectrum", "encoding"]


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM) since :func:`reset_peak` (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def reset_peak() -> None:
    """Start the peak from the memory in use now: a spawned process inherits its parent's ru_maxrss."""
    Path("/proc/self/clear_refs").write_text("5")


def one_case(path: str, feature: str) -> dict:
    """In a fresh worker: peak memory after preparing ``feature``, then after reading and extracting."""
    from embedlab.datasets.images import read_image
    from embedlab.features import create_extractor

    extractor = None if feature == "none" else create_extractor(feature)
    if extractor is not None:
        extractor.prepare()
    reset_peak()
    before = peak_mb()
    started = time.perf_counter()
    image = read_image(path)
    ok = True
    if extractor is not None:
        try:
            extractor.extract(image)
        except Exception as exc:  # no face found is a result too
            ok = f"{type(exc).__name__}: {exc}"
    return {"feature": feature, "decoded": list(image.shape[:2]), "peak_mb_prepared": round(before, 1),
            "peak_mb": round(peak_mb(), 1), "added_mb": round(peak_mb() - before, 1),
            "seconds": round(time.perf_counter() - started, 2), "ok": ok}


def make_images(folder: Path) -> dict[str, Path]:
    from PIL import Image

    from embedlab.datasets.images import limits

    _, max_pixels = limits()
    side = int(max_pixels ** 0.5)
    face = Image.open(FACE).convert("RGB")
    big = face.resize((side, side), Image.Resampling.BICUBIC)
    out = {"jpeg at the pixel limit": folder / "limit.jpg", "png at the pixel limit": folder / "limit.png",
           "jpeg 8900x8900 (drafted)": folder / "huge.jpg"}
    big.save(out["jpeg at the pixel limit"], quality=90)
    big.save(out["png at the pixel limit"])
    face.resize((8900, 8900), Image.Resampling.BILINEAR).save(out["jpeg 8900x8900 (drafted)"], quality=90)
    return out


def main() -> None:
    from embedlab.datasets.images import limits

    max_bytes, max_pixels = limits()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        images = make_images(Path(tmp))
        for label, path in images.items():
            for feature in FEATURES:
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    row = pool.submit(one_case, str(path), feature).result()
                row = {"image": label, "file_mb": round(path.stat().st_size / 2**20, 2), **row}
                print(json.dumps(row), flush=True)
                rows.append(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"max_file_bytes": max_bytes, "max_pixels": max_pixels, "cases": rows,
                               "python": sys.version.split()[0], "machine": platform.machine()}, indent=2) + "\n")
    worst = max(rows, key=lambda r: r["peak_mb"])
    print(f"largest peak: {worst['peak_mb']} MB ({worst['image']}, {worst['feature']}); wrote {OUT}")


if __name__ == "__main__":
    main()
