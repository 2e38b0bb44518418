"""File names that are not valid UTF-8: shown escaped in every table, opened by their bytes.

A Linux file name is bytes. Python gives the bytes that are not UTF-8 as lone surrogates
(``b"bad-\\xff.jpg"`` lists as ``"bad-\\udcff.jpg"``), which opens fine but which no table can
hold: pyarrow, Parquet and pandas' string columns take valid strings only, and a terminal cannot
print them. So a listed name is kept in its shown form (:func:`shown_path`), each such byte
written ``\\xNN``, and whatever opens a file first turns that form back into the name on disk
(:func:`disk_path`). Valid names are left exactly as they are, and cost one check.

>>> shown_path(b"photos/bad-\\xff\\xfe.jpg".decode("utf-8", "surrogateescape"))
'photos/bad-\\\\xff\\\\xfe.jpg'
>>> shown_path("photos/café.jpg")
'photos/café.jpg'
"""

from __future__ import annotations

import os
import re

#: an escaped byte that is not ASCII (what :func:`shown_path` writes for a byte that is not UTF-8)
_ESCAPED_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")


def is_valid_text(text: str) -> bool:
    """Whether ``text`` is valid Unicode text (no lone surrogates), as tables and terminals need."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as valid text: each byte of its name that is not UTF-8 written as ``\\xNN``.

    A valid name is returned as it is. :func:`disk_path` gives the name back.
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    if is_valid_text(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file system gave (typed by hand): \\udNNN
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown_paths(paths: list[str]) -> list[str]:
    """:func:`shown_path` of each, checked in one pass: a listing of valid names is returned as it is."""
    if is_valid_text("\0".join(paths)):
        return paths
    return [shown_path(p) for p in paths]


def disk_path(path: str) -> str:
    """The name to open for a path that :func:`shown_path` may have escaped.

    A path with no escaped byte, or one that exists as written (a name with a literal ``\\xff`` in
    it), is returned as it is; otherwise its ``\\xNN`` are turned back into the bytes they stand for.

    >>> disk_path("photos/obama.jpg")
    'photos/obama.jpg'
    >>> disk_path("no-such/bad-\\\\xff.jpg") == b"no-such/bad-\\xff.jpg".decode("utf-8", "surrogateescape")
    True
    """
    if "\\x" not in path or os.path.lexists(path):
        return path
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m[1], 16)), path)
