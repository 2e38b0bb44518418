"""Run folders: a fitted model with its parameters, figures and predictions.

This module is the only one that reads and writes run folders, for
classifier and network runs alike. ``results/runs/<name>/`` holds:

- ``params.json``: what was fitted, on which data, how (``kind`` is
  ``classifier`` or ``network``);
- ``metrics.json``: the figures per scored set (see :mod:`embedlab.runs.scoring`);
- ``predictions.parquet``: one row per scored image;
- the model files (:mod:`embedlab.runs.model_files` for classifiers;
  ``model.pt`` and ``history.csv`` for networks).

>>> list_runs("no/such/folder").empty
True
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from embedlab.core.defaults import DEFAULT_RUNS_DIR
from embedlab.core.errors import ModelError, OptionError, UnknownNameError
from embedlab.core.io import atomic_write, to_json, write_json
from embedlab.runs.provenance import PATH_BASES, path_base
from embedlab.runs.scoring import labels_at, match_labels
from embedlab.runs.schema import KINDS, check_metrics, check_params, read_checked

PARAMS_FILE = "params.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"
#: a network run's loss and accuracy per epoch
HISTORY_FILE = "history.csv"
#: one row per image a run could not use (unreadable file, no face found...), with the reason
FAILURES_FILE = "failures.csv"
FAILURE_COLUMNS = ["set", "image_id", "path", "reason", "error"]
#: the columns of an image table that a prediction table keeps
ID_COLUMNS = ("image_id", "path", "hash", "label", "split")


# -- reading -------------------------------------------------------------
def read_json(path: Path, check: Callable[[dict, str], None] | None = None) -> dict[str, Any]:
    """A run folder's JSON file, bounded and ``check``-ed (:mod:`embedlab.runs.schema`), or a ModelError naming it."""
    return read_checked(path, check)


def read_optional_table(path: Path) -> pd.DataFrame | None:
    """A run's ``predictions.parquet`` or ``history.csv``: None when absent, a ModelError when broken."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pyarrow and pandas raise several kinds for a broken file
        raise ModelError(f"{path}: unreadable ({exc})") from None


def stored_verdicts(predictions: pd.DataFrame | None, params: dict[str, Any]) -> pd.DataFrame | None:
    """A run's stored prediction rows with ``pred`` (and ``correct``) at the run's decision threshold.

    Runs saved before ``pred`` was the thresholded verdict stored the most
    probable class; reading them through here gives every reader (``predict``,
    ``runs``, the report) the one verdict the run's threshold gives.
    """
    saved = params.get("threshold")
    positive, classes = params.get("positive_class"), list(params.get("classes") or [])
    if (predictions is None or predictions.empty or params.get("task") != "binary" or positive not in classes
            or not isinstance(saved, dict) or saved.get("value") is None
            or not {f"proba_{c}" for c in classes} <= set(predictions.columns)):
        return predictions
    proba = predictions[[f"proba_{c}" for c in classes]].to_numpy(float)
    out = predictions.copy()
    out["pred"] = labels_at(proba, classes, positive, float(saved["value"]))
    if "label" in out:
        out["correct"] = match_labels(out["label"].tolist(), classes)[0] == out["pred"].to_numpy(object)
    return out


def located_images(predictions: pd.DataFrame | None, params: dict[str, Any],
                   folder: str | os.PathLike) -> pd.DataFrame | None:
    """Stored prediction rows with each image's ``path`` where it is now: a shipped run names its
    images relative to the repository (``image_paths_relative_to``), not by its training machine's paths."""
    base = params.get("image_paths_relative_to")
    if predictions is None or base not in PATH_BASES or "path" not in predictions:
        return predictions
    start = path_base(base, folder)
    out = predictions.copy()
    out["path"] = [p if not isinstance(p, str) or os.path.isabs(p) else os.path.normpath(start / p)
                   for p in predictions["path"]]
    return out


