"""Every command on a dataset where bad files sit among good images (tests/hostile_corpus.py).

For each command: exit code 0, every bad file named with its reason, the good images' results
equal to a run on the same dataset without the bad files, and no traceback.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hostile_corpus
from hostile_corpus import BAD, MAX_FILE_MB, ODD_GOOD
from embedlab_cli.main import app

runner = CliRunner()
FEATURE = "pixels[size=8]"
NETWORK = ["-m", "cnn", "-p", "size=16", "-p", "widths=(4,8)", "-p", "dense=8", "--epochs", "2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    previous = os.environ.get("EMBEDLAB_MAX_FILE_MB")
    os.environ["EMBEDLAB_MAX_FILE_MB"] = str(MAX_FILE_MB)  # worker processes inherit it
    root = tmp_path_factory.mktemp("hostile")
    clean, hostile = hostile_corpus.build(root)
    yield {"clean": clean, "hostile": hostile, "work": root}
    if previous is None:
        os.environ.pop("EMBEDLAB_MAX_FILE_MB", None)
    else:
        os.environ["EMBEDLAB_MAX_FILE_MB"] = previous


def run(*args) -> str:
    """Run a command; it must succeed without a traceback. Returns what it printed."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def assert_terminal_safe(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output  # control characters printed escaped


def test_inspect_names_every_bad_file_with_its_reason(corpus):
    report = json.loads(run("datasets", "inspect", corpus["hostile"], "--json", "--show", "100"))
    clean = json.loads(run("datasets", "inspect", corpus["clean"], "--json"))
    root = str(corpus["hostile"])
    found = {os.path.relpath(r["path"], root): r["reason"] for r in report["unreadable"]}
    assert found == BAD
    assert report["images"] == clean["images"] + len(BAD)  # every listed file is counted
    assert clean["unreadable"] == []
    text = run("datasets", "inspect", corpus["hostile"], "--show", "100")
    assert_terminal_safe(text)
    for name in ("[blink red]BLINK[reverse].jpg", "photos [/x].jpg", "esc\\x1b[31mred\\x07.jpg"):
        assert name in text.replace("\n", "")


def test_encode_records_each_bad_file_and_keeps_the_good_features(corpus):
    from embedlab import encode

    work = corpus["work"]
    hostile = encode(corpus["hostile"], FEATURE, cache_dir=work / "enc-h", workers=2, chunk_size=4)
    clean = encode(corpus["clean"], FEATURE, cache_dir=work / "enc-c", workers=1)
    rows = hostile.set_index("image_id")
    for rel, reason in BAD.items():
        assert not rows.loc[rel, "pixels.ok"] and rows.loc[rel, "pixels.reason"] == reason, rel
        assert rows.loc[rel, "pixels.error"].startswith(str(corpus["hostile"] / rel)), rel
    good = clean.set_index("image_id")
    assert good["pixels.ok"].all() and set(ODD_GOOD) <= set(good.index)
    assert np.array_equal(np.stack(rows.loc[good.index, "pixels"]), np.stack(good["pixels"]))
    out = run("encode", corpus["hostile"], "-f", FEATURE, "--cache-dir", work / "enc-h", "-w", "1", "-q")
    assert f"{len(BAD)} image(s) not used" in out
    assert_terminal_safe(out)


@pytest.mark.parametrize("model", [["-m", "logreg"], NETWORK], ids=["classifier", "network"])
def test_fit_leaves_out_bad_files_and_fits_the_same_model(corpus, model):
    work, kind = corpus["work"], model[1]
    features = ["-f", FEATURE] if kind == "logreg" else []
    for which in ("clean", "hostile"):
        out = run("fit", corpus[which], *features, *model, "--cache-dir", work / f"fit-{which}",
                  "--runs-dir", work / "runs", "--name", f"{kind}-{which}", "-w", "1", "-q")
        assert_terminal_safe(out)
    from embedlab.api import load_run

    clean, hostile = load_run(work / "runs" / f"{kind}-clean"), load_run(work / "runs" / f"{kind}-hostile")
    failures = hostile.failures()
    assert dict(zip(failures["image_id"], failures["reason"])) == BAD
    assert clean.failures().empty
    cols = [c for c in clean.predictions().columns if c.startswith("proba_")]
    a = clean.predictions().set_index("image_id").sort_index()
    b = hostile.predictions().set_index("image_id").sort_index()
    assert list(a.index) == list(b.index)
    assert np.allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), atol=1e-6)
    for split in ("train", "valid", "test"):
        assert clean.metrics["sets"][split]["accuracy"] == pytest.approx(hostile.metrics["sets"][split]["accuracy"])


