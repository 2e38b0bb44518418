"""Learning curves: runs of one recipe at two training sizes line up in the analysis and the report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import embedlab
from embedlab import analysis, datasets
from embedlab.report import ReportOptions, write_report

RVF = Path(__file__).resolve().parents[1] / "data" / "sample" / "real-vs-fake"


def test_runs_at_two_training_sizes_make_a_left_out_curve_in_the_report(tmp_path):
    only = tmp_path / "newgen"
    for split in ("train", "valid", "test"):
        (only / split / "fake").mkdir(parents=True)
        for f in sorted((RVF / split / "fake").iterdir())[:4]:
            shutil.copy(f, only / split / "fake" / f"new-{f.name}")
    table = datasets.combine({"stylegan": RVF, "newgen": only})
    half = table.drop(table[table["split"] == "train"].sample(frac=0.5, random_state=0).index)
    runs = tmp_path / "runs"
    fitted = [embedlab.fit(t, "pixels[size=8]", "logreg", runs_dir=runs, cache_dir=tmp_path / "cache",
                           leave_out="newgen", workers=0, name=name) for name, t in (("half", half), ("all", table))]

    curves = analysis.learning_curves([analysis.read_run_folder(r.path) for r in fitted])
    assert curves["curve"].tolist() == ["left out: newgen"] * 2
    n_train = [r.metrics["sets"]["train"]["n"] for r in fitted]
    assert curves["n_train"].tolist() == n_train and n_train[0] < n_train[1]
    assert curves["value"].tolist() == [r.metrics["sets"]["test"]["per_source"]["newgen"]["roc_auc"] for r in fitted]
    assert curves["share"].iloc[-1] == 1.0

    out = write_report(tmp_path / "report.html", runs=[runs], options=ReportOptions(cache_dir=tmp_path / "cache",
                                                                                     workers=0))
    html = out.read_text(encoding="utf-8")
    section = html[html.index("Learning curves</h3>"):]
    assert "Learning curve: logreg on pixels[size=8]" in html
    assert "per doubling of the training images" in section
    table_rows = re.findall(r'<td class="">left out: newgen</td><td class="num">([\d,]+)</td>', section)
    assert [int(n.replace(",", "")) for n in table_rows] == n_train
