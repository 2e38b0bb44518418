"""What is in a dataset: counts, image sizes and modes, unreadable files, duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from embedlab.errors import ImageReadError
from embedlab.images import is_csv_row


@dataclass
class DatasetReport:
    """The findings of :func:`inspect_dataset`; every table is a DataFrame."""

    layout: str
    root: str
    counts: pd.DataFrame            # rows: label, columns: split, values: images
    sizes: pd.DataFrame             # width, height, mode, images
    unreadable: pd.DataFrame        # image_id, path, error
    duplicates: pd.DataFrame        # hash, copies, splits, labels, cross_split, conflicting_labels, image_ids
    subsets: pd.DataFrame = field(default_factory=pd.DataFrame)  # FER-2013 PublicTest/PrivateTest counts

    @property
    def n_images(self) -> int:
        return int(self.counts.to_numpy().sum())

    @property
    def cross_split(self) -> pd.DataFrame:
        return self.duplicates[self.duplicates["cross_split"]]

    @property
    def conflicting_labels(self) -> pd.DataFrame:
        return self.duplicates[self.duplicates["conflicting_labels"]]


def _probe(uri: str) -> tuple[int | None, int | None, str | None, str | None]:
    """(width, height, mode, error) of one image; decodes it fully to find broken files."""
    from PIL import Image

    from embedlab.images import read_image

    if is_csv_row(uri):
        return 48, 48, "L", None
    try:
        with Image.open(uri) as img:
            w, h, mode = img.width, img.height, img.mode
        read_image(uri)
        return w, h, mode, None
    except ImageReadError as exc:
        return None, None, None, str(exc)
    except Exception as exc:  # PIL raises many kinds for broken headers
        return None, None, None, f"{uri}: {exc}"


def inspect_dataset(df: pd.DataFrame, decode: bool = True) -> DatasetReport:
    """Inspect a table from :func:`embedlab.datasets.load`.

    With ``decode`` every image is opened and decoded (to find unreadable
    files and record sizes and modes); duplicates come from content hashes.

    >>> from embedlab import datasets
    >>> r = inspect_dataset(datasets.load("data/sample/fer2013"))
    >>> int(r.counts.loc["happy", "train"])
    6
    """
    split = df["split"].fillna("(none)")
    counts = pd.crosstab(df["label"], split)
    counts.columns.name, counts.index.name = "split", "label"

    if decode:
        probes = [_probe(u) for u in df["path"]]
        info = pd.DataFrame(probes, columns=["width", "height", "mode", "error"], index=df.index)
    else:
        info = pd.DataFrame({"width": None, "height": None, "mode": None, "error": None}, index=df.index)
    good = info["error"].isna() & info["width"].notna()
    sizes = (info[good].groupby(["width", "height", "mode"]).size().rename("images")
             .reset_index().sort_values("images", ascending=False, ignore_index=True))
    unreadable = pd.concat([df[["image_id", "path"]], info[["error"]]], axis=1)[info["error"].notna()]

    groups = df.assign(split=split).groupby("hash")
    dup = groups.agg(copies=("image_id", "size"),
                     splits=("split", lambda s: sorted(set(s))),
                     labels=("label", lambda s: sorted(set(map(str, s)))),
                     image_ids=("image_id", list))
    dup = dup[dup["copies"] > 1].reset_index()
    dup["cross_split"] = dup["splits"].map(len) > 1
    dup["conflicting_labels"] = dup["labels"].map(len) > 1
    dup = dup.sort_values(["conflicting_labels", "cross_split", "copies"], ascending=False, ignore_index=True)

    subsets = pd.DataFrame()
    if "subset" in df.columns and df["subset"].notna().any():
        subsets = pd.crosstab(df["label"], df["subset"].fillna("(none)"))
    return DatasetReport(layout=df.attrs.get("layout", "?"), root=df.attrs.get("root", "?"),
                         counts=counts, sizes=sizes, unreadable=unreadable.reset_index(drop=True),
                         duplicates=dup, subsets=subsets)
