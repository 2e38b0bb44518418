"""Train an emotion network on FER-2013 and ship it in embedlab/pretrained/emotion/.

    .venv/bin/python bench/train_emotion.py --network dlib-resnet --epochs 20 \
        -p size=48 -p channels=1 -p tta_flip=true               # the shipped model
    .venv/bin/python bench/train_emotion.py --network emotion-cnn --epochs 30 --no-ship
    .venv/bin/python bench/train_emotion.py --resume ...      # after an interruption
    .venv/bin/python bench/train_emotion.py --ship-only       # copy the run folder as it is now
    .venv/bin/python bench/train_emotion.py --recipe emotion-adapted ...   # FER-2013 and generated portraits

Two recipes ship. ``emotion`` learns from FER-2013 only. ``emotion-adapted`` also learns from
the generated portraits of ``synthetic-emotions``: they are split by identity (portraits whose
dlib encodings lie within 0.6 of each other, chained, share one split; see
``embedlab.datasets.splits.split_by_identity``) into train, valid and a test share the model never
sees; the manifest of both sets lands in results/bench/emotion-adapted.csv, and the split (each
portrait's, with its figures) in results/bench/emotion_identity_split.json.

``-p key=value`` sets any parameter of the network (``embedlab fit --help`` and
``NETWORKS.create(NAME).resolve()`` list them).

The run lands in results/runs/<name>/ (checkpointed every epoch); its best
weights, metrics, history and the exact command are then copied to
embedlab/pretrained/emotion/ and a summary goes to results/bench/emotion_train.json.
Measure the shipped model with bench/eval_emotion.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
PRETRAINED = ROOT / "embedlab" / "pretrained" / "emotion"
#: where each recipe ships, and the summary of its training
RECIPES = {"emotion": (PRETRAINED, ROOT / "results" / "bench" / "emotion_train.json"),
           "emotion-adapted": (PRETRAINED.with_name("emotion-adapted"),
                               ROOT / "results" / "bench" / "emotion_adapted_train.json")}
ADAPTED_MANIFEST = ROOT / "results" / "bench" / "emotion-adapted.csv"
IDENTITY_SPLIT = ROOT / "results" / "bench" / "emotion_identity_split.json"
#: identity split of the portraits: the distance face_recognition calls one person, and the shares
#: (train, valid, test); test gets more than valid because the largest identities come first
IDENTITY_DISTANCE, IDENTITY_SHARES = 0.6, (0.6, 0.15, 0.25)
#: files of a run folder that ship (no optimiser checkpoint, no crops)
SHIPPED = ("params.json", "metrics.json", "history.csv", "model.pt", "predictions.parquet")


def portable_run_folder(folder: Path, params: dict, run_dir: Path) -> None:
    """Name the data of a run about to ship relative to the repository, not by this machine's paths:
    ``params``' data records and the image paths of ``folder``'s predictions (``image_paths_relative_to``)."""
    import pandas as pd

    from embedlab.runs.provenance import portable_path, rebased

    params["data"] = rebased(params["data"], run_dir)
    params["eval_on"] = [rebased(e, run_dir) for e in params.get("eval_on") or []]
    metrics = json.loads((folder / "metrics.json").read_text())
    for figures in metrics.get("sets", {}).values():  # runs of older versions named the set's dataset by path
        if isinstance(figures.get("dataset"), str) and os.path.isabs(figures["dataset"]):
            figures["dataset"] = Path(figures["dataset"]).stem
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    predictions = pd.read_parquet(folder / "predictions.parquet")
    for column in ("path", "image_id"):
        predictions[column] = [portable_path(p, run_dir, "repository") if os.path.isabs(p) else p
                               for p in predictions[column]]
    predictions.to_parquet(folder / "predictions.parquet", index=False)
    params["image_paths_relative_to"] = "repository"


def copy_shippable(run_dir: Path, dest: Path) -> dict:
    """Copy a run's records and model files to ``dest``, its data named portably; a stacked run's
    components go with it, each the same way. Returns the copy's params."""
    dest.mkdir(parents=True)
    params = json.loads((run_dir / "params.json").read_text())
    for name in {*SHIPPED, *params.get("model_files", [])}:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, dest / name)
    params["shipped_from"] = str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir)
    portable_run_folder(dest, params, run_dir)
    (dest / "params.json").write_text(json.dumps(params, indent=2))
    for component in params.get("components") or []:
        copy_shippable(run_dir / "components" / component["name"], dest / "components" / component["name"])
    return params


