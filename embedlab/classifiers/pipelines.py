"""The classifier registry: scikit-learn pipelines and XGBoost, by name.

A registered factory takes ``seed`` and ``n_jobs`` and returns an unfitted
pipeline. Options given by the user (``--param C=10``) are set on the step
called ``model`` (or on the estimator it calibrates); a key that contains
``__`` is passed to the pipeline unchanged (``scale__with_mean=false``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from embedlab.core.errors import ModelError, OptionError
from embedlab.core.registry import Registry
from embedlab.core.specs import parse_value

CLASSIFIERS: Registry[Callable[..., Any]] = Registry("model")

#: Grids for ``--search``, in the model's own parameter names.
SEARCH_SPACES: dict[str, dict[str, list]] = {
    "logreg": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "linear-svm": {"C": [0.001, 0.01, 0.1, 1.0, 10.0]},
    "svm": {"C": [0.3, 1.0, 3.0, 10.0, 30.0], "gamma": ["scale", 0.003, 0.03]},
    "knn": {"n_neighbors": [5, 15, 31], "weights": ["uniform", "distance"]},
    "random-forest": {"max_features": ["sqrt", 0.3], "min_samples_leaf": [1, 3]},
    "mlp": {"hidden_layer_sizes": [(128,), (256,), (256, 128)], "alpha": [1e-4, 1e-3, 1e-2]},
    "xgboost": {"max_depth": [3, 6], "learning_rate": [0.05, 0.1, 0.3], "n_estimators": [200, 400]},
}


def _pipeline(model: Any, scale: bool):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [("scale", StandardScaler())] if scale else []
    return Pipeline(steps + [("model", model)])


def _calibrated(estimator: Any):
    # SVC(probability=True) is deprecated; sigmoid calibration on held-out folds
    # is what it did, and ensemble=False keeps a single fitted SVM.
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(estimator, method="sigmoid", cv=5, ensemble=False)


@CLASSIFIERS.register("logreg")
def logreg(seed: int = 0, n_jobs: int | None = None):
    """Logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression

    return _pipeline(LogisticRegression(C=1.0, max_iter=5000, random_state=seed), scale=True)


@CLASSIFIERS.register("linear-svm")
def linear_svm(seed: int = 0, n_jobs: int | None = None):
    """Linear SVM, probabilities by sigmoid calibration on 5 folds."""
    from sklearn.svm import LinearSVC

    return _pipeline(_calibrated(LinearSVC(C=0.1, max_iter=20000, random_state=seed)), scale=True)


@CLASSIFIERS.register("svm")
def svm(seed: int = 0, n_jobs: int | None = None):
    """RBF-kernel SVM, probabilities by sigmoid calibration on 5 folds."""
    from sklearn.svm import SVC

    return _pipeline(_calibrated(SVC(C=3.0, gamma="scale", kernel="rbf", random_state=seed)), scale=True)


@CLASSIFIERS.register("knn")
def knn(seed: int = 0, n_jobs: int | None = None):
    """k nearest neighbours (distance-weighted) on standardised features."""
    from sklearn.neighbors import KNeighborsClassifier

    return _pipeline(KNeighborsClassifier(n_neighbors=15, weights="distance", n_jobs=n_jobs), scale=True)


@CLASSIFIERS.register("random-forest")
def random_forest(seed: int = 0, n_jobs: int | None = None):
    """Random forest; trees need no scaling."""
    from sklearn.ensemble import RandomForestClassifier

    return _pipeline(RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=n_jobs), scale=False)


@CLASSIFIERS.register("mlp")
def mlp(seed: int = 0, n_jobs: int | None = None):
    """A one-hidden-layer perceptron on standardised features."""
    from sklearn.neural_network import MLPClassifier

    return _pipeline(MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=500,
                                   random_state=seed), scale=True)


@CLASSIFIERS.register("xgboost")
def xgboost(seed: int = 0, n_jobs: int | None = None):
    """Gradient-boosted trees (XGBoost, histogram method); saved in XGBoost's own format."""
    from xgboost import XGBClassifier

    return _pipeline(XGBClassifier(n_estimators=300, max_depth=6, learning_rate=0.1, subsample=0.9,
                                   colsample_bytree=0.8, tree_method="hist", random_state=seed,
                                   n_jobs=n_jobs), scale=False)


def target_prefix(pipeline: Any) -> str:
    """Where plain parameter names go: the model step, or the estimator it calibrates."""
    from sklearn.calibration import CalibratedClassifierCV

    model = pipeline.named_steps["model"]
    return "model__estimator__" if isinstance(model, CalibratedClassifierCV) else "model__"


