"""Measure emotion networks against the targets of the emotion model: FER-2013 and generated portraits.

    .venv/bin/python bench/eval_emotion.py                 # the shipped embedlab/pretrained/emotion
    .venv/bin/python bench/eval_emotion.py --run results/runs/A --run results/runs/B ...
    .venv/bin/python bench/eval_emotion.py --alignment     # face_crop=align against the run's own framing
    .venv/bin/python bench/eval_emotion.py --run A --run B --ensemble A+B   # and their averaged probabilities

By default both shipped models are measured: embedlab/pretrained/emotion (FER-2013 only) and
embedlab/pretrained/emotion-adapted (FER-2013 and the portraits' train share). Every run is
also scored on the portraits' test share of the identity split (``synthetic_test``, the images
of results/bench/emotion-adapted.csv that no adapted model trains or selects on), so the two
recipes compare on the same faces. ``--ensemble A+B`` averages the class probabilities of runs
given with ``--run`` (each with flip averaging as shipped) and scores the average like a run.

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
stored confusion matrices. Writes results/bench/emotion.json, and the README's tables to
results/bench/emotion.md.

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
TARGETS = {"fer_private": 0.72, "synthetic_test_adapted": 0.70, "generated_min_recall": 0.40,
           "fer_min_recall": 0.40}
SHIPPED = [ROOT / "embedlab" / "pretrained" / name for name in ("emotion", "emotion-adapted")]


def learned_from_portraits(params: dict) -> bool:
    """Whether a run trained on the adapted recipe's manifest (FER-2013 and the portraits' train share)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from train_emotion import ADAPTED_MANIFEST

    data = params.get("data") or {}
    return data.get("layout") == "manifest" and data.get("name") == ADAPTED_MANIFEST.stem


def portrait_test_share(synth: pd.DataFrame, folder: str) -> np.ndarray:
    """Which rows of ``synth`` (the portraits at ``folder``) are in the test share of the identity
    split that the adapted recipe trains around (train_emotion.py writes it)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from train_emotion import IDENTITY_SPLIT

    if not IDENTITY_SPLIT.is_file():
        raise SystemExit(f"{IDENTITY_SPLIT} is missing: `python bench/train_emotion.py --recipe emotion-adapted` "
                         "writes it")
    split_of = json.loads(IDENTITY_SPLIT.read_text())["split_of"]
    base = Path(folder).resolve()
    return np.array([split_of.get(Path(p).resolve().relative_to(base).as_posix()) == "test" for p in synth["path"]])


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


def score_sets(classes: list[str], fer_labels, fer_probas, subsets: pd.Series, synth_labels, synth_probas,
               test_share: np.ndarray | None = None) -> dict:
    """PrivateTest, PublicTest, both, and the portraits (7-way and over the five emotions they hold),
    all of them and (``test_share``) their identity split's test share."""
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
    if test_share is not None and test_share.any():
        labels = list(pd.Series(list(synth_labels))[test_share])
        sets["synthetic_test"] = summary(evaluate(labels, synth_probas[test_share], classes))
        sets["synthetic_test_5way"] = summary(evaluate(labels, synth_probas[test_share][:, columns], five))
    return sets


def with_min_recall(sets: dict, **extra) -> dict:
    rec = sets["fer_private"]["recall"]
    lowest = {k: min(sets[k]["recall"].values()) for k in ("synthetic", "synthetic_test") if sets.get(k, {}).get("recall")}
    return with_gap({"sets": sets, "fer_min_recall": min(rec.values()) if rec else None,
                     "generated_min_recall": lowest, **extra})


def probas_of(frame: pd.DataFrame, classes: list[str]):
    return frame[[f"proba_{c}" for c in classes]].to_numpy(float)


def run_probas(path: str, fer: pd.DataFrame, synth: pd.DataFrame, tta: bool):
    """(classes, FER test probabilities, portrait probabilities, portraits' faces found) of one run."""
    from embedlab.nets import load_network_run

    run = load_network_run(path)
    run.params["model_params"]["tta_flip"] = tta
    classes = run.classes
    pred = run.predict(fer, cache_dir=ROOT / "results" / "cache", crops_dir=None)
    spred = run.predict(synth, cache_dir=None, crops_dir=ROOT / "results" / "crops" / "eval-emotion")
    return classes, probas_of(pred, classes), probas_of(spred, classes), spred["face_found"].fillna(False).astype(bool)