def resolve_run(run: str | os.PathLike, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path:
    """A run folder from a path or a run name under ``runs_dir``."""
    path = Path(run)
    if (path / PARAMS_FILE).is_file():
        return path
    named = Path(runs_dir) / str(run)
    if (named / PARAMS_FILE).is_file():
        return named
    raise OptionError(f"no run {str(run)!r}: neither a run folder nor a run name in {runs_dir} "
                     "(see `embedlab runs`)")


def read_run(path: str | os.PathLike, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR,
             kind: str | None = None) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """``(folder, params, metrics)`` of a run folder (or a run name under ``runs_dir``).

    ``kind`` (``classifier`` or ``network``), when given, must be the run's.
    """
    folder = resolve_run(path, runs_dir)
    params = read_json(folder / PARAMS_FILE, check_params)
    if kind is not None and params.get("kind") != kind:
        raise ModelError(f"{folder / PARAMS_FILE}: kind {params.get('kind')!r} is not a {kind} run")
    return folder, params, read_json(folder / METRICS_FILE, check_metrics)


def run_params(path: Any) -> dict[str, Any] | None:
    """A run folder's ``params.json``, or None when ``path`` is not a readable run folder."""
    try:
        return read_json(Path(str(path)) / PARAMS_FILE, check_params)
    except ModelError:
        return None


def run_kind(path: Any) -> str | None:
    """``classifier`` or ``network`` when ``path`` is a run folder, else None."""
    return (run_params(path) or {}).get("kind")


# -- writing -------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def default_run_name(parts: Sequence[str], runs_dir: str | os.PathLike) -> str:
    """``part-part-...-YYYYmmdd-HHMMSS``, with a counter when that folder exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = "-".join(_slug(s) for s in (*parts, stamp))
    name, n = base, 2
    while (Path(runs_dir) / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def check_run_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+\-]*", name):
        raise OptionError(f"run name {name!r}: use letters, digits, '.', '_', '+' and '-' only")
    return name


def write_params(folder: Path, params: dict[str, Any]) -> None:
    write_json(Path(folder) / PARAMS_FILE, params)


def failure_table(frame: pd.DataFrame, ok: np.ndarray, reasons: Sequence[Any], errors: Sequence[Any],
                  set_name: str) -> pd.DataFrame:
    """The :data:`FAILURE_COLUMNS` rows of the images of ``frame`` that are not ``ok``."""
    bad = ~np.asarray(ok, bool)
    return pd.DataFrame({"set": set_name, "image_id": frame["image_id"].astype(str).to_numpy()[bad],
                         "path": frame["path"].astype(str).to_numpy()[bad],
                         "reason": [str(r) if r is not None and r == r else "missing features"
                                    for r in np.asarray(reasons, object)[bad]],
                         "error": [None if e is None or e != e else str(e) for e in np.asarray(errors, object)[bad]]},
                        columns=FAILURE_COLUMNS)


def write_failures(folder: Path, failures: pd.DataFrame | None) -> None:
    table = failures if failures is not None else pd.DataFrame(columns=FAILURE_COLUMNS)
    atomic_write(Path(folder) / FAILURES_FILE, lambda tmp: table.to_csv(tmp, index=False))


def write_results(folder: Path, metrics: dict[str, Any], predictions: pd.DataFrame,
                  failures: pd.DataFrame | None = None) -> None:
    """``failures.csv``, ``predictions.parquet`` then ``metrics.json``: a run with metrics is a finished run."""
    write_failures(folder, failures)
    atomic_write(Path(folder) / PREDICTIONS_FILE, lambda tmp: predictions.to_parquet(tmp, index=False))
    write_json(Path(folder) / METRICS_FILE, metrics)


def write_run(runs_dir: str | os.PathLike, name: str, params: dict[str, Any], metrics: dict[str, Any],
              predictions: pd.DataFrame, save_model: Callable[[Path], list[str]],
              failures: pd.DataFrame | None = None) -> Path:
    """Write a complete run folder, all at once: a half-written run never appears.

    ``save_model(folder)`` writes the model files and returns their names
    (``params["model_files"]``).
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / name
    if final.exists():
        raise ModelError(f"run {final} already exists; choose another --name")
    tmp = runs_dir / f".tmp-{uuid.uuid4().hex[:8]}-{name}"
    tmp.mkdir()
    try:
        params = dict(params, model_files=save_model(tmp))
        (tmp / PARAMS_FILE).write_text(to_json(params))
        (tmp / METRICS_FILE).write_text(to_json(metrics))
        predictions.to_parquet(tmp / PREDICTIONS_FILE, index=False)
        write_failures(tmp, failures)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# -- the common part of an opened run --------------------------------------
@dataclass
class Run:
    """An opened run folder: ``path``, ``params`` and ``metrics``; see its kinds' classes.

    :class:`embedlab.classifiers.run.ClassifierRun` and
    :class:`embedlab.nets.NetworkRun` add the model and ``predict``.
    """

    path: Path
    params: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def name(self) -> str:
        return self.params.get("name", self.path.name)

    @property
    def classes(self) -> list[str]:
        return list(self.params["classes"])

    def decision_threshold(self, threshold: float | None = None) -> dict[str, Any] | None:
        """A binary run's decision threshold on ``P(positive class)``, None for other runs.

        ``threshold`` when given; else the one ``fit`` chose on validation for
        a stated false-positive rate on reals; else 0.5 (runs saved before
        thresholds were), where the label is the most probable class.
        ``source`` says which of the three it is.
        """
        positive = self.params.get("positive_class")
        if self.params.get("task") != "binary" or positive not in self.classes:
            return None
        if threshold is not None:
            if not 0 <= threshold <= 1:
                raise OptionError(f"threshold {threshold}: a probability between 0 and 1")
            return {"value": float(threshold), "positive_class": positive, "source": "given"}
        saved = self.params.get("threshold")
        if isinstance(saved, dict) and saved.get("value") is not None:
            return {**saved, "positive_class": positive, "source": "run"}
        return {"value": 0.5, "positive_class": positive, "source": "default"}

    def predictions(self) -> pd.DataFrame:
        """The per-image predictions stored when the run was fitted."""
        path = self.path / PREDICTIONS_FILE
        if not path.is_file():
            raise ModelError(f"{path}: missing")
        return located_images(stored_verdicts(pd.read_parquet(path), self.params), self.params, self.path)

    def failures(self) -> pd.DataFrame:
        """The images the fit could not use (``failures.csv``: set, image_id, path, reason, error)."""
        table = read_optional_table(self.path / FAILURES_FILE)
        return table if table is not None else pd.DataFrame(columns=FAILURE_COLUMNS)

    def prediction_table(self, table: pd.DataFrame, proba: np.ndarray, ok: np.ndarray,
                         reason: Sequence[str | None], threshold: float | None = None) -> pd.DataFrame:
        """What ``predict`` returns: the image columns, ``pred``, ``proba_<class>``, ``ok``, ``reason``.

        ``proba`` has a row per image of ``table`` (NaN where ``ok`` is False).
        ``pred`` is the run's one verdict, the label ``predict`` prints: for a
        binary run it is the label at the decision threshold (see
        :meth:`decision_threshold`; the positive class at or above it, the
        other below), given in the ``threshold`` column; for other runs it is
        the most probable class.
        """
        classes = self.classes
        out = table[[c for c in ID_COLUMNS if c in table]].copy()
        cut = self.decision_threshold(threshold)
        labels = labels_at(proba, classes, cut["positive_class"] if cut else None, cut["value"] if cut else None)
        out["pred"] = [label if good else None for label, good in zip(labels, ok)]
        for i, c in enumerate(classes):
            out[f"proba_{c}"] = proba[:, i]
        if cut is not None:
            out["threshold"] = cut["value"]
        out["ok"] = ok
        out["reason"] = list(reason)
        return out


def key_set(metrics: dict[str, Any]) -> str | None:
    """The set whose figures sum a run up: ``test`` when there is one."""
    sets = metrics.get("sets", {})
    if "test" in sets:
        return "test"
    return next(iter(sets), None)


def list_runs(root: str | os.PathLike = DEFAULT_RUNS_DIR) -> pd.DataFrame:
    """One row per run folder under ``root`` with its key figures (newest first).

    ``folder`` is the run folder's name (what ``runs show`` and ``predict --run`` take), ``name`` the name
    written inside its ``params.json``. Run folders that cannot be read are not rows:
    ``attrs["unreadable"]`` lists them, ``{"folder": ..., "error": ...}`` each, the error naming the file.
    """
    cols = ["folder", "name", "kind", "task", "model", "features", "data", "created", "set", "n", "accuracy",
            "accuracy_ci", "balanced_accuracy", "macro_f1", "roc_auc", "eval_sets", "path"]
    root = Path(root)
    rows, unreadable = [], []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if (p / PARAMS_FILE).is_file()):
            try:
                params = read_json(folder / PARAMS_FILE, check_params)
                metrics = read_json(folder / METRICS_FILE, check_metrics)
            except ModelError as exc:
                unreadable.append({"folder": folder.name, "error": str(exc)})
                continue
            ks = key_set(metrics)
            m = metrics.get("sets", {}).get(ks, {}) if ks else {}
            rows.append({
                "folder": folder.name, "name": params.get("name", folder.name), "kind": params.get("kind"), "task": params.get("task"),
                "model": params.get("model"), "features": "+".join(params.get("features", [])),
                "data": params.get("data", {}).get("name"), "created": params.get("created"), "set": ks,
                "n": m.get("n"), "accuracy": m.get("accuracy"), "accuracy_ci": m.get("accuracy_ci"),
                "balanced_accuracy": m.get("balanced_accuracy"), "macro_f1": m.get("macro_f1"),
                "roc_auc": m.get("roc_auc"),
                "eval_sets": [s for s, v in metrics.get("sets", {}).items() if v.get("role") == "eval"],
                "path": str(folder),
            })
    out = pd.DataFrame(rows, columns=cols)
    out = out.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs["unreadable"] = unreadable
    return out


#: ``embedlab predict --task NAME`` -> the reference run shipped in ``embedlab/pretrained/``:
#: ``emotion`` learned from FER-2013 only, ``emotion-adapted`` from FER-2013 and generated portraits.
PRETRAINED_TASKS = {"emotion": "emotion", "emotion-adapted": "emotion-adapted", "real-fake": "real-fake"}


def pretrained_run(task: str) -> Path:
    """The folder of the reference run shipped for ``task`` (a name of :data:`PRETRAINED_TASKS`)."""
    if task not in PRETRAINED_TASKS:
        raise UnknownNameError("task", task, sorted(PRETRAINED_TASKS))
    folder = Path(__file__).resolve().parents[1] / "pretrained" / PRETRAINED_TASKS[task]
    if not (folder / PARAMS_FILE).is_file():
        raise ModelError(f"no reference run for task {task!r}: {folder} is missing or holds no params.json; "
                         "pass --run with a run of your own")
    return folder
