"""Learning curves: the same recipe trained on more or fewer images, scored on the same held-out set.

Runs are grouped by what they were trained with (task, model, features and the model parameters
that change what is learned, :data:`COMPUTE_SETTINGS` aside) and by the size of their test set, so
that only runs that differ in how many training images they saw line up. Within a group each
``leave_out`` is its own curve: the in-distribution curve follows the test set's ROC AUC (accuracy
for a multiclass task), a left-out curve follows the AUC on the source the runs never saw. Whether
more data would still pay is read off the last doubling of the training set.

>>> from pathlib import Path
>>> from embedlab.analysis.results import RunRecord
>>> def rec(n, auc, held, left_out="sd"):
...     params = {"name": f"r{n}-{left_out}", "task": "binary", "model": "svm", "model_params": {"bf16": n == 100},
...               "features": ["encoding"], "leave_out": left_out}
...     sets = {"train": {"role": "train", "n": n},
...             "test": {"role": "test", "n": 40, "roc_auc": auc, "per_source": {"sd": {"n": 20, "roc_auc": held}}}}
...     return RunRecord(Path(params["name"]), params, {"sets": sets}, None, None)
>>> runs = [rec(100, 0.90, 0.70), rec(200, 0.93, 0.72), rec(400, 0.95, 0.73),
...         rec(120, 0.91, 0.90, None), rec(480, 0.97, 0.96, None)]
>>> curves = learning_curves(runs)
>>> curves[["n_train", "curve", "value"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
[[120, 'in-distribution', 0.91], [480, 'in-distribution', 0.97],
 [100, 'left out: sd', 0.7], [200, 'left out: sd', 0.72], [400, 'left out: sd', 0.73]]
>>> {curve: round(gain, 3) for curve, gain in last_doubling_gain(curves).items()}
{'in-distribution': 0.03, 'left out: sd': 0.01}
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.figures import base_layout, colours_for, plain

COLUMNS = ["recipe", "curve", "run", "n_train", "share", "metric", "value", "ci_low", "ci_high"]

#: model parameters that say how a run computed, not what it learned: runs that differ only in them
#: are one recipe
COMPUTE_SETTINGS = ("bf16", "workers_threads")

#: below this gain in AUC (or accuracy) from the last doubling of the training images, a curve is flat
FLAT_GAIN = 0.005


def _recipe(rec: Any) -> tuple[str, str] | None:
    """(a key telling runs of one recipe and one held-out set apart, a readable name), or None."""
    p, sets = rec.params, rec.sets
    if not _n_train(rec) or not (sets.get("test") or {}).get("n"):
        return None
    learned = {k: v for k, v in (p.get("model_params") or {}).items() if k not in COMPUTE_SETTINGS}
    key = json.dumps([p.get("task"), p.get("model"), p.get("features"), learned, sets["test"]["n"]],
                     sort_keys=True, default=str)
    features = "+".join(p.get("features") or [])
    return key, str(p.get("model")) + (f" on {features}" if features else "")


def _n_train(rec: Any) -> int | None:
    """How many images the run trained on, as its metrics count them."""
    n = (rec.sets.get("train") or {}).get("n")
    return int(n) if n else None


def learning_curves(records: Sequence[Any], set_name: str = "test") -> pd.DataFrame:
    """One row per run of a recipe trained at two or more sizes: ``recipe``, ``curve``
    ("in-distribution" or "left out: SOURCE"), ``run``, ``n_train``, ``share`` (of the curve's largest
    training set), ``metric``, ``value`` and its 95% interval."""
    rows, names = [], {}
    for rec in records:
        recipe = _recipe(rec)
        s = rec.sets.get(set_name) or {}
        if recipe is None or not s:
            continue
        key, name = recipe
        names.setdefault(key, name)
        left_out = rec.params.get("leave_out")
        if left_out:
            held = (s.get("per_source") or {}).get(left_out) or {}
            metric, value, ci = "ROC AUC", held.get("roc_auc"), held.get("roc_auc_ci")
        elif s.get("roc_auc") is not None:
            metric, value, ci = "ROC AUC", s.get("roc_auc"), s.get("roc_auc_ci")
        else:
            metric, value, ci = "accuracy", s.get("accuracy"), s.get("accuracy_ci")
        if value is None:
            continue
        ci = ci or [np.nan, np.nan]
        rows.append({"recipe": key, "curve": f"left out: {left_out}" if left_out else "in-distribution",
                     "run": rec.name, "n_train": _n_train(rec), "metric": metric,
                     "value": float(value), "ci_low": float(ci[0]), "ci_high": float(ci[1])})
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "share"])
    if frame.empty:
        return frame.reindex(columns=COLUMNS)
    sizes = frame.groupby(["recipe", "curve"])["n_train"].transform("nunique")
    frame = frame[sizes >= 2].copy()
    frame["share"] = frame["n_train"] / frame.groupby(["recipe", "curve"])["n_train"].transform("max")
    _label_recipes(frame, names)
    return frame.sort_values(["recipe", "curve", "n_train"]).reset_index(drop=True)[COLUMNS]


def _label_recipes(frame: pd.DataFrame, names: dict[str, str]) -> None:
    """Replace each recipe key by its readable name, numbered where two recipes share one."""
    labels, seen = {}, {}
    for key in dict.fromkeys(frame["recipe"]):
        name = names[key]
        seen[name] = seen.get(name, 0) + 1
        labels[key] = name if seen[name] == 1 else f"{name} ({seen[name]})"
    frame["recipe"] = frame["recipe"].map(labels)


def _last_two(curves: pd.DataFrame):
    """Per curve: its label (the recipe's name added where there are several) and its last two rows."""
    for (recipe, curve), part in curves.groupby(["recipe", "curve"], sort=False):
        before, last = part.sort_values("n_train").iloc[-2:].to_dict("records")
        yield (curve if curves["recipe"].nunique() == 1 else f"{recipe} · {curve}"), before, last


def last_doubling_gain(curves: pd.DataFrame) -> dict[str, float]:
    """Per curve: the gain in its metric per doubling of the training images, over its last two points."""
    return {label: float((last["value"] - before["value"]) / np.log2(last["n_train"] / before["n_train"]))
            for label, before, last in _last_two(curves)}


def beyond_noise(curves: pd.DataFrame) -> dict[str, bool]:
    """Per curve: whether its last point lies above the 95% interval of the point before (True where
    that point has no interval)."""
    return {label: bool(np.isnan(before["ci_high"]) or last["value"] > before["ci_high"])
            for label, before, last in _last_two(curves)}


def more_data_sentence(curves: pd.DataFrame) -> str:
    """One sentence per recipe: does its last doubling still add more than :data:`FLAT_GAIN`, beyond the
    interval of the point before?"""
    sentences = []
    for recipe, part in curves.groupby("recipe", sort=False):
        gains, clear = last_doubling_gain(part), beyond_noise(part)
        rising = [c for c, g in gains.items() if g > FLAT_GAIN and clear[c]]
        listed = "; ".join(f"{c} {g:+.3f}" for c, g in gains.items())
        verdict = (f"more images of the same sources would still pay ({', '.join(rising)})" if rising else
                   "more images of the same sources would not pay: the curves are flat or within their noise")
        sentences.append(f"{recipe}: per doubling of the training images, the last doubling added {listed} "
                         f"(flat is under {FLAT_GAIN}, and a rise within the previous point's 95% interval "
                         f"counts as none); {verdict}.")
    return " ".join(sentences)


def plot_learning_curves(curves: pd.DataFrame, *, title: str = "Learning curve"):
    """One line per curve of one recipe: its metric against the training images (log scale), with
    95% intervals."""
    import plotly.graph_objects as go

    fig = go.Figure()
    colours = colours_for(list(dict.fromkeys(curves["curve"])))
    for curve, part in curves.groupby("curve", sort=False):
        part = part.sort_values("n_train")
        have_ci = part[["ci_low", "ci_high"]].notna().all(axis=None)
        error = ({"type": "data", "symmetric": False, "array": (part["ci_high"] - part["value"]).to_numpy(),
                  "arrayminus": (part["value"] - part["ci_low"]).to_numpy()} if have_ci else None)
        fig.add_trace(go.Scatter(
            x=part["n_train"], y=part["value"], mode="lines+markers", name=plain(curve), error_y=error,
            line={"color": colours[curve]}, customdata=np.c_[part["share"], part["run"].map(plain)],
            hovertemplate=(f"{plain(curve)}<br>%{{x:,}} training images (%{{customdata[0]:.0%}})<br>"
                           "%{y:.3f}<br>run %{customdata[1]}<extra></extra>")))
    metric = " / ".join(dict.fromkeys(curves["metric"]))
    fig.update_layout(**base_layout(plain(title), height=380,
                                    xaxis={"title": "training images", "type": "log"},
                                    yaxis={"title": f"test {metric}"}))
    return fig
