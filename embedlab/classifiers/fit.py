"""Fitting a classifier on cached features, scoring it honestly, and saving the run.

The dataset's own splits are used (:mod:`embedlab.datasets.splits`): the
model is fitted on ``train``, ``valid`` is scored (a held-out check beside
the cross-validation that ``search`` runs on ``train`` only), and ``test``
gives the reported figures. Other datasets given in ``eval_on`` are scored
whole, labels matched to the model's classes by name.

The fit runs in stages, each a function of this module: :func:`check_options`,
:func:`load_data` (load and split), :func:`compute_features`, :func:`train`,
:func:`score` (through :func:`embedlab.runs.scoring.score_set`, as networks
are scored) and :func:`write` (through :mod:`embedlab.runs.folder`).

>>> import tempfile
>>> from embedlab.classifiers.fit import fit_classifier
>>> tmp = tempfile.mkdtemp()
>>> run = fit_classifier("data/sample/real-vs-fake", "pixels[size=8]", "logreg",
...                      cache_dir=tmp + "/cache", runs_dir=tmp + "/runs", workers=1)
>>> run.params["task"], run.params["positive_class"], sorted(run.metrics["sets"])
('binary', 'fake', ['test', 'train', 'valid'])
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.classifiers.pipelines import (adapt_to_data, create_classifier, search_space,
                                            supports_sample_weight, target_prefix)
from embedlab.classifiers.run import ClassifierRun, load_classifier_run
from embedlab.classifiers.xgboost_dask import Cluster, fit_xgboost_dask
from embedlab.compute.distributed import parse_scheduler
from embedlab.compute.extraction import (encode, feature_matrix, resolve_features, table_for_cache,
                                         with_layout_defaults)
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from embedlab.core.errors import DatasetError, ModelError, OptionError
from embedlab.core.specs import split_feature_list
from embedlab.core.system import default_workers
from embedlab.datasets import sample_per_class
from embedlab.datasets.sources import fake_sources, leave_out_source
from embedlab.datasets.splits import SPLITS, assign_splits
from embedlab.features import FeatureExtractor
from embedlab.runs.folder import check_run_name, default_run_name, failure_table, write_run
from embedlab.runs.model_files import save_model
from embedlab.runs.rbf_svm import RbfSvmScorer, rbf_svm_arrays
from embedlab.runs.provenance import command_line, data_record, library_versions, utc_now
from embedlab.runs.scoring import TARGET_FPR, ScoredSet, Scoring, score_set, task_of, threshold_from

ProgressCallback = Callable[[int, int], None]
MISSING = ("drop", "error")


@dataclass
class FitConfig:
    """What :func:`fit_classifier` is asked to do, besides the data (see its docstring)."""

    features: str | Sequence[str] = "encoding"
    model: str = "svm"
    params: dict[str, Any] | None = None
    search: bool = False
    class_weight: str | None = None
    eval_on: Iterable[str | os.PathLike] = ()
    runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR
    name: str | None = None
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR
    seed: int = 0
    workers: int | None = None
    on_progress: ProgressCallback | None = None
    eval_features: str | Sequence[str] | None = None
    missing: str = "drop"
    per_class: int | None = None
    layout: str = "auto"
    command: str | None = None
    scheduler: str | None = None
    target_fpr: float = TARGET_FPR
    leave_out: str | None = None


@dataclass
class Plan:
    """What the options resolve to, checked before any feature is computed."""

    pipe: Any
    user_params: dict[str, Any]
    class_weight: str | None
    n_jobs: int
    specs: list[str]
    extractors: list[FeatureExtractor]
    eval_specs: list[str]
    eval_extractors: list[FeatureExtractor]


@dataclass
class Data:
    """The training table, its roles, and the eval tables, all checked."""

    table: pd.DataFrame
    where: str
    classes: list[str]
    roles: pd.Series
    split_info: dict[str, Any]
    eval_tables: list[tuple[Path, pd.DataFrame]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # defaults chosen from the data, said to the user


@dataclass(frozen=True)
class Scores:
    """What scoring gives: the figures of every set, the prediction rows, the decision threshold
    (binary tasks) and the images left out (:data:`embedlab.runs.folder.FAILURE_COLUMNS`)."""

    sets: dict[str, dict]
    predictions: pd.DataFrame
    threshold: dict[str, Any] | None
    failures: pd.DataFrame


@dataclass
class Features:
    """The training table's features: the encoded table, ``X``, which rows have them, targets."""

    df: pd.DataFrame
    X: np.ndarray
    ok: np.ndarray
    y: np.ndarray
    role: np.ndarray


