"""How far a real/fake detector can be trusted: calibration, and which sources of fakes it catches.

Everything is read from run folders' ``metrics.json`` (see
:mod:`embedlab.runs.scoring`): ``reliability`` and ``brier`` per set, and
``per_source`` (each source's fakes against all the set's reals). A run fitted
with ``leave_out`` never saw one source; :func:`source_matrix` lines runs up
as "trained on" against "scored on", so the cells of unseen sources show how
the detector does on a generator it has not met.

>>> from pathlib import Path
>>> from embedlab.analysis.results import RunRecord
>>> rec = RunRecord(Path("r"), {"name": "r", "model": "svm", "sources": {"train": ["gan"]}, "leave_out": "sd"},
...                 {"sets": {"test": {"role": "test", "per_source": {"gan": {"n": 4, "roc_auc": 0.9, "recall": 0.5},
...                                                                  "sd": {"n": 2, "roc_auc": 0.6, "recall": 0.0}}}}},
...                 None, None)
>>> source_matrix([rec])[["trained_on", "scored_on", "auc", "unseen"]].values.tolist()
[['gan', 'gan', 0.9, False], ['gan', 'sd', 0.6, True]]
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.figures import base_layout, colours_for, plain
from embedlab.runs.scoring import TARGET_FPR, match_labels, threshold_at_fpr


def source_matrix(records: Sequence[Any], set_name: str = "test") -> pd.DataFrame:
    """One row per (run, scored source) of ``set_name``: ``run``, ``model``, ``trained_on``,
    ``left_out``, ``scored_on``, ``n``, ``auc``, ``recall`` and ``unseen`` (the source was
    not in the run's training images)."""
    rows = []
    for rec in records:
        per = (rec.sets.get(set_name) or {}).get("per_source") or {}
        if not per:
            continue
        trained = list((rec.params.get("sources") or {}).get("train") or [])
        left_out = rec.params.get("leave_out")
        for source, s in per.items():
            rows.append({"run": rec.name, "model": rec.params.get("model"),
                         "trained_on": "+".join(trained) or "?", "left_out": left_out, "scored_on": source,
                         "n": s.get("n"), "auc": s.get("roc_auc"), "recall": s.get("recall"),
                         "unseen": bool(trained) and source not in trained})
    return pd.DataFrame(rows, columns=["run", "model", "trained_on", "left_out", "scored_on", "n", "auc",
                                       "recall", "unseen"])


def _row_labels(matrix: pd.DataFrame) -> pd.Series:
    """"trained on X", with the model, then the run, added where that alone repeats."""
    label = "trained on " + matrix["trained_on"]
    runs_per_label = matrix.groupby(label)["run"].transform("nunique")
    label = label.where(runs_per_label == 1, label + " · " + matrix["model"].astype(str))
    runs_per_label = matrix.groupby(label)["run"].transform("nunique")
    return label.where(runs_per_label == 1, label + " · " + matrix["run"])


def plot_source_matrix(matrix: pd.DataFrame, *, title: str = "ROC AUC per source of fakes, against the reals"):
    """Heatmap of :func:`source_matrix`: rows trained on, columns scored on, AUC in the cells.

    Cells of sources a run never trained on are marked "unseen".
    """
    import plotly.graph_objects as go

    matrix = matrix.assign(row=_row_labels(matrix))
    rows = list(dict.fromkeys(matrix["row"]))
    cols = sorted(matrix["scored_on"].unique())
    z = np.full((len(rows), len(cols)), np.nan)
    text = [["" for _ in cols] for _ in rows]
    hover = [["" for _ in cols] for _ in rows]
    for r in matrix.itertuples():
        i, j = rows.index(r.row), cols.index(r.scored_on)
        auc = np.nan if r.auc is None else float(r.auc)
        z[i, j] = auc
        text[i][j] = ("–" if np.isnan(auc) else f"{auc:.3f}") + (" (unseen)" if r.unseen else "")
        recall = "–" if r.recall is None or r.recall != r.recall else f"{r.recall:.1%}"
        hover[i][j] = (f"run {plain(r.run)}<br>scored on {plain(r.scored_on)} ({r.n} fakes)<br>AUC {text[i][j]}"
                       f"<br>recall at the run's threshold {recall}")
    fig = go.Figure(go.Heatmap(z=z, x=[plain(c) for c in cols], y=[plain(r) for r in rows], text=text,
                               texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               colorscale="RdYlGn", zmin=0.5, zmax=1, colorbar={"title": "AUC"}))
    fig.update_layout(**base_layout(plain(title), height=max(260, 70 * len(rows) + 160),
                                    xaxis={"title": "scored on (fakes of this source vs all reals)", "type": "category"},
                                    yaxis={"type": "category", "autorange": "reversed"}))
    return fig


def plot_reliability(curves: Mapping[str, Mapping[str, Any]], *, title: str = "Reliability"):
    """Reliability curves: name -> a set's metrics (``reliability`` and ``brier``).

    Each point is a bin of predicted probability: its mean prediction against
    the share of fakes in it; a calibrated model follows the diagonal.
    """
    import plotly.graph_objects as go

    colours = colours_for(curves)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"},
                             name="calibrated", hoverinfo="skip"))
    for name, m in curves.items():
        r = m.get("reliability") or {}
        brier = m.get("brier")
        note = f"(Brier {brier:.3f})" if brier is not None else ""
        fig.add_trace(go.Scatter(
            x=r.get("predicted", []), y=r.get("observed", []), mode="lines+markers",
            name=f"{plain(name)} {note}".strip(), line={"color": colours[name], "width": 2},
            customdata=r.get("count", []),
            hovertemplate=f"{plain(name)}<br>mean predicted %{{x:.3f}}<br>share fake %{{y:.3f}}"
                          "<br>%{customdata} images<extra></extra>"))
    fig.update_layout(**base_layout(plain(title), xaxis={"title": "mean predicted probability of fake",
                                                         "range": [0, 1.01]},
                                    yaxis={"title": "share truly fake", "range": [0, 1.01]},
                                    height=440 + 20 * len(curves),
                                    legend={"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"}))
    return fig


