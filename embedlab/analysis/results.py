"""Model results read straight from run folders, as tables and figures.

A run folder holds ``params.json``, ``metrics.json``, ``predictions.parquet``
and, for networks, ``history.csv``. These functions read those files only
(no model is loaded), so a report can show runs of any model kind.

>>> [round(v, 3) for v in wilson_interval(45, 50)]
[0.786, 0.957]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.figures import base_layout, colours_for, plain
from embedlab.analysis.groups import GENERATED, REAL, dataset_is_generated, origin_of_labels
from embedlab.core.errors import ModelError
from embedlab.runs.folder import (HISTORY_FILE, METRICS_FILE, PARAMS_FILE, PREDICTIONS_FILE, located_images,
                                  read_json, read_optional_table, stored_verdicts)
from embedlab.runs.provenance import run_datasets


@dataclass
class RunRecord:
    """What a run folder says about one fitted model."""

    path: Path
    params: dict[str, Any]
    metrics: dict[str, Any]
    predictions: pd.DataFrame | None
    history: pd.DataFrame | None

    @property
    def name(self) -> str:
        return str(self.params.get("name") or self.path.name)

    @property
    def sets(self) -> dict[str, dict[str, Any]]:
        return self.metrics.get("sets", {}) or {}


def read_run_folder(path: str | Path) -> RunRecord:
    """Read ``params.json``, ``metrics.json`` and, where present, predictions and history."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: no such run folder")
    params = read_json(path / PARAMS_FILE)
    metrics = read_json(path / METRICS_FILE)
    predictions = stored_verdicts(read_optional_table(path / PREDICTIONS_FILE), params)
    return RunRecord(path, params, metrics, located_images(predictions, params, path),
                     read_optional_table(path / HISTORY_FILE))


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion (NaNs for ``n == 0``)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def set_origins(record: RunRecord, generated: Sequence[str] | None = None) -> Callable[[str, pd.Series], np.ndarray]:
    """A function giving ``real``/``generated`` per prediction row of a set.

    Labels such as ``fake`` decide row by row; otherwise the set's dataset
    decides (see :func:`embedlab.analysis.dataset_is_generated`).
    """
    data_name = str((record.params.get("data") or {}).get("name") or "")
    places = run_datasets(record.params, record.path)

    def origins(set_name: str, labels: pd.Series) -> np.ndarray:
        info = record.sets.get(set_name, {})
        dataset = str(info.get("dataset") or (data_name if set_name in ("train", "valid", "test") else set_name))
        return origin_of_labels(labels, dataset_is_generated(places.get(dataset, dataset), generated))

    return origins