def _predict_table(*args) -> pd.DataFrame:
    return pd.DataFrame(json.loads(run("predict", *args, "--format", "json", "-q"))).set_index("image_id")


def test_predict_gives_every_file_a_row_and_the_good_ones_their_label(corpus):
    work = corpus["work"]
    run("fit", corpus["clean"], "-f", FEATURE, "-m", "logreg", "--cache-dir", work / "p-cache",
        "--runs-dir", work / "p-runs", "--name", "lr", "-w", "1", "-q")
    common = ["--run", work / "p-runs" / "lr", "--cache-dir", work / "p-cache", "-w", "1"]
    hostile = _predict_table(corpus["hostile"] / "test", *common)
    clean = _predict_table(corpus["clean"] / "test", *common)
    for rel, reason in BAD.items():
        if rel.startswith("test/"):
            assert hostile.loc[rel, "reason"] == reason and pd.isna(hostile.loc[rel, "pred"]), rel
    assert hostile.loc[clean.index, "pred"].tolist() == clean["pred"].tolist()
    assert np.allclose(hostile.loc[clean.index, "proba_fake"], clean["proba_fake"])
    assert_terminal_safe(run("predict", corpus["hostile"] / "test", *common))


def test_shipped_network_predicts_the_good_images_beside_a_zero_byte_file(corpus, tmp_path):
    """The issue's case: one zero-byte file among three good images gave no predictions at all."""
    good = sorted((corpus["clean"] / "test" / "real").glob("*.jpg"))[:3]
    folder = tmp_path / "four"
    folder.mkdir()
    for f in good:
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "zero.jpg").write_bytes(b"")
    for task in ("real-fake", "emotion"):
        out = _predict_table(folder, "--task", task, "--cache-dir", tmp_path / "cache")
        alone = _predict_table(*good, "--task", task, "--cache-dir", tmp_path / "cache")
        assert out.loc["four/zero.jpg", "reason"] == "decode error"
        names = [f"four/{f.name}" for f in good]
        assert out.loc[names, "pred"].tolist() == alone.loc[[f.name for f in good], "pred"].tolist()
        assert out.loc[names, "pred"].notna().all()


def test_report_covers_the_good_images_and_lists_the_bad_ones(corpus):
    work = corpus["work"]
    page = work / "report.html"
    run("report", f"{corpus['hostile']}::{FEATURE}", "-o", page, "--cache-dir", work / "rep-cache",
        "--thumbnails", "10", "-w", "1")
    html = page.read_text(encoding="utf-8")
    from html import escape

    for rel, reason in BAD.items():
        assert escape(rel) in html or escape(rel.encode("unicode_escape").decode()) in html or \
            escape(rel) in html.replace("\\u001b", "\x1b").replace("\\u0007", "\x07"), rel
    assert f"Images without features (first {len(BAD)} of {len(BAD)})" in html


def _as_ordinary_user() -> list[str] | None:
    """The command prefix that runs a command without root's power to read mode-000 files."""
    import pwd
    import shutil

    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    nobody = pwd.getpwnam("nobody")
    return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]


