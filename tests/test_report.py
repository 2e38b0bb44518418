"""The HTML report: contents, safety with hostile file names, the CLI, and a real headless browser."""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import embedlab
from conftest import seed_cache
from embedlab.report import ReportOptions, parse_dataset_arg, write_report
from embedlab.report.sources import default_features

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
HOSTILE_FILE = "<img src=x onerror=document.title='pwned'>.jpg"
HOSTILE_LABEL = "<svg onload=window.pwned=1>"
FEATURES = "encoding[detector=none]"


def _copy_with_hostile_names(tmp: Path) -> tuple[Path, Path]:
    """The sample's real-vs-fake and synthetic-emotions, with a script in a file name and in a label."""
    rvf = tmp / "real-vs-fake"
    shutil.copytree(SAMPLE / "real-vs-fake", rvf)
    victim = sorted((rvf / "test" / "fake").glob("*.jpg"))[0]
    victim.rename(victim.with_name(HOSTILE_FILE))
    syn = tmp / "synthetic-emotions"
    shutil.copytree(SAMPLE / "synthetic-emotions", syn)
    (syn / "surprise").rename(syn / HOSTILE_LABEL)
    return rvf, syn


def _metrics(y_true, pred, proba, classes, role, dataset):
    from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, precision_recall_curve,
                                 roc_auc_score, roc_curve)

    rng = np.random.default_rng(0)
    correct = (pred == y_true).astype(float)
    boots = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(200)]
    out = {"role": role, "dataset": str(dataset), "n": int(len(y_true)), "accuracy": float(correct.mean()),
           "accuracy_ci": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
           "labels": list(classes), "confusion_matrix": confusion_matrix(y_true, pred, labels=classes).tolist()}
    if len(classes) == 2 and len(set(y_true)) == 2:
        score, positive = proba[:, list(classes).index("fake")], y_true == "fake"
        fpr, tpr, _ = roc_curve(positive, score)
        precision, recall, _ = precision_recall_curve(positive, score)
        out.update(roc_auc=float(roc_auc_score(positive, score)), roc_auc_ci=[0.5, 1.0],
                   average_precision=float(average_precision_score(positive, score)),
                   roc={"fpr": fpr.tolist(), "tpr": tpr.tolist()},
                   pr={"precision": precision.tolist(), "recall": recall.tolist()})
    return out


