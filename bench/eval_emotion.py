"""Measure emotion networks against the targets of the emotion model: FER-2013 and generated portraits.

    .venv/bin/python bench/eval_emotion.py                 # the shipped embedlab/pretrained/emotion
    .venv/bin/python bench/eval_emotion.py --run results/runs/A --run results/runs/B ...
    .venv/bin/python bench/eval_emotion.py --alignment     # face_crop=align against the run's own framing

For each run, with and without test-time flip averaging: FER-2013 PrivateTest and
PublicTest (each alone, and together) and the five classes of synthetic-emotions
(portraits face-cropped the FER way first; the crops are kept in
results/crops/eval-emotion/), with bootstrap 95% intervals, macro F1 and per-class
recall with Wilson 95% intervals, plus the run's training time, device and images/s.

The gap, per class: FER PrivateTest and the portraits as two confusion matrices over the
five emotions the portraits hold (rows) and the model's choices (columns), side by side, and
each class's recall drop from real to generated with Newcombe's 95% interval, the classes that
lose most first. ``gap`` scores both sets as the model predicts (its seven classes);
``gap_5way`` scores both as a choice among the five (as ``synthetic_5way``). Entries of runs
already in the output file and not evaluated again are kept, their ``gap`` derived from their
stored confusion matrices. Writes results/bench/emotion.json and prints the README's tables.

``--alignment`` predicts FER PrivateTest and the portraits with the run as it is (FER crops
as they are, portraits FER-framed) and with every face aligned by its eyes to FER's template
(``face_crop=align``; no retraining), and writes per-class recall of both, with paired
bootstrap 95% intervals of each change, to results/bench/emotion_alignment.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TARGETS = {"fer_private": 0.70, "synthetic_5way": 0.65, "fer_min_recall": 0.30}


def summary(m: dict) -> dict:
    return with_recall_ci({"n": m["n"], "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"],
                           "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
                           "recall": {c: v["recall"] for c, v in m["per_class"].items() if v["recall"] is not None},
                           "confusion_matrix": m["confusion_matrix"], "labels": m["labels"],
                           "missing_classes": m["missing_classes"]})


def with_recall_ci(s: dict) -> dict:
    """A set's summary with ``recall_ci``: each class's Wilson 95% interval, from its confusion matrix."""
    from embedlab.analysis.gap import class_recalls

    rec = class_recalls(s["labels"], s["confusion_matrix"])
    s["recall_ci"] = {r["label"]: [r["ci_low"], r["ci_high"]] for r in rec.to_dict("records") if r["n"]}
    return s


def with_gap(scored: dict) -> dict:
    """``gap`` (and ``gap_5way`` where FER PrivateTest was scored five ways): the real and generated
    confusion matrices side by side and the per-class recall drop (see the module's docstring)."""
    from embedlab.analysis.gap import gap_summary

    sets = scored["sets"]
    for name, real, generated, decision in (
            ("gap", "fer_private", "synthetic", "the model's choice among its classes"),
            ("gap_5way", "fer_private_5way", "synthetic_5way", "a choice among the portraits' five emotions")):
        if real in sets and generated in sets:
            r, g = sets[real], sets[generated]
            scored[name] = gap_summary(r["labels"], r["confusion_matrix"], g["labels"], g["confusion_matrix"],
                                       real_set=real, generated_set=generated, decision=decision)
    return scored


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
    columns = [classes.index(c) for c in five]
    sets["synthetic_5way"] = summary(evaluate(list(synth_labels), synth_probas[:, columns], five))
    # and PrivateTest's faces of those five emotions the same way, for a like-for-like gap
    private = (subsets == "PrivateTest").to_numpy() & pd.Series(fer_labels).isin(five).to_numpy()
    sets["fer_private_5way"] = summary(evaluate(list(pd.Series(fer_labels)[private]), fer_probas[private][:, columns],
                                                five))
    return sets


def with_min_recall(sets: dict, **extra) -> dict:
    rec = sets["fer_private"]["recall"]
    return with_gap({"sets": sets, "fer_min_recall": min(rec.values()) if rec else None, **extra})


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
    ap.add_argument("--out", default=None,
                    help="default results/bench/emotion.json (emotion_alignment.json with --alignment)")
    ap.add_argument("--alignment", action="store_true",
                    help="compare face_crop=align with each run's own framing (flip averaging as shipped)")
    args = ap.parse_args()
    command = " ".join(["python bench/eval_emotion.py", *sys.argv[1:]])

    from embedlab import datasets
    from embedlab.nets import load_network_run

    runs = args.run or [str(ROOT / "embedlab" / "pretrained" / "emotion")]
    fer = datasets.load(args.fer)
    fer = fer[fer["split"] == "test"].reset_index(drop=True)
    synth = datasets.load(args.synthetic).reset_index(drop=True)
    if args.alignment:
        out = Path(args.out or ROOT / "results" / "bench" / "emotion_alignment.json")
        compared = [compare_alignment(path, fer, synth) for path in runs]
        write(out, {"command": command, "runs": compared})
        print(alignment_table(compared))
        print(f"wrote {out}")
        return
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
    out = Path(args.out or ROOT / "results" / "bench" / "emotion.json")
    results += kept_entries(out, {r["run"] for r in results})
    write(out, {"targets": TARGETS, "command": command, "runs": results})
    print(table(results))
    print()
    print(gap_table(results))
    print(f"wrote {out}")


def write(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2))


