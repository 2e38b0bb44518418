"""Predicting with a reloaded run, and the fit / predict / runs commands."""

from __future__ import annotations

import io
import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from embedlab.classifiers.fit import fit_classifier
from embedlab.api import load_run
from embedlab_cli.main import app
from conftest import seed_cache

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
RVF = SAMPLE / "real-vs-fake"
runner = CliRunner()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, rvf_encodings):
    root = tmp_path_factory.mktemp("predict")
    return {"cache_dir": seed_cache(rvf_encodings, root / "cache"), "runs_dir": root / "runs"}


@pytest.mark.parametrize("model,features", [("svm", "pixels[size=16]"), ("xgboost", "spectrum[size=64]"),
                                            ("mlp", "encoding[detector=none]")])
def test_reloaded_run_reproduces_stored_probabilities_exactly(model, features, dirs):
    fitted = fit_classifier(RVF, features, model, workers=0, name=f"repro-{model}", **dirs)
    run = load_run(fitted.path)
    stored = run.predictions().query("set == 'test'").set_index("path")
    again = run.predict(list(stored.index), cache_dir=dirs["cache_dir"], workers=0).set_index("path")
    cols = [f"proba_{c}" for c in run.classes]
    assert np.array_equal(again.loc[stored.index, cols].to_numpy(), stored[cols].to_numpy())
    assert (again.loc[stored.index, "pred"] == stored["pred"]).all()
    # the same from a dataset table, labels kept
    from embedlab import datasets

    table = datasets.load(RVF)
    out = run.predict(table[table["split"] == "test"], cache_dir=dirs["cache_dir"], workers=0)
    assert np.array_equal(out.set_index("path").loc[stored.index, cols].to_numpy(), stored[cols].to_numpy())


def test_image_without_features_gets_a_reason(dirs, tmp_path):
    fitted = fit_classifier(RVF, "pixels[size=16]", "logreg", workers=0, name="reasons", **dirs)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"")
    good = sorted((RVF / "test" / "real").iterdir())[0]
    out = fitted.predict([bad, good], cache_dir=dirs["cache_dir"], workers=0).set_index("image_id")
    assert pd.isna(out.loc["broken.jpg", "pred"]) and out.loc["broken.jpg", "reason"] == "decode error"
    assert out.loc[good.name, "pred"] in ("fake", "real") and bool(out.loc[good.name, "ok"])
    assert np.isnan(out.loc["broken.jpg", "proba_fake"])


