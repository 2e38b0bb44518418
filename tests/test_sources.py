"""Sources of fakes: generator folders and manifest columns in the image table, counted by inspect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from embedlab import datasets
from two_sources import cli, two_sources  # noqa: F401  (two_sources is a fixture)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
RVF = SAMPLE / "real-vs-fake"


# -- sources in the image table ----------------------------------------------- -----------------------------------------------
def test_generator_folders_name_the_source_of_each_fake(two_sources):
    df = datasets.load(two_sources)
    assert df.attrs["layout"] == "kaggle-140k"
    fakes = df[df["label"] == "fake"]
    assert fakes.groupby("split")["source"].value_counts().to_dict() == {
        ("test", "sd"): 3, ("test", "stylegan"): 8, ("train", "sd"): 9, ("train", "stylegan"): 16,
        ("valid", "sd"): 3, ("valid", "stylegan"): 5}
    assert set(df.loc[df["label"] == "real", "source"]) == {"real"}
    assert datasets.fake_sources(df) == ["sd", "stylegan"]


def test_plain_fake_folders_get_one_default_source_and_other_datasets_none():
    df = datasets.load(RVF)
    assert df.loc[df["label"] == "fake", "source"].unique().tolist() == ["real-vs-fake"]
    assert list(df.columns[:len(datasets.COLUMNS)]) == datasets.COLUMNS
    assert "source" not in datasets.load(SAMPLE / "fer2013").columns
    assert "source" not in datasets.load(SAMPLE / "synthetic-emotions").columns


def test_class_folders_and_manifest_name_sources(tmp_path):
    for source in ("gan", "sd"):
        (tmp_path / "cf" / "fake" / source).mkdir(parents=True)
    (tmp_path / "cf" / "real").mkdir()
    fakes = sorted((RVF / "train" / "fake").iterdir())
    reals = sorted((RVF / "train" / "real").iterdir())
    for i, f in enumerate(fakes[:4]):
        shutil.copy(f, tmp_path / "cf" / "fake" / ("gan" if i % 2 else "sd") / f.name)
    shutil.copy(fakes[4], tmp_path / "cf" / "fake" / fakes[4].name)  # directly under fake/
    for f in reals[:3]:
        shutil.copy(f, tmp_path / "cf" / "real" / f.name)
    df = datasets.load(tmp_path / "cf")
    assert df.attrs["layout"] == "class-folders"
    assert df["source"].value_counts().to_dict() == {"real": 3, "gan": 2, "sd": 2, "cf": 1}

    manifest = tmp_path / "faces.csv"
    rows = [f"{f},fake,train,{s}" for f, s in zip(fakes[:3], ("gan", "sd", ""))]
    rows += [f"{f},real,train," for f in reals[:2]]
    manifest.write_text("path,label,split,source\n" + "\n".join(rows) + "\n")
    m = datasets.load(manifest)
    assert m.attrs["layout"] == "manifest"
    assert m["source"].tolist() == ["gan", "sd", "faces", "real", "real"]


def test_inspect_counts_per_source(two_sources):
    report = datasets.inspect_dataset(datasets.load(two_sources), decode=False)
    assert report.sources.loc["sd"].to_dict() == {"test": 3, "train": 9, "valid": 3}
    assert int(report.sources.loc["real"].sum()) == 29
    res, out = cli("datasets", "inspect", two_sources, "--no-decode")
    assert res.exit_code == 0 and "Images per source and split" in out and "stylegan" in out
    res, out = cli("datasets", "inspect", two_sources, "--no-decode", "--json")
    assert json.loads(out)["sources"]["test"]["sd"] == 3


def test_a_held_out_test_share_keeps_every_source(tmp_path):
    from embedlab.datasets.splits import assign_splits, split_roles

    fakes = sorted((RVF / "train" / "fake").iterdir())
    portraits = sorted((SAMPLE / "synthetic-emotions").rglob("*.jpg"))
    for folder, files in (("real", sorted((RVF / "train" / "real").iterdir())), ("fake/gan", fakes),
                          ("fake/sd", portraits[:10])):
        (tmp_path / "cf" / folder).mkdir(parents=True)
        for f in files:
            shutil.copy(f, tmp_path / "cf" / folder / f.name)
    df = datasets.load(tmp_path / "cf")
    roles, how = assign_splits(df, seed=0)
    assert how["source"] == "stratified"
    test = df[roles == "test"]
    assert set(test["source"]) == {"real", "gan", "sd"}
    roles, _ = split_roles(df, 0.2, seed=0)
    assert set(df.loc[roles == "valid", "source"]) == {"real", "gan", "sd"}


def test_a_fakes_only_folder_pairs_with_the_reals_of_another(tmp_path):
    """A new generator arrives as a folder of fakes alone: combined with a dataset that has reals, its
    fakes are a source of their own, scored against those reals, and can be left out like any other."""
    import embedlab

    only = tmp_path / "newgen"
    for split in ("train", "valid", "test"):
        (only / split / "fake").mkdir(parents=True)
        for f in sorted((RVF / split / "fake").iterdir())[:4]:
            shutil.copy(f, only / split / "fake" / f"new-{f.name}")
    alone = datasets.load(only)
    assert set(alone["label"]) == {"fake"}
    table = datasets.combine({"stylegan": RVF, "newgen": only})
    assert table.groupby(["origin", "label"]).size().to_dict() == {
        ("newgen", "fake"): 12, ("stylegan", "fake"): 29, ("stylegan", "real"): 29}
    assert datasets.fake_sources(table) == ["newgen", "stylegan"]
    assert set(table.loc[table["label"] == "real", "source"]) == {"real"}

    run = embedlab.fit(table, "pixels[size=8]", "logreg", runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
                       leave_out="newgen", workers=0)
    assert run.params["sources"]["train"] == ["stylegan"] and run.params["leave_out"] == "newgen"
    per_source = run.metrics["sets"]["test"]["per_source"]
    assert set(per_source) == {"newgen", "stylegan"}
    assert per_source["newgen"]["n_negative"] == int(((table["label"] == "real") & (table["split"] == "test")).sum())
