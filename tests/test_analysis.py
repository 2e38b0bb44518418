"""The analysis functions: statistics against scipy/scikit-learn, projections, run folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score, silhouette_score

from embedlab import analysis
from embedlab.core.errors import EmbedlabError, ModelError


@pytest.fixture
def two_groups():
    rng = np.random.default_rng(7)
    return rng.normal(10.0, 1.0, 80), rng.normal(10.6, 1.4, 60)


def test_l2_norms_match_numpy():
    X = np.random.default_rng(0).normal(size=(30, 128)).astype(np.float32)
    np.testing.assert_allclose(analysis.l2_norms(X), np.linalg.norm(X.astype(np.float64), axis=1), rtol=1e-12)
    with pytest.raises(EmbedlabError):
        analysis.l2_norms(np.ones(3))


def test_compare_groups_matches_scipy_and_sklearn(two_groups):
    a, b = two_groups
    r = analysis.compare_groups(a, b)
    ks = stats.ks_2samp(b, a)
    mw = stats.mannwhitneyu(b, a, alternative="two-sided")
    assert r["ks_statistic"] == pytest.approx(ks.statistic)
    assert r["ks_pvalue"] == pytest.approx(ks.pvalue)
    assert r["mannwhitney_u"] == pytest.approx(mw.statistic)
    assert r["mannwhitney_pvalue"] == pytest.approx(mw.pvalue)
    # the AUC of the value as a score for "from b" is scikit-learn's ROC AUC
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    assert r["auc"] == pytest.approx(roc_auc_score(y, np.r_[a, b]))
    # Cliff's delta by brute force over all pairs
    diff = b[:, None] - a[None, :]
    assert r["cliffs_delta"] == pytest.approx(((diff > 0).sum() - (diff < 0).sum()) / diff.size)
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    assert r["cohens_d"] == pytest.approx((b.mean() - a.mean()) / pooled)
    assert r["cohens_d"] > 0 and r["auc"] > 0.5
    # swapping the groups mirrors the AUC; the better direction stays
    s = analysis.compare_groups(b, a)
    assert s["auc"] == pytest.approx(1 - r["auc"])
    assert s["detector_auc"] == pytest.approx(r["detector_auc"])


def test_compare_groups_known_inputs():
    r = analysis.compare_groups([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert (r["auc"], r["cliffs_delta"], r["ks_statistic"]) == (1.0, 1.0, 1.0)
    assert r["mannwhitney_u"] == 9.0
    assert r["cohens_d"] == pytest.approx(3.0)  # means 2 and 5, pooled sd 1
    ties = analysis.compare_groups([1.0, 2.0], [1.0, 2.0])
    assert ties["auc"] == 0.5 and ties["cliffs_delta"] == 0.0
    with pytest.raises(EmbedlabError, match="at least 2"):
        analysis.compare_groups([1.0], [2.0, 3.0])


def test_summarize_and_norm_tests(two_groups):
    a, b = two_groups
    values = np.r_[a, b, np.nan]
    groups = ["real"] * len(a) + ["generated"] * len(b) + ["real"]
    summary = analysis.summarize_groups(values, groups)
    assert summary.loc["real", "n"] == len(a)  # the NaN is dropped
    assert summary.loc["generated", "mean"] == pytest.approx(b.mean())
    assert summary.loc["real", "median"] == pytest.approx(np.median(a))
    assert summary.loc["real", "std"] == pytest.approx(a.std(ddof=1))
    tests = analysis.norm_tests(values, groups, [("real", "generated"), ("real", "missing")])
    assert len(tests) == 1  # a pair without values is left out
    assert tests.loc[0, "mannwhitney_pvalue"] == pytest.approx(
        stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)


def _benjamini_hochberg(p):
    order = np.argsort(p)
    ranked = p[order] * len(p) / (np.arange(len(p)) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1)
    return out


def test_dimension_effects_per_dimension():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 16))
    positive = np.arange(120) % 3 == 0
    X[positive, 5] += 1.5    # one dimension really separates
    X[positive, 9] -= 1.0
    eff = analysis.dimension_effects(X, positive)
    assert list(eff["dimension"]) == list(range(16))
    for dim in (0, 5, 9):
        col = X[:, dim]
        assert eff.loc[dim, "auc"] == pytest.approx(roc_auc_score(positive, col))
        p = stats.mannwhitneyu(col[positive], col[~positive], alternative="two-sided").pvalue
        assert eff.loc[dim, "pvalue"] == pytest.approx(p)
    np.testing.assert_allclose(eff["pvalue_bh"], _benjamini_hochberg(eff["pvalue"].to_numpy()))
    top = eff.reindex(eff["cohens_d"].abs().sort_values(ascending=False).index)["dimension"].tolist()[:2]
    assert top == [5, 9]
    assert eff.loc[5, "cohens_d"] > 1 and eff.loc[9, "cohens_d"] < -0.5


def test_separation_against_sklearn_and_chance():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 0.2, (40, 5)), rng.normal(3, 0.2, (40, 5))])
    labels = ["a"] * 40 + ["b"] * 40
    s = analysis.separation(X, labels, k=5)
    assert s["knn_agreement"] == 1.0 and s["chance"] == 0.5
    assert s["silhouette"] == pytest.approx(silhouette_score(X, labels))
    shuffled = analysis.separation(X, rng.permutation(labels), k=5)
    assert shuffled["knn_agreement"] < 0.75 and abs(shuffled["silhouette"]) < 0.1
    with pytest.raises(EmbedlabError):
        analysis.separation(X, ["a"] * 80)


def test_knn_transfer_reports_where_queries_fall():
    ref = np.array([[0.0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]])
    y_ref = ["happy"] * 3 + ["sad"] * 3
    query = np.array([[0.5, 0.5], [10.5, 10.5], [0.2, 0.1]])
    out = analysis.knn_transfer(ref, y_ref, query, ["happy", "happy", "sad"], k=3).set_index("label")
    assert out.loc["happy", "n"] == 2 and out.loc["happy", "accuracy"] == 0.5
    assert out.loc["sad", "agreement"] == 0.0 and out.loc["sad", "most_common"] == "happy"
    assert out.loc["happy", "chance"] == 0.5


def test_projection_is_reproducible_and_annotated():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 8)), rng.normal(4, 1, (40, 8))])
    p1 = analysis.project(X, n_neighbors=10, seed=3)
    p2 = analysis.project(X, n_neighbors=10, seed=3)
    assert p1.embedding.shape == (80, 2)
    np.testing.assert_array_equal(p1.embedding, p2.embedding)
    assert not np.array_equal(p1.embedding, analysis.project(X, n_neighbors=10, seed=4).embedding)
    assert p1.params["seed"] == 3 and p1.params["n_neighbors"] == 10
    labels = ["<b>real</b>"] * 40 + ["fake"] * 40
    fig = analysis.plot_projection(p1, {"label": labels, "split": ["train"] * 80}, title="t",
                                   symbol=["real"] * 70 + ["generated"] * 10, point_ids=np.arange(100, 180))
    assert {t.type for t in fig.data} == {"scattergl"}
    assert "n_neighbors=10" in fig.layout.title.text and "seed=3" in fig.layout.title.text
    names = [t.name for t in fig.data]
    assert "&lt;b&gt;real&lt;/b&gt; (40)" in names and not any("<b>" in n for n in names)
    assert sum(len(t.x) for t in fig.data if t.visible) == 80  # one colouring shown at a time
    assert len(fig.layout.updatemenus[0].buttons) == 2
    assert min(int(c) for t in fig.data for c in t.customdata) == 100
    with pytest.raises(EmbedlabError, match="NaN"):
        analysis.project(np.full((10, 3), np.nan))


def test_origins_and_combined_tables():
    from embedlab import datasets

    assert analysis.dataset_is_generated("../shared/data/synthetic-emotions")
    assert not analysis.dataset_is_generated("real-vs-fake")  # mixed, its labels decide
    assert analysis.dataset_is_generated("my-photos", generated=["my-photos"])
    assert not analysis.dataset_is_generated("synthetic-emotions", generated=["other"])
    assert list(analysis.origin_of_labels(["real", "fake", "happy"], False)) == ["real", "generated", "real"]
    t = analysis.combine_tables([datasets.load("data/sample/fer2013"), datasets.load("data/sample/synthetic-emotions")])
    assert set(t.loc[t["dataset"] == "fer2013", "origin"]) == {"real"}
    assert set(t.loc[t["dataset"] == "synthetic-emotions", "origin"]) == {"generated"}
    assert t["emotion"].notna().all()


def _run_folder(tmp_path, name="run"):
    """A small run folder in the documented format, its numbers computed by scikit-learn."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, confusion_matrix

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = np.where(X[:, 0] + rng.normal(0, 1, 200) > 0, "fake", "real")
    model = LogisticRegression().fit(X[:120], y[:120])
    folder = tmp_path / name
    folder.mkdir()
    sets, preds = {}, []
    for set_name, role, rows in (("train", "train", slice(0, 120)), ("test", "test", slice(120, 200))):
        proba = model.predict_proba(X[rows])
        pred = model.classes_[proba.argmax(1)]
        sets[set_name] = {"role": role, "dataset": "data/real-vs-fake", "n": len(pred),
                          "accuracy": accuracy_score(y[rows], pred), "labels": list(model.classes_),
                          "confusion_matrix": confusion_matrix(y[rows], pred, labels=model.classes_).tolist()}
        preds.append(pd.DataFrame({"set": set_name, "image_id": [f"i{i}" for i in range(len(pred))],
                                   "path": "x.jpg", "hash": "h", "label": y[rows], "pred": pred,
                                   "correct": pred == y[rows], **{f"proba_{c}": proba[:, i]
                                                                  for i, c in enumerate(model.classes_)}}))
    (folder / "params.json").write_text(json.dumps({"name": name, "kind": "classifier", "task": "binary",
                                                    "model": "logreg", "features": ["encoding"],
                                                    "data": {"path": "data/real-vs-fake"}}))
    (folder / "metrics.json").write_text(json.dumps({"sets": sets}))
    pd.concat(preds).to_parquet(folder / "predictions.parquet")
    return folder


