"""Real/fake detectors judged on generators they never saw: leave one generator out, four times.

    nice -n 10 .venv/bin/python bench/realfake_generalisation.py --detectors npr

The data is one manifest (``results/bench/realfake-4sources.csv``, paths relative to it) over four
generators and three kinds of real photo, each row with its ``source`` (the generator of a fake)
and its ``origin`` (the folder it came from):

| source / origin | what | side |
|---|---|---|
| ``stylegan`` / ``ffhq-256`` | Kaggle 140k: StyleGAN fakes and FFHQ reals | 256 px |
| ``stylegan2`` / ``tpdne-128`` | thispersondoesnotexist fakes, FFHQ reals, both JPEG q75 | 128 px |
| ``generated-photos`` | a commercial StyleGAN-family generator, fakes only | 512 px |
| ``sd15`` | Stable Diffusion 1.5 portraits, split by face (dlib distance < 0.4 shares a split) | 256 px |
| ``ffhq-1024`` | FFHQ originals of 300 of the 256 px reals, in the same splits | 1024 px |

For each detector, one run is trained on every generator (``all``: the in-distribution figures)
and one without each generator in turn (its fakes left out of train and valid; the reals are
always all there). Each run is scored on test: every generator's fakes against all test reals
(ROC AUC with a bootstrap 95% interval, TPR at 1% and 5% FPR), and the real recall per origin at
the run's threshold (chosen on valid for 1% FPR). The left-out figures are the ones that say
how a detector meets a new generator; their mean and minimum select a detector. Results go to
``results/bench/realfake.json`` and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_data import (SHARED_DATA, data_or_exit, epoch_printer, load_average, parse_value,  # noqa: E402
                        portraits_by_face)

OUT = ROOT / "results" / "bench"
MANIFEST = OUT / "realfake-4sources.csv"
RESULTS = OUT / "realfake.json"
PRETRAINED_REALFAKE = ROOT / "embedlab" / "pretrained" / "real-fake"
GENERATORS = ("stylegan", "stylegan2", "generated-photos", "sd15")
FOLDS = ("all", *GENERATORS)
TARGETS = {"in_distribution_auc": 0.99, "left_out_gan_auc": 0.95, "left_out_sd15_auc": 0.85,
           "real_recall": 0.98, "tpr_at_1pct_fpr": 0.80}

#: the folders of the manifest: (path under the shared data, origin, source of its fakes)
FOLDERS = [("real-vs-fake/real_vs_fake/real-vs-fake", "ffhq-256", "stylegan"),
           ("stylegan2-tpdne", "tpdne-128", "stylegan2"),
           ("generated-photos", "generated-photos", "generated-photos"),
           ("ffhq-hires", "ffhq-1024", None)]

DETECTORS: dict[str, dict] = {
    "npr": {"model": "npr", "params": {}, "epochs": 6},
    "svm-encoding": {"model": "svm", "features": "encoding"},
    # ImageNet EfficientNet-Lite2 features of the aligned face chip, a linear model on top
    "logreg-effnet-chip": {"model": "logreg", "features": "cnn:efficientnet-lite2[align=hog,size=150]"},
    "dlib-resnet": {"model": "dlib-resnet", "params": {"freeze": "stage2", "face_crop": "chip", "lr": 3e-4,
                                                       "tta_flip": True, "balance": "sources", "flip": True,
                                                       "rotate": 0.0, "shift": 0.0, "zoom": 0.0, "jitter": 0.0,
                                                       "erase": 0.0}, "epochs": 8},
    # ImageNet EfficientNet-Lite2 fine-tuned on the aligned chip: its last 8 blocks and a new head (2 CPU
    # threads train it at about 28 images/s at 150 px; the whole network at 14)
    "effnet-lite2": {"model": "effnet-lite2", "params": {"face_crop": "chip", "freeze": 13, "balance": "sources",
                                                         "flip": True, "rotate": 0.0, "shift": 0.0, "zoom": 0.0,
                                                         "jitter": 0.0, "erase": 0.0}, "epochs": 3},
}


def write_manifest(shared: Path, cache_dir: Path) -> pd.DataFrame:
    """The four-generator manifest, the SD 1.5 portraits split by face; paths relative to the manifest."""
    import os

    from embedlab import datasets

    frames = []
    for folder, origin, source in FOLDERS:
        t = datasets.load(shared / folder)
        t = t.assign(origin=origin, source=np.where(t["label"] == "fake", source, ""))
        frames.append(t[["path", "label", "split", "source", "origin"]])
    portraits, _ = portraits_by_face(shared / "synthetic-emotions", cache_dir)
    frames.append(portraits.assign(label="fake", source="sd15", origin="sd-256")[
        ["path", "label", "split", "source", "origin"]])
    table = pd.concat(frames, ignore_index=True)
    table["path"] = [os.path.relpath(p, MANIFEST.parent) for p in table["path"]]
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(MANIFEST, index=False)
    print(f"{MANIFEST.relative_to(ROOT)}: {len(table)} images; "
          + ", ".join(f"{k[0]}/{k[1]}: {v}" for k, v in table.groupby(["split", "origin"]).size().items()), flush=True)
    return table


def subsampled(manifest: pd.DataFrame, fraction: float) -> Path:
    """The manifest with ``fraction`` of each (source, origin, label) group of train kept (seeded)."""
    train = manifest["split"] == "train"
    kept = (manifest[train].groupby(["source", "origin", "label"], group_keys=False, dropna=False)
            .sample(frac=fraction, random_state=0))
    out = MANIFEST.with_name(f"{MANIFEST.stem}-train{fraction:g}.csv")
    pd.concat([kept, manifest[~train]]).to_csv(out, index=False)
    return out


def tpr_at(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """The share of positives at or above the threshold that calls at most ``fpr`` of the negatives."""
    from embedlab.runs.scoring import threshold_at_fpr

    return float((s[y == 1] >= threshold_at_fpr(s[y == 0], fpr)).mean())


def against_reals(fakes: np.ndarray, reals: np.ndarray) -> dict:
    """One generator's fakes scored against the reals: ROC AUC with its bootstrap 95% interval, and
    the share of fakes caught at 1% and 5% false alarms."""
    from sklearn.metrics import roc_auc_score

    from embedlab.runs.scoring import bootstrap_ci

    y = np.r_[np.ones(len(fakes)), np.zeros(len(reals))].astype(int)
    s = np.r_[fakes, reals]
    return {"roc_auc": float(roc_auc_score(y, s)), "roc_auc_ci": bootstrap_ci(roc_auc_score, [y, s]),
            "tpr_at_1pct_fpr": tpr_at(y, s, 0.01), "tpr_at_5pct_fpr": tpr_at(y, s, 0.05)}


def score(run, manifest: pd.DataFrame) -> dict:
    """Per generator on test against all test reals; real recall per origin at the run's threshold."""
    pred = run.predictions().query("set == 'test'")
    origin = manifest.assign(path=[str((MANIFEST.parent / p).resolve()) for p in manifest["path"]]) \
        .set_index("path")["origin"]
    pred = pred.assign(origin=origin.reindex([str(Path(p).resolve()) for p in pred["path"]]).to_numpy())
    threshold = (run.params.get("threshold") or {}).get("value", 0.5)
    reals = pred[pred["label"] == "real"]
    out: dict = {"threshold": threshold, "generators": {}, "real_recall": {}}
    for gen in GENERATORS:
        fakes = pred[(pred["label"] == "fake") & (pred["source"] == gen)]
        if fakes.empty:
            continue
        out["generators"][gen] = {
            "n_fake": int(len(fakes)), "n_real": int(len(reals)),
            **against_reals(fakes["proba_fake"].to_numpy(), reals["proba_fake"].to_numpy()),
            "recall_at_threshold": float((fakes["proba_fake"] >= threshold).mean())}
    for name, rows in reals.groupby("origin"):
        out["real_recall"][name] = {"n": int(len(rows)), "recall": float((rows["proba_fake"] < threshold).mean())}
    out["real_recall_all"] = float((reals["proba_fake"] < threshold).mean())
    return out


