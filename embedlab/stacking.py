"""Stacked detectors: other runs' scores joined by a logistic regression fitted on validation rows only.

Evidence of generation comes at several levels (the pixels' up-sampling traces, the face as a
face network sees it, the face encoding), and each detector misses what another catches. A
stacked run holds copies of its component runs (``components/NAME``) and a logistic regression
on their log-odds of the positive class, with a flag per component for the images it gave no
score (a face model finds no face in some). The regression and the decision threshold are
fitted on the components' stored predictions of ``valid`` only, so nothing they were trained on
or tested on chooses them. ``predict`` runs every component, then the regression.

>>> from embedlab.stacking import log_odds_features
>>> import numpy as np
>>> log_odds_features([np.array([0.5, np.nan])]).round(3).tolist()
[[0.0, 0.0], [0.0, 1.0]]
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from embedlab.classifiers.run import load_classifier_run
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from embedlab.core.errors import ModelError
from embedlab.datasets import images_of
from embedlab.nets import load_network_run
from embedlab.runs.folder import (ID_COLUMNS, PARAMS_FILE, Run, check_run_name, read_run, write_params,
                                  write_results)
from embedlab.runs.provenance import command_line, library_versions, utc_now
from embedlab.runs.scoring import TARGET_FPR, ScoredSet, Scoring, score_set, threshold_from

#: where a stacked run keeps its components, each a run folder of its own
COMPONENTS = "components"
#: probabilities are clipped this far from 0 and 1 before their log-odds are taken
EPS = 1e-6


def log_odds_features(scores: Sequence[np.ndarray]) -> np.ndarray:
    """Per component, the log-odds of its score (0 where it gave none) and a flag for "gave none"."""
    cols = []
    for s in scores:
        s = np.asarray(s, dtype=float)
        known = ~np.isnan(s)
        q = np.clip(np.where(known, s, 0.5), EPS, 1 - EPS)
        cols += [np.log(q / (1 - q)), (~known).astype(float)]
    return np.column_stack(cols)


def open_component(folder: str | os.PathLike) -> Run:
    """A component run of either kind (a classifier or a network)."""
    folder, params, _ = read_run(folder)
    return load_network_run(folder) if params["kind"] == "network" else load_classifier_run(folder)


@dataclass
class StackedRun(Run):
    """An opened stacked run folder: its components and the regression that joins them."""

    path: Path
    params: dict[str, Any]
    metrics: dict[str, Any]

    def __post_init__(self):
        self._components: dict[str, Run] | None = None

    @property
    def components(self) -> dict[str, Run]:
        if self._components is None:
            self._components = {c["name"]: open_component(self.path / COMPONENTS / c["name"])
                                for c in self.params["components"]}
        return self._components

    def combine(self, scores: Sequence[np.ndarray]) -> np.ndarray:
        """P(positive) from the components' P(positive), in the components' order."""
        model = self.params["combiner"]
        z = log_odds_features(scores) @ np.asarray(model["coef"], float) + float(model["intercept"])
        return 1 / (1 + np.exp(-z))

    def predict(self, data, *, cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, workers: int | None = None,
                on_progress: Callable | None = None, threshold: float | None = None, **options: Any) -> pd.DataFrame:
        """``pred`` and ``proba_<class>`` per image of ``data``: every component's score, then the regression.

        ``options`` (``crops_dir``, ``features``...) go to the components that take them. What a
        component says of each image beside its scores (a network's ``face_found``, ``crop_path``...)
        is kept, the first component's where two say the same.
        """
        table = images_of(data)
        positive = self.params["positive_class"]
        scores, reasons, said = [], [], {}
        for name, run in self.components.items():
            given = {k: v for k, v in options.items()
                     if k in ("crops_dir", "scheduler") and (run.params["kind"] == "network" or k == "scheduler")}
            out = run.predict(table, cache_dir=cache_dir, workers=workers, on_progress=on_progress, **given)
            scores.append(out[f"proba_{positive}"].to_numpy(float))
            reasons.append(out["reason"].tolist())
            for column in out.columns:
                if column not in (*ID_COLUMNS, "pred", "threshold", "ok", "reason") and \
                        not column.startswith("proba_") and column not in said:
                    said[column] = out[column].to_numpy()
        ok = ~np.all([np.isnan(s) for s in scores], axis=0)
        p = self.combine(scores)
        classes = self.classes
        proba = np.full((len(table), 2), np.nan)
        pos = classes.index(positive)
        proba[ok, pos], proba[ok, 1 - pos] = p[ok], 1 - p[ok]
        why = [None if good else next((r[i] for r in reasons if r[i]), "no score") for i, good in enumerate(ok)]
        out = self.prediction_table(table, proba, ok, why, threshold=threshold)
        for column, values in said.items():
            out[column] = values
        return out


def load_stacked_run(path: str | os.PathLike) -> StackedRun:
    folder, params, metrics = read_run(path, kind="stacked")
    names = [c.get("name") for c in params.get("components") or []]
    if not names or not all(isinstance(n, str) and (folder / COMPONENTS / n / PARAMS_FILE).is_file() for n in names):
        raise ModelError(f"{folder / PARAMS_FILE}: 'components' must name run folders under {folder / COMPONENTS}")
    return StackedRun(folder, params, metrics)


def _joined(runs: Mapping[str, Run], positive: str) -> pd.DataFrame:
    """Every component's stored P(positive) per (set, path), one column per component."""
    stored = {name: run.predictions().set_index(["set", "path"]) for name, run in runs.items()}
    scores = pd.concat([pred[[f"proba_{positive}"]].rename(columns={f"proba_{positive}": name})
                        for name, pred in stored.items()], axis=1)
    rows = pd.concat(stored.values())
    rows = rows[~rows.index.duplicated()][[c for c in ("image_id", "hash", "label", "source") if c in rows]]
    return scores.join(rows)


def fit_stack(components: Mapping[str, str | os.PathLike], *, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR,
              name: str | None = None, target_fpr: float = TARGET_FPR, C: float = 1.0,
              command: str | None = None) -> StackedRun:
    """Stack binary runs (name -> run folder): a logistic regression on their validation predictions.

    The components are copied into the new run, so it can be moved or shipped as one folder.
    """
    from sklearn.linear_model import LogisticRegression

    if len(components) < 2:
        raise ModelError("a stack needs at least two component runs")
    runs = {n: open_component(f) for n, f in components.items()}
    first = next(iter(runs.values()))
    for n, r in runs.items():
        if r.params.get("task") != "binary" or r.classes != first.classes:
            raise ModelError(f"component {n} ({r.path}): a stack joins binary runs of the same classes "
                             f"({first.classes}), got {r.params.get('task')} {r.classes}")
    positive = first.params["positive_class"]
    joined = _joined(runs, positive)
    sets = joined.index.get_level_values("set")
    valid = (sets == "valid") & joined["label"].notna()
    if not valid.any():
        raise ModelError("the components have no stored valid predictions to fit the stack on")
    X = log_odds_features([joined[n].to_numpy(float) for n in runs])
    y = (joined["label"].astype(str) == positive).to_numpy()
    model = LogisticRegression(C=C, max_iter=1000).fit(X[valid], y[valid])
    p = model.predict_proba(X)[:, 1]
    classes, pos = first.classes, first.classes.index(positive)
    proba = np.zeros((len(p), 2))
    proba[:, pos], proba[:, 1 - pos] = p, 1 - p
    threshold = threshold_from([("valid", joined.loc[valid, "label"].tolist(), proba[valid])], classes, positive,
                               target_fpr)
    folder = Path(runs_dir) / check_run_name(name or "stack-" + "-".join(runs))
    if folder.exists():
        raise ModelError(f"run {folder} already exists; choose another name")
    for n, r in runs.items():
        shutil.copytree(r.path, folder / COMPONENTS / n, ignore=shutil.ignore_patterns("last.pt", "crops"))
    metrics, frames = {}, []
    rows = joined.reset_index()
    scoring = Scoring(classes, positive, seed=0, threshold=threshold["value"] if threshold else None)
    data_name = (first.params.get("data") or {}).get("name")
    for set_name in dict.fromkeys(sets):
        here = (sets == set_name)
        role = set_name if set_name in ("train", "valid", "test") else "eval"
        dataset = data_name if role != "eval" and data_name else set_name  # an eval set is named by its dataset
        metrics[set_name], out = score_set(proba[here], rows[here].reset_index(drop=True), scoring,
                                           ScoredSet(set_name, role, dataset=dataset))
        frames.append(out)
    params = {
        "name": folder.name, "kind": "stacked", "task": "binary", "classes": classes, "positive_class": positive,
        "model": "stack", "components": [{"name": n, "kind": r.params["kind"], "model": r.params.get("model"),
                                          "features": r.params.get("features", [])} for n, r in runs.items()],
        "combiner": {"inputs": [f"{n}{k}" for n in runs for k in ("", ".missing")],
                     "coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]), "C": C,
                     "fitted_on": "valid", "n": int(valid.sum())},
        "features": [], "model_params": {"C": C}, "data": first.params.get("data"),
        "splits": first.params.get("splits"), "sources": first.params.get("sources"),
        "leave_out": first.params.get("leave_out"), "threshold": threshold, "versions": library_versions(),
        "created": utc_now(), "command": command or command_line(), "seed": 0, "model_files": [],
    }
    write_results(folder, {"sets": metrics, "threshold": threshold}, pd.concat(frames, ignore_index=True))
    write_params(folder, params)
    return load_stacked_run(folder)
