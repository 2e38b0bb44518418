"""The file hash index: a warm load reads no image it remembers, and any change to a file is seen."""

from __future__ import annotations

import os
import shutil

import pytest
from typer.testing import CliRunner

from embedlab.compute.cache import FeatureCache
from embedlab.datasets import hash_index, images, load
from embedlab.datasets.images import content_hash
from embedlab_cli.main import app


@pytest.fixture
def dataset(tmp_path, sample):
    root = tmp_path / "faces"
    shutil.copytree(sample / "real-vs-fake", root)
    return root


@pytest.fixture
def reads(monkeypatch):
    """The paths whose bytes are read, in order."""
    seen: list[str] = []
    real = images.read_file

    def counting(uri):
        seen.append(os.fspath(uri))
        return real(uri)

    monkeypatch.setattr(images, "read_file", counting)
    return seen


@pytest.fixture
def settled(monkeypatch):
    """Files written by the test count as settled at once (the racy window is 0 s)."""
    monkeypatch.setattr(hash_index, "RACY_SECONDS", 0.0)


def test_a_warm_load_reads_no_file_and_gives_the_same_hashes(dataset, tmp_path, reads, settled):
    index = tmp_path / "cache" / hash_index.INDEX_NAME
    cold = load(dataset, hash_index=index)
    n = len(cold)
    assert len(reads) == n and index.is_file()
    reads.clear()
    warm = load(dataset, hash_index=index)
    assert reads == []
    assert warm["hash"].tolist() == cold["hash"].tolist() == load(dataset)["hash"].tolist()


def test_a_changed_file_is_read_again_even_with_its_size_and_mtime_restored(dataset, tmp_path, reads, settled):
    index = tmp_path / "index.parquet"
    load(dataset, hash_index=index)
    victim = sorted(dataset.rglob("*.jpg"))[0]
    other = sorted(dataset.rglob("*.jpg"))[-1]
    before = os.stat(victim)
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0xFF  # same size, different bytes
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(victim).st_mtime_ns == before.st_mtime_ns and os.stat(victim).st_size == before.st_size
    reads.clear()
    table = load(dataset, hash_index=index).set_index("path")
    assert reads == [str(victim)]
    assert table.loc[str(victim), "hash"] == content_hash(bytes(data))
    # a file replaced by another one's bytes (a new inode) is read too
    os.replace(shutil.copy(other, victim.with_suffix(".tmp")), victim)
    reads.clear()
    table = load(dataset, hash_index=index).set_index("path")
    assert reads == [str(victim)] and table.loc[str(victim), "hash"] == table.loc[str(other), "hash"]


def test_a_file_changed_just_before_it_was_hashed_is_not_remembered(dataset, tmp_path, reads):
    index = tmp_path / "index.parquet"
    load(dataset, hash_index=index)  # every file was written a moment ago: all inside the racy window
    reads.clear()
    load(dataset, hash_index=index)
    assert len(reads) == len(list(dataset.rglob("*.jpg")))


def test_a_damaged_index_costs_a_rehash_not_a_failure(dataset, tmp_path, reads, settled):
    index = tmp_path / "index.parquet"
    expected = load(dataset, hash_index=index)["hash"].tolist()
    index.write_bytes(b"not parquet")
    reads.clear()
    assert load(dataset, hash_index=index)["hash"].tolist() == expected
    assert len(reads) == len(expected)
    reads.clear()
    load(dataset, hash_index=index)  # rewritten whole
    assert reads == []


def test_a_file_that_became_unreadable_or_too_large_is_a_row_again(dataset, tmp_path, settled, monkeypatch):
    index = tmp_path / "index.parquet"
    load(dataset, hash_index=index)
    victim = sorted(dataset.rglob("*.jpg"))[0]
    monkeypatch.setenv("EMBEDLAB_MAX_FILE_MB", "0.001")
    row = load(dataset, hash_index=index).set_index("path").loc[str(victim)]
    assert row["hash"] is None and row["read_reason"] == "too large"
    monkeypatch.delenv("EMBEDLAB_MAX_FILE_MB")
    victim.unlink()
    assert str(victim) not in load(dataset, hash_index=index)["path"].tolist()


def test_encode_keeps_the_index_in_the_cache_and_rehash_reads_every_file(dataset, cache_dir, reads, settled):
    runner = CliRunner()
    args = ["encode", str(dataset), "-f", "spectrum", "-w", "0", "--cache-dir", str(cache_dir)]
    assert runner.invoke(app, args).exit_code == 0
    assert (cache_dir / hash_index.INDEX_NAME).is_file()
    assert FeatureCache(cache_dir).file_index().path == cache_dir / hash_index.INDEX_NAME
    assert hash_index.INDEX_NAME not in FeatureCache(cache_dir).keys()
    reads.clear()
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "nothing to compute" in result.output
    assert reads == []
    result = runner.invoke(app, args + ["--rehash"])
    assert result.exit_code == 0 and len(reads) == len(list(dataset.rglob("*.jpg")))
