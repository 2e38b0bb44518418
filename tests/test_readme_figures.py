"""The README's benchmark figures are quoted from results/bench/*.json: each one exists there and
matches, and the help says what the README says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedlab_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BENCH = ROOT / "results" / "bench"


def bench(name: str) -> dict:
    return json.loads((BENCH / name).read_text())


def sci(value: float, digits: int = 1) -> str:
    """``7.2e-7`` for 7.15e-07: how the README writes small numbers."""
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if digits == 0 else mantissa
    return f"{mantissa}e{int(exponent)}"


def best_speed(name: str, network: str) -> float:
    return max(r["train_images_per_second"] for r in bench(name)["results"] if r["network"] == network)


def readme_line(start: str) -> str:
    lines = [ln for ln in README.splitlines() if ln.startswith(start)]
    if len(lines) > 1:  # the emotion table names the same networks: the speed table's rows start with a figure
        lines = [ln for ln in lines if ln[len(start):][:1].isdigit()]
    assert len(lines) == 1, f"README: {len(lines)} lines start with {start!r}"
    return lines[0]


encode, dlib_engine = bench("encode.json"), bench("encode_dlib_engine.json")
exact = bench("encode_torch_exactness.json")
ROWS = [
    ("| face_recognition's per-image loop", [f"| {encode['naive_images_per_second']:.1f} |"]),
    ("| `embedlab encode --engine dlib`, 2 workers, cold cache",
     [f"| {dlib_engine['cold_images_per_second']:.1f} |", f"| {dlib_engine['speedup_cold_vs_naive']:.1f}x |"]),
    ("| `embedlab encode` (torch engine), 2 workers, cold cache",
     [f"| {encode['cold_images_per_second']:.1f} |", f"| {encode['speedup_cold_vs_naive']:.1f}x |"]),
    ("| `embedlab.encode` from Python, warm cache", [f"| {encode['warm_seconds']:.2f} s in all |"]),
    ("| the `embedlab encode` command, cold cache", [f"| {encode['cli']['cold_seconds']:.1f} s in all |",
                                                    f"| {encode['cli']['speedup_cold_vs_naive']:.1f}x |"]),
    ("| the `embedlab encode` command, warm cache", [f"| {encode['cli']['warm_seconds_best_of_3']:.2f} s in all |",
                                                    f"| {encode['cli']['speedup_warm_vs_cold']:.0f}x faster than cold |"]),
    ("| `dlib-resnet` | ", [f"| {best_speed('train_speed_cpu.json', 'dlib-resnet'):,.0f} |",
                            f"| {best_speed('train_speed_cuda_b256.json', 'dlib-resnet'):,.0f} |"]),
    ("| `emotion-cnn` | ", [f"| {best_speed('train_speed_cpu.json', 'emotion-cnn'):,.0f} |",
                            f"| {best_speed('train_speed_cuda_b256.json', 'emotion-cnn'):,.0f} |"]),
    ("| `vgg16-emotion` | ", [f"| {best_speed('train_speed_cpu.json', 'vgg16-emotion'):,.0f} |",
                              f"| {best_speed('train_speed_cuda_b256.json', 'vgg16-emotion'):,.0f} |"]),
]


@pytest.mark.parametrize("start,figures", ROWS, ids=[r[0][:40] for r in ROWS])
def test_readme_table_rows_quote_the_benchmark_results(start, figures):
    line = readme_line(start)
    for figure in figures:
        assert figure in line, f"README row {start!r} should say {figure!r}: {line}"


def test_the_engines_tolerance_is_one_figure_in_readme_and_help():
    tolerance = sci(exact["tolerance"]["max_abs_diff"], 0)
    largest = sci(max(exact[k]["max_abs_diff"] for k in ("torch_1w_vs_dlib", "torch_2w_vs_dlib")))
    images = f"{exact['torch_1w_vs_dlib']['images']:,}"
    text = " ".join(README.split())
    assert f"within {tolerance} of dlib's (the largest difference over the {images} real/fake images: {largest})" in text
    help_text = " ".join(CliRunner().invoke(app, ["encode", "--help"], terminal_width=200).output.split())
    assert f"within {tolerance} of dlib's" in help_text.replace("│ ", "").replace(" │", "")
    for other in ("1e-6", "1e-5"):
        assert f"within {other}" not in text


def test_readme_shows_the_options_users_script_with():
    """Each option a researcher scripts with is shown in the README, and each still exists in `--help`."""
    import re

    readme = (ROOT / "README.md").read_text()
    helps = {cmd: CliRunner().invoke(app, [*cmd.split(), "--help"], env={"COLUMNS": "200"}).output
             for cmd in ("", "predict", "report", "fit", "encode", "runs")}
    shown = {  # option -> the command whose --help lists it
        "--version": "", "-vv": "", "-q": "", "--per-face": "predict", "--format": "predict",
        "--thumbnail-budget": "report", "--eval-on": "fit", "--leave-out": "fit", "--target-fpr": "fit",
        "EMBEDLAB_CACHE_DIR": "encode", "EMBEDLAB_RUNS_DIR": "fit",
    }
    for option, command in shown.items():
        assert option in readme, option
        listed = {"-vv": "--verbose", "-q": "--quiet"}.get(option, option)
        assert listed in re.sub(r"\s+", " ", helps[command]), (option, command)
    assert "embedlab cache failures" in readme and "Exit codes" in readme


def test_readme_memory_per_worker_quotes_the_benchmark():
    """The bounded-memory promise quotes `bench/worker_memory.py`'s peaks, rounded as written."""
    cases = {(c["image"], c["feature"]): c for c in bench("worker_memory.json")["cases"]}
    assert all(c["ok"] for c in cases.values())
    text = " ".join(README.split())
    at_limit = max(cases[(kind, f)]["peak_mb"] for kind in ("jpeg at the pixel limit", "png at the pixel limit")
                   for f in ("pixels", "spectrum"))
    with_encoding = max(cases[(kind, "encoding")]["peak_mb"] for kind in ("jpeg at the pixel limit",
                                                                           "png at the pixel limit"))
    big = cases[("jpeg 8900x8900 (drafted)", "pixels")]
    big_encoding = cases[("jpeg 8900x8900 (drafted)", "encoding")]
    assert f"about {round(at_limit, -1):.0f} MB to decode a 16-Mpixel JPEG or PNG" in text
    assert f"{with_encoding / 1000:.1f} GB with the `encoding` feature" in text
    assert f"8900x8900 JPEG decodes at {big['decoded'][0]}x{big['decoded'][1]} " \
           f"({round(big['peak_mb'], -1):.0f} MB; {round(big_encoding['peak_mb'], -1):.0f} MB with `encoding`)" in text


