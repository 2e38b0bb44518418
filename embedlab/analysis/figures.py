"""What every figure shares: text that stays text, colours, a plain layout.

Plotly renders a small set of tags (``<b>``, ``<br>``, ``<a>``...) in titles,
legends and hover labels. Labels and file names are data, so every such
string goes through :func:`plain`: its ``<``, ``>`` and ``&`` become
entities, which Plotly shows as the characters themselves.

>>> plain("<img src=x onerror=alert(1)>.jpg")
'&lt;img src=x onerror=alert(1)&gt;.jpg'
"""

from __future__ import annotations

import html
from typing import Any, Iterable

#: qualitative colours (Plotly's D3 set) handed out in order of first appearance
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
FIXED_COLOURS = {"real": "#1f77b4", "generated": "#d62728", "fake": "#d62728", "True": "#2ca02c",
                 "False": "#d62728", "correct": "#2ca02c", "wrong": "#d62728"}


def plain(text: Any) -> str:
    """``text`` made safe for any Plotly string: shown as written, never as markup."""
    return html.escape("" if text is None else str(text), quote=False)


def colours_for(values: Iterable[Any]) -> dict[str, str]:
    """A stable colour per distinct value (``real`` blue, ``generated``/``fake`` red)."""
    out: dict[str, str] = {}
    free = iter(c for c in PALETTE * 4 if c not in FIXED_COLOURS.values())
    for v in values:
        key = str(v)
        if key not in out:
            out[key] = FIXED_COLOURS.get(key) or next(free, "#444444")
    return out


def base_layout(title: str, **extra: Any) -> dict[str, Any]:
    """Title (already plain), white template, compact margins."""
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "legend": {"itemsizing": "constant"},
    }
    layout.update(extra)
    return layout