def save(results: dict, key: str) -> dict:
    """Write ``results[key]`` into the results file, keeping what other commands wrote there since."""
    on_disk = json.loads(RESULTS.read_text()).get("results", {}) if RESULTS.is_file() else {}
    on_disk.setdefault(key, {}).update(results[key])
    RESULTS.write_text(json.dumps({"results": on_disk, "summary": summary(on_disk), "targets": TARGETS}, indent=2))
    RESULTS.with_suffix(".md").write_text(markdown(on_disk))
    return on_disk


def summary(results: dict) -> dict:
    """Per detector: in-distribution AUC per generator, left-out AUC per generator, their mean and minimum."""
    out = {}
    for det, folds in results.items():
        inside = {g: v["roc_auc"] for g, v in folds.get("all", {}).get("generators", {}).items()}
        left = {g: folds[g]["generators"][g]["roc_auc"] for g in GENERATORS
                if g in folds and g in folds[g].get("generators", {})}
        out[det] = {"in_distribution_auc": inside, "left_out_auc": left,
                    "left_out_mean": float(np.mean(list(left.values()))) if left else None,
                    "left_out_min": float(min(left.values())) if left else None}
    return out


def markdown(results: dict) -> str:
    lines = ["| detector | trained on | " + " | ".join(f"{g} AUC" for g in GENERATORS)
             + " | real recall (all test reals) | train time |", "|---|---|" + "---|" * (len(GENERATORS) + 2)]
    for det, folds in results.items():
        if "[train" in det:  # learning-curve points: their own table
            continue
        for fold in FOLDS:
            r = folds.get(fold)
            if not r:
                continue
            cells = []
            for g in GENERATORS:
                v = r["generators"].get(g)
                text = "-" if v is None else f"{v['roc_auc']:.3f} [{v['roc_auc_ci'][0]:.3f}, {v['roc_auc_ci'][1]:.3f}]"
                cells.append(f"**{text}**" if g == fold else text)
            trained = "every generator" if fold == "all" else f"all but **{fold}**"
            lines.append(f"| {det} | {trained} | " + " | ".join(cells)
                         + f" | {r['real_recall_all']:.3f} | {r['train_seconds'] / 60:.1f} min |")
    return "\n".join(lines) + "\n" + learning_table(results) + shipped_table(results)