def _fake_run(folder: Path, table: pd.DataFrame, kind: str, eval_table: pd.DataFrame | None = None) -> Path:
    """A run folder in the documented format, fitted by scikit-learn on the real encodings.

    A binary run trains on ``train``, is tested on ``test`` and evaluated on the fakes of ``valid``
    (a set of fakes only, as ``--eval-on`` a folder of generated faces gives); ``eval_table`` adds
    another evaluation set (the generated emotion portraits for an emotion model).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    folder.mkdir(parents=True)
    X, ok = embedlab.feature_matrix(table, ["encoding"])
    t = table[ok].reset_index(drop=True)
    X = X[ok]
    binary = set(t["label"]) == {"real", "fake"}
    train = (t["split"] == "train").to_numpy() if binary else (t["split"] != "test").to_numpy()
    model = (LogisticRegression(C=0.5, max_iter=500) if kind == "classifier"
             else MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few iterations are enough for a plausible run
        model.fit(X[train], t.loc[train, "label"])
    classes = list(model.classes_)
    sets, preds = {}, []
    test = (t["split"] == "test").to_numpy()
    parts = [("train", "train", t[train], X[train], table.attrs["root"]),
             ("test", "test", t[test], X[test], table.attrs["root"])]
    if binary:
        fakes = ((t["split"] == "valid") & (t["label"] == "fake")).to_numpy()
        parts.append(("valid-fakes", "eval", t[fakes], X[fakes], "valid-fakes"))
    if eval_table is not None:
        Xe, oke = embedlab.feature_matrix(eval_table, ["encoding"])
        parts.append((eval_table.attrs["name"], "eval", eval_table[oke].reset_index(drop=True), Xe[oke],
                      eval_table.attrs["root"]))
    for name, role, rows, Xs, dataset in parts:
        proba = model.predict_proba(Xs)
        pred = np.asarray(classes)[proba.argmax(1)]
        y = rows["label"].to_numpy()
        sets[name] = _metrics(y, pred, proba, classes, role, dataset)
        preds.append(pd.DataFrame({"set": name, "image_id": rows["image_id"], "path": rows["path"],
                                   "hash": rows["hash"], "label": y, "pred": pred, "correct": pred == y,
                                   **{f"proba_{c}": proba[:, i] for i, c in enumerate(classes)}}))
    params = {"name": folder.name, "kind": kind, "task": "binary" if binary else "multiclass", "classes": classes,
              "positive_class": "fake" if binary else None,
              "model": "logistic" if kind == "classifier" else "mlp", "model_params": {}, "features": [FEATURES],
              "data": {"path": table.attrs["root"], "layout": table.attrs["layout"], "name": table.attrs["name"],
                       "n_images": len(table)}, "eval_on": [], "seed": 0, "model_files": []}
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "metrics.json").write_text(json.dumps({"sets": sets}))
    pd.concat(preds, ignore_index=True).to_parquet(folder / "predictions.parquet")
    if kind == "network":
        loss = np.asarray(model.loss_curve_)
        pd.DataFrame({"epoch": np.arange(1, len(loss) + 1), "train_loss": loss, "train_acc": np.nan,
                      "val_loss": loss * 1.1, "val_acc": np.nan, "lr": 1e-3, "seconds": 0.01}).to_csv(
            folder / "history.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, rvf_encodings):
    tmp = tmp_path_factory.mktemp("report")
    rvf, syn = _copy_with_hostile_names(tmp)
    cache = seed_cache(rvf_encodings, tmp / "cache")  # the copied real-vs-fake's images: their encodings, by content
    rvf_table = embedlab.encode(rvf, FEATURES, cache_dir=cache, workers=0)
    fer_table = embedlab.encode(SAMPLE / "fer2013", FEATURES, cache_dir=cache, workers=0)
    syn_table = embedlab.encode(syn, FEATURES, cache_dir=cache, workers=0)
    runs = tmp / "runs"
    _fake_run(runs / "logistic", rvf_table, "classifier")
    _fake_run(runs / "mlp", rvf_table, "network")
    _fake_run(runs / "emotions", fer_table, "classifier", eval_table=syn_table)
    out = tmp / "report.html"
    started = time.perf_counter()
    # one dataset as an encode() table, one as PATH::SPEC, one as a path; the default thumbnail budget
    write_report(out, datasets=[rvf_table, f"{syn}::{FEATURES}", str(SAMPLE / "fer2013")], runs=[runs],
                 options=ReportOptions(cache_dir=cache, thumbs_per_class=100, workers=0))
    return {"tmp": tmp, "out": out, "html": out.read_text(encoding="utf-8"), "runs": runs, "cache": cache,
            "rvf": rvf, "syn": syn, "rvf_table": rvf_table, "seconds": time.perf_counter() - started}


def _data_blocks(html: str) -> dict[str, object]:
    blocks = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', html, re.S)
    return {k: json.loads(v) for k, v in blocks}


def test_report_is_one_offline_file(built):
    from plotly.offline import get_plotlyjs

    html = built["html"]
    assert html.count(get_plotlyjs()[:300]) == 1  # Plotly's JavaScript, embedded once
    assert len(re.findall(r"<script>", html)) == 2  # plotly.js and the page's own script, nothing else runs
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"']?(https?:)?//", html)
    assert "Content-Security-Policy" in html and "default-src &#x27;none&#x27;" in html
    assert built["out"].stat().st_size < 25e6
    for anchor in ("datasets", "norms", "projections", "models", "about"):
        assert f'<section id="{anchor}">' in html
    blocks = _data_blocks(html)
    figs = [k for k in blocks if k.startswith("fig-")]
    assert len(figs) == html.count('class="fig ')
    traces = [t for k in figs for t in blocks[k]["data"]]
    assert {"scattergl", "heatmap", "bar", "box"} <= {t["type"] for t in traces}
    assert all(t["type"] == "scattergl" for t in traces if t.get("mode") == "markers")  # WebGL point clouds


def test_hostile_names_are_text_only(built):
    html = built["html"]
    # never as markup anywhere in the file...
    assert "<img src=x onerror" not in html and "<svg onload" not in html
    # ...but shown escaped as text in captions, tables and the legends
    assert "&lt;img src=x onerror=document.title=&#x27;pwned&#x27;&gt;.jpg" in html
    assert "&lt;svg onload=window.pwned=1&gt;" in html
    points = _data_blocks(html)["embedlab-points"]
    assert any(r.endswith(HOSTILE_FILE) for r in points["rel"])
    assert HOSTILE_LABEL in points["labels"]


def test_model_comparison_matches_the_runs(built):
    from embedlab import analysis

    rec = analysis.read_run_folder(built["runs"] / "logistic")
    test = rec.predictions[rec.predictions["set"] == "test"]
    real_acc = test.loc[test["label"] == "real", "correct"].mean()
    html = built["html"]
    assert "logistic" in html and "mlp" in html and "Training curves: mlp" in html
    assert f"{real_acc:.1%} (n={int((test['label'] == 'real').sum())})" in html
    titles = [b["layout"]["title"]["text"] for k, b in _data_blocks(html).items() if k.startswith("fig-")]
    assert "ROC · test" in titles and "Precision-recall · test" in titles
    assert "Most confident mistakes" in html


def _figure_titles(html: str) -> list[str]:
    return [b["layout"]["title"]["text"] for k, b in _data_blocks(html).items() if k.startswith("fig-")]


def _figure(html: str, title_start: str) -> dict:
    found = [b for k, b in _data_blocks(html).items()
             if k.startswith("fig-") and b["layout"]["title"]["text"].startswith(title_start)]
    assert found, f"no figure titled {title_start!r}"
    return found[0]


def test_results_come_first_with_contents(built):
    html = built["html"]
    starts = {a: html.index(f'<section id="{a}">') for a in ("models", "norms", "projections", "datasets", "about")}
    assert starts["models"] < starts["norms"] < starts["projections"] < starts["datasets"] < starts["about"]
    contents = re.search(r'<nav id="contents">(.*?)</nav>', html, re.S)
    assert contents and html.index('<nav id="contents">') < starts["models"]
    links = re.findall(r'href="#([^"]+)"', contents.group(1))
    for anchor in starts:
        assert anchor in links
    subsections = [a for a in links if a not in starts]
    assert len(subsections) >= 8  # comparison, per emotion, ROC, ..., one per projection
    for a in links:
        assert f'id="{a}"' in html, f"contents link #{a} leads nowhere"


def _values(array) -> list:
    """A figure's array as a list: Plotly writes numpy arrays as base64 typed arrays."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def _held_out(run: Path) -> pd.DataFrame:
    pred = pd.read_parquet(run / "predictions.parquet")
    return pred[pred["set"] != "train"]


