"""`embedlab encode`: compute and cache features for a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer
from rich.table import Table

from embedlab_cli.app import DETECTOR_HELP, WORKERS_HELP, app, cache_option, clean_errors, console, progress_bar
from embedlab_cli.terminal import print_failures, shown


@app.command()
@clean_errors
def encode(
    data: Path = typer.Argument(..., help="Dataset folder or CSV (any layout `embedlab datasets layouts` lists)."),
    features: str = typer.Option(
        "encoding", "--features", "-f",
        help="Comma-separated feature specs: encoding, spectrum, pixels, cnn:resnet18; "
        "parameters in brackets, e.g. 'encoding\\[detector=none,jitters=2]'. See `embedlab features`. "
        + DETECTOR_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=0, metavar="N", help=WORKERS_HELP),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, metavar="N", help="Use at most N images per split and label."),
    cache_dir: Path = cache_option(),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout; 'auto' detects it."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N", help="Seed for --per-class sampling."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler",
        help="Compute on a Dask cluster: tcp://HOST:8786 (a running `dask scheduler`), or local:N "
        "for N worker processes here. Workers must see the dataset at the same path; see docs/distributed.md."),
    engine: Optional[Literal["torch", "dlib"]] = typer.Option(
        None, "--engine", help="How the encoding feature runs dlib's face descriptor network: torch "
        "(PyTorch, batched; the default) or dlib. Same encodings (within 1e-4 of dlib's), shared cache."),
    device: Optional[Literal["auto", "cpu", "cuda"]] = typer.Option(
        None, "--device", help="Where the torch engine runs: auto (CUDA when available), cpu or cuda."),
    rehash: bool = typer.Option(
        False, "--rehash", help="Read and hash every image file again, and update the cache's file hash "
        "index (dropping files that no longer exist). By default a file the cache has hashed before is "
        "not read while its size, inode, modification and change times are unchanged (as git trusts its "
        "index)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Compute features for every image of DATA and store them in the cache.

    Features are computed once per image content: a rerun computes nothing,
    new images are added, and an interrupted run resumes where it stopped.

    Example: [bold]embedlab encode data/sample/real-vs-fake --features encoding,spectrum[/bold]

    On a Dask cluster: [bold]embedlab encode /shared/faces --scheduler tcp://10.0.0.5:8786[/bold]

    With dlib's own network: [bold]embedlab encode data/sample/face-photos --engine dlib[/bold]
    """
    from embedlab.compute.extraction import encode as run_encode, table_for_cache

    if engine is not None or device is not None:
        features = encoding_options(features, engine=engine, device=device)
    table = table_for_cache(data, cache_dir, layout, rehash=rehash)
    console.print(f"[bold]{shown(data)}[/bold]: {len(table)} images, layout [cyan]{table.attrs['layout']}[/cyan]",
                  highlight=False)
    for warning in table.attrs.get("warnings", []):
        console.print(f"[bold yellow]warning:[/bold yellow] {shown(warning)}", highlight=False)
    with progress_bar("encoding", quiet=quiet) as update:
        df = run_encode(table, features, cache_dir=cache_dir, workers=workers, per_class=per_class,
                        seed=seed, scheduler=scheduler, on_progress=update)
    for n in df.attrs.get("notes", []):
        console.print(f"[cyan]note:[/cyan] {shown(n)}", highlight=False)
    print_summary(df.attrs["summary"], cache_dir)
    print_failures(console, failed_images(df, list(df.attrs["features"])))


def encoding_options(features: str, **options: Optional[str]) -> list:
    """The feature list with ``options`` set on its ``encoding`` specs (the CLI's --engine, --device)."""
    import re

    from embedlab.features import create_extractor, split_feature_list

    given = {k: v for k, v in options.items() if v is not None}
    return [create_extractor(spec, **given) if re.split(r"[:\[]", spec, maxsplit=1)[0].strip() == "encoding"
            else spec for spec in split_feature_list(features)]


def failed_images(df, names: list[str]):
    """One row per image some feature failed on (``reason`` and ``error`` of the first that did)."""
    import pandas as pd

    failed = ~df[[f"{n}.ok" for n in names]].fillna(False).astype(bool).all(axis=1)
    rows = []
    for _, r in df[failed].iterrows():  # only the failures: a warm run of many images is not slowed
        bad = next(n for n in names if not r[f"{n}.ok"])
        rows.append({"path": r["path"], "reason": r[f"{bad}.reason"] or "unknown",
                     "error": r[f"{bad}.error"] or r["path"]})
    return pd.DataFrame(rows, columns=["path", "reason", "error"]).drop_duplicates("path")


def print_summary(summary: dict, cache_dir: Path) -> None:
    out = Table(title=f"{summary['images']} images ({summary['unique_images']} unique)", title_justify="left")
    for col in ("feature", "computed", "from cache", "failed", "failures by reason"):
        out.add_column(col, justify="right" if col in ("computed", "from cache", "failed") else "left")
    for name, s in summary["features"].items():
        reasons = ", ".join(f"{r}: {n}" for r, n in s["failures"].items()) or "-"
        out.add_row(name, str(s["computed"]), str(s["cached"]), str(s["failed"]), reasons)
    console.print(out)
    rate = summary["images_per_second"]
    console.print(f"{summary['seconds']:.1f} s"
                  + (f", {rate:.1f} images/s computed" if summary["computed_images"] else ", nothing to compute")
                  + f"; cache: {shown(cache_dir)}", highlight=False)
