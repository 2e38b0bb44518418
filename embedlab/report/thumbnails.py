"""Small WebP thumbnails as data URIs, so the page needs no image files.

The hover card's thumbnails share a size budget: points are taken in a
stratified order (round robin over groups) until the budget is spent, so a
budget that holds only some of them still covers every group evenly.
"""

from __future__ import annotations

import base64
import io
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.core.errors import ImageReadError
from embedlab.datasets.images import read_image
from embedlab.report.page import esc

#: data URI prefixes the page's script accepts as a thumbnail
URI_PREFIXES = ("data:image/webp;base64,", "data:image/jpeg;base64,")


def thumbnail_uri(path: str, size: int = 64, quality: int = 70) -> str | None:
    """``data:image/webp;base64,...`` of the image fitted in ``size`` pixels; None if unreadable.

    WebP rather than JPEG: at 48-64 pixels a JPEG's headers weigh as much as the picture.
    """
    from PIL import Image

    try:
        image = Image.fromarray(read_image(path))
    except (ImageReadError, OSError, ValueError):
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=quality, method=4)
    return URI_PREFIXES[0] + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumb_html(uri: str | None, caption: str, extra: str = "", css: str = "thumb", path: str = "") -> str:
    """A ``<figure>`` of a thumbnail and its caption; ``extra`` is markup (its data already escaped)."""
    img = f'<img src="{esc(uri)}" alt="">' if uri else '<img alt="">'
    more = f"<div>{extra}</div>" if extra else ""
    tip = f' title="{esc(path)}"' if path else ""
    return f'<figure class="{css}"{tip}>{img}<figcaption>{esc(caption)}</figcaption>{more}</figure>'


def stratified_order(groups: Sequence, seed: int = 0) -> np.ndarray:
    """Every row position, ordered round robin over the groups (random within each)."""
    keys = pd.Series(list(groups), dtype=object).astype(str)
    if keys.empty:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    per_group = [rng.permutation(np.flatnonzero((keys == k).to_numpy())) for k in pd.unique(keys)]
    depth = max(len(g) for g in per_group)
    # column d of the padded matrix holds each group's d-th pick: reading it row-major is the round robin
    padded = np.full((depth, len(per_group)), -1, dtype=np.int64)
    for j, g in enumerate(per_group):
        padded[:len(g), j] = g
    flat = padded.ravel()
    return flat[flat >= 0]


def stratified_sample(groups: Sequence, cap: int, seed: int = 0) -> np.ndarray:
    """Up to ``cap`` row positions spread evenly over the groups (round robin, random within)."""
    if cap <= 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(stratified_order(groups, seed)[:cap])


def budgeted_thumbnails(items: Iterable[tuple[int, str, str]], budget_bytes: int) -> tuple[dict[str, str], int]:
    """Thumbnails of ``(point, path, content hash)`` in the given order until ``budget_bytes`` is spent.

    Returns ``{str(point): uri}`` and the bytes used; images with the same
    hash are encoded once.
    """
    thumbs: dict[str, str] = {}
    by_hash: dict[str, str | None] = {}
    used = 0
    for point, path, digest in items:
        if digest not in by_hash:
            by_hash[digest] = thumbnail_uri(path)
        uri = by_hash[digest]
        if uri is None:
            continue
        if used + len(uri) > budget_bytes:
            break
        thumbs[str(int(point))] = uri
        used += len(uri)
    return thumbs, used
