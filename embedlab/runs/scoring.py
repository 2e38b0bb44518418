"""Scoring a classifier's probabilities on one set of images, the way a reviewer would.

Accuracy alone hides a badly placed threshold, so every set gets a bootstrap
95% interval for accuracy, balanced accuracy, macro F1, per-class precision
and recall and the confusion matrix; binary tasks add ROC AUC (with its
interval), average precision, both curves, the Brier score and a reliability
curve. A binary run also has a decision threshold chosen on its validation
set for a stated false-positive rate on reals (:func:`choose_threshold`);
each set then reports how that threshold does (``at_threshold``) and, when
the images name the source of their fakes, each source's fakes against all
the set's reals (``per_source``: ROC AUC and recall at the threshold).

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

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from embedlab.core.errors import ModelError

#: In a two-class task, the class scored as positive when present (ROC, precision-recall).
POSITIVE_CLASS = "fake"
#: Bootstrap resamples for the 95% intervals.
N_BOOT = 1000
#: Curves are thinned to at most this many points, enough to draw them.
CURVE_POINTS = 400
#: The false-positive rate on reals a binary run's decision threshold is chosen for, by default.
TARGET_FPR = 0.01
#: Equal-width bins of the predicted probability in a reliability curve.
RELIABILITY_BINS = 10


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


def threshold_at_fpr(negative_scores: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold that calls at most ``target_fpr`` of the negatives positive (score >= threshold).

    >>> threshold_at_fpr(np.array([0.1, 0.2, 0.3, 0.9]), 0.25)   # one of four negatives may pass
    0.30000000000000004
    >>> threshold_at_fpr(np.array([0.1, 0.2, 0.3, 0.9]), 0.0) > 0.9
    True
    """
    if not 0 <= target_fpr < 1:
        raise ValueError(f"target false-positive rate must be in [0, 1), got {target_fpr}")
    scores = np.sort(np.asarray(negative_scores, dtype=float))[::-1]
    if len(scores) == 0:
        raise ValueError("no negatives to choose a threshold on")
    allowed = int(np.floor(target_fpr * len(scores) + 1e-9))
    # just above the (allowed+1)-th highest negative: it and every lower one fall below
    return float(np.nextafter(scores[allowed], np.inf)) if allowed < len(scores) else 0.0


def choose_threshold(labels: Sequence[Any], proba: np.ndarray, classes: Sequence[str], positive_class: str,
                     target_fpr: float = TARGET_FPR) -> dict[str, Any]:
    """A decision threshold on ``P(positive_class)`` for ``target_fpr`` on the other class, with what it gives.

    An image is called positive when its probability is at or above
    ``value``; on these images at most ``target_fpr`` of the negatives are.

    >>> t = choose_threshold(["real"] * 4 + ["fake"] * 2, np.array([[.1, .9], [.2, .8], [.3, .7], [.6, .4],
    ...                      [.9, .1], [.5, .5]]), ["fake", "real"], "fake", target_fpr=0.25)
    >>> t["fpr"], t["recall"]
    (0.25, 1.0)
    """
    classes = list(classes)
    matched, _ = match_labels(list(labels), classes)
    known = np.array([m is not None for m in matched], dtype=bool)
    is_pos = np.array([m == positive_class for m in matched[known]], dtype=bool)
    score = np.asarray(proba, dtype=float)[known][:, classes.index(positive_class)]
    if is_pos.all():
        raise ValueError(f"no image of a class other than {positive_class!r} to choose a threshold on")
    value = threshold_at_fpr(score[~is_pos], target_fpr)
    negative = next(c for c in classes if c != positive_class)
    return {"value": value, "target_fpr": float(target_fpr), "positive_class": positive_class,
            "negative_class": negative, **_at_threshold(is_pos, score, value)}


