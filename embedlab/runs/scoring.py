"""Scoring a classifier's probabilities on one set of images, the way a reviewer would.

Accuracy alone hides a badly placed threshold, so every set gets a bootstrap
95% interval for accuracy, balanced accuracy, macro F1, per-class precision
and recall and the confusion matrix; binary tasks add ROC AUC (with its
interval), average precision and both curves.

Labels are matched to the model's classes by name (case and surrounding
spaces ignored). A class the model knows but the set lacks is reported in
``missing_classes`` and left out of the per-class averages, not counted as an
error; images whose label the model cannot predict at all are reported in
``unknown_labels`` and left out of every figure.

>>> import numpy as np
>>> m = evaluate(["real", "fake", "fake", "real"],
...              np.array([[0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.1, 0.9]]),
...              classes=["fake", "real"], positive_class="fake", n_boot=200)
>>> m["accuracy"], m["confusion_matrix"], m["roc_auc"]
(0.75, [[1, 1], [0, 2]], 1.0)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

#: In a two-class task, the class scored as positive when present (ROC, precision-recall).
POSITIVE_CLASS = "fake"
#: Bootstrap resamples for the 95% intervals.
N_BOOT = 1000
#: Curves are thinned to at most this many points, enough to draw them.
CURVE_POINTS = 400


def match_labels(labels: Sequence[Any], classes: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Map each label to the model class of the same name.

    Returns ``(matched, unknown)``: ``matched`` holds the class name (or None
    for a label the model does not know), ``unknown`` the sorted unknown labels.

    >>> match_labels(["Happy", "sad ", "contempt"], ["happy", "sad"])
    (array(['happy', 'sad', None], dtype=object), ['contempt'])
    """
    by_key = {str(c).strip().lower(): c for c in classes}
    matched = np.array([by_key.get(str(v).strip().lower()) if v is not None else None for v in labels],
                       dtype=object)
    unknown = sorted({str(v) for v, m in zip(labels, matched) if m is None and v is not None})
    return matched, unknown