def kept_entries(out: Path, evaluated: set[str]) -> list[dict]:
    """The output file's entries of runs not evaluated now (their folders may be elsewhere), each with
    recall intervals and ``gap`` derived from its stored confusion matrices."""
    if not out.is_file():
        return []
    kept = []
    for entry in json.loads(out.read_text()).get("runs", []):
        if entry.get("run") in evaluated:
            continue
        for key in ("plain", "tta_flip"):
            if key in entry:
                for s in entry[key]["sets"].values():
                    with_recall_ci(s)
                with_gap(entry[key])
                entry[key]["gap_from_stored_confusion_matrices"] = True
        kept.append(entry)
    return kept


N_BOOT = 2000


def paired_change(y: np.ndarray, before: np.ndarray, after: np.ndarray, classes: list[str], seed: int = 0) -> dict:
    """Accuracy and per-class recall before and after, with Wilson intervals, and each change with a
    paired bootstrap 95% interval (the same images resampled for both), plus how many images each
    way turned right or wrong."""
    from embedlab.analysis.results import wilson_interval

    rng = np.random.default_rng(seed)
    ok0, ok1 = before == y, after == y

    def figures(rows: np.ndarray) -> dict:
        n = len(rows)
        k0, k1 = int(ok0[rows].sum()), int(ok1[rows].sum())
        draws = rng.integers(0, n, (N_BOOT, n)) if n else np.zeros((0, 0), int)
        diffs = (ok1[rows][draws].mean(axis=1) - ok0[rows][draws].mean(axis=1)) if n else np.array([np.nan])
        return {"n": n, "before": k0 / n if n else None, "before_ci": list(wilson_interval(k0, n)),
                "after": k1 / n if n else None, "after_ci": list(wilson_interval(k1, n)),
                "change": (k1 - k0) / n if n else None,
                "change_ci": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))],
                "turned_right": int((~ok0[rows] & ok1[rows]).sum()), "turned_wrong": int((ok0[rows] & ~ok1[rows]).sum())}

    out = {"accuracy": figures(np.arange(len(y)))}
    out["per_class"] = {c: figures(np.flatnonzero(y == i)) for i, c in enumerate(classes) if (y == i).any()}
    return out


def compare_alignment(path: str, fer: pd.DataFrame, synth: pd.DataFrame) -> dict:
    """A run's predictions as it frames faces and with ``face_crop=align``: FER PrivateTest (seven
    classes) and the portraits (a five-way choice), per class, and the gap under each."""
    from embedlab.nets import load_network_run

    run = load_network_run(path)
    classes = run.classes
    private = fer[fer["subset"] == "PrivateTest"].reset_index(drop=True)
    five = sorted(set(synth["label"]))
    own = run.params["model_params"].get("face_crop", "never")
    cache, crops = ROOT / "results" / "cache", ROOT / "results" / "crops"
    scored, preds = {}, {}
    for name, face_crop in (("as_trained", own), ("aligned", "align")):
        run.params["model_params"]["face_crop"] = face_crop
        started = time.time()
        pf = run.predict(private, cache_dir=cache, crops_dir=crops / "eval-emotion-align" if face_crop == "align"
                         else None)
        ps = run.predict(synth, cache_dir=cache, crops_dir=crops / ("eval-emotion-align" if face_crop == "align"
                                                                      else "eval-emotion"))
        sets = score_sets(classes, private["label"].tolist(), probas_of(pf, classes), private["subset"],
                          synth["label"].tolist(), probas_of(ps, classes))
        for empty in ("fer_public", "fer_public_private"):
            sets.pop(empty)
        entry = with_gap({"sets": sets})
        entry.update(face_crop=face_crop, seconds=round(time.time() - started, 1),
                     faces_found={"fer_private": int(pf["face_found"].fillna(False).astype(bool).sum()),
                                  "synthetic": int(ps["face_found"].fillna(False).astype(bool).sum())},
                     n={"fer_private": len(pf), "synthetic": len(ps)})
        scored[name] = entry
        preds[name] = (probas_of(pf, classes).argmax(axis=1),
                       probas_of(ps, classes)[:, [classes.index(c) for c in five]].argmax(axis=1))
    run.params["model_params"]["face_crop"] = own
    y_fer = np.array([classes.index(v) for v in private["label"]])
    y_syn = np.array([five.index(v) for v in synth["label"]])
    change = {"fer_private": paired_change(y_fer, preds["as_trained"][0], preds["aligned"][0], classes),
              "synthetic_5way": paired_change(y_syn, preds["as_trained"][1], preds["aligned"][1], five)}
    return {"run": str(Path(path).resolve().relative_to(ROOT)) if Path(path).resolve().is_relative_to(ROOT)
            else path, "model": run.params["model"], "tta_flip": bool(run.params["model_params"].get("tta_flip")),
            "trained_with_face_crop": own, "change": change, **scored}


