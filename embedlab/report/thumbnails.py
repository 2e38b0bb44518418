"""Small JPEG thumbnails as data URIs, so the page needs no image files."""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np
import pandas as pd

from embedlab.core.errors import ImageReadError
from embedlab.datasets.images import read_image


def thumbnail_uri(path: str, size: int = 64, quality: int = 70) -> str | None:
    """``data:image/jpeg;base64,...`` of the image fitted in ``size`` pixels; None if unreadable."""
    from PIL import Image

    try:
        image = Image.fromarray(read_image(path))
    except (ImageReadError, OSError, ValueError):
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def stratified_sample(groups: Sequence, cap: int, seed: int = 0) -> np.ndarray:
    """Up to ``cap`` row positions spread evenly over the groups (round robin, random within)."""
    keys = pd.Series(list(groups), dtype=object).astype(str)
    if cap <= 0 or keys.empty:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    per_group = [rng.permutation(np.flatnonzero((keys == k).to_numpy())) for k in pd.unique(keys)]
    picked: list[int] = []
    depth = 0
    while len(picked) < cap and any(depth < len(g) for g in per_group):
        for g in per_group:
            if depth < len(g) and len(picked) < cap:
                picked.append(int(g[depth]))
        depth += 1
    return np.sort(np.asarray(picked, dtype=np.int64))
