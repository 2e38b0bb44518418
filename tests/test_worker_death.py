"""A worker that dies (killed, out of memory) costs only its chunk: retried once, then recorded."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import embedlab
from dying_worker import DiesOnBrightImages, DiesOnPrepare
from embedlab.core.errors import WorkerStartError


def test_a_dying_worker_costs_only_its_images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 200, (16, 16, 3), dtype=np.uint8)).save(folder / f"ok{i}.png")
    Image.new("RGB", (16, 16), (255, 255, 255)).save(folder / "white.png")   # kills every worker that reads it
    Image.new("RGB", (16, 16), (128, 128, 128)).save(folder / "grey.png")    # kills only the first
    extractor = DiesOnBrightImages(marker=str(tmp_path / "died-once"))
    df = embedlab.encode(folder, [extractor], workers=2, chunk_size=2, cache_dir=tmp_path / "cache")
    rows = df.set_index(df["path"].map(os.path.basename))
    assert not rows.loc["white.png", "dies-on.ok"] and rows.loc["white.png", "dies-on.reason"] == "worker died"
    assert "white.png" in rows.loc["white.png", "dies-on.error"]
    assert (tmp_path / "died-once").exists() and rows.loc["grey.png", "dies-on.ok"]  # the retry succeeded
    ok = [n for n in rows.index if n.startswith("ok")]
    # white.png shares its chunk with one good image: that one is lost with it, every other is computed
    lost = [n for n in ok if not rows.loc[n, "dies-on.ok"]]
    assert len(lost) <= 1 and all(rows.loc[n, "dies-on.reason"] == "worker died" for n in lost)
    assert df.attrs["summary"]["features"]["dies-on"]["failures"]["worker died"] == 1 + len(lost)
    # a worker's death is not cached: a rerun tries those images again
    from embedlab.compute.cache import FeatureCache

    known = FeatureCache(tmp_path / "cache").known_hashes(extractor.key())
    assert set(rows.loc[["white.png", *lost], "hash"]).isdisjoint(known)
    assert set(rows.loc[["grey.png", *[n for n in ok if n not in lost]], "hash"]) <= set(known)


def test_one_worker_is_a_process_of_its_own_so_a_dying_image_costs_only_its_chunk(tmp_path):
    """`-w 1` (and a single chunk) run in one worker process, not in the command's own process."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (10 * i, 0, 0)).save(folder / f"ok{i}.png")
    Image.new("RGB", (16, 16), (255, 255, 255)).save(folder / "white.png")
    extractor = DiesOnBrightImages(marker=str(tmp_path / "died-once"))
    df = embedlab.encode(folder, [extractor], workers=1, chunk_size=1, cache_dir=tmp_path / "cache")
    rows = df.set_index(df["path"].map(os.path.basename))
    assert rows.loc["white.png", "dies-on.reason"] == "worker died"
    assert rows.loc[["ok0.png", "ok1.png", "ok2.png"], "dies-on.ok"].all()
    # one chunk holding every image: the run still ends, with every image recorded
    df = embedlab.encode(folder, [extractor], workers=1, chunk_size=16, cache_dir=tmp_path / "cache2")
    assert set(df["dies-on.reason"].dropna()) == {"worker died"} and len(df) == 4


def test_workers_zero_works_in_this_process(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "a.png")
    df = embedlab.encode(folder, "pixels[size=4]", workers=0, cache_dir=tmp_path / "cache")
    assert df["pixels.ok"].all() and df.attrs["summary"]["features"]["pixels"]["computed"] == 1


def test_workers_that_cannot_start_are_one_clear_error_not_a_death_per_image(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "a.png")
    with pytest.raises(WorkerStartError, match="could not start.*--workers 0"):
        embedlab.encode(folder, [DiesOnPrepare()], workers=1, cache_dir=tmp_path / "cache")


def test_a_pool_whose_pipes_break_at_start_names_the_cause(tmp_path, monkeypatch):
    """Where the interpreter cannot be started (another user's environment), the pipe to it breaks."""
    from joblib.externals.loky import ProcessPoolExecutor

    def broken(self, *args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(ProcessPoolExecutor, "submit", broken)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / "a.png")
    with pytest.raises(WorkerStartError, match="could not start.*--workers 0"):
        embedlab.encode(folder, "pixels[size=4]", workers=1, cache_dir=tmp_path / "cache")


def test_through_the_command_line_a_dying_worker_is_a_summary_line_not_a_traceback(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from embedlab.features import EXTRACTORS
    from embedlab_cli.main import app

    monkeypatch.setitem(EXTRACTORS._entries, "dies-on", DiesOnBrightImages)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(32):  # two full chunks of 16, then white.png alone in a third
        Image.new("RGB", (16, 16), (i, 0, 0)).save(folder / f"ok{i:02d}.png")
    Image.new("RGB", (16, 16), (255, 255, 255)).save(folder / "white.png")
    result = CliRunner().invoke(app, ["encode", str(folder), "-f", "dies-on", "-w", "2", "-q",
                                      "--cache-dir", str(tmp_path / "cache")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "BrokenProcessPool" not in result.output
    words = " ".join(result.output.split())
    assert "│ dies-on │ 33 │ 0 │ 1 │ worker died: 1 │" in words  # computed (tried), from cache, failed, by reason
    assert "1 image(s) not used (worker died: 1)" in words
    assert "white.png: worker died" in words