def test_per_emotion_accuracy_real_and_generated(built):
    fig = _figure(built["html"], "Accuracy per class, real and generated faces: emotions")
    held = _held_out(built["runs"] / "emotions")
    origin = np.where(held["set"] == "test", "real", "generated")  # FER-2013 is real, the eval set generated
    expected = held.assign(origin=origin).groupby(["origin", "label"])["correct"].mean()
    bars = {t["name"]: t for t in fig["data"]}
    assert set(bars) == {"real", "generated"}
    seen = 0
    for name, trace in bars.items():
        for label, acc in zip(trace["x"], _values(trace["y"])):
            if acc == acc:  # NaN: no face of that label and origin
                assert acc == pytest.approx(expected[(name, html_module.unescape(label))]), (name, label)
                seen += 1
    assert seen == len(expected)
    assert "Accuracy per emotion, real and generated faces" in built["html"]


def test_roc_covers_eval_sets_with_tpr_at_one_percent_fpr(built):
    html = built["html"]
    titles = _figure_titles(html)
    assert "ROC · valid-fakes (reals of test)" in titles, titles
    assert "Precision-recall · valid-fakes (reals of test)" in titles
    held = _held_out(built["runs"] / "logistic")
    reals = held.loc[(held["set"] == "test") & (held["label"] == "real"), "proba_fake"].to_numpy()
    fakes = held.loc[held["set"] == "valid-fakes", "proba_fake"].to_numpy()
    allowed = int(np.floor(0.01 * len(reals)))  # reals that may score above the threshold
    threshold = np.sort(reals)[::-1][allowed] if allowed < len(reals) else -np.inf
    tpr = float((fakes > threshold).mean())
    row = re.search(r"<tr><td[^>]*>logistic</td><td[^>]*>valid-fakes</td>(.*?)</tr>", html)
    assert row, "no detection row for the eval set"
    assert f">{tpr:.1%}<" in row.group(1) and ">test<" in row.group(1)
    assert "TPR at 1% FPR" in html and "Fakes caught when at most 1% of reals are called fake" in html


def test_every_point_has_a_thumbnail_within_the_default_budget(built):
    html = built["html"]
    points = _data_blocks(html)["embedlab-points"]
    plotted = {int(i) for k, b in _data_blocks(html).items() if k.startswith("fig-")
               for t in b["data"] if t.get("type") == "scattergl" for i in _values(t.get("customdata", []))}
    assert plotted and plotted <= {int(i) for i in points["thumbs"]}
    assert points["n_thumbs"] == points["n_points"]
    assert all(uri.startswith("data:image/webp;base64,") for uri in points["thumbs"].values())
    assert "Hover thumbnails for every plotted point" in html and "of a 15 MB size budget" in html