def shipped_table(results: dict) -> str:
    """The shipped detector (``--ship``) on each generator's test fakes: AUC, and TPR at 1% and 5% FPR."""
    rows = [(det, folds["all"]) for det, folds in results.items() if folds.get("all", {}).get("shipped")]
    if not rows:
        return ""
    lines = ["", "| shipped detector | generator | AUC | TPR at 1% FPR | TPR at 5% FPR | fakes caught at its threshold |",
             "|---|---|---|---|---|---|"]
    for det, r in rows:
        for g, v in r["generators"].items():
            lines.append(f"| {det} | {g} | {v['roc_auc']:.3f} [{v['roc_auc_ci'][0]:.3f}, {v['roc_auc_ci'][1]:.3f}] | "
                         f"{v['tpr_at_1pct_fpr']:.3f} | {v['tpr_at_5pct_fpr']:.3f} | {v['recall_at_threshold']:.3f} |")
        recall = ", ".join(f"{o} {v['recall']:.3f} (n={v['n']})" for o, v in r["real_recall"].items())
        photos = r.get("face_photos")
        lines.append(f"\nReal recall at its threshold ({r['threshold']:.4f}): {recall}"
                     + (f"; the {photos['scored']} scored `face-photos` (real photos, not FFHQ's) "
                        f"{photos['real_recall']:.3f}" if photos else "") + ".")
    return "\n".join(lines) + "\n"


