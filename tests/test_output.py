"""Output people read: the last progress line, errors naming the file and field, the runs list, the
reasons `cache failures` gives, the limits `too large` quotes, sizes and counts `datasets inspect` prints."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

import embedlab_cli.app as cli_app
from embedlab_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FEATURE = "pixels[size=8]"
runner = CliRunner()


def test_the_last_progress_line_gives_the_real_rate_and_nothing_remaining(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(cli_app, "err_console", Console(file=out, width=200))  # not a terminal: plain lines
    monkeypatch.setenv("EMBEDLAB_PROGRESS_SECONDS", "3600")
    clock = iter([100.0, 100.0, 104.0, 104.0, 104.0])
    monkeypatch.setattr(cli_app.time, "monotonic", lambda: next(clock))
    with cli_app.progress_bar("features", unit="faces") as update:
        update(8, 8)  # one count, at the end: a network that scores its images in one go
    last = out.getvalue().strip().splitlines()[-1]
    assert last == "features: 8/8 faces, 2.0 faces/s, elapsed 0:00:04 / remaining 0:00:00", last


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("out")
    result = runner.invoke(app, ["fit", str(SAMPLE / "real-vs-fake"), "-f", FEATURE, "-m", "logreg", "--name", "lr",
                                 "-w", "0", "-q", "--cache-dir", str(root / "cache"), "--runs-dir", str(root / "runs")])
    assert result.exit_code == 0, result.output
    return root


def test_a_run_without_its_features_is_an_error_naming_the_file_and_field(run_folder, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(run_folder / "runs" / "lr", bad)
    params = json.loads((bad / "params.json").read_text())
    del params["features"]
    (bad / "params.json").write_text(json.dumps(params))
    result = runner.invoke(app, ["predict", str(SAMPLE / "face-photos"), "--run", str(bad), "--cache-dir",
                                 str(tmp_path / "cache")])
    assert result.exit_code == 1
    # the last line is the error; a status line ("predict: opening ...") may come before it on stderr
    assert result.output.strip().splitlines()[-1] == (
        f"error: {bad / 'params.json'}: no 'features': a classifier run needs the feature specs it was fitted on")


def test_runs_lists_each_folder_and_says_which_it_could_not_read(run_folder, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(run_folder / "runs" / "lr", runs / "lr")
    shutil.copytree(run_folder / "runs" / "lr", runs / "copy")
    shutil.copytree(run_folder / "runs" / "lr", runs / "broken")
    (runs / "broken" / "params.json").write_text('{"kind": 3}')
    params = json.loads((runs / "copy" / "params.json").read_text())
    params["name"] = "../../../elsewhere/x"
    (runs / "copy" / "params.json").write_text(json.dumps(params))
    result = runner.invoke(app, ["runs", "--runs-dir", str(runs), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["folder"] for r in rows) == ["copy", "lr"]
    assert {r["folder"]: r["name"] for r in rows}["copy"] == "../../../elsewhere/x"
    assert "not listed: run folder broken:" in result.stderr and '"kind" must be one of' in result.stderr
    table = runner.invoke(app, ["runs", "--runs-dir", str(runs)])
    first = [line.split("│")[1].strip() for line in table.stdout.splitlines() if line.startswith("│")]
    assert first[0] in ("lr", "copy") and {"lr", "copy"} <= set(first)


def test_cache_failures_gives_the_reason_encode_recorded(tmp_path):
    data = tmp_path / "photos"
    data.mkdir()
    shutil.copy(SAMPLE / "face-photos" / "obama.jpg", data / "good.jpg")
    (data / "broken.jpg").symlink_to("no-such-target.jpg")
    (data / "folder.jpg").mkdir()
    (data / "huge.jpg").write_bytes(b"\0" * (2 * 2**20))
    os.environ["EMBEDLAB_MAX_FILE_MB"] = "1"
    try:
        args = [str(data), "-f", FEATURE, "--cache-dir", str(tmp_path / "cache")]
        assert runner.invoke(app, ["encode", *args, "-w", "0", "-q"]).exit_code == 0
        result = runner.invoke(app, ["cache", "failures", *args, "--format", "json"])
        text = runner.invoke(app, ["cache", "failures", *args])
    finally:
        del os.environ["EMBEDLAB_MAX_FILE_MB"]
    assert result.exit_code == 0, result.output
    assert sorted((r["image_id"], r["reason"]) for r in json.loads(result.stdout)) == [
        ("broken.jpg", "broken link"), ("folder.jpg", "not a file"), ("huge.jpg", "too large")]
    words = " ".join(text.output.split())
    assert "pixels: 3 of 4 images in the cache failed" in words and "not computed yet" not in words


def test_too_large_quotes_the_limit_embedlab_max_pixels_sets(tmp_path, monkeypatch):
    from embedlab.core.errors import ImageReadError
    from embedlab.datasets.images import read_image

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 8_000)).save(bomb)  # 96 Mpixel: over Pillow's own warning limit too
    with pytest.raises(ImageReadError, match=r"too large \(12000x8000 pixels; the limit is 16,000,000 decoded "
                                             r"pixels, set by EMBEDLAB_MAX_PIXELS\)"):
        read_image(bomb)
    monkeypatch.setenv("EMBEDLAB_MAX_PIXELS", "200000000")  # the user's limit, above Pillow's, is the one applied
    assert read_image(bomb).shape == (8000, 12000, 3)


def test_inspect_prints_sizes_as_whole_numbers_and_counts_unlabelled_images(tmp_path):
    data = tmp_path / "photos"
    shutil.copytree(SAMPLE / "face-photos", data, ignore=shutil.ignore_patterns("LICENSE"))
    (data / "empty.jpg").write_bytes(b"")
    report = json.loads(runner.invoke(app, ["datasets", "inspect", str(data), "--json"]).stdout)
    assert report["images"] == 4 and all(type(s["width"]) is int for s in report["sizes"])
    text = runner.invoke(app, ["datasets", "inspect", str(data)]).output
    assert not re.search(r"\d\.0 ", text) and "4 images" in text


def test_predict_writes_the_face_found_field_the_readme_promises(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "`face_found` is false in `predict`'s output" in " ".join(readme.split())  # however the line wraps
    result = runner.invoke(app, ["predict", str(SAMPLE / "face-photos" / "obama.jpg"), "--task", "emotion",
                                 "--cache-dir", str(tmp_path / "cache"), "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["face_found"] is True
