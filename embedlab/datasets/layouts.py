"""Recognising how a dataset is laid out on disk, and listing its images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from embedlab.datasets.fer_csv import FER_EMOTIONS, USAGE_TO_SPLIT, is_fer_csv, read_fer_csv
from embedlab.core.errors import DatasetError
from embedlab.datasets.images import CSV_ROW_MARK, IMAGE_SUFFIXES, is_image_file_name
from embedlab.datasets.names import shown_path, shown_paths
from embedlab.core.registry import Registry
from embedlab.datasets.sources import FAKE_LABEL, folder_source

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "valid": "valid", "val": "valid", "validation": "valid",
    "test": "test", "testing": "test",
}
FER_SUBSETS = ("PublicTest", "PrivateTest")


@dataclass
class Layout:
    """A way of reading a dataset: ``detect`` finds its root, ``list`` its images."""

    name: str
    description: str
    detect: Callable[[Path], Path | None]
    list: Callable[[Path], pd.DataFrame]


LAYOUTS: Registry[Layout] = Registry("dataset layout")
# Detection tries layouts in this order: the most specific first.
DETECTION_ORDER: list[str] = []


def layout(name: str, description: str):
    def decorator(cls):
        entry = Layout(name, description, cls.detect, cls.list)
        LAYOUTS.register(name)(lambda: entry)
        DETECTION_ORDER.append(name)
        return cls

    return decorator


def _subdirs(path: Path) -> list[Path]:
    """The folders in ``path`` (links to folders too), hidden ones aside, by name. Listed with
    ``os.scandir``, whose entries know their type without a ``stat`` per file."""
    try:
        with os.scandir(path) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and _is_dir(e)]
    except OSError:
        return []
    return [path / name for name in sorted(names)]


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def images_in(folder: Path) -> list[Path]:
    """Every entry under ``folder`` with an image name, whatever it is: files, and also folders,
    links (broken or looping) and formats embedlab cannot read, which then get failure rows.

    A folder that cannot be listed (no permission) is an entry too, whatever its name, so that
    the images it hides are reported as unreadable rather than silently missing. Linked folders
    are not entered, so a link to a parent folder cannot loop.
    """
    return [Path(p) for p in _image_paths(os.fspath(folder))]


def _image_paths(folder: str | os.PathLike) -> list[str]:
    """:func:`images_in` as strings, in the same order (by path component): the fast path for
    datasets of many thousands of files, where building a ``Path`` per file is most of the time.
    Names that are not valid UTF-8 come in their shown form (:mod:`embedlab.datasets.names`)."""
    found: list[str] = []

    def unlisted(exc: OSError) -> None:
        if exc.filename is not None:
            found.append(os.fspath(exc.filename))

    folder = os.fspath(folder)
    join = os.path.join
    for top, dirs, files in os.walk(folder, onerror=unlisted):
        found += [join(top, name) for name in dirs + files if is_image_file_name(name)]
    if folder == os.curdir:  # "./a.jpg" -> "a.jpg", as Path writes it
        found = [p[len(os.curdir + os.sep):] if p.startswith(os.curdir + os.sep) else p for p in found]
    return sorted(shown_paths(found), key=lambda p: p.split(os.sep))


def _rows(root: Path, files: list[str], label: str, split: str | None,
          label_dir: Path | None = None) -> list[dict]:
    """One row per file (as :func:`_image_paths` lists them); fakes under ``label_dir/<source>/``
    also get that ``source``."""
    root = shown_path(root)  # as the files are named
    prefix = "" if root == os.curdir else os.path.join(root, "")

    def image_id(path: str) -> str:
        rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
        return rel.replace(os.sep, "/")

    label = shown_path(label) if isinstance(label, str) else label
    rows = [{"image_id": image_id(f), "path": f, "label": label, "split": split} for f in files]
    if label_dir is not None and str(label).strip().lower() == FAKE_LABEL:
        label_dir = Path(shown_path(label_dir))
        for row, f in zip(rows, files):
            row["source"] = folder_source(label_dir, Path(f))
    return rows


def _search(path: Path, is_root: Callable[[Path], bool], depth: int = 4) -> Path | None:
    """Breadth-first search for a folder that ``is_root``, so any prefix works."""
    level = [path]
    for _ in range(depth + 1):
        nxt = []
        for folder in level:
            if is_root(folder):
                return folder
            nxt.extend(_subdirs(folder))
        level = nxt
    return None


@layout("fer2013-csv", "FER-2013 as fer2013.csv (emotion,pixels,Usage)")
class FerCsv:
    @staticmethod
    def detect(path: Path) -> Path | None:
        if path.is_file():
            return path if is_fer_csv(path) else None
        candidate = path / "fer2013.csv"
        return candidate if is_fer_csv(candidate) else None

    @staticmethod
    def list(root: Path) -> pd.DataFrame:
        table, _ = read_fer_csv(root)
        uri = shown_path(root.resolve())
        usage = table["usage"]
        unknown = sorted(set(usage) - set(USAGE_TO_SPLIT))
        if unknown:
            raise DatasetError(f"{root}: unknown Usage value(s) {unknown}; expected {sorted(USAGE_TO_SPLIT)}")
        return pd.DataFrame(
            {
                "image_id": [f"row{i:05d}" for i in range(len(table))],
                "path": [f"{uri}{CSV_ROW_MARK}{i}" for i in range(len(table))],
                "label": table["label"],
                "split": usage.map(USAGE_TO_SPLIT),
                "subset": usage,
            }
        )


@layout("kaggle-140k", "Kaggle 140k Real and Fake Faces: {train,valid,test}/{real,fake}/ "
                       "(fakes may sit in fake/<source>/ per generator)")
class Kaggle140k:
    @staticmethod
    def _is_root(folder: Path) -> bool:
        splits = [d for d in _subdirs(folder) if d.name in ("train", "valid", "test")]
        return bool(splits) and all(
            {"real", "fake"} <= {c.name for c in _subdirs(s)} for s in splits
        )

    @classmethod
    def detect(cls, path: Path) -> Path | None:
        return _search(path, cls._is_root) if path.is_dir() else None

    @staticmethod
    def list(root: Path) -> pd.DataFrame:
        rows = []
        for split in ("train", "valid", "test"):
            for label in ("real", "fake"):
                folder = root / split / label
                if folder.is_dir():
                    rows += _rows(root, _image_paths(folder), label, split, label_dir=folder)
        return pd.DataFrame(rows)


@layout("fer2013-folders", "FER-2013 image folders: {train,test}/<emotion>/")
class FerFolders:
    @staticmethod
    def _is_root(folder: Path) -> bool:
        splits = [d for d in _subdirs(folder) if d.name in ("train", "test")]
        return bool(splits) and all(
            (names := {c.name for c in _subdirs(s)}) and names <= set(FER_EMOTIONS) for s in splits
        )

    @classmethod
    def detect(cls, path: Path) -> Path | None:
        return _search(path, cls._is_root, depth=2) if path.is_dir() else None

    @staticmethod
    def list(root: Path) -> pd.DataFrame:
        rows = []
        for split_dir in _subdirs(root):
            if split_dir.name not in ("train", "test"):
                continue
            for label_dir in _subdirs(split_dir):
                rows += _rows(root, _image_paths(label_dir), label_dir.name, split_dir.name)
        df = pd.DataFrame(rows)
        if not df.empty:
            names = df["path"].map(lambda p: os.path.basename(p).split("_", 1)[0])
            df["subset"] = names.where(names.isin(FER_SUBSETS + ("Training",)), None)
        return df


@layout("class-folders", "class folders: <label>/ or <split>/<label>/ (fake/<source>/ names a generator)")
class ClassFolders:
    @staticmethod
    def detect(path: Path) -> Path | None:
        if not path.is_dir():
            return None
        labelled = [d for d in _subdirs(path) if any(d.rglob("*.*"))]
        return path if labelled and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()) else None

    @staticmethod
    def list(root: Path) -> pd.DataFrame:
        tops = _subdirs(root)
        split_named = [d for d in tops if d.name.lower() in SPLIT_ALIASES]
        rows = []
        if split_named and len(split_named) == len(tops):
            for split_dir in split_named:
                for label_dir in _subdirs(split_dir):
                    rows += _rows(root, _image_paths(label_dir), label_dir.name,
                                  SPLIT_ALIASES[split_dir.name.lower()], label_dir=label_dir)
        else:
            for label_dir in tops:
                rows += _rows(root, _image_paths(label_dir), label_dir.name, None, label_dir=label_dir)
        return pd.DataFrame(rows)


@layout("manifest", "a manifest CSV with columns path,label[,split][,source][,origin]")
class Manifest:
    @staticmethod
    def detect(path: Path) -> Path | None:
        if path.is_file() and path.suffix.lower() == ".csv":
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = {c.strip().lower() for c in fh.readline().split(",")}
            return path if {"path", "label"} <= header else None
        return None

    @staticmethod
    def list(root: Path) -> pd.DataFrame:
        table = pd.read_csv(root, dtype=str, keep_default_na=False)
        table.columns = [c.strip().lower() for c in table.columns]
        missing = {"path", "label"} - set(table.columns)
        if missing:
            raise DatasetError(f"{root}: manifest needs column(s) {', '.join(sorted(missing))}")
        base = root.parent
        paths = [Path(p) if Path(p).is_absolute() else (base / p) for p in table["path"]]
        if paths and not any(os.path.lexists(p) for p in paths):  # a wrong base folder, not some bad files
            more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
            raise DatasetError(f"{root}: no listed image exists: {paths[0]}{more}")
        split = table["split"].str.lower().map(lambda s: SPLIT_ALIASES.get(s, s or None)) \
            if "split" in table.columns else None
        out = pd.DataFrame(
            {
                "image_id": table["path"].str.replace("\\", "/", regex=False),
                "path": [str(p) for p in paths],
                "label": table["label"],
                "split": split,
            }
        )
        for column in ("source", "origin"):  # the generator of each fake; the folder each image came from
            if column in table.columns:
                out[column] = table[column].where(table[column] != "", None)
        return out


@layout("images", "unlabelled images: a folder of image files, or one image file")
class PlainImages:
    @staticmethod
    def detect(path: Path) -> Path | None:
        if path.is_file():
            return path if path.suffix.lower() in IMAGE_SUFFIXES else None
        if path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            return path
        return None

    @staticmethod
    def list(root: Path) -> pd.DataFrame:
        if root.is_file():
            return pd.DataFrame([{"image_id": shown_path(root.name), "path": shown_path(root), "label": None,
                                  "split": None}])
        return pd.DataFrame(_rows(root, _image_paths(root), None, None))


def detect_layout(path: Path) -> tuple[str, Path]:
    for name in DETECTION_ORDER:
        root = LAYOUTS.create(name).detect(path)
        if root is not None:
            return name, root
    raise DatasetError(
        f"{path}: no known dataset layout found; expected one of: "
        + "; ".join(LAYOUTS.create(n).description for n in DETECTION_ORDER)
    )
