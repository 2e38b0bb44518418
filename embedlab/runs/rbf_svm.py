"""A binary RBF-kernel SVM pipeline's probabilities in NumPy, from arrays saved beside its skops file.

A classifier run's model opens through skops, which imports scikit-learn: 1.4 s of a cold
``predict`` on 2 cores, more than the face and the network take on one photo. For the pipeline
``svm`` fits (a ``StandardScaler``, then an RBF ``SVC`` calibrated by a sigmoid on held-out folds,
``CalibratedClassifierCV(..., ensemble=False)``), on two classes, :func:`save_arrays` writes what
its ``predict_proba`` reads (the scaler's mean and scale, the support vectors and their dual
coefficients, the intercept, gamma and the sigmoid's two parameters) to ``model.rbf.npz``, and
:class:`RbfSvmScorer` computes the same probabilities from them, within 1e-9, without importing
scikit-learn. The file holds arrays only and is read with ``allow_pickle=False``.

>>> import numpy as np
>>> from sklearn.calibration import CalibratedClassifierCV
>>> from sklearn.pipeline import Pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from sklearn.svm import SVC
>>> rng = np.random.default_rng(0)
>>> X, y = rng.normal(size=(60, 4)), np.arange(60) % 2
>>> X[y == 1] += 1.0
>>> svm = CalibratedClassifierCV(SVC(C=3.0), method="sigmoid", cv=3, ensemble=False)
>>> pipe = Pipeline([("scale", StandardScaler()), ("model", svm)]).fit(X, y)
>>> scorer = RbfSvmScorer(rbf_svm_arrays(pipe))
>>> bool(np.allclose(scorer.predict_proba(X), pipe.predict_proba(X), atol=1e-9, rtol=0))
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.core.errors import ModelError

RBF_SVM_FILE = "model.rbf.npz"
_KEYS = ("mean", "scale", "support_vectors", "dual_coef", "intercept", "gamma", "sigmoid_a", "sigmoid_b")


def rbf_svm_arrays(pipeline: Any) -> dict[str, np.ndarray] | None:
    """The arrays :class:`RbfSvmScorer` needs, or None if ``pipeline`` is not a binary calibrated RBF SVM."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    steps = [s for _, s in pipeline.steps if not (isinstance(s, str) and s == "passthrough")]
    if len(steps) != 2 or not isinstance(steps[0], StandardScaler) or not isinstance(steps[1], CalibratedClassifierCV):
        return None
    scaler, calibrated = steps
    if len(calibrated.classes_) != 2 or calibrated.method != "sigmoid" or len(calibrated.calibrated_classifiers_) != 1:
        return None
    inner = calibrated.calibrated_classifiers_[0]
    svc, calibrators = inner.estimator, inner.calibrators
    if not isinstance(svc, SVC) or svc.kernel != "rbf" or len(calibrators) != 1:
        return None
    n = scaler.n_features_in_
    return {"mean": np.asarray(scaler.mean_ if scaler.with_mean else np.zeros(n), float),
            "scale": np.asarray(scaler.scale_ if scaler.with_std else np.ones(n), float),
            "support_vectors": np.asarray(svc.support_vectors_, float),
            "dual_coef": np.asarray(svc.dual_coef_, float).ravel(),
            "intercept": np.asarray(svc.intercept_, float).ravel(),
            "gamma": np.asarray(float(svc._gamma)),
            "sigmoid_a": np.asarray(float(calibrators[0].a_)), "sigmoid_b": np.asarray(float(calibrators[0].b_))}


def save_arrays(pipeline: Any, folder: str | os.PathLike) -> list[str]:
    """Write ``model.rbf.npz`` into ``folder`` when ``pipeline`` is one :class:`RbfSvmScorer` reads."""
    arrays = rbf_svm_arrays(pipeline)
    if arrays is None:
        return []
    np.savez(Path(folder) / RBF_SVM_FILE, **arrays)
    return [RBF_SVM_FILE]


class RbfSvmScorer:
    """``predict_proba`` of a binary calibrated RBF SVM pipeline, from :func:`rbf_svm_arrays`."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.mean, self.scale = arrays["mean"], arrays["scale"]
        self.support_vectors, self.dual_coef = arrays["support_vectors"], arrays["dual_coef"]
        self.intercept, self.gamma = float(arrays["intercept"][0]), float(arrays["gamma"])
        self.a, self.b = float(arrays["sigmoid_a"]), float(arrays["sigmoid_b"])
        self._sv_squared = (self.support_vectors * self.support_vectors).sum(1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RbfSvmScorer:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in _KEYS}
        except Exception as exc:  # missing keys, not an npz, truncated
            raise ModelError(f"{path}: not a readable RBF SVM file ({type(exc).__name__}: {exc})") from None
        dim = arrays["mean"].shape
        if arrays["scale"].shape != dim or arrays["support_vectors"].ndim != 2 or \
                arrays["support_vectors"].shape[1:] != dim or arrays["dual_coef"].shape != arrays["support_vectors"][:, 0].shape:
            raise ModelError(f"{path}: the RBF SVM arrays do not fit together")
        return cls(arrays)

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        # scaled in the input's own precision, as StandardScaler does (float32 stays float32)
        Z = np.array(X, dtype=X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
        Z -= self.mean.astype(Z.dtype)
        Z /= self.scale.astype(Z.dtype)
        Z = Z.astype(np.float64)
        squared = (Z * Z).sum(1)[:, None] - 2 * Z @ self.support_vectors.T + self._sv_squared[None, :]
        return np.exp(-self.gamma * np.maximum(squared, 0.0)) @ self.dual_coef + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if np.asarray(X).shape[1] != self.n_features:
            raise ModelError(f"the RBF SVM reads {self.n_features} features, got {np.asarray(X).shape[1]}")
        p = 1.0 / (1.0 + np.exp(self.a * self.decision_function(X) + self.b))
        return np.column_stack([1.0 - p, p])
