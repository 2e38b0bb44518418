"""`embedlab report`: the interactive HTML report."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import List, Optional

import typer

from embedlab_cli.app import (DEFAULT_REPORT, DEFAULT_RUNS, DETECTOR_HELP, RUNS_ENV, WORKERS_HELP, app, cache_option,
                              clean_errors, console, note, progress_bar)
from embedlab_cli.terminal import shown


@app.command()
@clean_errors
def report(
    data: Optional[List[str]] = typer.Argument(
        None, metavar="[DATA[::FEATURES]]...",
        help="Datasets to cover. Append '::' and feature specs to choose the features of one dataset, e.g. "
        "'../shared/data/fer2013::encoding\\[detector=none]'. Without them a dataset uses the encoding variant "
        "already cached for most of its images, else the encoding its layout defaults to. " + DETECTOR_HELP),
    runs: Optional[List[Path]] = typer.Option(
        None, "--runs-dir", "--runs", "-r", file_okay=False,
        help=f"Run folder, or a folder of them (repeatable; --runs is the same option). Default with no DATA: "
        f"${RUNS_ENV}, else {DEFAULT_RUNS}."),
    output: Path = typer.Option(DEFAULT_REPORT, "--output", "-o", dir_okay=False, help="HTML file to write."),
    features: Optional[str] = typer.Option(
        None, "--features", "-f", help="Feature specs for every DATA that names none (overrides the defaults)."),
    generated: Optional[List[str]] = typer.Option(
        None, "--generated", help="Dataset (name or path) whose faces are all generated (repeatable). "
        "Default: datasets named like synthetic-*/generated-*; real/fake labels always decide per face."),
    cache_dir: Path = cache_option(),
    compute: bool = typer.Option(True, "--compute/--cached-only",
                                 help="Compute missing features, or use only images already in the cache."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=0, metavar="N", help=WORKERS_HELP),
    thumbnail_budget: float = typer.Option(
        15.0, "--thumbnail-budget", metavar="MB", min=0,
        help="Size budget of the hover thumbnails, in MB: every plotted point gets one while they fit (about 1 KB "
        "each), spread evenly over datasets and labels; the page states how many did."),
    thumbnails: Optional[int] = typer.Option(None, "--thumbnails", min=0, metavar="N",
                                             help="At most this many hover thumbnails (default: the budget decides)."),
    n_neighbors: int = typer.Option(15, "--n-neighbors", min=2, metavar="N", help="UMAP n_neighbors."),
    min_dist: float = typer.Option(0.1, "--min-dist", min=0.0, metavar="X", help="UMAP min_dist."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N", help="Seed for UMAP and the samples; same seed, same report."),
    title: str = typer.Option("embedlab report", "--title", help="Title of the page."),
) -> None:
    """Write one self-contained HTML report (works offline) on datasets and fitted models.

    It shows counts and duplicates per dataset, the L2 norms of the encodings
    with their tests, UMAP projections (real vs fake, emotions real and
    generated together), and for each run folder the model comparison,
    confusion matrices, ROC/PR and training curves and the most confident
    mistakes. With no arguments it covers the run folders in --runs-dir and
    the datasets they were fitted and evaluated on.

    Example: [bold]embedlab report data/sample/real-vs-fake data/sample/synthetic-emotions::encoding --runs-dir results/runs -o results/report.html[/bold]
    """
    from embedlab.report import ReportOptions, write_report

    started = time.perf_counter()
    if not data and not runs and os.environ.get(RUNS_ENV):
        runs = [Path(os.environ[RUNS_ENV])]
    with contextlib.ExitStack() as bars:
        encoding = _Encoding(bars)
        options = ReportOptions(cache_dir=cache_dir, features=features, generated=generated or None,
                                compute=compute, workers=workers, max_thumbnails=thumbnails,
                                thumbnail_budget_mb=thumbnail_budget, seed=seed, title=title,
                                umap_params={"n_neighbors": n_neighbors, "min_dist": min_dist})
        path = write_report(output, datasets=data or [], runs=runs or [], options=options,
                            on_step=encoding.step, on_plan=encoding.plan, on_progress=encoding.progress)
    size = path.stat().st_size / 1e6
    console.print(f"wrote [bold]{path}[/bold] ({size:.1f} MB) in {time.perf_counter() - started:.1f} s",
                  highlight=False)


class _Encoding:
    """What the report says while it works: each dataset it encodes, a bar while it computes features."""

    def __init__(self, bars: contextlib.ExitStack):
        self.bars = bars
        self.update = None

    def plan(self, plan) -> None:
        self.close()
        left_out = f", {plan.left_out:,} without cached features left out" if plan.left_out else ""
        note(shown(f"report: {plan.dataset} ({plan.path}): {plan.images:,} images, features {plan.features}: "
                   f"{plan.cached:,} cached, {plan.to_compute:,} to compute{left_out}"))
        if plan.to_compute:
            self.update = self.bars.enter_context(progress_bar(f"encoding {plan.dataset}"))

    def progress(self, done: int, total: int) -> None:
        if self.update is not None:
            self.update(done, total)

    def step(self, message: str) -> None:
        if not message.startswith("features of "):
            self.close()
            note(shown(f"report: {message}"))

    def close(self) -> None:
        self.bars.close()
        self.update = None
