"""`embedlab features` and `embedlab cache`: what can be computed, and what already was."""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path

import typer
from rich.table import Table

from embedlab_cli.app import app, cache_option, clean_errors, console, fail, print_csv, print_json
from embedlab_cli.terminal import shown


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


@cache_app.command("failures")
@clean_errors
def cache_failures(
    data: Path = typer.Argument(..., help="Dataset folder or CSV, or image files (see `embedlab datasets layouts`)."),
    features: str = typer.Option("encoding", "--features", "-f", help="Feature specs, as for `embedlab encode`."),
    cache_dir: Path = cache_option(),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout; 'auto' detects it."),
    output: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """List the images of DATA whose features failed, with the reason, as recorded in the cache.

    Nothing is computed: run `embedlab encode` first. Failed images do not fail
    a command (it exits 0 and counts them); this lists them.

    Example: [bold]embedlab cache failures ../shared/data/fer2013 --features encoding[/bold]
    """
    from embedlab.compute.extraction import failures

    if output not in ("table", "csv", "json"):
        fail(f"--format {output!r}: choose table, csv or json")
    found = failures(data, features, cache_dir=cache_dir, layout=layout)
    if output == "csv":
        print_csv(found)
        return
    if output == "json":
        print_json(found.astype(object).where(found.notna(), None).to_dict(orient="records"))
        return
    for name, n in found.attrs["checked"].items():
        lost = int((found["feature"] == name).sum())
        rest = found.attrs["not_computed"][name]
        console.print(f"{name}: {lost} of {n} images in the cache failed"
                      + (f"; {rest} not computed yet (`embedlab encode`)" if rest else ""), highlight=False)
    if found.empty:
        return
    table = Table(title=f"Failed images of {shown(data)}", title_justify="left")
    for col in ("image", "feature", "reason", "error"):
        table.add_column(col, overflow="fold")
    for r in found.itertuples():
        table.add_row(shown(r.image_id), r.feature, shown(r.reason), shown(r.error or ""))
    console.print(table)
