"""`embedlab fit` keeps its word for both kinds of model: every option works or is refused with the
reason, and a network says what it is doing, epoch by epoch."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedlab_cli.main import app
from embedlab.nets.training import BALANCE

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
runner = CliRunner()
TINY = ["-m", "emotion-cnn", "-p", "widths=(4,4,4,4)", "-p", "batch_size=8"]


def test_a_network_takes_the_dataset_options_and_prints_each_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROGRESS_SECONDS", "0")
    result = runner.invoke(app, ["fit", str(SAMPLE / "fer2013"), *TINY, "--epochs", "2", "--per-class", "2",
                                 "--layout", "fer2013-folders", "--name", "net", "-w", "0",
                                 "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "runs" / "net" / "params.json").read_text())
    assert params["data"]["per_class"] == 2 and params["data"]["layout"] == "fer2013-folders"
    assert params["data"]["n_images"] <= 2 * 7 * 2  # at most 2 per label in each of train and test
    log = result.stderr
    assert re.search(r"training: 2 epochs of \d+ batch(es)? \(\d+ training images, batch 8; \d+ validation images\) on cpu",
                     log)
    assert re.search(r"estimated training time: \d+:\d\d:\d\d for \d+ batches", log)
    for epoch in (1, 2):
        assert re.search(rf"epoch {epoch}/2  loss \d\.\d{{4}}  acc \d\.\d{{3}}  valid loss \S+  acc \S+  lr \S+  "
                         r"[\d.]+ s  elapsed \d+:\d\d:\d\d / remaining \d+:\d\d:\d\d", log), log
    assert re.search(r"training: \d+/\d+ batches, [\d.]+ batches/s", log)  # the progress counts batches
    quiet = runner.invoke(app, ["-q", "fit", str(SAMPLE / "fer2013"), *TINY, "--epochs", "1", "--per-class", "2",
                                "--name", "quiet", "--runs-dir", str(tmp_path / "runs"),
                                "--cache-dir", str(tmp_path / "cache")])
    assert quiet.exit_code == 0, quiet.output
    assert "epoch 1/1" not in quiet.stderr and "batches/s" not in quiet.stderr


@pytest.mark.parametrize("option,reason", [
    (["--eval-features", "encoding"], "a network reads the images of those sets itself"),
    (["--search"], "for a network set them with -p"),
    (["--class-weight", "balanced"], "-p balance=" + "|".join(BALANCE)),  # every way a network balances
    (["--scheduler", "local:1"], "networks train here"),
    (["--missing", "sometimes"], "'sometimes' is not one of"),  # checked up front, as a choice
])
def test_classifier_options_a_network_cannot_use_are_refused_with_the_reason(tmp_path, option, reason):
    result = runner.invoke(app, ["fit", str(SAMPLE / "fer2013"), *TINY, *option, "--runs-dir", str(tmp_path),
                                 "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert reason in " ".join(result.output.split())
    assert not any(tmp_path.iterdir())  # refused before any work


def test_a_classifier_refuses_network_options(tmp_path):
    result = runner.invoke(app, ["fit", str(SAMPLE / "fer2013"), "-m", "logreg", "--epochs", "3",
                                 "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "networks only" in result.output


def test_aligned_face_crops_get_no_face_detector_unless_one_is_named(tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache"), "-w", "0"]
    encoded = runner.invoke(app, ["encode", str(SAMPLE / "fer2013"), "-f", "encoding", *cache])
    assert encoded.exit_code == 0, encoded.output
    words = " ".join(encoded.output.split())
    assert "note: encoding[detector=none]: fer2013-folders images are aligned face crops" in words
    assert "no face found" not in words
    fitted = runner.invoke(app, ["fit", str(SAMPLE / "fer2013"), "-f", "encoding", "-m", "logreg", "--name", "fer",
                                 "--runs-dir", str(tmp_path / "runs"), "-q", *cache])
    assert fitted.exit_code == 0, fitted.output
    params = json.loads((tmp_path / "runs" / "fer" / "params.json").read_text())
    assert params["features"] == ["encoding[detector=none]"] == params["eval_features"]
    help_text = " ".join(runner.invoke(app, ["fit", "--help"], terminal_width=200).output.split())
    assert "an encoding that names no detector runs none, as if written encoding[detector=none]" in \
        help_text.replace("│ ", "").replace(" │", "")


def test_classes_left_without_features_name_the_spec_to_try(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    (data / "portrait").mkdir(parents=True)
    (data / "blank").mkdir()
    for i, f in enumerate(sorted((SAMPLE / "synthetic-emotions").rglob("*.jpg"))[:6]):
        shutil.copy(f, data / "portrait" / f.name)
        Image.new("L", (48, 48), 40 * i).save(data / "blank" / f"{i}.png")  # no face to find
    result = runner.invoke(app, ["fit", str(data), "-f", "encoding", "-m", "logreg",
                                 "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
                                 "-w", "0", "-q"])
    words = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "no training image of class(es) blank has features (no face found:" in words
    assert "try --features 'encoding[detector=none]'" in words


def test_list_parameters_take_the_shell_form(tmp_path):
    """`-p widths=4,8` is the list (4, 8), as `-p widths=(4,8)` is."""
    result = runner.invoke(app, ["fit", str(SAMPLE / "real-vs-fake"), "-m", "cnn", "-p", "widths=4,8", "-p", "size=16",
                                 "-p", "dense=8", "--epochs", "1", "-w", "0", "-q", "--name", "lists",
                                 "--runs-dir", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "runs" / "lists" / "params.json").read_text())
    assert params["model_params"]["widths"] == [4, 8]


def test_a_network_fit_that_stops_before_training_leaves_no_run_folder(tmp_path):
    """No training image has a face for the encoding an encoding-mlp reads: one error line, no half-made run."""
    from PIL import Image

    for label in ("real", "fake"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 32), (60 * i, 0, 0)).save(tmp_path / "data" / label / f"{i}.png")
    args = ["fit", str(tmp_path / "data"), "-m", "encoding-mlp", "-p", "encoding=encoding[detector=hog]",
            "--epochs", "1", "-w", "0", "--name", "no-faces", "--runs-dir", str(tmp_path / "runs"),
            "--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "no usable training images" in result.output, result.output
    assert not (tmp_path / "runs" / "no-faces").exists()
    again = runner.invoke(app, args)  # the name is free: the same error, not "already exists"
    assert "already exists" not in again.output and "no usable training images" in again.output
