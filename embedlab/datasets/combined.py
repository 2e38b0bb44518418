"""Several datasets as one, each under its own name: a generator's fakes, a folder of real photos.

A detector is judged per generator, and new generators come as folders of
fakes alone (a fakes-only folder has no reals to pair with). :func:`combine`
names each part: the fakes of a part get its name as their ``source``, every
row gets it as its ``origin`` (where it came from), and the parts' reals
together are the reals every source is scored against. Splits stay as each
part has them.

>>> photos = load("data/sample/face-photos", layout="images")  # unlabelled: real photos
>>> t = combine({"stylegan": "data/sample/real-vs-fake", "photos": photos}, label="real")
>>> t.groupby(["origin", "label"]).size().to_dict()
{('photos', 'real'): 3, ('stylegan', 'fake'): 29, ('stylegan', 'real'): 29}
>>> sorted(t.loc[t["label"] == "fake", "source"].unique()), t["image_id"].iloc[-1]
(['stylegan'], 'photos/obama2.jpg')
"""

from __future__ import annotations

import os
from typing import Mapping

import pandas as pd

from embedlab.core.errors import DatasetError
from embedlab.datasets.hash_index import FileHashIndex
from embedlab.datasets.sources import is_fake
from embedlab.datasets.tables import load

#: the layout name a combined table carries
COMBINED_LAYOUT = "combined"


def combine(parts: Mapping[str, str | os.PathLike | pd.DataFrame], *,
            hash_index: FileHashIndex | str | os.PathLike | None = None,
            label: str | None = None) -> pd.DataFrame:
    """One table over named datasets (paths, or tables from :func:`embedlab.datasets.load`).

    ``label`` labels the images that have none (loose photos known to be
    real, say). Image ids are prefixed with the part's
    name, so two parts can hold the same file names.
    """
    if not parts:
        raise DatasetError("combine: no datasets given")
    frames = []
    for name, data in parts.items():
        if not name or "/" in name:
            raise DatasetError(f"combine: {name!r} is not a dataset name (a word, no '/')")
        table = data.copy() if isinstance(data, pd.DataFrame) else load(data, hash_index=hash_index)
        if label is not None:
            table["label"] = table["label"].where(table["label"].notna(), label)
        fake = is_fake(table["label"])
        source = table["source"] if "source" in table.columns else pd.Series(None, index=table.index, dtype=object)
        table["source"] = source.astype(object).where(~fake, name).where(fake, table["label"].astype(object))
        table["origin"] = name
        table["image_id"] = name + "/" + table["image_id"].astype(str)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    if out["image_id"].duplicated().any():
        raise DatasetError(f"combine: image ids repeat: {out.loc[out['image_id'].duplicated(), 'image_id'].iloc[0]}")
    out.attrs.update(layout=COMBINED_LAYOUT, root="+".join(parts), name="+".join(parts),
                     parts={name: (str(data) if not isinstance(data, pd.DataFrame) else data.attrs.get("root"))
                            for name, data in parts.items()},
                     warnings=[w for f in frames for w in f.attrs.get("warnings", [])])
    return out
