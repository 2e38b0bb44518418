"""Which model of the 128-d face encoding meets a new generator best: leave one generator out, in seconds.

    .venv/bin/python bench/realfake_encoding_models.py

The same manifest, folds and test scoring as ``bench/realfake_generalisation.py`` (run that first: it
writes the manifest and caches the encodings), but each model is fitted straight on the cached
encodings of train, so a dozen models take minutes. Two kinds are compared:

- two-class models of the registry (``svm``, ``logreg``, ``knn``, ``mlp``, ``xgboost``), which learn
  what separates the training generators' fakes from the reals;
- one-class models of the reals alone (``real-gmm-K``: a Gaussian mixture of K components on the
  standardised encodings of the training reals; ``real-knn``: the mean distance to the 15 nearest
  training reals), scored by how unlike a real face an encoding is. They never see a fake, so no
  fold can leave one out of them: their in-distribution and left-out figures are the same model's;
- ``svm-or-real-gmm-4``: both, each score turned into its quantile among the valid reals and the
  larger kept, a combination no fake chooses (a stack fitted on valid would learn to ignore a part
  that catches only the generator its fold leaves out).

Each is scored on test: every generator's fakes against all test reals (ROC AUC with a bootstrap 95%
interval), plus the recall of the `face-photos` reals (not FFHQ's) at the score that lets 1% of the
valid reals through as fake. Results: ``results/bench/realfake_encoding_models.json`` and ``.md``.
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
sys.path.insert(0, str(ROOT / "bench"))

from bench_data import SHARED_DATA, data_or_exit  # noqa: E402
from realfake_generalisation import FOLDS, GENERATORS, MANIFEST, against_reals  # noqa: E402

OUT = ROOT / "results" / "bench" / "realfake_encoding_models.json"
TWO_CLASS = ("svm", "logreg", "knn", "mlp", "xgboost")
ONE_CLASS = ("real-gmm-1", "real-gmm-4", "real-gmm-16", "real-knn")
#: "either looks unusual": each part's score as its quantile among the valid reals, the larger one wins
EITHER = {"svm-or-real-gmm-4": ("svm", "real-gmm-4")}


def one_class_scores(name: str, train: np.ndarray, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """How unlike the training reals each row is (higher: more likely generated)."""
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(train)
    a, b = scale.transform(train), scale.transform(rows)
    if name.startswith("real-gmm-"):
        gmm = GaussianMixture(int(name.rsplit("-", 1)[1]), covariance_type="full", reg_covar=1e-3,
                              random_state=seed).fit(a)
        return -gmm.score_samples(b)
    nn = NearestNeighbors(n_neighbors=15).fit(a)
    return nn.kneighbors(b)[0].mean(axis=1)


def two_class_scores(name: str, X: np.ndarray, y: np.ndarray, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    from embedlab.classifiers.pipelines import adapt_to_data, create_classifier

    pipe = create_classifier(name, seed=seed, n_jobs=2)
    adapt_to_data(pipe, y)
    pipe.fit(X, y)
    return pipe.predict_proba(rows)[:, 1]


def real_quantile(scores: np.ndarray, reals: np.ndarray) -> np.ndarray:
    """Each score's place among the reals' (0: below them all, 1: above them all), ties split."""
    ranked = np.sort(reals)
    return (np.searchsorted(ranked, scores, "left") + np.searchsorted(ranked, scores, "right")) / (2 * len(ranked))


def scored(scores: np.ndarray, table: pd.DataFrame, valid_real: np.ndarray, photos: np.ndarray) -> dict:
    from embedlab.runs.scoring import threshold_at_fpr

    test = table["split"].to_numpy() == "test"
    label, source = table["label"].to_numpy(), table["source"].to_numpy()
    real = test & (label == "real")
    out: dict = {"generators": {gen: against_reals(scores[test & (source == gen) & (label == "fake")], scores[real])
                                for gen in GENERATORS}}
    threshold = float(threshold_at_fpr(valid_real, 0.01))
    out["threshold_1pct_valid_fpr"] = threshold
    out["test_real_recall"] = float((scores[real] < threshold).mean())
    out["face_photos_real_recall"] = float((photos < threshold).mean()) if len(photos) else None
    return out


def markdown(results: dict) -> str:
    lines = ["| model | kind | trained on | " + " | ".join(f"{g} AUC" for g in GENERATORS)
             + " | test real recall | face-photos real recall |", "|---|---|---|" + "---|" * (len(GENERATORS) + 2)]
    for name, r in results.items():
        for fold, f in r["folds"].items():
            if r["kind"].startswith("one-class") and fold != "all":
                continue  # the same model on every fold
            cells = []
            for g in GENERATORS:
                v = f["generators"][g]
                cell = f"{v['roc_auc']:.3f} [{v['roc_auc_ci'][0]:.3f}, {v['roc_auc_ci'][1]:.3f}]"
                cells.append(f"**{cell}**" if g == fold else cell)
            photos = f["face_photos_real_recall"]
            trained = "the reals only" if r["kind"].startswith("one-class") else \
                "every generator" if fold == "all" else f"all but **{fold}**"
            lines.append(f"| {name} | {r['kind']} | {trained}"
                         f" | {' | '.join(cells)} | {f['test_real_recall']:.3f} | "
                         f"{'-' if photos is None else f'{photos:.3f}'} |")
    lines += ["", "| model | mean left-out AUC | min left-out AUC |", "|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['left_out_mean']:.3f} | {r['left_out_min']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(TWO_CLASS + ONE_CLASS + tuple(EITHER)))
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    ap.add_argument("--cache-dir", default=str(ROOT / "results" / "cache"))
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the Markdown table from the JSON")
    args = ap.parse_args()
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    if args.markdown_only:
        OUT.with_suffix(".md").write_text(markdown(results))
        return
    data_or_exit(args.data)
    if not MANIFEST.is_file():
        raise SystemExit(f"error: {MANIFEST} is missing; run bench/realfake_generalisation.py first")

    import embedlab
    from embedlab.compute.extraction import feature_matrix

    table = embedlab.encode(MANIFEST, "encoding", cache_dir=args.cache_dir)
    X, ok = feature_matrix(table, ["encoding"])
    table, X = table[ok].reset_index(drop=True), X[ok]
    photos = embedlab.encode(args.data / "face-photos", "encoding", cache_dir=args.cache_dir)
    P, pok = feature_matrix(photos, ["encoding"])
    P = P[pok]
    print(f"{len(table)} manifest faces with an encoding, {len(P)} face-photos", flush=True)
    split, label = table["split"].to_numpy(), table["label"].to_numpy()
    source = table["source"].fillna("").to_numpy()
    y = (label == "fake").astype(int)
    valid_real = (split == "valid") & (label == "real")

    rows = np.vstack([X, P])  # every manifest face, then the face-photos

    def scores_of(name: str, train: np.ndarray) -> np.ndarray:
        if name in EITHER:  # each part as its quantile among the valid reals, the larger kept
            return np.max([real_quantile(s, s[: len(X)][valid_real]) for s in (scores_of(m, train)
                                                                             for m in EITHER[name])], axis=0)
        if name in ONE_CLASS:
            return one_class_scores(name, X[train & (label == "real")], rows)
        return two_class_scores(name, X[train], y[train], rows)

    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        kind = ("one-class (reals only)" if name in ONE_CLASS else
                "either of two" if name in EITHER else "two-class")
        folds: dict = {}
        started = time.time()
        for fold in FOLDS:
            if name in ONE_CLASS and fold != "all":
                break
            s = scores_of(name, (split == "train") & ((label == "real") | (source != fold)))
            folds[fold] = scored(s[: len(X)], table, s[: len(X)][valid_real], s[len(X):])
        if name in ONE_CLASS:  # it never saw a fake: every fold is the same model
            folds.update({g: folds["all"] for g in GENERATORS})
        left = [folds[g]["generators"][g]["roc_auc"] for g in GENERATORS]
        results[name] = {"kind": kind, "folds": folds, "left_out_mean": float(np.mean(left)),
                         "left_out_min": float(np.min(left)), "seconds": round(time.time() - started, 1)}
        print(f"{name}: left-out " + ", ".join(f"{g} {a:.3f}" for g, a in zip(GENERATORS, left))
              + f"; mean {np.mean(left):.3f}; face-photos recall {folds['all']['face_photos_real_recall']}", flush=True)
        OUT.write_text(json.dumps(results, indent=2))
        OUT.with_suffix(".md").write_text(markdown(results))


if __name__ == "__main__":
    main()
