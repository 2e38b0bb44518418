"""A trained network's penultimate layer as a feature: ``--features cnn:results/runs/NAME``.

Importing this module plugs :class:`NetworkRunEmbedding` into the ``cnn``
feature (:func:`embedlab.features.cnn.register_backbone`), so that classical
models and UMAP can work on what a network learnt; the feature layer itself
never imports the networks.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.core.io import file_digest
from embedlab.features.cnn import CnnEmbedding, register_backbone
from embedlab.nets.run import NetworkRun, is_network_run, load_network_run
from embedlab.nets.training import MODEL_FILE

__all__ = ["NetworkRunEmbedding", "is_network_run", "network_run_fingerprint", "network_run_dim",
           "network_run_features", "open_feature_run"]


@lru_cache(maxsize=8)
def open_feature_run(path: str) -> NetworkRun:
    return load_network_run(path)


def network_run_fingerprint(path: str) -> dict[str, Any]:
    """What identifies the features: the weights' content, not the folder's place."""
    run = open_feature_run(str(path))
    return {"network": run.params["model"], "model_sha256": file_digest(str(Path(path) / MODEL_FILE))}


def network_run_dim(path: str) -> int:
    return open_feature_run(str(path)).embedding_dim


def network_run_features(path: str, images: list[np.ndarray]) -> np.ndarray:
    """Penultimate-layer features of decoded RGB images, ``float32 (n, dim)``."""
    return open_feature_run(str(path)).embed_images(images).astype(np.float32)


class NetworkRunEmbedding(CnnEmbedding):
    """``cnn:RUN_FOLDER``: the penultimate layer of a trained image network.

    Named ``cnn`` like its parent, with the same parameters, so that its cache
    keys are those the ``cnn`` feature always gave network runs.
    """

    def cache_params(self):
        return {"backbone": "network-run"}  # the run's weights are in the fingerprint, not its path

    def validate(self) -> None:
        """A network run folder needs no torchvision weights."""

    def fingerprint(self) -> dict[str, Any]:
        return network_run_fingerprint(self.backbone)

    @property
    def dim(self) -> int:
        return network_run_dim(self.backbone)

    def prepare(self) -> None:
        """The run's network loads when first used."""

    def extract_many(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, dict]]:
        return [(f, {}) for f in network_run_features(self.backbone, images)]


def register() -> None:
    """Plug network run folders into the ``cnn`` feature: the ``embedlab.backbones`` entry point."""
    register_backbone(is_network_run, NetworkRunEmbedding)


register()
