from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embedlab import datasets
from embedlab.datasets.fer_csv import FER_EMOTIONS, read_fer_csv, write_fer_csv
from embedlab.core.errors import DatasetError, UnknownNameError
from embedlab.datasets.images import read_image


def test_kaggle_layout_under_any_prefix(sample, tmp_path):
    nested = tmp_path / "real_vs_fake" / "real-vs-fake"
    shutil.copytree(sample / "real-vs-fake", nested)
    df = datasets.load(tmp_path)
    assert df.attrs["layout"] == "kaggle-140k"
    assert df.attrs["root"] == str(nested.resolve())
    assert list(df.columns[:5]) == ["image_id", "path", "label", "split", "hash"]
    counts = df.groupby(["split", "label"]).size().to_dict()
    assert counts == {("test", "fake"): 8, ("test", "real"): 8, ("train", "fake"): 16,
                      ("train", "real"): 16, ("valid", "fake"): 5, ("valid", "real"): 5}
    assert df["image_id"].is_unique
    assert df["image_id"].iloc[0].startswith(("test/", "train/", "valid/"))


def test_fer_folders_keep_public_and_private_test_apart(sample):
    df = datasets.load(sample / "fer2013")
    assert df.attrs["layout"] == "fer2013-folders"
    assert set(df["label"]) == set(FER_EMOTIONS)
    test = df[df["split"] == "test"]
    assert test["subset"].value_counts().to_dict() == {"PublicTest": 14, "PrivateTest": 14}
    assert (df.loc[df["split"] == "train", "subset"] == "Training").all()


def test_fer_csv_decoded_without_files(sample, tmp_path):
    folders = datasets.load(sample / "fer2013")
    picked = folders.groupby(["split", "label"]).head(1)
    images = np.stack([np.asarray(Image.open(p).convert("L")) for p in picked["path"]])
    usages = picked["subset"].tolist()
    csv = write_fer_csv(tmp_path / "fer2013.csv", images, picked["label"].tolist(), usages)

    df = datasets.load(tmp_path)  # a folder holding fer2013.csv is found too
    assert df.attrs["layout"] == "fer2013-csv"
    assert len(df) == len(picked)
    assert df["label"].tolist() == picked["label"].tolist()
    assert df["split"].tolist() == picked["split"].tolist()
    assert df["subset"].tolist() == usages
    assert list(tmp_path.iterdir()) == [csv]  # nothing written beside the CSV
    first = read_image(df["path"].iloc[0])
    assert first.shape == (48, 48, 3)
    assert np.array_equal(first[:, :, 0], images[0])


def test_fer_csv_emotion_numbering_is_the_kaggle_one(tmp_path):
    # 0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad 5=Surprise 6=Neutral
    path = tmp_path / "f.csv"
    pixels = " ".join(["0"] * 2304)
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{i},{pixels},Training\n" for i in range(7)))
    table, images = read_fer_csv(path)
    assert table["label"].tolist() == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert images.shape == (7, 48, 48)


