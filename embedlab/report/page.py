"""Assembling the HTML page: escaping, embedded data, Plotly once, no network.

Everything taken from the data (file names, labels, paths, run names) goes
through :func:`esc` in markup and through :func:`script_json` inside script
blocks; the page's script writes it with ``textContent`` only. A Content
Security Policy allows just the page's own two scripts (by hash), so even
markup that slipped through could not run an ``onerror`` handler, and no
request can leave the page.

>>> esc("<img src=x onerror=alert(1)>.jpg")
'&lt;img src=x onerror=alert(1)&gt;.jpg'
>>> script_json({"name": "</script><b>"})
'{"name":"\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from embedlab.core.io import json_default


def esc(value: Any) -> str:
    """Text for HTML element content or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def script_json(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), default=json_default,
                                                       allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def fmt(value: Any, kind: str = "") -> str:
    """A number for a table cell: ``pct``, ``p`` (p-value), ``int``, ``ci`` [lo, hi] or plain."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if kind == "ci":
        try:
            lo, hi = value
            return f"[{lo:.1%}, {hi:.1%}]" if hi <= 1 else f"[{lo:.3f}, {hi:.3f}]"
        except (TypeError, ValueError):
            return "–"
    if kind == "ci3":
        try:
            lo, hi = value
            return f"[{lo:.3f}, {hi:.3f}]"
        except (TypeError, ValueError):
            return "–"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "p":
        v = float(value)
        return "< 1e-300" if v == 0 else (f"{v:.2g}" if v < 0.001 else f"{v:.3f}")
    if kind == "int":
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.3f}"
    return str(value)


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]], *,
               caption: str = "", numeric: Iterable[str] = ()) -> str:
    """A table from dict rows; ``columns`` = (key, heading, format kind). Every cell is escaped."""
    numeric = set(numeric) | {k for k, _, kind in columns if kind}
    head = "".join(f"<th>{esc(h)}</th>" for _, h, _ in columns)
    body = []
    for row in rows:
        cells = "".join(
            f"<td class=\"{'num' if k in numeric else ''}\">{esc(fmt(row.get(k), kind))}</td>"
            for k, _, kind in columns)
        body.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<div class=\"tablewrap\"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def frame_table(frame: pd.DataFrame, *, caption: str = "", index_name: str | None = None) -> str:
    """A DataFrame of counts (e.g. label x split), index as first column."""
    cols = [("__index", index_name or str(frame.index.name or ""), "")] + [
        (str(c), str(c), "int") for c in frame.columns]
    rows = [{"__index": idx, **{str(c): v for c, v in row.items()}} for idx, row in frame.iterrows()]
    return html_table(rows, cols, caption=caption)


@dataclass
class Page:
    """Sections of HTML plus the figures and data they embed."""

    title: str
    sections: list[tuple[str, str, str]] = field(default_factory=list)   # (id, title, html)
    figures: list[str] = field(default_factory=list)                     # figure JSON texts
    template: Any = None

    def figure(self, fig, *, points: bool = False, css_class: str = "") -> str:
        """Register a Plotly figure; returns the placeholder ``div`` the page script fills."""
        import plotly.io as pio

        # NaN/Infinity are not JSON: they become null, which Plotly shows as a gap
        spec = json.loads(pio.to_json(fig, validate=False), parse_constant=lambda _: None)
        layout = spec.setdefault("layout", {})
        if self.template is None and "template" in layout:
            self.template = layout["template"]
        layout.pop("template", None)  # one shared template instead of a copy per figure
        self.figures.append(json.dumps(spec, separators=(",", ":"), allow_nan=False))
        n = len(self.figures) - 1
        attrs = f' data-points="1"' if points else ""
        return f'<div class="fig {esc(css_class)}" id="fig-{n}" data-spec="fig-{n}-spec"{attrs}></div>'

    def add(self, anchor: str, title: str, body: str) -> None:
        self.sections.append((anchor, title, body))

    def render(self, *, plotly_js: str, points: dict[str, Any], header: str) -> str:
        nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in self.sections)
        bodies, entries = [], []
        for anchor, title, html_text in self.sections:
            html_text, subs = _number_subsections(anchor, html_text)
            bodies.append(f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{html_text}</section>')
            inner = "".join(f'<li><a href="#{sub}">{text}</a></li>' for sub, text in subs)
            entries.append(f'<li><a href="#{esc(anchor)}">{esc(title)}</a>' + (f"<ol>{inner}</ol>" if inner else "")
                           + "</li>")
        body = "".join(bodies)
        header = header + f'<nav id="contents"><h2>Contents</h2><ol>{"".join(entries)}</ol></nav>'
        data_blocks = [f'<script type="application/json" id="fig-{i}-spec">{script_json(s)}</script>'
                       for i, s in enumerate(self.figures)]
        data_blocks.append(f'<script type="application/json" id="embedlab-points">{script_json(points)}</script>')
        data_blocks.append(f'<script type="application/json" id="embedlab-template">'
                           f'{script_json(self.template or {})}</script>')
        plotly_js = plotly_js.replace("</script", "<\\/script")
        csp = ("default-src 'none'; "
               f"script-src {_sha256(plotly_js)} {_sha256(PAGE_SCRIPT)} 'unsafe-eval'; "
               "style-src 'unsafe-inline'; img-src data:; font-src data:")
        return PAGE_TEMPLATE.format(
            csp=esc(csp), title=esc(self.title), css=PAGE_CSS, nav=nav, header=header, body=body,
            data="\n".join(data_blocks), plotly_js=plotly_js, script=PAGE_SCRIPT)


def _number_subsections(anchor: str, html_text: str) -> tuple[str, list[tuple[str, str]]]:
    """Give each ``<h3>`` of a section an id; returns the new HTML and (id, heading HTML) pairs.

    The headings are the page's own markup, their data already escaped.
    """
    subs: list[tuple[str, str]] = []

    def number(match: re.Match) -> str:
        sub = f"{esc(anchor)}-{len(subs) + 1}"
        subs.append((sub, match.group(1)))
        return f'<h3 id="{sub}">{match.group(1)}</h3>'

    return re.sub(r"<h3>(.*?)</h3>", number, html_text, flags=re.S), subs


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<nav id="toc"><strong>embedlab</strong>{nav}</nav>
<main>
<header>{header}</header>
{body}
</main>
<div id="tip" hidden><img alt="" hidden><div class="tip-title"></div><div class="tip-path"></div><div class="tip-note"></div></div>
{data}
<script>{plotly_js}</script>
<script>{script}</script>
</body>
</html>
"""

