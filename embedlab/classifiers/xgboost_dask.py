"""Training the ``xgboost`` classifier on a Dask cluster, from the feature cache.

The client holds only the image list (content hash, label); feature vectors
are read from the cache's Parquet parts by the workers, one block of images
per task, so the feature table never has to fit in one machine's memory.
XGBoost's own Dask integration (:mod:`xgboost.dask`) trains on those blocks
where they lie, and predictions are computed there as well: only one row of
probabilities per image comes back.

The model is the registry's ``xgboost`` pipeline with the same parameters;
what comes back is a fitted local pipeline, identical in kind to one from a
single-machine fit, so it is saved, loaded and used for prediction the same
way. Workers must see the cache folder at the same path as this machine (a
shared file system); this is checked before any work.

>>> import numpy as np
>>> blocks_of(np.array(["a", "b", "c", "d", "e"]), n_blocks=2)
[array(['a', 'b', 'c'], dtype='<U1'), array(['d', 'e'], dtype='<U1')]
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from embedlab.classifiers.pipelines import create_classifier
from embedlab.compute.cache import FeatureCache
from embedlab.compute.distributed import connect, wait_for_workers
from embedlab.core.errors import ModelError

#: images per block read and held by one task; a block of 256-d float32 rows is ~20 MB
ROWS_PER_BLOCK = 20_000


def blocks_of(hashes: np.ndarray, n_blocks: int) -> list[np.ndarray]:
    """Split ``hashes`` into ``n_blocks`` contiguous, nearly equal blocks (none empty)."""
    n_blocks = max(1, min(n_blocks, len(hashes)))
    return [b for b in np.array_split(hashes, n_blocks) if len(b)]


# -- worker side ------------------------------------------------------------
def load_block(cache_root: str, keys: Sequence[str], hashes: Sequence[str]) -> np.ndarray:
    """Feature rows of ``hashes`` (features concatenated in ``keys`` order), read where this runs.

    A ``float32`` matrix with one row per hash, in the order given. Only the
    block's rows are kept in memory: the Parquet parts are scanned with a
    filter. As everywhere in the cache, the first row per hash wins.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    wanted = pc.field("hash").isin(pa.array(list(hashes), pa.string()))
    cache = FeatureCache(cache_root)
    blocks = []
    for key in keys:
        for attempt in range(5):
            try:
                table = ds.dataset([str(p) for p in cache.parts(key)], format="parquet").to_table(
                    columns=["hash", "ok", "vector"], filter=wanted)
                break
            except FileNotFoundError:  # a concurrent compaction replaced the parts: list again
                time.sleep(0.05 * (attempt + 1))
        else:
            raise ModelError(f"cache entry {cache.entry(key)}: parts kept changing while reading")
        dim = table.schema.field("vector").type.list_size
        index = pd.Index(table.column("hash").to_pylist())
        first = ~index.duplicated(keep="first")
        position = pd.Series(np.flatnonzero(first), index=index[first])  # row of each hash's first entry
        try:
            take = position.loc[list(hashes)].to_numpy()
        except KeyError:
            raise ModelError(f"cache entry {cache.entry(key)}: an image's features vanished while "
                             "training; was the cache replaced?") from None
        if not np.asarray(table.column("ok").to_pylist(), dtype=bool)[take].all():
            raise ModelError(f"cache entry {cache.entry(key)}: a failed row where features were expected")
        picked = table.column("vector").combine_chunks().take(pa.array(take))
        blocks.append(np.asarray(picked.flatten(), dtype=np.float32).reshape(len(take), dim))
    return np.hstack(blocks) if blocks else np.empty((len(hashes), 0), np.float32)


def _worker_sees(cache_root: str, keys: Sequence[str]) -> str | None:
    missing = [k for k in keys if not (Path(cache_root) / k / "meta.json").is_file()]
    return f"no cache entry {missing[0]} under {cache_root}" if missing else None


def _predict_block(features: np.ndarray, model: Any) -> np.ndarray:
    return np.asarray(model.predict_proba(features), dtype=np.float64)


# -- client side ------------------------------------------------------------
def usable_hashes(cache: FeatureCache, keys: Sequence[str]) -> set[str]:
    """Hashes whose every feature was extracted successfully (reads the hash and ok columns only)."""
    usable: set[str] | None = None
    for key in keys:
        table = cache.read_table(key, columns=["hash", "ok"])
        if table is None:
            return set()
        rows = table.to_pandas().drop_duplicates("hash", keep="first")  # the first row wins, as in reads
        ok = set(rows.loc[rows["ok"].astype(bool), "hash"])
        usable = ok if usable is None else usable & ok
    return usable or set()


@dataclass
class ClusterFit:
    """What :func:`fit_xgboost_dask` returns."""

    #: the fitted local pipeline (``model`` step: an ``xgboost.XGBClassifier``)
    pipeline: Any
    #: class probabilities per image hash, one column per class (in ``classes`` order)
    proba: pd.DataFrame
    classes: list[str]
    #: images the model was trained on
    n_train: int
    #: the cluster's workers, for the record
    workers: list[str]