def test_fer_csv_bad_row_is_named(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(DatasetError, match=r"row 0: expected 2304 pixel values, got 3"):
        datasets.load(path)


def test_class_folders_plain_and_with_splits(sample, tmp_path):
    plain = datasets.load(sample / "synthetic-emotions")
    assert plain.attrs["layout"] == "class-folders"
    assert plain["split"].isna().all()
    assert plain["label"].value_counts().to_dict() == {k: 3 for k in
                                                       ["angry", "happy", "neutral", "sad", "surprise"]}

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            (tmp_path / split / label).mkdir(parents=True)
            shutil.copy(sample / "face-photos" / "obama.jpg", tmp_path / split / label / f"{label}.jpg")
    split_df = datasets.load(tmp_path)
    assert split_df.attrs["layout"] == "class-folders"
    assert sorted(split_df["split"].unique()) == ["train", "valid"]


def test_manifest_csv(sample, tmp_path):
    manifest = tmp_path / "list.csv"
    src = sample / "face-photos"
    pd.DataFrame({"path": [str(src / "obama.jpg"), str(src / "biden.jpg")],
                  "label": ["obama", "biden"], "split": ["train", "test"]}).to_csv(manifest, index=False)
    df = datasets.load(manifest)
    assert df.attrs["layout"] == "manifest"
    assert df[["label", "split"]].values.tolist() == [["obama", "train"], ["biden", "test"]]


def test_manifest_missing_file_is_named(tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\nnope.jpg,a\n")
    with pytest.raises(DatasetError, match="nope.jpg"):
        datasets.load(manifest)


def test_hash_is_content_not_path(sample, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(sample / "face-photos" / "obama.jpg", tmp_path / name / "x.jpg")
    df = datasets.load(tmp_path)
    assert df["hash"].nunique() == 1


def test_unknown_layout_and_missing_path(tmp_path):
    with pytest.raises(UnknownNameError, match="available: class-folders"):
        datasets.load(tmp_path, layout="nope")
    with pytest.raises(DatasetError, match="no such file or folder"):
        datasets.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no known dataset layout"):
        datasets.load(tmp_path / "empty")


def test_sample_per_class_is_reproducible(sample):
    df = datasets.load(sample / "real-vs-fake")
    a = datasets.sample_per_class(df, 3, seed=1)
    b = datasets.sample_per_class(df, 3, seed=1)
    assert a["image_id"].tolist() == b["image_id"].tolist()
    assert a.groupby(["split", "label"]).size().eq(3).all()


def test_inspect_finds_cross_split_and_conflicting_duplicates(sample, tmp_path):
    root = tmp_path / "fer"
    shutil.copytree(sample / "fer2013", root)
    happy = sorted((root / "train" / "happy").iterdir())[0]
    shutil.copy(happy, root / "test" / "happy" / "PublicTest_copy.jpg")   # leak into test
    shutil.copy(happy, root / "train" / "sad" / "Training_copy.jpg")     # same image, other label
    (root / "train" / "sad" / "Training_broken.jpg").write_bytes(b"not an image")
    report = datasets.inspect_dataset(datasets.load(root))
    assert report.n_images == 73
    assert len(report.duplicates) == 1
    group = report.duplicates.iloc[0]
    assert group["copies"] == 3 and group["cross_split"] and group["conflicting_labels"]
    assert group["labels"] == ["happy", "sad"] and group["splits"] == ["test", "train"]
    assert len(report.unreadable) == 1
    assert "Training_broken.jpg" in report.unreadable["path"].iloc[0]
    assert report.sizes[["width", "height", "mode"]].values.tolist() == [[48, 48, "L"]]


def test_inspect_flags_a_split_far_blurrier_than_another(sample, tmp_path):
    from PIL import ImageFilter

    # the bundled FER-2013 sample is sharp in both splits
    clean_fer = datasets.inspect_dataset(datasets.load(sample / "fer2013"))
    assert not [w for w in clean_fer.warnings if "blurrier" in w]
    clean = datasets.inspect_dataset(datasets.load(sample / "real-vs-fake"))
    assert not clean.warnings

    # a blurred copy of its training split (as one public copy of FER-2013 was) is caught
    shutil.copytree(sample / "fer2013", tmp_path / "fer2013")
    for path in (tmp_path / "fer2013" / "train").rglob("*.jpg"):
        Image.open(path).filter(ImageFilter.GaussianBlur(2)).save(path)
    fer = datasets.inspect_dataset(datasets.load(tmp_path / "fer2013"))
    assert fer.sharpness.loc["(all)", "train"] * 3 < fer.sharpness.loc["(all)", "test"]
    assert any("'train' is much blurrier than split 'test'" in w for w in fer.warnings)

    # the sharpness measure itself moves the right way

    from embedlab.datasets.inspection import sharpness

    sharp = Image.open(sample / "face-photos" / "obama.jpg").convert("RGB")
    assert sharpness(np.asarray(sharp.filter(ImageFilter.GaussianBlur(4)))) < sharpness(np.asarray(sharp)) / 1.5


def test_other_image_formats_are_rows_and_hidden_files_are_not_images(tmp_path):
    """The README's promise: `.heic`, `.avif`... are listed as "unsupported format"; names starting
    with `.` (editor backups, macOS `._` files) are not images."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "ok.png")
    (folder / "phone.avif").write_bytes(b"\0\0\0\x1cftypavif" + b"\0" * 32)
    (folder / "._ok.png").write_bytes(b"\0\5\26\7" + b"\0" * 60)  # AppleDouble metadata
    (folder / ".hidden.jpg").write_bytes(b"not an image")
    listed = datasets.load(folder)
    assert sorted(listed["image_id"]) == ["ok.png", "phone.avif"]
    report = datasets.inspect_dataset(listed)
    assert report.unreadable[["image_id", "reason"]].values.tolist() == [["phone.avif", "unsupported format"]]