def _numba_cache_of(prefix: list[str]) -> str | None:
    """A numba cache folder under the temporary directory owned by the user of ``prefix`` (None for the
    current user, whose cache numba keeps beside the packages)."""
    import pwd
    import tempfile

    if not prefix:
        return None
    nobody = pwd.getpwnam("nobody")
    folder = os.path.join(tempfile.gettempdir(), f"embedlab-tests-numba-{nobody.pw_uid}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if os.stat(folder).st_uid != nobody.pw_uid:
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    return folder


def _can_import_embedlab(prefix: list[str]) -> bool:
    """Whether that user can import the command line from this checkout at all (a checkout in a
    folder only its owner may enter, such as one ``mktemp -d`` made, cannot be read by `nobody`)."""
    import subprocess
    import sys

    probe = subprocess.run([*prefix, sys.executable, "-c", "import embedlab_cli.main"], capture_output=True,
                           cwd="/", timeout=120)
    return probe.returncode == 0


def test_an_unreadable_file_is_a_row_in_every_command():
    """Mode 000 for real: as root, the commands run as `nobody` (through setpriv), whom it stops.

    In the command's own process (``-w 0``): the interpreter of a virtual environment made by root
    may sit where `nobody` cannot start worker processes from it (embedlab then stops with one
    line naming ``--workers 0``); the worker pool meets bad files in the tests above.
    """
    import shutil
    import subprocess
    import sys
    import tempfile

    prefix = _as_ordinary_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: a mode-000 file cannot be made unreadable here")
    if not _can_import_embedlab(prefix):
        pytest.skip("the ordinary user cannot read this checkout (a parent folder is closed to it), "
                    "so it cannot run embedlab from here")
    work = tempfile.mkdtemp(prefix="embedlab-unreadable-")  # not under pytest's private tmp: nobody enters it
    try:
        os.chmod(work, 0o777)
        data = os.path.join(work, "data")
        shutil.copytree(hostile_corpus.SAMPLE, data)
        locked = os.path.join(data, "test", "real", "locked.jpg")
        a_real = os.path.join(data, "test", "real", sorted(os.listdir(os.path.join(data, "test", "real")))[0])
        shutil.copy(a_real, locked)
        os.chmod(locked, 0)
        for folder, dirs, files in os.walk(work):
            for d in dirs:
                os.chmod(os.path.join(folder, d), 0o777)
        private = os.path.join(data, "test", "real", "private")  # a sub-folder nobody may list
        os.mkdir(private)
        shutil.copy(a_real, os.path.join(private, "hidden.jpg"))
        os.chmod(private, 0)

        # numba cannot keep UMAP's compiled kernels beside the packages for this user: a folder of its own
        # that outlives the test spares the report step of the next run 30 s of compiling them again
        numba_cache = _numba_cache_of(prefix)

        def cli(*args) -> str:
            env = {**os.environ, "HOME": work, **({"NUMBA_CACHE_DIR": numba_cache} if numba_cache else {})}
            done = subprocess.run([*prefix, sys.executable, "-m", "embedlab_cli.main", *map(str, args)],
                                  capture_output=True, text=True, env=env, cwd=work)
            assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
            return done.stdout

        where = ["--cache-dir", os.path.join(work, "cache")]
        report = json.loads(cli("datasets", "inspect", data, "--json"))
        assert [(r["image_id"], r["reason"]) for r in report["unreadable"]] == [
            ("test/real/locked.jpg", "unreadable"), ("test/real/private", "unreadable")]
        assert "Permission denied" in report["unreadable"][0]["error"]
        assert "cannot be listed" in report["unreadable"][1]["error"]
        assert "2 image(s) not used (unreadable: 2)" in cli("encode", data, "-f", FEATURE, *where, "-w", "0", "-q")
        cli("fit", data, "-f", FEATURE, "-m", "logreg", *where, "--runs-dir", os.path.join(work, "runs"),
            "--name", "lr", "-w", "0", "-q")
        failures = pd.read_csv(os.path.join(work, "runs", "lr", "failures.csv"))
        assert failures[["image_id", "reason"]].values.tolist() == [["test/real/locked.jpg", "unreadable"],
                                                                    ["test/real/private", "unreadable"]]
        rows = pd.DataFrame(json.loads(cli("predict", os.path.join(data, "test"), "--run",
                                           os.path.join(work, "runs", "lr"), *where, "--format", "json")))
        assert rows.set_index("image_id").loc["test/real/locked.jpg", "reason"] == "unreadable"
        assert rows.set_index("image_id").loc["test/real/private", "reason"] == "unreadable"
        assert rows["pred"].notna().sum() == len(rows) - 2
        page = os.path.join(work, "report.html")
        cli("report", f"{data}::{FEATURE}", "-o", page, *where, "--thumbnails", "5", "-w", "0")
        html = open(page, encoding="utf-8").read()
        assert "locked.jpg" in html and "test/real/private" in html
    finally:
        if os.path.isdir(os.path.join(work, "data", "test", "real", "private")):
            os.chmod(os.path.join(work, "data", "test", "real", "private"), 0o700)
        shutil.rmtree(work, ignore_errors=True)