def bootstrap_ci(statistic: Callable[..., float], arrays: Sequence[np.ndarray], n_boot: int = N_BOOT,
                 seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of ``statistic(*arrays)`` over resampled rows.

    Resamples where the statistic is undefined (it raises ``ValueError``, e.g.
    ROC AUC on a resample with one class) are skipped.

    >>> lo, hi = bootstrap_ci(np.mean, [np.array([0, 1] * 50)], n_boot=500)
    >>> 0.35 < lo < 0.5 < hi < 0.65
    True
    """
    n = len(arrays[0])
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        try:
            value = float(statistic(*(a[idx] for a in arrays)))
        except ValueError:
            continue
        if np.isfinite(value):
            values.append(value)
    if len(values) < n_boot // 2:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return [float(lo), float(hi)]


def _thin(*curves: np.ndarray) -> list[list[float]]:
    n = len(curves[0])
    if n > CURVE_POINTS:
        keep = np.unique(np.linspace(0, n - 1, CURVE_POINTS).round().astype(int))
        curves = tuple(c[keep] for c in curves)
    return [np.round(c.astype(float), 6).tolist() for c in curves]


def _roc_auc(is_pos: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), fast enough to bootstrap."""
    from scipy.stats import rankdata

    n_pos = int(is_pos.sum())
    n_neg = len(is_pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("one class only")
    ranks = rankdata(score)
    return float((ranks[is_pos == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(labels: Sequence[Any], proba: np.ndarray, classes: Sequence[str],
             positive_class: str | None = None, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Figures for one set: true ``labels`` against ``proba`` (one column per class).

    The predicted class is the most probable one (for a binary task, the
    positive class above 0.5).
    """
    from sklearn.metrics import (average_precision_score, balanced_accuracy_score, confusion_matrix,
                                 f1_score, precision_recall_curve, precision_recall_fscore_support,
                                 roc_auc_score, roc_curve)

    classes = list(classes)
    proba = np.asarray(proba, dtype=float)
    matched, unknown = match_labels(list(labels), classes)
    known = np.array([m is not None for m in matched], dtype=bool)
    unknown_counts = {u: int(sum(1 for v, m in zip(labels, matched) if m is None and str(v) == u))
                      for u in unknown}
    y_true = np.array([classes.index(m) for m in matched[known]], dtype=int)
    p = proba[known]
    y_pred = p.argmax(axis=1) if len(p) else np.empty(0, int)
    present = sorted(set(y_true.tolist()))
    missing = [c for i, c in enumerate(classes) if i not in present]
    out: dict[str, Any] = {"n": int(len(y_true)), "labels": classes, "missing_classes": missing,
                           "unknown_labels": unknown_counts}
    if len(y_true) == 0:
        out.update(accuracy=None, accuracy_ci=None, balanced_accuracy=None, macro_f1=None,
                   confusion_matrix=[[0] * len(classes) for _ in classes], per_class={})
        return out
    correct = (y_true == y_pred).astype(float)
    out["accuracy"] = float(correct.mean())
    out["accuracy_ci"] = bootstrap_ci(np.mean, [correct], n_boot=n_boot, seed=seed)
    # Averages run over the classes present in the set: a class the set lacks
    # has no recall to measure, and a zero there would be an artefact.
    recalls = [float((y_pred[y_true == k] == k).mean()) for k in present]
    out["balanced_accuracy"] = float(np.mean(recalls))
    out["macro_f1"] = float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(classes))), zero_division=0)
    out["per_class"] = {c: {"precision": float(prec[i]), "recall": float(rec[i]) if c not in missing else None,
                            "f1": float(f1[i]) if c not in missing else None, "support": int(support[i]),
                            "predicted": int((y_pred == i).sum())}
                        for i, c in enumerate(classes)}
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=list(range(len(classes)))).tolist()

    if len(classes) == 2 and positive_class is not None:
        pos = classes.index(positive_class)
        is_pos = (y_true == pos).astype(int)
        score = p[:, pos]
        if 0 < is_pos.sum() < len(is_pos):
            out["roc_auc"] = float(roc_auc_score(is_pos, score))
            out["roc_auc_ci"] = bootstrap_ci(_roc_auc, [is_pos, score], n_boot=n_boot, seed=seed)
            out["average_precision"] = float(average_precision_score(is_pos, score))
            fpr, tpr, _ = roc_curve(is_pos, score)
            precision, recall, _ = precision_recall_curve(is_pos, score)
            out["roc"] = dict(zip(("fpr", "tpr"), _thin(fpr, tpr)))
            out["pr"] = dict(zip(("precision", "recall"), _thin(precision, recall)))
        else:  # one class only: ranking figures are undefined, say so rather than guess
            out.update(roc_auc=None, roc_auc_ci=None, average_precision=None, roc=None, pr=None)
    return out


def task_of(classes: Sequence[str]) -> tuple[str, str | None]:
    """``("binary", POSITIVE_CLASS or None)`` for two classes, ``("multiclass", None)`` for more.

    >>> task_of(["fake", "real"]), task_of(["a", "b"]), task_of(["a", "b", "c"])
    (('binary', 'fake'), ('binary', None), ('multiclass', None))
    """
    if len(classes) != 2:
        return "multiclass", None
    return "binary", POSITIVE_CLASS if POSITIVE_CLASS in classes else None


def score_set(proba: np.ndarray, rows: pd.DataFrame, classes: list[str], positive: str | None, *,
              set_name: str, role: str, dataset: str, seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """The ``metrics.json`` entry and the prediction rows of one scored set.

    ``rows`` are the images that were scored (one per row of ``proba``), with
    ``image_id``, ``path``, ``hash`` and ``label``. Both model kinds score
    every set through here, so their figures mean the same.
    """
    metrics = {"role": role, "dataset": dataset,
               **evaluate(rows["label"].tolist(), proba, classes, positive_class=positive, seed=seed)}
    pred = [classes[i] for i in proba.argmax(axis=1)] if len(proba) else []
    out = pd.DataFrame({"set": set_name, "image_id": rows["image_id"].astype(str).values,
                        "path": rows["path"].astype(str).values, "hash": rows["hash"].astype(str).values,
                        "label": rows["label"].values, "pred": pred})
    matched, _ = match_labels(out["label"].tolist(), classes)
    out["correct"] = matched == out["pred"].to_numpy(object)
    for i, c in enumerate(classes):
        out[f"proba_{c}"] = proba[:, i] if len(proba) else []
    return metrics, out