def test_thumbnail_budget_beyond_500_points():
    from embedlab.report.thumbnails import budgeted_thumbnails, stratified_order

    image = str(sorted((SAMPLE / "real-vs-fake" / "test" / "real").glob("*.jpg"))[0])
    items = [(i, image, f"hash-{i}") for i in range(1200)]  # distinct hashes: each is encoded and counted
    thumbs, used = budgeted_thumbnails(items, 10_000_000)
    assert len(thumbs) == 1200 and used == sum(len(u) for u in thumbs.values())
    half, used_half = budgeted_thumbnails(items, used // 2)
    assert used_half <= used // 2 and len(half) == pytest.approx(600, abs=2)
    # the order thumbnails are given in: round robin over the groups, so any prefix is balanced
    order = stratified_order(["a"] * 900 + ["b"] * 300, seed=0)
    assert sorted(order.tolist()) == list(range(1200))
    assert (order[:600] >= 900).sum() == 300


def test_emotion_projection_shows_origin_first(built):
    fig = _figure(built["html"], "Emotions, real and generated faces together")
    shown = [t for t in fig["data"] if t.get("visible") is True]
    assert [t["name"].split(" (")[0] for t in shown] == ["real", "generated"]  # generated drawn last, on top
    assert shown[0]["legendgrouptitle"]["text"] == "origin"
    assert fig["layout"]["updatemenus"][0]["buttons"][0]["label"] == "colour: origin"


def test_mean_spectrum_per_class(built):
    fig = _figure(built["html"], "Mean power spectrum per class: real-vs-fake")
    table = embedlab.encode(built["rvf"], "spectrum[size=64]", cache_dir=built["cache"], workers=0)
    X, ok = embedlab.feature_matrix(table, ["spectrum"])
    lines = {t["name"].split(" (")[0]: t for t in fig["data"]}
    assert set(lines) == {"real", "fake"}
    for label, trace in lines.items():
        expected = X[ok & (table["label"] == label).to_numpy()].mean(axis=0)
        assert np.allclose(_values(trace["y"]), expected, atol=1e-4)
        assert _values(trace["x"])[-1] == pytest.approx(31 / 64)  # cycles per pixel
    _figure(built["html"], "Mean power spectrum per class: synthetic-emotions")
    both = _figure(built["html"], "Mean power spectrum, real and generated faces")
    assert {t["name"].split(" (")[0] for t in both["data"]} >= {"fer2013 · real", "synthetic-emotions · generated"}
    assert '<section id="spectra">' in built["html"]


def test_warns_when_compared_encodings_come_from_different_detectors(built, tmp_path):
    from embedlab.report import sections
    from embedlab.report.page import Page
    from embedlab.report.writer import build_context

    # a cache of its own: the HOG encodings must not change what later tests find cached
    hog = embedlab.encode(built["syn"], "encoding[detector=hog]", cache_dir=tmp_path / "cache", workers=0)
    ctx = build_context(Page("t"), [built["rvf_table"], hog], [], [], ReportOptions(thumbs_per_class=1), timings={})
    sections.norms_section(ctx)
    body = ctx.page.sections[0][2]
    assert ("encoding vectors were computed with different settings (real-vs-fake: detector=none; "
            "synthetic-emotions: detector=hog") in body
    assert "different settings" not in built["html"]  # every dataset of the main report: detector=none


def test_dataset_args_and_default_features(built):
    src = parse_dataset_arg("data/x::encoding[detector=none],spectrum")
    assert (src.path, src.features) == ("data/x", "encoding[detector=none],spectrum")
    with pytest.raises(embedlab.core.errors.EmbedlabError):
        parse_dataset_arg("data/x::")
    # the cached variant wins over the layout default; with nothing cached the layout decides
    syn = embedlab.datasets.load(built["syn"])
    assert default_features(syn, built["cache"]) == FEATURES
    assert default_features(syn, built["tmp"] / "empty-cache") == "encoding"
    assert default_features(built["rvf_table"], built["tmp"] / "empty-cache") == "encoding"  # HOG finds 256 px faces
    fer = embedlab.datasets.load("data/sample/fer2013")
    assert default_features(fer, built["tmp"] / "empty-cache") == "encoding[detector=none]"  # 48x48 crops: no detector


def test_cli_without_arguments_covers_results(built, tmp_path, monkeypatch):
    from embedlab_cli.main import app

    (tmp_path / "results").mkdir()
    shutil.copytree(built["runs"], tmp_path / "results" / "runs")
    shutil.copytree(built["cache"], tmp_path / "results" / "cache")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "--cached-only", "--thumbnail-budget", "0.02"])
    assert result.exit_code == 0, result.output
    # which datasets it encodes, with how many images, before the work starts
    n_rvf = len(list(built["rvf"].rglob("*.jpg")))
    assert f"report: real-vs-fake ({built['rvf']}): {n_rvf:,} images, features {FEATURES}: {n_rvf:,} cached, " \
           "0 to compute" in result.stderr
    n_fer = len(list((SAMPLE / "fer2013").rglob("*.jpg")))
    assert f"report: fer2013 (" in result.stderr and f"{n_fer:,} images, features {FEATURES}" in result.stderr
    html = (tmp_path / "results" / "report.html").read_text(encoding="utf-8")
    points = _data_blocks(html)["embedlab-points"]
    assert 0 < points["n_thumbs"] < points["n_points"] and points["thumb_bytes"] <= 20_000
    statement = f"Hover thumbnails for {points['n_thumbs']:,} of {points['n_points']:,} plotted points"
    assert statement in html and "of a 0.02 MB size budget" in html
    # the budget is spread over the labels rather than spent on the first one
    labels = {points["labels"][points["label"][int(i)]] for i in points["thumbs"]}
    assert {"real", "fake", "happy", "sad"} <= labels
    assert "real-vs-fake" in html and "logistic" in html and "Real vs generated: real-vs-fake" in html
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r.html")])
    assert bad.exit_code == 2 and "no such file or folder" in bad.output and "Traceback" not in bad.output


