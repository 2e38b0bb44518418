"""Measure how FER-2013 crops frame a face, in terms of the dlib HOG face box.

    .venv/bin/python bench/measure_fer_framing.py --n 1000

FER faces fill their 48x48 crop, so HOG rarely fires on them as they are:
each crop is padded by half its side (with its mean grey), upscaled 2x and
searched with one upsampling. For the faces found, prints the median of the
crop side over the box side (``FER_SCALE`` in embedlab/nets/images.py) and of
how far below the crop centre the box centre sits, in box sides (``FER_SHIFT``);
writes results/bench/fer_framing.json.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "train"))
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    from PIL import Image

    from embedlab.features.facerec import import_face_recognition

    fr = import_face_recognition()
    files = sorted(Path(args.data).glob("*/*.jpg"))
    random.Random(0).shuffle(files)
    rows = []
    for f in files[:args.n]:
        g = np.asarray(Image.open(f).convert("L"))
        pad = g.shape[0] // 2
        g = np.pad(g, pad, mode="constant", constant_values=int(g.mean()))
        im = np.asarray(Image.fromarray(g).convert("RGB").resize((g.shape[1] * 2, g.shape[0] * 2),
                                                                  Image.Resampling.BICUBIC))
        boxes = fr.face_locations(im, 1, "hog")
        if len(boxes) == 1:
            rows.append([v / 2 - pad for v in boxes[0]])
    a = np.array(rows, dtype=float).reshape(-1, 4)
    side = np.maximum(a[:, 2] - a[:, 0], a[:, 1] - a[:, 3])
    cy = (a[:, 0] + a[:, 2]) / 2
    out = {"searched": min(args.n, len(files)), "found": int(len(a)),
           "scale_median": float(np.median(48 / side)) if len(a) else None,
           "scale_mean": float(np.mean(48 / side)) if len(a) else None,
           "shift_median": float(np.median((cy - 24) / side)) if len(a) else None}
    dest = ROOT / "results" / "bench" / "fer_framing.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
