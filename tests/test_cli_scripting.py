"""What scripts and pipelines rely on: exit codes, strict JSON, --version, verbosity, environment
variables, plain progress lines in logs, and help and error texts that show feature specs as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

import embedlab
from embedlab_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
runner = CliRunner()
SPEC = re.compile(r"[a-z0-9_]+\\?\[[a-z_]+=[^\]\s]*\]")  # encoding[detector=none,...], as a user writes it
BOX = str.maketrans("", "", "│╭╮╰╯─")


def strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def all_commands(group: click.Group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, (*path, name))


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"embedlab {embedlab.__version__}"


def test_every_help_shows_feature_specs_as_written():
    root = typer.main.get_command(app)
    texts_checked = 0
    for path, cmd in [((), root), *all_commands(root)]:
        written = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        specs = {s.replace("\\", "") for text in written for s in SPEC.findall(text)}
        result = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, result.output
        shown = "".join(result.output.translate(BOX).split())
        for spec in specs:
            assert spec in shown, f"`embedlab {' '.join(path)} --help` lost {spec!r}"
            texts_checked += 1
    assert texts_checked >= 6  # encode, fit, predict, report, features all write specs in their help
    encode_help = "".join(runner.invoke(app, ["encode", "--help"]).output.translate(BOX).split())
    assert "'encoding[detector=none,jitters=2]'" in encode_help


def test_errors_show_feature_specs_as_written(tmp_path, monkeypatch):
    bad = runner.invoke(app, ["encode", str(SAMPLE / "face-photos"), "-f", "encoding[detector=none]x",
                              "--cache-dir", str(tmp_path)])
    assert bad.exit_code == 2
    assert "cannot parse feature spec 'encoding[detector=none]x'" in " ".join(bad.output.split())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    no_weights = runner.invoke(app, ["encode", str(SAMPLE / "face-photos"), "-f", "cnn:resnet18",
                                     "--cache-dir", str(tmp_path), "-w", "0"])
    words = " ".join(no_weights.output.split())
    assert no_weights.exit_code == 1, no_weights.output  # a file missing on this machine: not a usage error
    assert "cnn:resnet18[weights=random]" in words and "cnn:resnet18[weights=/path/to/file.pth]" in words


def test_exit_codes_tell_usage_errors_from_failures(tmp_path):
    assert runner.invoke(app, ["encode", str(SAMPLE / "fer2013"), "-f", "colour"]).exit_code == 2
    assert runner.invoke(app, ["encode", "--no-such-option"]).exit_code == 2
    assert runner.invoke(app, ["runs", "show", "no-such-run", "--runs-dir", str(tmp_path)]).exit_code == 2
    broken = tmp_path / "broken-run"
    broken.mkdir()
    (broken / "params.json").write_text("{not json")
    failed = runner.invoke(app, ["runs", "show", str(broken)])
    assert failed.exit_code == 1 and "unreadable" in failed.output and "Traceback" not in failed.output
    traced = runner.invoke(app, ["-v", "runs", "show", str(broken)])
    assert traced.exit_code == 1 and "Traceback" in traced.output
    help_text = " ".join(runner.invoke(app, ["--help"], terminal_width=200).output.translate(BOX).split())
    assert "Exit codes: 0 done" in help_text and "1 the command failed" in help_text and "2 usage error" in help_text


def test_json_is_strict_everywhere(tmp_path):
    runs_dir = tmp_path / "runs"
    fit = runner.invoke(app, ["fit", str(SAMPLE / "real-vs-fake"), "-f", "pixels[size=8]", "-m", "logreg",
                              "--name", "r", "-w", "0", "-q", "--cache-dir", str(tmp_path / "c"),
                              "--runs-dir", str(runs_dir)])
    assert fit.exit_code == 0, fit.output
    metrics = runs_dir / "r" / "metrics.json"
    data = strict_loads(metrics.read_text())
    data["sets"]["test"]["roc_auc"] = float("nan")  # as a run written by an older version could hold
    metrics.write_text(json.dumps(data))
    listed = runner.invoke(app, ["runs", "--json", "--runs-dir", str(runs_dir)])
    assert listed.exit_code == 0, listed.output
    assert strict_loads(listed.stdout)[0]["roc_auc"] is None
    shown = strict_loads(runner.invoke(app, ["runs", "show", "r", "--json", "--runs-dir", str(runs_dir)]).stdout)
    assert shown["metrics"]["sets"]["test"]["roc_auc"] is None
    inspected = strict_loads(runner.invoke(app, ["datasets", "inspect", str(SAMPLE / "fer2013"), "--json"]).stdout)
    assert inspected["images"] == 70


def test_cache_and_runs_folders_from_the_environment(tmp_path):
    env = {"EMBEDLAB_CACHE_DIR": str(tmp_path / "env-cache"), "EMBEDLAB_RUNS_DIR": str(tmp_path / "env-runs")}
    args = ["fit", str(SAMPLE / "real-vs-fake"), "-f", "pixels[size=8]", "-m", "logreg", "--name", "e", "-w", "0",
            "-q"]
    assert runner.invoke(app, args, env=env).exit_code == 0
    assert (tmp_path / "env-runs" / "e" / "params.json").is_file()
    assert any((tmp_path / "env-cache").iterdir())
    listed = runner.invoke(app, ["runs", "--json"], env=env)
    assert [r["name"] for r in strict_loads(listed.stdout)] == ["e"]
    for command in (["fit"], ["encode"], ["predict"], ["runs"], ["report"]):
        shown = runner.invoke(app, [*command, "--help"], terminal_width=200).output
        assert "EMBEDLAB_CACHE_DIR" in shown or "EMBEDLAB_RUNS_DIR" in shown, command


def test_progress_lines_in_logs_and_quiet(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROGRESS_SECONDS", "0")
    args = ["encode", str(SAMPLE / "synthetic-emotions"), "-f", "pixels:8", "--cache-dir", str(tmp_path), "-w", "0"]
    logged = runner.invoke(app, args)  # stderr is not a terminal here, as in a log or CI
    assert logged.exit_code == 0, logged.output
    lines = [ln for ln in logged.stderr.splitlines() if ln.startswith("encoding: ")]
    assert lines and lines[-1].startswith("encoding: 15/15 images")
    assert re.search(r"elapsed \d+:\d\d:\d\d / remaining \d+:\d\d:\d\d", lines[-1])
    quiet = runner.invoke(app, ["-q", *args])
    assert quiet.exit_code == 0 and "encoding: " not in quiet.stderr


def test_wide_tables_fold_rather_than_cut_and_runs_has_machine_formats(tmp_path):
    runs_dir = tmp_path / "runs"
    name = "real-vs-fake-pixels-size-8-logistic-regression-with-a-long-name"
    fit = runner.invoke(app, ["fit", str(SAMPLE / "real-vs-fake"), "-f", "pixels[size=8]", "-m", "logreg",
                              "--name", name, "-w", "0", "-q", "--cache-dir", str(tmp_path / "c"),
                              "--runs-dir", str(runs_dir)])
    assert fit.exit_code == 0, fit.output
    shown = runner.invoke(app, ["runs", "--runs-dir", str(runs_dir)], env={"COLUMNS": "80"})
    assert shown.exit_code == 0 and "…" not in shown.output
    first_column = "".join(line.split("│")[1].strip() for line in shown.output.splitlines() if line.startswith("│"))
    assert name in first_column  # folded over several lines, whole
    as_csv = runner.invoke(app, ["runs", "--runs-dir", str(runs_dir), "--format", "csv"]).stdout
    assert as_csv.splitlines()[0].startswith("folder,name,") and name in as_csv
    assert strict_loads(runner.invoke(app, ["runs", "--runs-dir", str(runs_dir), "--format", "json"]).stdout)[0][
        "name"] == name


def test_report_says_which_datasets_it_encodes_and_how_many_images(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_PROGRESS_SECONDS", "0")
    data = SAMPLE / "synthetic-emotions"
    result = runner.invoke(app, ["report", f"{data}::pixels:8", "-o", str(tmp_path / "r.html"),
                                 "--cache-dir", str(tmp_path / "cache"), "-w", "0", "--thumbnails", "5"])
    assert result.exit_code == 0, result.output
    log = result.stderr
    assert f"report: synthetic-emotions ({data}): 15 images, features pixels:8: 0 cached, 15 to compute" in log
    assert f"report: {data}: 15 images, features pixels:8, 15 computed now" in log
    assert "encoding synthetic-emotions: 15/15 images" in log


def test_terminal_progress_bar_reads_elapsed_then_remaining(monkeypatch):
    """On a terminal, the bar counts what it names and reads "elapsed H:MM:SS / remaining H:MM:SS"."""
    import io

    from rich.console import Console

    import embedlab_cli.app as cli_app

    out = io.StringIO()
    monkeypatch.setattr(cli_app, "err_console", Console(file=out, force_terminal=True, width=160, color_system=None))
    with cli_app.progress_bar("encoding", unit="images") as update:
        update(5, 10)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert re.search(r"encoding .*5/10 images .*elapsed \d:\d\d:\d\d / remaining (\d:\d\d:\d\d|-:--:--)", text), text
    assert " left" not in text


def test_vv_prints_embedlab_debug_lines_and_only_then(tmp_path):
    args = ["encode", str(SAMPLE / "real-vs-fake"), "-f", "pixels:8", "--cache-dir", str(tmp_path), "-w", "0"]
    loud = runner.invoke(app, ["-vv", *args])
    assert loud.exit_code == 0, loud.output
    assert "debug: embedlab.compute.extraction: pixels: cache key pixels-" in loud.stderr
    assert "image(s) to compute in" in loud.stderr and "in this process" in loud.stderr
    quiet = runner.invoke(app, args)  # the same process: -vv does not stay on
    assert quiet.exit_code == 0 and "debug:" not in quiet.stderr


def test_eval_features_help_says_what_may_differ():
    """It names the same features computed another way, with the literal spec of each side."""
    shown = runner.invoke(app, ["fit", "--help"], env={"COLUMNS": "200"}).output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", shown).split())
    help_text = text[text.index("--eval-features"):text.index("--missing")]
    assert "same features, of the same sizes, computed another way" in help_text
    assert "'encoding' (face detector on)" in help_text and "'encoding[detector=none]'" in help_text
