"""Run folders are untrusted input: tampered JSON, hostile names and checkpoints give one clear error line."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedlab_cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "runs"
FACE = ROOT / "data" / "sample" / "face-photos" / "obama.jpg"
TINY = ROOT / "data" / "sample" / "real-vs-fake" / "test" / "real"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "error:" in result.output
    for needle in needles:
        assert needle in result.output.replace("\n", ""), result.output


def tampered(tmp_path: Path, fixture: str, file: str, content: str | bytes) -> Path:
    folder = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, folder)
    target = folder / file
    target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    return folder


def with_params(params: dict, **changes) -> str:
    out = dict(params)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return json.dumps(out)


CLASSIFIER = json.loads((FIXTURES / "classifier-logreg" / "params.json").read_text())
NETWORK = json.loads((FIXTURES / "network-cnn" / "params.json").read_text())

CASES = {
    "params is a list": ("classifier-logreg", "params.json", "[1, 2, 3]", "expected a JSON object"),
    "params nested 200,000 deep": ("classifier-logreg", "params.json", "[" * 200_000, "nested deeper"),
    "metrics nested 200,000 deep": ("classifier-logreg", "metrics.json", "[" * 200_000, "nested deeper"),
    "params larger than the cap": ("classifier-logreg", "params.json", b" " * (33 * 2**20) + b"{}", "bytes"),
    "100,000 classes": ("classifier-logreg", "params.json",
                        with_params(CLASSIFIER, classes=[f"c{i}" for i in range(100_000)]), '"classes"'),
    "classes is a number": ("classifier-logreg", "params.json", with_params(CLASSIFIER, classes=12345), '"classes"'),
    "unknown kind": ("classifier-logreg", "params.json", with_params(CLASSIFIER, kind="rootkit"), '"kind"'),
    "model file outside the folder": ("classifier-logreg", "params.json",
                                      with_params(CLASSIFIER, model_files=["../../model.skops"]), "model_files"),
    "threshold not a probability": ("classifier-logreg", "params.json",
                                    with_params(CLASSIFIER, threshold={"value": "high"}), '"threshold"'),
    "confusion matrix of the wrong shape": (
        "classifier-logreg", "metrics.json",
        json.dumps({"sets": {"test": {"n": 3, "labels": ["fake", "real"], "confusion_matrix": [[1]]}}}),
        "confusion_matrix"),
    "network input size 10**6": ("network-cnn", "params.json",
                                 with_params(NETWORK, model_params={"size": 10**6}), "size=1000000 is out of range"),
    "network widths not numbers": ("network-cnn", "params.json",
                                   with_params(NETWORK, model_params={"widths": ["a", "b"]}), "widths"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampered_run_folder_is_one_error_line(tmp_path, case):
    fixture, file, content, needle = CASES[case]
    folder = tampered(tmp_path, fixture, file, content)
    for args in (["predict", TINY, "--run", folder, "--cache-dir", tmp_path / "cache", "-w", "0"],
                 ["runs", "show", folder]):
        assert_one_line_error(invoke(*args), needle)


@pytest.mark.parametrize("name", ["/tmp/embedlab-escape", "../../../escape", "..", "a/../../b"])
def test_a_run_name_in_params_never_becomes_a_path(tmp_path, name):
    """Face crops go under the crops folder the user named, in the run folder's own name."""
    folder = tmp_path / "emotion"
    folder.mkdir()
    shipped = ROOT / "embedlab" / "pretrained" / "emotion"
    for f in shipped.iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "params.json").unlink()
    (folder / "params.json").write_text(with_params(json.loads((shipped / "params.json").read_text()), name=name))
    work = tmp_path / "work"
    work.mkdir()
    before = set(tmp_path.parent.iterdir())
    os.chdir(work)
    try:
        result = invoke("predict", FACE, "--run", folder, "--cache-dir", work / "cache", "--format", "json")
    finally:
        os.chdir(ROOT)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["pred"]
    crops = [p for p in work.rglob("*.png")]
    assert crops and all(p.parent == work / "cache" / "crops" / "emotion" for p in crops)
    assert set(tmp_path.parent.iterdir()) == before  # nothing written beside the test's folder
    assert not Path("/tmp/embedlab-escape").exists()


def test_fit_refuses_a_run_name_that_is_a_path(tmp_path):
    for name in ("../outside", "/abs/run", "a/b"):
        result = invoke("fit", TINY.parents[1], "-m", "cnn", "-p", "size=16", "-p", "widths=(4,8)", "--epochs", "1",
                        "--name", name, "--runs-dir", tmp_path / "runs", "--cache-dir", tmp_path / "cache")
        assert_one_line_error(result, "run name", code=2)
    assert not (tmp_path / "outside").exists()


class Payload:
    """Unpickling this would create a file: a checkpoint must never be unpickled as code."""

    def __reduce__(self):
        return (os.makedirs, (str(Path(os.environ["EMBEDLAB_TEST_MARK"])),))


def test_resume_with_a_pickle_as_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    args = ["fit", TINY.parents[1], "-m", "cnn", "-p", "size=16", "-p", "widths=(4,8)", "-p", "dense=8",
            "--epochs", "2", "--name", "r", "--runs-dir", runs, "--cache-dir", cache, "-q"]
    assert invoke(*args).exit_code == 0
    mark = tmp_path / "payload-ran"
    monkeypatch.setenv("EMBEDLAB_TEST_MARK", str(mark))
    for content in (pickle.dumps(Payload()), b"", b"not a checkpoint", pickle.dumps({"model": 1})):
        (runs / "r" / "last.pt").write_bytes(content)
        assert_one_line_error(invoke(*args[:-9], "--epochs", "3", "--name", "r", "--runs-dir", runs,
                                     "--cache-dir", cache, "--resume", "-q"), "last.pt", "checkpoint")
        assert not mark.exists()


def test_predict_writes_face_crops_only_under_crops_dir(tmp_path):
    photo = Path(__file__).resolve().parents[1] / "data" / "sample" / "face-photos" / "obama.jpg"
    crops, cache = tmp_path / "my-crops", tmp_path / "cache"
    result = runner.invoke(app, ["predict", str(photo), "--task", "emotion", "--crops-dir", str(crops),
                                 "--cache-dir", str(cache), "-w", "0", "--format", "json"])
    assert result.exit_code == 0, result.output
    written = [p for p in crops.rglob("*") if p.is_file()]
    assert written and all(crops in p.parents for p in written)
    assert not (cache / "crops").exists()  # the default place is not used when --crops-dir is given