# -- the entry point -------------------------------------------------------------
# The keyword arguments are the public interface the CLI, the tests and the benchmarks
# call; they are gathered into a FitConfig at once, and the stages below take that.
def fit_classifier(data: str | os.PathLike | pd.DataFrame, features: str | Sequence[str] = "encoding",
                   model: str = "svm", params: dict[str, Any] | None = None, search: bool = False,
                   class_weight: str | None = None, eval_on: Iterable[str | os.PathLike] = (),
                   runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, name: str | None = None,
                   cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, seed: int = 0,
                   workers: int | None = None, on_progress: ProgressCallback | None = None, *,
                   eval_features: str | Sequence[str] | None = None, missing: str = "drop",
                   per_class: int | None = None, layout: str = "auto", command: str | None = None,
                   scheduler: str | None = None, target_fpr: float = TARGET_FPR,
                   leave_out: str | None = None) -> ClassifierRun:
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
    (see :mod:`embedlab.classifiers.xgboost_dask`).

    A binary run's decision threshold is chosen on ``valid`` (``train``
    when the dataset has no validation split) for a false-positive rate of
    ``target_fpr`` on the negative class (reals). ``leave_out`` names a
    source of fakes (see :mod:`embedlab.datasets.sources`) kept out of
    train and valid and scored on test: a generator the model never saw.
    """
    config = FitConfig(features=features, model=model, params=params, search=search, class_weight=class_weight,
                       eval_on=eval_on, runs_dir=runs_dir, name=name, cache_dir=cache_dir, seed=seed,
                       workers=workers, on_progress=on_progress, eval_features=eval_features, missing=missing,
                       per_class=per_class, layout=layout, command=command, scheduler=scheduler,
                       target_fpr=target_fpr, leave_out=leave_out)
    return fit_with(data, config)


def fit_with(data: str | os.PathLike | pd.DataFrame, config: FitConfig) -> ClassifierRun:
    """:func:`fit_classifier` with its options in a :class:`FitConfig`."""
    started = time.perf_counter()
    plan = check_options(config)
    loaded = load_data(data, config)
    plan = layout_defaults(plan, loaded, config)
    feats = compute_features(plan, loaded, config)
    pipe, training = train(plan, loaded, feats, config)
    # scored as the saved run will predict: from the arrays of a model embedlab.runs.rbf_svm reads
    arrays = rbf_svm_arrays(pipe)
    scores = score(pipe if arrays is None else RbfSvmScorer(arrays), plan, loaded, feats, config)
    training["total_seconds"] = round(time.perf_counter() - started, 3)
    training["threshold"] = scores.threshold
    folder = write(data, config, plan, loaded, pipe, training, scores)
    return load_classifier_run(folder)


# -- stage 1: the options ------------------------------------------------------------
def feature_specs(features: str | Sequence[str]) -> list[str]:
    return split_feature_list(features) if isinstance(features, str) else [str(f) for f in features]


def check_options(config: FitConfig) -> Plan:
    """Resolve model and features; unknown names and contradicting options fail here, before any work."""
    if config.missing not in MISSING:
        raise OptionError(f"missing={config.missing!r}: choose {' or '.join(MISSING)}")
    if not 0 <= config.target_fpr < 1:
        raise OptionError(f"target_fpr={config.target_fpr}: a false-positive rate at least 0 and below 1")
    if config.class_weight not in (None, "none", "balanced"):
        raise OptionError(f"class_weight={config.class_weight!r}: choose 'balanced' or none")
    class_weight = None if config.class_weight == "none" else config.class_weight
    n_jobs = config.workers or default_workers()
    user_params = dict(config.params or {})
    pipe = create_classifier(config.model, user_params, seed=config.seed, n_jobs=n_jobs)
    if config.scheduler is not None:
        parse_scheduler(config.scheduler)
    if config.name is not None:
        check_run_name(config.name)
    if config.scheduler is not None and (config.model != "xgboost" or config.search or class_weight):
        raise OptionError("--scheduler trains the xgboost model only, without --search or --class-weight; "
                         f"got model {config.model!r}" + (" with --search" if config.search else "")
                         + (" with --class-weight" if class_weight else ""))
    if class_weight and not supports_sample_weight(pipe):
        raise OptionError(f"model {config.model!r} cannot weight classes; drop --class-weight or pick another model")
    specs = feature_specs(config.features)
    extractors = resolve_features(specs)
    eval_specs = feature_specs(config.eval_features) if config.eval_features else specs
    eval_extractors = resolve_features(eval_specs)
    if ([e.name for e in eval_extractors] != [e.name for e in extractors]
            or [e.dim for e in eval_extractors] != [e.dim for e in extractors]):
        raise OptionError(f"eval features {'+'.join(eval_specs)} must give the same features and sizes as "
                         f"{'+'.join(specs)}")
    return Plan(pipe, user_params, class_weight, n_jobs, specs, extractors, eval_specs, eval_extractors)


# -- stage 2: load and split -----------------------------------------------------------
def check_labels(table: pd.DataFrame, where: str) -> list[str]:
    if table["label"].isna().any():
        raise DatasetError(f"{where}: {int(table['label'].isna().sum())} images have no label")
    classes = sorted(table["label"].astype(str).unique())
    if len(classes) < 2:
        raise ModelError(f"{where}: a single class ({classes[0] if classes else 'none'}); "
                         "a classifier needs images of at least two classes")
    return classes


def load_data(data: str | os.PathLike | pd.DataFrame, config: FitConfig) -> Data:
    """The training table split into roles, and every eval set, read and checked before any work."""
    table = table_for_cache(data, config.cache_dir, config.layout)
    where = table.attrs.get("root", str(data) if not isinstance(data, pd.DataFrame) else "the table")
    if config.per_class:
        table = sample_per_class(table, config.per_class, seed=config.seed).reset_index(drop=True)
    classes = check_labels(table, where)
    roles, split_info = assign_splits(table, config.seed)
    if config.leave_out is not None:
        roles = leave_out_source(table, roles, config.leave_out)
        kept = roles.notna().to_numpy()
        attrs = dict(table.attrs)
        table, roles = table[kept].reset_index(drop=True), roles[kept].reset_index(drop=True)
        table.attrs.update(attrs)
    train_labels = set(table.loc[roles == "train", "label"].astype(str))
    absent = [c for c in classes if c not in train_labels]
    if absent:
        raise ModelError(f"{where}: class(es) {', '.join(absent)} have no training image")
    loaded = Data(table, where, classes, roles, split_info)
    for path in map(Path, config.eval_on):
        et = table_for_cache(path, config.cache_dir)
        if et["label"].isna().all():
            raise DatasetError(f"{path}: no labels to score against")
        loaded.eval_tables.append((path, et))
    return loaded


# -- stage 3: features -----------------------------------------------------------------
def layout_defaults(plan: Plan, loaded: Data, config: FitConfig) -> Plan:
    """The plan with ``encoding[detector=none]`` for an ``encoding`` naming no detector, on aligned
    face crops (see :func:`embedlab.compute.extraction.with_layout_defaults`); eval sets follow
    the training features unless ``eval_features`` was given."""
    specs, notes = with_layout_defaults(plan.specs, loaded.table.attrs.get("layout"))
    if not notes:
        return plan
    loaded.notes.extend(notes)
    extractors = resolve_features(specs)
    if config.eval_features:
        return replace(plan, specs=specs, extractors=extractors)
    return replace(plan, specs=specs, extractors=extractors, eval_specs=specs, eval_extractors=extractors)


def lost_features_hint(specs: list[str], reasons: dict[str, int]) -> str:
    """What to try when the face detector left classes without features."""
    if "no face found" not in reasons:
        return "try other features (embedlab features lists them)"
    tried = [s for s in specs if s.startswith("encoding") and "detector=none" not in s]
    instead = ", ".join(f"'{s.split('[')[0].split(':')[0]}[detector=none]'" for s in tried[:1]) or \
        "'encoding[detector=none]'"
    return (f"the face detector found no face in {reasons['no face found']} images: for aligned face crops "
            f"(such as FER-2013's 48x48 faces) try --features {instead}, which takes the whole image as "
            "the face, or a feature that needs no face (spectrum, pixels)")


def missing_report(df: pd.DataFrame, names: list[str], ok: np.ndarray) -> dict[str, int]:
    """How many images lack features, by the first failing feature's reason."""
    reasons: dict[str, int] = {}
    for i in np.flatnonzero(~ok):
        reason = next((str(df[f"{n}.reason"].iloc[i]) for n in names
                       if not df[f"{n}.ok"].iloc[i] and df[f"{n}.reason"].iloc[i] is not None), "missing features")
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def row_failures(df: pd.DataFrame, names: list[str], ok: np.ndarray, set_name: str) -> pd.DataFrame:
    """One row per image without features: its first failing feature's reason and message."""
    reason = pd.Series(None, index=df.index, dtype=object)
    error = pd.Series(None, index=df.index, dtype=object)
    for n in reversed(names):  # the first failing feature wins
        bad = ~df[f"{n}.ok"].to_numpy(bool)
        reason[bad], error[bad] = df.loc[bad, f"{n}.reason"], df.loc[bad, f"{n}.error"]
    return failure_table(df, ok, reason.to_numpy(), error.to_numpy(), set_name)


