"""Simple image statistics: raw grey pixels and the radial power spectrum."""

from __future__ import annotations

import numpy as np

from embedlab.core.errors import FeatureError
from embedlab.features.base import EXTRACTORS, FeatureExtractor


def to_grey(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` greyscale ``float32`` in [0, 1]."""
    from PIL import Image

    pil = Image.fromarray(image).convert("L")
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(pil, dtype=np.float32) / 255.0


@EXTRACTORS.register("pixels")
class Pixels(FeatureExtractor):
    """The image resized to ``size`` x ``size`` greyscale, flattened: the plain baseline.

    >>> import numpy as np
    >>> Pixels(size=8).extract(np.zeros((20, 30, 3), np.uint8))[0].shape
    (64,)
    """

    name = "pixels"
    primary_param = "size"

    def __init__(self, size: int = 32):
        self.size = size

    def validate(self) -> None:
        if not isinstance(self.size, int) or not 4 <= self.size <= 512:
            raise FeatureError(f"feature 'pixels': size must be an integer in 4..512, got {self.size!r}")

    @property
    def dim(self) -> int:
        return self.size * self.size

    def extract(self, image):
        return to_grey(image, self.size).reshape(-1), {}


def radial_power_spectrum(grey: np.ndarray) -> np.ndarray:
    """Azimuthal mean of the log power spectrum, one value per integer radius.

    For an ``n`` x ``n`` image the result has ``n // 2`` values, from the
    lowest frequency (radius 0) to the Nyquist radius.

    >>> radial_power_spectrum(np.ones((8, 8), np.float32)).shape
    (4,)
    """
    n = grey.shape[0]
    spectrum = np.fft.fftshift(np.fft.fft2(grey - grey.mean()))
    power = np.log1p(np.abs(spectrum) ** 2)
    yy, xx = np.indices(power.shape)
    radius = np.hypot(yy - n // 2, xx - n // 2).astype(np.int64)
    sums = np.bincount(radius.ravel(), weights=power.ravel())
    counts = np.bincount(radius.ravel())
    return (sums / np.maximum(counts, 1))[: n // 2].astype(np.float32)


@EXTRACTORS.register("spectrum")
class Spectrum(FeatureExtractor):
    """Azimuthally averaged log power spectrum of the greyscale image.

    GAN upsampling leaves periodic traces that show up at high spatial
    frequencies (Durall et al., CVPR 2020); the image is first resized to
    ``size`` x ``size`` so that every image gives ``size // 2`` values.
    """

    name = "spectrum"
    primary_param = "size"

    def __init__(self, size: int = 256):
        self.size = size

    def validate(self) -> None:
        if not isinstance(self.size, int) or not 16 <= self.size <= 2048:
            raise FeatureError(f"feature 'spectrum': size must be an integer in 16..2048, got {self.size!r}")

    @property
    def dim(self) -> int:
        return self.size // 2

    def extract(self, image):
        return radial_power_spectrum(to_grey(image, self.size)), {}
