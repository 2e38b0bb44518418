"""`embedlab cache failures`: which images failed and why; failed images never fail a command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from embedlab_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
runner = CliRunner()


def test_failed_images_are_counted_then_listed_with_their_reason(tmp_path):
    data = tmp_path / "photos"
    data.mkdir()
    for f in sorted((SAMPLE / "real-vs-fake" / "test" / "real").iterdir())[:2]:
        shutil.copy(f, data / f.name)
    (data / "empty.jpg").write_bytes(b"")
    (data / "notes.png").write_bytes(b"not an image at all")
    args = [str(data), "-f", "spectrum[size=32]", "--cache-dir", str(tmp_path / "cache")]
    before = runner.invoke(app, ["cache", "failures", *args])
    assert before.exit_code == 0 and "0 of 0 images in the cache failed; 4 not computed yet" in before.output
    encoded = runner.invoke(app, ["encode", *args, "-w", "1", "-q"])
    assert encoded.exit_code == 0, encoded.output  # the two broken files are counted, not fatal
    assert "decode error: 1" in " ".join(encoded.output.split())
    listed = runner.invoke(app, ["cache", "failures", *args], terminal_width=120)
    assert listed.exit_code == 0, listed.output
    words = " ".join(listed.output.split())
    assert "spectrum: 2 of 4 images in the cache failed" in words
    assert "empty.jpg" in words and "notes.png" in words and "decode error" in words
    rows = json.loads(runner.invoke(app, ["cache", "failures", *args, "--format", "json"]).stdout)
    assert sorted((r["image_id"], r["reason"]) for r in rows) == [
        ("empty.jpg", "decode error"), ("notes.png", "unsupported format")]
    assert all(r["feature"] == "spectrum" and r["error"] for r in rows)