def learning_table(results: dict) -> str:
    """Per detector and share of the training images: mean in-distribution and left-out AUC."""
    sums = summary(results)
    rows = []
    for det, s in sums.items():
        base, _, tag = det.partition("[train")
        share = float(tag.rstrip("]")) if tag else 1.0
        if tag or any(k.startswith(det + "[train") for k in sums):
            inside = list(s["in_distribution_auc"].values())
            rows.append((base, share, float(np.mean(inside)) if inside else None, s["left_out_mean"],
                         s["left_out_min"], len(s["left_out_auc"])))
    if not rows:
        return ""
    lines = ["", "| detector | share of training images | mean in-distribution AUC | mean left-out AUC | "
             "min left-out AUC | generators left out |", "|---|---|---|---|---|---|"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for base, share, inside, mean, low, n in sorted(rows):
        lines.append(f"| {base} | {share:g} | {fmt(inside)} | {fmt(mean)} | {fmt(low)} | {n} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", default="npr", help=f"comma-separated, of: {', '.join(DETECTORS)}")
    ap.add_argument("--folds", default=",".join(FOLDS), help="all (every generator) and/or generators to leave out")
    ap.add_argument("--epochs", type=int, default=None, help="override the networks' epochs")
    ap.add_argument("-p", "--param", action="append", default=[], help="KEY=VALUE for the networks (JSON values)")
    ap.add_argument("--tag", default="", help="a name for this variant: runs and results are kept under it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--runs-dir", default=str(ROOT / "results" / "runs"))
    ap.add_argument("--cache-dir", default=str(ROOT / "results" / "cache"))
    ap.add_argument("--resume", action="store_true", help="continue runs that were stopped")
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="train on this share of each (source, label) group of train (a learning curve's point); "
                         "valid and test unchanged")
    ap.add_argument("--ship", default=None, metavar="DETECTORS",
                    help="comma-separated detectors: train each on every generator in this one command (--epochs, -p "
                         "and --tag set the networks among them), stack them when there are several, score the "
                         "result like the folds, and copy it to embedlab/pretrained/real-fake, the model "
                         "predict --task real-fake uses")
    ap.add_argument("--audit", action="store_true", help="the shortcut audit of the trained runs of --detectors "
                    "and --folds: test images at one size and JPEG quality, recall by group and by image size")
    ap.add_argument("--stack", default=None, help="comma-separated detectors already trained: fit the logistic "
                    "combiner of their scores on each fold's valid rows and score it like the others")
    args = ap.parse_args()

    import torch

    import embedlab

    if args.ship and (args.stack or args.audit or args.train_fraction < 1):
        raise SystemExit("error: --ship trains and ships on its own; give it without --stack, --audit and "
                         "--train-fraction")
    data_or_exit(args.data)
    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "bench/realfake_generalisation.py", *sys.argv[1:]])
    manifest = write_manifest(args.data, Path(args.cache_dir))
    data = MANIFEST
    tags = []  # --tag names a variant of the networks' settings, so train_fold gives it to networks only
    if args.train_fraction < 1:  # a learning curve's point: kept apart from the full run of the same tag
        data = subsampled(manifest, args.train_fraction)
        tags.append(f"train{args.train_fraction:g}")
    results = json.loads(RESULTS.read_text()).get("results", {}) if RESULTS.is_file() else {}
    if args.ship:
        parts = [d.strip() for d in args.ship.split(",") if d.strip()]
        keys = [train_fold(args, det, "all", [*tags, "shipped"], data, manifest, results, command) for det in parts]
        key = stack_fold(args, keys, "all", results, manifest, command) if len(keys) > 1 else keys[0]
        from train_emotion import ship

        print(f"shipped {key} to {ship(ROOT / results[key]['all']['run'], PRETRAINED_REALFAKE)}")
        photos = args.data / "face-photos"  # real photos that are not FFHQ's, at the shipped threshold
        if photos.is_dir():
            out = embedlab.load_run(PRETRAINED_REALFAKE).predict(photos, cache_dir=args.cache_dir)
            scored = out[out["proba_fake"].notna()]
            results[key]["all"]["face_photos"] = {"n": int(len(out)), "scored": int(len(scored)),
                                                  "real_recall": float((scored["pred"] == "real").mean())}
            print(f"face-photos: {results[key]['all']['face_photos']}")
        results[key]["all"]["shipped"] = True
        save(results, key)
        return
    if args.stack:
        parts = [d.strip() for d in args.stack.split(",") if d.strip()]
        for fold in [f.strip() for f in args.folds.split(",") if f.strip()]:
            stack_fold(args, parts, fold, results, manifest, command)
        return
    if args.audit:
        for det in [d.strip() for d in args.detectors.split(",") if d.strip()]:
            for fold in [f.strip() for f in args.folds.split(",") if f.strip()]:
                ran = results.get(det, {}).get(fold)
                if ran is None or "run" not in ran:
                    raise SystemExit(f"error: {det} has no {fold} run to audit; train it first")
                ran["audit"] = audit(embedlab.load_run(ROOT / ran["run"]), manifest, args.data, Path(args.cache_dir))
                print(f"audit {det} {fold}: " + json.dumps(ran["audit"]["generators"]), flush=True)
                results.update(save(results, det))
        return
    for det in [d.strip() for d in args.detectors.split(",") if d.strip()]:
        for fold in [f.strip() for f in args.folds.split(",") if f.strip()]:
            train_fold(args, det, fold, tags, data, manifest, results, command)
    print(json.dumps(summary(results), indent=2))