PAGE_CSS = """
:root { --ink:#1d2330; --muted:#5b6575; --line:#dfe3ea; --bg:#f6f7f9; --accent:#1f77b4; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink); background:var(--bg); }
nav#toc { position:sticky; top:0; z-index:10; display:flex; gap:14px; flex-wrap:wrap; align-items:center;
  padding:8px 20px; background:#fff; border-bottom:1px solid var(--line); }
nav#toc a { color:var(--accent); text-decoration:none; }
main { max-width:1280px; margin:0 auto; padding:12px 20px 60px; }
header h1 { margin:12px 0 4px; font-size:24px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:8px 18px 18px; margin:18px 0; }
h2 { font-size:20px; margin:12px 0; } h3 { font-size:16px; margin:18px 0 8px; }
.muted, caption { color:var(--muted); } caption { text-align:left; padding:4px 0; caption-side:top; }
.tablewrap { overflow-x:auto; max-width:100%; margin:8px 0; }
table { border-collapse:collapse; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top;
  overflow-wrap:anywhere; }
th { background:#f0f2f5; } td.num { text-align:right; font-variant-numeric:tabular-nums; overflow-wrap:normal; }
code { overflow-wrap:anywhere; } .grid > * { min-width:0; }
.verdict-right { color:#2ca02c; } .verdict-wrong { color:#d62728; font-weight:600; }
.fig { width:100%; min-height:320px; margin:10px 0; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(420px,1fr)); gap:10px; }
.thumbs { display:flex; flex-wrap:wrap; gap:8px; margin:4px 0 12px; }
figure.thumb { margin:0; width:100px; font-size:11px; color:var(--muted); overflow-wrap:anywhere; }
figure.thumb img { width:64px; height:64px; object-fit:contain; background:#eee; display:block; }
figure.mistake { width:150px; }
.label { font-weight:600; margin-top:6px; }
.note { background:#fff8e1; border-left:3px solid #f0b400; padding:6px 10px; margin:8px 0; }
.note.warning { background:#fdecea; border-left-color:#d62728; }
nav#contents { margin:8px 0 4px; } nav#contents h2 { font-size:16px; margin:8px 0 4px; }
nav#contents ol { margin:0; padding-left:22px; } nav#contents > ol > li { margin:2px 0; font-weight:600; }
nav#contents ol ol { columns:2; font-weight:400; } nav#contents a { color:var(--accent); text-decoration:none; }
#tip { position:fixed; z-index:20; pointer-events:none; background:#fff; border:1px solid #aab;
  border-radius:6px; padding:6px; box-shadow:0 2px 8px rgba(0,0,0,.2); max-width:360px; font-size:12px; }
#tip img { width:96px; height:96px; object-fit:contain; display:block; background:#eee; }
#tip .tip-title { font-weight:600; } #tip .tip-path { color:var(--muted); overflow-wrap:anywhere; }
#tip .tip-note { color:var(--muted); font-style:italic; }
"""