def features_of(df: pd.DataFrame, names: list[str], missing: str, where: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(X, ok, reasons)`` of an encoded table; with ``missing="error"`` any gap stops the fit."""
    X, ok = feature_matrix(df, names)
    reasons = missing_report(df, names, ok)
    if reasons and missing == "error":
        ids = df.loc[~ok, "image_id"].astype(str).head(5).tolist()
        raise ModelError(f"{where}: {int((~ok).sum())} of {len(df)} images have no features "
                         f"({', '.join(f'{r}: {n}' for r, n in reasons.items())}), e.g. {', '.join(ids)}; "
                         "use missing='drop' (--missing drop) to leave them out, or another feature")
    return X, ok, reasons


def compute_features(plan: Plan, loaded: Data, config: FitConfig) -> Features:
    """Encode the training table (cached) and check every split keeps images with features."""
    names = [e.name for e in plan.extractors]
    df = encode(loaded.table, plan.extractors, cache_dir=config.cache_dir, workers=config.workers,
                on_progress=config.on_progress, scheduler=config.scheduler)
    X, ok, _ = features_of(df, names, config.missing, loaded.where)
    y = np.array([loaded.classes.index(str(v)) for v in df["label"]])
    role = loaded.roles.to_numpy()
    for split in SPLITS:
        in_split = role == split
        if in_split.any() and not (in_split & ok).any():
            reasons = missing_report(df.loc[in_split].reset_index(drop=True), names, ok[in_split])
            raise ModelError(f"{loaded.where}: split {split!r} has no image with features "
                             f"({', '.join(f'{r}: {n}' for r, n in reasons.items())})")
    lost = [c for i, c in enumerate(loaded.classes) if not (y[(role == "train") & ok] == i).any()]
    if lost:
        reasons = missing_report(df, names, ok)
        raise ModelError(f"{loaded.where}: no training image of class(es) {', '.join(lost)} has features "
                         f"({', '.join(f'{r}: {n}' for r, n in reasons.items())}); "
                         + lost_features_hint(plan.specs, reasons))
    return Features(df, X, ok, y, role)


# -- stage 4: train ----------------------------------------------------------------------
def grid_search(pipe, X, y, fit_params: dict, plan: Plan, config: FitConfig, binary: bool):
    """Cross-validated grid search on the training images, over the model's search space less the
    parameters the user fixed; returns the refitted best and a record."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    name, fixed, seed, n_jobs = config.model, plan.user_params, config.seed, plan.n_jobs
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


def train(plan: Plan, loaded: Data, feats: Features, config: FitConfig) -> tuple[Any, dict[str, Any]]:
    """Fit the pipeline on the training images with features; returns it and how the fit went."""
    pipe = plan.pipe
    train_rows = (feats.role == "train") & feats.ok
    y_train = feats.y[train_rows]
    adapt_to_data(pipe, y_train)
    fit_params = {}
    if plan.class_weight == "balanced":
        from sklearn.utils.class_weight import compute_sample_weight

        fit_params["model__sample_weight"] = compute_sample_weight("balanced", y_train)
    started = time.perf_counter()
    search_info = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if config.search:
            pipe, search_info = grid_search(pipe, feats.X[train_rows], y_train, fit_params, plan, config,
                                            len(loaded.classes) == 2)
        elif config.scheduler is not None:  # trained where the features lie, from the cache
            pipe = fit_xgboost_dask(feats.df, [e.key() for e in plan.extractors], train_rows,
                                    Cluster(config.scheduler, config.cache_dir), classes=loaded.classes,
                                    params=plan.user_params, seed=config.seed, predict=False).pipeline
        else:
            pipe.fit(feats.X[train_rows], y_train, **fit_params)
    fit_warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught
                           if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))})
    return pipe, {"search": search_info, "fit_seconds": round(time.perf_counter() - started, 3),
                  "warnings": fit_warnings}


