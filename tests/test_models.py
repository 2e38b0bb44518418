"""The classifier registry, parameter pass-through, model files and the evaluation figures."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.core.errors import ModelError, UnknownNameError
from embedlab.runs.scoring import bootstrap_ci, evaluate, match_labels
from embedlab.classifiers import (CLASSIFIERS, create_classifier, model_parameters, parse_params, search_space,
                             supports_sample_weight)
from embedlab.runs.model_files import load_model, save_model

ALL = ["knn", "linear-svm", "logreg", "mlp", "random-forest", "svm", "xgboost"]


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3, size=(3, 6))
    y = np.repeat(np.arange(3), 30)
    X = (centers[y] + rng.normal(size=(90, 6))).astype(np.float32)
    return X, y


def test_registry_lists_every_classifier():
    assert CLASSIFIERS.names() == ALL


def test_unknown_model_lists_the_available_ones():
    with pytest.raises(UnknownNameError) as err:
        create_classifier("gradient-magic")
    for name in ALL:
        assert name in str(err.value)


def test_params_reach_the_model_and_unknown_ones_are_named():
    assert create_classifier("logreg", {"C": 0.25}).named_steps["model"].C == 0.25
    # calibrated SVMs: plain names go to the SVM inside the calibration
    svm = create_classifier("svm", {"C": 7, "gamma": 0.01})
    assert svm.named_steps["model"].estimator.C == 7
    assert svm.named_steps["model"].estimator.gamma == 0.01
    assert create_classifier("logreg", {"scale__with_mean": False}).named_steps["scale"].with_mean is False
    with pytest.raises(ModelError, match="no parameter 'depth'.*max_depth"):
        create_classifier("xgboost", {"depth": 3})
    assert "n_neighbors" in model_parameters("knn")


def test_parse_params():
    assert parse_params(["C=10", "gamma=scale", "hidden_layer_sizes=(64,32)", "early_stopping=true"]) == {
        "C": 10, "gamma": "scale", "hidden_layer_sizes": (64, 32), "early_stopping": True}
    with pytest.raises(ModelError, match="key=value"):
        parse_params(["C"])


def test_search_space_leaves_out_fixed_params():
    pipe = create_classifier("svm")
    grid = search_space("svm", pipe, fixed=["C"])
    assert list(grid) == ["model__estimator__gamma"]


def test_scaling_where_needed():
    for name in ALL:
        steps = dict(create_classifier(name).steps)
        assert ("scale" in steps) == (name not in ("random-forest", "xgboost")), name
    assert not supports_sample_weight(create_classifier("knn"))
    assert supports_sample_weight(create_classifier("xgboost"))


@pytest.mark.parametrize("name", ALL)
def test_fit_save_load_gives_identical_probabilities(name, blobs, tmp_path, monkeypatch):
    # embedlab's own list must suffice: skops trusts no scikit-learn estimator by default here
    monkeypatch.setattr("skops.io._general.SKLEARN_ESTIMATOR_TYPE_NAMES", [])
    X, y = blobs
    pipe = create_classifier(name, seed=0, n_jobs=1).fit(X, y)
    proba = pipe.predict_proba(X)
    assert proba.shape == (90, 3)
    assert (proba.argmax(1) == y).mean() > 0.8  # well separated blobs
    files = save_model(pipe, tmp_path)
    assert "model.skops" in files and (("model.ubj" in files) == (name == "xgboost"))
    assert not list(tmp_path.glob("*.pkl"))
    again = load_model(tmp_path, files)
    assert np.array_equal(again.predict_proba(X), proba)


def test_a_binary_svm_predicts_from_its_arrays_as_scikit_learn_does(blobs, tmp_path):
    from embedlab.runs.rbf_svm import RBF_SVM_FILE, RbfSvmScorer

    X, y = blobs
    two = y < 2
    pipe = create_classifier("svm", seed=0).fit(X[two], y[two])
    files = save_model(pipe, tmp_path)
    assert files == ["model.skops", RBF_SVM_FILE]
    scorer = RbfSvmScorer.load(tmp_path / RBF_SVM_FILE)
    wide = np.vstack([X, X * 3 + 5])  # far from the support vectors too
    assert np.allclose(scorer.predict_proba(wide), pipe.predict_proba(wide), atol=1e-9, rtol=0)
    other = tmp_path / "other"
    other.mkdir()  # only the pipelines it reads get the arrays
    assert save_model(create_classifier("logreg").fit(X[two], y[two]), other) == ["model.skops"]
    assert save_model(create_classifier("svm").fit(X, y), other) == ["model.skops"]  # three classes
    assert not (tmp_path / RBF_SVM_FILE).read_bytes().startswith(b"\x80")  # arrays, no pickle
    (tmp_path / RBF_SVM_FILE).write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(ModelError, match="model.rbf.npz: not a readable RBF SVM file"):
        RbfSvmScorer.load(tmp_path / RBF_SVM_FILE)


def test_the_shipped_svm_predicts_without_importing_scikit_learn():
    import subprocess
    import sys

    code = ("import sys, numpy as np, embedlab; from embedlab.runs import pretrained_run; "
            "run = embedlab.load_run(pretrained_run('real-fake') / 'components' / 'svm-encoding'); "
            "p = run.predict_proba(np.zeros((1, 128))); "
            "assert run.scorer is not None and p.shape == (1, 2), p; "
            "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_match_labels_by_name():
    matched, unknown = match_labels(["Happy", " sad", "contempt", "happy"], ["angry", "happy", "sad"])
    assert matched.tolist() == ["happy", "sad", None, "happy"]
    assert unknown == ["contempt"]


def test_evaluate_reports_missing_classes_without_counting_them():
    classes = ["angry", "fear", "happy"]
    labels = ["angry", "angry", "happy", "happy", "Happy", "contempt"]
    proba = np.array([[.8, .1, .1], [.1, .7, .2], [.1, .1, .8], [.2, .2, .6], [.5, .1, .4], [.3, .3, .4]])
    m = evaluate(labels, proba, classes, n_boot=200)
    assert m["n"] == 5 and m["unknown_labels"] == {"contempt": 1}
    assert m["missing_classes"] == ["fear"]
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 0, 0], [1, 0, 2]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    # averaged over the two classes present: recalls 1/2 and 2/3
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["per_class"]["fear"]["recall"] is None and m["per_class"]["fear"]["predicted"] == 1
    assert "roc_auc" not in m


def test_evaluate_binary_figures_match_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p_fake = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    labels = np.where(y == 1, "fake", "real")
    m = evaluate(labels, np.c_[p_fake, 1 - p_fake], ["fake", "real"], positive_class="fake")
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p_fake))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, p_fake))
    lo, hi = m["roc_auc_ci"]
    assert lo < m["roc_auc"] < hi
    lo, hi = m["accuracy_ci"]
    assert lo < m["accuracy"] < hi and hi - lo < 0.2
    assert len(m["roc"]["fpr"]) == len(m["roc"]["tpr"]) > 2


def test_one_class_set_has_no_auc_rather_than_a_made_up_one():
    m = evaluate(["fake"] * 4, np.array([[.9, .1]] * 3 + [[.2, .8]]), ["fake", "real"], positive_class="fake")
    assert m["accuracy"] == 0.75 and m["roc_auc"] is None and m["missing_classes"] == ["real"]


def test_bootstrap_interval_is_reproducible():
    x = np.r_[np.ones(70), np.zeros(30)]
    assert bootstrap_ci(np.mean, [x], seed=1) == bootstrap_ci(np.mean, [x], seed=1)
