"""`embedlab demo`: the whole job on the bundled sample (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from embedlab_cli.app import RESULTS_DIR, SAMPLE_DATA_DIR, app, clean_errors, console, progress_bar, WORKERS_HELP


@app.command()
@clean_errors
def demo(
    data: Path = typer.Argument(SAMPLE_DATA_DIR, help="Folder holding the sample datasets."),
    out: Path = typer.Option(RESULTS_DIR, "--out", "-o", help="Output folder (cache, runs, report)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=0, metavar="N", help=WORKERS_HELP),
) -> None:
    """Encode the bundled sample, fit a real/fake detector and an emotion model, score the shipped
    models beside them, write the report.

    Example: [bold]embedlab demo data/sample --out results[/bold]
    """
    from rich.markup import escape

    from embedlab.demo import run_demo

    result = run_demo(data, out, workers=workers,
                      on_step=lambda msg: console.print(f"[bold cyan]>[/bold cyan] {escape(msg)}", highlight=False),
                      progress=lambda name: progress_bar(f"encoding {name}"))
    console.print()
    for run in result.runs:
        console.print(f"run:    {run}", highlight=False)
    for score in result.shipped:
        scored = ", ".join(f"{s['accuracy']:.0%} of {s['n']} on {name}" for name, s in score.sets.items() if s["n"])
        console.print(f"shipped {score.task}: {escape(scored)}", highlight=False)
    console.print(f"[bold green]report: {result.report.resolve()}[/bold green]", highlight=False)
    console.print("Open it in a browser; it works offline. Next: `embedlab report --help`.")