# -- stage 5: score ----------------------------------------------------------------------
def score_rows(pipe, frame: pd.DataFrame, X: np.ndarray, ok: np.ndarray, reasons: dict, scoring: Scoring,
               which: ScoredSet) -> tuple[dict, pd.DataFrame]:
    """Score the rows of ``frame`` that have features; the others are counted by reason."""
    proba = np.asarray(pipe.predict_proba(X[ok]), dtype=float)
    scored = frame.loc[ok].reset_index(drop=True)
    metrics, rows = score_set(proba, scored, scoring, which)
    rows["label"] = rows["label"].astype(str)
    metrics.update(n_missing_features=int((~ok).sum()), missing_features=reasons)
    return metrics, rows


def decision_threshold(pipe, loaded: Data, feats: Features, positive: str | None,
                       target_fpr: float) -> dict[str, Any] | None:
    """The binary run's threshold, chosen on ``valid`` (or ``train`` when there is none)."""
    if positive is None:
        return None
    candidates = []
    for split in ("valid", "train"):
        rows = (feats.role == split) & feats.ok
        if rows.any():
            labels = feats.df.loc[rows, "label"].tolist()
            candidates.append((split, labels, np.asarray(pipe.predict_proba(feats.X[rows]), dtype=float)))
    return threshold_from(candidates, loaded.classes, positive, target_fpr)


