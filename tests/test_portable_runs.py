"""Runs name their data portably: name, layout, file count, fingerprint and a path relative to the run
folder (or, for the shipped runs, to the repository), never an absolute path of the machine that fitted them."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from embedlab.classifiers.fit import fit_classifier
from embedlab.runs.provenance import REPOSITORY, located, run_datasets
from embedlab_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
PRETRAINED = ROOT / "embedlab" / "pretrained"
FAST = "pixels[size=8]"
#: an absolute path of a machine: /work/..., /home/..., C:\..., file:///...
ABSOLUTE = re.compile(r"""(?:^|[\s"'(=,\[])(?:/(?:[\w.@+-]+/)+[\w.@+-]*|[A-Za-z]:\\\\?[\w.@+-]|file:///)""")


def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_the_shipped_runs_hold_no_absolute_path():
    found = []
    for path in sorted(PRETRAINED.rglob("*")):
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
            texts = [v for c in table.columns if table[c].dtype != float for v in table[c].astype(str).unique()]
        elif path.suffix in (".pt", ".skops", ".ubj", ".npz") or not path.is_file():  # weights, binary
            continue
        else:
            text = path.read_text(encoding="utf-8")
            texts = list(_strings(json.loads(text))) if path.suffix == ".json" else text.splitlines()
        found += [f"{path.relative_to(ROOT)}: {t[:120]}" for t in texts if ABSOLUTE.search(t)]
    assert found == []


def test_the_scan_catches_an_absolute_path():
    for bad in ("/work/snap-ship/results/bench/realfake-sources.csv", "data: /home/me/fer2013", "C:\\data\\x"):
        assert ABSOLUTE.search(bad), bad
    for fine in ("../shared/data/fer2013", "train/angry/Training_1.jpg", "results/bench/x.csv", "https://a.b/c"):
        assert not ABSOLUTE.search(fine), fine


@pytest.mark.parametrize("task", ["emotion", "real-fake"])
def test_the_shipped_runs_name_their_data_and_find_it_from_the_repository(task):
    params = json.loads((PRETRAINED / task / "params.json").read_text())
    data = params["data"]
    assert {"name", "layout", "n_images", "fingerprint", "path", "relative_to"} <= set(data)
    assert data["relative_to"] == "repository"
    assert located(data, PRETRAINED / task) == Path(os.path.normpath(REPOSITORY / data["path"]))
    metrics = json.loads((PRETRAINED / task / "metrics.json").read_text())
    assert {s["dataset"] for n, s in metrics["sets"].items() if n in ("train", "valid", "test")} == {data["name"]}
    for record in params["eval_on"]:
        assert {"name", "layout", "n_images", "fingerprint", "path"} <= set(record)
        assert metrics["sets"][record["name"]]["dataset"] == record["name"]
    from embedlab.api import load_run

    rows = load_run(PRETRAINED / task).predictions()
    assert rows["path"].map(lambda p: Path(p).is_absolute()).all()  # found where the repository is now


def test_the_shipped_command_still_reproduces_the_run():
    for task in ("emotion", "real-fake"):
        folder = PRETRAINED / task
        params = json.loads((folder / "params.json").read_text())
        assert (folder / "COMMAND").read_text().splitlines()[0] == params["command"]
        script = params["command"].split()[1]
        assert (ROOT / script).is_file(), script  # run from the repository root, as README.md says


def test_a_fit_records_its_data_relative_to_the_run_and_finds_it_after_a_move(tmp_path):
    data = tmp_path / "study" / "fer2013"
    shutil.copytree(SAMPLE / "fer2013", data)
    shutil.copytree(SAMPLE / "synthetic-emotions", tmp_path / "study" / "synthetic-emotions")
    runs = tmp_path / "study" / "runs"
    run = fit_classifier(data, FAST, "logreg", eval_on=[tmp_path / "study" / "synthetic-emotions"], workers=0,
                         name="lr", runs_dir=runs, cache_dir=tmp_path / "cache")
    params = json.loads((run.path / "params.json").read_text())
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert params["data"]["path"] == "../../fer2013" and params["data"]["relative_to"] == "run"
    assert (params["data"]["name"], params["data"]["layout"], params["data"]["n_images"]) == (
        "fer2013", "fer2013-folders", 70)
    assert params["eval_on"][0]["path"] == "../../synthetic-emotions"
    assert {s["dataset"] for s in metrics["sets"].values()} == {"fer2013", "synthetic-emotions"}
    assert str(tmp_path) not in json.dumps(params) + json.dumps(metrics)
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "study", moved)
    places = run_datasets(params, moved / "runs" / "lr")
    assert places == {"fer2013": moved / "fer2013", "synthetic-emotions": moved / "synthetic-emotions"}
    from embedlab.report.sources import datasets_of_runs

    assert [Path(d.path) for d in datasets_of_runs([moved / "runs" / "lr"])] == list(places.values())
    shown = CliRunner().invoke(app, ["runs", "show", "lr", "--runs-dir", str(moved / "runs")], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    flat = "".join(shown.output.split())  # the console folds long lines
    assert f"data:fer2013at{moved / 'fer2013'},layoutfer2013-folders(70images" in flat


def test_a_network_fit_records_its_data_and_eval_sets_portably(tmp_path):
    from embedlab.nets.fit import fit_network

    run = fit_network(SAMPLE / "fer2013", "cnn", {"size": 16, "widths": (4, 8), "dense": 8}, epochs=1, device="cpu",
                      eval_on=[SAMPLE / "synthetic-emotions"], runs_dir=tmp_path / "runs", name="net",
                      cache_dir=tmp_path / "cache")
    params = json.loads((run.path / "params.json").read_text())
    assert params["data"]["relative_to"] == "run" and not Path(params["data"]["path"]).is_absolute()
    assert located(params["data"], run.path).resolve() == (SAMPLE / "fer2013").resolve()
    (record,) = params["eval_on"]
    assert (record["name"], record["layout"], record["n_images"]) == ("synthetic-emotions", "class-folders", 15)
    assert located(record, run.path).resolve() == (SAMPLE / "synthetic-emotions").resolve()
    assert run.metrics["sets"]["synthetic-emotions"]["dataset"] == "synthetic-emotions"
    assert run.metrics["sets"]["test"]["dataset"] == "fer2013"


def test_runs_of_earlier_versions_with_bare_paths_are_still_read(tmp_path):
    params = {"data": {"path": str(SAMPLE / "fer2013"), "name": "fer2013"}, "eval_on": [str(SAMPLE / "synthetic-emotions")]}
    assert run_datasets(params, tmp_path) == {"fer2013": SAMPLE / "fer2013",
                                              "synthetic-emotions": SAMPLE / "synthetic-emotions"}