# -- the real browser ------------------------------------------------------------------
def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver); "
                    ".ci/run installs them")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--enable-unsafe-swiftshader", "--window-size=1400,1000",
                f"--user-data-dir={tempfile.mkdtemp(prefix='embedlab-chromium-')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(driver))


def test_report_in_headless_browser(built):
    browser = _browser()
    try:
        started = time.perf_counter()
        browser.get(built["out"].as_uri())
        for _ in range(600):
            if browser.execute_script("return document.body.dataset.ready") == "1":
                break
            time.sleep(0.1)
        load_seconds = time.perf_counter() - started
        assert browser.execute_script("return document.body.dataset.ready") == "1", "figures never finished"
        figs = browser.execute_script("""
            return Array.from(document.querySelectorAll('div.fig')).map(d => ({
                id: d.id, svg: d.querySelectorAll('svg.main-svg').length,
                canvas: d.querySelectorAll('canvas').length, points: !!d.dataset.points,
                traces: (d.data || []).length}));""")
        assert figs, "no figures in the page"
        for f in figs:
            assert f["svg"] > 0 and f["traces"] > 0, f"figure {f['id']} did not render: {f}"
            if f["points"]:
                assert f["canvas"] > 0, f"WebGL scatter {f['id']} has no canvas"
        # a real mouse hover over the hostile file's point: the card shows a thumbnail and the path, as text
        where = browser.execute_script("""
            const points = JSON.parse(document.getElementById('embedlab-points').textContent);
            const target = points.rel.findIndex(r => r.endsWith(arguments[0]));
            for (const gd of document.querySelectorAll('div.fig[data-points]')) {
              for (let c = 0; c < gd._fullData.length; c++) {
                const t = gd._fullData[c];
                if (t.visible !== true) continue;
                const p = Array.from(t.customdata || []).indexOf(target);
                if (p < 0) continue;
                gd.scrollIntoView({block: 'center'});
                const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                return {id: gd.id, target: target, w: gd.clientWidth, h: gd.clientHeight,
                        x: xa._offset + xa.l2p(t.x[p]), y: ya._offset + ya.l2p(t.y[p])};
              }
            }
            return null;""", HOSTILE_FILE)
        assert where is not None, "the hostile file is in no projection"
        from selenium.webdriver.common.action_chains import ActionChains

        fig_div = browser.find_element("id", where["id"])
        ActionChains(browser).move_to_element_with_offset(
            fig_div, int(where["x"] - where["w"] / 2), int(where["y"] - where["h"] / 2)).perform()
        for _ in range(50):
            if not browser.execute_script("return document.getElementById('tip').hidden"):
                break
            time.sleep(0.1)
        tip = browser.execute_script("""
            const tip = document.getElementById('tip');
            return {hidden: tip.hidden, point: Number(tip.dataset.point), text: tip.innerText,
                    path: tip.querySelector('.tip-path').textContent,
                    img: tip.querySelector('img').hidden ? null : tip.querySelector('img').src};""")
        assert tip["hidden"] is False, "hovering a point shows no card"
        assert tip["img"] and tip["img"].startswith("data:image/webp;base64,")
        if tip["point"] == where["target"]:  # unless another point lies exactly on top of it
            assert tip["path"].endswith(HOSTILE_FILE)
        browser.execute_script("window.embedlabShowPoint(arguments[0], {clientX: 50, clientY: 50})", where["target"])
        assert browser.execute_script("return document.querySelector('#tip .tip-path').textContent").endswith(
            HOSTILE_FILE)
        # the names are on the page as text, and none of them ran
        body = browser.find_element("tag name", "body").text
        assert HOSTILE_FILE in body and HOSTILE_LABEL in body
        assert browser.execute_script("return document.title") == "embedlab report"
        assert browser.execute_script("return window.pwned === undefined")
        assert browser.execute_script("return document.querySelectorAll('svg[onload], img[onerror]').length") == 0
        # the hover card keeps off the legend and the colour buttons, even for a point right beside them
        covered = browser.execute_script("""
            const out = [], tip = document.getElementById('tip');
            const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
            for (const gd of document.querySelectorAll('div.fig[data-points]')) {
              gd.scrollIntoView({block: 'center'});
              const boxes = Array.from(gd.querySelectorAll('g.legend, g.updatemenu-container'))
                .map(el => el.getBoundingClientRect());
              for (const r of boxes) {
                for (const [x, y] of [[r.left - 4, r.top + 4], [r.left - 4, r.bottom - 4], [r.left + 4, r.top + 4]]) {
                  window.embedlabShowPoint(Number(gd._fullData[0].customdata[0]), {clientX: x, clientY: y}, gd);
                  const t = tip.getBoundingClientRect();
                  if (boxes.some(b => hit(t, b))) out.push([gd.id, x, y]);
                }
              }
              if (!boxes.length) out.push([gd.id, 'no legend found']);
              if (boxes.length > 1 && hit(boxes[0], boxes[1])) out.push([gd.id, 'the colour buttons cover the legend']);
            }
            return out;""")
        assert not covered, f"the hover card covers a legend: {covered}"
        # at 1400 px every table stays inside its card, and the model comparison fits without scrolling
        outside = browser.execute_script("""
            const out = [];
            for (const wrap of document.querySelectorAll('section .tablewrap')) {
              const card = wrap.closest('section').getBoundingClientRect(), box = wrap.getBoundingClientRect();
              if (box.right > card.right + 0.5) out.push([wrap.closest('section').id, box.right, card.right]);
            }
            const comparison = Array.from(document.querySelectorAll('caption'))
              .find(c => c.textContent === 'Model comparison').closest('.tablewrap');
            if (comparison.scrollWidth > comparison.clientWidth) out.push(['comparison scrolls', comparison.scrollWidth]);
            return out;""")
        assert not outside, f"tables wider than their cards: {outside}"
        browser.execute_script("window.scrollTo(0, 0)")
        shot = ROOT / "results" / "report-browser-test.png"
        shot.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"console errors: {errors}"
        assert load_seconds < 60
    finally:
        browser.quit()


