from __future__ import annotations

import subprocess
import sys
import time

from typer.testing import CliRunner

from embedlab_cli.main import app

runner = CliRunner()


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys, time; t=time.perf_counter(); import embedlab_cli.main as m; "
            "heavy=[x for x in ('torch','dlib','face_recognition','umap','xgboost','plotly','sklearn') "
            "if x in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "embedlab_cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "encode" in result.stdout
    assert time.perf_counter() - started < 5  # generous: the point is no model loading


def test_encode_prints_summary_and_reuses_cache(sample, tmp_path):
    args = ["encode", str(sample / "synthetic-emotions"), "--features", "spectrum[size=32],pixels:8",
            "--cache-dir", str(tmp_path), "--workers", "1", "-q"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "class-folders" in first.output
    assert "spectrum" in first.output and "15 images" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0
    assert "nothing to compute" in second.output


def test_errors_are_one_clean_line(sample, tmp_path):
    result = runner.invoke(app, ["encode", str(sample / "fer2013"), "--features", "colour",
                                 "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown feature 'colour'; available: cnn, encoding, pixels, spectrum" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["datasets", "inspect", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere: no such file or folder" in result.output
    result = runner.invoke(app, ["encode", str(sample / "fer2013"), "--per-class", "0",
                                 "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--per-class" in result.output and "Traceback" not in result.output


def test_datasets_inspect_counts_and_json(sample):
    result = runner.invoke(app, ["datasets", "inspect", str(sample / "fer2013")])
    assert result.exit_code == 0, result.output
    assert "fer2013-folders" in result.output and "70 images" in result.output
    assert "PublicTest" in result.output
    as_json = runner.invoke(app, ["datasets", "inspect", str(sample / "real-vs-fake"), "--json"])
    import json

    data = json.loads(as_json.output)
    assert data["layout"] == "kaggle-140k" and data["images"] == 58
    assert data["counts"]["train"] == {"fake": 16, "real": 16}