def training_rows(table: pd.DataFrame, train: np.ndarray, classes: list[str], usable: set[str],
                  cache_root: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The training images with cached features (one row per hash) and their class indices."""
    code = {c: i for i, c in enumerate(classes)}
    labelled = table.loc[np.asarray(train, bool), ["hash", "label"]].drop_duplicates("hash")
    labelled = labelled[labelled["hash"].isin(usable) & labelled["label"].astype(str).isin(code)]
    if labelled.empty:
        raise ModelError(f"no training image has cached features under {cache_root}; run "
                         "`embedlab encode` with the same features (and cache) first")
    y_train = labelled["label"].astype(str).map(code).to_numpy()
    absent = [c for i, c in enumerate(classes) if not (y_train == i).any()]
    if absent or len(classes) < 2:
        raise ModelError(f"no training image of class(es) {', '.join(absent) or 'other than ' + classes[0]} "
                         "has cached features; a classifier needs two classes or more")
    return labelled, y_train


def check_workers_see_cache(client, cache_root: str, feature_keys: Sequence[str]) -> None:
    for worker, problem in sorted(client.run(_worker_sees, cache_root, list(feature_keys)).items()):
        if problem:
            raise ModelError(f"worker {worker} cannot read the feature cache ({problem}); workers "
                             "read features from the cache folder, so put it on a file system "
                             "every worker mounts at the same path")


def open_cluster(scheduler: str, stack: ExitStack, cache_root: str, feature_keys: Sequence[str]):
    """A client of ``scheduler`` whose workers all read the feature cache, and their addresses."""
    client = connect(scheduler, stack)
    wait_for_workers(client, scheduler)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    check_workers_see_cache(client, cache_root, feature_keys)
    return client, workers


@dataclass(frozen=True)
class Cluster:
    """Where a cluster fit runs and reads its features: the Dask ``scheduler`` (as for
    :func:`embedlab.encode`), the feature cache at ``cache_dir`` (which every worker must see at
    the same path) and the images one task reads and holds at a time."""

    scheduler: str
    cache_dir: str | os.PathLike
    rows_per_block: int = ROWS_PER_BLOCK


def fit_xgboost_dask(
    table: pd.DataFrame,
    feature_keys: Sequence[str],
    train: np.ndarray,
    cluster: Cluster,
    *,
    classes: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    predict: bool | Sequence[str] = True,
) -> ClusterFit:
    """Fit the registry's ``xgboost`` model with :mod:`xgboost.dask` on a cluster.

    ``table`` has columns ``hash`` and ``label``; ``train`` marks its training
    rows; ``feature_keys`` are the cache keys of the features, in order (as
    ``FeatureExtractor.key()`` gives them). Rows whose features are missing
    or failed are left out, as in a local fit. With ``predict``,
    probabilities are computed on the cluster for every image of ``table``
    that has features (and of the hashes ``predict`` lists, when it is a
    list of them). ``cluster`` says where; ``params`` are the ``xgboost``
    model's (as for ``--param``).
    """
    try:
        import dask
        import dask.array as da
        from xgboost import dask as dxgb
    except ImportError as exc:
        raise ModelError(f"--scheduler needs dask[distributed] and xgboost ({exc}); "
                         "pip install 'embedlab[dask]'") from None
    pipeline = create_classifier("xgboost", params, seed=seed)
    local = pipeline.named_steps["model"]
    classes = sorted(table["label"].dropna().astype(str).unique()) if classes is None else list(classes)
    scheduler, rows_per_block = cluster.scheduler, cluster.rows_per_block
    predict_hashes = [] if isinstance(predict, bool) else list(predict)
    cache_root = str(Path(cluster.cache_dir).resolve())
    cache = FeatureCache(cache_root)
    usable = usable_hashes(cache, feature_keys)

    labelled, y_train = training_rows(table, train, classes, usable, cache_root)
    others = pd.Index(table["hash"]).append(pd.Index(predict_hashes)) if predict is not False else []
    to_predict = np.array(sorted(set(others) & usable), dtype=object)

    with ExitStack() as stack:
        client, workers = open_cluster(scheduler, stack, cache_root, feature_keys)
        dims = [int(cache.meta(k)["dim"]) for k in feature_keys]

        def matrix(hashes: np.ndarray):
            """The features of ``hashes`` as a dask array, one block per task, read on the workers."""
            n_blocks = max(len(workers), math.ceil(len(hashes) / rows_per_block))
            blocks = [da.from_delayed(dask.delayed(load_block, pure=True)(cache_root, list(feature_keys),
                                                                          list(block)),
                                      shape=(len(block), sum(dims)), dtype=np.float32)
                      for block in blocks_of(hashes, n_blocks)]
            return da.concatenate(blocks, axis=0)

        X = matrix(labelled["hash"].to_numpy(object)).persist()
        y = da.from_array(y_train, chunks=(X.chunks[0],))
        model_params = {k: v for k, v in local.get_params().items() if k != "n_jobs"}
        trained = dxgb.DaskXGBClassifier(**model_params)
        trained.client = client
        try:
            trained.fit(X, y, verbose=False)
        except ValueError as exc:
            raise ModelError(f"xgboost.dask training failed: {exc}") from None
        del X
        fitted = _to_local(trained, local)
        proba = pd.DataFrame(np.empty((0, len(classes))), index=pd.Index([], name="hash"))
        if len(to_predict):
            features = matrix(to_predict)
            values = features.map_blocks(_predict_block, fitted, dtype=np.float64,
                                         chunks=(features.chunks[0], (len(classes),))).compute()
            proba = pd.DataFrame(values, index=pd.Index(to_predict, name="hash"))
    proba.columns = list(classes)
    pipeline.steps[-1] = ("model", fitted)
    return ClusterFit(pipeline=pipeline, proba=proba, classes=list(classes),
                      n_train=len(labelled), workers=workers)


def _to_local(dask_model: Any, like: Any) -> Any:
    """The trained booster in a plain ``XGBClassifier`` (what a local fit gives), through XGBoost's format."""
    from xgboost import XGBClassifier

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.ubj"
        dask_model.save_model(path)
        fitted = XGBClassifier(**like.get_params())
        fitted.load_model(path)
    return fitted