# The page's only script: draws each figure from its JSON block and shows
# the hover card (thumbnail and path) for scatter points. Data is written
# with textContent, never as markup.
PAGE_SCRIPT = """
(function () {
  "use strict";
  function data(id) { return JSON.parse(document.getElementById(id).textContent); }
  var points = data("embedlab-points");
  var template = data("embedlab-template");
  var tip = document.getElementById("tip");
  var tipImg = tip.querySelector("img");
  var parts = { title: tip.querySelector(".tip-title"), path: tip.querySelector(".tip-path"),
                note: tip.querySelector(".tip-note") };
  function pathOf(i) {
    var rel = points.rel[i];
    return rel.charAt(0) === "/" || rel.indexOf(":") > 0 ? rel : points.roots[points.dataset[i]] + "/" + rel;
  }
  function show(i, ev, gd) {
    if (i === undefined || i === null || i < 0 || i >= points.rel.length) { return; }
    var bits = [points.labels[points.label[i]], points.datasets[points.dataset[i]]];
    var split = points.splits[points.split[i]];
    if (split) { bits.push(split); }
    parts.title.textContent = bits.join(" \\u00b7 ");
    parts.path.textContent = pathOf(i);
    var uri = points.thumbs[String(i)];
    if (typeof uri === "string" && (uri.indexOf("data:image/webp;base64,") === 0 ||
                                    uri.indexOf("data:image/jpeg;base64,") === 0)) {
      tipImg.src = uri; tipImg.hidden = false; parts.note.textContent = "";
    } else {
      tipImg.removeAttribute("src"); tipImg.hidden = true;
      parts.note.textContent = "no thumbnail: " + points.budget_note;
    }
    tip.hidden = false;
    var x = ev && ev.clientX !== undefined ? ev.clientX : 20, y = ev && ev.clientY !== undefined ? ev.clientY : 20;
    place(x, y, gd);
    tip.dataset.point = String(i);
  }
  function overlaps(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  // The card goes beside the pointer, on whichever side keeps it off the figure's legend and
  // colour buttons, and inside the window.
  function place(x, y, gd) {
    tip.style.left = "0px"; tip.style.top = "0px";  // measured with room to spare: near an edge it would shrink
    var w = tip.offsetWidth, h = tip.offsetHeight, gap = 16;
    var avoid = gd ? Array.prototype.map.call(gd.querySelectorAll("g.legend, g.updatemenu-container"),
                                              function (el) { return el.getBoundingClientRect(); }) : [];
    var spots = [[x + gap, y + gap], [x - gap - w, y + gap], [x + gap, y - gap - h], [x - gap - w, y - gap - h]];
    avoid.forEach(function (r) { spots.push([r.left - gap - w, y + gap], [r.left - gap - w, y - gap - h]); });
    var best = null;
    for (var k = 0; k < spots.length && best === null; k++) {
      var left = Math.max(0, Math.min(spots[k][0], window.innerWidth - w));
      var top = Math.max(0, Math.min(spots[k][1], window.innerHeight - h));
      var box = { left: left, top: top, right: left + w, bottom: top + h };
      if (!avoid.some(function (r) { return overlaps(box, r); })) { best = box; }
    }
    best = best || { left: Math.max(0, Math.min(x + gap, window.innerWidth - w)),
                     top: Math.max(0, Math.min(y + gap, window.innerHeight - h)) };
    tip.style.left = best.left + "px";
    tip.style.top = best.top + "px";
  }
  function hide() { tip.hidden = true; }
  var figs = Array.prototype.slice.call(document.querySelectorAll("div.fig[data-spec]"));
  var done = 0;
  function next() {
    if (done >= figs.length) { document.body.dataset.ready = "1"; return; }
    var div = figs[done];
    var spec = data(div.dataset.spec);
    spec.layout = spec.layout || {};
    spec.layout.template = template;
    Plotly.newPlot(div, spec.data, spec.layout, { responsive: true, displaylogo: false }).then(function () {
      if (div.dataset.points) {
        div.on("plotly_hover", function (ev) {
          var p = ev.points && ev.points[0];
          if (p) { show(Number(p.customdata), ev.event, div); }
        });
        div.on("plotly_unhover", hide);
      }
      done += 1;
      document.body.dataset.rendered = String(done);
      window.requestAnimationFrame(next);
    }, function (err) { console.error("figure " + div.id + ": " + err); done += 1; next(); });
  }
  window.embedlabShowPoint = show;
  next();
})();
"""