def _pct(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _ci(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] == ci[0] else ""


def gap_table(results: list[dict]) -> str:
    """Per run (as shipped: with flip averaging where the run uses it), the two confusion matrices
    side by side and the recall drop per class, the classes that lose most first (Markdown)."""
    lines = []
    for r in results:
        key = "tta_flip" if r.get("shipped_tta_flip") and "tta_flip" in r else "plain"
        for name in ("gap", "gap_5way"):
            g = r.get(key, {}).get(name)
            if not g:
                continue
            short = [c[:3] for c in g["predicted"]]
            lines += [f"`{r['model']}` ({r['run']}, {'flip TTA' if key == 'tta_flip' else 'no TTA'}), "
                      f"{name}: {g['decision']}", "",
                      "| true | " + " | ".join(f"real→{c}" for c in short) + " | "
                      + " | ".join(f"gen→{c}" for c in short) + " |",
                      "|---|" + "---:|" * (2 * len(short))]
            for lab, a, b in zip(g["labels"], g["real_confusion"], g["generated_confusion"]):
                lines.append(f"| {lab} | " + " | ".join(map(str, a)) + " | " + " | ".join(map(str, b)) + " |")
            lines += ["", "| class (loses most first) | FER PrivateTest recall [95% CI] (n) | "
                      "portraits recall [95% CI] (n) | drop [95% CI] |", "|---|---|---|---|"]
            for c in g["classes"]:
                lines.append(f"| {c['label']} | {_pct(c['recall_real'])} {_ci([c['real_ci_low'], c['real_ci_high']])} "
                             f"({c['n_real']}) | {_pct(c['recall_generated'])} "
                             f"{_ci([c['generated_ci_low'], c['generated_ci_high']])} ({c['n_generated']}) | "
                             f"{c['drop']:+.2f} {_ci([c['drop_ci_low'], c['drop_ci_high']])} |")
            lines.append("")
    return "\n".join(lines)


def alignment_table(compared: list[dict]) -> str:
    """Per class, recall as the run frames faces and aligned, with the change (Markdown)."""
    lines = []
    for r in compared:
        for set_name, title in (("fer_private", "FER PrivateTest (7 classes)"),
                                ("synthetic_5way", "portraits (5-way)")):
            ch = r["change"][set_name]
            lines += [f"`{r['model']}` ({r['run']}), {title}: face_crop={r['trained_with_face_crop']} against align "
                      f"(faces found aligned: {r['aligned']['faces_found'][set_name.split('_5way')[0]]} of "
                      f"{r['aligned']['n'][set_name.split('_5way')[0]]})", "",
                      "| class | n | as trained [95% CI] | aligned [95% CI] | change [paired 95% CI] | "
                      "turned right / wrong |", "|---|---:|---|---|---|---|"]
            for c, f in [("accuracy", ch["accuracy"]), *ch["per_class"].items()]:
                lines.append(f"| {c} | {f['n']} | {_pct(f['before'])} {_ci(f['before_ci'])} | {_pct(f['after'])} "
                             f"{_ci(f['after_ci'])} | {f['change']:+.3f} {_ci(f['change_ci'])} | "
                             f"{f['turned_right']} / {f['turned_wrong']} |")
            lines.append("")
    return "\n".join(lines)


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
