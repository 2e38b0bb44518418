"""Encoding and XGBoost training on a real Dask cluster (worker processes on this machine)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytest.importorskip("distributed")

import embedlab
from embedlab.compute.cache import FeatureCache
from embedlab.core.errors import EmbedlabError, ModelError

SPECS = "encoding[detector=none],spectrum"
#: chunks of 4 images on the cluster (the local reference uses the default 16)
CHUNK = 4


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, rvf_encodings):
    """The single-machine cache every cluster run must reproduce (the face encodings from the
    session's cache, the spectrum computed here)."""
    from conftest import SAMPLE, seed_cache

    cache = seed_cache(rvf_encodings, tmp_path_factory.mktemp("local") / "cache")
    df = embedlab.encode(SAMPLE / "real-vs-fake", SPECS, workers=1, cache_dir=cache)
    assert df["encoding.ok"].all() and df["spectrum.ok"].all()
    return cache, df


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            yield cluster, client


def assert_same_cache(a, b, keys) -> None:
    for key in keys:
        ra, rb = FeatureCache(a).read(key), FeatureCache(b).read(key)
        assert len(ra) == 58 and set(ra.index) == set(rb.index)
        rb = rb.loc[ra.index]
        assert all(np.array_equal(x, y) for x, y in zip(ra["vector"], rb["vector"]))
        for col in ra.columns.drop("vector"):
            assert ra[col].equals(rb[col]), (key, col)


def duplicate_rows(cache_dir, key) -> int:
    hashes = pd.concat([pq.read_table(p, columns=["hash"]).to_pandas()
                        for p in FeatureCache(cache_dir).parts(key)])["hash"]
    return int(hashes.duplicated().sum())


def test_local_cluster_gives_the_local_cache(sample, local_run, tmp_path):
    local_cache, local_df = local_run
    seen = []
    df = embedlab.encode(sample / "real-vs-fake", SPECS, cache_dir=tmp_path / "cache", scheduler="local:2",
                         chunk_size=CHUNK, on_progress=lambda done, total: seen.append((done, total)))
    keys = [d["key"] for d in df.attrs["features"].values()]
    assert keys == [d["key"] for d in local_df.attrs["features"].values()]
    assert_same_cache(local_cache, tmp_path / "cache", keys)
    assert seen[0] == (0, 58) and seen[-1] == (58, 58) and len(seen) == 1 + 15  # one tick per chunk
    assert df.attrs["summary"]["features"]["encoding"]["computed"] == 58
    again = embedlab.encode(sample / "real-vs-fake", SPECS, cache_dir=tmp_path / "cache", scheduler="local:2")
    assert again.attrs["summary"]["computed_images"] == 0  # cached: no cluster needed at all


def test_a_killed_worker_loses_nothing(sample, local_run, cluster, tmp_path):
    local_cache, local_df = local_run
    dask_cluster, client = cluster
    before = client.run(os.getpid)
    victim = before[sorted(before)[0]]
    killed = []

    def kill_after_first_chunk(done: int, total: int) -> None:
        if done and not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    # 15 chunks: 15 parts per key, below the compaction threshold, so a chunk
    # committed twice would show as a duplicate row below
    df = embedlab.encode(sample / "real-vs-fake", SPECS, cache_dir=tmp_path / "cache",
                         scheduler=dask_cluster.scheduler_address, chunk_size=CHUNK,
                         on_progress=kill_after_first_chunk)
    assert killed and killed[0] < 58
    keys = [d["key"] for d in local_df.attrs["features"].values()]
    assert_same_cache(local_cache, tmp_path / "cache", keys)
    assert all(duplicate_rows(tmp_path / "cache", k) == 0 for k in keys)
    assert df.attrs["summary"]["features"]["spectrum"]["computed"] == 58
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the worker for the next tests
    assert victim not in client.run(os.getpid).values()


def test_workers_that_cannot_see_the_images_stop_the_run(sample, cluster, tmp_path):
    dask_cluster, _ = cluster
    table = embedlab.datasets.load(sample / "real-vs-fake")
    table["path"] = [f"/nowhere/{os.path.basename(p)}" for p in table["path"]]
    with pytest.raises(EmbedlabError, match=r"worker tcp://\S+ on host .* cannot read the first image "
                                            r"/nowhere/\S+\.jpg .*file system"):
        embedlab.encode(table, "spectrum", cache_dir=tmp_path / "cache", scheduler=dask_cluster.scheduler_address)
    assert FeatureCache(tmp_path / "cache").read(embedlab.features.create_extractor("spectrum").key()).empty


def test_images_by_fsspec_url(sample, local_run, cluster, tmp_path):
    local_cache, local_df = local_run
    dask_cluster, _ = cluster
    table = embedlab.datasets.load(sample / "real-vs-fake").head(6)
    table["path"] = ["file://" + os.path.abspath(p) for p in table["path"]]
    df = embedlab.encode(table, "spectrum", cache_dir=tmp_path / "cache", scheduler=dask_cluster.scheduler_address)
    expected = local_df.set_index("hash")["spectrum"]
    assert df["spectrum.ok"].all()
    assert all(np.array_equal(v, expected[h]) for h, v in zip(df["hash"], df["spectrum"]))


def test_bad_scheduler_addresses_are_clean_errors(sample, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import embedlab.compute.distributed
    from embedlab_cli.main import app

    monkeypatch.setattr(embedlab.compute.distributed, "CONNECT_TIMEOUT_S", 1)

    for bad, message in (("local:0", "local:N with N >= 1"), ("somewhere", "not understood"),
                         ("missing.json", "no such scheduler file")):
        with pytest.raises(EmbedlabError, match=message):
            embedlab.encode(sample / "face-photos", "spectrum", cache_dir=tmp_path, scheduler=bad)
    result = CliRunner().invoke(app, ["encode", str(sample / "face-photos"), "-f", "spectrum",
                                      "--cache-dir", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 1 and "cannot reach the Dask scheduler" in result.output
    assert "Traceback" not in result.output


def test_xgboost_dask_matches_the_local_fit(sample, local_run, cluster, tmp_path):
    pytest.importorskip("xgboost")
    from embedlab.classifiers.fit import fit_classifier
    from embedlab.classifiers.xgboost_dask import Cluster, fit_xgboost_dask
    from embedlab.api import load_run

    local_cache, local_df = local_run
    dask_cluster, _ = cluster
    common = dict(cache_dir=local_cache, runs_dir=tmp_path / "runs", workers=1, seed=0)
    local = fit_classifier(sample / "real-vs-fake", SPECS, "xgboost", name="local", **common)
    remote = fit_classifier(sample / "real-vs-fake", SPECS, "xgboost", name="dask",
                            scheduler=dask_cluster.scheduler_address, **common)
    acc = {r.name: r.metrics["sets"]["test"]["accuracy"] for r in (local, remote)}
    assert remote.metrics["sets"]["test"]["n"] == 16
    assert abs(acc["dask"] - acc["local"]) <= 2 / 16, acc

    # the run folder is an ordinary XGBoost run: predict reads it back
    assert "model.ubj" in remote.params["model_files"]
    reloaded = load_run(tmp_path / "runs" / "dask")
    again = reloaded.predict(local_df, cache_dir=local_cache)
    stored = reloaded.predictions().query("set == 'test'").set_index("hash")
    fresh = again.set_index("hash").loc[stored.index]
    assert np.allclose(fresh["proba_fake"], stored["proba_fake"]) and (fresh["pred"] == stored["pred"]).all()

    # probabilities computed on the cluster are the fitted model's
    keys = list(remote.params["feature_keys"].values())
    fit = fit_xgboost_dask(local_df, keys, (local_df["split"] == "train").to_numpy(),
                           Cluster(dask_cluster.scheduler_address, local_cache), classes=remote.classes)
    X, ok = embedlab.feature_matrix(local_df, ["encoding", "spectrum"])
    assert fit.n_train == 32 and len(fit.proba) == 58
    assert np.allclose(fit.proba.loc[local_df["hash"]].to_numpy(), fit.pipeline.predict_proba(X), atol=1e-6)

    with pytest.raises(ModelError, match="--scheduler trains the xgboost model only"):
        fit_classifier(sample / "real-vs-fake", SPECS, "logreg", scheduler=dask_cluster.scheduler_address,
                       **common)
