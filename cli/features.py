"""`embedlab features` and `embedlab cache`: what can be computed, and what already was."""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path

import typer
from rich.table import Table

from embedlab_cli.app import app, cache_option, clean_errors, console


@app.command("features")
@clean_errors
def features() -> None:
    """List the feature extractors, their parameters and defaults.

    Use them in --features as name, name:value (the first parameter) or
    name\\[key=value,...]; join several with commas.

    Example: [bold]embedlab encode DATA --features 'encoding\\[detector=none],spectrum'[/bold]
    """
    from embedlab.features import EXTRACTORS

    table = Table(title="Feature extractors", title_justify="left", show_lines=True)
    for col in ("name", "parameters (defaults)", "what it is"):
        table.add_column(col)
    for name in EXTRACTORS.names():
        cls = EXTRACTORS.get(name)
        sig = pyinspect.signature(cls.__init__)
        params = ", ".join(f"{p.name}={p.default!r}" for p in sig.parameters.values() if p.name != "self")
        doc = (pyinspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        table.add_row(name, params, doc)
    console.print(table)


cache_app = typer.Typer(help="Look at the feature cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
@clean_errors
def cache_ls(cache_dir: Path = cache_option()) -> None:
    """One line per cached feature set: key, extractor parameters, images, failures, size.

    Example: [bold]embedlab cache ls[/bold]
    """
    from embedlab.compute.cache import FeatureCache

    summary = FeatureCache(cache_dir).summary()
    if summary.empty:
        console.print(f"{cache_dir}: empty")
        return
    table = Table(title=str(cache_dir), title_justify="left")
    for col in ("key", "parameters", "images", "failed", "MB"):
        table.add_column(col, justify="right" if col in ("images", "failed", "MB") else "left")
    for r in summary.itertuples():
        params = ", ".join(f"{k}={v}" for k, v in (r.params or {}).items())
        table.add_row(r.key, params, str(r.images), str(r.failed), f"{r.bytes / 1e6:.1f}")
    console.print(table)
