"""Tables of images, one row each: from a dataset folder or CSV, from loose files, or as given.

>>> from embedlab.datasets.tables import load
>>> df = load("data/sample/real-vs-fake")
>>> df.attrs["layout"], sorted(df["label"].unique())
('kaggle-140k', ['fake', 'real'])
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedlab.core.errors import DatasetError, DatasetPathError, UsageError
from embedlab.core.io import atomic_write_bytes
from embedlab.datasets.hash_index import FileHashIndex
from embedlab.datasets.images import file_status, limits
from embedlab.datasets.layouts import LAYOUTS, SPLIT_ALIASES, detect_layout, images_in
from embedlab.datasets.names import shown_path
from embedlab.datasets.sources import fill_sources

#: Columns every loaded dataset has, in this order (``subset`` only for FER-2013). ``hash`` is None
#: where the file gives no image; ``read_reason`` (one of ``datasets.images.READ_REASONS``) and
#: ``read_error`` (a message naming the file) say why, and every command reports such rows.
COLUMNS = ["image_id", "path", "label", "split", "hash", "read_reason", "read_error"]
#: folder names that hold files rather than name a class: labels taken from them are suspect
CONTAINER_NAMES = {"examples", "example", "tests", "test_images", "testdata", "docs", "doc", "src", "images",
                   "imgs", "img", "pictures", "photos", "data", "files", "misc", "tmp", "temp", "output",
                   "outputs", "results", "samples", "sample", "assets", "static", "media", "downloads"}


def load(path: str | os.PathLike, layout: str = "auto", *,
         hash_index: FileHashIndex | str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per image: ``image_id``, ``path``, ``label``, ``split``, ``hash``.

    ``image_id`` is stable (the path relative to the dataset root, or the row
    of a CSV); ``hash`` is the content hash that keys the feature cache. The
    layout chosen is in ``df.attrs["layout"]``, the root in ``df.attrs["root"]``.
    Layouts: ``auto`` or one of ``LAYOUTS.names()``.

    Every file is read and hashed, unless ``hash_index`` (a :class:`FileHashIndex` or its file,
    such as a feature cache's ``file-hashes.parquet``) remembers it unchanged since it was last
    hashed: same device, inode, size, modification and change time.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetPathError(f"{path}: no such file or folder")
    if layout == "auto":
        layout, root = detect_layout(path)
    else:
        entry = LAYOUTS.create(layout)
        root = entry.detect(path)
        if root is None:
            raise DatasetPathError(f"{path}: does not look like the {layout!r} layout ({entry.description})")
    df = LAYOUTS.create(layout).list(root)
    if df.empty:
        raise DatasetError(f"{root}: no images found (layout {layout})")
    df = with_file_status(df, hash_index)
    df["split"] = df["split"].astype(object).where(df["split"].notna(), None)
    df = fill_sources(df, default=_dataset_name(root))
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[COLUMNS + extra].reset_index(drop=True)
    df.attrs.update(layout=layout, root=shown_path(root.resolve()), name=_dataset_name(root))
    df.attrs["warnings"] = load_warnings(df)
    return df


def load_warnings(df: pd.DataFrame) -> list[str]:
    """What may be wrong with the labels auto-detection found: class folders named like containers
    (``examples/``, ``tests/``), and the same image (by content) under different labels."""
    out = []
    if df.attrs.get("layout") == "class-folders":
        odd = sorted({str(v) for v in df["label"].dropna().unique()
                      if str(v).lower() in CONTAINER_NAMES or str(v).lower() in SPLIT_ALIASES})
        if odd:
            out.append(f"labels taken from folder names that look like containers, not classes: {', '.join(odd)}; "
                       "if the folders do not each hold one class, use --layout images (unlabelled) or a "
                       "manifest CSV (path,label)")
    labelled = df[df["label"].notna()]
    per_hash = labelled.groupby("hash")["label"].nunique()
    conflicting = per_hash[per_hash > 1].index
    if len(conflicting):
        same = labelled.loc[labelled["hash"] == conflicting[0], "image_id"].astype(str).tolist()[:2]
        n = len(conflicting)
        out.append(f"{n} image{'s' * (n != 1)} appear{'s' * (n == 1)} under two or more labels ({' and '.join(same)} "
                   "are the same image), which contradict each other for a model: remove the copies "
                   "(`embedlab datasets inspect` lists them)")
    return out


def _dataset_name(root: Path) -> str:
    root = root.resolve()
    return shown_path(root.stem if root.is_file() else root.name)


def with_file_status(df: pd.DataFrame, hash_index: FileHashIndex | str | os.PathLike | None = None) -> pd.DataFrame:
    """``df`` with ``hash``, ``read_reason`` and ``read_error`` per row: a bad file is a row, never an error."""
    index = hash_index if hash_index is None or isinstance(hash_index, FileHashIndex) else FileHashIndex(hash_index)
    max_bytes = limits()[0]
    status = [file_status(uri, index, max_bytes) for uri in df["path"]]
    if index is not None:
        index.save()
    df["hash"], df["read_reason"], df["read_error"] = (
        [s[i] for s in status] if status else [] for i in range(3))
    return df


def sample_per_class(df: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """At most ``n`` images per (split, label), picked reproducibly.

    >>> import pandas as pd
    >>> d = pd.DataFrame({"label": list("aaab"), "split": [None] * 4, "image_id": list("wxyz")})
    >>> sample_per_class(d, 2)["label"].value_counts().to_dict()
    {'a': 2, 'b': 1}
    """
    if n < 1:
        raise UsageError(f"--per-class must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    shuffled = df.iloc[order]
    keys = [shuffled["split"].fillna("").astype(str), shuffled["label"].astype(str)]
    picked = shuffled.groupby(keys, sort=False).head(n)
    out = picked.sort_values("image_id", kind="stable")
    out.attrs.update(df.attrs)
    return out


def as_table(data: Any, layout: str = "auto", *,
             hash_index: FileHashIndex | str | os.PathLike | None = None) -> pd.DataFrame:
    """``data`` as a table: a dataset path is loaded, a table (from :func:`load`) is used as it is,
    and images given one by one (paths, numpy arrays, PIL images, or a list of them) make an
    unlabelled table (:func:`image_table`).

    >>> as_table(load("data/sample/fer2013")).index[0]
    0
    >>> import numpy as np
    >>> as_table(np.zeros((48, 48), np.uint8))["image_id"].tolist()
    ['array-0']
    """
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    if is_in_memory_image(data) or isinstance(data, (list, tuple)):
        return image_table(data)
    return load(data, layout=layout, hash_index=hash_index)


def is_in_memory_image(value: Any) -> bool:
    """A numpy array or a PIL image (checked without importing PIL)."""
    return isinstance(value, np.ndarray) or any(c.__module__.startswith("PIL.") for c in type(value).__mro__)


def stored_image(image: Any, index: int) -> dict[str, str]:
    """An in-memory image written once as a PNG named by its content (in the system's temporary
    folder), so that it is read, hashed and cached like any file; returns its table row."""
    from PIL import Image

    kind = "array" if isinstance(image, np.ndarray) else "image"
    array = np.asarray(image if kind == "array" else image.convert("RGB"))
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise UsageError(f"image {index}: expected a uint8 array of shape HxW, HxWx3 or HxWx4, got "
                         f"{array.dtype} {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array).save(buffer, "PNG")
    data = buffer.getvalue()
    folder = Path(tempfile.gettempdir()) / "embedlab-images"
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    if not path.is_file():
        atomic_write_bytes(path, data, fsync=False)
    return {"image_id": f"{kind}-{index}", "path": str(path)}


def image_table(paths: Any, hash_index: FileHashIndex | None = None) -> pd.DataFrame:
    """A table of images (``image_id``, ``path``, ``label``, ``split``, ``hash``) from files, folders,
    numpy arrays (``HxW`` or ``HxWxC`` uint8) and PIL images, one or a list of them; a file
    ``hash_index`` remembers unchanged is not read again to hash it.

    Folders are searched recursively for images; ``label`` is unknown (None). In-memory images
    get the ids ``array-N`` or ``image-N`` (their place in the list).
    A file that gives no image (unreadable, a broken link...) is a row with its ``read_reason``.
    """
    if isinstance(paths, (str, os.PathLike)) or is_in_memory_image(paths):
        paths = [paths]
    rows = []
    for i, item in enumerate(paths):
        if is_in_memory_image(item):
            rows.append(stored_image(item, i))
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise UsageError(f"image {i}: expected a path, a numpy array or a PIL image, got {type(item).__name__}")
        p = Path(item)
        if p.is_dir():
            found = images_in(p)
            if not found:
                raise DatasetError(f"{p}: no images in this folder")
            shown = Path(shown_path(p))  # the files are listed as shown (datasets.names)
            rows += [{"image_id": f"{shown.name}/{f.relative_to(shown).as_posix()}", "path": str(f)} for f in found]
        elif os.path.lexists(p):  # a file, or a broken link or other non-file named by the user
            rows.append({"image_id": shown_path(p.name), "path": shown_path(p)})
        else:
            raise DatasetPathError(f"{p}: no such file or folder")
    table = pd.DataFrame(rows, columns=["image_id", "path"])
    table["label"] = None
    table["split"] = None
    return with_file_status(table, hash_index)[COLUMNS]


def images_of(data: Any, hash_index: FileHashIndex | None = None) -> pd.DataFrame:
    """The images to predict on: a table as it is, or image files, folders, arrays and PIL images."""
    return data.reset_index(drop=True) if isinstance(data, pd.DataFrame) else image_table(data, hash_index)