STAGE_ROWS = {  # README row -> key in results/bench/stages.json
    "| decode (file to RGB array) |": "decode",
    "| detect: HOG, upsample 1 (face_recognition's default) |": "detect: HOG, upsample 1 (dlib)",
    "| detect: HOG, upsample 0 |": "detect: HOG, upsample 0 (dlib)",
    "| detect: HOG, `upsample=auto` |": "detect: HOG, upsample auto (dlib)",
    "| detect: dlib's CNN detector, upsample 1 |": "detect: CNN, upsample 1 (dlib)",
    "| detect: the same CNN detector in PyTorch, batches of 16 |": "detect: CNN, upsample 1 (torch, batches of 16)",
    "| landmarks (dlib, 5 points) |": "landmarks (dlib, 5 points)",
    "| aligned chip (dlib) |": "chip (dlib)",
    "| descriptor: dlib's network, one chip at a time |": "descriptor (dlib, one chip at a time)",
    "| descriptor: the same network in PyTorch, one batch |": "descriptor (torch, one batch)",
    "| cache write (chunks of 16) |": "cache write (chunks of 16)",
}


def test_readme_stage_profile_quotes_the_benchmark():
    stages = bench("stages.json")
    for row, key in STAGE_ROWS.items():
        assert f"{readme_line(row)}" == f"{row} {stages['stages'][key]:.1f} |", row
    totals = stages["pipeline_totals"]
    for row, key in (("| **all stages, HOG, dlib engine", "HOG, dlib engine"),
                     ("| **all stages, HOG, torch engine**", "HOG, torch engine"),
                     ("| **all stages, CNN detector, torch**", "CNN, torch engine")):
        assert f"| {totals[key]:.1f} |" in readme_line(row), row


