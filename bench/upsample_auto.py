"""`upsample=auto` against upsample 1 for the HOG detector: time, faces found, and what changes in the encodings.

`auto` looks for faces without upsampling and upsamples once only the images
where none was found. On the faces both settings find, the box can differ
(another scale of the pyramid), and so the encoding; this measures by how much.

    .venv/bin/python bench/upsample_auto.py --limit 200

Writes results/bench/upsample_auto.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_data import bench_parser, benchmark_table, load_average, table_or_exit  # noqa: E402  (bench/ is on sys.path)


def main() -> int:
    parser = bench_parser(__doc__, "upsample_auto.json")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import numpy as np

    import embedlab

    table_or_exit(args.data, 1)
    runs = {}
    for upsample in ("1", "auto"):
        cache = Path(tempfile.mkdtemp(prefix="embedlab-bench-"))
        try:
            started = time.perf_counter()
            spec = f"encoding[detector=hog,upsample={upsample}]"
            df = embedlab.encode(benchmark_table(args.data, args.limit), spec, workers=args.workers, cache_dir=cache)
            runs[upsample] = (df, time.perf_counter() - started)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        print(f"upsample={upsample}: {runs[upsample][1]:.1f} s", flush=True)
    (one, one_s), (auto, auto_s) = runs["1"], runs["auto"]
    both = one["encoding.ok"].to_numpy() & auto["encoding.ok"].to_numpy()
    a, b = np.stack(one.loc[both, "encoding"]), np.stack(auto.loc[both, "encoding"])
    distance = np.linalg.norm(a - b, axis=1)
    same_box = np.all(one.loc[both, ["encoding.face_top", "encoding.face_left", "encoding.face_bottom",
                                     "encoding.face_right"]].to_numpy()
                      == auto.loc[both, ["encoding.face_top", "encoding.face_left", "encoding.face_bottom",
                                         "encoding.face_right"]].to_numpy(), axis=1)
    result = {
        "data": str(args.data), "images": len(one), "workers": args.workers,
        "seconds": {"upsample_1": one_s, "auto": auto_s}, "speedup_auto_vs_1": one_s / auto_s,
        "faces_found": {"upsample_1": int(one["encoding.ok"].sum()), "auto": int(auto["encoding.ok"].sum())},
        "found_by_both": int(both.sum()), "same_box": int(same_box.sum()),
        "encoding_distance_where_both_found": {
            "median": float(np.median(distance)), "p95": float(np.quantile(distance, 0.95)),
            "max": float(distance.max()), "over_0.1": int((distance > 0.1).sum())},
        "load_average_after": load_average(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