# -- what the page explains and how it is laid out -------------------------------------------
def _tables(html: str) -> list[dict]:
    """Every table of ``html``: its caption, headings and rows of cell text (unescaped)."""
    out = []
    for block in re.findall(r"<table>(.*?)</table>", html, re.S):
        caption = re.search(r"<caption>(.*?)</caption>", block, re.S)
        text = lambda cell: html_module.unescape(re.sub(r"<[^>]+>", "", cell)).strip()  # noqa: E731
        out.append({"caption": text(caption.group(1)) if caption else "",
                    "headings": [text(h) for h in re.findall(r"<th>(.*?)</th>", block, re.S)],
                    "rows": [[text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
                             for row in re.findall(r"<tr>(.*?)</tr>", block, re.S) if "<td" in row]})
    return out


def _column(table: dict, heading_start: str) -> list[str]:
    index = [i for i, h in enumerate(table["headings"]) if h.startswith(heading_start)]
    assert len(index) == 1, (heading_start, table["headings"])
    return [row[index[0]] for row in table["rows"]]


def test_report_says_which_threshold_predict_applies(built, tmp_path):
    from embedlab import analysis
    from embedlab.report import sections
    from embedlab.report.page import Page
    from embedlab.report.writer import build_context
    from embedlab.runs.scoring import threshold_at_fpr

    run = tmp_path / "logistic-with-threshold"
    shutil.copytree(built["runs"] / "logistic", run)
    params = json.loads((run / "params.json").read_text())
    params["name"] = run.name
    params["threshold"] = {"value": 0.6125, "target_fpr": 0.01, "positive_class": "fake", "negative_class": "real",
                           "chosen_on": "valid"}
    (run / "params.json").write_text(json.dumps(params))
    records = [analysis.read_run_folder(run), analysis.read_run_folder(built["runs"] / "mlp")]
    ctx = build_context(Page("t"), [built["rvf_table"]], records, [], ReportOptions(thumbs_per_class=1), timings={})
    sections.models_section(ctx)
    body = ctx.page.sections[0][2]
    comparison = next(t for t in _tables(body) if t["caption"] == "Model comparison")
    # the saved threshold is the column that says predict applies it, and the note under the table says so
    applied = dict(zip(_column(comparison, "run"), _column(comparison, "decision threshold (predict applies it)")))
    assert applied["logistic-with-threshold"] == "0.613" and applied["mlp"] == "–"
    note = html_module.unescape(re.sub(r"<[^>]+>", "", re.search(r'<p[^>]*id="decision-threshold">(.*?)</p>',
                                                                 body, re.S).group(1)))
    assert "embedlab predict applies" in note
    assert "logistic-with-threshold: 0.613, chosen on valid for at most 1.0% of real faces called fake" in note
    assert "mlp: none saved, so predict applies 0.5" in note  # a run from before thresholds were saved
    # the 1% FPR table's threshold is read off each set afterwards, and says it is not the one applied
    detection = next(t for t in _tables(body) if t["caption"].startswith("Fakes caught"))
    after = _column(detection, "threshold giving it here (not the one predict applies)")
    held = _held_out(run)
    reals = held.loc[(held["set"] == "test") & (held["label"] == "real"), "proba_fake"].to_numpy()
    row = [r[1] for r in detection["rows"]].index("test")
    assert after[row] == f"{threshold_at_fpr(reals, 0.01):.3f}" and after[row] != applied["logistic-with-threshold"]
    assert 'href="#decision-threshold"' in body


def _css_rules(css: str) -> dict[str, dict[str, str]]:
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        decls = dict((k.strip(), v.strip()) for k, v in (d.split(":", 1) for d in body.split(";") if ":" in d))
        for selector in selectors.split(","):
            rules.setdefault(selector.strip(), {}).update(decls)
    return rules


def test_tables_scroll_or_wrap_within_their_cards(built):
    html = built["html"]
    css = _css_rules(re.search(r"<style>(.*?)</style>", html, re.S).group(1))
    # every table sits in a container that scrolls sideways rather than growing past its card...
    assert html.count("<table>") == html.count('<div class="tablewrap"><table>') > 0
    assert css[".tablewrap"]["overflow-x"] == "auto" and css[".tablewrap"]["max-width"] == "100%"
    # ...and long unbroken cells (run names, feature specs, paths) may wrap, so most tables need no scrolling
    assert css["td"]["overflow-wrap"] == "anywhere" and css["th"]["overflow-wrap"] == "anywhere"
    assert css["td.num"]["overflow-wrap"] == "normal"  # numbers break at spaces only, never mid-number
    assert css[".grid > *"]["min-width"] == "0"  # a wide table in a grid cell does not widen the grid


def test_per_emotion_chart_has_one_count_label_per_bar_group(built):
    fig = _figure(built["html"], "Accuracy per class, real and generated faces: emotions")
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    # no text on or above the bars, where neighbouring bars' labels and the intervals collide...
    assert all(not t.get("text") and t.get("textposition") in (None, "none") for t in bars)
    # ...the counts go under each group instead: one tick label per emotion, one line per bar in the bar's colour
    xaxis = fig["layout"]["xaxis"]
    categories = list(bars[0]["x"])
    assert xaxis["tickmode"] == "array" and list(xaxis["tickvals"]) == categories
    assert len(xaxis["ticktext"]) == len(set(xaxis["ticktext"])) == len(categories)
    held = _held_out(built["runs"] / "emotions")
    counts = held.assign(origin=np.where(held["set"] == "test", "real", "generated")).groupby(["origin", "label"]).size()
    for label, tick in zip(categories, xaxis["ticktext"]):
        lines = tick.split("<br>")
        assert lines[0] == label and len(lines) == 1 + len(bars)
        for line, trace in zip(lines[1:], bars):
            n = counts.get((trace["name"], html_module.unescape(label)))
            assert line == f'<span style="color:{trace["marker"]["color"]}">{n if n is not None else "–"}</span>'


# -- the shipped models --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped(built):
    from embedlab.analysis import score_shipped

    tmp = built["tmp"]
    scores = score_shipped(SAMPLE, cache_dir=tmp / "shipped-cache", crops_dir=tmp / "shipped-crops", workers=0)
    out = write_report(tmp / "shipped.html", datasets=[built["rvf_table"]], shipped=scores,
                       options=ReportOptions(cache_dir=built["cache"], workers=0, thumbnail_budget_mb=0.05,
                                             title="shipped"))
    return {"scores": {s.task: s for s in scores}, "html": out.read_text(encoding="utf-8")}


def test_shipped_models_are_scored_with_predicts_verdicts(shipped):
    from embedlab.api import load_run
    from embedlab.runs import pretrained_run

    real_fake, emotion = shipped["scores"]["real-fake"], shipped["scores"]["emotion"]
    # the sets the issue names, every image of them: real-vs-fake test; fer2013 test and the generated portraits
    sizes = {name: s["n"] for name, s in {**real_fake.sets, **emotion.sets}.items()}
    assert sizes == {"real-vs-fake test": len(list((SAMPLE / "real-vs-fake" / "test").rglob("*.jpg"))),
                     "fer2013 test": len(list((SAMPLE / "fer2013" / "test").rglob("*.jpg"))),
                     "synthetic-emotions": len(list((SAMPLE / "synthetic-emotions").rglob("*.jpg")))}
    # the binary run's verdict is the label at its saved threshold, the one predict applies, not the likelier class
    cut = load_run(pretrained_run("real-fake")).decision_threshold()["value"]
    pred = real_fake.predictions
    assert (pred["pred"] == np.where(pred["proba_fake"] >= cut, "fake", "real")).all()
    for score in (real_fake, emotion):
        for name, part in score.predictions.groupby("set"):
            s = score.sets[name]
            assert s["accuracy"] == pytest.approx((part["label"] == part["pred"]).mean())
            assert s["fitted_on"] == 0  # none of the sample's test images was among the run's training images
            assert sum(map(sum, s["confusion_matrix"])) == len(part)


def test_shipped_models_section_shows_per_class_figures_and_faces(shipped):
    from embedlab.report.shipped import EXAMPLES_PER_SET
    from embedlab.runs import pretrained_run

    html = shipped["html"]
    assert '<section id="shipped"><h2>Results: the shipped models</h2>' in html
    section = html[html.index('<section id="shipped">'):]
    section = section[:section.index("</section>")]
    assert "The sample is tiny" in section and "embedlab predict --task emotion" in section
    for task, score in shipped["scores"].items():
        # how it was trained: its COMMAND file
        assert html_module.escape((pretrained_run(task) / "COMMAND").read_text().strip()) in section
        table = next(t for t in _tables(section) if t["caption"] == f"Shipped {task} model: accuracy of its verdicts")
        rows = {r[0]: r for r in table["rows"]}
        for name, part in score.predictions.groupby("set", sort=False):
            correct = int((part["label"] == part["pred"]).sum())
            lo, hi = embedlab.analysis.wilson_interval(correct, len(part))
            assert rows[name][2:5] == [f"{len(part):,}", f"{correct / len(part):.1%}", f"[{lo:.1%}, {hi:.1%}]"]
        assert rows["when trained: its test set"][2] == f"{score.own_sets['test']['n']:,}"
        # per-class accuracy, one bar trace per set, from the verdicts
        fig = _figure(html, f"Accuracy per class: shipped {task} model on the sample")
        for trace in fig["data"]:
            part = score.predictions[score.predictions["set"] == html_module.unescape(trace["name"])]
            expected = (part["label"] == part["pred"]).groupby(part["label"]).mean()
            got = dict(zip(trace["x"], _values(trace["y"])))
            assert {k: v for k, v in got.items() if v == v} == pytest.approx(expected.to_dict())
        # a confusion matrix per set, titled with its n
        for name, s in score.sets.items():
            cm = _figure(html, f"Shipped {task} model · {name} (n={s['n']})")
            assert cm["data"][0]["type"] == "heatmap"
        # a few example faces per set with their verdicts
        for name, part in score.predictions.groupby("set", sort=False):
            start = section.index(f'<div class="label">{html_module.escape(name)}</div><div class="thumbs">')
            block = section[start:].split('<div class="label">')[1]  # up to the next set's faces
            faces = re.findall(r"<figcaption>(.*?)</figcaption><div>true <b>(.*?)</b>, predicted <b>(.*?)</b>",
                               block)
            assert len(faces) == min(EXAMPLES_PER_SET, len(part))
            assert len({f[1] for f in faces}) == min(len(faces), part["label"].nunique())  # each label in turn
            verdicts = {Path(p).name: (label, pred) for p, label, pred in zip(part["path"], part["label"], part["pred"])}
            assert all(verdicts[file] == (label, pred) for file, label, pred in faces)


def test_emotion_run_shows_real_and_generated_confusion_matrices_side_by_side(built):
    html = built["html"]
    assert "Real against generated faces, per class" in html
    assert "recall drop per class, the classes that lose most first" in html
    fig = _figure(html, "Real against generated faces: emotions")
    assert [t["type"] for t in fig["data"]] == ["heatmap", "heatmap"]
    assert fig["data"][0]["xaxis"] != fig["data"][1]["xaxis"]