def scored_probas(classes, fer_probas, synth_probas, found, fer: pd.DataFrame, synth: pd.DataFrame,
                  test_share: np.ndarray) -> dict:
    sets = score_sets(classes, fer["label"].tolist(), fer_probas, fer["subset"], synth["label"].tolist(),
                      synth_probas, test_share)
    sets["synthetic_5way"]["faces_found"] = int(found.sum())
    sets["synthetic_5way"]["no_face_found"] = int((~found).sum())
    return with_min_recall(sets)


def met(scored: dict, adapted: bool) -> dict:
    s = scored["sets"]
    out = {"fer_private": s["fer_private"]["accuracy"] >= TARGETS["fer_private"],
           "fer_min_recall": (scored["fer_min_recall"] or 0) >= TARGETS["fer_min_recall"]}
    # generated faces: an adapted model only on the share it never saw; a FER-only one on every portrait
    generated = "synthetic_test" if adapted else "synthetic"
    if generated in scored["generated_min_recall"]:
        out["generated_min_recall"] = scored["generated_min_recall"][generated] >= TARGETS["generated_min_recall"]
    if adapted and "synthetic_test" in s:
        out["synthetic_test_adapted"] = s["synthetic_test"]["accuracy"] >= TARGETS["synthetic_test_adapted"]
    return out


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
                    help="a network run folder (repeatable; default: both shipped emotion models)")
    ap.add_argument("--fer", default=str(SHARED / "fer2013"))
    ap.add_argument("--synthetic", default=str(SHARED / "synthetic-emotions"))
    ap.add_argument("--out", default=None,
                    help="default results/bench/emotion.json (emotion_alignment.json with --alignment)")
    ap.add_argument("--ensemble", action="append", default=[], metavar="A+B",
                    help="average the probabilities of --run folders A and B (repeatable)")
    ap.add_argument("--alignment", action="store_true",
                    help="compare face_crop=align with each run's own framing (flip averaging as shipped)")
    args = ap.parse_args()
    command = " ".join(["python bench/eval_emotion.py", *sys.argv[1:]])

    from embedlab import datasets
    from embedlab.nets import load_network_run

    runs = args.run or [str(p) for p in SHIPPED if (p / "params.json").is_file()]
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
    test_share = portrait_test_share(synth, args.synthetic)
    results, shipped_probas = [], {}
    for path in runs:
        run = load_network_run(path)
        adapted = learned_from_portraits(run.params)
        entry = {"run": relative(path), "model": run.params["model"], "command": run.params.get("command"),
                 "resumed_with": run.params.get("resumed_with"), "training": training_summary(run),
                 "shipped_tta_flip": bool(run.params["model_params"].get("tta_flip")),
                 "learned_from_portraits": adapted}
        has_weights = (Path(path) / "model.pt").is_file()
        for tta in ((False, True) if has_weights else (False,)):
            started = time.time()
            if has_weights:
                probas = run_probas(path, fer, synth, tta)
                scored = scored_probas(*probas, fer, synth, test_share)
                if tta == entry["shipped_tta_flip"]:
                    shipped_probas[relative(path)] = probas
            else:
                scored = evaluate_stored(path, fer)
            scored["seconds"] = round(time.time() - started, 1)
            scored["met"] = met(scored, adapted)
            entry["tta_flip" if tta else "plain"] = scored
        results.append(entry)
        print(f"{path}: done", flush=True)
    for members in args.ensemble:
        names = [relative(m) for m in members.split("+")]
        missing = [m for m in names if m not in shipped_probas]
        if missing:
            raise SystemExit(f"--ensemble {members}: {', '.join(missing)} not among the --run folders with weights")
        classes = shipped_probas[names[0]][0]
        if any(shipped_probas[m][0] != classes for m in names):
            raise SystemExit(f"--ensemble {members}: the runs' classes differ")
        fer_p = np.mean([shipped_probas[m][1] for m in names], axis=0)
        syn_p = np.mean([shipped_probas[m][2] for m in names], axis=0)
        scored = scored_probas(classes, fer_p, syn_p, shipped_probas[names[0]][3], fer, synth, test_share)
        joined = [r for r in results if r["run"] in names]
        adapted = any(r["learned_from_portraits"] for r in joined)
        scored["met"] = met(scored, adapted)
        results.append({"run": "+".join(names), "model": "ensemble", "members": names,
                        "learned_from_portraits": adapted, "shipped_tta_flip": False,
                        "training": {"seconds": sum(r["training"]["seconds"] for r in joined),
                                     "device": "+".join(sorted({str(r["training"]["device"]) for r in joined})),
                                     "epochs": sum(r["training"]["epochs"] for r in joined),
                                     "train_images_per_second": None},
                        "plain": scored})
    out = Path(args.out or ROOT / "results" / "bench" / "emotion.json")
    results += kept_entries(out, {r["run"] for r in results})
    write(out, {"targets": TARGETS, "command": command, "runs": results})
    markdown = table(results) + "\n\n" + recall_table(results) + "\n"
    out.with_suffix(".md").write_text(markdown)  # the README's tables, checked against it by its figures test
    print(markdown)
    print(gap_table(results))
    print(f"wrote {out}")


