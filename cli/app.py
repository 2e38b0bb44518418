"""The Typer application and what every command shares: errors, progress, paths."""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Callable, Iterator

import typer
from rich.console import Console

from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_REPORT, DEFAULT_RUNS_DIR, RESULTS_DIR, SAMPLE_DATA_DIR
from embedlab.core.errors import EmbedlabError
from embedlab_cli.terminal import shown

app = typer.Typer(
    name="embedlab",
    help="Study real and AI-generated faces: cache face features, fit detectors and emotion "
    "models, and see the results in one interactive report.\n\n"
    "Start with: [bold]embedlab datasets inspect data/sample/real-vs-fake[/bold], then "
    "[bold]embedlab encode data/sample/real-vs-fake --features encoding,spectrum[/bold].",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_CACHE = DEFAULT_CACHE_DIR
DEFAULT_RUNS = DEFAULT_RUNS_DIR
__all__ = ["DEFAULT_CACHE", "DEFAULT_RUNS", "DEFAULT_REPORT", "RESULTS_DIR", "SAMPLE_DATA_DIR", "app", "clean_errors", "console",
           "err_console", "fail", "progress_bar"]


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` (plain text: file names in it are shown literally) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/bold red] {shown(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def clean_errors(func: Callable) -> Callable:
    """Turn library errors into one clear line and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EmbedlabError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: finished chunks are kept in the cache; "
                              "rerun the same command to resume.")
            raise typer.Exit(130)

    return wrapper


@contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar with rate and time left, fed by ``(done, total)`` callbacks."""
    if quiet:
        yield lambda done, total: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"),
        TimeRemainingColumn(), console=err_console,
    ) as progress:
        task = progress.add_task(description, total=None, rate="")

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:.1f} img/s" if speed else "")

        yield update
