"""The Typer application and what every command shares: errors, exit codes, progress, paths, JSON."""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

from embedlab import __version__
from embedlab.core.defaults import (ALIGNED_FACE_LAYOUTS, DEFAULT_CACHE_DIR, DEFAULT_DETECTOR, DEFAULT_REPORT,
                                    DEFAULT_RUNS_DIR, RESULTS_DIR, SAMPLE_DATA_DIR)
from embedlab.core.errors import EmbedlabError, UsageError
from embedlab.core.io import to_json
from embedlab_cli.terminal import shown

#: environment variables that replace the default cache and runs folders
CACHE_ENV, RUNS_ENV = "EMBEDLAB_CACHE_DIR", "EMBEDLAB_RUNS_DIR"
#: seconds between plain progress lines when stderr is not a terminal (logs, CI)
PROGRESS_ENV = "EMBEDLAB_PROGRESS_SECONDS"

app = typer.Typer(
    name="embedlab",
    help="Study real and AI-generated faces: cache face features, fit detectors and emotion "
    "models, and see the results in one interactive report.\n\n"
    "Start with: [bold]embedlab datasets inspect data/sample/real-vs-fake[/bold], then "
    "[bold]embedlab encode data/sample/real-vs-fake --features encoding,spectrum[/bold].\n\n"
    f"Environment: {CACHE_ENV} (feature cache, default {DEFAULT_CACHE_DIR}), {RUNS_ENV} (run folders, "
    f"default {DEFAULT_RUNS_DIR}), {PROGRESS_ENV} (seconds between progress lines when stderr is not a "
    "terminal, default 30).\n\n"
    "Exit codes: 0 done (images that could not be read are counted in the summary, not failures); "
    "1 the command failed while running; 2 usage error (unknown name, bad option value or feature "
    "spec, missing path).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


def _help_reads_right() -> None:
    """Typer's rich help shows a value type for flags (``--quiet <bool>``, ``-v <int>``), which take none,
    and cuts a help word longer than its column with an ellipsis (an example spec): flags get no type
    here, and help text folds onto the next line instead."""
    import typer.core
    import typer.rich_utils
    from rich.text import Text

    show_type = typer.core.TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag or self.count else show_type(self, ctx)

    parameter_help = typer.rich_utils._get_parameter_help

    def folded_parameter_help(**kwargs):
        columns = parameter_help(**kwargs)
        for part in columns.renderables:
            if isinstance(part, Text):
                part.overflow = "fold"
        return columns

    typer.core.TyperOption.display_type_rich = display_type_rich
    typer.rich_utils._get_parameter_help = folded_parameter_help


def _usage_errors_in_one_line() -> None:
    """A bad option value Typer catches (a range, a choice) is one ``error:`` line, exit 2, as the
    errors the commands find themselves are (:func:`fail`), not a boxed panel under the usage."""
    import typer.rich_utils

    def one_line(error: click.ClickException) -> None:
        if error.__class__.__name__ == "NoArgsIsHelpError":
            return
        ctx = getattr(error, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err_console.print(f"[bold red]error:[/bold red] {shown(error.format_message())}{shown(hint)}",
                          highlight=False, soft_wrap=True)

    typer.rich_utils.rich_format_error = one_line


_help_reads_right()
_usage_errors_in_one_line()

DEFAULT_CACHE = DEFAULT_CACHE_DIR
DEFAULT_RUNS = DEFAULT_RUNS_DIR
WORKERS_HELP = ("Worker processes (default: all cores). An image that kills its worker costs only that "
                "worker's images. 0 works in this process: no start-up time, but such an image ends the command.")
#: which face detector an encoding that names none runs, per layout: written from the code's defaults
DETECTOR_HELP = (f"On aligned face crops (the {' and '.join(ALIGNED_FACE_LAYOUTS)} layouts) an encoding that "
                 "names no detector runs none, as if written encoding\\[detector=none]; on every other layout, "
                 f"the 256 px faces of kaggle-140k among them, it runs the {DEFAULT_DETECTOR} detector. Name a "
                 "detector to choose.")
__all__ = ["CACHE_ENV", "DEFAULT_CACHE", "DEFAULT_RUNS", "DEFAULT_REPORT", "RESULTS_DIR", "RUNS_ENV", "SAMPLE_DATA_DIR",
           "WORKERS_HELP", "DETECTOR_HELP", "app", "cache_option", "clean_errors", "clock", "console", "err_console", "fail", "note", "print_json", "progress_bar", "runs_option",
           "verbosity"]

_state = {"verbosity": 0}


def verbosity() -> int:
    """-1 with the global -q, 0 by default, 1 or more with -v."""
    return _state["verbosity"]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"embedlab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="More output: -v adds the traceback to errors, -vv also debug logging."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Less output: no progress, no per-epoch lines; results and errors only."),
) -> None:
    _state["verbosity"] = -1 if quiet else verbose
    _debug_logging(verbose >= 2)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (a test runner swaps it per command)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def _debug_logging(on: bool) -> None:
    """embedlab's own debug lines on stderr with -vv (what is cached, what runs where); off otherwise."""
    log = logging.getLogger("embedlab")
    log.setLevel(logging.DEBUG if on else logging.WARNING)
    if on and not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
        log.addHandler(handler)


