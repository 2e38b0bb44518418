"""Model files of a classifier run: never pickles.

scikit-learn pipelines go through ``skops`` and are opened only when every
type they contain is on :data:`TRUSTED_TYPES`; XGBoost models are stored in
XGBoost's own UBJ format. A run folder received from someone else therefore
cannot run code when it is opened; a file that is not what it claims to be
is refused before anything in it is read as Python objects. A binary RBF SVM
also gets ``model.rbf.npz``, the arrays its probabilities need, from which a
run predicts without importing scikit-learn (:mod:`embedlab.runs.rbf_svm`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Sequence

from embedlab.core.errors import ModelError
from embedlab.runs.rbf_svm import RBF_SVM_FILE, save_arrays

SKOPS_FILE = "model.skops"
XGBOOST_FILE = "model.ubj"
#: The only model file names a classifier run may list; anything else is refused.
MODEL_FILES = (SKOPS_FILE, XGBOOST_FILE, RBF_SVM_FILE)

#: Every scikit-learn type the registered classifiers' pipelines hold, the estimators and the helper
#: objects inside them (skops trusts only numpy, scipy and builtin types by default here; see
#: :func:`skops_io`). A model file holding any other type is refused without being loaded.
TRUSTED_TYPES = (
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.svm._classes.SVC",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
)



def skops_io():
    """``skops.io``, imported without the default allow-list it builds from every scikit-learn estimator.

    Building that list imports the whole of scikit-learn (about 2 s of a 5 s cold ``predict`` on 2
    cores). embedlab never relies on it: every type a model file holds is checked against
    :data:`TRUSTED_TYPES` before the file is loaded, and that list names the registered classifiers'
    estimators. Imported this way, skops trusts no scikit-learn estimator by default in this process,
    which only ever refuses more files, never fewer.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    every_estimator = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = every_estimator
    return skops.io


def _is_xgboost(step: Any) -> bool:
    return type(step).__module__.startswith("xgboost")


def save_model(pipeline: Any, folder: str | os.PathLike) -> list[str]:
    """Write a fitted pipeline into ``folder``; returns the file names written.

    The XGBoost step, if any, goes to ``model.ubj`` in XGBoost's format and
    the rest of the pipeline (with a placeholder there) to ``model.skops``; a binary
    RBF SVM's arrays also go to ``model.rbf.npz``.
    """
    sio = skops_io()
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
    return [SKOPS_FILE, *files, *save_arrays(pipeline, folder)]


def check_archive(path: Path) -> None:
    """Raise unless ``path`` is a zip archive, as skops writes (nothing in it is read)."""
    if not path.is_file():
        raise ModelError(f"{path}: model file missing")
    if not zipfile.is_zipfile(path):
        head = path.read_bytes()[:2]
        what = "a Python pickle" if head[:1] == b"\x80" else "not a skops archive"
        raise ModelError(f"{path}: refused, the file is {what}; run folders hold skops or XGBoost "
                         "files only, and pickles are never opened")


def check_model_names(folder: Path, files: Sequence[str]) -> None:
    """Raise unless ``files`` (a run's ``model_files``) are model file names a classifier run may hold."""
    bad = [f for f in files if f not in MODEL_FILES]
    if bad or SKOPS_FILE not in files:
        raise ModelError(f"{folder}: refused model file(s) {', '.join(bad) or '(no model.skops)'}; "
                         f"a classifier run holds only {', '.join(MODEL_FILES)}")


def check_model_file(path: Path) -> list[str]:
    """The non-default types a skops file holds; raise if it is not a clean skops archive.

    Nothing in the file is turned into Python objects here: skops reads the
    archive's JSON schema only.
    """
    check_archive(path)
    sio = skops_io()
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
    sio = skops_io()

    folder = Path(folder)
    check_model_names(folder, files)
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
