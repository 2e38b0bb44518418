"""embedlab: study real and AI-generated faces.

Nothing heavy is imported here: dlib, torch and UMAP load when first used.

>>> import embedlab
>>> sorted(embedlab.datasets.load("data/sample/synthetic-emotions")["label"].unique())
['angry', 'happy', 'neutral', 'sad', 'surprise']
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    # through embedlab.api, which also lets the cnn feature read network runs
    "encode": ("embedlab.api", "encode"),
    "feature_matrix": ("embedlab.compute.extraction", "feature_matrix"),
    "fit": ("embedlab.api", "fit"),
    "load_run": ("embedlab.api", "load_run"),
    "fit_stack": ("embedlab.api", "fit_stack"),
    "FeatureCache": ("embedlab.compute.cache", "FeatureCache"),
    "datasets": ("embedlab.datasets", None),
    "features": ("embedlab.features", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'embedlab' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value