def threshold_from(candidates: Sequence[tuple[str, Sequence[Any], np.ndarray]], classes: Sequence[str],
                   positive_class: str | None, target_fpr: float = TARGET_FPR) -> dict[str, Any] | None:
    """The run's decision threshold, chosen on the first of ``(set_name, labels, proba)`` that has negatives.

    Runs pass ``valid`` first, then ``train`` for datasets without a
    validation split; ``chosen_on`` names the set used. None for tasks
    without a positive class.
    """
    if positive_class is None or len(classes) != 2:
        return None
    if not 0 <= target_fpr < 1:
        raise ModelError(f"target false-positive rate must be at least 0 and below 1, got {target_fpr}")
    for set_name, labels, proba in candidates:
        try:
            return {**choose_threshold(labels, proba, classes, positive_class, target_fpr), "chosen_on": set_name}
        except ValueError:  # no negatives in this set: try the next
            continue
    return None


def _at_threshold(is_pos: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    called = score >= threshold
    n_pos, n_neg = int(is_pos.sum()), int((~is_pos).sum())
    return {"fpr": float(called[~is_pos].mean()) if n_neg else None,
            "recall": float(called[is_pos].mean()) if n_pos else None,
            "accuracy": float((called == is_pos).mean()) if len(is_pos) else None,
            "n_positive": n_pos, "n_negative": n_neg}


def brier_score(is_pos: np.ndarray, score: np.ndarray) -> float:
    """Mean squared distance between the probability of the positive class and the truth (0 is perfect).

    >>> brier_score(np.array([1, 0]), np.array([0.8, 0.4]))
    0.1
    """
    return float(np.round(np.mean((np.asarray(score, float) - np.asarray(is_pos, float)) ** 2), 12))


def reliability_curve(is_pos: np.ndarray, score: np.ndarray, bins: int = RELIABILITY_BINS) -> dict[str, list]:
    """Per bin of predicted probability: its mean prediction, the share truly positive, and the count.

    Empty bins are left out; the bins are scikit-learn's ``calibration_curve``'s. A
    calibrated model's points lie on the diagonal.
    """
    score = np.asarray(score, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.searchsorted(edges[1:-1], score)  # a value on an edge joins the bin below, as in scikit-learn
    predicted, observed, count = [], [], []
    for b in range(bins):
        sel = which == b
        if sel.any():
            predicted.append(round(float(score[sel].mean()), 6))
            observed.append(round(float(np.asarray(is_pos)[sel].mean()), 6))
            count.append(int(sel.sum()))
    return {"predicted": predicted, "observed": observed, "count": count}


def per_source(labels: Sequence[Any], proba: np.ndarray, classes: Sequence[str], positive_class: str,
               sources: Sequence[Any], threshold: float | None = None) -> dict[str, dict[str, Any]]:
    """Each source's positives against all the negatives of the set: ROC AUC, recall at ``threshold``,
    and the recall at the thresholds that call 1% and 5% of these negatives positive.

    >>> per_source(["real", "real", "fake", "fake"], np.array([[.2, .8], [.6, .4], [.9, .1], [.3, .7]]),
    ...            ["fake", "real"], "fake", ["real", "real", "gan", "sd"], threshold=0.5)["sd"]
    {'n': 1, 'n_negative': 2, 'roc_auc': 0.5, 'recall': 0.0, 'tpr_at_1pct_fpr': 0.0, 'tpr_at_5pct_fpr': 0.0}
    """
    from sklearn.metrics import roc_auc_score

    classes = list(classes)
    matched, _ = match_labels(list(labels), classes)
    is_pos = np.array([m == positive_class for m in matched], dtype=bool)
    is_neg = np.array([m is not None and m != positive_class for m in matched], dtype=bool)
    score = np.asarray(proba, dtype=float)[:, classes.index(positive_class)]
    sources = np.array([None if s is None or s != s else str(s) for s in sources], dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for source in sorted({s for s in sources[is_pos] if s is not None}):
        mine = is_pos & (sources == source)
        entry: dict[str, Any] = {"n": int(mine.sum()), "n_negative": int(is_neg.sum())}
        sel = mine | is_neg
        entry["roc_auc"] = float(roc_auc_score(mine[sel], score[sel])) if is_neg.any() else None
        entry["recall"] = float((score[mine] >= threshold).mean()) if threshold is not None else None
        for fpr, key in ((0.01, "tpr_at_1pct_fpr"), (0.05, "tpr_at_5pct_fpr")):
            entry[key] = float((score[mine] >= threshold_at_fpr(score[is_neg], fpr)).mean()) if is_neg.any() else None
        out[source] = entry
    return out


def evaluate(labels: Sequence[Any], proba: np.ndarray, classes: Sequence[str],
             positive_class: str | None = None, n_boot: int = N_BOOT, seed: int = 0,
             threshold: float | None = None) -> dict[str, Any]:
    """Figures for one set: true ``labels`` against ``proba`` (one column per class).

    The predicted class is the most probable one (for a binary task, the
    positive class above 0.5). A binary task's ``threshold`` on the positive
    class adds ``at_threshold``: the false-positive rate, recall and
    accuracy of calling positive every image at or above it.
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
        out["brier"] = brier_score(is_pos, score)
        out["reliability"] = reliability_curve(is_pos, score)
        if threshold is not None:
            out["at_threshold"] = {"threshold": float(threshold), **_at_threshold(is_pos.astype(bool), score,
                                                                                   threshold)}
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


def labels_at(proba: np.ndarray, classes: Sequence[str], positive: str | None,
              threshold: float | None) -> list[str]:
    """The label of each row of ``proba``: the one verdict a run gives.

    A binary run with a decision threshold calls a row ``positive`` at or
    above the threshold on ``P(positive)`` and the other class below it; any
    other run gives the most probable class.

    >>> labels_at(np.array([[.7, .3], [.95, .05]]), ["fake", "real"], "fake", 0.9)
    ['real', 'fake']
    >>> labels_at(np.array([[.2, .5, .3]]), ["a", "b", "c"], None, None)
    ['b']
    """
    proba = np.asarray(proba, dtype=float)
    classes = list(classes)
    if not len(proba):
        return []
    if threshold is not None and positive in classes and len(classes) == 2:
        pos = classes.index(positive)
        other = classes[1 - pos]
        return [positive if p >= threshold else other for p in proba[:, pos]]
    return [classes[i] for i in np.nan_to_num(proba, nan=-1).argmax(axis=1)]


@dataclass(frozen=True)
class Scoring:
    """How a run scores each of its sets: its ``classes`` (the columns of its probabilities), the
    ``positive`` class of a binary task (None otherwise), the ``seed`` of the bootstrap intervals and
    the run's decision ``threshold`` on the positive class (binary tasks)."""

    classes: Sequence[str]
    positive: str | None = None
    seed: int = 0
    threshold: float | None = None


@dataclass(frozen=True)
class ScoredSet:
    """Which set is scored: its ``name`` in ``metrics.json``, its ``role`` (train, valid, test or
    eval) and the ``dataset`` it comes from."""

    name: str
    role: str
    dataset: str


def score_set(proba: np.ndarray, rows: pd.DataFrame, scoring: Scoring,
              which: ScoredSet) -> tuple[dict[str, Any], pd.DataFrame]:
    """The ``metrics.json`` entry and the prediction rows of one scored set.

    ``rows`` are the images that were scored (one per row of ``proba``), with
    ``image_id``, ``path``, ``hash`` and ``label`` (and ``source`` when the
    dataset names the source of its fakes). Both model kinds score every set
    through here, so their figures mean the same.
    """
    classes, positive, threshold = list(scoring.classes), scoring.positive, scoring.threshold
    set_name, seed = which.name, scoring.seed
    metrics = {"role": which.role, "dataset": which.dataset,
               **evaluate(rows["label"].tolist(), proba, classes, positive_class=positive, seed=seed,
                          threshold=threshold)}
    if positive is not None and len(classes) == 2 and "source" in rows.columns and len(proba):
        metrics["per_source"] = per_source(rows["label"].tolist(), proba, classes, positive,
                                           rows["source"].tolist(), threshold)
    pred = labels_at(proba, classes, positive, threshold)
    out = pd.DataFrame({"set": set_name, "image_id": rows["image_id"].astype(str).values,
                        "path": rows["path"].astype(str).values, "hash": rows["hash"].astype(str).values,
                        "label": rows["label"].values, "pred": pred})
    if "source" in rows.columns:
        out["source"] = rows["source"].astype(object).values
    matched, _ = match_labels(out["label"].tolist(), classes)
    out["correct"] = matched == out["pred"].to_numpy(object)
    for i, c in enumerate(classes):
        out[f"proba_{c}"] = proba[:, i] if len(proba) else []
    return metrics, out
