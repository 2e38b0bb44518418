"""Fitting classifiers on cached features: tasks, splits, --eval-on, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedlab.core.errors import DatasetError, EmbedlabError, ModelError, UnknownNameError
from embedlab.api import fit
from embedlab.classifiers.fit import fit_classifier
from conftest import seed_cache

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
RVF, FER, SYN = SAMPLE / "real-vs-fake", SAMPLE / "fer2013", SAMPLE / "synthetic-emotions"
FAST = "pixels[size=16]"
METRIC_KEYS = {"role", "dataset", "n", "accuracy", "accuracy_ci", "balanced_accuracy", "macro_f1", "labels",
               "confusion_matrix", "per_class", "missing_classes"}
BINARY_KEYS = {"roc_auc", "roc_auc_ci", "average_precision", "roc", "pr"}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, rvf_encodings):
    root = tmp_path_factory.mktemp("fit")
    return {"cache_dir": seed_cache(rvf_encodings, root / "cache"), "runs_dir": root / "runs"}


def snapshot(cache_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache_dir)): p.read_bytes() for p in Path(cache_dir).rglob("*") if p.is_file()}


def assert_nothing_lost(before: dict[str, bytes], cache_dir: Path) -> None:
    after = snapshot(cache_dir)
    for name, data in before.items():
        assert after.get(name) == data, f"{name} changed or vanished"


@pytest.fixture(scope="module")
def binary_run(dirs):
    return fit_classifier(RVF, FAST, "logreg", workers=0, name="binary", **dirs)


def test_binary_fit_writes_a_complete_run(binary_run):
    run = binary_run
    p = json.loads((run.path / "params.json").read_text())
    for key in ("name", "kind", "task", "classes", "positive_class", "model", "model_params", "features",
                "feature_keys", "data", "eval_on", "versions", "created", "command", "seed", "model_files"):
        assert key in p, key
    assert (p["kind"], p["task"], p["classes"], p["positive_class"]) == ("classifier", "binary", ["fake", "real"], "fake")
    assert p["features"] == [FAST] and list(p["feature_keys"]) == ["pixels"]
    assert p["data"]["splits"] == {"source": "dataset"}
    assert p["data"]["counts"] == {"train": 32, "valid": 10, "test": 16}
    assert len(p["data"]["fingerprint"]) == 16 and "scikit-learn" in p["versions"]
    assert p["model_params"]["C"] == 1.0
    sets = json.loads((run.path / "metrics.json").read_text())["sets"]
    assert list(sets) == ["train", "valid", "test"]
    for name, m in sets.items():
        assert METRIC_KEYS | BINARY_KEYS <= set(m), name
        assert m["role"] == name and sum(map(sum, m["confusion_matrix"])) == m["n"]
        lo, hi = m["accuracy_ci"]
        assert lo <= m["accuracy"] <= hi
    assert sets["test"]["n"] == 16
    preds = pd.read_parquet(run.path / "predictions.parquet")
    assert {"set", "image_id", "path", "hash", "label", "pred", "correct", "proba_fake", "proba_real"} <= set(preds)
    assert preds.groupby("set").size().to_dict() == {"test": 16, "train": 32, "valid": 10}
    test = preds[preds["set"] == "test"]
    # pred is the verdict at the run's threshold, so its accuracy is the one at the threshold
    assert test["correct"].mean() == pytest.approx(sets["test"]["at_threshold"]["accuracy"])
    assert (test["pred"] == np.where(test["proba_fake"] >= run.params["threshold"]["value"], "fake", "real")).all()
    assert np.allclose(test[["proba_fake", "proba_real"]].sum(axis=1), 1)


def test_multiclass_fit_with_eval_on_aligns_labels_by_name(dirs):
    run = fit_classifier(FER, FAST, "logreg", eval_on=[SYN], class_weight="balanced", workers=0,
                         name="multi", **dirs)
    p, sets = run.params, run.metrics["sets"]
    assert p["task"] == "multiclass" and p["positive_class"] is None and len(p["classes"]) == 7
    assert [e["name"] for e in p["eval_on"]] == ["synthetic-emotions"] and p["class_weight"] == "balanced"
    from embedlab.runs.provenance import located

    assert located(p["eval_on"][0], run.path).resolve() == SYN.resolve()
    # FER has no valid split: train fits, test reports
    assert list(sets) == ["train", "test", "synthetic-emotions"]
    ev = sets["synthetic-emotions"]
    assert ev["role"] == "eval" and ev["n"] == 15 and ev["labels"] == p["classes"]
    assert ev["missing_classes"] == ["disgust", "fear"] and ev["unknown_labels"] == {}
    assert "roc_auc" not in ev
    cm = np.array(ev["confusion_matrix"])
    idx = {c: i for i, c in enumerate(p["classes"])}
    assert cm[idx["disgust"]].sum() == 0 and cm[idx["fear"]].sum() == 0
    assert cm[idx["happy"]].sum() == 3
    present = [idx[c] for c in p["classes"] if c not in ("disgust", "fear")]
    recalls = [cm[i, i] / cm[i].sum() for i in present]
    assert ev["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    preds = run.predictions()
    assert (preds["set"] == "synthetic-emotions").sum() == 15


def test_dataset_without_splits_gets_a_stratified_test_split(dirs):
    run = fit_classifier(SYN, FAST, "knn", workers=0, name="nosplit", **dirs)
    split = run.params["data"]["splits"]
    assert split["source"] == "stratified" and split["seed"] == 0
    test = run.predictions().query("set == 'test'")
    assert test["label"].value_counts().to_dict() == {c: 1 for c in run.params["classes"]}
    train = run.predictions().query("set == 'train'")
    assert not set(train["image_id"]) & set(test["image_id"])


def test_search_runs_on_train_only(dirs):
    run = fit_classifier(RVF, FAST, "logreg", search=True, workers=0, name="searched", **dirs)
    s = run.params["search"]
    assert s["on"] == "train" and s["scoring"] == "roc_auc" and s["candidates"] == 5
    assert s["best_params"]["C"] in s["grid"]["C"] and run.params["model_params"]["C"] == s["best_params"]["C"]


def test_xgboost_multiclass_and_params(dirs):
    run = fit_classifier(FER, FAST, "xgboost", params={"n_estimators": 20, "max_depth": 2}, workers=0,
                         name="xgb", **dirs)
    assert run.params["model_files"] == ["model.skops", "model.ubj"]
    assert run.params["model_params"]["n_estimators"] == 20
    assert run.metrics["sets"]["test"]["n"] == 28


def test_face_encoding_features(dirs):
    run = fit_classifier(RVF, "encoding[detector=none]", "svm", workers=0, name="enc", **dirs)
    assert run.params["feature_dims"] == {"encoding": 128}
    assert run.params["features"] == ["encoding[detector=none]"]
    m = run.metrics["sets"]["test"]
    assert m["n"] == 16 and m["n_missing_features"] == 0 and 0 <= m["roc_auc"] <= 1


def test_unknown_names_list_the_available_ones(dirs):
    with pytest.raises(UnknownNameError, match="logreg.*svm.*xgboost"):
        fit(RVF, FAST, "boosted-magic", **dirs)
    with pytest.raises(UnknownNameError, match="encoding.*pixels.*spectrum"):
        fit_classifier(RVF, "colour-histogram", "logreg", **dirs)
    with pytest.raises(ModelError, match="no parameter 'depth'"):
        fit_classifier(RVF, FAST, "logreg", params={"depth": 3}, **dirs)


def test_class_weight_needs_a_model_that_can_weight(dirs):
    with pytest.raises(ModelError, match="knn.*cannot weight"):
        fit_classifier(RVF, FAST, "knn", class_weight="balanced", **dirs)


def test_single_class_dataset_is_refused_and_cache_kept(tmp_path, dirs, binary_run):
    data = tmp_path / "one"
    shutil.copytree(RVF / "train" / "fake", data / "fake")
    before = snapshot(dirs["cache_dir"])
    assert before
    with pytest.raises(ModelError, match=r"single class \(fake\)"):
        fit_classifier(data, FAST, "logreg", **dirs)
    assert_nothing_lost(before, dirs["cache_dir"])
    assert snapshot(dirs["cache_dir"]).keys() == before.keys()


def test_empty_split_is_named(tmp_path, dirs, binary_run):
    data = tmp_path / "faces"
    for label in ("fake", "real"):
        shutil.copytree(RVF / "train" / label, data / "train" / label)
        (data / "test" / label).mkdir(parents=True)
    before = snapshot(dirs["cache_dir"])
    with pytest.raises(DatasetError, match=r"test hold no images"):
        fit_classifier(data, FAST, "logreg", **dirs)
    assert_nothing_lost(before, dirs["cache_dir"])


@pytest.fixture()
def broken_dataset(tmp_path):
    data = tmp_path / "rvf"
    shutil.copytree(RVF, data)
    victim = sorted((data / "test" / "fake").iterdir())[0]
    victim.write_bytes(b"not an image at all")
    return data, f"test/fake/{victim.name}"


def test_missing_features_error_names_the_images(broken_dataset, dirs, binary_run):
    data, image_id = broken_dataset
    before = snapshot(dirs["cache_dir"])
    with pytest.raises(ModelError, match=rf"1 of 58 images have no features \(unsupported format.*{image_id}"):
        fit_classifier(data, FAST, "logreg", missing="error", workers=0, **dirs)
    assert_nothing_lost(before, dirs["cache_dir"])


def test_missing_features_dropped_are_counted(broken_dataset, tmp_path):
    data, image_id = broken_dataset
    run = fit_classifier(data, FAST, "logreg", workers=0, cache_dir=tmp_path / "c", runs_dir=tmp_path / "r")
    test = run.metrics["sets"]["test"]
    assert test["n"] == 15 and test["n_missing_features"] == 1
    assert test["missing_features"] == {"unsupported format": 1}
    assert image_id not in set(run.predictions()["image_id"])


def test_split_without_any_features_is_an_error(tmp_path):
    data = tmp_path / "rvf"
    shutil.copytree(RVF, data)
    for f in (data / "valid").rglob("*.jpg"):
        f.write_bytes(b"")
    with pytest.raises(ModelError, match=r"split 'valid' has no image with features \(decode error"):
        fit_classifier(data, FAST, "logreg", workers=0, cache_dir=tmp_path / "c", runs_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_eval_features_must_match(dirs):
    with pytest.raises(ModelError, match="same features and sizes"):
        fit_classifier(FER, FAST, "logreg", eval_on=[SYN], eval_features="pixels[size=8]", **dirs)


def test_existing_run_name_is_not_overwritten(dirs, binary_run):
    with pytest.raises(EmbedlabError, match="already exists"):
        fit_classifier(RVF, FAST, "logreg", workers=0, name="binary", **dirs)
    assert binary_run.params["model"] == "logreg"
