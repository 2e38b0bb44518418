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
