"""The models embedlab ships (``embedlab/pretrained/``), scored on the held-out sets of a dataset folder.

``embedlab predict --task real-fake`` and ``--task emotion`` use these runs. Scoring them on the
bundled sample shows what they do on faces they never saw, beside what the demo fits in seconds.
Each image's verdict is the run's own ``predict`` output (``pred``: for the binary run the label at
its decision threshold), so the figures are those a user of ``predict`` gets.

>>> [name for name, _, _ in SHIPPED_SETS["emotion"]]
['fer2013 test', 'synthetic-emotions']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.results import wilson_interval
from embedlab.api import load_run
from embedlab.compute.extraction import table_for_cache
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_CROPS_DIR
from embedlab.core.errors import DatasetError, ModelError
from embedlab.runs import pretrained_run
from embedlab.runs.scoring import match_labels

#: task -> the sets it is scored on: (set name, dataset folder under the data root, split or None for all)
SHIPPED_SETS: dict[str, list[tuple[str, str, str | None]]] = {
    "real-fake": [("real-vs-fake test", "real-vs-fake", "test")],
    "emotion": [("fer2013 test", "fer2013", "test"), ("synthetic-emotions", "synthetic-emotions", None)],
}
#: the file beside a shipped run that holds the command it was trained with
COMMAND_FILE = "COMMAND"


@dataclass
class ShippedScore:
    """A shipped run's verdicts on some held-out sets, and what it was trained with."""

    task: str
    folder: Path
    params: dict[str, Any]
    command: str                                  # the COMMAND file: how the run was trained
    predictions: pd.DataFrame                     # per image: set, label, pred, correct, proba_*, ok, fitted_on
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)   # per set: dataset, n, accuracy, ...
    own_sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # its test and eval sets, from metrics.json

    @property
    def name(self) -> str:
        return str(self.params.get("name") or self.folder.name)

    @property
    def classes(self) -> list[str]:
        return list(self.params.get("classes") or [])

    @property
    def threshold(self) -> dict[str, Any] | None:
        """The binary run's decision threshold (the one ``predict`` applies), None otherwise."""
        saved = self.params.get("threshold")
        return saved if self.params.get("task") == "binary" and isinstance(saved, dict) else None


def score_shipped(data_root: str | os.PathLike, tasks: Sequence[str] = tuple(SHIPPED_SETS), *,
                  cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
                  crops_dir: str | os.PathLike | None = DEFAULT_CROPS_DIR, workers: int | None = None,
                  per_set: int | None = None, on_step: Callable[[str], None] | None = None) -> list[ShippedScore]:
    """Score the shipped run of each of ``tasks`` on its sets of ``data_root`` (:data:`SHIPPED_SETS`).

    ``per_set`` keeps at most that many images of each set (the first of each label in turn), for a
    quick look. Predictions are cached under ``cache_dir`` as ``predict`` caches them, so a second
    call reads neither images nor weights.
    """
    step = on_step or (lambda _msg: None)
    data_root = Path(data_root)
    out = []
    for task in tasks:
        folder = pretrained_run(task)
        run = load_run(folder)
        tables = []
        for set_name, dataset, split in SHIPPED_SETS[task]:
            if not (data_root / dataset).is_dir():
                raise DatasetError(f"{data_root / dataset}: missing; the shipped {task} model is scored on it")
            table = table_for_cache(data_root / dataset, cache_dir)
            if split is not None:
                table = table[(table["split"] == split).to_numpy()]
            table = _first_per_label(table, per_set).assign(set=set_name, dataset=str(data_root / dataset))
            tables.append(table.reset_index(drop=True))
        images = pd.concat(tables, ignore_index=True)
        step(f"predict with the shipped {task} model ({run.name}) on {len(images)} images")
        pred = run.predict(images, cache_dir=cache_dir, crops_dir=crops_dir, workers=workers)
        pred.insert(0, "set", images["set"].to_numpy())
        pred["dataset"] = images["dataset"].to_numpy()
        matched = match_labels(pred["label"].tolist(), run.classes)[0]
        pred["correct"] = pred["ok"].to_numpy(bool) & (matched == pred["pred"].to_numpy(object))
        pred["fitted_on"] = pred["hash"].isin(_fitted_hashes(run)).to_numpy()
        score = ShippedScore(task=task, folder=Path(folder), params=dict(run.params), command=_command(folder),
                             predictions=pred, own_sets=_own_sets(run.metrics))
        score.sets = {name: set_figures(part, run.classes) for name, part in pred.groupby("set", sort=False)}
        out.append(score)
    return out


