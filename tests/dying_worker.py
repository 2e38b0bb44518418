"""A feature extractor whose worker process dies on chosen images, as the OOM killer would kill it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np

from embedlab.features.base import FeatureExtractor


class DiesOnBrightImages(FeatureExtractor):
    """The mean pixel; kills its own process on an all-white image (every time) and on an all-grey
    image the first time only (``marker`` records that it died once)."""

    name = "dies-on"
    version = "1"

    def __init__(self, marker: str = ""):
        self.marker = marker

    @property
    def dim(self) -> int:
        return 1

    def extract(self, image: np.ndarray):
        mean = float(image.mean())
        if mean > 250 or (mean == 128.0 and not Path(self.marker).exists()):
            if mean == 128.0:
                Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return np.array([mean], np.float32), {}


class DiesOnPrepare(DiesOnBrightImages):
    """Kills every worker process while it loads (``prepare``), before any image: a pool that cannot start."""

    name = "dies-on-prepare"

    def __init__(self):
        super().__init__()
        self.parent = os.getpid()

    def prepare(self) -> None:
        if os.getpid() != self.parent:
            os.kill(os.getpid(), signal.SIGKILL)


class InputDiesOnWhite:
    """Builds a network input extractor that kills its worker on an all-white image, every time
    (a picklable factory, so that spawned workers import this module and find the class)."""

    @staticmethod
    def make(maker):
        return NetworkInputDiesOnWhite(**maker.get_params())


from embedlab.nets.images import NetworkInput  # noqa: E402  (beside the extractor it extends)


class NetworkInputDiesOnWhite(NetworkInput):
    def extract(self, image: np.ndarray):
        if image.mean() > 250:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().extract(image)