def dataset_name(loaded: Data) -> str:
    """What a scored set's ``dataset`` says: the dataset's name (its place is in ``params.json``)."""
    return loaded.table.attrs.get("name") or Path(str(loaded.where)).name


def score(pipe, plan: Plan, loaded: Data, feats: Features, config: FitConfig) -> Scores:
    """Figures and prediction rows for every split, then every eval set, the decision threshold,
    and the images left out."""
    names = [e.name for e in plan.extractors]
    classes = loaded.classes
    _, positive = task_of(classes)
    threshold = decision_threshold(pipe, loaded, feats, positive, config.target_fpr)
    scoring = Scoring(classes, positive, seed=config.seed, threshold=threshold["value"] if threshold else None)
    sets: dict[str, dict] = {}
    frames, failures = [], []
    for split in SPLITS:
        in_split = feats.role == split
        if in_split.any():
            sub = feats.df.loc[in_split].reset_index(drop=True)
            reasons = missing_report(sub, names, feats.ok[in_split])
            failures.append(row_failures(sub, names, feats.ok[in_split], split))
            sets[split], rows = score_rows(pipe, sub, feats.X[in_split], feats.ok[in_split], reasons, scoring,
                                           ScoredSet(split, role=split, dataset=dataset_name(loaded)))
            frames.append(rows)
    for path, et in loaded.eval_tables:
        edf = encode(et, plan.eval_extractors, cache_dir=config.cache_dir, workers=config.workers,
                     on_progress=config.on_progress, scheduler=config.scheduler)
        set_name = base = et.attrs.get("name") or path.name
        n = 2
        while set_name in sets:
            set_name, n = f"{base}-{n}", n + 1
        EX, eok, reasons = features_of(edf, names, config.missing, str(path))
        failures.append(row_failures(edf, names, eok, set_name))
        if not eok.any():
            raise ModelError(f"{path}: no image with features "
                             f"({', '.join(f'{r}: {c}' for r, c in reasons.items())})")
        sets[set_name], rows = score_rows(pipe, edf, EX, eok, reasons, scoring,
                                          ScoredSet(set_name, role="eval", dataset=base))
        frames.append(rows)
    return Scores(sets, pd.concat(frames, ignore_index=True), threshold, pd.concat(failures, ignore_index=True))


