"""What is in a dataset: counts, image sizes and modes, unreadable files, duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from embedlab.core.errors import ImageReadError
from embedlab.datasets.images import decode_image, is_csv_row, read_file, read_image


@dataclass
class DatasetReport:
    """The findings of :func:`inspect_dataset`; every table is a DataFrame."""

    layout: str
    root: str
    counts: pd.DataFrame            # rows: label, columns: split, values: images
    sizes: pd.DataFrame             # width, height, mode, images
    unreadable: pd.DataFrame        # image_id, path, reason, error: every file that gives no image
    duplicates: pd.DataFrame        # hash, copies, splits, labels, cross_split, conflicting_labels, image_ids
    subsets: pd.DataFrame = field(default_factory=pd.DataFrame)  # FER-2013 PublicTest/PrivateTest counts
    sharpness: pd.DataFrame = field(default_factory=pd.DataFrame)  # median sharpness, label x split
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)  # images per source x split (datasets with fakes)
    #: per (origin, or else source, and label): images and the median width, height, JPEG quality and sharpness;
    #: where these differ between classes a detector can learn the container instead of the face
    containers: pd.DataFrame = field(default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return int(self.counts.to_numpy().sum())

    @property
    def cross_split(self) -> pd.DataFrame:
        return self.duplicates[self.duplicates["cross_split"]]

    @property
    def conflicting_labels(self) -> pd.DataFrame:
        return self.duplicates[self.duplicates["conflicting_labels"]]


#: a split whose median sharpness differs from another's by this factor is flagged
SHARPNESS_RATIO_WARNING = 3.0


def sharpness(image) -> float:
    """Standard deviation of the Laplacian of the grey image (at most 256 px a side).

    Low values mean a blurred image; a split far blurrier than another is a
    domain shift that a model trained on one will pay for on the other.

    >>> import numpy as np
    >>> sharpness(np.zeros((8, 8, 3), np.uint8))
    0.0
    """
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    grey = Image.fromarray(image).convert("L")
    if max(grey.size) > 256:
        grey.thumbnail((256, 256))
    return float(ndimage.laplace(np.asarray(grey, dtype=np.float32)).std())


#: the IJG (libjpeg) luminance quantisation table at quality 50, in zigzag order as Pillow gives it
_IJG_LUMINANCE = [16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37,
                  29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
                  95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99]


def jpeg_quality(quantization: dict | None) -> int | None:
    """The IJG quality (1-100) whose luminance table is closest to a JPEG's, None for other files.

    >>> jpeg_quality({0: [max(1, min(255, (v * 50 + 50) // 100)) for v in _IJG_LUMINANCE]})
    75
    """
    if not quantization or 0 not in quantization:
        return None
    table = list(quantization[0])
    if len(table) != 64:
        return None

    def at(q: int) -> list[int]:
        scale = 5000 // q if q < 50 else 200 - 2 * q
        return [max(1, min(255, (v * scale + 50) // 100)) for v in _IJG_LUMINANCE]

    return min(range(1, 101), key=lambda q: sum(abs(a - b) for a, b in zip(at(q), table)))


def _probe(uri: str) -> tuple[int | None, int | None, str | None, float | None, int | None, str | None, str | None]:
    """(width, height, mode, sharpness, JPEG quality, reason, error) of one image; decodes it fully to find
    broken files."""
    import io

    from PIL import Image

    try:
        if is_csv_row(uri):
            return 48, 48, "L", sharpness(read_image(uri)), None, None, None
        data = read_file(uri)
        image = decode_image(data, name=uri)
        with Image.open(io.BytesIO(data)) as img:  # the size and mode as stored, before any conversion
            w, h, mode = img.width, img.height, img.mode
            quality = jpeg_quality(getattr(img, "quantization", None)) if img.format == "JPEG" else None
        return w, h, mode, sharpness(image), quality, None, None
    except ImageReadError as exc:
        return None, None, None, None, None, exc.reason, str(exc)


def container_table(df: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Per (source or origin, label): images, median width, height, JPEG quality and sharpness."""
    by = "origin" if "origin" in df.columns else "source" if "source" in df.columns else None
    if by is None or info["width"].isna().all():
        return pd.DataFrame()
    frame = pd.DataFrame({by: df[by].fillna("(none)").astype(str), "label": df["label"].astype(str),
                          **{c: pd.to_numeric(info[c], errors="coerce")
                             for c in ("width", "height", "jpeg_quality", "sharpness")}})
    frame = frame[frame["width"].notna()]
    out = frame.groupby([by, "label"]).agg(images=("width", "size"), width=("width", "median"),
                                           height=("height", "median"), jpeg_quality=("jpeg_quality", "median"),
                                           sharpness=("sharpness", "median")).reset_index()
    return out


def _sharpness_warnings(medians: "pd.Series") -> list[str]:
    medians = medians.dropna()
    if len(medians) < 2 or medians.min() <= 0:
        return []
    low, high = medians.idxmin(), medians.idxmax()
    ratio = medians[high] / medians[low]
    if ratio < SHARPNESS_RATIO_WARNING:
        return []
    return [f"split {low!r} is much blurrier than split {high!r}: median sharpness {medians[low]:.1f} "
            f"vs {medians[high]:.1f} ({ratio:.0f}x). A model trained on one meets a domain shift on "
            "the other; check where the images came from."]


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
    counts = pd.crosstab(df["label"].astype(object).where(df["label"].notna(), "(none)"), split)  # unlabelled too
    counts.columns.name, counts.index.name = "split", "label"

    columns = ["width", "height", "mode", "sharpness", "jpeg_quality", "reason", "error"]
    listed = df["read_reason"].notna() if "read_reason" in df else pd.Series(False, index=df.index)
    info = pd.DataFrame({c: None for c in columns}, index=df.index)
    if decode and (~listed).any():
        info.loc[~listed] = pd.DataFrame([_probe(u) for u in df.loc[~listed, "path"]], columns=columns,
                                         index=df.index[~listed])
    if listed.any():  # files found unusable while the dataset was listed
        info.loc[listed, "reason"] = df.loc[listed, "read_reason"]
        info.loc[listed, "error"] = df.loc[listed, "read_error"]
    good = info["error"].isna() & info["width"].notna()
    sizes = (info[good].astype({"width": int, "height": int}).groupby(["width", "height", "mode"]).size()
             .rename("images").reset_index().sort_values("images", ascending=False, ignore_index=True))
    unreadable = pd.concat([df[["image_id", "path"]], info[["reason", "error"]]], axis=1)[info["error"].notna()]

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

    sources = pd.DataFrame()
    if "source" in df.columns and df["source"].notna().any():
        sources = pd.crosstab(df["source"].fillna("(none)"), split)
        sources.columns.name, sources.index.name = "split", "source"

    sharp = pd.DataFrame()
    warnings: list[str] = []
    values = pd.to_numeric(info["sharpness"], errors="coerce")
    if values.notna().any():
        frame = pd.DataFrame({"label": df["label"].astype(str), "split": split, "sharpness": values})
        sharp = frame.pivot_table(index="label", columns="split", values="sharpness", aggfunc="median")
        sharp.loc["(all)"] = frame.groupby("split")["sharpness"].median()
        warnings += _sharpness_warnings(frame.groupby("split")["sharpness"].median())
    if len(dup) and dup["cross_split"].any():
        warnings.append(f"{int(dup['cross_split'].sum())} group(s) of identical images appear in more than "
                        "one split: test figures may be inflated")
    return DatasetReport(layout=df.attrs.get("layout", "?"), root=df.attrs.get("root", "?"),
                         counts=counts, sizes=sizes, unreadable=unreadable.reset_index(drop=True),
                         duplicates=dup, subsets=subsets, sharpness=sharp, sources=sources,
                         containers=container_table(df, info), warnings=warnings)
