"""Run folders: a fitted model with its parameters, figures and predictions.

``results/runs/<name>/`` holds ``params.json``, ``metrics.json``,
``predictions.parquet`` and the model files. Models are never pickled:
scikit-learn pipelines go through ``skops`` and are opened only when every
type they contain is on :data:`TRUSTED_TYPES`, XGBoost models are stored in
XGBoost's own UBJ format. A run folder received from someone else therefore
cannot run code when it is opened; a file that is not what it claims to be
is refused before anything in it is read as Python objects.

>>> import embedlab.runs as runs
>>> runs.list_runs("no/such/folder").empty
True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.cache import DEFAULT_CACHE_DIR
from embedlab.errors import ModelError

DEFAULT_RUNS_DIR = Path("results") / "runs"
SKOPS_FILE = "model.skops"
XGBOOST_FILE = "model.ubj"
#: The only model file names a classifier run may list; anything else is refused.
MODEL_FILES = (SKOPS_FILE, XGBOOST_FILE)

#: Types, beyond those skops trusts by default (numpy arrays, scikit-learn
#: estimators), that the registered classifiers contain. A model file holding
#: any other type is refused without being loaded.
TRUSTED_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)

#: Packages whose versions a run records.
VERSIONED = ("embedlab", "numpy", "pandas", "scikit-learn", "scipy", "xgboost", "skops", "dlib-bin",
             "face_recognition", "face_recognition_models", "torch")


# -- model files ---------------------------------------------------------
def _is_xgboost(step: Any) -> bool:
    return type(step).__module__.startswith("xgboost")


def save_model(pipeline: Any, folder: str | os.PathLike) -> list[str]:
    """Write a fitted pipeline into ``folder``; returns the file names written.

    The XGBoost step, if any, goes to ``model.ubj`` in XGBoost's format and
    the rest of the pipeline (with a placeholder there) to ``model.skops``.
    """
    import skops.io as sio
    from sklearn.pipeline import Pipeline

    folder = Path(folder)
    files = []
    steps = []
    for name, step in pipeline.steps:
        if _is_xgboost(step):
            if XGBOOST_FILE in files:
                raise ModelError("a pipeline can hold one XGBoost step only")
            step.save_model(folder / XGBOOST_FILE)
            files.append(XGBOOST_FILE)
            step = "passthrough"
        steps.append((name, step))
    sio.dump(Pipeline(steps), folder / SKOPS_FILE)
    return [SKOPS_FILE, *files]


def check_model_file(path: Path) -> list[str]:
    """The non-default types a skops file holds; raise if it is not a clean skops archive.

    Nothing in the file is turned into Python objects here: skops reads the
    archive's JSON schema only.
    """
    import skops.io as sio

    if not path.is_file():
        raise ModelError(f"{path}: model file missing")
    if not zipfile.is_zipfile(path):
        head = path.read_bytes()[:2]
        what = "a Python pickle" if head[:1] == b"\x80" else "not a skops archive"
        raise ModelError(f"{path}: refused, the file is {what}; run folders hold skops or XGBoost "
                         "files only, and pickles are never opened")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip that is not a skops archive
        raise ModelError(f"{path}: refused, not a readable skops archive ({exc})") from None
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise ModelError(f"{path}: refused, it holds types outside the trusted list: {', '.join(unexpected)}")
    return list(untrusted)


def load_model(folder: str | os.PathLike, files: Sequence[str] = (SKOPS_FILE,)) -> Any:
    """Open the model files of a run folder, refusing anything that is not skops or XGBoost."""
    import skops.io as sio

    folder = Path(folder)
    bad = [f for f in files if f not in MODEL_FILES]
    if bad or SKOPS_FILE not in files:
        raise ModelError(f"{folder}: refused model file(s) {', '.join(bad) or '(no model.skops)'}; "
                         f"a classifier run holds only {', '.join(MODEL_FILES)}")
    path = folder / SKOPS_FILE
    trusted = check_model_file(path)
    try:
        pipeline = sio.load(path, trusted=trusted)
    except Exception as exc:
        raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})") from None
    if XGBOOST_FILE in files:
        from xgboost import XGBClassifier

        booster = XGBClassifier()
        try:
            booster.load_model(folder / XGBOOST_FILE)
        except Exception as exc:
            raise ModelError(f"{folder / XGBOOST_FILE}: not a readable XGBoost model ({exc})") from None
        slots = [i for i, (_, s) in enumerate(pipeline.steps) if isinstance(s, str) and s == "passthrough"]
        if not slots:
            raise ModelError(f"{path}: no place for the XGBoost model in the pipeline")
        name = pipeline.steps[slots[-1]][0]
        pipeline.steps[slots[-1]] = (name, booster)
    return pipeline


# -- provenance ----------------------------------------------------------
def library_versions(packages: Iterable[str] = VERSIONED) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def data_fingerprint(table: pd.DataFrame) -> str:
    """A digest of which images, with which labels and splits, a model saw."""
    cols = [table[c].map(str).tolist() for c in ("image_id", "hash", "label", "split")]
    lines = sorted("\t".join(parts) for parts in zip(*cols))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


# -- images to predict ---------------------------------------------------
def image_table(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> pd.DataFrame:
    """A table of images (``image_id``, ``path``, ``label``, ``split``, ``hash``) from files and folders.

    Folders are searched recursively for images; ``label`` is unknown (None).
    """
    from embedlab.errors import DatasetError
    from embedlab.images import IMAGE_SUFFIXES, image_hash

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise DatasetError(f"{p}: no images in this folder")
            rows += [{"image_id": f"{p.name}/{f.relative_to(p).as_posix()}", "path": str(f)} for f in found]
        elif p.is_file():
            rows.append({"image_id": p.name, "path": str(p)})
        else:
            raise DatasetError(f"{p}: no such file or folder")
    table = pd.DataFrame(rows, columns=["image_id", "path"])
    table["label"] = None
    table["split"] = None
    table["hash"] = [image_hash(u) for u in table["path"]]
    return table


# -- runs ----------------------------------------------------------------
@dataclass
class Run:
    """A fitted classifier run: its folder, ``params``, ``metrics`` and model.

    ``predict`` computes the features the run was fitted on (from the cache
    when present) and returns the predicted label and probabilities per image.
    """

    path: Path
    params: dict[str, Any]
    metrics: dict[str, Any]
    model: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.params.get("name", self.path.name)

    @property
    def classes(self) -> list[str]:
        return list(self.params["classes"])

    def predictions(self) -> pd.DataFrame:
        """The per-image predictions stored when the run was fitted."""
        path = self.path / "predictions.parquet"
        if not path.is_file():
            raise ModelError(f"{path}: missing")
        return pd.read_parquet(path)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise ModelError(f"run {self.name}: the model is not loaded")
        return np.asarray(self.model.predict_proba(X), dtype=float)

    def predict(self, data: pd.DataFrame | str | os.PathLike | Iterable[str | os.PathLike], *,
                features: str | Sequence[str] | None = None,
                cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, workers: int | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Predicted label and ``proba_<class>`` per image of ``data``.

        ``data`` is a table from :func:`embedlab.datasets.load` or image files
        and folders. ``features`` replaces the run's feature specs (e.g. the
        same descriptor with a face detector for medium shots); it must give
        the same feature names and sizes. Images whose features cannot be
        computed get no prediction and their ``reason``.
        """
        from embedlab.extraction import encode, feature_matrix, resolve_features

        table = data if isinstance(data, pd.DataFrame) else image_table(data)
        extractors = resolve_features(list(features) if isinstance(features, (list, tuple))
                                      else features or list(self.params["features"]))
        names = [e.name for e in extractors]
        self._check_features(extractors, replaced=features is not None)
        df = encode(table, extractors, cache_dir=cache_dir, workers=workers, on_progress=on_progress)
        X, ok = feature_matrix(df, names)
        classes = self.classes
        proba = np.full((len(df), len(classes)), np.nan)
        if ok.any():
            proba[ok] = self.predict_proba(X[ok])
        out = df[[c for c in ("image_id", "path", "hash", "label", "split") if c in df]].copy()
        pred = np.array([classes[i] for i in np.nan_to_num(proba, nan=-1).argmax(axis=1)], dtype=object)
        out["pred"] = np.where(ok, pred, None)
        for i, c in enumerate(classes):
            out[f"proba_{c}"] = proba[:, i]
        out["ok"] = ok
        reason = pd.Series(None, index=df.index, dtype=object)
        for n in reversed(names):  # the first failing feature's reason wins
            bad = ~df[f"{n}.ok"].to_numpy(bool)
            reason[bad] = df.loc[bad, f"{n}.reason"].astype(object).where(df.loc[bad, f"{n}.reason"].notna(),
                                                                          "missing features")
        out["reason"] = reason.to_numpy()
        return out

    def _check_features(self, extractors: list, replaced: bool) -> None:
        stored = self.params.get("feature_keys", {})
        names = [e.name for e in extractors]
        if names != list(stored):
            raise ModelError(f"run {self.name} was fitted on features {', '.join(stored)}; "
                             f"got {', '.join(names)}")
        dims = self.params.get("feature_dims", {})
        for e in extractors:
            if e.name in dims and e.dim != dims[e.name]:
                raise ModelError(f"feature {e.name!r} has {e.dim} values here but {dims[e.name]} in run {self.name}")
            if not replaced and e.key() != stored[e.name]:
                raise ModelError(f"feature {e.name!r} no longer gives the values run {self.name} was fitted on "
                                 f"(cache key {e.key()} != {stored[e.name]}: extractor code or model files changed)")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: missing; is {path.parent} a run folder?") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from None