def ship(run_dir: Path, dest: Path = PRETRAINED, max_mb: float = 30.0) -> Path:
    """Copy the shippable files of ``run_dir`` to ``dest`` (refusing model files over ``max_mb`` in all)."""
    weights = (".pt", ".skops", ".ubj", ".npz")
    size = sum(f.stat().st_size for f in run_dir.rglob("*")
               if f.is_file() and f.suffix in weights and f.name != "last.pt") / 2**20
    if size > max_mb:
        raise SystemExit(f"{run_dir}: its model files are {size:.1f} MB, over the {max_mb} MB limit")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    params = copy_shippable(run_dir, tmp)
    resumed = params.get("resumed_with") or []
    commands = [params["command"]] + ([resumed] if isinstance(resumed, str) else list(resumed))
    (tmp / "COMMAND").write_text("\n".join(commands) + "\n")
    metrics = json.loads((tmp / "metrics.json").read_text())
    how = ("Produced by this command, run once, uninterrupted, from the repository root:" if len(commands) == 1 else
           "Produced by these commands, run in order from the repository root (each `--resume` continues "
           "the run from its last checkpoint):")
    if params.get("kind") == "stacked":
        parts = ", ".join(f"`{c['name']}` ({c['model']}" + (f" on {' + '.join(c['features'])})" if c["features"]
                                                             else ")") for c in params["components"])
        trained = (f"A stack of {parts}, each a run folder under `components/`, joined by a logistic regression "
                   f"on their log-odds fitted on the {params['combiner']['n']} valid images only; trained on "
                   f"{params['data']['name']}.")
    else:
        trained = (f"Trained on {params['data']['name']} ({params['splits']['counts']}), "
                   f"{params.get('training', {}).get('epochs_run')} epochs, best epoch "
                   f"{params.get('training', {}).get('best_epoch')}, device {params.get('device')}.")
    lines = [f"# Reference run `{params['name']}` ({params['model']})", "", how, "",
             *[f"    {c}" for c in commands], "", trained, "",
             "| set | n | accuracy | 95% CI | balanced accuracy |", "|---|---|---|---|---|"]
    for set_name, m in metrics["sets"].items():
        ci = m.get("accuracy_ci") or [float("nan")] * 2
        lines.append(f"| {set_name} | {m['n']} | {m['accuracy']:.3f} | {ci[0]:.3f}-{ci[1]:.3f} | "
                     f"{m['balanced_accuracy']:.3f} |")
    if params.get("interruptions"):
        lines += ["", f"Interruptions: {params['interruptions']}."]
    if params["model_params"].get("tta_flip"):
        lines += ["", "Predictions average each face and its mirror image (`tta_flip`)."]
    lines += ["", "Full figures: metrics.json; per-epoch history: history.csv; weights: model.pt "
              "(a state_dict, loaded with weights_only=True)." if params.get("kind") != "stacked" else
              "Full figures: metrics.json; each component's own figures, history and weights in its folder."]
    (tmp / "README.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def adapted_manifest(fer: Path, portraits: Path, cache_dir: Path, seed: int = 0) -> Path:
    """FER-2013 (valid carved from train as a FER-only run carves it) and the portraits split by
    identity, in one manifest whose ``source`` says which set each image came from."""
    import numpy as np
    import pandas as pd

    import embedlab
    from embedlab import datasets
    from embedlab.datasets.splits import split_by_identity, split_roles

    table = datasets.load(fer)
    roles, _ = split_roles(table, 0.1, seed)
    fer_rows = table.assign(split=roles.to_numpy(), source="fer2013", origin="fer2013")
    faces = embedlab.encode(portraits, "encoding", cache_dir=cache_dir).sort_values("path").reset_index(drop=True)
    splits, ids = split_by_identity(list(faces["encoding"]), IDENTITY_DISTANCE, IDENTITY_SHARES, seed)
    portrait_rows = faces.assign(split=splits, source="synthetic-emotions", origin="synthetic-emotions")
    manifest = pd.concat([fer_rows, portrait_rows], ignore_index=True)[["path", "label", "split", "source", "origin"]]
    manifest["path"] = [os.path.relpath(p, ADAPTED_MANIFEST.parent) for p in manifest["path"]]
    ADAPTED_MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(ADAPTED_MANIFEST, index=False)
    counts = portrait_rows.groupby(["split", "label"]).size().unstack(fill_value=0)
    record = {"distance": IDENTITY_DISTANCE, "shares": list(IDENTITY_SHARES), "seed": seed,
              "portraits": len(faces), "without_a_face": int(faces["encoding"].isna().sum()),
              "identities": int(np.unique(ids).size),
              "largest_identities": sorted(np.bincount(ids).tolist(), reverse=True)[:5],
              "per_split": {split: {k: int(v) for k, v in row.items()} for split, row in counts.iterrows()},
              "manifest": str(ADAPTED_MANIFEST.relative_to(ROOT)),
              # each portrait's split by its path under the portraits folder: what the benchmarks score on
              "split_of": {Path(path).resolve().relative_to(Path(portraits).resolve()).as_posix(): split
                           for path, split in zip(faces["path"], splits)}}
    IDENTITY_SPLIT.write_text(json.dumps(record, indent=2))
    print(f"{ADAPTED_MANIFEST.relative_to(ROOT)}: {len(manifest)} images; portraits by identity: "
          + json.dumps(record["per_split"]), flush=True)
    return ADAPTED_MANIFEST


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", choices=tuple(RECIPES), default="emotion",
                    help="emotion: FER-2013 only; emotion-adapted: FER-2013 and the portraits' train share")
    ap.add_argument("--data", default=str(SHARED / "fer2013"))
    ap.add_argument("--portraits", default=str(SHARED / "synthetic-emotions"),
                    help="emotion-adapted: the generated portraits split by identity")
    ap.add_argument("--eval-on", default=str(SHARED / "synthetic-emotions"),
                    help="a labelled set scored whole after training ('none': no such set)")
    ap.add_argument("--network", default="dlib-resnet")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a network parameter, e.g. -p size=48 -p lr=5e-4 (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="bfloat16 autocast (fast on avx512_bf16/AMX CPUs and on GPUs)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None, help="run name (default: fer2013-NETWORK)")
    ap.add_argument("--runs-dir", default=str(ROOT / "results" / "runs"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ship-only", action="store_true")
    ap.add_argument("--no-ship", action="store_true", help="train and score, but leave the shipped model alone")
    args = ap.parse_args()

    args.name = args.name or (f"fer2013-{args.network}" if args.recipe == "emotion" else
                              f"emotion-adapted-{args.network}")
    run_dir = Path(args.runs_dir) / args.name
    dest, summary_file = RECIPES[args.recipe]
    if not args.ship_only:
        import torch

        from embedlab.nets import fit_network

        torch.set_num_threads(args.threads)
        from embedlab.features import parse_value

        params = {"bf16": args.bf16, "workers_threads": args.threads}
        for item in args.param:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"-p {item!r}: expected KEY=VALUE")
            params[key.strip()] = parse_value(value.strip())
        command = shlex.join(["python", "bench/train_emotion.py", *sys.argv[1:]])
        started = time.time()

        def progress(done, total, info):
            if info.get("end_of_epoch"):
                print(f"epoch {info['epoch']}/{info['epochs']}: train loss {info['train_loss']:.3f} "
                      f"acc {info['train_acc']:.3f}, val loss {info['val_loss']:.3f} acc {info['val_acc']:.3f}, "
                      f"lr {info['lr']:.2e}, {info['seconds']:.0f} s", flush=True)

        data, eval_on = args.data, [] if args.eval_on == "none" else [args.eval_on]
        if args.recipe == "emotion-adapted":  # the portraits are in the data; their test share is scored with it
            data, eval_on = adapted_manifest(Path(args.data), Path(args.portraits), ROOT / "results" / "cache",
                                             args.seed), []
        run = fit_network(data, args.network, params, eval_on=eval_on, runs_dir=args.runs_dir,
                          name=args.name, cache_dir=str(ROOT / "results" / "cache"), seed=args.seed,
                          device=args.device, epochs=args.epochs, resume=args.resume, on_progress=progress,
                          command=command)
        print(f"trained in {time.time() - started:.0f} s: {run.path}", flush=True)
    if args.no_ship:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(json.dumps({k: {"n": v["n"], "accuracy": v["accuracy"]} for k, v in metrics["sets"].items()}, indent=2))
        return
    dest = ship(run_dir, dest)
    metrics = json.loads((dest / "metrics.json").read_text())
    summary = {"run": str(run_dir), "shipped": str(dest.relative_to(ROOT)),
               "command": json.loads((dest / "params.json").read_text())["command"],
               "model_mb": round((dest / "model.pt").stat().st_size / 2**20, 2),
               "training": metrics.get("training"),
               "sets": {k: {"n": v["n"], "accuracy": v["accuracy"], "accuracy_ci": v["accuracy_ci"],
                            "balanced_accuracy": v["balanced_accuracy"]} for k, v in metrics["sets"].items()}}
    summary_file.parent.mkdir(parents=True, exist_ok=True)
    summary_file.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["sets"], indent=2))


if __name__ == "__main__":
    main()
