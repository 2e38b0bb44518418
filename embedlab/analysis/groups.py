"""Which faces are real and which generated, and which emotion each shows.

A row's *origin* comes from its label where the dataset labels it (the 140k
set's ``real``/``fake`` folders); otherwise from the dataset as a whole: a
dataset named like ``synthetic-emotions`` holds generated faces, or the
caller names the generated datasets outright.

>>> dataset_is_generated("synthetic-emotions"), dataset_is_generated("fer2013")
(True, False)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

REAL, GENERATED = "real", "generated"
#: labels that say what a face is rather than what it shows
REAL_LABELS = frozenset({"real", "genuine", "authentic"})
GENERATED_LABELS = frozenset({"fake", "generated", "synthetic", "ai"})
#: words in a dataset's name that mark all of its faces as generated
GENERATED_WORDS = frozenset({"synthetic", "generated", "fake", "fakes", "gan", "stylegan", "diffusion",
                             "sd15", "midjourney", "dalle"})
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def dataset_is_generated(name: str | Path, generated: Iterable[str] | None = None) -> bool:
    """Whether a dataset (by name or path) holds only generated faces.

    With ``generated`` (names or paths), exactly those count; otherwise a
    dataset counts when a word of its name is one of :data:`GENERATED_WORDS`
    and none says ``real``.
    """
    path = Path(str(name))
    if generated is not None:
        wanted = {str(g).rstrip("/") for g in generated}
        names = {Path(g).name for g in wanted}
        return str(name).rstrip("/") in wanted or path.name in names or _resolved(path) in {
            _resolved(Path(g)) for g in wanted}
    words = set(re.split(r"[^a-z0-9]+", path.name.lower()))
    return bool(words & GENERATED_WORDS) and not words & REAL_LABELS  # "real-vs-fake" is mixed


def _resolved(path: Path) -> str:
    try:
        return str(path.expanduser().resolve())
    except OSError:
        return str(path)


def origin_of_labels(labels: Sequence[str], dataset_generated: bool) -> np.ndarray:
    """``real``/``generated`` per row: from the label where it says so, else the dataset's."""
    default = GENERATED if dataset_generated else REAL
    lower = pd.Series(list(labels), dtype=object).astype(str).str.lower()
    out = np.full(len(lower), default, dtype=object)
    out[lower.isin(REAL_LABELS).to_numpy()] = REAL
    out[lower.isin(GENERATED_LABELS).to_numpy()] = GENERATED
    return out


def combine_tables(tables: Sequence[pd.DataFrame], generated: Iterable[str] | None = None) -> pd.DataFrame:
    """Stack dataset tables (from ``load`` or ``encode``) with ``dataset``, ``origin`` and ``emotion``.

    ``dataset`` is each table's ``attrs["name"]`` (made unique); ``emotion``
    is the label where the label is an emotion, else None. Columns that not
    every table has are kept and left empty where missing.

    >>> from embedlab import datasets
    >>> t = combine_tables([datasets.load("data/sample/real-vs-fake"),
    ...                     datasets.load("data/sample/synthetic-emotions")])
    >>> t.groupby("dataset")["origin"].agg(lambda s: sorted(set(s))).to_dict()
    {'real-vs-fake': ['generated', 'real'], 'synthetic-emotions': ['generated']}
    """
    generated = None if generated is None else list(generated)
    parts, seen = [], {}
    for table in tables:
        name = str(table.attrs.get("name") or "dataset")
        seen[name] = seen.get(name, 0) + 1
        unique = name if seen[name] == 1 else f"{name}-{seen[name]}"
        root = table.attrs.get("root", name)
        is_gen = dataset_is_generated(name, generated) or (
            generated is not None and dataset_is_generated(root, generated))
        part = table.copy()
        part.insert(0, "dataset", unique)
        part["origin"] = origin_of_labels(part["label"], is_gen)
        lower = part["label"].astype(str).str.lower()
        part["emotion"] = lower.where(lower.isin(EMOTIONS), None).astype(object)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["dataset", "image_id", "path", "label", "split", "hash", "origin", "emotion"])
    out = pd.concat(parts, ignore_index=True, sort=False)
    for col in ("label", "split", "dataset", "origin", "emotion", "image_id", "path"):
        if col in out:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out
