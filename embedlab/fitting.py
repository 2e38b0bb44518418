"""Fitting a classifier on cached features, scoring it honestly, and saving the run.

The dataset's own splits are used: the model is fitted on ``train``,
``valid`` is scored (a held-out check beside the cross-validation that
``search`` runs on ``train`` only), and ``test`` gives the reported figures.
A dataset without a test split gets a stratified 80/20 split of its
training images with a fixed seed. Other datasets given in ``eval_on`` are
scored whole, labels matched to the model's classes by name.

>>> import tempfile
>>> from embedlab.fitting import fit_classifier
>>> tmp = tempfile.mkdtemp()
>>> run = fit_classifier("data/sample/real-vs-fake", "pixels[size=8]", "logreg",
...                      cache_dir=tmp + "/cache", runs_dir=tmp + "/runs", workers=1)
>>> run.params["task"], run.params["positive_class"], sorted(run.metrics["sets"])
('binary', 'fake', ['test', 'train', 'valid'])
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.cache import DEFAULT_CACHE_DIR
from embedlab.errors import DatasetError, ModelError, UnknownNameError
from embedlab.runs import DEFAULT_RUNS_DIR, Run, data_fingerprint, library_versions, write_run

ProgressCallback = Callable[[int, int], None]
SPLITS = ("train", "valid", "test")
#: share of the training images held out as the test set when a dataset has none
TEST_SIZE = 0.2
POSITIVE_CLASS = "fake"
MISSING = ("drop", "error")


# -- the entry point the CLI calls -------------------------------------------
def _networks():
    try:
        import embedlab.nets as nets
    except ImportError:
        return None
    return nets if hasattr(nets, "NETWORKS") else None


def _network_names(nets) -> list[str]:
    if nets is None:
        return []
    registry = nets.NETWORKS
    return list(registry.names()) if hasattr(registry, "names") else sorted(registry)


def model_names() -> list[str]:
    """Every name ``fit`` accepts: the classifiers, then the networks (when installed)."""
    from embedlab.models import CLASSIFIERS

    names = CLASSIFIERS.names()
    return names + [n for n in _network_names(_networks()) if n not in names]  # a classifier name wins


def fit(data: str | os.PathLike | pd.DataFrame, features: str | Sequence[str] = "encoding",
        model: str = "svm", params: dict[str, Any] | None = None, search: bool = False,
        class_weight: str | None = None, eval_on: Iterable[str | os.PathLike] = (),
        runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, name: str | None = None,
        cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, seed: int = 0, workers: int | None = None,
        on_progress: ProgressCallback | None = None, *, device: str = "auto", epochs: int | None = None,
        resume: bool = False, **options: Any):
    """Fit ``model`` on ``data``: a classifier on features, or a network on images.

    Classifiers go to :func:`fit_classifier` (``options`` passed on); a name
    from ``embedlab.nets.NETWORKS`` goes to ``embedlab.nets.fit_network`` with
    ``device``, ``epochs`` and ``resume``. An unknown name lists both kinds.
    """
    from embedlab.models import CLASSIFIERS

    if model in CLASSIFIERS:
        return fit_classifier(data, features, model, params=params, search=search, class_weight=class_weight,
                              eval_on=eval_on, runs_dir=runs_dir, name=name, cache_dir=cache_dir, seed=seed,
                              workers=workers, on_progress=on_progress, **options)
    nets = _networks()
    if model in _network_names(nets):
        return nets.fit_network(data, network=model, params=params, eval_on=eval_on, runs_dir=runs_dir,
                                name=name, cache_dir=cache_dir, seed=seed, device=device, epochs=epochs,
                                resume=resume, on_progress=on_progress)
    raise UnknownNameError("model", model, model_names())


# -- splits and checks ---------------------------------------------------------
def _check_labels(table: pd.DataFrame, where: str) -> list[str]:
    if table["label"].isna().any():
        raise DatasetError(f"{where}: {int(table['label'].isna().sum())} images have no label")
    classes = sorted(table["label"].astype(str).unique())
    if len(classes) < 2:
        raise ModelError(f"{where}: a single class ({classes[0] if classes else 'none'}); "
                         "a classifier needs images of at least two classes")
    return classes


def _empty_split_folders(table: pd.DataFrame) -> list[str]:
    """Split folders that exist under the dataset root but gave no images."""
    root = Path(table.attrs.get("root", ""))
    if not root.is_dir():
        return []
    present = set(table["split"].dropna())
    empty = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        alias = {"training": "train", "val": "valid", "validation": "valid", "testing": "test"}.get(
            sub.name.lower(), sub.name.lower())
        if alias in SPLITS and alias not in present:
            empty.append(str(sub))
    return empty


def assign_splits(table: pd.DataFrame, seed: int = 0) -> tuple[pd.Series, dict[str, Any]]:
    """The role of each image (train/valid/test) and how the roles were decided."""
    split = table["split"]
    where = table.attrs.get("root", "the dataset")
    empty = _empty_split_folders(table)
    if empty:
        raise DatasetError(f"{where}: split folder(s) {', '.join(empty)} hold no images; "
                           "fill them or remove them")
    has = split.notna()
    if has.any() and not has.all():
        raise DatasetError(f"{where}: {int((~has).sum())} images have no split while others do")
    if has.any():
        unknown = sorted(set(split) - set(SPLITS))
        if unknown:
            raise DatasetError(f"{where}: unknown split name(s) {', '.join(unknown)}")
        if not (split == "train").any():
            raise DatasetError(f"{where}: no 'train' split (found {', '.join(sorted(set(split)))})")
        if (split == "test").any():
            return split.astype(str), {"source": "dataset"}
    roles = pd.Series("train", index=table.index, dtype=object)
    if has.any():
        roles[split == "valid"] = "valid"
    pool = roles.index[roles == "train"]
    labels = table.loc[pool, "label"].astype(str)
    counts = labels.value_counts()
    if counts.min() < 2:
        raise ModelError(f"{where}: class {counts.idxmin()!r} has {int(counts.min())} training image(s); "
                         "at least 2 per class are needed to hold out a stratified test set")
    from sklearn.model_selection import train_test_split

    n_test = max(int(round(TEST_SIZE * len(pool))), len(counts))
    _, test_idx = train_test_split(pool, test_size=n_test, stratify=labels, random_state=seed)
    roles[test_idx] = "test"
    return roles, {"source": "stratified", "test_size": TEST_SIZE, "seed": seed,
                   "from": "train" if has.any() else "all images"}


def _missing_report(df: pd.DataFrame, names: list[str], ok: np.ndarray) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for i in np.flatnonzero(~ok):
        reason = next((str(df[f"{n}.reason"].iloc[i]) for n in names
                       if not df[f"{n}.ok"].iloc[i] and df[f"{n}.reason"].iloc[i] is not None), "missing features")
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def _features_for(df: pd.DataFrame, names: list[str], missing: str, where: str) -> tuple[np.ndarray, np.ndarray, dict]:
    from embedlab.extraction import feature_matrix

    X, ok = feature_matrix(df, names)
    reasons = _missing_report(df, names, ok)
    if reasons and missing == "error":
        ids = df.loc[~ok, "image_id"].astype(str).head(5).tolist()
        raise ModelError(f"{where}: {int((~ok).sum())} of {len(df)} images have no features "
                         f"({', '.join(f'{r}: {n}' for r, n in reasons.items())}), e.g. {', '.join(ids)}; "
                         "use missing='drop' (--missing drop) to leave them out, or another feature")
    return X, ok, reasons


# -- naming ---------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def default_run_name(data_name: str, features: Sequence[str], model: str, runs_dir: Path) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = "-".join(_slug(s) for s in (data_name, "+".join(features), model, stamp))
    name, n = base, 2
    while (runs_dir / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def _load(data: str | os.PathLike | pd.DataFrame, layout: str) -> pd.DataFrame:
    from embedlab import datasets

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    table = datasets.load(data, layout=layout)
    return table


def _feature_specs(features: str | Sequence[str]) -> list[str]:
    from embedlab.features import split_feature_list

    return split_feature_list(features) if isinstance(features, str) else [str(f) for f in features]


def _search(pipe, name: str, X, y, fit_params: dict, fixed: Iterable[str], seed: int, n_jobs: int | None,
            binary: bool):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from embedlab.models import search_space

    grid = search_space(name, pipe, fixed)
    if not grid:
        raise ModelError(f"model {name!r}: nothing left to search (every searched parameter was fixed "
                         "with --param)")
    folds = int(min(5, np.bincount(y).min()))
    if folds < 2:
        raise ModelError("--search needs at least 2 training images per class")
    scoring = "roc_auc" if binary else "balanced_accuracy"
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    gs = GridSearchCV(pipe, grid, scoring=scoring, cv=cv, n_jobs=n_jobs, refit=True, error_score="raise")
    gs.fit(X, y, **fit_params)
    prefix_free = {k.split("__")[-1]: v for k, v in gs.best_params_.items()}
    info = {"scoring": scoring, "folds": folds, "on": "train", "grid": {k.split("__")[-1]: v for k, v in grid.items()},
            "best_params": prefix_free, "best_score": float(gs.best_score_),
            "candidates": int(len(gs.cv_results_["params"]))}
    return gs.best_estimator_, info


def _model_params(pipe) -> dict[str, Any]:
    from embedlab.models.classifiers import _target_prefix

    prefix = _target_prefix(pipe)
    out = {}
    for k, v in pipe.get_params(deep=True).items():
        if k.startswith(prefix) and "__" not in k[len(prefix):]:
            if v is None or isinstance(v, (bool, int, float, str)) or isinstance(v, tuple):
                out[k[len(prefix):]] = list(v) if isinstance(v, tuple) else v
            elif not hasattr(v, "get_params"):
                out[k[len(prefix):]] = str(v)
    return out


# -- fitting ----------------------------------------------------------------------
def fit_classifier(data: str | os.PathLike | pd.DataFrame, features: str | Sequence[str] = "encoding",
                   model: str = "svm", params: dict[str, Any] | None = None, search: bool = False,
                   class_weight: str | None = None, eval_on: Iterable[str | os.PathLike] = (),
                   runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, name: str | None = None,
                   cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, seed: int = 0,
                   workers: int | None = None, on_progress: ProgressCallback | None = None, *,
                   eval_features: str | Sequence[str] | None = None, missing: str = "drop",
                   per_class: int | None = None, layout: str = "auto", command: str | None = None,
                   scheduler: str | None = None) -> Run:
    """Fit classifier ``model`` on ``features`` of ``data``; score it and write its run folder.

    The task follows from the labels: two classes make a binary task (the
    positive class is ``fake`` when present), more a multi-class one.
    ``class_weight="balanced"`` weights images inversely to their class
    frequency. ``search`` runs a cross-validated grid search on the training
    split only. ``eval_on`` datasets are scored with ``eval_features`` (by
    default the training features): e.g. train on aligned crops with
    ``encoding[detector=none]`` and score medium shots with ``encoding``,
    whose face detector finds the face before the same 128-d descriptor is
    computed. Images whose features fail are left out and counted
    (``missing="drop"``) or stop the fit (``missing="error"``).
    ``per_class`` keeps at most that many images per split and label of
    ``data`` (eval sets are used whole). ``scheduler`` (``tcp://host:8786``
    or ``local:N``) computes missing features on a Dask cluster and, for
    ``xgboost``, trains with ``xgboost.dask`` there from the feature cache
    (see :mod:`embedlab.models.xgboost_dask`).
    """
    from embedlab.evaluation import evaluate
    from embedlab.extraction import encode, resolve_features
    from embedlab.models import create_classifier, supports_sample_weight
    from embedlab.models.classifiers import adapt_to_data

    started = time.perf_counter()
    if missing not in MISSING:
        raise ModelError(f"missing={missing!r}: choose {' or '.join(MISSING)}")
    if class_weight not in (None, "none", "balanced"):
        raise ModelError(f"class_weight={class_weight!r}: choose 'balanced' or none")
    class_weight = None if class_weight == "none" else class_weight
    from embedlab.extraction import default_workers

    n_jobs = workers or default_workers()
    user_params = dict(params or {})
    pipe = create_classifier(model, user_params, seed=seed, n_jobs=n_jobs)  # unknown names fail here
    if scheduler is not None and (model != "xgboost" or search or class_weight):
        raise ModelError("--scheduler trains the xgboost model only, without --search or --class-weight; "
                         f"got model {model!r}" + (" with --search" if search else "")
                         + (" with --class-weight" if class_weight else ""))
    if class_weight and not supports_sample_weight(pipe):
        raise ModelError(f"model {model!r} cannot weight classes; drop --class-weight or pick another model")
    specs = _feature_specs(features)
    extractors = resolve_features(specs)  # unknown feature names fail here
    names = [e.name for e in extractors]
    eval_specs = _feature_specs(eval_features) if eval_features else specs
    eval_extractors = resolve_features(eval_specs)
    if [e.name for e in eval_extractors] != names or [e.dim for e in eval_extractors] != [e.dim for e in extractors]:
        raise ModelError(f"eval features {'+'.join(eval_specs)} must give the same features and sizes as "
                         f"{'+'.join(specs)}")
    eval_on = [Path(p) for p in eval_on]

    table = _load(data, layout)
    where = table.attrs.get("root", str(data) if not isinstance(data, pd.DataFrame) else "the table")
    if per_class:
        from embedlab.datasets import sample_per_class

        table = sample_per_class(table, per_class, seed=seed).reset_index(drop=True)
    classes = _check_labels(table, where)
    roles, split_info = assign_splits(table, seed)
    train_labels = set(table.loc[roles == "train", "label"].astype(str))
    absent = [c for c in classes if c not in train_labels]
    if absent:
        raise ModelError(f"{where}: class(es) {', '.join(absent)} have no training image")
    eval_tables = []
    for path in eval_on:  # read (and check) every eval set before computing anything
        et = _load(path, "auto")
        if et["label"].isna().all():
            raise DatasetError(f"{path}: no labels to score against")
        eval_tables.append(et)

    task = "binary" if len(classes) == 2 else "multiclass"
    positive = POSITIVE_CLASS if task == "binary" and POSITIVE_CLASS in classes else None

    df = encode(table, extractors, cache_dir=cache_dir, workers=workers, on_progress=on_progress,
                scheduler=scheduler)
    X, ok, _ = _features_for(df, names, missing, where)
    y_all = np.array([classes.index(str(v)) for v in df["label"]])
    role = roles.to_numpy()
    for split in SPLITS:
        in_split = role == split
        if in_split.any() and not (in_split & ok).any():
            reasons = _missing_report(df.loc[in_split].reset_index(drop=True), names, ok[in_split])
            raise ModelError(f"{where}: split {split!r} has no image with features "
                             f"({', '.join(f'{r}: {n}' for r, n in reasons.items())})")
    train = (role == "train") & ok
    y_train = y_all[train]
    lost = [c for i, c in enumerate(classes) if not (y_train == i).any()]
    if lost:
        raise ModelError(f"{where}: no training image of class(es) {', '.join(lost)} has features")
    adapt_to_data(pipe, y_train)
    fit_params = {}
    if class_weight == "balanced":
        from sklearn.utils.class_weight import compute_sample_weight

        fit_params["model__sample_weight"] = compute_sample_weight("balanced", y_train)
    fit_started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if search:
            pipe, search_info = _search(pipe, model, X[train], y_train, fit_params, user_params, seed,
                                        n_jobs, task == "binary")
        else:
            if scheduler is not None:  # trained where the features lie, from the cache
                from embedlab.models.xgboost_dask import fit_xgboost_dask

                pipe = fit_xgboost_dask(df, [e.key() for e in extractors], train, scheduler=scheduler,
                                        cache_dir=cache_dir, classes=classes, params=user_params,
                                        seed=seed, predict=False).pipeline
            else:
                pipe.fit(X[train], y_train, **fit_params)
            search_info = None
    fit_seconds = time.perf_counter() - fit_started
    fit_warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught
                           if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))})

    sets: dict[str, dict] = {}
    pred_frames = []

    def score(set_name: str, set_role: str, frame: pd.DataFrame, Xs: np.ndarray, oks: np.ndarray,
              reasons: dict, dataset: str) -> None:
        proba = np.asarray(pipe.predict_proba(Xs[oks]), dtype=float)
        scored = frame.loc[oks].reset_index(drop=True)
        m = evaluate(scored["label"].tolist(), proba, classes, positive, seed=seed)
        sets[set_name] = {"role": set_role, "dataset": dataset, **m,
                          "n_missing_features": int((~oks).sum()), "missing_features": reasons}
        pred = proba.argmax(axis=1)
        out = pd.DataFrame({"set": set_name, "image_id": scored["image_id"].astype(str),
                            "path": scored["path"].astype(str), "hash": scored["hash"].astype(str),
                            "label": scored["label"].astype(str),
                            "pred": [classes[i] for i in pred]})
        from embedlab.evaluation import match_labels

        matched, _ = match_labels(out["label"].tolist(), classes)
        out["correct"] = matched == out["pred"].to_numpy(object)
        for i, c in enumerate(classes):
            out[f"proba_{c}"] = proba[:, i]
        pred_frames.append(out)

    for split in SPLITS:
        in_split = role == split
        if in_split.any():
            sub = df.loc[in_split].reset_index(drop=True)
            reasons = _missing_report(sub, names, ok[in_split])
            score(split, split, sub, X[in_split], ok[in_split], reasons, str(where))

    eval_names = []
    for path, et in zip(eval_on, eval_tables):
        edf = encode(et, eval_extractors, cache_dir=cache_dir, workers=workers, on_progress=on_progress,
                     scheduler=scheduler)
        set_name = et.attrs.get("name") or path.name
        base, n = set_name, 2
        while set_name in sets:
            set_name, n = f"{base}-{n}", n + 1
        EX, eok, reasons = _features_for(edf, names, missing, str(path))
        if not eok.any():
            raise ModelError(f"{path}: no image with features "
                             f"({', '.join(f'{r}: {c}' for r, c in reasons.items())})")
        score(set_name, "eval", edf, EX, eok, reasons, et.attrs.get("root", str(path)))
        eval_names.append(str(path))

    runs_dir = Path(runs_dir)
    data_name = table.attrs.get("name") or Path(str(where)).name
    name = name or default_run_name(data_name, specs, model, runs_dir)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+\-]*", name):
        raise ModelError(f"run name {name!r}: use letters, digits, '.', '_', '+' and '-' only")
    run_params = {
        "name": name, "kind": "classifier", "task": task, "classes": classes, "positive_class": positive,
        "model": model, "model_params": _model_params(pipe), "param_overrides": user_params,
        "class_weight": class_weight, "search": search_info,
        "features": specs, "feature_keys": {e.name: e.key() for e in extractors},
        "feature_dims": {e.name: e.dim for e in extractors},
        "eval_features": eval_specs, "eval_feature_keys": {e.name: e.key() for e in eval_extractors},
        "missing": missing,
        "data": {"path": str(data) if not isinstance(data, pd.DataFrame) else where, "layout": table.attrs.get("layout"),
                 "name": data_name, "fingerprint": data_fingerprint(table), "n_images": int(len(table)),
                 "per_class": per_class, "splits": split_info,
                 "counts": {s: int((role == s).sum()) for s in SPLITS if (role == s).any()}},
        "eval_on": eval_names, "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else shlex.join(sys.argv),
        "seed": seed, "fit_seconds": round(fit_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3), "warnings": fit_warnings,
    }
    metrics = {"sets": sets}
    predictions = pd.concat(pred_frames, ignore_index=True)
    folder = write_run(runs_dir, name, run_params, metrics, predictions, pipe)
    from embedlab.runs import load_run

    return load_run(folder)
