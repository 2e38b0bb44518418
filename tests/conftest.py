from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
#: the face encoding the tests fit on the sample's 256 px aligned real/fake faces
RVF_ENCODING = "encoding[detector=none]"

# Doctests and relative paths in examples assume the repository root.
os.chdir(ROOT)

# PyTorch's OpenMP threads wait for work by spinning. Where the cores are shared (pytest-xdist's
# workers, the worker pools and subprocesses of the tests themselves), the spinning threads take
# the CPU from the ones that compute: a small network's epoch then takes several times as long.
# Passive waiting changes no result. Set before anything loads torch; subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# A pytest-xdist worker starts with COLUMNS=80 in its environment. The command line's consoles,
# made when it is imported, would keep that width for good, and the tests that give one command
# a wider terminal (CliRunner's env={"COLUMNS": ...}) would no longer get it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


@pytest.fixture
def sample() -> Path:
    return SAMPLE


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def rvf_encodings(tmp_path_factory) -> Path:
    """A feature cache holding ``RVF_ENCODING`` of every image in ``data/sample/real-vs-fake``.

    Computed once per test run, also when pytest-xdist runs the tests in several processes (the
    first one to get here computes it, under a lock, in the temporary folder they share). Never
    write to it: start a test's cache as a copy (``seed_cache``).
    """
    import embedlab
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # basetemp/popen-gw0 -> basetemp, the same for every worker
    cache = shared / "rvf-encodings"
    done = shared / "rvf-encodings.done"
    with FileLock(str(shared / "rvf-encodings.lock")):
        if not done.exists():
            shutil.rmtree(cache, ignore_errors=True)  # a run that stopped halfway
            embedlab.encode(SAMPLE / "real-vs-fake", RVF_ENCODING, workers=0, cache_dir=cache)
            done.touch()
    return cache


def seed_cache(rvf_encodings: Path, cache: Path) -> Path:
    """``cache``, a new feature cache that starts with the real-vs-fake face encodings."""
    shutil.copytree(rvf_encodings, cache)
    return cache