def resolve_run(run: str | os.PathLike, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR) -> Path:
    """A run folder from a path or a run name under ``runs_dir``."""
    path = Path(run)
    if (path / "params.json").is_file():
        return path
    named = Path(runs_dir) / str(run)
    if (named / "params.json").is_file():
        return named
    raise ModelError(f"no run {str(run)!r}: neither a run folder nor a run name in {runs_dir} "
                     "(see `embedlab runs`)")


def load_run(path: str | os.PathLike, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, *,
             load_model_files: bool = True) -> Run:
    """Open a run folder (or a run name under ``runs_dir``), model included.

    Network runs are opened by :func:`embedlab.nets.load_network_run`.
    """
    folder = resolve_run(path, runs_dir)
    params = _read_json(folder / "params.json")
    if params.get("kind") == "network":
        try:
            from embedlab.nets import load_network_run
        except ImportError as exc:
            raise ModelError(f"{folder} is a network run, but embedlab.nets cannot be imported ({exc})") from None
        return load_network_run(folder)
    if params.get("kind") != "classifier":
        raise ModelError(f"{folder / 'params.json'}: unknown run kind {params.get('kind')!r}")
    metrics = _read_json(folder / "metrics.json")
    model = load_model(folder, params.get("model_files", [])) if load_model_files else None
    return Run(folder, params, metrics, model)


