"""File names that are not valid UTF-8, in every command that lists files.

The folder holds the sample's real-vs-fake images and three names with bytes that are not UTF-8: a good
photo (``test/real/bad-\\xff\\xfe.jpg``), an empty file (``test/fake/empty-\\xfe.jpg``) and a generator
folder (``train/fake/gan-\\xff/``). The good ones get their results, read by the bytes of their
name; the empty one a failure row with its shown name and reason; the rest of the folder is never lost.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image
from typer.testing import CliRunner

from embedlab_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FEATURE = "pixels[size=8]"
#: shown name -> the bytes on disk, relative to the dataset root
GOOD = {"test/real/bad-\\xff\\xfe.jpg": b"test/real/bad-\xff\xfe.jpg",
        "train/fake/gan-\\xff/mirrored.jpg": b"train/fake/gan-\xff/mirrored.jpg"}
EMPTY = "test/fake/empty-\\xfe.jpg"
runner = CliRunner()


def _mirrored(source: Path, target: bytes) -> None:
    """A new image (so its content is its own, not a copy's) at the file named by the bytes ``target``."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    image = Image.open(source).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    with open(target, "wb") as fh:
        image.save(fh, "JPEG", quality=95)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("names") / "faces"
    shutil.copytree(SAMPLE / "real-vs-fake", root)
    base = os.fsencode(root) + b"/"
    _mirrored(sorted((root / "test" / "real").glob("*.jpg"))[0], base + GOOD["test/real/bad-\\xff\\xfe.jpg"])
    _mirrored(sorted((root / "train" / "fake").glob("*.jpg"))[0], base + GOOD["train/fake/gan-\\xff/mirrored.jpg"])
    with open(base + b"test/fake/empty-\xfe.jpg", "wb"):
        pass
    return root


def run(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "UnicodeEncodeError" not in result.output and "Traceback" not in result.output
    return result.stdout  # what a script reads; status lines go to stderr


def _n_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def test_loading_lists_every_file_with_a_shown_name_and_a_valid_table(corpus):
    from embedlab.datasets import load

    df = load(corpus)
    assert len(df) == _n_files(corpus)
    rows = df.set_index("image_id")
    for shown, raw in GOOD.items():
        assert rows.loc[shown, "path"] == f"{corpus}/{shown}" and isinstance(rows.loc[shown, "hash"], str)
    assert rows.loc["train/fake/gan-\\xff/mirrored.jpg", "source"] == "gan-\\xff"
    assert rows.loc[EMPTY, "hash"] is not None  # zero bytes hash; decoding says why it gives no image
    pa.Table.from_pandas(df.astype(str))  # what pyarrow and Parquet would refuse: a lone surrogate


def test_inspect_counts_every_file_and_names_the_bad_one(corpus):
    report = json.loads(run("datasets", "inspect", corpus, "--json"))
    assert report["images"] == _n_files(corpus)
    assert [(r["image_id"], r["reason"]) for r in report["unreadable"]] == [(EMPTY, "decode error")]
    assert report["unreadable"][0]["error"].startswith(f"{corpus}/{EMPTY}: decode error")
    text = run("datasets", "inspect", corpus)
    assert "empty-\\xfe.jpg" in text.replace("\n", "")


def test_encode_reads_the_good_names_by_their_bytes(corpus, tmp_path):
    from embedlab import encode
    from embedlab.datasets.images import decode_image

    df = encode(corpus, FEATURE, cache_dir=tmp_path / "cache", workers=1).set_index("image_id")
    assert len(df) == _n_files(corpus)
    assert df.drop(index=EMPTY)["pixels.ok"].all()
    assert df.loc[EMPTY, "pixels.reason"] == "decode error"
    assert df.loc[EMPTY, "pixels.error"].startswith(f"{corpus}/{EMPTY}: decode error")
    from embedlab.features import create_extractor

    pixels = create_extractor(FEATURE)
    for shown, raw in GOOD.items():
        with open(os.fsencode(corpus) + b"/" + raw, "rb") as fh:
            expected, _ = pixels.extract(decode_image(fh.read()))
        assert np.allclose(df.loc[shown, "pixels"], expected)
    out = run("encode", corpus, "-f", FEATURE, "--cache-dir", tmp_path / "cache", "-w", "1", "-q")
    assert "1 image(s) not used" in out and "empty-\\xfe.jpg" in out
    again = encode(corpus, FEATURE, cache_dir=tmp_path / "cache", workers=1)  # the file hash index was saved
    assert again.attrs["summary"]["features"]["pixels"]["computed"] == 0
    failures = json.loads(run("cache", "failures", corpus, "-f", FEATURE, "--cache-dir", tmp_path / "cache",
                              "--format", "json"))
    assert [(r["image_id"], r["reason"]) for r in failures] == [(EMPTY, "decode error")]


def test_fit_and_predict_give_every_good_photo_its_row(corpus, tmp_path):
    from embedlab.api import load_run

    where = ["--cache-dir", tmp_path / "cache", "--runs-dir", tmp_path / "runs"]
    run("fit", corpus, "-f", FEATURE, "-m", "logreg", *where, "--name", "lr", "-w", "1", "-q")
    fitted = load_run(tmp_path / "runs" / "lr")
    assert fitted.failures()[["image_id", "reason"]].values.tolist() == [[EMPTY, "decode error"]]
    predictions = fitted.predictions().set_index("image_id")
    assert set(GOOD) <= set(predictions.index)
    rows = pd.DataFrame(json.loads(run("predict", corpus / "test", "--run", tmp_path / "runs" / "lr", *where,
                                       "-w", "1", "--format", "json"))).set_index("image_id")
    assert len(rows) == _n_files(corpus / "test")
    assert rows.loc["test/real/bad-\\xff\\xfe.jpg", "pred"] in ("real", "fake")
    assert rows.drop(index="test/fake/empty-\\xfe.jpg")["pred"].notna().all()
    assert rows.loc["test/fake/empty-\\xfe.jpg", "reason"] == "decode error"
    table = run("predict", corpus / "test", "--run", tmp_path / "runs" / "lr", *where, "-w", "1")
    assert "bad-\\xff\\xfe.jpg" in table.replace("\n", "").replace(" ", "").replace("│", "")


def test_the_shipped_emotion_model_on_a_folder_of_photos_and_one_bad_name(tmp_path):
    """The issue's case: `predict --task emotion DIR` gave no row at all."""
    folder = tmp_path / "photos"
    shutil.copytree(SAMPLE / "face-photos", folder, ignore=shutil.ignore_patterns("LICENSE"))
    _mirrored(folder / "obama.jpg", os.fsencode(folder) + b"/bad-\xff\xfe.jpg")
    with open(os.fsencode(folder) + b"/empty-\xff.jpg", "wb"):
        pass
    rows = pd.DataFrame(json.loads(run("predict", "--task", "emotion", folder, "--cache-dir", tmp_path / "cache",
                                       "--format", "json"))).set_index("image_id")
    good = ["photos/biden.jpg", "photos/obama.jpg", "photos/obama2.jpg", "photos/bad-\\xff\\xfe.jpg"]
    assert rows.loc[good, "pred"].notna().all() and len(rows) == 5
    assert rows.loc["photos/empty-\\xff.jpg", "reason"] == "decode error"


def test_report_shows_the_names_and_lists_the_bad_one(corpus, tmp_path):
    page = tmp_path / "report.html"
    (tmp_path / "no-runs").mkdir()
    run("report", f"{corpus}::{FEATURE}", "-o", page, "--cache-dir", tmp_path / "cache", "--thumbnails", "5",
        "-w", "1", "--runs-dir", tmp_path / "no-runs")
    html = page.read_text(encoding="utf-8")
    assert "Images without features (first 1 of 1)" in html
    assert "faces/test/fake/empty-\\xfe.jpg" in html.replace("\\\\", "\\")
    assert "bad-\\xff\\xfe.jpg" in html.replace("\\\\", "\\")  # its thumbnail and hover name


def test_a_valid_name_that_looks_escaped_is_read_as_written(tmp_path):
    from embedlab.datasets import load
    from embedlab.datasets.images import content_hash

    folder = tmp_path / "photos"
    folder.mkdir()
    literal = folder / "literal-\\xff.jpg"  # a backslash, an x and two f: valid UTF-8
    shutil.copy(SAMPLE / "face-photos" / "obama.jpg", literal)
    row = load(folder).set_index("image_id").loc["literal-\\xff.jpg"]
    assert row["path"] == str(literal) and row["hash"] == content_hash(literal.read_bytes())


def test_the_terminal_shows_the_bytes_of_a_name_escaped():
    from embedlab_cli.terminal import shown

    raw = b"photos/[bad]-\xff\xfe.jpg".decode("utf-8", "surrogateescape")
    assert shown(raw) == "photos/\\[bad]-\\xff\\xfe.jpg"
    shown(raw).encode("utf-8")
