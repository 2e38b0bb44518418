"""What `--help` and the README say: one name per option, each default stated from the code, and help
that reads right (flags without value types, examples never cut)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from embedlab.compute.extraction import with_layout_defaults
from embedlab.core.defaults import ALIGNED_FACE_LAYOUTS, DEFAULT_DETECTOR, DEFAULT_RUNS_DIR
from embedlab_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        yield (*prefix, name), command


def _help(*command: str, width: int = 80) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": str(width)}, terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_option_naming_a_runs_folder_is_runs_dir():
    group = typer.main.get_command(app)
    seen = []
    for path, command in _commands(group):
        for param in command.params:
            if any("runs" in o for o in param.opts):
                seen.append(path)
                assert "--runs-dir" in param.opts, (path, param.opts)
    assert {("fit",), ("predict",), ("report",), ("runs",)} <= set(seen)


def test_report_takes_runs_as_an_alias_of_runs_dir(tmp_path):
    (tmp_path / "runs").mkdir()
    outputs = []
    for flag in ("--runs-dir", "--runs"):
        result = runner.invoke(app, ["report", flag, str(tmp_path / "runs"), "-o", str(tmp_path / "r.html")])
        assert "No such option" not in result.output
        outputs.append((result.exit_code, result.output))
    assert outputs[0] == outputs[1]
    assert f"else {DEFAULT_RUNS_DIR}" in " ".join(_help("report", width=200).split())


def test_the_detector_each_layout_runs_is_stated_as_the_code_chooses_it():
    assert with_layout_defaults("encoding", "kaggle-140k")[0] == "encoding"
    for layout in ALIGNED_FACE_LAYOUTS:
        assert with_layout_defaults("encoding", layout)[0] == ["encoding[detector=none]"]
    aligned = f"(the {' and '.join(ALIGNED_FACE_LAYOUTS)} layouts)"
    for command in (("fit",), ("encode",), ("report",)):
        text = " ".join(_help(*command, width=400).replace("│", " ").split())
        assert aligned in text and f"it runs the {DEFAULT_DETECTOR} detector" in text, command
        assert "kaggle-140k layouts" not in text and "for the 140k faces and FER-2013" not in text, command
    readme = " ".join((ROOT / "README.md").read_text().split())
    stated = re.search(r"On FER-2013's 48x48 face crops, (.*?), an `encoding` that names no detector runs none", readme)
    assert stated and re.findall(r"`([\w-]+)`", stated[1]) == list(ALIGNED_FACE_LAYOUTS)
    assert f"The 256 px faces of the 140k set keep the {DEFAULT_DETECTOR.upper()} detector" in readme


def test_flags_show_no_value_type_and_help_is_never_cut():
    group = typer.main.get_command(app)
    for path, _ in _commands(group):
        text = _help(*path)
        assert "<bool>" not in text and "…" not in text, path
    top = _help()
    assert not re.search(r"-v\s+<int>", top) and "--quiet" in top
    fit = "".join(line.split("│")[-2].strip() if line.count("│") >= 2 else "" for line in _help("fit").splitlines())
    assert "'encoding[detector=none]+spectrum'" in fit  # folded whole onto two lines


@pytest.mark.parametrize("args, needle", [
    (["encode", "data/sample/fer2013", "-w", "-1"], "--workers"),
    (["predict", "x.jpg", "--task", "emotion", "--format", "xml"], "--format"),
    (["fit", "data/sample/fer2013", "--missing", "nope"], "--missing"),
])
def test_a_bad_option_value_is_one_error_line_like_every_other_error(args, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.output
    assert "╭" not in result.output and "Usage:" not in result.output