def model_parameters(name: str) -> list[str]:
    """The parameter names ``--param`` accepts for a model, without prefixes.

    >>> "C" in model_parameters("svm")
    True
    """
    pipe = CLASSIFIERS.create(name)
    prefix = target_prefix(pipe)
    return sorted(k[len(prefix):] for k in pipe.get_params(deep=True)
                  if k.startswith(prefix) and "__" not in k[len(prefix):])


def _qualify(pipeline: Any, name: str, params: dict[str, Any]) -> dict[str, Any]:
    prefix = target_prefix(pipeline)
    valid = pipeline.get_params(deep=True)
    out = {}
    for key, value in params.items():
        full = key if "__" in key else prefix + key
        if full not in valid:
            raise ModelError(f"model {name!r} has no parameter {key!r}; its parameters: "
                             f"{', '.join(model_parameters(name))}")
        out[full] = value
    return out


def create_classifier(name: str, params: dict[str, Any] | None = None, seed: int = 0,
                      n_jobs: int | None = None):
    """An unfitted pipeline for the classifier ``name`` with ``params`` set on its model.

    An unknown name raises :class:`~embedlab.core.errors.UnknownNameError` listing the
    available ones; an unknown parameter raises :class:`ModelError` listing the
    model's parameters.
    """
    pipe = CLASSIFIERS.get(name)(seed=seed, n_jobs=n_jobs)
    if params:
        pipe.set_params(**_qualify(pipe, name, params))
        check_param_values(pipe, name)
    return pipe


def check_param_values(pipe: Any, name: str) -> None:
    """Check every step's parameter values now, as scikit-learn would when fitting, so that
    ``-p C=abc`` is a usage error before any feature is computed."""
    from sklearn.base import BaseEstimator
    from sklearn.utils._param_validation import InvalidParameterError

    steps = [pipe, *(v for v in pipe.get_params(deep=True).values() if isinstance(v, BaseEstimator))]
    for step in steps:
        validate = getattr(step, "_validate_params", None)
        if validate is None or not hasattr(step, "_parameter_constraints"):  # XGBoost checks when fitting
            continue
        try:
            validate()
        except InvalidParameterError as exc:
            message = str(exc).split(" parameter of ", 1)
            what = message[1].split(" ", 1)[1] if len(message) == 2 else str(exc)
            raise OptionError(f"model {name!r}: --param {message[0].removeprefix('The ')} {what}") from None


def search_space(name: str, pipeline: Any, fixed: Iterable[str] = ()) -> dict[str, list]:
    """The ``--search`` grid for ``name`` in pipeline parameter names.

    Parameters the user fixed with ``--param`` are left out of the grid.
    """
    grid = SEARCH_SPACES.get(name, {})
    fixed = set(fixed)
    return {k: v for k, v in _qualify(pipeline, name, grid).items()
            if k not in fixed and k.split("__")[-1] not in fixed}


def supports_sample_weight(pipeline: Any) -> bool:
    """Whether the model step takes ``sample_weight`` (needed for ``--class-weight``)."""
    from sklearn.utils.validation import has_fit_parameter

    return has_fit_parameter(pipeline.named_steps["model"], "sample_weight")


def adapt_to_data(pipeline: Any, y: np.ndarray) -> None:
    """Shrink fold and neighbour counts that a small training set cannot satisfy."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neighbors import KNeighborsClassifier

    smallest = int(np.bincount(y).min()) if len(y) else 0
    for _, step in pipeline.steps:
        if isinstance(step, CalibratedClassifierCV) and isinstance(step.cv, int) and step.cv > smallest:
            if smallest < 2:
                raise ModelError("calibrated SVMs need at least 2 training images per class")
            step.set_params(cv=smallest)
        if isinstance(step, KNeighborsClassifier) and step.n_neighbors > len(y):
            step.set_params(n_neighbors=max(1, len(y)))


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["C=10", "gamma=scale"]`` -> ``{"C": 10, "gamma": "scale"}``.

    >>> parse_params(["C=10", "hidden_layer_sizes=(64,32)", "class_weight=none"])
    {'C': 10, 'hidden_layer_sizes': (64, 32), 'class_weight': None}
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise OptionError(f"--param {item!r} must look like key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        if not key:
            raise OptionError(f"--param {item!r} has no key")
        if value.lower() in ("none", "null"):  # scikit-learn's "no value", e.g. max_depth=None
            out[key] = None
        elif value[:1] + value[-1:] in ("()", "[]"):
            parts = [p for p in value[1:-1].split(",") if p.strip()]
            out[key] = tuple(parse_value(p) for p in parts)
        else:
            out[key] = parse_value(value)
    return out
