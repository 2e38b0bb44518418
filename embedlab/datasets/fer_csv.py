"""The ``fer2013.csv`` form of FER-2013: ``emotion,pixels,Usage``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedlab.core.errors import DatasetError

FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}
FER_SIDE = 48


def is_fer_csv(path: Path) -> bool:
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = {c.strip().lower() for c in fh.readline().split(",")}
    return {"emotion", "pixels"} <= header


def read_fer_csv(path: str | Path) -> tuple["pd.DataFrame", np.ndarray]:  # noqa: F821
    """Read labels and decode every image at once, without writing files.

    Returns the table (``emotion`` id, ``label``, ``usage``) and an
    ``(N, 48, 48)`` ``uint8`` array of the images, row for row.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"emotion": "Int64", "pixels": str})
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read as CSV ({exc})") from None
    table.columns = [c.strip().lower() for c in table.columns]
    missing = {"emotion", "pixels"} - set(table.columns)
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    bad = table["emotion"].isna() | ~table["emotion"].between(0, 6)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{path}: row {row}: emotion must be 0..6, got {table['emotion'][row]!r}")
    flat = table["pixels"].fillna("").str.split()
    lengths = flat.str.len()
    wrong = lengths != FER_SIDE * FER_SIDE
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0])
        raise DatasetError(
            f"{path}: row {row}: expected {FER_SIDE * FER_SIDE} pixel values, got {lengths[row]}"
        )
    pixels = np.array(flat.tolist(), dtype=np.int32)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise DatasetError(f"{path}: pixel values must lie in 0..255")
    images = pixels.astype(np.uint8).reshape(-1, FER_SIDE, FER_SIDE)
    usage = table["usage"] if "usage" in table.columns else pd.Series(["Training"] * len(table))
    out = pd.DataFrame(
        {
            "emotion": table["emotion"].astype(int),
            "label": [FER_EMOTIONS[i] for i in table["emotion"].astype(int)],
            "usage": usage.astype(str).str.strip(),
        }
    )
    return out, images


def write_fer_csv(path: str | Path, images: np.ndarray, labels: list[str], usages: list[str]) -> Path:
    """Write images in the ``fer2013.csv`` form (used to build test fixtures).

    >>> import numpy as np, tempfile, os
    >>> p = write_fer_csv(os.path.join(tempfile.mkdtemp(), "f.csv"),
    ...                   np.zeros((1, 48, 48), np.uint8), ["happy"], ["Training"])
    >>> read_fer_csv(p)[0]["label"].tolist()
    ['happy']
    """
    import pandas as pd

    rows = {
        "emotion": [FER_EMOTIONS.index(lbl) for lbl in labels],
        "pixels": [" ".join(map(str, im.reshape(-1).tolist())) for im in np.asarray(images)],
        "Usage": list(usages),
    }
    path = Path(path)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
