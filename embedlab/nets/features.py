"""A trained network's penultimate layer as a feature: ``--features cnn:results/runs/NAME``.

:class:`embedlab.features.cnn.CnnEmbedding` hands over to these functions
when its ``backbone`` is a network run folder, so classical models and UMAP
can work on what a network learnt.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.nets.run import NetworkRun, is_network_run, load_network_run

__all__ = ["is_network_run", "network_run_fingerprint", "network_run_dim", "network_run_features",
           "open_feature_run"]


@lru_cache(maxsize=8)
def open_feature_run(path: str) -> NetworkRun:
    return load_network_run(path)


def network_run_fingerprint(path: str) -> dict[str, Any]:
    """What identifies the features: the weights' content, not the folder's place."""
    from embedlab.features.encoding import _file_digest

    run = open_feature_run(str(path))
    return {"network": run.params["model"], "model_sha256": _file_digest(str(Path(path) / "model.pt"))}


def network_run_dim(path: str) -> int:
    return open_feature_run(str(path)).embedding_dim


def network_run_features(path: str, images: list[np.ndarray]) -> np.ndarray:
    """Penultimate-layer features of decoded RGB images, ``float32 (n, dim)``."""
    return open_feature_run(str(path)).embed_images(images).astype(np.float32)
