"""Run folders: loading, listing, and refusing model files that could run code."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from embedlab.core.errors import ModelError, UnknownNameError
from embedlab.classifiers.fit import fit_classifier
from embedlab import api
from embedlab.api import load_run
from embedlab.runs import list_runs, pretrained_run

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


class Payload:
    """Unpickling this creates ``marker``: proof that the pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    kw = dict(cache_dir=root / "cache", runs_dir=root / "runs", workers=0)
    made = {m: fit_classifier(SAMPLE / "real-vs-fake", "spectrum[size=64]", m, name=m, **kw)
            for m in ("logreg", "xgboost")}
    return root, made


@pytest.fixture()
def copy_of(runs, tmp_path):
    def make(model: str) -> Path:
        dst = tmp_path / model
        shutil.copytree(runs[1][model].path, dst)
        return dst
    return make


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()  # so its absence below means the loader never unpickled it


@pytest.mark.parametrize("model", ["logreg", "xgboost"])
def test_pickle_in_place_of_the_model_is_refused_without_running(model, copy_of, tmp_path):
    folder = copy_of(model)
    marker = tmp_path / "payload-ran"
    (folder / "model.skops").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ModelError, match="refused.*pickle"):
        load_run(folder)
    assert not marker.exists()


def test_a_pickle_listed_as_a_model_file_is_refused(copy_of, tmp_path):
    folder = copy_of("logreg")
    marker = tmp_path / "payload-ran"
    (folder / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    params = json.loads((folder / "params.json").read_text())
    params["model_files"] = ["model.pkl"]
    (folder / "params.json").write_text(json.dumps(params))
    with pytest.raises(ModelError, match="refused model file.*model.pkl"):
        load_run(folder)
    assert not marker.exists()


def test_skops_file_with_untrusted_types_is_refused(copy_of, tmp_path):
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    folder = copy_of("logreg")
    sio.dump(Pipeline([("model", FunctionTransformer(func=shutil.rmtree))]), folder / "model.skops")
    with pytest.raises(ModelError, match="trusted list: .*rmtree"):
        load_run(folder)


def test_load_and_list_runs(runs):
    root, made = runs
    run = load_run("logreg", root / "runs")
    assert run.params == made["logreg"].params and run.metrics == made["logreg"].metrics
    assert run.model is not None and run.classes == ["fake", "real"]
    assert len(run.predictions()) == 58
    table = list_runs(root / "runs")
    assert sorted(table["name"]) == ["logreg", "xgboost"]
    row = table.set_index("name").loc["xgboost"]
    assert row["set"] == "test" and row["n"] == 16
    assert row["accuracy"] == made["xgboost"].metrics["sets"]["test"]["accuracy"]
    assert list_runs(root / "nothing-here").empty


def test_unknown_run_is_named(runs):
    with pytest.raises(ModelError, match="no run 'nope'"):
        load_run("nope", runs[0] / "runs")


def test_network_runs_are_opened_by_the_network_package(copy_of, monkeypatch):
    folder = copy_of("logreg")
    params = json.loads((folder / "params.json").read_text())
    (folder / "params.json").write_text(json.dumps(dict(params, kind="network")))
    opened = []
    monkeypatch.setattr(api, "load_network_run", lambda path: opened.append(Path(path)) or "network run")
    assert load_run(folder) == "network run" and opened == [folder]


def test_pretrained_tasks():
    with pytest.raises(UnknownNameError, match="emotion, emotion-adapted, real-fake"):
        pretrained_run("age")
    try:
        folder = pretrained_run("emotion")
    except ModelError as exc:
        assert "no reference run for task 'emotion'" in str(exc)
    else:
        assert (folder / "params.json").is_file()
