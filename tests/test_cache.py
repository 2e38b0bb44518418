from __future__ import annotations

import numpy as np
import pytest

from embedlab.compute.cache import FeatureCache
from embedlab.core.errors import CacheError


def rows(hashes, value):
    return [{"hash": h, "ok": True, "vector": np.full(3, value, np.float32)} for h in hashes]


def test_first_row_per_hash_wins_and_parts_are_atomic(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.append("k", rows(["a", "b"], 1.0), dim=3)
    cache.append("k", rows(["b", "c"], 2.0), dim=3)
    (tmp_path / "k" / ".tmp-part-half-written.parquet").write_bytes(b"PAR1 garbage")
    table = cache.read("k")
    assert sorted(table.index) == ["a", "b", "c"]
    assert table.loc["b", "vector"].tolist() == [1.0, 1.0, 1.0]
    assert cache.known_hashes("k") == {"a", "b", "c"}


def test_failures_keep_their_reason_and_have_no_vector(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.append("k", [{"hash": "x", "ok": False, "reason": "empty file", "error": "x.jpg: empty file"}], dim=2)
    row = cache.read("k").loc["x"]
    assert not row["ok"] and row["reason"] == "empty file" and row["vector"] is None


def test_compaction_merges_without_losing_or_duplicating(tmp_path):
    cache = FeatureCache(tmp_path)
    for i in range(6):
        cache.append("k", rows([f"h{i}", f"h{i + 1}"], float(i)), dim=3)
    before = cache.read("k")
    assert cache.compact("k", min_parts=2)
    assert len(cache.parts("k")) == 1
    after = cache.read("k")
    assert after.index.tolist() == before.index.tolist()
    assert all(np.array_equal(before.loc[h, "vector"], after.loc[h, "vector"]) for h in before.index)


def test_wrong_vector_size_is_refused(tmp_path):
    with pytest.raises(CacheError, match=r"expected \(3,\)"):
        FeatureCache(tmp_path).append("k", [{"hash": "a", "ok": True, "vector": np.zeros(2)}], dim=3)


def test_corrupt_part_is_reported_with_its_folder(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.append("k", rows(["a"], 1.0), dim=3)
    (tmp_path / "k" / "part-0-bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(CacheError, match="unreadable part"):
        cache.read("k")