#: the one container every test image is re-saved in for the audit: a side and a JPEG quality
MATCHED_SIDE, MATCHED_QUALITY = 256, 90


def matched_copies(paths: list[str], cache_dir: Path) -> dict[str, str]:
    """Each image resized to one side and re-saved at one JPEG quality, whatever its class: path -> copy."""
    import hashlib

    from PIL import Image

    folder = cache_dir / f"matched-{MATCHED_SIDE}-q{MATCHED_QUALITY}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for path in paths:
        copy = folder / (hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:24] + ".jpg")
        if not copy.is_file():
            with Image.open(path) as im:
                im.convert("RGB").resize((MATCHED_SIDE, MATCHED_SIDE), Image.Resampling.LANCZOS).save(
                    copy, "JPEG", quality=MATCHED_QUALITY)
        out[path] = str(copy)
    return out


def audit(run, manifest: pd.DataFrame, shared: Path, cache_dir: Path) -> dict:
    """The shortcut audit of one run: every generator at one size and compression, fake recall on
    generated-photos by gender and ethnicity, and real recall by image size (1024 px photos against
    their own 256 px copies)."""
    from sklearn.metrics import roc_auc_score

    pred = run.predictions().query("set == 'test'").copy()
    threshold = (run.params.get("threshold") or {}).get("value", 0.5)
    copies = matched_copies(pred["path"].tolist(), cache_dir)
    options = {"crops_dir": None} if run.params.get("kind") in ("network", "stacked") else {}
    again = run.predict(list(copies.values()), cache_dir=str(cache_dir), **options)
    matched = dict(zip(again["path"], again["proba_fake"]))
    pred["matched"] = [matched.get(copies[p], np.nan) for p in pred["path"]]
    out: dict = {"container": {"side": MATCHED_SIDE, "jpeg_quality": MATCHED_QUALITY}, "generators": {}}
    reals = pred[pred["label"] == "real"]
    for gen in GENERATORS:
        fakes = pred[(pred["label"] == "fake") & (pred["source"] == gen)]
        both = pd.concat([fakes, reals])
        both = both[both["matched"].notna()]
        y = (both["label"] == "fake").to_numpy()
        if y.all() or not y.any():
            continue
        original, same = roc_auc_score(y, both["proba_fake"]), roc_auc_score(y, both["matched"])
        out["generators"][gen] = {"roc_auc": float(original), "roc_auc_matched": float(same),
                                  "loss": float(original - same), "learned_the_container": bool(original - same > 0.05)}
    meta = pd.read_csv(shared / "generated-photos" / "metadata.csv")
    meta["path"] = [str((shared / "generated-photos" / f).resolve()) for f in meta["file"]]
    gp = pred[pred["source"] == "generated-photos"].assign(path=lambda t: [str(Path(p).resolve()) for p in t["path"]])
    gp = gp.merge(meta, on="path")
    out["generated_photos_recall"] = {
        col: {str(k): {"n": int(len(g)), "recall": float((g["proba_fake"] >= threshold).mean())}
              for k, g in gp.groupby(col)} for col in ("gender", "ethnicity")}
    photos = run.predict(str(shared / "face-photos"), cache_dir=str(cache_dir), **options)
    scored = photos["proba_fake"].notna()
    out["face_photos"] = {"n": int(len(photos)), "scored": int(scored.sum()),
                          "real_recall": float((photos.loc[scored, "proba_fake"] < threshold).mean())}
    twins = pd.read_csv(shared / "ffhq-hires" / "twins.csv")
    by_path = pred.assign(key=[str(Path(p).resolve()) for p in pred["path"]]).set_index("key")["proba_fake"]
    pairs = [(by_path.get(str((shared / "ffhq-hires" / a).resolve())), by_path.get(str((shared / b).resolve())))
             for a, b in zip(twins["file"], twins["copy_256px"])]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if pairs:
        hi, lo = np.array(pairs).T
        out["hires_twins"] = {"n": len(pairs), "recall_1024": float((hi < threshold).mean()),
                              "recall_256": float((lo < threshold).mean())}
    return out


