"""The one split policy: which images train a model, which pick its settings, which score it.

The dataset's own splits are used: ``train``, ``valid`` and ``test``. A
dataset without a test split gets a stratified 20% of its training images
with a fixed seed; :func:`split_roles` also carves a validation share from
``train`` when there is none. Where the dataset names the source of its
fakes, the strata are label and source, so every generator with a few
images is held out in proportion (a source with fewer than two joins its label).

>>> import pandas as pd
>>> t = pd.DataFrame({"label": list("ababababab"), "split": [None] * 10})
>>> roles, how = assign_splits(t)
>>> roles.value_counts().to_dict(), how["source"]
({'train': 8, 'test': 2}, 'stratified')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedlab.core.errors import DatasetError, ModelError

SPLITS = ("train", "valid", "test")
#: share of the training images held out as the test set when a dataset has none
TEST_SIZE = 0.2


def _empty_split_folders(table: pd.DataFrame) -> list[str]:
    """Split folders that exist under the dataset root but gave no images."""
    root = Path(table.attrs.get("root", ""))
    if not root.is_dir():
        return []
    present = set(table["split"].dropna())
    empty = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        alias = {"training": "train", "val": "valid", "validation": "valid", "testing": "test"}.get(
            sub.name.lower(), sub.name.lower())
        if alias in SPLITS and alias not in present:
            empty.append(str(sub))
    return empty


def strata(table: pd.DataFrame, rows: pd.Index) -> pd.Series:
    """What a held-out share keeps the proportions of: the label, or label and source of fakes.

    >>> t = pd.DataFrame({"label": ["fake"] * 5 + ["real"] * 2, "source": ["a", "a", "b", "b", "c", "real", "real"]})
    >>> strata(t, t.index).tolist()
    ['fake/a', 'fake/a', 'fake/b', 'fake/b', 'fake', 'real/real', 'real/real']
    """
    labels = table.loc[rows, "label"].astype(str)
    if "source" not in table.columns:
        return labels
    keys = labels + "/" + table.loc[rows, "source"].astype(str)
    counts = keys.map(keys.value_counts())
    return keys.where(counts >= 2, labels)


def assign_splits(table: pd.DataFrame, seed: int = 0) -> tuple[pd.Series, dict[str, Any]]:
    """The role of each image (train/valid/test) and how the roles were decided."""
    split = table["split"]
    where = table.attrs.get("root", "the dataset")
    empty = _empty_split_folders(table)
    if empty:
        raise DatasetError(f"{where}: split folder(s) {', '.join(empty)} hold no images; "
                           "fill them or remove them")
    has = split.notna()
    if has.any() and not has.all():
        raise DatasetError(f"{where}: {int((~has).sum())} images have no split while others do")
    if has.any():
        unknown = sorted(set(split) - set(SPLITS))
        if unknown:
            raise DatasetError(f"{where}: unknown split name(s) {', '.join(unknown)}")
        if not (split == "train").any():
            raise DatasetError(f"{where}: no 'train' split (found {', '.join(sorted(set(split)))})")
        if (split == "test").any():
            return split.astype(str), {"source": "dataset"}
    roles = pd.Series("train", index=table.index, dtype=object)
    if has.any():
        roles[split == "valid"] = "valid"
    pool = roles.index[roles == "train"]
    labels = table.loc[pool, "label"].astype(str)
    counts = labels.value_counts()
    if counts.min() < 2:
        raise ModelError(f"{where}: class {counts.idxmin()!r} has {int(counts.min())} training image(s); "
                         "at least 2 per class are needed to hold out a stratified test set")
    from sklearn.model_selection import train_test_split

    keys = strata(table, pool)
    if keys.value_counts().min() < 2:  # a label of one image with others split by source: by label only
        keys = labels
    n_test = max(int(round(TEST_SIZE * len(pool))), keys.nunique())
    _, test_idx = train_test_split(pool, test_size=n_test, stratify=keys, random_state=seed)
    roles[test_idx] = "test"
    return roles, {"source": "stratified", "test_size": TEST_SIZE, "seed": seed,
                   "from": "train" if has.any() else "all images"}


def split_roles(table: pd.DataFrame, valid_fraction: float, seed: int) -> tuple[pd.Series, dict]:
    """train/valid/test per row: the dataset's splits, and a stratified ``valid`` share carved from
    train when the dataset has none (networks pick their best epoch on it)."""
    roles, how = assign_splits(table, seed=seed)
    roles = roles.astype(object).copy()
    if not (roles == "valid").any():
        pool = roles.index[roles == "train"]
        labels = strata(table, pool)
        n_valid = max(int(round(valid_fraction * len(pool))), labels.nunique())
        rng = np.random.default_rng(seed)
        picked = []
        # stratified without sklearn's two-per-class rule: tiny classes keep at least one train image
        for label, idx in labels.groupby(labels).groups.items():
            idx = np.array(sorted(idx))
            k = min(len(idx) - 1, max(1, int(round(n_valid * len(idx) / len(pool)))))
            picked.extend(rng.choice(idx, size=max(k, 0), replace=False).tolist())
        roles[picked] = "valid"
        how = {**how, "valid": {"source": "stratified", "fraction": valid_fraction, "seed": seed}}
    return roles, how


def split_by_identity(encodings, distance: float = 0.6, shares: tuple[float, float, float] = (0.6, 0.2, 0.2),
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train/valid/test for images of faces that repeat, decided by identity, not by file.

    Faces whose encodings (``(n, 128)``; a row of NaN or ``None`` for an image without a face)
    lie within ``distance`` of each other are one identity, and so, transitively, are chains of
    them: an identity's images all go to one split, so no face is scored on a twin it learned.
    Identities are placed largest first, each into the split furthest below its share of
    ``shares`` (train, valid, test); ``seed`` orders identities of one size. An image without an
    encoding is an identity of its own. Returns ``(split per image, identity number per image)``.

    >>> enc = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [5.0, 0], [5.05, 0], [9, 9]])
    >>> splits, ids = split_by_identity(enc, distance=0.6, shares=(0.5, 0.2, 0.3))
    >>> splits.tolist(), ids.tolist()
    (['train', 'train', 'train', 'test', 'test', 'valid'], [0, 0, 0, 1, 1, 2])
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import cdist

    rows = [np.full(np.shape(next((e for e in encodings if e is not None), [np.nan]))[-1], np.nan)
            if e is None else np.asarray(e, dtype=float) for e in encodings]
    enc = np.atleast_2d(np.stack(rows)) if rows else np.zeros((0, 1))
    if not 0 < distance:
        raise ValueError(f"distance={distance}: a positive dlib distance, e.g. 0.6")
    if len(shares) != 3 or min(shares) < 0 or not np.isclose(sum(shares), 1.0):
        raise ValueError(f"shares={shares}: three non-negative shares (train, valid, test) that sum to 1")
    if len(enc) == 0:
        return np.array([], dtype=object), np.array([], dtype=int)
    near = cdist(enc, enc) < distance  # NaN rows are near nothing, themselves included
    np.fill_diagonal(near, True)
    n_ids, ids = connected_components(near, directed=False)
    sizes = np.bincount(ids, minlength=n_ids)
    tie = np.random.default_rng(seed).permutation(n_ids)
    target, filled = np.asarray(shares, dtype=float) * len(enc), np.zeros(3)
    split_of = np.empty(n_ids, dtype=object)
    for i in sorted(range(n_ids), key=lambda i: (-sizes[i], tie[i])):
        j = int(np.argmax(target - filled))
        split_of[i] = SPLITS[j]
        filled[j] += sizes[i]
    # identities numbered in order of first appearance, so the numbers read like the rows
    first = {g: k for k, g in enumerate(dict.fromkeys(ids.tolist()))}
    return split_of[ids], np.array([first[g] for g in ids])