def cache_option(help: str = "Where the feature cache lives.") -> Any:
    """The --cache-dir option, read from EMBEDLAB_CACHE_DIR when it is not given."""
    return typer.Option(DEFAULT_CACHE, "--cache-dir", envvar=CACHE_ENV, show_envvar=True, file_okay=False, help=help)


def runs_option(help: str = "Where run folders live.") -> Any:
    """The --runs-dir option, read from EMBEDLAB_RUNS_DIR when it is not given."""
    return typer.Option(DEFAULT_RUNS, "--runs-dir", envvar=RUNS_ENV, show_envvar=True, file_okay=False, help=help)


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as it is written (brackets, file names) and exit: 2 usage error, 1 runtime failure."""
    err_console.print(f"[bold red]error:[/bold red] {shown(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """A line about what is happening (stderr), left out with the global -q."""
    if verbosity() >= 0:
        err_console.print(message, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    """Strict JSON on stdout: null for NaN and infinities, whatever the terminal width."""
    typer.echo(to_json(obj))


def print_csv(table) -> None:
    """A table as CSV on stdout, every name and path byte for byte.

    ``typer.echo`` strips what looks like a terminal escape sequence when
    stdout is not a terminal, which would turn a real file name into one that
    does not exist; machine-readable output is written as it is.
    """
    sys.stdout.write(table.to_csv(index=False))
    sys.stdout.flush()


def clean_errors(func: Callable) -> Callable:
    """Turn errors into one clear line, never a traceback (unless -v): exit 2 for usage errors, else 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: finished chunks are kept in the cache; "
                              "rerun the same command to resume.")
            raise typer.Exit(130)
        except Exception as exc:  # noqa: BLE001  (the CLI's last line of defence: one line, exit 1)
            if verbosity() >= 1:
                err_console.print(escape(traceback.format_exc()), highlight=False)
            if isinstance(exc, EmbedlabError):
                fail(str(exc), 2 if isinstance(exc, UsageError) else 1)
            fail(f"{type(exc).__name__}: {exc} (run with `embedlab -v ...` for the traceback)", 1)

    return wrapper


def clock(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@contextmanager
def progress_bar(description: str, quiet: bool = False, unit: str = "images") -> Iterator[Callable[..., None]]:
    """Progress fed by ``(done, total)`` callbacks, counting ``unit`` (images, batches).

    On a terminal: a bar with the count, the rate, and "elapsed ... / remaining ...". Elsewhere (a
    log file, CI): a plain line every EMBEDLAB_PROGRESS_SECONDS seconds (30) and one at the end.
    """
    if quiet or verbosity() < 0:
        yield lambda done, total, *info: None
        return
    if not err_console.is_terminal:
        with _plain_progress(description, unit) as update:
            yield update
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
        TextColumn("[cyan]{task.fields[rate]}"), TextColumn("elapsed"), TimeElapsedColumn(),
        TextColumn("/ remaining"), TimeRemainingColumn(), console=err_console,
    ) as progress:
        task = progress.add_task(escape(description), total=None, rate="")

        def update(done: int, total: int, *info: Any) -> None:
            progress.update(task, completed=done, total=total)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:.1f} {unit}/s" if speed else "")

        yield update


@contextmanager
def _plain_progress(description: str, unit: str) -> Iterator[Callable[..., None]]:
    every = float(os.environ.get(PROGRESS_ENV) or 30)
    started = time.monotonic()
    seen = {"last": None, "done": 0, "total": 0, "shown": None, "first": None}

    def line() -> str:
        done, total = seen["done"], seen["total"]
        now = time.monotonic()
        elapsed = now - started
        first_done, first_time = seen["first"]
        rate = (done - first_done) / (now - first_time) if now > first_time else 0.0  # since counting began
        if rate <= 0 and done and elapsed > 0:  # the first count was already the last: the whole run's rate
            rate = done / elapsed
        remaining = 0.0 if total and done >= total else (total - done) / rate if rate > 0 and total else None
        return (f"{description}: {done}/{total} {unit}, {rate:.1f} {unit}/s, "
                f"elapsed {clock(elapsed)} / remaining {clock(remaining)}")

    def update(done: int, total: int, *info: Any) -> None:
        seen.update(done=done, total=total)
        now = time.monotonic()
        if seen["first"] is None:
            seen["first"] = (done, now)
        if seen["last"] is None or now - seen["last"] >= every:
            seen.update(last=now, shown=(done, total))
            err_console.print(line(), highlight=False, markup=False, soft_wrap=True)

    yield update
    if seen["total"] and seen["shown"] != (seen["done"], seen["total"]):
        err_console.print(line(), highlight=False, markup=False, soft_wrap=True)