def test_run_folder_comparison_and_figures(tmp_path):
    rec = analysis.read_run_folder(_run_folder(tmp_path))
    table = analysis.comparison_table([rec]).iloc[0]
    test = rec.predictions[rec.predictions["set"] == "test"]
    real, fake = test[test["label"] == "real"], test[test["label"] == "fake"]
    assert table["train_accuracy"] == rec.sets["train"]["accuracy"]
    assert table["real_accuracy"] == pytest.approx(real["correct"].mean())       # specificity
    assert table["generated_accuracy"] == pytest.approx(fake["correct"].mean())  # sensitivity
    assert table["real_n"] + table["generated_n"] == len(test)
    lo, hi = table["real_ci"]
    assert lo < table["real_accuracy"] < hi
    mistakes = analysis.confident_mistakes(rec.predictions, n=3, sets=["test"])
    assert len(mistakes) == 3 and not mistakes["correct"].any()
    assert mistakes["confidence"].is_monotonic_decreasing and (mistakes["confidence"] >= 0.5).all()
    s = rec.sets["test"]
    fig = analysis.plot_confusion(s["labels"], s["confusion_matrix"])
    row_sums = np.nansum(np.asarray(fig.data[0].z, dtype=float), axis=1)
    np.testing.assert_allclose(row_sums, 1.0)
    assert np.asarray(fig.data[0].customdata).sum() == s["n"]
    with pytest.raises(ModelError, match="params.json"):
        analysis.read_run_folder(tmp_path)