def train_fold(args, det: str, fold: str, tags: list[str], data: Path, manifest: pd.DataFrame, results: dict,
               command: str) -> str:
    """Train (or reopen) ``det``'s run of ``fold``, score it and save it into ``results``; returns its key."""
    import embedlab

    recipe = DETECTORS[det]
    network = "features" not in recipe
    tags = ([args.tag] if args.tag and network else []) + tags
    key = det + "".join(f"[{t}]" for t in tags)
    name = f"realfake4-{'-'.join([det, *tags])}-{'all' if fold == 'all' else 'without-' + fold}"
    leave_out = None if fold == "all" else fold
    started, folder = time.time(), Path(args.runs_dir) / name
    if (folder / "metrics.json").is_file():
        run = embedlab.load_run(folder)
    elif not network:
        run = embedlab.fit(data, recipe["features"], recipe["model"], runs_dir=args.runs_dir, name=name,
                           cache_dir=args.cache_dir, leave_out=leave_out, command=command)
    else:
        overrides = {k: parse_value(v) for k, v in (p.split("=", 1) for p in args.param)}
        params = {**recipe["params"], "bf16": True, "workers_threads": args.threads, **overrides}
        run = embedlab.fit(data, model=recipe["model"], params=params, runs_dir=args.runs_dir, name=name,
                           cache_dir=args.cache_dir, epochs=args.epochs or recipe["epochs"],
                           resume=args.resume and folder.is_dir(), on_progress=epoch_printer(name),
                           leave_out=leave_out, command=command)
    seconds = round(time.time() - started, 1)
    previous = results.get(key, {}).get(fold, {})
    results.setdefault(key, {})[fold] = {
        "run": str(Path(run.path).resolve().relative_to(ROOT)), "command": command,
        "params": run.params.get("model_params"), **score(run, manifest),
        "train_seconds": previous.get("train_seconds", seconds) if seconds < 5 else seconds,
        "load_average": load_average()}
    report(key, fold, results)
    results.update(save(results, key))
    return key


def report(key: str, fold: str, results: dict) -> None:
    r = results[key][fold]
    print(f"{key} {fold}: " + ", ".join(f"{g} {v['roc_auc']:.3f}" for g, v in r["generators"].items())
          + f"; real recall {r['real_recall_all']:.3f}", flush=True)


def stack_fold(args, parts: list[str], fold: str, results: dict, manifest: pd.DataFrame, command: str) -> str:
    """The stacked run (:func:`embedlab.fit_stack`) of the runs of ``parts`` (keys of ``results``) on ``fold``:
    a logistic regression on their scores fitted on the fold's valid rows, where the generator a fold leaves
    out is absent. Scored and saved beside the others; returns its key."""
    import shutil

    import embedlab

    key = "stack(" + "+".join(parts) + ")"
    bases = [det.split("[", 1)[0] for det in parts]  # a component is named by its detector, tags aside
    names = bases if len(set(bases)) == len(bases) else parts
    runs = {}
    for det, component in zip(parts, names):
        ran = results.get(det, {}).get(fold)
        if ran is None or "run" not in ran:
            raise SystemExit(f"error: {det} has no {fold} run yet; train it first")
        runs[component] = ROOT / ran["run"]
    slug = "-".join(parts).replace("][", "-").replace("[", "-").replace("]", "")
    name = f"realfake4-stack-{slug}-{'all' if fold == 'all' else 'without-' + fold}"
    if (Path(args.runs_dir) / name).exists():
        shutil.rmtree(Path(args.runs_dir) / name)
    started = time.time()
    stacked = embedlab.fit_stack(runs, runs_dir=args.runs_dir, name=name, command=command)
    results.setdefault(key, {})[fold] = {
        "run": str(Path(stacked.path).resolve().relative_to(ROOT)), "components": parts,
        "coefficients": dict(zip(stacked.params["combiner"]["inputs"], stacked.params["combiner"]["coef"])),
        "command": command, **score(stacked, manifest),
        "train_seconds": round(sum(results[d][fold]["train_seconds"] for d in parts) + time.time() - started, 1),
        "load_average": load_average()}
    report(key, fold, results)
    results.update(save(results, key))
    return key


if __name__ == "__main__":
    main()
