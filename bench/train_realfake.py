"""Train the real/fake reference detectors (cnn and fusion-cnn) on the 140k subset and measure them.

    nice -n 10 .venv/bin/python bench/train_realfake.py --epochs 8
    .venv/bin/python bench/train_realfake.py --ship cnn      # also copy that run to embedlab/pretrained/real-fake

Runs land in results/runs/real-vs-fake-<network>/; test accuracy, ROC AUC and
their bootstrap 95% intervals go to results/bench/realfake.json. The faces
are aligned crops, so the encoding branch of fusion-cnn reads
encoding[detector=none].
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TARGET = 0.95


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(SHARED / "real-vs-fake" / "real_vs_fake" / "real-vs-fake"))
    ap.add_argument("--networks", default="cnn,fusion-cnn")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs-dir", default=str(ROOT / "results" / "runs"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--suffix", default="", help="appended to the run names, e.g. -128")
    ap.add_argument("--ship", default=None, help="network whose run is copied to embedlab/pretrained/real-fake")
    args = ap.parse_args()

    import torch

    from embedlab.nets import fit_network, load_network_run

    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "bench/train_realfake.py", *sys.argv[1:]])
    results = {}
    for network in [n.strip() for n in args.networks.split(",") if n.strip()]:
        name = f"real-vs-fake-{network}{args.suffix}"
        params = {"size": args.size, "bf16": args.bf16, "workers_threads": args.threads}
        if "fusion" in network or network == "encoding-mlp":
            params["encoding"] = "encoding[detector=none]"
        started = time.time()
        if (Path(args.runs_dir) / name / "metrics.json").is_file() and not args.resume:
            run = load_network_run(Path(args.runs_dir) / name)
        else:
            def progress(done, total, info, network=network):
                if info.get("end_of_epoch"):
                    print(f"{network} epoch {info['epoch']}/{info['epochs']}: train loss {info['train_loss']:.3f} "
                          f"acc {info['train_acc']:.3f}, val loss {info['val_loss']:.3f} acc {info['val_acc']:.3f}, "
                          f"{info['seconds']:.0f} s", flush=True)

            run = fit_network(args.data, network, params, runs_dir=args.runs_dir, name=name,
                              cache_dir=str(ROOT / "results" / "cache"), seed=args.seed, device=args.device,
                              epochs=args.epochs, resume=args.resume, on_progress=progress, command=command)
        test = run.metrics["sets"]["test"]
        results[network + args.suffix] = {"run": str(run.path), "n": test["n"], "accuracy": test["accuracy"],
                            "accuracy_ci": test["accuracy_ci"], "roc_auc": test.get("roc_auc"),
                            "roc_auc_ci": test.get("roc_auc_ci"), "balanced_accuracy": test["balanced_accuracy"],
                            "recall": {c: v["recall"] for c, v in test["per_class"].items()},
                            "training": run.metrics.get("training"), "seconds": round(time.time() - started, 1),
                            "model_mb": round((run.path / "model.pt").stat().st_size / 2**20, 2),
                            "command": run.params.get("command"), "target_met": test["accuracy"] >= TARGET}
        r = results[network + args.suffix]
        print(f"{network}: test acc {r['accuracy']:.3f} {r['accuracy_ci']}, ROC AUC {r['roc_auc']:.3f} "
              f"{r['roc_auc_ci']}", flush=True)
    out = ROOT / "results" / "bench" / "realfake.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    out.write_text(json.dumps({**previous, **results, "target_accuracy": TARGET}, indent=2))
    if args.ship:
        sys.path.insert(0, str(ROOT / "bench"))
        from train_emotion import ship

        dest = ship(Path(args.runs_dir) / f"real-vs-fake-{args.ship}{args.suffix}", ROOT / "embedlab" / "pretrained" / "real-fake")
        print(f"shipped {dest}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