def relative(path) -> str:
    """A run folder as the results name it: relative to the repository where it lies inside it."""
    full = Path(path).resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


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


def name_of(r: dict) -> str:
    if r["model"] == "ensemble":
        return "ensemble of " + " + ".join(f"`{Path(m).name}`" for m in r["members"])
    return f"`{r['model']}` ({Path(r['run']).name})"


def table(results: list[dict]) -> str:
    """The README's comparison table (Markdown): FER-2013, all portraits, and the portraits'
    test share of the identity split, which no model here trained or selected on."""
    def acc(m):
        return "–" if m is None else f"{m['accuracy']:.3f} [{m['accuracy_ci'][0]:.3f}, {m['accuracy_ci'][1]:.3f}]"

    def low(m):
        if not m or not m.get("recall"):
            return "–"
        c, v = min(m["recall"].items(), key=lambda kv: kv[1])
        return f"{c} {v:.2f}"

    lines = ["| model | learned from portraits | flip TTA | PrivateTest acc [95% CI] | lowest class recall "
             "(Private) | all 218 portraits, 5-way | portraits test share, 7-way [95% CI] | lowest class recall "
             "(test share) | train time, device |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t = r["training"]
        for key in ("plain", "tta_flip"):
            if key not in r:
                continue
            s = r[key]["sets"]
            flip = "yes" if key == "tta_flip" or r["model"] == "ensemble" else "no"
            speed = f" ({t['epochs']} epochs, {t['train_images_per_second']} img/s)" if t.get("train_images_per_second") \
                else f" ({t['epochs']} epochs)"
            lines.append(f"| {name_of(r)} | {'yes' if r.get('learned_from_portraits') else 'no'} | {flip} | "
                         f"{acc(s['fer_private'])} | {low(s['fer_private'])} | {acc(s['synthetic_5way'])} | "
                         f"{acc(s.get('synthetic_test'))} | {low(s.get('synthetic_test'))} | "
                         f"{t['seconds'] / 60:.0f} min, {t['device']}{speed} |")
    return "\n".join(lines)


def recall_table(results: list[dict]) -> str:
    """Per class, each model as shipped: recall on FER PrivateTest and on the portraits' test share."""
    shown = [(r, "tta_flip" if r.get("shipped_tta_flip") and "tta_flip" in r else "plain") for r in results
             if "synthetic_test" in r.get("plain", {}).get("sets", {})]
    if not shown:
        return ""
    classes = list(shown[0][0][shown[0][1]]["sets"]["fer_private"]["recall"])
    lines = ["| class | " + " | ".join(f"{name_of(r)}: FER / portraits test" for r, _ in shown) + " |",
             "|---|" + "---|" * len(shown)]
    for c in classes:
        cells = []
        for r, key in shown:
            s = r[key]["sets"]
            gen = s["synthetic_test"]["recall"].get(c)
            n = dict(zip(s["synthetic_test"]["labels"], np.sum(s["synthetic_test"]["confusion_matrix"], axis=1)))
            cells.append(f"{s['fer_private']['recall'][c]:.2f} / "
                         + ("–" if gen is None else f"{gen:.2f} (n={int(n.get(c, 0))})"))
        lines.append(f"| {c} recall | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
