"""The end-to-end job `make demo` runs: encode, fit, score the shipped models, report, on the bundled sample.

Every step goes through the public API, so this file doubles as a worked example.
"""

from __future__ import annotations

import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from embedlab.analysis import ShippedScore, score_shipped
from embedlab.api import encode, fit
from embedlab.core.defaults import RESULTS_DIR, SAMPLE_DATA_DIR
from embedlab.core.errors import DatasetError
from embedlab.report import ReportOptions, write_report

#: (dataset folder under the sample, feature specs to cache for it)
ENCODINGS = [
    ("real-vs-fake", "encoding,spectrum"),
    ("fer2013", "encoding[detector=none]"),       # tight 48x48 crops: the whole image is the face
    ("synthetic-emotions", "encoding"),            # medium shots: find the face first
]
#: (run name, dataset, features, model, extra fit options)
FITS = [
    ("demo-real-fake-encoding-svm", "real-vs-fake", "encoding", "svm", {}),
    ("demo-real-fake-spectrum-logreg", "real-vs-fake", "spectrum", "logreg", {}),
    ("demo-emotion-encoding-logreg", "fer2013", "encoding[detector=none]", "logreg",
     {"class_weight": "balanced", "eval_on": ["synthetic-emotions"], "eval_features": "encoding"}),
]


@dataclass
class DemoResult:
    report: Path
    runs: list[Path] = field(default_factory=list)
    summaries: dict[str, dict] = field(default_factory=dict)
    shipped: list[ShippedScore] = field(default_factory=list)


def run_demo(
    data_root: str | os.PathLike = SAMPLE_DATA_DIR,
    out: str | os.PathLike = RESULTS_DIR,
    workers: int | None = None,
    on_step: Callable[[str], None] | None = None,
    progress: Callable[[str], ContextManager[Callable[[int, int], None]]] | None = None,
) -> DemoResult:
    """Encode the sample datasets, fit three models, score the shipped ones, and write ``out/report.html``.

    The shipped models (those ``embedlab predict --task`` uses) are scored on the sample's held-out
    sets beside the three the demo fits; their inputs and verdicts are cached under ``out/cache``.

    ``progress(name)`` is a context manager giving the ``(done, total)``
    callback for one dataset's encoding (the CLI passes a progress bar).
    """
    step = on_step or (lambda _msg: None)
    data_root, out = Path(data_root), Path(out)
    missing = [name for name, _ in ENCODINGS if not (data_root / name).is_dir()]
    if missing:
        raise DatasetError(f"{data_root}: missing sample dataset(s) {', '.join(missing)}")
    cache_dir, runs_dir = out / "cache", out / "runs"
    result = DemoResult(report=out / "report.html")

    for name, specs in ENCODINGS:
        step(f"encode {data_root / name} [{specs}]")
        with progress(name) if progress else nullcontext() as update:
            df = encode(data_root / name, specs, cache_dir=cache_dir, workers=workers,
                                 on_progress=update)
        result.summaries[name] = df.attrs["summary"]

    for run_name, dataset, features, model, options in FITS:
        step(f"fit {model} on {dataset} [{features}]")
        shutil.rmtree(runs_dir / run_name, ignore_errors=True)  # the demo's own runs are refitted each time
        options = dict(options)
        options["eval_on"] = [data_root / d for d in options.get("eval_on", [])]
        run = fit(data_root / dataset, features, model, runs_dir=runs_dir, name=run_name,
                  cache_dir=cache_dir, workers=workers, **options)
        result.runs.append(Path(run.path))

    result.shipped = score_shipped(data_root, cache_dir=cache_dir, crops_dir=out / "crops", workers=workers,
                                   on_step=step)

    step(f"report {result.report}")
    datasets = [f"{data_root / name}::{specs.split(',')[0]}" for name, specs in ENCODINGS]
    write_report(result.report, datasets=datasets, runs=result.runs, shipped=result.shipped,
                 options=ReportOptions(cache_dir=cache_dir, workers=workers, title="embedlab demo: bundled sample"))
    return result
