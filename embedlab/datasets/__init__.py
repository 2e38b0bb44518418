"""Loading face datasets into one table, whatever their layout.

>>> from embedlab import datasets
>>> df = datasets.load("data/sample/real-vs-fake")
>>> df.attrs["layout"], sorted(df["label"].unique())
('kaggle-140k', ['fake', 'real'])
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from embedlab.datasets.inspection import DatasetReport, inspect_dataset
from embedlab.datasets.layouts import LAYOUTS, detect_layout
from embedlab.errors import DatasetError
from embedlab.images import content_hash, fer_csv_pixels, is_csv_row, split_csv_row

__all__ = ["load", "sample_per_class", "inspect_dataset", "DatasetReport", "LAYOUTS", "COLUMNS"]

#: Columns every loaded dataset has, in this order (``subset`` only for FER-2013).
COLUMNS = ["image_id", "path", "label", "split", "hash"]


def load(path: str | os.PathLike, layout: str = "auto") -> pd.DataFrame:
    """One row per image: ``image_id``, ``path``, ``label``, ``split``, ``hash``.

    ``image_id`` is stable (the path relative to the dataset root, or the row
    of a CSV); ``hash`` is the content hash that keys the feature cache. The
    layout chosen is in ``df.attrs["layout"]``, the root in ``df.attrs["root"]``.
    Layouts: ``auto`` or one of ``LAYOUTS.names()``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if layout == "auto":
        layout, root = detect_layout(path)
    else:
        entry = LAYOUTS.create(layout)
        root = entry.detect(path)
        if root is None:
            raise DatasetError(f"{path}: does not look like the {layout!r} layout ({entry.description})")
    df = LAYOUTS.create(layout).list(root)
    if df.empty:
        raise DatasetError(f"{root}: no images found (layout {layout})")
    df["hash"] = _hashes(df["path"].tolist())
    df["split"] = df["split"].astype(object).where(df["split"].notna(), None)
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[COLUMNS + extra].reset_index(drop=True)
    df.attrs.update(layout=layout, root=str(root.resolve()), name=_dataset_name(root))
    return df


def _dataset_name(root: Path) -> str:
    root = root.resolve()
    return root.stem if root.is_file() else root.name


def _hashes(uris: list[str]) -> list[str]:
    out = []
    for uri in uris:
        if is_csv_row(uri):
            csv_path, row = split_csv_row(uri)
            out.append(content_hash(fer_csv_pixels(csv_path)[row].tobytes()))
            continue
        try:
            out.append(content_hash(Path(uri).read_bytes()))
        except OSError as exc:
            raise DatasetError(f"{uri}: cannot read ({exc.strerror or exc})") from None
    return out


def sample_per_class(df: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """At most ``n`` images per (split, label), picked reproducibly.

    >>> import pandas as pd
    >>> d = pd.DataFrame({"label": list("aaab"), "split": [None] * 4, "image_id": list("wxyz")})
    >>> sample_per_class(d, 2)["label"].value_counts().to_dict()
    {'a': 2, 'b': 1}
    """
    if n < 1:
        raise DatasetError(f"--per-class must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    shuffled = df.iloc[order]
    keys = [shuffled["split"].fillna("").astype(str), shuffled["label"].astype(str)]
    picked = shuffled.groupby(keys, sort=False).head(n)
    out = picked.sort_values("image_id", kind="stable")
    out.attrs.update(df.attrs)
    return out