# -- stage 6: write the run ----------------------------------------------------------------
def model_params(pipe) -> dict[str, Any]:
    """The fitted model's own parameters (JSON-friendly), without the pipeline's prefixes."""
    prefix = target_prefix(pipe)
    out = {}
    for k, v in pipe.get_params(deep=True).items():
        if k.startswith(prefix) and "__" not in k[len(prefix):]:
            if v is None or isinstance(v, (bool, int, float, str)) or isinstance(v, tuple):
                out[k[len(prefix):]] = list(v) if isinstance(v, tuple) else v
            elif not hasattr(v, "get_params"):
                out[k[len(prefix):]] = str(v)
    return out


def dataset_path(data: Any, table: pd.DataFrame) -> str | None:
    """The dataset's folder or file (the root its layout was found at), None for a table given in memory."""
    return table.attrs.get("root") or (None if isinstance(data, pd.DataFrame) else str(data))


# Everything a run records comes together here, from every stage: six inputs are the stages' outputs.
def write(data, config: FitConfig, plan: Plan, loaded: Data, pipe, training: dict[str, Any],
          scores: Scores) -> Path:
    """Write the run folder: ``params.json`` says what was fitted on what, and how."""
    table, role = loaded.table, loaded.roles.to_numpy()
    task, positive = task_of(loaded.classes)
    data_name = dataset_name(loaded)
    name = check_run_name(config.name or default_run_name([data_name, "+".join(plan.specs), config.model],
                                                          config.runs_dir))
    folder = Path(config.runs_dir) / name
    run_params = {
        "name": name, "kind": "classifier", "task": task, "classes": loaded.classes, "positive_class": positive,
        "model": config.model, "model_params": model_params(pipe), "param_overrides": plan.user_params,
        "class_weight": plan.class_weight, "search": training["search"],
        "features": plan.specs, "feature_keys": {e.name: e.key() for e in plan.extractors},
        "feature_dims": {e.name: e.dim for e in plan.extractors},
        "eval_features": plan.eval_specs, "eval_feature_keys": {e.name: e.key() for e in plan.eval_extractors},
        "missing": config.missing,
        "data": {**data_record(table, dataset_path(data, table), folder), "name": data_name,
                 "per_class": config.per_class, "splits": loaded.split_info,
                 "counts": {s: int((role == s).sum()) for s in SPLITS if (role == s).any()}},
        "eval_on": [data_record(et, dataset_path(path, et), folder) for path, et in loaded.eval_tables],
        "versions": library_versions(),
        "created": utc_now(), "command": config.command if config.command is not None else command_line(),
        "seed": config.seed, "fit_seconds": training["fit_seconds"], "total_seconds": training["total_seconds"],
        "warnings": table.attrs.get("warnings", []) + training["warnings"],
        "notes": loaded.notes,
        "threshold": training["threshold"], "leave_out": config.leave_out,
        "sources": {s: fake_sources(table[role == s]) for s in SPLITS if (role == s).any()},
    }
    metrics = {"sets": scores.sets, "threshold": training["threshold"]}
    return write_run(config.runs_dir, name, run_params, metrics, scores.predictions,
                     lambda folder: save_model(pipe, folder), scores.failures)
