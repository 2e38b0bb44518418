"""The grammar of feature specs and ``key=value`` options, shared by features and models.

A feature spec is ``name``, ``name:value`` (the extractor's primary parameter)
or either followed by ``[key=value,...]``; several join with ``+`` or ``,``.

>>> split_feature_list("encoding[detector=none,jitters=2]+spectrum")
['encoding[detector=none,jitters=2]', 'spectrum']
>>> parse_spec("cnn:resnet18[weights=random]")["primary"]
'resnet18'
"""

from __future__ import annotations

import re
from typing import Any

from embedlab.core.errors import SpecError

SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_\-]+)(?::(?P<primary>[^\[\]]+))?(?:\[(?P<params>.*)\])?$")


def parse_spec(spec: str) -> re.Match:
    """The parts of one feature spec: ``name``, ``primary`` and ``params`` (None where absent)."""
    m = SPEC.match(spec.strip())
    if not m:
        raise SpecError(f"cannot parse feature spec {spec!r}; use name, name:value or name[key=value,...]")
    return m


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, else the string (``"none"`` stays a string)."""
    low = text.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def split_feature_list(text: str) -> list[str]:
    """Split ``"encoding[detector=none,jitters=2],spectrum"`` on top-level commas/pluses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch in ",+" and depth == 0:
            if cur.strip():
                out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out