def test_readme_encoding_and_detector_sentences_quote_the_benchmarks():
    text = " ".join(README.split())
    same = encode["encodings_vs_naive"]
    assert same["face_found_differs"] == 0
    assert (f"(the largest difference, {sci(same['max_abs_difference'])}, is float rounding) for every one of the "
            f"{same['images_compared']:,} faces both find") in text
    photos = bench("mmod.json")["sets"]["face-photos"]
    assert photos["exact"] and photos["images"] == photos["of"]
    assert (f"on all {photos['images']} face-photos images ({photos['torch_faces']} faces;") in text
    assert f"confidences within {sci(photos['max_confidence_diff'])}, at {photos['speedup']:.1f}x dlib's speed" in text


def test_readme_cnn_detector_figures_quote_the_benchmark():
    cnn = bench("encode_cnn_cpu.json")
    det, run, loop = cnn["detector"], cnn["runs"][0], cnn["loop"]
    assert det["exact"] and run["encodings_vs_loop"]["face_found_differs"] == 0
    text = " ".join(README.split())
    assert (f"On all {det['images']:,} real/fake images at face_recognition's default upsampling "
            f"(`bench/encode_cnn.py`, `results/bench/encode_cnn_cpu.json`): the same {det['torch_faces']:,} faces, "
            f"IoU {det['min_iou']:.1f} for every face and confidences within {sci(det['max_confidence_diff'])}, "
            f"with the detector alone at {det['detector_speedup']:.1f}x dlib's speed "
            f"({det['torch_detector_seconds']:.0f} s against {det['dlib_detector_seconds']:,.0f} s)") in text
    assert f"| face_recognition's `model=\"cnn\"` loop | {loop['images_per_second']:.2f} | 1x |" in README
    assert (f"| `embedlab encode`, `encoding[detector=cnn]`, 2 workers, cold cache | {run['images_per_second']:.1f} "
            f"| {run['speedup_vs_loop']:.1f}x |") in README
    assert f"(within {sci(run['encodings_vs_loop']['max_abs_difference'])})" in text


def test_readme_upsample_auto_quotes_the_benchmark():
    auto = bench("upsample_auto.json")
    d = auto["encoding_distance_where_both_found"]
    text = " ".join(README.split())
    assert (f"it took {auto['seconds']['auto']:.1f} s against {auto['seconds']['upsample_1']:.1f} s, and found a face "
            f"in {auto['faces_found']['auto']:,} images against {auto['faces_found']['upsample_1']:,}") in text
    assert (f"a median distance of {d['median']:.3f} from the upsample-1 encoding (95th percentile {d['p95']:.3f}, "
            f"largest {d['max']:.3f}; {d['over_0.1']} of the {auto['found_by_both']:,} faces moved by more than 0.1")\
        in text


def test_readme_speed_targets_are_the_benchmark_table():
    table = (BENCH / "encode_targets.md").read_text()
    assert table in README
    targets = bench("encode_targets.json")["rows"]
    assert [r["met"] for r in targets] == [r["measured"] >= r["target"] for r in targets]
    assert [r["measured"] for r in targets] == [encode["speedup_cold_vs_naive"],  # the table is today's results
                                                bench("encode_cnn_cpu.json")["runs"][0]["speedup_vs_loop"],
                                                encode["cli"]["speedup_warm_vs_cold"]]


def test_the_listing_figures_are_the_benchmarks():
    listing = bench("listing.json")
    assert listing["same_hashes"] and listing["files"] == 35887
    sentence = (f"Listing FER-2013's {listing['files']:,} files takes {listing['warm_index_seconds']:.2f} s with the "
                f"index against\n  {listing['no_index_seconds']:.2f} s reading every file")
    assert sentence in README


def test_the_frozen_layer_figures_are_the_benchmarks():
    results = bench("realfake_frozen_layers.json")["results"]
    chip, whole = results["chip, every layer"]["test_roc_auc"], results["whole image, every layer"]["test_roc_auc"]
    assert f"StyleGAN test AUC {chip:.3f} on chips and {whole:.3f}\n  on whole images" in README


