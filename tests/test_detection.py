"""Binary runs per source of fakes: figures against scikit-learn, a threshold that holds, one source left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedlab.api import fit, load_run
from embedlab.core.errors import DatasetError, ModelError
from embedlab.runs.scoring import (ScoredSet, Scoring, choose_threshold, evaluate, per_source, score_set,
                                   threshold_at_fpr)
from two_sources import cli, two_sources  # noqa: F401  (two_sources is a fixture)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
RVF = SAMPLE / "real-vs-fake"
FAST = "pixels[size=8]"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources-runs")
    return {"cache_dir": root / "cache", "runs_dir": root / "runs"}


# -- per-source figures against scikit-learn ---------------------------------------
def hand_made_table():
    """12 images: 5 reals, 4 fakes of 'gan', 3 of 'sd', with made-up P(fake)."""
    labels = ["real"] * 5 + ["fake"] * 7
    sources = ["real"] * 5 + ["gan"] * 4 + ["sd"] * 3
    p_fake = np.array([0.1, 0.3, 0.35, 0.6, 0.2, 0.9, 0.8, 0.4, 0.7, 0.5, 0.25, 0.65])
    return labels, sources, np.column_stack([p_fake, 1 - p_fake])


def test_per_source_figures_match_scikit_learn():
    from sklearn.metrics import roc_auc_score

    labels, sources, proba = hand_made_table()
    got = per_source(labels, proba, ["fake", "real"], "fake", sources, threshold=0.5)
    reals = np.array(labels) == "real"
    for source in ("gan", "sd"):
        mine = np.array(sources) == source
        sel = mine | reals
        expected_auc = roc_auc_score(mine[sel], proba[sel, 0])
        expected_recall = float((proba[mine, 0] >= 0.5).mean())
        negatives = np.sort(proba[reals, 0])[::-1]
        at_5pct = np.nextafter(negatives[0], np.inf)  # 1% or 5% of 5 reals allows none at or above it
        assert got[source] == {"n": int(mine.sum()), "n_negative": int(reals.sum()),
                               "roc_auc": pytest.approx(expected_auc), "recall": pytest.approx(expected_recall),
                               "tpr_at_1pct_fpr": pytest.approx(float((proba[mine, 0] >= at_5pct).mean())),
                               "tpr_at_5pct_fpr": pytest.approx(float((proba[mine, 0] >= at_5pct).mean()))}
    assert got["gan"]["roc_auc"] == pytest.approx(19 / 20) and got["sd"]["recall"] == pytest.approx(2 / 3)
    # above the highest real (0.6): gan 0.9, 0.8, 0.7 of four; sd 0.65 of three
    assert got["gan"]["tpr_at_1pct_fpr"] == 0.75 and got["sd"]["tpr_at_5pct_fpr"] == pytest.approx(1 / 3)

    rows = pd.DataFrame({"image_id": list("abcdefghijkl"), "path": list("abcdefghijkl"), "hash": list("abcdefghijkl"),
                         "label": labels, "source": sources})
    metrics, preds = score_set(proba, rows, Scoring(["fake", "real"], "fake", seed=0, threshold=0.5),
                               ScoredSet("test", role="test", dataset="x"))
    assert metrics["per_source"] == got and preds["source"].tolist() == sources


def test_brier_score_and_reliability_curve():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    labels, _, proba = hand_made_table()
    m = evaluate(labels, proba, ["fake", "real"], positive_class="fake", n_boot=50, threshold=0.5)
    is_fake = np.array(labels) == "fake"
    assert m["brier"] == pytest.approx(brier_score_loss(is_fake, proba[:, 0]))
    observed, predicted = calibration_curve(is_fake, proba[:, 0], n_bins=10)
    assert m["reliability"]["observed"] == pytest.approx(observed.tolist())
    assert m["reliability"]["predicted"] == pytest.approx(predicted.tolist(), abs=1e-6)
    assert sum(m["reliability"]["count"]) == 12
    assert m["at_threshold"]["fpr"] == pytest.approx(0.2) and m["at_threshold"]["recall"] == pytest.approx(5 / 7)


# -- a threshold that holds its false-positive rate --------------------------------
@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.2, 0.5])
def test_threshold_holds_its_false_positive_rate_where_chosen(target):
    rng = np.random.default_rng(1)
    n_real, n_fake = 300, 200
    p_fake = np.concatenate([rng.beta(2, 5, n_real), rng.beta(5, 2, n_fake)])
    p_fake[:20] = p_fake[0]  # ties among the reals
    labels = ["real"] * n_real + ["fake"] * n_fake
    t = choose_threshold(labels, np.column_stack([p_fake, 1 - p_fake]), ["fake", "real"], "fake", target)
    reals = p_fake[:n_real]
    fpr = float((reals >= t["value"]).mean())
    assert fpr <= target and t["fpr"] == pytest.approx(fpr)
    assert t["recall"] == pytest.approx(float((p_fake[n_real:] >= t["value"]).mean()))
    # the lowest such threshold: the next real below it would push the rate over the target
    below = reals[reals < t["value"]]
    if len(below):
        assert float((reals >= below.max()).mean()) > target
    assert threshold_at_fpr(np.array([0.5]), 0.0) > 0.5


def test_fit_saves_the_threshold_and_predict_applies_it(two_sources, dirs):
    run = fit(two_sources, FAST, "logreg", workers=0, name="thr", target_fpr=0.2, **dirs)
    t = run.params["threshold"]
    assert t["chosen_on"] == "valid" and t["target_fpr"] == 0.2 and run.metrics["threshold"] == t
    valid = run.predictions().query("set == 'valid'")
    reals = valid[valid["label"] == "real"]
    assert float((reals["proba_fake"] >= t["value"]).mean()) <= 0.2
    assert run.metrics["sets"]["valid"]["at_threshold"]["fpr"] <= 0.2
    assert "brier" in run.metrics["sets"]["test"]

    reopened = load_run(run.path)
    out = reopened.predict(sorted((two_sources / "test" / "fake" / "sd").iterdir()), cache_dir=dirs["cache_dir"],
                           workers=0)
    assert (out["threshold"] == t["value"]).all()
    expected = np.where(out["proba_fake"] >= t["value"], "fake", "real")
    assert out["pred"].tolist() == expected.tolist()
    assert set(reopened.predict(out["path"].tolist(), cache_dir=dirs["cache_dir"], workers=0,
                                threshold=0.0)["pred"]) == {"fake"}

    res, text = cli("predict", two_sources / "test" / "fake" / "sd", "--run", run.path, "--cache-dir",
                    dirs["cache_dir"], "-w", "0", "-q")
    assert res.exit_code == 0, text
    words = " ".join(text.split())
    assert f"threshold {t['value']:.4f} on P(fake)" in words and "chosen on valid" in words
    res, text = cli("predict", two_sources / "test" / "fake" / "sd", "--run", run.path, "--cache-dir",
                    dirs["cache_dir"], "--format", "json", "--threshold", "1")
    rows = json.loads(res.stdout)
    assert {r["pred"] for r in rows} == {"real"} and {r["threshold"] for r in rows} == {1.0}
    res, text = cli("predict", two_sources / "test" / "real", "--run", run.path, "--threshold", "2")
    assert res.exit_code == 2 and "less than or equal to 1" in " ".join(text.replace("│", " ").split())


def test_predict_with_the_shipped_detector_prints_its_threshold(tmp_path):
    image = sorted((RVF / "test" / "fake").iterdir())[0]
    res, text = cli("predict", "--task", "real-fake", image, "--cache-dir", tmp_path, "-q")
    assert res.exit_code == 0, text
    assert "threshold" in text and "on P(fake)" in text


def test_bad_target_fpr_is_refused_before_any_work(dirs):
    with pytest.raises(ModelError, match="target_fpr"):
        fit(RVF, FAST, "logreg", target_fpr=1.5, **dirs)


# -- leave one source out ------------------------------------------------------------
def test_leave_one_source_out_trains_without_it_and_scores_it(two_sources, dirs):
    run = fit(two_sources, FAST, "logreg", workers=0, name="loso-sd", leave_out="sd", **dirs)
    p = run.params
    assert p["leave_out"] == "sd"
    assert p["sources"] == {"train": ["stylegan"], "valid": ["stylegan"], "test": ["sd", "stylegan"]}
    preds = run.predictions()
    seen = preds[preds["set"].isin(["train", "valid"])]
    assert "sd" not in set(seen["source"]) and len(seen) == 32 + 10
    test = run.metrics["sets"]["test"]
    assert set(test["per_source"]) == {"sd", "stylegan"} and test["per_source"]["sd"]["n"] == 3
    assert test["n"] == 19

    with pytest.raises(DatasetError, match="sources: sd, stylegan"):
        fit(two_sources, FAST, "logreg", workers=0, leave_out="midjourney", **dirs)
    with pytest.raises(DatasetError, match="no fakes of source"):
        fit(RVF, FAST, "logreg", workers=0, leave_out="sd", **dirs)


def test_cli_fit_prints_per_source_figures_and_the_threshold(two_sources, dirs):
    res, out = cli("fit", two_sources, "-f", FAST, "-m", "logreg", "--leave-out", "stylegan", "--target-fpr",
                   "0.05", "--name", "cli-loso", "-w", "0", "-q", "--cache-dir", dirs["cache_dir"],
                   "--runs-dir", dirs["runs_dir"])
    assert res.exit_code == 0, out
    assert "each source's fakes vs all reals" in out and "stylegan" in out and "Brier score" in out
    words = " ".join(out.split())  # rich wraps lines at the terminal's width
    assert "threshold" in words and "at most 5.0% of real images are called fake" in words
    assert "left out of train and valid" in words
    assert load_run(dirs["runs_dir"] / "cli-loso").params["threshold"]["target_fpr"] == 0.05
    res, out = cli("fit", "--help")
    assert "--leave-out" in out and "--target-fpr" in out


def test_network_leaves_a_source_out_and_saves_its_threshold(two_sources, dirs):
    run = fit(two_sources, model="cnn", params={"size": 16, "widths": [4, 8], "dense": 8}, epochs=1,
              device="cpu", name="loso-cnn", leave_out="sd", runs_dir=dirs["runs_dir"],
              cache_dir=dirs["cache_dir"])
    assert run.params["leave_out"] == "sd" and run.params["sources"]["train"] == ["stylegan"]
    assert run.params["threshold"]["chosen_on"] == "valid"
    test = run.metrics["sets"]["test"]
    assert set(test["per_source"]) == {"sd", "stylegan"} and "brier" in test and "at_threshold" in test
    out = run.predict(sorted((two_sources / "test" / "real").iterdir())[:2], cache_dir=dirs["cache_dir"],
                      crops_dir=None)
    assert (out["threshold"] == run.params["threshold"]["value"]).all() and "decision" not in out


# -- the report: calibration and the trained-on x scored-on matrix -----------------------
def test_report_shows_calibration_and_the_leave_one_source_out_matrix(two_sources, tmp_path):
    from embedlab import analysis
    from embedlab.report import ReportOptions, write_report

    runs, cache = tmp_path / "runs", tmp_path / "cache"
    for name, left_out in (("all", None), ("no-sd", "sd"), ("no-stylegan", "stylegan")):
        fit(two_sources, FAST, "logreg", workers=0, name=name, leave_out=left_out, runs_dir=runs, cache_dir=cache)
    records = [analysis.read_run_folder(runs / n) for n in ("all", "no-sd", "no-stylegan")]
    matrix = analysis.source_matrix(records)
    assert len(matrix) == 6
    unseen = matrix[matrix["unseen"]]
    assert sorted(zip(unseen["run"], unseen["scored_on"])) == [("no-sd", "sd"), ("no-stylegan", "stylegan")]
    assert set(matrix.loc[matrix["run"] == "all", "trained_on"]) == {"sd+stylegan"}
    fig = analysis.plot_source_matrix(matrix)
    assert list(fig.data[0].y) == ["trained on sd+stylegan", "trained on stylegan", "trained on sd"]
    assert list(fig.data[0].x) == ["sd", "stylegan"]
    cell = records[1].sets["test"]["per_source"]["sd"]["roc_auc"]
    assert fig.data[0].z[1][0] == pytest.approx(cell)

    out = write_report(tmp_path / "report.html", datasets=[f"{two_sources}::{FAST}"], runs=[runs],
                       options=ReportOptions(cache_dir=cache, workers=0, max_thumbnails=10))
    html = out.read_text(encoding="utf-8")
    for text in ("Calibration", "Reliability", "Brier", "Sources of fakes", "trained on stylegan",
                 "(unseen)", "Images per source (generator of the fakes) and split", "test Brier"):
        assert text in html, text


def test_without_a_validation_split_the_threshold_is_chosen_on_train_and_says_so(tmp_path, dirs):
    import shutil

    from embedlab_cli.runs import threshold_line

    shutil.copytree(RVF / "train", tmp_path / "faces")  # real/ and fake/, no split folders
    run = fit(tmp_path / "faces", FAST, "logreg", workers=0, name="no-valid", **dirs)
    t = run.params["threshold"]
    assert t["chosen_on"] == "train" and t["negative_class"] == "real"
    train = run.predictions().query("set == 'train' and label == 'real'")
    assert float((train["proba_fake"] >= t["value"]).mean()) <= t["target_fpr"]
    assert "no validation split" in threshold_line({**t, "source": "run"})