def _first_per_label(table: pd.DataFrame, cap: int | None) -> pd.DataFrame:
    if cap is None or len(table) <= cap:
        return table
    rank = table.groupby("label", sort=False).cumcount()
    return table.iloc[np.argsort(rank.to_numpy(), kind="stable")[:cap]].sort_index()


def _fitted_hashes(run: Any) -> set[str]:
    """The content hashes of the images the run was trained or validated on (its stored predictions)."""
    try:
        stored = run.predictions()
    except ModelError:  # a run shipped without its predictions: nothing to check against
        return set()
    if "hash" not in stored:
        return set()
    return set(stored.loc[stored["set"].isin(["train", "valid"]).to_numpy(), "hash"].astype(str))


def _command(folder: Path) -> str:
    path = folder / COMMAND_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def _own_sets(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures the run's held-out sets gave when it was trained (thousands of images, for scale)."""
    return {name: {k: s.get(k) for k in ("n", "accuracy", "accuracy_ci", "balanced_accuracy", "dataset")}
            for name, s in (metrics.get("sets") or {}).items() if s.get("role") in ("test", "eval") and s.get("n")}


def set_figures(pred: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy (Wilson 95% interval) and the confusion matrix of ``pred``'s verdicts against its labels.

    Images the run could not score (``ok`` False) count as not scored, not as wrong; ``fitted_on``
    counts the images the run was trained or validated on (column ``fitted_on``, when there is one).

    >>> p = pd.DataFrame({"label": ["a", "a", "b"], "pred": ["a", "b", "b"], "ok": True, "dataset": "d"})
    >>> f = set_figures(p, ["a", "b"])
    >>> f["n"], round(f["accuracy"], 3), f["confusion_matrix"]
    (3, 0.667, [[1, 1], [0, 1]])
    """
    ok = pred["ok"].to_numpy(bool)
    classes = list(classes)
    truth = match_labels(pred["label"].tolist(), classes)[0]
    scored = ok & np.array([t is not None for t in truth], dtype=bool)
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth[scored], pred["pred"].to_numpy(object)[scored]):
        matrix[index[t], index[p]] += 1
    n, correct = int(scored.sum()), int(np.trace(matrix))
    fitted_on = int(pred["fitted_on"].sum()) if "fitted_on" in pred else None
    return {"dataset": str(pred["dataset"].iloc[0]) if len(pred) else "", "n": n, "not_scored": int((~scored).sum()),
            "fitted_on": fitted_on,
            "correct": correct, "accuracy": correct / n if n else None,
            "accuracy_ci": list(wilson_interval(correct, n)) if n else None,
            "labels": classes, "confusion_matrix": matrix.tolist()}


def shipped_per_class(score: ShippedScore) -> pd.DataFrame:
    """Accuracy per set and true label (the share of that label's images given it), with Wilson intervals.

    Columns ``set``, ``label``, ``n``, ``correct``, ``accuracy``, ``ci_low``, ``ci_high``.
    """
    rows = []
    for set_name, s in score.sets.items():
        for label, row in zip(s["labels"], s["confusion_matrix"]):
            n = int(sum(row))
            if not n:
                continue
            correct = int(row[s["labels"].index(label)])
            low, high = wilson_interval(correct, n)
            rows.append({"set": set_name, "label": label, "n": n, "correct": correct, "accuracy": correct / n,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["set", "label", "n", "correct", "accuracy", "ci_low", "ci_high"])
