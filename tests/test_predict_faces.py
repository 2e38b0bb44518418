"""`predict --per-face`: one verdict per face, with its box, in every output format."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import embedlab
from embedlab.api import predict_faces
from embedlab_cli.main import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
runner = CliRunner()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    left, right = (Image.open(SAMPLE / "face-photos" / n).convert("RGB") for n in ("biden.jpg", "obama.jpg"))
    height = 400
    left, right = (im.resize((round(im.width * height / im.height), height)) for im in (left, right))
    both = Image.new("RGB", (left.width + right.width, height))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    both.save(root / "two_people.jpg")
    Image.new("RGB", (120, 120), (90, 90, 90)).save(root / "wall.png")
    run = embedlab.fit(SAMPLE / "real-vs-fake", "pixels[size=8]", "logreg", runs_dir=root / "runs",
                       cache_dir=root / "cache", workers=0, name="faces")
    return {"two": root / "two_people.jpg", "wall": root / "wall.png", "run": run, "cache": root / "cache",
            "split": left.width}


def test_one_row_per_face_with_its_box(photos):
    out = predict_faces(photos["run"], [photos["two"], photos["wall"]], cache_dir=photos["cache"], workers=0)
    two = out[out["image_id"] == "two_people.jpg"]
    assert list(two["face"]) == [0, 1]
    assert two["pred"].notna().all() and {"proba_fake", "proba_real"} <= set(out.columns)
    lefts = sorted(two["left"])
    assert lefts[0] < photos["split"] <= lefts[1]  # one face in each half of the photo
    assert (two["bottom"] > two["top"]).all() and (two["right"] > two["left"]).all()
    wall = out[out["image_id"] == "wall.png"]
    assert len(wall) == 1 and pd.isna(wall["face"].iloc[0]) and wall["reason"].iloc[0] == "no face found"


def test_per_face_in_every_output_format(photos):
    args = ["predict", str(photos["two"]), str(photos["wall"]), "--run", str(photos["run"].path), "--per-face",
            "--cache-dir", str(photos["cache"]), "-w", "0"]
    as_json = runner.invoke(app, [*args, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert [(r["image_id"], r["face"]) for r in rows] == [("two_people.jpg", 0), ("two_people.jpg", 1),
                                                         ("wall.png", None)]
    assert all(isinstance(rows[i][c], int) for i in (0, 1) for c in ("top", "right", "bottom", "left"))
    as_csv = pd.read_csv(io.StringIO(runner.invoke(app, [*args, "--format", "csv"]).stdout))
    assert list(as_csv.columns[:7]) == ["image_id", "path", "face", "top", "right", "bottom", "left"]
    assert len(as_csv) == 3
    table = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    words = " ".join(table.output.split())
    assert "3 faces" in words and "no face found" in words and "box (top, right, bottom, left)" in words
    boxes = [f"{r['top']}, {r['right']}, {r['bottom']}, {r['left']}" for r in rows[:2]]
    flat = "".join(table.output.split())
    assert all(b.replace(" ", "") in flat for b in boxes)


def test_predict_table_folds_rather_than_cuts_at_80_columns(photos, tmp_path):
    """Long file names and every column stay whole on an 80-column terminal."""
    import shutil

    long_name = "a-photograph-whose-file-name-is-far-too-long-for-one-column-of-a-narrow-terminal.jpg"
    shutil.copy(photos["two"], tmp_path / long_name)
    table = runner.invoke(app, ["predict", str(tmp_path / long_name), "--run", str(photos["run"].path), "--per-face",
                                "--cache-dir", str(photos["cache"]), "-w", "0"], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert "…" not in table.output and max(map(len, table.output.splitlines())) <= 80
    first_column = "".join(line.split("│")[1].strip() for line in table.output.splitlines() if line.startswith("│"))
    assert long_name in first_column  # folded over several lines, whole
