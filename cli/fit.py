"""`embedlab fit`: fit a classifier (or a network) and print its honest figures."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import typer

from embedlab.classifiers import CLASSIFIERS, parse_params
from embedlab_cli.app import (DETECTOR_HELP, app, cache_option, clean_errors, clock, console, note, progress_bar, runs_option,
                              verbosity, WORKERS_HELP)
from embedlab_cli.runs import print_run
from embedlab_cli.terminal import print_failures


@app.command()
@clean_errors
def fit(
    data: Path = typer.Argument(..., help="Dataset folder or CSV (see `embedlab datasets layouts`)."),
    features: str = typer.Option(
        "encoding", "--features", "-f",
        help="Feature specs joined by '+' or ',': encoding, spectrum, pixels, cnn:resnet18, with parameters "
        "in brackets, e.g. 'encoding\\[detector=none]+spectrum'. Computed and cached when missing. "
        + DETECTOR_HELP),
    model: str = typer.Option(
        "svm", "--model", "-m",
        help=f"Classifier: {', '.join(CLASSIFIERS.names())}; or a network from embedlab.nets."),
    param: Optional[list[str]] = typer.Option(
        None, "--param", "-p", help="Model option key=value, repeatable (e.g. -p C=10 -p gamma=0.01); a list as "
        "-p widths=32,64."),
    search: bool = typer.Option(False, "--search", help="Cross-validated grid search on the training split."),
    class_weight: Literal["none", "balanced"] = typer.Option("none", "--class-weight", help="'balanced' weights classes by inverse frequency."),
    eval_on: Optional[list[Path]] = typer.Option(
        None, "--eval-on", help="Another labelled dataset to score, repeatable; labels matched by name."),
    eval_features: Optional[str] = typer.Option(
        None, "--eval-features",
        help="Feature specs for the --eval-on sets (default: --features). They name the same features, of the "
        "same sizes, computed another way: e.g. 'encoding' (face detector on) for medium-shot portraits when "
        "training used 'encoding\\[detector=none]' on aligned crops."),
    missing: Literal["drop", "error"] = typer.Option("drop", "--missing", help="Images without features: 'drop' (counted) or 'error'."),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, metavar="N", help="Use at most N images per split and label of DATA."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: data-features-model-time)."),
    runs_dir: Path = runs_option("Where run folders are written."),
    cache_dir: Path = cache_option(),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout; 'auto' detects it."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N", help="Seed for splits, models and bootstrap intervals."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=0, metavar="N", help=WORKERS_HELP),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler",
        help="xgboost only: train with xgboost.dask on a Dask cluster (tcp://HOST:8786, or local:N worker "
        "processes here), reading features from the cache on the workers; see docs/distributed.md."),
    device: Literal["auto", "cpu", "cuda"] = typer.Option("auto", "--device", help="Networks only: auto, cpu or cuda."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, metavar="N", help="Networks only: training epochs."),
    resume: bool = typer.Option(False, "--resume", help="Networks only: continue an interrupted run."),
    target_fpr: float = typer.Option(
        0.01, "--target-fpr", min=0.0, metavar="X", max=0.999,
        help="Binary runs: choose the decision threshold on the validation set so that at most this share "
        "of reals is called fake, e.g. --target-fpr 0.05; predict applies it."),
    leave_out: Optional[str] = typer.Option(
        None, "--leave-out",
        help="A source of fakes (fake/<source>/ folder or manifest source column) kept out of train and "
        "valid and scored on test: will the detector catch a generator it has not seen? "
        "e.g. --leave-out sd"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no per-epoch lines."),
) -> None:
    """Fit a model on DATA, score it on its test split (and --eval-on sets), and save the run.

    Prints accuracy with its bootstrap 95% interval, balanced accuracy, macro F1,
    ROC AUC and average precision (binary tasks), per-class tables and confusion
    matrices; everything lands in --runs-dir, in a folder named after the run. A binary run also prints
    its decision threshold (chosen on valid for --target-fpr on reals), the Brier
    score, and per source of fakes: AUC against the reals and recall at the threshold.

    Example: [bold]embedlab fit data/sample/real-vs-fake --features encoding --model svm[/bold]

    Leave one generator out: [bold]embedlab fit faces --model svm --leave-out sd[/bold]

    On a Dask cluster: [bold]embedlab fit /shared/faces --model xgboost --scheduler tcp://10.0.0.5:8786[/bold]

    A network prints its plan and, after its first batches, an estimate of the training time, then
    one line per epoch: training loss and accuracy, validation loss and accuracy, learning rate,
    seconds, and the time still to go. Options that do not apply to the kind of model chosen
    (--search for a network, --epochs for a classifier...) are refused with the reason.
    """
    from embedlab.api import fit as run_fit
    from embedlab.classifiers import CLASSIFIERS as classifiers

    command = shlex.join(["embedlab", *sys.argv[1:]])
    network = model not in classifiers
    with progress_bar("training" if network else "features", quiet=quiet,
                      unit="batches" if network else "images") as update:
        on_progress = TrainingLog(update, quiet=quiet) if network else update
        run = run_fit(data, features, model, params=parse_params(param or []), search=search,
                      class_weight=class_weight, eval_on=eval_on or [], runs_dir=runs_dir, name=name,
                      cache_dir=cache_dir, seed=seed, workers=workers, on_progress=on_progress,
                      device=device, epochs=epochs, resume=resume, command=command,
                      eval_features=eval_features, missing=missing, per_class=per_class, layout=layout,
                      scheduler=scheduler, target_fpr=target_fpr, leave_out=leave_out)
    print_run(run.params, run.metrics, run.path)
    print_failures(console, run.failures(), where=str(run.path / "failures.csv"))


#: batches timed before the training time is estimated
ESTIMATE_AFTER = 5


class TrainingLog:
    """A network's training as lines: its plan, an estimate of its time, then one line per epoch.

    Called as ``(done, total, info)`` by :func:`embedlab.nets.fit_network` (batches), it also moves
    the progress bar.
    """

    def __init__(self, update: Callable[..., None], quiet: bool = False):
        self.update, self.quiet = update, quiet or verbosity() < 0
        self.started, self.first, self.estimated = time.monotonic(), 0, False

    def __call__(self, done: int, total: int, info: dict[str, Any] | None = None) -> None:
        self.update(done, total)
        if info is None or self.quiet:
            return
        if info.get("start"):
            self.started, self.first = time.monotonic(), done
            epochs, batches = info["epochs"] - info["epoch"], info["batches_per_epoch"]
            note(f"training: {epochs} epoch{'s' * (epochs != 1)} of {batches} batch{'es' * (batches != 1)} "
                 f"({info['train_images']} training images, batch {info['batch_size']}; "
                 f"{info['valid_images']} validation images) on {info['device']}")
            return
        elapsed, did = time.monotonic() - self.started, done - self.first
        if not self.estimated and did and (did >= ESTIMATE_AFTER or info.get("end_of_epoch")):
            self.estimated = True
            note(f"estimated training time: {clock(elapsed / did * (total - self.first))} for "
                 f"{total - self.first} batches (from the first {did}; each epoch's validation adds to it)")
        if info.get("end_of_epoch"):
            remaining = elapsed / did * (total - done) if did else None
            note(f"epoch {info['epoch']}/{info['epochs']}  loss {info['train_loss']:.4f}  "
                 f"acc {info['train_acc']:.3f}  valid loss {info['val_loss']:.4f}  acc {info['val_acc']:.3f}  "
                 f"lr {info['lr']:.2e}  {info['seconds']:.1f} s  elapsed {clock(elapsed)} / "
                 f"remaining {clock(remaining)}")