def comparison_table(records: Sequence[RunRecord], generated: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run, in the original study's form plus AUC and intervals.

    Columns: ``run``, ``model``, ``features``, ``task``, ``train_accuracy``,
    ``test_accuracy`` and ``test_accuracy_ci`` (the fitted dataset's test
    set), ``real_accuracy``/``generated_accuracy`` with ``_n`` and ``_ci``
    (accuracy on real and on generated faces over the test and evaluation
    sets, Wilson intervals; from the predictions), ``test_auc``,
    ``test_auc_ci``, ``test_brier`` and ``threshold`` (binary tasks; the
    decision threshold the run chose on validation).
    """
    rows = []
    for rec in records:
        sets = rec.sets
        test = sets.get("test") or next((s for s in sets.values() if s.get("role") == "test"), {})
        row: dict[str, Any] = {
            "run": rec.name, "kind": rec.params.get("kind"), "model": rec.params.get("model"),
            "features": "+".join(rec.params.get("features") or []) or "images",
            "task": rec.params.get("task"),
            "train_accuracy": (sets.get("train") or {}).get("accuracy"),
            "test_accuracy": test.get("accuracy"), "test_accuracy_ci": test.get("accuracy_ci"),
            "test_auc": test.get("roc_auc"), "test_auc_ci": test.get("roc_auc_ci"),
            "test_brier": test.get("brier"), "threshold": (rec.params.get("threshold") or {}).get("value"),
            "eval_sets": ", ".join(n for n, s in sets.items() if s.get("role") == "eval"),
        }
        pred = rec.predictions
        for origin in (REAL, GENERATED):
            row[f"{origin}_accuracy"], row[f"{origin}_n"], row[f"{origin}_ci"] = None, 0, None
        if pred is not None and len(pred):
            roles = {n: s.get("role", n) for n, s in sets.items()}
            keep = pred["set"].map(lambda s: roles.get(s, "eval" if s not in ("train", "valid") else s))
            held_out = pred[keep.isin(["test", "eval"]).to_numpy()]
            origin_of = set_origins(rec, generated)
            parts = [origin_of(s, g["label"].astype(str)) for s, g in held_out.groupby("set", sort=False)]
            frames = [g for _, g in held_out.groupby("set", sort=False)]
            if frames:
                held = pd.concat(frames)
                origins = np.concatenate(parts)
                for origin in (REAL, GENERATED):
                    sel = held["correct"].to_numpy(bool)[origins == origin]
                    if len(sel):
                        row[f"{origin}_accuracy"] = float(sel.mean())
                        row[f"{origin}_n"] = int(len(sel))
                        row[f"{origin}_ci"] = list(wilson_interval(int(sel.sum()), len(sel)))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], *, title: str = "Confusion matrix"):
    """Row-normalised confusion matrix (rows: true, columns: predicted), counts on hover."""
    import plotly.graph_objects as go

    counts = np.asarray(matrix, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(labels):
        raise ModelError(f"confusion matrix of shape {counts.shape} does not match {len(labels)} labels")
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
    names = [plain(label) for label in labels]
    text = [[f"{v:.0%}" if np.isfinite(v) else "" for v in row] for row in share]
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, customdata=counts, text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, colorbar={"title": "share of row", "tickformat": ".0%"},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.1%} of the row (%{customdata:,} images)<extra></extra>"))
    side = max(300, 60 * len(labels) + 160)
    fig.update_layout(**base_layout(plain(title), height=side, xaxis={"title": "predicted", "type": "category"},
                                    yaxis={"title": "true", "autorange": "reversed", "type": "category"}))
    return fig


def _curve_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float], str]], *, title: str,
                  xaxis: str, yaxis: str, diagonal: bool):
    import plotly.graph_objects as go

    colours = colours_for(curves)
    fig = go.Figure()
    if diagonal:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"},
                                 name="chance", hoverinfo="skip"))
    for name, (x, y, note) in curves.items():
        fig.add_trace(go.Scatter(
            x=np.asarray(x, np.float32), y=np.asarray(y, np.float32), mode="lines",
            name=f"{plain(name)} {plain(note)}".strip(), line={"color": colours[name], "width": 2},
            hovertemplate=f"{plain(name)}<br>{xaxis} %{{x:.3f}}<br>{yaxis} %{{y:.3f}}<extra></extra>"))
    # long run names: the legend goes under the plot, not beside it
    fig.update_layout(**base_layout(plain(title), xaxis={"title": xaxis, "range": [0, 1.01]},
                                    yaxis={"title": yaxis, "range": [0, 1.01]}, height=440 + 20 * len(curves),
                                    legend={"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"}))
    return fig


def plot_roc(curves: Mapping[str, tuple[Sequence[float], Sequence[float], str]], *, title: str = "ROC curves"):
    """ROC curves: name -> (fpr, tpr, note such as the AUC)."""
    return _curve_figure(curves, title=title, xaxis="false positive rate", yaxis="true positive rate",
                         diagonal=True)


def plot_pr(curves: Mapping[str, tuple[Sequence[float], Sequence[float], str]], *,
            title: str = "Precision-recall curves"):
    """Precision-recall curves: name -> (recall, precision, note such as the AP)."""
    return _curve_figure(curves, title=title, xaxis="recall", yaxis="precision", diagonal=False)


def plot_history(history: pd.DataFrame, *, title: str = "Training curves"):
    """Loss and accuracy per epoch, train and validation side by side."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    if "epoch" not in history:
        raise ModelError("history.csv needs an 'epoch' column")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    styles = {"train": {"color": "#1f77b4"}, "val": {"color": "#ff7f0e"}}
    for col, metric in ((1, "loss"), (2, "acc")):
        for part in ("train", "val"):
            name = f"{part}_{metric}"
            if name in history:
                fig.add_trace(go.Scatter(x=history["epoch"], y=history[name], mode="lines+markers", name=name,
                                         line=styles[part], legendgroup=part, showlegend=col == 1),
                              row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(**base_layout(plain(title), height=360))
    return fig


def confident_mistakes(predictions: pd.DataFrame, n: int = 12, sets: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``n`` wrong predictions made with the highest probability for the predicted class.

    Adds ``confidence`` (that probability); rows of ``sets`` only when given.
    """
    wrong = predictions[~predictions["correct"].astype(bool)]
    if sets is not None:
        wrong = wrong[wrong["set"].isin(list(sets))]
    if wrong.empty:
        return wrong.assign(confidence=pd.Series(dtype=float))
    conf = np.full(len(wrong), np.nan)
    for i, pred in enumerate(wrong["pred"].astype(str)):
        col = f"proba_{pred}"
        if col in wrong:
            conf[i] = wrong[col].iloc[i]
    out = wrong.assign(confidence=conf)
    return out.sort_values("confidence", ascending=False, na_position="last").head(n)


def per_class_accuracy(records: Sequence[RunRecord], generated: Sequence[str] | None = None) -> pd.DataFrame:
    """Accuracy per true label and origin (real/generated) over each run's test and evaluation sets.

    One row per (run, origin, label) with ``n``, ``correct``, ``accuracy``
    and its Wilson interval ``ci_low``/``ci_high``; for an emotion model
    evaluated on generated portraits (``--eval-on``), it says which emotions
    carry over from real faces to generated ones. Binary real/fake runs are
    left out: there the label is the origin.
    """
    rows = []
    for rec in records:
        pred = rec.predictions
        if pred is None or pred.empty or rec.params.get("task") == "binary":
            continue
        roles = {n: s.get("role", n) for n, s in rec.sets.items()}
        held = pred[pred["set"].map(lambda s: roles.get(s, "eval")).isin(["test", "eval"]).to_numpy()]
        if held.empty:
            continue
        origin_of = set_origins(rec, generated)
        origins = np.concatenate([origin_of(s, g["label"].astype(str)) for s, g in held.groupby("set", sort=False)])
        held = pd.concat([g for _, g in held.groupby("set", sort=False)]).assign(origin=origins)
        for (origin, label), g in held.groupby(["origin", held["label"].astype(str)], sort=True):
            correct = int(g["correct"].astype(bool).sum())
            low, high = wilson_interval(correct, len(g))
            rows.append({"run": rec.name, "origin": origin, "label": label, "n": int(len(g)), "correct": correct,
                         "accuracy": correct / len(g), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["run", "origin", "label", "n", "correct", "accuracy", "ci_low", "ci_high"])


def plot_per_class_accuracy(frame: pd.DataFrame, *, order: Sequence[str] = (),
                            title: str = "Accuracy per class, real and generated faces", by: str = "origin"):
    """Grouped bars of :func:`per_class_accuracy` for one run: a bar per ``by`` value (origin) and label,
    with its interval.

    The number of faces behind each bar goes under its group, one line per bar in the bar's colour:
    one label per group on the axis, so labels never sit on the bars, their intervals or each other.
    """
    import plotly.graph_objects as go

    labels = list(dict.fromkeys([str(o) for o in order if str(o) in set(frame["label"])] + sorted(set(frame["label"]))))
    groups = [o for o in (REAL, GENERATED) if o in set(frame[by])] + sorted(
        set(map(str, frame[by])) - {REAL, GENERATED})
    colours = colours_for(groups)
    fig = go.Figure()
    counts = {}
    for group in groups:
        part = frame[frame[by].astype(str) == group].set_index("label").reindex(labels)
        acc = part["accuracy"].to_numpy(float)
        counts[group] = part["n"].to_numpy(float)
        fig.add_trace(go.Bar(
            x=[plain(label) for label in labels], y=acc, name=plain(group), marker_color=colours[group],
            error_y={"type": "data", "symmetric": False, "array": part["ci_high"].to_numpy(float) - acc,
                     "arrayminus": acc - part["ci_low"].to_numpy(float), "thickness": 1},
            customdata=np.c_[part["correct"].to_numpy(float), part["n"].to_numpy(float)],
            hovertemplate=f"{plain(group)} · %{{x}}<br>accuracy %{{y:.1%}}<br>%{{customdata[0]:.0f}} of "
                          "%{customdata[1]:.0f} correct<extra></extra>"))
    ticks = [plain(label) + "".join(
        f'<br><span style="color:{colours[g]}">{int(counts[g][i]) if counts[g][i] == counts[g][i] else "–"}</span>'
        for g in groups) for i, label in enumerate(labels)]
    fig.update_layout(**base_layout(plain(title), barmode="group", height=440,
                                    margin={"l": 60, "r": 20, "t": 60, "b": 40 + 16 * len(groups)},
                                    xaxis={"title": {"text": "true label; under it, n faces of each bar, in its colour",
                                                     "standoff": 6},
                                           "type": "category", "tickmode": "array",
                                           "tickvals": [plain(label) for label in labels], "ticktext": ticks},
                                    yaxis={"title": "accuracy (95% Wilson interval)", "range": [0, 1.05],
                                           "tickformat": ".0%"}))
    return fig
