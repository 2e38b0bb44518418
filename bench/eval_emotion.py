"""Measure emotion networks against the targets of the emotion model: FER-2013 and generated portraits.

    .venv/bin/python bench/eval_emotion.py                 # the shipped embedlab/pretrained/emotion
    .venv/bin/python bench/eval_emotion.py --run results/runs/A --run results/runs/B ...

For each run, with and without test-time flip averaging: FER-2013 PrivateTest and
PublicTest (each alone, and together) and the five classes of synthetic-emotions
(portraits face-cropped the FER way first; the crops are kept in
results/crops/eval-emotion/), with bootstrap 95% intervals, macro F1 and per-class
recall, plus the run's training time, device and images/s. Writes
results/bench/emotion.json and prints the README's table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TARGETS = {"fer_private": 0.70, "synthetic_5way": 0.65, "fer_min_recall": 0.30}


def summary(m: dict) -> dict:
    return {"n": m["n"], "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"],
            "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
            "recall": {c: v["recall"] for c, v in m["per_class"].items() if v["recall"] is not None},
            "confusion_matrix": m["confusion_matrix"], "labels": m["labels"],
            "missing_classes": m["missing_classes"]}


def training_summary(run) -> dict:
    """Train time, device and throughput, from the run's history."""
    history = run.history()
    n_train = run.params["splits"]["counts"]["train"]
    seconds = float(history["seconds"].sum())
    return {"epochs": int(len(history)), "best_epoch": run.params.get("training", {}).get("best_epoch"),
            "seconds": round(seconds, 1), "device": run.params.get("device"),
            "threads": run.params["model_params"].get("workers_threads"),
            "bf16": run.params["model_params"].get("bf16"),
            "train_images_per_second": round(n_train * len(history) / seconds, 1) if seconds else None}


def score_sets(classes: list[str], fer_labels, fer_probas, subsets: pd.Series, synth_labels, synth_probas) -> dict:
    """PrivateTest, PublicTest, both, and the portraits (7-way and over the five emotions they hold)."""
    from embedlab.runs.scoring import evaluate

    sets = {}
    for key, mask in (("fer_private", subsets == "PrivateTest"), ("fer_public", subsets == "PublicTest"),
                      ("fer_public_private", subsets.isin(["PublicTest", "PrivateTest"]))):
        mask = mask.to_numpy()
        sets[key] = summary(evaluate(list(pd.Series(fer_labels)[mask]), fer_probas[mask], classes))
    sets["synthetic"] = summary(evaluate(list(synth_labels), synth_probas, classes))
    # the portraits hold five emotions: score them as a five-way choice (disgust/fear never predicted)
    five = sorted(set(synth_labels))
    sets["synthetic_5way"] = summary(evaluate(list(synth_labels), synth_probas[:, [classes.index(c) for c in five]],
                                              five))
    return sets


def with_min_recall(sets: dict, **extra) -> dict:
    rec = sets["fer_private"]["recall"]
    return {"sets": sets, "fer_min_recall": min(rec.values()) if rec else None, **extra}


def probas_of(frame: pd.DataFrame, classes: list[str]):
    return frame[[f"proba_{c}" for c in classes]].to_numpy(float)


def evaluate_run(path: str, fer: pd.DataFrame, synth: pd.DataFrame, tta: bool) -> dict:
    from embedlab.nets import load_network_run

    run = load_network_run(path)
    run.params["model_params"]["tta_flip"] = tta
    classes = run.classes
    pred = run.predict(fer, cache_dir=ROOT / "results" / "cache", crops_dir=None)
    spred = run.predict(synth, cache_dir=None, crops_dir=ROOT / "results" / "crops" / "eval-emotion")
    sets = score_sets(classes, fer["label"].tolist(), probas_of(pred, classes), fer["subset"],
                      synth["label"].tolist(), probas_of(spred, classes))
    found = spred["face_found"].fillna(False).astype(bool)
    sets["synthetic_5way"]["faces_found"] = int(found.sum())
    sets["synthetic_5way"]["no_face_found"] = int((~found).sum())
    return with_min_recall(sets)