def write_run(runs_dir: str | os.PathLike, name: str, params: dict[str, Any], metrics: dict[str, Any],
              predictions: pd.DataFrame, model: Any) -> Path:
    """Write a complete run folder, all at once: a half-written run never appears."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / name
    if final.exists():
        raise ModelError(f"run {final} already exists; choose another --name")
    tmp = runs_dir / f".tmp-{uuid.uuid4().hex[:8]}-{name}"
    tmp.mkdir()
    try:
        params = dict(params, model_files=save_model(model, tmp))
        (tmp / "params.json").write_text(json.dumps(params, indent=2, default=_json_default))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
        predictions.to_parquet(tmp / "predictions.parquet", index=False)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    return str(value)


def key_set(metrics: dict[str, Any]) -> str | None:
    """The set whose figures sum a run up: ``test`` when there is one."""
    sets = metrics.get("sets", {})
    if "test" in sets:
        return "test"
    return next(iter(sets), None)


def list_runs(root: str | os.PathLike = DEFAULT_RUNS_DIR) -> pd.DataFrame:
    """One row per run folder under ``root`` with its key figures (newest first)."""
    cols = ["name", "kind", "task", "model", "features", "data", "created", "set", "n", "accuracy",
            "accuracy_ci", "balanced_accuracy", "macro_f1", "roc_auc", "eval_sets", "path"]
    root = Path(root)
    rows = []
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if (p / "params.json").is_file()):
            try:
                params = _read_json(folder / "params.json")
                metrics = _read_json(folder / "metrics.json")
            except ModelError:
                continue
            ks = key_set(metrics)
            m = metrics.get("sets", {}).get(ks, {}) if ks else {}
            rows.append({
                "name": params.get("name", folder.name), "kind": params.get("kind"), "task": params.get("task"),
                "model": params.get("model"), "features": "+".join(params.get("features", [])),
                "data": params.get("data", {}).get("name"), "created": params.get("created"), "set": ks,
                "n": m.get("n"), "accuracy": m.get("accuracy"), "accuracy_ci": m.get("accuracy_ci"),
                "balanced_accuracy": m.get("balanced_accuracy"), "macro_f1": m.get("macro_f1"),
                "roc_auc": m.get("roc_auc"),
                "eval_sets": [s for s, v in metrics.get("sets", {}).items() if v.get("role") == "eval"],
                "path": str(folder),
            })
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


#: ``embedlab predict --task NAME`` -> the reference run shipped in ``embedlab/pretrained/``.
PRETRAINED_TASKS = {"emotion": "emotion", "real-fake": "real-fake"}


def pretrained_run(task: str) -> Path:
    """The folder of the reference run shipped for ``task`` (``emotion`` or ``real-fake``)."""
    if task not in PRETRAINED_TASKS:
        from embedlab.errors import UnknownNameError

        raise UnknownNameError("task", task, sorted(PRETRAINED_TASKS))
    folder = Path(__file__).resolve().parent / "pretrained" / PRETRAINED_TASKS[task]
    if not (folder / "params.json").is_file():
        raise ModelError(f"no reference run for task {task!r}: {folder} is missing or holds no params.json; "
                         "pass --run with a run of your own")
    return folder