def test_the_generalisation_table_is_the_benchmarks():
    """Every row of the leave-one-generator-out table (bench/realfake_generalisation.py) stands in the README."""
    rows = [ln for ln in (BENCH / "realfake.md").read_text().splitlines() if ln.startswith("| ")]
    assert len(rows) > 2
    for row in rows:
        assert row in README, row
    summary = bench("realfake.json")["summary"]
    for det, s in summary.items():
        if s["left_out_mean"] is not None and f"`{det}`" in README:
            assert f"{s['left_out_mean']:.3f}" in README, det

def test_readme_encoding_model_figures_quote_the_benchmark():
    results = bench("realfake_encoding_models.json")
    text = " ".join(README.split())
    assert f"the RBF SVM stays the best of them (mean left-out AUC {results['svm']['left_out_mean']:.3f})" in text
    for name, label in (("xgboost", "XGBoost"), ("logreg", "a logistic regression")):
        assert f"{label} {results[name]['left_out_mean']:.3f}" in text, name
    gmm = results["real-gmm-4"]["folds"]["all"]["generators"]
    assert f"catches SD 1.5 at {gmm['sd15']['roc_auc']:.3f}" in text
    assert f"(StyleGAN {gmm['stylegan']['roc_auc']:.3f}, StyleGAN2 {gmm['stylegan2']['roc_auc']:.3f})" in text
    either = results["svm-or-real-gmm-4"]
    assert f"to {either['folds']['sd15']['generators']['sd15']['roc_auc']:.3f}" in text
    assert f"(mean {either['left_out_mean']:.3f})" in text


def test_readme_emotion_gap_rows_quote_the_benchmark():
    shipped = bench("emotion.json")["runs"][0]
    assert shipped["run"] == "embedlab/pretrained/emotion" and shipped["shipped_tta_flip"]
    for c in shipped["tta_flip"]["gap"]["classes"]:
        line = readme_line(f"| {c['label']} | {c['recall_real']:.2f} ")
        assert (f"| {c['recall_real']:.2f} [{c['real_ci_low']:.2f}, {c['real_ci_high']:.2f}] ({c['n_real']}) "
                f"| {c['recall_generated']:.2f} [{c['generated_ci_low']:.2f}, {c['generated_ci_high']:.2f}] "
                f"({c['n_generated']}) | {c['drop']:+.2f} [{c['drop_ci_low']:.2f}, {c['drop_ci_high']:.2f}] |") \
            in line, line


def test_readme_alignment_rows_quote_the_benchmark():
    [run] = bench("emotion_alignment.json")["runs"]
    for start, key, found in (("| FER PrivateTest, accuracy", "fer_private", "fer_private"),
                              ("| portraits, 5-way accuracy", "synthetic_5way", "synthetic")):
        acc = run["change"][key]["accuracy"]
        lo, hi = acc["change_ci"]
        assert (f"| {acc['before']:.3f} | {acc['after']:.3f} | {acc['change']:+.3f} [{lo:.2f}, {hi:.2f}] | "
                f"{run['aligned']['faces_found'][found]:,} of {run['aligned']['n'][found]:,} |") in readme_line(start)
    template = bench("fer_alignment.json")
    assert f"{template['found']:,} of {template['searched']:,} training faces" in " ".join(README.split())


def test_the_emotion_tables_are_the_benchmarks():
    """The comparison and per-class tables of bench/eval_emotion.py stand in the README, row for row."""
    rows = [ln for ln in (BENCH / "emotion.md").read_text().splitlines() if ln.startswith("| ")]
    assert len(rows) > 4 and any("emotion-adapted" in r for r in rows)
    for row in rows:
        assert row in README, row


def test_the_prediction_throughput_table_is_the_benchmarks():
    """bench/predict.py's table (folder throughput, warm cache, one photo) stands in the README."""
    rows = [ln for ln in (BENCH / "predict.md").read_text().splitlines() if ln.startswith("| ")]
    assert len(rows) == 3  # the header and both tasks
    for row in rows:
        assert row in README, row
