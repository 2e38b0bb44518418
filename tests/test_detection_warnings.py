"""Folder auto-detection says when it may have invented a task: labels from folder names that name
containers rather than classes, and the same image under two labels."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from embedlab import datasets
from embedlab_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
runner = CliRunner()


def project_folder(root: Path) -> Path:
    """A code project's folders: examples/ and tests/, one photo in both."""
    photos = sorted((SAMPLE / "real-vs-fake" / "test" / "real").iterdir())
    for name, chosen in (("examples", photos[:4]), ("tests", photos[3:7])):
        (root / name).mkdir(parents=True)
        for f in chosen:
            shutil.copy(f, root / name / f.name)
    return root


def test_loading_warns_about_container_folders_and_conflicting_labels(tmp_path):
    table = datasets.load(project_folder(tmp_path / "project"))
    warnings = " ".join(table.attrs["warnings"])
    assert "folder names that look like containers, not classes: examples, tests" in warnings
    assert "1 image appears under two or more labels" in warnings
    assert datasets.load(SAMPLE / "real-vs-fake").attrs["warnings"] == []


def test_encode_and_fit_print_the_warnings(tmp_path):
    data = project_folder(tmp_path / "project")
    encoded = runner.invoke(app, ["encode", str(data), "-f", "pixels:8", "--cache-dir", str(tmp_path / "c"),
                                  "-w", "0", "-q"])
    words = " ".join(encoded.output.split())
    assert encoded.exit_code == 0, encoded.output
    assert "warning: labels taken from folder names that look like containers" in words
    assert "warning: 1 image appears under two or more labels" in words
    fitted = runner.invoke(app, ["fit", str(data), "-f", "pixels:8", "-m", "logreg", "--cache-dir",
                                 str(tmp_path / "c"), "--runs-dir", str(tmp_path / "runs"), "-w", "0", "-q"])
    words = " ".join(fitted.output.split())
    assert fitted.exit_code == 0, fitted.output
    assert "look like containers, not classes: examples, tests" in words
    assert "appears under two or more labels" in words
