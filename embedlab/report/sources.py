"""What a report covers: datasets (with the features to use for each) and run folders.

A dataset argument is a path, optionally followed by ``::`` and feature
specs: ``../shared/data/fer2013::encoding[detector=none]``. Without specs a
dataset uses the encoding variant already cached for most of its images,
else its layout's default (:data:`LAYOUT_FEATURES`).

>>> parse_dataset_arg("data/sample/synthetic-emotions::encoding[detector=hog]").features
'encoding[detector=hog]'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from embedlab.api import encode
from embedlab.compute.cache import FeatureCache
from embedlab.compute.extraction import ALIGNED_FACE_LAYOUTS, resolve_features, table_for_cache
from embedlab.core.errors import DatasetError, EmbedlabError, ModelError
from embedlab.features import create_extractor
from embedlab.runs.folder import PARAMS_FILE, run_params
from embedlab.runs.provenance import run_datasets

SPEC_SEPARATOR = "::"
#: features per dataset layout when nothing is cached: the same rule as encode and fit
#: (:data:`~embedlab.compute.extraction.ALIGNED_FACE_LAYOUTS`: no detector on 48x48 FER faces)
LAYOUT_FEATURES = {layout: "encoding[detector=none]" for layout in ALIGNED_FACE_LAYOUTS}
FALLBACK_FEATURES = "encoding"


@dataclass
class DatasetSource:
    """A dataset to report on: a path or an already encoded table, and feature specs."""

    path: str | None = None
    features: str | None = None          # None: cached variant or layout default
    table: pd.DataFrame | None = None     # an :func:`embedlab.encode` (or ``load``) result

    @property
    def label(self) -> str:
        if self.table is not None:
            return str(self.table.attrs.get("root") or self.table.attrs.get("name") or "table")
        return str(self.path)


def parse_dataset_arg(text: str) -> DatasetSource:
    """``PATH`` or ``PATH::FEATURES`` (features as for ``embedlab encode --features``)."""
    path, sep, spec = str(text).partition(SPEC_SEPARATOR)
    if not path:
        raise DatasetError(f"{text!r}: no dataset path before '{SPEC_SEPARATOR}'")
    if sep and not spec.strip():
        raise DatasetError(f"{text!r}: no feature spec after '{SPEC_SEPARATOR}'")
    return DatasetSource(path=path, features=spec.strip() or None)


def as_source(item: str | os.PathLike | pd.DataFrame | tuple | DatasetSource) -> DatasetSource:
    """Accept a path, ``PATH::SPEC``, a ``(path, spec)`` pair, a table or a source."""
    if isinstance(item, DatasetSource):
        return item
    if isinstance(item, pd.DataFrame):
        return DatasetSource(table=item)
    if isinstance(item, tuple) and len(item) == 2:
        return DatasetSource(path=os.fspath(item[0]), features=item[1])
    if isinstance(item, (str, os.PathLike)):
        return parse_dataset_arg(os.fspath(item))
    raise EmbedlabError(f"cannot use {type(item).__name__} as a dataset; give a path or an encode() table")


def _spec_from_meta(meta: dict) -> str:
    """The shortest spec for a cache entry: only the parameters that differ from the defaults."""
    name = str(meta.get("name"))
    defaults = create_extractor(name).cache_params()
    params = {k: v for k, v in (meta.get("params") or {}).items() if defaults.get(k, object()) != v}
    if name == "encoding":  # always named: on aligned face crops a bare `encoding` means detector=none
        params.setdefault("detector", (meta.get("params") or {}).get("detector", defaults.get("detector", "hog")))
    inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name}[{inner}]" if inner else name


def default_features(table: pd.DataFrame, cache_dir: str | os.PathLike) -> str:
    """The encoding variant cached for most of ``table``'s images, else the layout default."""
    fallback = LAYOUT_FEATURES.get(str(table.attrs.get("layout")), FALLBACK_FEATURES)
    cache = FeatureCache(cache_dir)
    hashes = set(table["hash"])
    best, best_cover = fallback, 0
    fallback_key = None
    for key in cache.keys():
        try:
            meta = cache.meta(key)
        except EmbedlabError:
            continue
        if meta.get("name") != "encoding" or meta.get("key", key) != key:
            continue
        cover = len(hashes & cache.known_hashes(key))
        if cover == 0:
            continue
        spec = _spec_from_meta(meta)
        if fallback_key is None:
            fallback_key = create_extractor(fallback).key()
        if key == fallback_key:
            spec = fallback
        if cover > best_cover or (cover == best_cover and spec == fallback):
            best, best_cover = spec, cover
    return best


