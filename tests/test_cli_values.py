"""Bad option values are usage errors (exit 2) with one clear line, caught before any work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from embedlab_cli.main import app

runner = CliRunner()
RVF = "data/sample/real-vs-fake"
FAST = ["-f", "pixels[size=8]", "-w", "0", "-q"]


def cases(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    where = ["--cache-dir", tmp_path / "cache", "--runs-dir", tmp_path / "runs"]
    return {
        "fit -p C=abc": (["fit", RVF, *FAST, "-m", "svm", "-p", "C=abc", *where], "'C' must be a float"),
        "fit -p C=-1": (["fit", RVF, *FAST, "-m", "svm", "-p", "C=-1", *where], "'C' must be a float"),
        "fit -p widths=abc": (["fit", RVF, "-m", "cnn", "-p", "widths=abc", *where], "widths"),
        "fit --missing nope": (["fit", RVF, *FAST, "--missing", "nope", *where], "--missing"),
        "fit --target-fpr 1.5": (["fit", RVF, *FAST, "--target-fpr", "1.5", *where], "--target-fpr"),
        "fit --epochs 0": (["fit", RVF, "-m", "cnn", "--epochs", "0", *where], "--epochs"),
        "fit --name ../x": (["fit", RVF, *FAST, "-m", "logreg", "--name", "../x", *where], "run name"),
        "--cache-dir a file": (["encode", RVF, *FAST, "--cache-dir", a_file], "--cache-dir"),
        "--runs-dir a file": (["fit", RVF, *FAST, "--runs-dir", a_file, "--cache-dir", tmp_path / "c"], "--runs-dir"),
        "encode --scheduler bogus://x": (["encode", RVF, *FAST, "--scheduler", "bogus://x", "--cache-dir",
                                          tmp_path / "c"], "--scheduler"),
        "encode --workers -1": (["encode", RVF, "-w", "-1"], "--workers"),
        "encode --per-class 0": (["encode", RVF, "--per-class", "0"], "--per-class"),
        "encode --engine nope": (["encode", RVF, "--engine", "nope"], "--engine"),
        "report -o /proc/nope/r.html": (["report", RVF, "-o", "/proc/nope/r.html"], "cannot write there"),
        "report -o a folder": (["report", RVF, "-o", out_dir], "directory"),
        "report --n-neighbors 0": (["report", RVF, "--n-neighbors", "0"], "--n-neighbors"),
        "report --thumbnails -5": (["report", RVF, "--thumbnails", "-5"], "--thumbnails"),
        "report --min-dist -1": (["report", RVF, "--min-dist", "-1"], "--min-dist"),
        "predict --format xml": (["predict", RVF, "--task", "emotion", "--format", "xml"], "--format"),
        "predict --threshold 2": (["predict", RVF, "--task", "real-fake", "--threshold", "2"], "--threshold"),
        "predict --task nope": (["predict", RVF, "--task", "nope"], "nope"),
        "datasets inspect --show -1": (["datasets", "inspect", RVF, "--show", "-1"], "--show"),
    }




@pytest.mark.parametrize("case", [
    "fit -p C=abc", "fit -p C=-1", "fit -p widths=abc", "fit --missing nope", "fit --target-fpr 1.5",
    "fit --epochs 0", "fit --name ../x", "--cache-dir a file", "--runs-dir a file",
    "encode --scheduler bogus://x", "encode --workers -1", "encode --per-class 0", "encode --engine nope",
    "report -o /proc/nope/r.html", "report -o a folder", "report --n-neighbors 0", "report --thumbnails -5",
    "report --min-dist -1", "predict --format xml", "predict --threshold 2", "predict --task nope",
    "datasets inspect --show -1"])
def test_bad_value_is_a_usage_error_before_any_work(tmp_path, case):
    args, needle = cases(tmp_path)[case]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert needle in result.output.replace("\n", " ").replace("│", " ") or needle in " ".join(result.output.split())
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()  # nothing computed or written
    assert not list(tmp_path.rglob(".tmp-*"))
