from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"

# Doctests and relative paths in examples assume the repository root.
os.chdir(ROOT)


@pytest.fixture
def sample() -> Path:
    return SAMPLE


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"
