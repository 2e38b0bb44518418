"""Showing user-controlled text (file names, labels, run names) on a terminal safely.

Anything a user or a dataset controls goes through :func:`shown` before rich
prints it: rich markup in it is escaped (a file named ``[blink red]x.jpg``
prints as written, and ``photos [`` cannot break the line it is in), and
control characters (terminal escape sequences, newlines, bidi overrides) are
written as Python escapes, so a file name cannot move the cursor or recolour
the terminal.

>>> print(shown("[blink red]BLINK[reverse].jpg"))
\\[blink red]BLINK\\[reverse].jpg
>>> print(shown("a\\x1b[31mred\\nb.jpg"))
a\\x1b[31mred\\nb.jpg
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.markup import escape

from embedlab.datasets.names import shown_path

#: Unicode categories shown escaped: controls (C0, C1, DEL) and format characters (bidi overrides...)
_HIDDEN = ("Cc", "Cf")


def printable(value: Any) -> str:
    """``str(value)`` with control and format characters written as ``\\xNN``/``\\uNNNN`` escapes, and
    so are the bytes of a file name that are not UTF-8."""
    text = shown_path(str(value))
    if text.isprintable():
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii")
                   if unicodedata.category(ch) in _HIDDEN else ch for ch in text)


def shown(value: Any) -> str:
    """``value`` as text rich prints literally: control characters escaped, then markup escaped."""
    return escape(printable(value))


def print_failures(console, failures, show: int = 10, where: str = "") -> None:
    """The images a command could not use: a count by reason, then ``reason: message`` for the first ``show``.

    ``failures`` is a table with ``reason`` and ``error`` columns (a run's ``failures.csv``, say);
    ``where`` names the file that lists them all.
    """
    if failures is None or not len(failures):
        return
    counts = failures["reason"].fillna("unknown").value_counts()
    console.print(f"[yellow]{len(failures)} image(s) not used[/yellow] ("
                  + ", ".join(f"{shown(r)}: {n}" for r, n in counts.items()) + ")"
                  + (f"; all listed in {shown(where)}" if where else ""), highlight=False, soft_wrap=True)
    for r in failures.head(show).itertuples():
        console.print(f"  [red]{shown(r.reason)}[/red]: {shown(r.error)}", highlight=False, soft_wrap=True)
    if len(failures) > show:
        console.print(f"  ... and {len(failures) - show} more", highlight=False)