def _held_out_sets(record: Any) -> list[str]:
    return [n for n, s in record.sets.items() if s.get("role") in ("test", "eval")]


def detection_curves(record: Any, target_fpr: float = TARGET_FPR) -> dict[str, dict[str, Any]]:
    """ROC and precision-recall of a binary run on each held-out set, with the TPR at ``target_fpr``.

    Read from the run's predictions (``proba_<positive class>``). An
    ``--eval-on`` set that holds only fakes has no reals to rank them
    against, so its fakes are scored against the test set's reals
    (``negatives`` says which set the reals came from). ``tpr_at_fpr`` is the
    share of fakes caught at the threshold that lets at most ``target_fpr``
    of the reals through. Without predictions the curves of ``metrics.json``
    are used and the TPR is read off the ROC curve.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    classes = list(record.params.get("classes") or [])
    positive = record.params.get("positive_class")
    if len(classes) != 2 or positive not in classes:
        return {}
    pred = record.predictions
    column = f"proba_{positive}"
    if pred is None or pred.empty or column not in pred:
        return _curves_from_metrics(record, target_fpr)
    matched = match_labels(pred["label"].tolist(), classes)[0]
    known = np.array([m is not None for m in matched], dtype=bool)
    is_pos = matched == positive
    score = pred[column].to_numpy(float)
    test = next((n for n in _held_out_sets(record) if record.sets[n].get("role") == "test"), None)
    out: dict[str, dict[str, Any]] = {}
    for name in _held_out_sets(record):
        in_set = (pred["set"] == name).to_numpy() & known
        pos = in_set & is_pos
        neg, negatives = in_set & ~is_pos, name
        if not neg.any() and test is not None and name != test:
            neg, negatives = (pred["set"] == test).to_numpy() & known & ~is_pos, test
        if not pos.any() or not neg.any():
            continue
        y = np.r_[np.ones(pos.sum()), np.zeros(neg.sum())]
        s = np.r_[score[pos], score[neg]]
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        threshold = threshold_at_fpr(score[neg], target_fpr)
        out[name] = {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall,
                     "auc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s)),
                     "n_pos": int(pos.sum()), "n_neg": int(neg.sum()), "negatives": negatives,
                     "target_fpr": target_fpr, "threshold": float(threshold),
                     "tpr_at_fpr": float((score[pos] >= threshold).mean())}
    return out


def _curves_from_metrics(record: Any, target_fpr: float) -> dict[str, dict[str, Any]]:
    out = {}
    for name in _held_out_sets(record):
        s = record.sets[name]
        roc = s.get("roc") or {}
        if not roc.get("fpr"):
            continue
        fpr, tpr = np.asarray(roc["fpr"], float), np.asarray(roc["tpr"], float)
        pr = s.get("pr") or {}
        out[name] = {"fpr": fpr, "tpr": tpr, "precision": np.asarray(pr.get("precision", []), float),
                     "recall": np.asarray(pr.get("recall", []), float), "auc": s.get("roc_auc"),
                     "ap": s.get("average_precision"), "n_pos": None, "n_neg": None, "negatives": name,
                     "target_fpr": target_fpr, "threshold": None,
                     "tpr_at_fpr": float(tpr[fpr <= target_fpr + 1e-12].max(initial=0.0))}
    return out


def detection_table(records: Sequence[Any], target_fpr: float = TARGET_FPR) -> pd.DataFrame:
    """One row per (binary run, held-out set): AUC, AP and the TPR at ``target_fpr`` (see :func:`detection_curves`)."""
    rows = []
    for rec in records:
        for name, c in detection_curves(rec, target_fpr).items():
            rows.append({"run": rec.name, "set": name, "role": rec.sets[name].get("role"),
                         "negatives": c["negatives"], "n_pos": c["n_pos"], "n_neg": c["n_neg"], "auc": c["auc"],
                         "ap": c["ap"], "tpr_at_fpr": c["tpr_at_fpr"], "threshold": c["threshold"]})
    return pd.DataFrame(rows, columns=["run", "set", "role", "negatives", "n_pos", "n_neg", "auc", "ap",
                                       "tpr_at_fpr", "threshold"])