def cli(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.stdout + (result.stderr if result.stderr_bytes is not None else "")


def test_cli_fit_runs_show_and_predict(dirs, monkeypatch):
    common = ["--cache-dir", dirs["cache_dir"], "--runs-dir", dirs["runs_dir"]]
    args = ["fit", RVF, "-f", "pixels[size=16]", "-m", "logreg", "-p", "C=0.5", "--name", "cli-run", "-w", "0", "-q",
            *common]
    # the command line as a shell gives it, not the test runner's own (a pytest-xdist worker has none)
    monkeypatch.setattr(sys, "argv", ["embedlab", *map(str, args)])
    res, out = cli(*args)
    assert res.exit_code == 0, out
    run = load_run(dirs["runs_dir"] / "cli-run")
    assert run.params["model_params"]["C"] == 0.5 and run.params["command"].startswith("embedlab ")
    assert run.params["command"] == shlex.join(["embedlab", *map(str, args)])
    test = run.metrics["sets"]["test"]
    for text in ("accuracy", "ROC AUC", f"{test['accuracy']:.3f}", f"{test['roc_auc']:.3f}",
                 "confusion matrix", "per class", "cli-run"):
        assert text in out, text

    res, out = cli("runs", "--runs-dir", dirs["runs_dir"])
    assert res.exit_code == 0 and "cli-run" in out
    res, out = cli("runs", "show", "cli-run", "--runs-dir", dirs["runs_dir"])
    assert res.exit_code == 0 and f"{test['accuracy']:.3f}" in out and "valid" in out
    res, out = cli("runs", "show", "cli-run", "--runs-dir", dirs["runs_dir"], "--json")
    assert json.loads(out)["metrics"] == run.metrics

    folder = RVF / "test" / "fake"
    res, out = cli("predict", folder, "--run", "cli-run", "--format", "csv", "-q", *common)
    assert res.exit_code == 0, out
    table = pd.read_csv(io.StringIO(res.stdout))
    assert len(table) == 8 and {"image_id", "pred", "proba_fake", "proba_real"} <= set(table)
    stored = run.predictions().set_index("path")
    for r in table.itertuples():
        assert r.proba_fake == pytest.approx(stored.loc[r.path, "proba_fake"], abs=1e-12)
    res, out = cli("predict", sorted(folder.iterdir())[0], "--run", dirs["runs_dir"] / "cli-run",
                   "--format", "json", "--cache-dir", dirs["cache_dir"])
    assert res.exit_code == 0, out
    assert json.loads(res.stdout)[0]["pred"] in ("fake", "real")
    res, out = cli("predict", folder, "--run", "cli-run", *common)
    assert res.exit_code == 0 and "prediction" in out and "8 images" in out


def test_cli_fit_multiclass_with_eval_on(dirs):
    res, out = cli("fit", SAMPLE / "fer2013", "-f", "pixels[size=16]", "-m", "random-forest", "-p", "n_estimators=30",
                   "--eval-on", SAMPLE / "synthetic-emotions", "--class-weight", "balanced", "--name", "cli-multi",
                   "-w", "0", "-q", "--cache-dir", dirs["cache_dir"], "--runs-dir", dirs["runs_dir"])
    assert res.exit_code == 0, out
    assert "synthetic-emotions" in out and "not counted as errors): disgust, fear" in out
    assert "(eval)" in out


def test_cli_errors_are_clean(dirs, tmp_path):
    res, out = cli("fit", RVF, "-m", "nope", "--cache-dir", dirs["cache_dir"], "--runs-dir", dirs["runs_dir"], "-q")
    assert res.exit_code == 2 and "unknown model 'nope'" in out and "xgboost" in out
    assert "Traceback" not in out
    res, out = cli("fit", RVF, "-f", "sift", "-q", "--cache-dir", dirs["cache_dir"], "--runs-dir", dirs["runs_dir"])
    assert res.exit_code == 2 and "unknown feature 'sift'" in out and "pixels" in out
    res, out = cli("fit", RVF, "-m", "svm", "--epochs", "3")
    assert res.exit_code == 2 and "networks only" in out
    res, out = cli("predict", RVF / "test", "--run", "missing-run", "--runs-dir", dirs["runs_dir"])
    assert res.exit_code == 2 and "no run 'missing-run'" in out
    res, out = cli("predict", RVF / "test")
    assert res.exit_code == 2 and "--run" in out
    one = tmp_path / "one"
    shutil.copytree(RVF / "train" / "real", one / "real")
    res, out = cli("fit", one, "-f", "pixels[size=8]", "-q", "--cache-dir", dirs["cache_dir"],
                   "--runs-dir", dirs["runs_dir"])
    assert res.exit_code == 1 and "single class (real)" in out


def test_cli_predict_task_needs_the_shipped_run(monkeypatch, tmp_path):
    import embedlab.runs.folder as runs

    monkeypatch.setattr(runs, "__file__", str(tmp_path / "runs.py"))
    res, out = cli("predict", RVF / "test", "--task", "emotion")
    assert res.exit_code == 1 and "no reference run for task 'emotion'" in out


def test_cli_predict_with_the_shipped_emotion_model(tmp_path):
    import json

    from typer.testing import CliRunner

    from embedlab_cli.main import app

    res = CliRunner().invoke(app, ["predict", "--task", "emotion", str(SAMPLE / "face-photos" / "obama.jpg"),
                                   "--format", "json", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "predict: opening the shipped emotion run" in res.stderr  # status lines: stderr only
    (row,) = json.loads(res.stdout)
    probas = {k[len("proba_"):]: v for k, v in row.items() if k.startswith("proba_")}
    assert set(probas) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert abs(sum(probas.values()) - 1) < 1e-4
    assert row["pred"] == max(probas, key=probas.get) == "happy"  # he smiles in this photo


def test_predict_gives_one_verdict_in_the_table_csv_json_and_python(tmp_path):
    """``pred`` is the label the table prints, at the run's threshold, in every format; CSV keeps names exactly."""
    photos = tmp_path / "photos"
    photos.mkdir()
    escaped = "esc\x1b[2J\x1b[31mred.jpg"
    for src in sorted((SAMPLE / "face-photos").glob("*.jpg")):
        shutil.copy(src, photos / src.name)
    shutil.copy(SAMPLE / "face-photos" / "obama.jpg", photos / escaped)
    common = ["predict", photos, "--task", "real-fake", "--cache-dir", tmp_path / "cache", "-w", "0"]

    res, out = cli(*common, "--format", "csv")
    assert res.exit_code == 0, out
    table = pd.read_csv(io.StringIO(res.stdout), keep_default_na=False)
    assert "decision" not in table and {"pred", "threshold", "proba_fake", "proba_real"} <= set(table)
    assert set(table["face_found"]) == {True}  # what the face network said, also through a stack
    expected = np.where(table["proba_fake"] >= table["threshold"], "fake", "real")
    assert table["pred"].tolist() == expected.tolist()
    assert f"photos/{escaped}" in table["image_id"].tolist()
    assert str(photos / escaped) in table["path"].tolist()  # byte for byte, escape sequences kept

    res, out = cli(*common, "--format", "json")
    rows = {r["image_id"]: r for r in json.loads(res.stdout)}
    assert {name: r["pred"] for name, r in rows.items()} == dict(zip(table["image_id"], table["pred"]))

    from embedlab.runs import pretrained_run

    api = load_run(pretrained_run("real-fake")).predict([photos], cache_dir=tmp_path / "cache", workers=0)
    assert dict(zip(api["image_id"], api["pred"])) == dict(zip(table["image_id"], table["pred"]))

    res, out = cli(*common)
    shown_rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
                  for line in out.splitlines() if line.startswith("│") and ".jpg" in line}
    plain = [name for name in table["image_id"] if escaped not in name]
    assert {name: shown_rows[name] for name in plain} == {name: rows[name]["pred"] for name in plain}
