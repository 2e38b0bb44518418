"""An opened classifier run: its skops/XGBoost model and ``predict`` on images.

>>> run = load_classifier_run("tests/fixtures/runs/classifier-logreg")
>>> run.classes, run.params["features"]
(['fake', 'real'], ['spectrum[size=64]'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.compute.extraction import IN_PROCESS_BELOW, encode, feature_matrix, images_for_cache, resolve_features
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR
from embedlab.core.errors import ModelError
from embedlab.runs.folder import Run, read_run
from embedlab.runs.model_files import SKOPS_FILE, check_archive, check_model_names, load_model
from embedlab.runs.rbf_svm import RBF_SVM_FILE, RbfSvmScorer


@dataclass
class ClassifierRun(Run):
    """A fitted classifier run: its folder, ``params``, ``metrics`` and model.

    ``predict`` computes the features the run was fitted on (from the cache
    when present) and returns the predicted label and probabilities per image.
    """

    model: Any = field(default=None, repr=False)
    #: the same probabilities without scikit-learn, for the models :mod:`embedlab.runs.rbf_svm` reads
    scorer: RbfSvmScorer | None = field(default=None, repr=False)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.scorer is not None:
            return self.scorer.predict_proba(X)
        if self.model is None:
            raise ModelError(f"run {self.name}: the model is not loaded")
        return np.asarray(self.model.predict_proba(X), dtype=float)

    def load_model(self) -> Any:
        """The fitted scikit-learn pipeline (opened now if the run predicts from its arrays)."""
        if self.model is None:
            self.model = load_model(self.path, self.params.get("model_files", []))
        return self.model

    def predict(self, data: pd.DataFrame | str | os.PathLike | Iterable[str | os.PathLike], *,
                features: str | Sequence[str] | None = None,
                cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR, workers: int | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                threshold: float | None = None, scheduler: str | None = None,
                on_step: Callable[[str], None] | None = None) -> pd.DataFrame:
        """Predicted label and ``proba_<class>`` per image of ``data``.

        ``data`` is a table from :func:`embedlab.datasets.load` or image files
        and folders. ``features`` replaces the run's feature specs (e.g. the
        same descriptor with a face detector for medium shots); it must give
        the same feature names and sizes. Images whose features cannot be
        computed get no prediction and their ``reason``. A binary run's
        ``pred`` is the label at ``threshold``, by default the one saved by fit.
        Features are computed as :func:`embedlab.encode` computes them (``workers``, ``scheduler``,
        the cache and its file hash index), except that by default a few images (fewer than
        :data:`~embedlab.compute.extraction.IN_PROCESS_BELOW`) are computed in this process, where starting
        workers would take longer than the work; ``on_step`` hears what is computed.
        """
        table = images_for_cache(data, cache_dir)
        if workers is None and scheduler is None and len(table) < IN_PROCESS_BELOW:
            workers = 0
        extractors = resolve_features(list(features) if isinstance(features, (list, tuple))
                                      else features or list(self.params["features"]))
        names = [e.name for e in extractors]
        self.check_features(extractors, replaced=features is not None)
        if on_step is not None:
            on_step(f"{len(table):,} image(s): features {', '.join(names)}")
        df = encode(table, extractors, cache_dir=cache_dir, workers=workers, on_progress=on_progress,
                    scheduler=scheduler)
        X, ok = feature_matrix(df, names)
        proba = np.full((len(df), len(self.classes)), np.nan)
        if ok.any():
            proba[ok] = self.predict_proba(X[ok])
        reason = pd.Series(None, index=df.index, dtype=object)
        for n in reversed(names):  # the first failing feature's reason wins
            bad = ~df[f"{n}.ok"].to_numpy(bool)
            reason[bad] = df.loc[bad, f"{n}.reason"].astype(object).where(df.loc[bad, f"{n}.reason"].notna(),
                                                                          "missing features")
        return self.prediction_table(df, proba, ok, reason.to_numpy(), threshold=threshold)

    def check_features(self, extractors: list, replaced: bool) -> None:
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


def load_classifier_run(path: str | os.PathLike, runs_dir: str | os.PathLike = DEFAULT_RUNS_DIR, *,
                        load_model_files: bool = True) -> ClassifierRun:
    """Open a classifier run folder (or a run name under ``runs_dir``), model included.

    A run whose model :mod:`embedlab.runs.rbf_svm` reads predicts from those arrays: its skops
    file is checked to be an archive and opened only if :meth:`ClassifierRun.load_model` asks.
    """
    folder, params, metrics = read_run(path, runs_dir, kind="classifier")
    if not load_model_files:
        return ClassifierRun(folder, params, metrics)
    files = params.get("model_files", [])
    if RBF_SVM_FILE in files:  # load_model checks the names and the archive when it opens the file
        check_model_names(folder, files)
        check_archive(folder / SKOPS_FILE)
        return ClassifierRun(folder, params, metrics, scorer=RbfSvmScorer.load(folder / RBF_SVM_FILE))
    return ClassifierRun(folder, params, metrics, load_model(folder, files))
