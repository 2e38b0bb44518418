"""Measure where FER-2013 puts the eyes: the template of ``face_crop=align``.

    .venv/bin/python bench/measure_fer_alignment.py --n 4000

Each training image is searched as embedlab/nets/alignment.py searches small images (padded by
half its side with edge pixels, enlarged to about 384 px, dlib HOG without upsampling); where
one face is found, dlib's 68 landmarks give both eye centres. Prints and writes
(results/bench/fer_alignment.json) the medians and quartiles of the eye midpoint's x and y and
of the eye distance, in crop sides (``FER_EYES_X``, ``FER_EYES_Y``, ``FER_EYE_DISTANCE``), the
eyes' roll angle, and, for reference, the HOG box's framing as bench/measure_fer_framing.py
measures it (``FER_SCALE``, ``FER_SHIFT``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def quartiles(values: np.ndarray) -> dict:
    q1, q2, q3 = np.percentile(values, [25, 50, 75]) if len(values) else (float("nan"),) * 3
    return {"median": round(float(q2), 4), "q1": round(float(q1), 4), "q3": round(float(q3), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "train"))
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "fer_alignment.json"))
    args = ap.parse_args()
    from PIL import Image

    from embedlab.features.facerec import face_landmarks, hog_face_locations
    from embedlab.nets.alignment import LANDMARKS, eye_centres, search_view

    files = sorted(Path(args.data).glob("*/*.jpg"))
    random.Random(0).shuffle(files)
    files = files[:args.n]
    eyes, boxes, per_class = [], [], {}
    started = time.time()
    for f in files:
        image = np.asarray(Image.open(f).convert("RGB"))
        side = image.shape[0]
        view, factor, pad = search_view(image)
        found = hog_face_locations(view, 0)
        label = f.parent.name
        per_class.setdefault(label, [0, 0])[0] += 1
        if len(found) != 1:
            continue
        per_class[label][1] += 1
        shape = face_landmarks(view, found, model=LANDMARKS)[0]
        points = (np.array([(p.x, p.y) for p in shape.parts()], float) + 0.5) / factor - 0.5 - pad
        (lx, ly), (rx, ry) = eye_centres(points)
        # continuous coordinates (pixel i covers [i, i + 1]) over the crop's side
        eyes.append([((lx + rx) / 2 + 0.5) / side, ((ly + ry) / 2 + 0.5) / side,
                     np.hypot(rx - lx, ry - ly) / side, np.degrees(np.arctan2(ry - ly, rx - lx))])
        t, r, b, lft = (v / factor - pad for v in found[0])
        boxes.append([side / max(b - t, r - lft), ((t + b) / 2 - side / 2) / max(b - t, r - lft)])
    e, bx = np.array(eyes).reshape(-1, 4), np.array(boxes).reshape(-1, 2)
    out = {"command": "python bench/measure_fer_alignment.py " + " ".join(sys.argv[1:]),
           "data": str(Path(args.data).resolve().relative_to(ROOT.parent)) if Path(args.data).resolve()
           .is_relative_to(ROOT.parent) else args.data,
           "searched": len(files), "found": int(len(e)), "seconds": round(time.time() - started, 1),
           "found_per_class": {k: {"searched": v[0], "found": v[1]} for k, v in sorted(per_class.items())},
           "eyes_x": quartiles(e[:, 0]), "eyes_y": quartiles(e[:, 1]), "eye_distance": quartiles(e[:, 2]),
           "roll_degrees": quartiles(e[:, 3]), "roll_abs_over_5_degrees": float(np.mean(np.abs(e[:, 3]) > 5)),
           "hog_box": {"scale": quartiles(bx[:, 0]), "shift": quartiles(bx[:, 1])}}
    dest = Path(args.out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