def find_run_folders(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run folders among ``paths``: each is a run folder or a folder of them."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / PARAMS_FILE).is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(c for c in p.iterdir() if (c / PARAMS_FILE).is_file()))
        else:
            raise ModelError(f"{p}: no such run folder (expected a folder with params.json, or a folder of them)")
    return list(dict.fromkeys(found))


def datasets_of_runs(run_folders: Sequence[Path]) -> list[DatasetSource]:
    """The datasets the runs were fitted and evaluated on, where they still exist."""
    sources: dict[str, DatasetSource] = {}
    for folder in run_folders:
        params = run_params(folder)
        if params is None:
            continue
        specs = [f for f in params.get("features") or [] if str(f).split("[")[0].split(":")[0] == "encoding"]
        for path in run_datasets(params, folder).values():
            if path.exists():
                key = str(Path(path).resolve())
                if key not in sources:
                    sources[key] = DatasetSource(path=str(path), features=specs[0] if specs else None)
    return list(sources.values())


@dataclass
class EncodingPlan:
    """What the report is about to encode for one dataset: told to the caller before the work starts."""

    dataset: str
    path: str
    images: int
    features: str
    cached: int       # images whose every feature is already in the cache
    left_out: int     # images without cached features, left out with compute=False

    @property
    def to_compute(self) -> int:
        return self.images - self.cached


def _cached_hashes(spec: str, cache_dir: str | os.PathLike) -> set[str]:
    cache = FeatureCache(cache_dir)
    known: set[str] | None = None
    for ex in resolve_features(spec):
        hashes = cache.known_hashes(ex.key())
        known = hashes if known is None else known & hashes
    return known or set()


def encoded_table(source: DatasetSource, default_spec: str | None, cache_dir: str | os.PathLike, *,
                  compute: bool = True, workers: int | None = None,
                  on_progress: Callable[[int, int], None] | None = None,
                  on_plan: Callable[[EncodingPlan], None] | None = None) -> pd.DataFrame:
    """The dataset with its feature columns (see :func:`embedlab.encode`).

    With ``compute=False`` only images already in the cache are kept, so
    nothing is computed; ``attrs["report_dropped"]`` counts the others.
    ``on_plan`` hears which dataset is encoded, with which features, and how
    many of its images are cached, before any work starts.
    """
    if source.table is not None and source.features is None:
        table = source.table
        if any(f"{c}.ok" in table.columns for c in table.columns):
            return table
    table = source.table if source.table is not None else table_for_cache(source.path, cache_dir, writing=compute)
    spec = source.features or default_spec or default_features(table, cache_dir)
    cached = table["hash"].isin(_cached_hashes(spec, cache_dir)).to_numpy()
    dropped = 0 if compute else int((~cached).sum())
    if on_plan is not None:
        on_plan(EncodingPlan(dataset=str(table.attrs.get("name") or source.label),
                             path=str(table.attrs.get("root") or source.label), images=len(table) - dropped,
                             features=spec, cached=int(cached.sum()), left_out=dropped))
    if not compute:
        attrs = dict(table.attrs)
        table = table[cached].reset_index(drop=True)
        table.attrs.update(attrs)
        if table.empty:
            raise DatasetError(f"{source.label}: none of its images has cached '{spec}' features in {cache_dir}; "
                               "encode it first or let the report compute them")
    out = encode(table, spec, cache_dir=cache_dir, workers=workers, on_progress=on_progress)
    out.attrs["feature_spec"] = spec
    out.attrs["report_dropped"] = dropped
    return out