def test_wilson_interval_known_value():
    lo, hi = analysis.wilson_interval(45, 50)  # the textbook example: 0.786 to 0.957
    assert (round(lo, 3), round(hi, 3)) == (0.786, 0.957)
    assert analysis.wilson_interval(0, 10)[0] == 0.0


def test_recall_drop_intervals_and_order():
    lo, hi = analysis.difference_interval(56, 70, 48, 80)  # Newcombe (1998), example (a): 0.0524 to 0.3339
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    gap = analysis.recall_gap(["a", "b", "c"], [[9, 1, 0], [5, 5, 0], [0, 0, 4]], [[2, 8, 0], [4, 6, 0], [0, 0, 0]])
    assert gap["label"].tolist() == ["a", "b", "c"]  # loses most first; c has no generated face
    a = gap.iloc[0]
    assert (a["recall_real"], a["recall_generated"], a["drop"]) == pytest.approx((0.9, 0.2, 0.7))
    assert a["drop_ci_low"] < 0.7 < a["drop_ci_high"]
    assert (a["real_ci_low"], a["real_ci_high"]) == pytest.approx(analysis.wilson_interval(9, 10))
    assert np.isnan(gap.iloc[2]["drop"]) and np.isnan(gap.iloc[2]["drop_ci_low"])


