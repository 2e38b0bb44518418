"""Where each fake came from: the ``source`` column of an image table.

A detector that catches one generator may miss another, so a dataset can name
the generator of each fake: a folder per generator under the fake class
(``{split}/fake/<source>/``, or ``fake/<source>/`` in class folders), or a
``source`` column in a manifest. Fakes in a plain ``fake/`` folder share one
default source (the dataset's name); every other image keeps its label as
its source (``real``). Tables without fakes and without a ``source`` column
get no such column.

>>> import pandas as pd
>>> t = pd.DataFrame({"label": ["real", "fake", "fake"], "source": [None, "sd", None]})
>>> fill_sources(t, default="dev")["source"].tolist()
['real', 'sd', 'dev']
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from embedlab.core.errors import DatasetError

#: the label of generated images; its images are the ones a source names
FAKE_LABEL = "fake"
#: the source of fakes when nothing names it and the dataset has no name
DEFAULT_SOURCE = "fake"


def is_fake(labels: pd.Series) -> pd.Series:
    """True where the label is the fake class (case and surrounding spaces ignored)."""
    return labels.map(lambda v: v is not None and v == v and str(v).strip().lower() == FAKE_LABEL).astype(bool)


def folder_source(label_dir: Path, file: Path) -> str | None:
    """The generator folder ``file`` lies in under its class folder, or None when it lies in it directly.

    >>> folder_source(Path("d/fake"), Path("d/fake/stylegan/a.jpg")), folder_source(Path("d/fake"), Path("d/fake/a.jpg"))
    ('stylegan', None)
    """
    parts = file.relative_to(label_dir).parts
    return parts[0] if len(parts) > 1 else None


def fill_sources(table: pd.DataFrame, default: str | None = None) -> pd.DataFrame:
    """``table`` with a complete ``source`` column when it has fakes or names sources; else as it is.

    Fakes without a source get ``default`` (or ``"fake"``); other images
    without one get their label.
    """
    fake = is_fake(table["label"])
    if "source" not in table.columns and not fake.any():
        return table
    given = table["source"] if "source" in table.columns else pd.Series(None, index=table.index, dtype=object)
    given = given.astype(object).map(lambda v: str(v).strip() if v is not None and v == v and str(v).strip()
                                     else None)
    source = given.where(given.notna() | ~fake, default or DEFAULT_SOURCE)
    source = source.where(source.notna() | fake, table["label"].astype(object))
    out = table.copy()
    out["source"] = source.where(source.notna(), None).astype(object)
    return out


def fake_sources(table: pd.DataFrame) -> list[str]:
    """The sources of the table's fakes, sorted; empty when it names none.

    >>> fake_sources(pd.DataFrame({"label": ["real", "fake"], "source": ["real", "sd"]}))
    ['sd']
    """
    if "source" not in table.columns:
        return []
    return sorted({str(s) for s in table.loc[is_fake(table["label"]), "source"].dropna()})


def leave_out_source(table: pd.DataFrame, roles: pd.Series, source: str) -> pd.Series:
    """``roles`` with the fakes of ``source`` taken out of ``train`` and ``valid`` (their role becomes None).

    They stay in ``test``, so a model trained without them is scored on a
    generator it has never seen. Raises :class:`DatasetError` when the
    source is unknown, has no test image, or is the only source of fakes
    in train.
    """
    where = table.attrs.get("root", "the dataset")
    known = fake_sources(table)
    if source not in known:
        raise DatasetError(f"{where}: no fakes of source {source!r} to leave out; sources: "
                           + (", ".join(known) if known else "none (put fakes in fake/<source>/ folders "
                              "or give a manifest a source column)"))
    of_source = is_fake(table["label"]) & (table["source"].astype(object) == source)
    if not (of_source & (roles == "test")).any():
        raise DatasetError(f"{where}: source {source!r} has no test image to score once left out")
    out = roles.astype(object).copy()
    out[of_source & roles.isin(["train", "valid"])] = None
    if not (is_fake(table["label"]) & (out == "train")).any():
        raise DatasetError(f"{where}: leaving out {source!r} leaves no fake to train on")
    return out
