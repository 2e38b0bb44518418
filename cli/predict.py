"""`embedlab predict`: label images with a fitted run."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer
from rich.table import Table

from embedlab.core.system import import_in_background
from embedlab_cli.app import (WORKERS_HELP, app, cache_option, clean_errors, console, fail, note, print_csv,
                              print_json, progress_bar, runs_option)
from embedlab_cli.runs import threshold_line
from embedlab_cli.terminal import shown

FORMATS = ("table", "csv", "json")


@app.command()
@clean_errors
def predict(
    images: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    run: Optional[str] = typer.Option(None, "--run", "-r", help="Run folder, or run name under --runs-dir."),
    task: Optional[str] = typer.Option(
        None, "--task",
        help="Use a shipped reference run instead of --run. real-fake: is the face generated (dlib's face "
        "ResNet on the aligned face and an SVM on its encoding, stacked; trained on four generators). emotion: seven "
        "FER-2013 emotions, learned from FER-2013 only (the honest answer to whether a model of real faces works "
        "on generated ones). emotion-adapted: the same network fine-tuned on FER-2013 plus generated portraits "
        "(split by identity), for scoring generated faces."),
    output: Literal["table", "csv", "json"] = typer.Option("table", "--format", help="table, csv or json."),
    features: Optional[str] = typer.Option(
        None, "--features", "-f",
        help="Replace the run's feature specs (same features and sizes), e.g. 'encoding' to find the "
        "face in medium shots for a run fitted on 'encoding\\[detector=none]'."),
    runs_dir: Path = runs_option(),
    cache_dir: Path = cache_option(),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-w", min=0, metavar="N",
        help=WORKERS_HELP + " With the default, fewer than 8 images to prepare are prepared in this process."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler",
        help="Prepare images (decode, find and crop faces, features) on a Dask cluster, as `encode --scheduler` "
        "does: tcp://HOST:8786, or local:N for N worker processes here; the network runs here."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", min=0.0, metavar="X", max=1.0,
        help="Binary runs: call an image positive (fake) when its probability is at or above this, instead "
        "of the threshold the run chose on validation, e.g. --threshold 0.9."),
    per_face: bool = typer.Option(
        False, "--per-face",
        help="One row per face (face_recognition's HOG detector), largest first, with its box in pixels "
        "(top, right, bottom, left): a photo of two people gets two verdicts. The run sees each face "
        "cropped with a margin of a quarter of its side. An image with no face keeps one row, "
        "reason 'no face found'. Every --format has the face and box columns."),
    crops_dir: Optional[Path] = typer.Option(
        None, "--crops-dir", file_okay=False,
        help="Networks that face-crop portraits save the crops here, in a folder named after the run "
        "folder (default: CACHE_DIR/crops)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no status lines."),
) -> None:
    """Predicted label and class probabilities for each image (or each face, with --per-face), with a fitted run.

    The features the run needs are computed (or read from the cache) first,
    on every core; a network's inputs and outputs are cached too, so predicting
    again on the same images is near-instant. Status lines go to stderr.
    A binary (real/fake) run labels each image at its decision threshold,
    chosen when it was fitted for a stated false-positive rate on reals (1%
    unless `embedlab fit --target-fpr` said otherwise); the threshold applied
    is printed.

    Example: [bold]embedlab predict data/sample/real-vs-fake/test --run results/runs/NAME[/bold]

    The shipped detector: [bold]embedlab predict data/sample/real-vs-fake/test --task real-fake[/bold]

    Each face of a group photo: [bold]embedlab predict two_people.jpg --task emotion --per-face[/bold]
    """
    if output not in FORMATS:
        fail(f"--format {output!r}: choose {', '.join(FORMATS)}")
    if (run is None) == (task is None):
        fail("give either --run RUN or --task emotion|emotion-adapted|real-fake")

    def say(message: str) -> None:
        if not quiet:
            note(shown(f"predict: {message}"))

    say(f"opening the shipped {task} run" if task else f"opening run {run}")
    if task and len(images) == 1 and images[0].is_file():
        # one photo: every shipped run holds a PyTorch network, which loads while the run opens and the
        # face is found (a folder starts it once it knows that some image is not cached)
        import_in_background("torch")
    import pandas as pd

    from embedlab.api import BOX_COLUMNS, load_run, predict_faces
    from embedlab.runs import pretrained_run

    folder = pretrained_run(task) if task else run
    fitted = load_run(folder, runs_dir)
    with progress_bar("features", quiet=quiet or output != "table", unit="faces" if per_face else "images") as update:
        crops = {"crops_dir": crops_dir or Path(cache_dir) / "crops"} \
            if fitted.params["kind"] in ("network", "stacked") else {}  # a stack hands it to its networks
        options = dict(features=features, cache_dir=cache_dir, workers=workers, on_progress=update,
                       threshold=threshold, scheduler=scheduler, on_step=say, **crops)
        table = predict_faces(fitted, images, **options) if per_face else fitted.predict(images, **options)
    cut = fitted.decision_threshold(threshold)
    show = [c for c in table.columns if c in ("image_id", "path", "face", *BOX_COLUMNS, "face_found", "pred", "threshold",
                                               "reason") or c.startswith("proba_")]
    table = table[show]
    if output == "csv":
        print_csv(table)
        return
    if output == "json":
        print_json(table.astype(object).where(table.notna(), None).to_dict(orient="records"))
        return
    if cut is not None:
        console.print(threshold_line(cut), highlight=False)
    at = "" if cut is None else f", labelled at threshold {cut['value']:.4f}"
    what = ("face" if per_face else "image") + ("" if len(table) == 1 else "s")
    out = Table(title=f"{len(table)} {what}, run {shown(getattr(fitted, 'name', folder))}{at}", title_justify="left")
    probas = [c for c in table.columns if c.startswith("proba_")]
    faces = ("face", "box (top, right, bottom, left)") if per_face else ()
    found = ("face found",) if "face_found" in table.columns and not per_face else ()  # networks that face-crop
    for col in ("image", *faces, "prediction", *(c[len("proba_"):] for c in probas), *found):
        out.add_column(col, justify="left" if col in ("image", "prediction") else "right", overflow="fold")
    for _, r in table.iterrows():
        pred = shown(r["pred"]) if pd.notna(r["pred"]) else f"[red]none: {shown(str(r['reason']))}[/red]"
        box = ("-", "-") if per_face and pd.isna(r["face"]) else \
            (str(r["face"]), ", ".join(str(r[c]) for c in BOX_COLUMNS)) if per_face else ()
        face = (("-" if pd.isna(r["face_found"]) else "yes" if r["face_found"] else "no: central square"),) \
            if found else ()
        out.add_row(shown(r["image_id"]), *box, pred, *("-" if pd.isna(r[c]) else f"{r[c]:.3f}" for c in probas), *face)
    console.print(out)
