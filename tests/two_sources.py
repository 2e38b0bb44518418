"""A tiny real/fake dataset with two sources of fakes, written from the bundled sample.

The reals and the StyleGAN fakes come from ``data/sample/real-vs-fake``
(fakes under ``fake/stylegan/``); the Stable Diffusion portraits of
``data/sample/synthetic-emotions`` are the second source (``fake/sd/``),
split 9 / 3 / 3 into train, valid and test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedlab_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
SD_SPLITS = {"train": 9, "valid": 3, "test": 3}


def write_two_sources(root: Path) -> Path:
    """``root/{train,valid,test}/{real,fake/stylegan,fake/sd}/``; returns ``root``."""
    portraits = sorted((SAMPLE / "synthetic-emotions").rglob("*.jpg"))
    start = 0
    for split, n_sd in SD_SPLITS.items():
        for label, target in (("real", "real"), ("fake", "fake/stylegan")):
            out = root / split / target
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted((SAMPLE / "real-vs-fake" / split / label).iterdir()):
                shutil.copy(f, out / f.name)
        out = root / split / "fake" / "sd"
        out.mkdir(parents=True, exist_ok=True)
        for f in portraits[start:start + n_sd]:
            shutil.copy(f, out / f.name)
        start += n_sd
    return root


def cli(*args):
    """Run an ``embedlab`` command; returns the result and everything it printed."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, result.stdout + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory) -> Path:
    """The two-source dataset, written once per test module."""
    return write_two_sources(tmp_path_factory.mktemp("two-sources") / "faces")
