"""The file hash index: a warm load reads no image it remembers, and any change to a file is seen."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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
    real = images.read_file_stat

    def counting(uri):
        seen.append(os.fspath(uri))
        return real(uri)

    monkeypatch.setattr(images, "read_file_stat", counting)
    return seen


@pytest.fixture
def settled(monkeypatch):
    """Files written by the test count as settled at once (the racy window is 0 s)."""
    monkeypatch.setattr(hash_index, "RACY_SECONDS", 0.0)


def test_a_warm_load_reads_no_file_and_gives_the_same_hashes(dataset, tmp_path, reads, settled):
    index = tmp_path / "cache" / hash_index.INDEX_NAME
    index.parent.mkdir()
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


def test_a_file_changed_just_before_it_was_hashed_is_not_remembered(dataset, tmp_path, reads, monkeypatch):
    monkeypatch.setattr(hash_index, "RACY_SECONDS", 10**6)  # every file counts as changed a moment ago
    index = tmp_path / "index.parquet"
    load(dataset, hash_index=index)
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


def test_a_remembered_file_that_is_now_too_large_or_unreadable_is_a_row(dataset, tmp_path, settled, monkeypatch):
    index = tmp_path / "index.parquet"
    load(dataset, hash_index=index)
    victim = str(sorted(dataset.rglob("*.jpg"))[0])
    monkeypatch.setenv("EMBEDLAB_MAX_FILE_MB", "0.001")
    row = load(dataset, hash_index=index).set_index("path").loc[victim]
    assert pd.isna(row["hash"]) and row["read_reason"] == "too large"
    monkeypatch.delenv("EMBEDLAB_MAX_FILE_MB")
    real_open = open

    def no_permission(path, *args, **kwargs):  # what a file of mode 000 does to anyone but root
        if os.fspath(path) == victim:
            raise PermissionError(13, "Permission denied", victim)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(images.os, "access", lambda path, mode: os.fspath(path) != victim)
    monkeypatch.setattr("builtins.open", no_permission)
    row = load(dataset, hash_index=index).set_index("path").loc[victim]
    assert pd.isna(row["hash"]) and row["read_reason"] == "unreadable"


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


def test_the_identity_remembered_is_the_one_of_the_file_read(dataset, tmp_path, settled, monkeypatch):
    """A path that leads to another file between its stat and its read must not pair the first file's
    identity with the second file's hash. Swapping a folder changes no time of the files in it, so
    the identity must come from the file actually opened."""
    index = tmp_path / "index.parquet"
    files = sorted(dataset.rglob("*.jpg"))
    victim, other = files[0], files[-1]
    folder = victim.parent
    alternate = tmp_path / "alternate"
    shutil.copytree(folder, alternate)
    shutil.copy(other, alternate / victim.name)
    original = victim.read_bytes()
    real_stat = os.stat
    swapped = []

    def stat_then_swap(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if os.fspath(path) == str(victim) and not swapped:
            swapped.append(True)  # the next open of the path finds the alternate folder's file
            os.rename(folder, tmp_path / "aside")
            os.rename(alternate, folder)
        return st

    monkeypatch.setattr(os, "stat", stat_then_swap)
    load(dataset, hash_index=index)
    monkeypatch.setattr(os, "stat", real_stat)
    assert swapped
    os.rename(folder, alternate)  # swapped back: the very same file, its times untouched
    os.rename(tmp_path / "aside", folder)
    assert victim.read_bytes() == original
    table = load(dataset, hash_index=index).set_index("path")
    assert table.loc[str(victim), "hash"] == content_hash(original)


def test_rehash_reads_every_file_and_repairs_the_index(dataset, tmp_path, reads, settled):
    index_file = tmp_path / "index.parquet"
    load(dataset, hash_index=index_file)
    victim = str(sorted(dataset.rglob("*.jpg"))[0])
    stale = hash_index.FileHashIndex(index_file)
    stale.remember(victim, os.stat(victim), "0" * 32, now_ns=os.stat(victim).st_ctime_ns + 10**10)
    stale.save()  # a wrong hash, as an unseen write would leave
    assert load(dataset, hash_index=index_file).set_index("path").loc[victim, "hash"] == "0" * 32
    reads.clear()
    repaired = load(dataset, hash_index=hash_index.FileHashIndex(index_file, trust=False))
    assert len(reads) == len(repaired)
    assert load(dataset, hash_index=index_file).set_index("path").loc[victim, "hash"] == content_hash(
        open(victim, "rb").read())


@pytest.mark.parametrize("column, values", [
    ("dev", lambda n: pa.array([2**64 - 1] * n, pa.uint64())),
    ("dev", lambda n: pa.array(["x"] * n)),
    ("hash", lambda n: pa.array(list(range(n)), pa.int64())),
])
def test_a_malformed_index_costs_a_rehash_not_a_failure(dataset, tmp_path, reads, settled, column, values):
    index = tmp_path / "index.parquet"
    expected = load(dataset, hash_index=index)["hash"].tolist()
    table = pq.read_table(index)
    table = table.set_column(table.schema.get_field_index(column), column, values(len(table)))
    pq.write_table(table, index)
    reads.clear()
    assert load(dataset, hash_index=index)["hash"].tolist() == expected
    assert len(reads) == len(expected)


def test_inode_numbers_beyond_int64_are_kept(dataset, tmp_path, settled, monkeypatch):
    index = hash_index.FileHashIndex(tmp_path / "index.parquet")
    victim = str(sorted(dataset.rglob("*.jpg"))[0])
    st = os.stat(victim)
    big = os.stat_result((st.st_mode, 2**64 - 5, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
                          int(st.st_atime), int(st.st_mtime), int(st.st_ctime), st.st_atime, st.st_mtime,
                          st.st_ctime, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns))
    index.remember(victim, big, "f" * 32, now_ns=st.st_ctime_ns + 10**10)
    index.save()
    assert hash_index.FileHashIndex(tmp_path / "index.parquet").lookup(victim, big) == "f" * 32


def test_concurrent_saves_keep_each_others_entries(dataset, tmp_path, settled):
    path = tmp_path / "index.parquet"
    files = [str(f) for f in sorted(dataset.rglob("*.jpg"))]
    first, second = hash_index.FileHashIndex(path), hash_index.FileHashIndex(path)
    len(first), len(second)  # both read the (empty) index before either saves
    now = os.stat(files[0]).st_ctime_ns + 10**10
    first.remember(files[0], os.stat(files[0]), "a" * 32, now_ns=now)
    second.remember(files[1], os.stat(files[1]), "b" * 32, now_ns=now)
    first.save()
    second.save()
    merged = hash_index.FileHashIndex(path)
    assert merged.lookup(files[0], os.stat(files[0])) == "a" * 32
    assert merged.lookup(files[1], os.stat(files[1])) == "b" * 32


def test_a_query_that_only_reads_a_cache_creates_no_cache_folder(dataset, tmp_path, settled):
    from embedlab.compute.extraction import failures

    missing = tmp_path / "no-such-cache"
    failures(dataset, "spectrum", cache_dir=missing)
    assert not missing.exists()


def test_a_file_changed_after_listing_is_not_computed_under_its_old_hash(dataset, cache_dir):
    """Features are stored under the hash taken when the file was listed, so the bytes computed from
    must be those bytes: a file rewritten in between is a 'changed' failure, retried next run."""
    import embedlab
    from embedlab.compute.cache import FeatureCache

    table = load(dataset)
    victim = table["path"].iloc[0]
    old_hash = table["hash"].iloc[0]
    shutil.copy(table["path"].iloc[-1], victim)
    df = embedlab.encode(table, "spectrum", cache_dir=cache_dir, workers=0)
    row = df.set_index("path").loc[victim]
    assert not row["spectrum.ok"] and row["spectrum.reason"] == "changed"
    assert old_hash not in FeatureCache(cache_dir).known_hashes(df.attrs["features"]["spectrum"]["key"])


def test_an_entry_a_write_slipped_past_is_forgotten_once_encode_sees_the_bytes_differ(dataset, cache_dir, settled):
    """A write the index cannot see (through a memory mapping, say) leaves a wrong entry: encode
    finds the bytes differ ('changed'), drops the entry, and the next run computes the new content."""
    import embedlab

    embedlab.encode(dataset, "spectrum", cache_dir=cache_dir, workers=0)
    victim = sorted(dataset.rglob("*.jpg"))[0]
    index = FeatureCache(cache_dir).file_index()
    index.remember(str(victim), os.stat(victim), "0" * 32, now_ns=os.stat(victim).st_ctime_ns + 10**10)
    index.save()
    first = embedlab.encode(dataset, "spectrum", cache_dir=cache_dir, workers=0).set_index("path")
    assert first.loc[str(victim), "hash"] == "0" * 32 and first.loc[str(victim), "spectrum.reason"] == "changed"
    second = embedlab.encode(dataset, "spectrum", cache_dir=cache_dir, workers=0).set_index("path")
    assert second.loc[str(victim), "hash"] == content_hash(victim.read_bytes())
    assert second.loc[str(victim), "spectrum.ok"]


def test_rehash_drops_the_entries_of_files_that_are_gone(dataset, tmp_path, settled):
    index_file = tmp_path / "index.parquet"
    load(dataset, hash_index=index_file)
    victim = sorted(dataset.rglob("*.jpg"))[0]
    st = os.stat(victim)
    victim.unlink()
    load(dataset, hash_index=index_file)
    assert hash_index.FileHashIndex(index_file).lookup(str(victim), st) is not None  # kept: nothing read it
    load(dataset, hash_index=hash_index.FileHashIndex(index_file, trust=False))
    assert hash_index.FileHashIndex(index_file).lookup(str(victim), st) is None


def test_a_dataset_path_that_does_not_exist_leaves_no_cache_folder(tmp_path):
    runner = CliRunner()
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["encode", str(tmp_path / "typo"), "--cache-dir", str(cache)])
    assert result.exit_code != 0 and "no such file or folder" in result.output
    assert not cache.exists()


def test_the_current_folder_lists_paths_as_path_would(tmp_path, sample, monkeypatch):
    """``load(".")`` writes ``a.jpg``, not ``./a.jpg``, as before the listing used strings."""
    from pathlib import Path

    shutil.copytree(sample / "real-vs-fake", tmp_path / "faces")
    monkeypatch.chdir(tmp_path / "faces")
    table = load(".")
    assert sorted(table["path"]) == sorted(str(p) for p in Path(".").rglob("*.jpg"))
    assert not any(p.startswith("./") for p in table["path"])
    assert table["image_id"].tolist() == table["path"].tolist()


def test_network_inputs_are_checked_against_their_listed_hash(dataset):
    from embedlab.nets.images import InputSettings, prepare_images

    path = str(sorted(dataset.rglob("*.jpg"))[0])
    same, info = prepare_images([path], InputSettings(32, 3), hashes=[content_hash(open(path, "rb").read())])
    assert "reason" not in info[0] and same.any()
    other, info = prepare_images([path], InputSettings(32, 3), hashes=["0" * 32])
    assert info[0]["reason"] == "changed" and not other.any()
