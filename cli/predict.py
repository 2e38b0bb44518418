"""`embedlab predict`: label images with a fitted run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from embedlab_cli.app import DEFAULT_CACHE, DEFAULT_RUNS, app, clean_errors, console, fail, progress_bar

FORMATS = ("table", "csv", "json")


@app.command()
@clean_errors
def predict(
    images: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    run: Optional[str] = typer.Option(None, "--run", "-r", help="Run folder, or run name under --runs-dir."),
    task: Optional[str] = typer.Option(
        None, "--task", help="Use the shipped reference run instead of --run: emotion or real-fake."),
    output: str = typer.Option("table", "--format", help="table, csv or json."),
    features: Optional[str] = typer.Option(
        None, "--features", "-f",
        help="Replace the run's feature specs (same features and sizes), e.g. 'encoding' to find the "
        "face in medium shots for a run fitted on 'encoding[detector=none]'."),
    runs_dir: Path = typer.Option(DEFAULT_RUNS, "--runs-dir", help="Where run folders live."),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir", help="Where the feature cache lives."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Worker processes (default: all cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Predicted label and class probabilities for each image, with a fitted run.

    The features the run needs are computed (or read from the cache) first.

    Example: [bold]embedlab predict data/sample/real-vs-fake/test --run results/runs/NAME[/bold]
    """
    import pandas as pd

    from embedlab.api import load_run
    from embedlab.runs import pretrained_run

    if output not in FORMATS:
        fail(f"--format {output!r}: choose {', '.join(FORMATS)}")
    if (run is None) == (task is None):
        fail("give either --run RUN or --task emotion|real-fake")
    folder = pretrained_run(task) if task else run
    fitted = load_run(folder, runs_dir)
    with progress_bar("features", quiet=quiet or output != "table") as update:
        table = fitted.predict(images, features=features, cache_dir=cache_dir, workers=workers,
                               on_progress=update)
    show = [c for c in table.columns if c in ("image_id", "path", "pred", "reason") or c.startswith("proba_")]
    table = table[show]
    if output == "csv":
        typer.echo(table.to_csv(index=False), nl=False)
        return
    if output == "json":
        records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
        typer.echo(json.dumps(records, default=str))
        return
    out = Table(title=f"{len(table)} images, run {getattr(fitted, 'name', folder)}", title_justify="left")
    probas = [c for c in table.columns if c.startswith("proba_")]
    for col in ("image", "prediction", *(c[len("proba_"):] for c in probas)):
        out.add_column(col, justify="right" if col not in ("image", "prediction") else "left")
    for _, r in table.iterrows():
        pred = r["pred"] if pd.notna(r["pred"]) else f"[red]none: {escape(str(r['reason']))}[/red]"
        out.add_row(escape(str(r["image_id"])), str(pred),
                    *("-" if r[c] != r[c] else f"{r[c]:.3f}" for c in probas))
    console.print(out)