def evaluate_stored(path: str, fer: pd.DataFrame) -> dict:
    """The same figures from a run's stored predictions, for a run whose weights were not kept.

    Its FER-2013 test rows are matched to PrivateTest/PublicTest by image id; its
    other evaluation set is taken as the portraits, face-cropped before training.
    """
    from embedlab.nets import load_network_run

    classes = load_network_run(path).classes
    pred = pd.read_parquet(Path(path) / "predictions.parquet")
    test = pred[pred["set"] == "test"].merge(fer[["image_id", "subset"]], on="image_id", how="left")
    synth = pred[~pred["set"].isin(["train", "valid", "test"])]
    sets = score_sets(classes, test["label"].tolist(), probas_of(test, classes), test["subset"],
                      synth["label"].tolist(), probas_of(synth, classes))
    return with_min_recall(sets, from_stored_predictions=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[],
                    help="a network run folder (repeatable; default: the shipped embedlab/pretrained/emotion)")
    ap.add_argument("--fer", default=str(SHARED / "fer2013"))
    ap.add_argument("--synthetic", default=str(SHARED / "synthetic-emotions"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "emotion.json"))
    args = ap.parse_args()

    from embedlab import datasets
    from embedlab.nets import load_network_run

    runs = args.run or [str(ROOT / "embedlab" / "pretrained" / "emotion")]
    fer = datasets.load(args.fer)
    fer = fer[fer["split"] == "test"].reset_index(drop=True)
    synth = datasets.load(args.synthetic).reset_index(drop=True)
    results = []
    for path in runs:
        run = load_network_run(path)
        entry = {"run": str(Path(path).resolve().relative_to(ROOT)) if Path(path).resolve().is_relative_to(ROOT)
                 else path, "model": run.params["model"], "command": run.params.get("command"),
                 "resumed_with": run.params.get("resumed_with"), "training": training_summary(run),
                 "shipped_tta_flip": bool(run.params["model_params"].get("tta_flip"))}
        has_weights = (Path(path) / "model.pt").is_file()
        for tta in ((False, True) if has_weights else (False,)):
            started = time.time()
            scored = evaluate_run(path, fer, synth, tta) if has_weights else evaluate_stored(path, fer)
            scored["seconds"] = round(time.time() - started, 1)
            scored["met"] = {"fer_private": scored["sets"]["fer_private"]["accuracy"] >= TARGETS["fer_private"],
                             "synthetic_5way": scored["sets"]["synthetic_5way"]["accuracy"] >= TARGETS["synthetic_5way"],
                             "fer_min_recall": (scored["fer_min_recall"] or 0) >= TARGETS["fer_min_recall"]}
            entry["tta_flip" if tta else "plain"] = scored
        results.append(entry)
        print(f"{path}: done", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"targets": TARGETS, "runs": results}, indent=2))
    print(table(results))
    print(f"wrote {out}")


def table(results: list[dict]) -> str:
    """The README's comparison table (Markdown)."""
    lines = ["| network | flip TTA | PrivateTest acc [95% CI] | PublicTest acc [95% CI] | macro F1 (Private) | "
             "lowest class recall (Private) | synthetic 5-way acc [95% CI] | train time, device |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["training"]
        for key in ("plain", "tta_flip"):
            if key not in r:
                continue
            s = r[key]["sets"]
            low = min(s["fer_private"]["recall"].items(), key=lambda kv: kv[1])

            def acc(m):
                return f"{m['accuracy']:.3f} [{m['accuracy_ci'][0]:.3f}, {m['accuracy_ci'][1]:.3f}]"
            lines.append(f"| `{r['model']}` | {'yes' if key == 'tta_flip' else 'no'} | {acc(s['fer_private'])} | "
                         f"{acc(s['fer_public'])} | {s['fer_private']['macro_f1']:.3f} | {low[0]} {low[1]:.2f} | "
                         f"{acc(s['synthetic_5way'])} | {t['seconds'] / 60:.0f} min, {t['device']} "
                         f"({t['epochs']} epochs, {t['train_images_per_second']} img/s) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
