"""How much each class loses from real faces to generated ones, from two confusion matrices.

A model trained on real faces is scored on a real set and on a generated one. Both sets are
reduced to the classes they share (the rows) and the model's own choices (the columns), so the
two confusion matrices read alike; each class's recall gets its Wilson 95% interval, and its
drop from real to generated Newcombe's interval for a difference of two proportions (the
hybrid score interval built from the two Wilson intervals).

>>> gap = recall_gap(["a", "b"], [[8, 2], [5, 5]], [[3, 7], [5, 5]])
>>> gap[["label", "recall_real", "recall_generated", "drop"]].round(2).values.tolist()
[['a', 0.8, 0.3, 0.5], ['b', 0.5, 0.5, 0.0]]
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.figures import base_layout, plain
from embedlab.analysis.groups import GENERATED, REAL
from embedlab.analysis.results import RunRecord, set_origins, wilson_interval
from embedlab.core.errors import ModelError

GAP_COLUMNS = ["label", "n_real", "recall_real", "real_ci_low", "real_ci_high", "n_generated", "recall_generated",
               "generated_ci_low", "generated_ci_high", "drop", "drop_ci_low", "drop_ci_high"]


def difference_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's 95% interval of ``k1/n1 - k2/n2`` (two independent proportions; NaNs if a side is empty).

    >>> [round(v, 3) for v in difference_interval(56, 70, 48, 80)]  # Newcombe (1998), example (a)
    [0.052, 0.334]
    """
    if n1 <= 0 or n2 <= 0:
        return float("nan"), float("nan")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def class_recalls(labels: Sequence[str], matrix: Sequence[Sequence[int]],
                  predicted: Sequence[str] | None = None) -> pd.DataFrame:
    """Recall per true class of a confusion matrix (rows ``labels``, columns ``predicted``, default the
    same), with its Wilson 95% interval: columns ``label, n, correct, recall, ci_low, ci_high``.

    A class whose column the matrix lacks is never predicted: its recall is 0.
    """
    counts = _matrix(labels, matrix, predicted)
    columns = list(predicted if predicted is not None else labels)
    rows = []
    for i, label in enumerate(labels):
        n = int(counts[i].sum())
        correct = int(counts[i, columns.index(label)]) if label in columns else 0
        low, high = wilson_interval(correct, n)
        rows.append({"label": str(label), "n": n, "correct": correct, "recall": correct / n if n else float("nan"),
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["label", "n", "correct", "recall", "ci_low", "ci_high"])


def recall_gap(labels: Sequence[str], real: Sequence[Sequence[int]], generated: Sequence[Sequence[int]],
               predicted: Sequence[str] | None = None) -> pd.DataFrame:
    """Per class: recall on real and on generated faces, each with its interval, and the drop from
    real to generated with Newcombe's interval; the classes that lose most first.

    ``real`` and ``generated`` are confusion matrices over the same rows (``labels``, the true
    classes both sets hold) and columns (``predicted``, default ``labels``).
    """
    r, g = class_recalls(labels, real, predicted), class_recalls(labels, generated, predicted)
    rows = []
    for a, b in zip(r.to_dict("records"), g.to_dict("records")):
        low, high = difference_interval(a["correct"], a["n"], b["correct"], b["n"])
        rows.append({"label": a["label"], "n_real": a["n"], "recall_real": a["recall"], "real_ci_low": a["ci_low"],
                     "real_ci_high": a["ci_high"], "n_generated": b["n"], "recall_generated": b["recall"],
                     "generated_ci_low": b["ci_low"], "generated_ci_high": b["ci_high"],
                     "drop": a["recall"] - b["recall"], "drop_ci_low": low, "drop_ci_high": high})
    frame = pd.DataFrame(rows, columns=GAP_COLUMNS)
    return frame.sort_values("drop", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def shared_rows(labels: Sequence[str], matrix: Sequence[Sequence[int]], keep: Sequence[str]) -> list[list[int]]:
    """The rows of a square confusion matrix (rows and columns ``labels``) for the true classes ``keep``,
    every column kept: the model's choices stay what they were.

    >>> shared_rows(["a", "b", "c"], [[1, 2, 3], [4, 5, 6], [7, 8, 9]], ["c", "a"])
    [[7, 8, 9], [1, 2, 3]]
    """
    counts = _matrix(labels, matrix, labels)
    missing = [k for k in keep if k not in labels]
    if missing:
        raise ModelError(f"confusion matrix has no row for {', '.join(map(str, missing))}; its rows: "
                         f"{', '.join(map(str, labels))}")
    return [[int(v) for v in counts[list(labels).index(k)]] for k in keep]


def gap_summary(real_labels: Sequence[str], real: Sequence[Sequence[int]], generated_labels: Sequence[str],
                generated: Sequence[Sequence[int]], **about: Any) -> dict[str, Any]:
    """Both confusion matrices over the true classes the generated set holds, side by side, and the
    per-class :func:`recall_gap` (classes that lose most first), as plain JSON-ready values.

    Both matrices must have square rows and columns over their own labels; the real set's
    columns are the model's choices, so the generated matrix is laid onto them.
    """
    g = np.asarray(generated, dtype=np.int64)
    present = [lab for i, lab in enumerate(generated_labels) if g[i].sum() > 0]
    predicted = list(real_labels)
    missing = [lab for lab in generated_labels if lab not in predicted]
    if missing:
        raise ModelError(f"the generated set's classes {', '.join(missing)} are not among the model's "
                         f"{', '.join(predicted)}")
    laid = np.zeros((len(generated_labels), len(predicted)), np.int64)
    for j, lab in enumerate(generated_labels):
        laid[:, predicted.index(lab)] = g[:, j]
    gen_rows = [[int(v) for v in laid[list(generated_labels).index(k)]] for k in present]
    real_rows = shared_rows(real_labels, real, present)
    gap = recall_gap(present, real_rows, gen_rows, predicted)
    return {**about, "labels": present, "predicted": predicted, "real_confusion": real_rows,
            "generated_confusion": gen_rows, "classes": json_records(gap)}


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as dicts of plain floats and ints, NaN as None."""
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and v != v else
                        int(v) if isinstance(v, (np.integer,)) else float(v) if isinstance(v, np.floating) else v)
                    for k, v in row.items()})
    return out


def origin_confusions(records: Sequence[RunRecord], generated: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """For each multiclass run scored on real and on generated faces, the two confusion matrices of its
    held-out sets (test and evaluation sets), over the true classes the generated faces hold and the
    run's own predicted classes, and the per-class drop (:func:`recall_gap`).

    Each item: ``run``, ``labels`` (rows), ``predicted`` (columns), ``real``, ``generated``
    (count matrices), ``n_real``, ``n_generated`` and ``gap`` (a DataFrame).
    """
    out = []
    for rec in records:
        pred = rec.predictions
        if pred is None or pred.empty or rec.params.get("task") == "binary" or "pred" not in pred:
            continue
        roles = {n: s.get("role", n) for n, s in rec.sets.items()}
        held = pred[pred["set"].map(lambda s: roles.get(s, "eval")).isin(["test", "eval"]).to_numpy()]
        if "ok" in held:
            held = held[held["ok"].fillna(False).astype(bool).to_numpy()]
        if held.empty:
            continue
        origin_of = set_origins(rec, generated)
        parts = [g.assign(origin=origin_of(s, g["label"].astype(str))) for s, g in held.groupby("set", sort=False)]
        held = pd.concat(parts)
        if set(held["origin"]) < {REAL, GENERATED}:
            continue
        classes = [str(c) for c in rec.params.get("classes") or sorted(set(held["label"].astype(str)))]
        gen = held[held["origin"] == GENERATED]
        labels = [c for c in classes if c in set(gen["label"].astype(str))]
        real = held[(held["origin"] == REAL) & held["label"].astype(str).isin(labels)]
        if not labels or real.empty:
            continue
        mats = {origin: _count(frame, labels, classes) for origin, frame in ((REAL, real), (GENERATED, gen))}
        out.append({"run": rec.name, "labels": labels, "predicted": classes, "real": mats[REAL],
                    "generated": mats[GENERATED], "n_real": int(len(real)), "n_generated": int(len(gen)),
                    "gap": recall_gap(labels, mats[REAL], mats[GENERATED], classes)})
    return out


def plot_confusion_pair(labels: Sequence[str], predicted: Sequence[str], real: Sequence[Sequence[int]],
                        generated: Sequence[Sequence[int]], *, title: str = "Real against generated faces"):
    """The real and the generated confusion matrix next to each other, rows normalised on one colour
    scale (rows: true class, columns: predicted), counts on hover."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    mats = [_matrix(labels, m, predicted) for m in (real, generated)]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=[
        f"real faces (n={int(mats[0].sum()):,})", f"generated faces (n={int(mats[1].sum()):,})"])
    rows, cols = [plain(v) for v in labels], [plain(v) for v in predicted]
    for k, counts in enumerate(mats):
        totals = counts.sum(axis=1, keepdims=True)
        share = np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
        text = [[f"{v:.0%}" if np.isfinite(v) else "" for v in row] for row in share]
        fig.add_trace(go.Heatmap(
            z=share, x=cols, y=rows, customdata=counts, text=text, texttemplate="%{text}", colorscale="Blues",
            zmin=0, zmax=1, showscale=k == 1, colorbar={"title": "share of row", "tickformat": ".0%"},
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.1%} of the row (%{customdata:,} images)"
                          "<extra></extra>"), row=1, col=k + 1)
        fig.update_xaxes(title_text="predicted", type="category", row=1, col=k + 1)
        fig.update_yaxes(title_text="true" if k == 0 else None, type="category", autorange="reversed",
                         row=1, col=k + 1)
    fig.update_layout(**base_layout(plain(title), height=max(320, 55 * len(labels) + 200)))
    return fig


def _count(frame: pd.DataFrame, labels: Sequence[str], predicted: Sequence[str]) -> list[list[int]]:
    counts = np.zeros((len(labels), len(predicted)), np.int64)
    rows, cols = {c: i for i, c in enumerate(labels)}, {c: j for j, c in enumerate(predicted)}
    for t, p in zip(frame["label"].astype(str), frame["pred"].astype(str)):
        if t in rows and p in cols:
            counts[rows[t], cols[p]] += 1
    return counts.tolist()


def _matrix(labels: Sequence[str], matrix: Sequence[Sequence[int]], predicted: Sequence[str] | None) -> np.ndarray:
    counts = np.asarray(matrix, dtype=np.int64)
    shape = (len(labels), len(predicted if predicted is not None else labels))
    if counts.shape != shape:
        raise ModelError(f"confusion matrix of shape {counts.shape} does not match {shape[0]} true and "
                         f"{shape[1]} predicted labels")
    return counts