def test_gap_summary_lays_both_sets_on_the_models_choices():
    seven = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    real = np.diag([10, 2, 3, 20, 12, 11, 8]).tolist()
    generated = np.zeros((7, 7), int)
    generated[0, 4], generated[3, 3], generated[4, 4] = 5, 9, 6  # angry faces called neutral
    out = analysis.gap_summary(seven, real, seven, generated.tolist(), real_set="fer", generated_set="sd")
    assert out["labels"] == ["angry", "happy", "neutral"] and out["predicted"] == seven
    assert out["real_confusion"][0] == real[0] and out["generated_confusion"][0] == generated[0].tolist()
    assert out["classes"][0]["label"] == "angry" and out["classes"][0]["drop"] == 1.0
    json.dumps(out)  # plain values only
    five = ["angry", "happy", "neutral"]
    laid = analysis.gap_summary(seven, real, five, [[0, 0, 5], [0, 9, 0], [0, 0, 6]])
    assert laid["generated_confusion"] == out["generated_confusion"]


def test_shipped_emotion_run_shows_both_confusion_matrices_side_by_side():
    rec = analysis.read_run_folder("embedlab/pretrained/emotion")
    [item] = analysis.origin_confusions([rec])
    assert item["labels"] == ["angry", "happy", "neutral", "sad", "surprise"] and len(item["predicted"]) == 7
    held = rec.predictions
    test, synth = held[held["set"] == "test"], held[held["set"] == "synthetic-emotions"]
    assert [sum(r) for r in item["generated"]] == synth["label"].value_counts().reindex(item["labels"]).tolist()
    assert [sum(r) for r in item["real"]] == test["label"].value_counts().reindex(item["labels"]).tolist()
    per_class = analysis.per_class_accuracy([rec]).set_index(["origin", "label"])
    for r in item["gap"].to_dict("records"):
        assert r["recall_real"] == pytest.approx(per_class.loc[("real", r["label"]), "accuracy"])
        assert r["recall_generated"] == pytest.approx(per_class.loc[("generated", r["label"]), "accuracy"])
    assert item["gap"]["drop"].is_monotonic_decreasing
    fig = analysis.plot_confusion_pair(item["labels"], item["predicted"], item["real"], item["generated"])
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    assert fig.data[0].xaxis != fig.data[1].xaxis  # next to each other, not overlaid
    np.testing.assert_allclose(np.nansum(np.asarray(fig.data[1].z, float), axis=1), 1.0)
