"""`embedlab datasets ...`: look at a dataset before using it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from embedlab_cli.app import app, clean_errors, console, print_json
from embedlab_cli.terminal import shown

datasets_app = typer.Typer(help="Inspect datasets and the layouts embedlab reads.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("inspect")
@clean_errors
def inspect(
    path: Path = typer.Argument(..., help="Dataset folder or CSV."),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout; 'auto' detects it."),
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Decode every image to find broken ones."),
    show: int = typer.Option(10, "--show", min=0, metavar="N", help="How many duplicate groups and unreadable files to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Counts per split and label (and per source of fakes), image sizes and modes, unreadable files and duplicates.

    Fakes in fake/<source>/ folders, or with a manifest's source column, are
    counted per source (generator); plain fake/ folders count as one source.

    Duplicates are byte-identical images; those found in two splits (a leak
    from train into test) or under two labels are listed first.

    Example: [bold]embedlab datasets inspect ../shared/data/fer2013[/bold]
    """
    from embedlab import datasets

    df = datasets.load(path, layout=layout)
    report = datasets.inspect_dataset(df, decode=decode)
    if as_json:
        out = {
            "layout": report.layout, "root": report.root, "images": report.n_images,
            "counts": {s: report.counts[s].to_dict() for s in report.counts.columns},
            "sources": {s: report.sources[s].to_dict() for s in report.sources.columns},
            "sizes": report.sizes.to_dict(orient="records"),
            "unreadable": report.unreadable.to_dict(orient="records"),
            "duplicate_groups": len(report.duplicates),
            "cross_split_groups": len(report.cross_split),
            "conflicting_label_groups": len(report.conflicting_labels),
            "duplicates": report.duplicates.head(show).to_dict(orient="records"),
            "sharpness": {s: report.sharpness[s].round(2).to_dict() for s in report.sharpness.columns},
            "containers": report.containers.to_dict(orient="records"),
            "warnings": report.warnings,
        }
        print_json(out)
        return

    console.print(f"[bold]{shown(report.root)}[/bold]  layout [cyan]{report.layout}[/cyan]  "
                  f"{report.n_images} images", highlight=False, soft_wrap=True)
    counts = _label_table("Images per label and split", report.counts.assign(total=report.counts.sum(axis=1)), str)
    counts.add_row("[bold]total", *(f"[bold]{int(v)}" for v in report.counts.sum().tolist()),
                   f"[bold]{report.n_images}")
    console.print(counts)
    if not report.sources.empty:
        console.print(_label_table("Images per source and split",
                                   report.sources.assign(total=report.sources.sum(axis=1)), str, index="source"))
    if not report.subsets.empty:
        console.print(_label_table("FER-2013 subsets", report.subsets, str))
    if decode:
        sizes = Table(title="Image sizes and modes", title_justify="left")
        for c in ("width", "height", "mode", "images"):
            sizes.add_column(c, justify="right")
        for r in report.sizes.head(show).itertuples():
            sizes.add_row(str(r.width), str(r.height), str(r.mode), str(r.images))
        if len(report.sizes) > show:
            sizes.caption = f"{len(report.sizes) - show} more sizes"
        console.print(sizes)
        if not report.sharpness.empty:
            console.print(_label_table("Median sharpness (Laplacian std; low = blurred)",
                                       report.sharpness, lambda v: f"{v:.1f}"))
        if not report.containers.empty:
            console.print(container_table(report.containers))
    n_bad = len(report.unreadable)
    console.print(f"Files that give no image: [{'red' if n_bad else 'green'}]{n_bad}[/]"
                  + ("" if decode else " (found without decoding; --decode finds broken images too)"),
                  highlight=False)
    for r in report.unreadable.head(show).itertuples():
        console.print(f"  [red]{shown(r.reason)}[/red]: {shown(r.error)}", highlight=False, soft_wrap=True)
    if n_bad > show:
        console.print(f"  ... and {n_bad - show} more (--show {n_bad} lists them all)", highlight=False)
    d = report.duplicates
    console.print(
        f"Exact duplicates: {len(d)} groups ({int(d['copies'].sum()) if len(d) else 0} images); "
        f"[{'red' if len(report.cross_split) else 'green'}]{len(report.cross_split)} across splits[/], "
        f"[{'red' if len(report.conflicting_labels) else 'green'}]{len(report.conflicting_labels)} "
        f"with conflicting labels[/]", highlight=False)
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/bold yellow] {shown(warning)}", highlight=False)
    for kind, table in (("across splits", report.cross_split), ("conflicting labels", report.conflicting_labels)):
        if len(table):
            t = Table(title=f"Duplicates {kind} (first {min(show, len(table))} of {len(table)})",
                      title_justify="left")
            for c in ("copies", "splits", "labels"):
                t.add_column(c)
            t.add_column("images", overflow="fold")
            for r in table.head(show).itertuples():
                more = f" (+{len(r.image_ids) - 3} more)" if len(r.image_ids) > 3 else ""
                t.add_row(str(r.copies), shown(", ".join(r.splits)), shown(", ".join(r.labels)),
                          "\n".join(map(shown, r.image_ids[:3])) + more)
            console.print(t)


def _label_table(title: str, frame, fmt, index: str = "label") -> Table:
    """A rich table of a label x column frame, values written with ``fmt``."""
    table = Table(title=title, title_justify="left")
    table.add_column(index)
    for col in frame.columns:
        table.add_column(shown(col), justify="right")
    for label, row in frame.iterrows():
        table.add_row(shown(label), *(fmt(v) for v in row.tolist()))
    return table


@datasets_app.command("layouts")
def layouts() -> None:
    """List the dataset layouts embedlab recognises, in detection order."""
    from embedlab.datasets.layouts import DETECTION_ORDER, LAYOUTS

    for name in DETECTION_ORDER:
        console.print(f"[cyan]{name}[/cyan]: {LAYOUTS.create(name).description}", highlight=False)


def container_table(containers) -> Table:
    """Each source's and class's median size, JPEG quality and sharpness, side by side."""
    import pandas as pd

    by = containers.columns[0]  # origin, or source
    table = Table(title=f"Per {by} and class: median size, JPEG quality and sharpness (a detector can learn "
                  "these instead of the face where classes differ)", title_justify="left")
    for c in (by, "label", "images", "width", "height", "JPEG quality", "sharpness"):
        table.add_column(c, justify="left" if c in (by, "label") else "right")
    for r in containers.itertuples(index=False):
        table.add_row(shown(r[0]), shown(r.label), str(r.images),
                      *("-" if pd.isna(v) else f"{v:.0f}" for v in (r.width, r.height, r.jpeg_quality)),
                      "-" if pd.isna(r.sharpness) else f"{r.sharpness:.1f}")
    return table
