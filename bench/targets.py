"""The encode speed targets against what the benchmarks measured, as one table.

Reads results/bench/encode.json (`bench/encode.py`) and encode_cnn_cpu.json
(`bench/encode_cnn.py`); writes results/bench/encode_targets.json and .md, the
table the README quotes. Run it after either benchmark:

    .venv/bin/python bench/targets.py
"""

from __future__ import annotations

import json
import sys

from bench_data import ROOT  # noqa: E402  (bench/ is on sys.path)

BENCH = ROOT / "results" / "bench"


def main() -> int:
    encode = json.loads((BENCH / "encode.json").read_text())
    cnn = json.loads((BENCH / "encode_cnn_cpu.json").read_text())
    run = cnn["runs"][0]
    rows = [
        {"what": "`encode` (HOG, torch engine), cold cache, against face_recognition's loop",
         "target": 8.0, "measured": encode["speedup_cold_vs_naive"], "source": "encode.json"},
        {"what": "`encode` with `detector=cnn` (torch), cold cache, against face_recognition's `model=\"cnn\"` loop",
         "target": 5.0, "measured": run["speedup_vs_loop"], "source": "encode_cnn_cpu.json"},
        {"what": "the `embedlab encode` command: warm cache against cold",
         "target": 50.0, "measured": encode["cli"]["speedup_warm_vs_cold"], "source": "encode.json"},
    ]
    for row in rows:
        row["met"] = row["measured"] >= row["target"]
    (BENCH / "encode_targets.json").write_text(json.dumps(
        {"images": encode["images"], "workers": encode["workers"], "rows": rows}, indent=2))
    lines = ["| what (the 1,800 real/fake images, 2 workers) | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['target']:.0f}x | {r['measured']:.1f}x | {'yes' if r['met'] else 'no'} |"
              for r in rows]
    (BENCH / "encode_targets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
