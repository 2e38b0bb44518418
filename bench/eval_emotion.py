"""Measure the reference emotion network against the targets of the emotion issue.

    .venv/bin/python bench/eval_emotion.py                 # the shipped embedlab/pretrained/emotion
    .venv/bin/python bench/eval_emotion.py --run results/runs/NAME

Scores FER-2013 test (PublicTest+PrivateTest, and each alone) and the five
classes of synthetic-emotions (portraits face-cropped the FER way first; the
crops are kept in results/crops/eval-emotion/), with bootstrap 95% intervals
and per-class recall. Writes results/bench/emotion.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
TARGETS = {"fer_public_private": 0.70, "fer_private": 0.70, "synthetic": 0.65}


def summary(m: dict) -> dict:
    return {"n": m["n"], "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"],
            "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
            "recall": {c: v["recall"] for c, v in m["per_class"].items() if v["recall"] is not None},
            "confusion_matrix": m["confusion_matrix"], "labels": m["labels"],
            "missing_classes": m["missing_classes"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "embedlab" / "pretrained" / "emotion"))
    ap.add_argument("--fer", default=str(SHARED / "fer2013"))
    ap.add_argument("--synthetic", default=str(SHARED / "synthetic-emotions"))
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "emotion.json"))
    args = ap.parse_args()

    from embedlab import datasets
    from embedlab.runs.scoring import evaluate
    from embedlab.nets import load_network_run

    run = load_network_run(args.run)
    classes = run.classes
    started = time.time()
    fer = datasets.load(args.fer)
    test = fer[fer["split"] == "test"].reset_index(drop=True)
    pred = run.predict(test, cache_dir=ROOT / "results" / "cache", crops_dir=None)
    probas = pred[[f"proba_{c}" for c in classes]].to_numpy(float)
    sets = {}
    for key, mask in (("fer_public_private", test["subset"].isin(["PublicTest", "PrivateTest"])),
                      ("fer_public", test["subset"] == "PublicTest"),
                      ("fer_private", test["subset"] == "PrivateTest")):
        sets[key] = summary(evaluate(test.loc[mask, "label"].tolist(), probas[mask.to_numpy()], classes))
    synth = datasets.load(args.synthetic).reset_index(drop=True)
    spred = run.predict(synth, cache_dir=None, crops_dir=ROOT / "results" / "crops" / "eval-emotion")
    sprob = spred[[f"proba_{c}" for c in classes]].to_numpy(float)
    sets["synthetic"] = summary(evaluate(synth["label"].tolist(), sprob, classes))
    sets["synthetic"]["faces_found"] = int(spred["face_found"].fillna(False).astype(bool).sum())
    # the same portraits restricted to the five emotions they hold (disgust/fear never predicted)
    five = sorted(synth["label"].unique())
    idx = [classes.index(c) for c in five]
    sets["synthetic_5way"] = summary(evaluate(synth["label"].tolist(), sprob[:, idx], five))
    result = {
        "run": str(Path(args.run).resolve().relative_to(ROOT)) if Path(args.run).resolve().is_relative_to(ROOT)
        else args.run,
        "model": run.params["model"], "command": run.params.get("command"),
        "resumed_with": run.params.get("resumed_with"), "training": run.params.get("training"),
        "seconds": round(time.time() - started, 1), "targets": TARGETS,
        "met": {k: (sets[k]["accuracy"] or 0) >= t for k, t in TARGETS.items()},
        "sets": sets,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for k, m in sets.items():
        ci = m["accuracy_ci"] or [float("nan")] * 2
        print(f"{k:20s} n={m['n']:5d} acc={m['accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
              f"balanced={m['balanced_accuracy']:.3f} recall: "
              + ", ".join(f"{c} {r:.2f}" for c, r in m["recall"].items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
