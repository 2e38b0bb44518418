"""``write_report``: datasets and run folders in, one offline HTML file out."""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

import embedlab
from embedlab import analysis
from embedlab.compute.extraction import feature_matrix
from embedlab.core.defaults import DEFAULT_CACHE_DIR, DEFAULT_REPORT, DEFAULT_RUNS_DIR
from embedlab.core.errors import EmbedlabError, ModelError
from embedlab.core.io import atomic_write_bytes, check_output_file
from embedlab.report import sections
from embedlab.report.page import Page, esc, html_table
from embedlab.report.shipped import shipped_section
from embedlab.report.sources import EncodingPlan, as_source, datasets_of_runs, encoded_table, find_run_folders

UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean"}


@dataclass(frozen=True)
class ReportOptions:
    """How :func:`write_report` reads the datasets and draws the page; every field has a default.

    ``features`` is the spec for datasets that name none (default: the cached encoding variant, else the
    layout's default). ``generated`` names the datasets whose faces are all generated (default: those
    named like ``synthetic-*``). With ``compute=False`` only images whose features are already cached
    under ``cache_dir`` are used; ``workers`` is passed to :func:`embedlab.encode` for the rest. Every
    plotted point gets a hover thumbnail while they fit in ``thumbnail_budget_mb`` megabytes (and number
    at most ``max_thumbnails``); ``thumbs_per_class`` images of each class are shown per dataset.
    ``umap_params`` go over :data:`UMAP_DEFAULTS`; ``seed`` fixes every sample and projection.

    >>> ReportOptions(workers=1, title="rvf").title
    'rvf'
    """

    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR
    features: str | None = None
    generated: Sequence[str] | None = None
    compute: bool = True
    workers: int | None = None
    max_thumbnails: int | None = None
    thumbnail_budget_mb: float = 15.0
    thumbs_per_class: int = 6
    umap_params: Mapping[str, Any] | None = None
    seed: int = 0
    title: str = "embedlab report"


def write_report(
    out_path: str | os.PathLike = DEFAULT_REPORT,
    datasets: Sequence[Any] = (),
    runs: Sequence[str | os.PathLike] = (),
    *,
    options: ReportOptions | None = None,
    shipped: Sequence[Any] = (),
    on_step: Callable[[str], None] | None = None,
    on_plan: Callable[[EncodingPlan], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the interactive report to ``out_path`` and return that path.

    ``datasets``: paths (``PATH`` or ``PATH::FEATURES``), ``(path, spec)``
    pairs or tables from :func:`embedlab.encode`. ``runs``: run folders or
    folders of them. With neither, the datasets of the run folders in
    ``results/runs`` are used; a run folder that cannot be read (one still
    being fitted has no ``metrics.json``) is left out with a note on the
    page. The features of datasets that name
    none, and how the page is drawn, are ``options`` (a :class:`ReportOptions`;
    the defaults when not given); the page states how many points got a
    hover thumbnail.

    ``on_step`` hears each stage's name; ``on_plan`` each dataset about to
    be encoded (an :class:`EncodingPlan`: images, features, how many are
    cached) and ``on_progress`` ``(done, total)`` images while it is.

    ``shipped`` takes the shipped models' scores (:func:`embedlab.analysis.score_shipped`), which get a
    section of their own before the other results.

    The file embeds Plotly's JavaScript once and needs no network.
    """
    started = time.perf_counter()
    options = options or ReportOptions()
    check_output_file(out_path)  # before minutes of work, not after
    step = on_step or (lambda _msg: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    records, notes, sources = gather_inputs(datasets, runs)
    tables = []
    for source in sources:
        step(f"features of {source.label}")
        table = encoded_table(source, options.features, options.cache_dir, compute=options.compute,
                              workers=options.workers,
                              on_plan=on_plan, on_progress=on_progress)
        summary = table.attrs.get("summary") or {}
        step(f"{source.label}: {len(table)} images, features {table.attrs.get('feature_spec', 'given')}"
             + (f", {summary['computed_images']} computed now" if summary.get("computed_images") else ", all cached"))
        tables.append(table)
    timings["load and encode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ctx = build_context(Page(options.title), tables, records, notes, options, timings)
    ctx.shipped = list(shipped)
    timings["combine"] = time.perf_counter() - t0
    budget = sections.ThumbnailBudget(options.thumbnail_budget_mb, options.max_thumbnails)
    points = build_sections(ctx, budget, step)
    step("writing")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, render(ctx, points, started).encode("utf-8"))
    return out


def gather_inputs(datasets: Sequence[Any], runs: Sequence[str | os.PathLike]) -> tuple[list, list[str], list]:
    """The run records (and notes on folders left out) and the dataset sources to report on."""
    if not datasets and not runs and DEFAULT_RUNS_DIR.is_dir():
        runs = [DEFAULT_RUNS_DIR]
    run_folders = find_run_folders(runs)
    records, notes = [], []
    for folder in run_folders:
        try:
            records.append(analysis.read_run_folder(folder))
        except ModelError as exc:  # e.g. a run still fitting has no metrics.json yet
            notes.append(f"run folder left out: {exc}")
    sources = [as_source(d) for d in datasets] or datasets_of_runs(run_folders)
    if not sources and not records:
        raise EmbedlabError("nothing to report: name a dataset (e.g. data/sample/real-vs-fake) or a run folder "
                            f"(none found in {DEFAULT_RUNS_DIR})")
    return records, notes, sources


def build_context(page: Page, tables: list[pd.DataFrame], records: list, notes: list[str],
                  options: ReportOptions, timings: dict[str, float]) -> sections.Context:
    """One table of every dataset and the feature analysed, for the sections to read."""
    generated = options.generated
    table = analysis.combine_tables(tables, generated)
    names = list(dict.fromkeys(table["dataset"])) if len(table) else []
    for col in [c for c in table.columns if str(c).endswith(".ok")]:
        table[col] = table[col].astype(object).where(table[col].notna(), False).astype(bool)
    feature = _analysed_feature(tables)
    X, ok = (None, np.zeros(len(table), bool))
    if feature is not None:
        X, ok = feature_matrix(table, [feature])
        X[~ok] = np.nan
    return sections.Context(page=page, table=table, tables=tables, names=names, feature=feature, X=X, ok=ok,
                            records=records, generated=None if generated is None else list(generated),
                            umap_params={**UMAP_DEFAULTS, **(options.umap_params or {})}, seed=options.seed,
                            thumbs_per_class=options.thumbs_per_class, timings=timings, notes=notes,
                            cache_dir=options.cache_dir, compute=options.compute, workers=options.workers)


def build_sections(ctx: sections.Context, budget: sections.ThumbnailBudget,
                   step: Callable[[str], None]) -> dict[str, Any]:
    """Add every section to the page, timing each; returns the hover thumbnails' data."""
    # results first, then the analysis of the features, then the datasets they come from
    for name, build in (("shipped", shipped_section), ("models", sections.models_section),
                        ("norms", sections.norms_section),
                        ("projections", sections.projections_section), ("spectra", sections.spectra_section),
                        ("datasets", sections.overview_section)):
        if name not in ("shipped", "models") and not len(ctx.table):
            continue
        step(name)
        t0 = time.perf_counter()
        build(ctx)
        ctx.timings[name] = time.perf_counter() - t0
    step("thumbnails")
    t0 = time.perf_counter()
    points = sections.points_data(ctx, budget)
    ctx.timings["thumbnails"] = time.perf_counter() - t0
    return points


def render(ctx: sections.Context, points: dict[str, Any], started: float) -> str:
    """The whole HTML page, Plotly's JavaScript included."""
    from plotly.offline import get_plotlyjs
    import plotly

    ctx.page.add("about", "About this report", _about(ctx, ctx.timings, started))
    note = esc(points["budget_note"])
    ctx.page.sections = [(a, t, h.replace(sections.THUMB_BUDGET_MARK, note)) for a, t, h in ctx.page.sections]
    header = _header(ctx, ctx.tables, ctx.records, plotly.__version__, points)
    return ctx.page.render(plotly_js=get_plotlyjs(), points=points, header=header)


def _analysed_feature(tables: list[pd.DataFrame]) -> str | None:
    """``encoding`` if every dataset has it, else the first feature they all have."""
    common = None
    for t in tables:
        names = [c[:-3] for c in t.columns if str(c).endswith(".ok") and c[:-3] in t.columns]
        common = names if common is None else [n for n in common if n in names]
    if not common:
        return None
    return "encoding" if "encoding" in common else common[0]


def _header(ctx, tables, records, plotly_version: str, points: dict[str, Any]) -> str:
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    rows = []
    for name, t in zip(ctx.names, tables):
        feat = ctx.feature
        ok = int(t[f"{feat}.ok"].sum()) if feat and f"{feat}.ok" in t else None
        rows.append({"dataset": name, "path": t.attrs.get("root", ""), "layout": t.attrs.get("layout", ""),
                     "features": t.attrs.get("feature_spec") or ", ".join(t.attrs.get("features", {})),
                     "images": len(t), "ok": ok})
    parts = [f"<h1>{esc(ctx.page.title)}</h1>",
             f"<p class=\"muted\">Written {esc(when)} by embedlab {esc(embedlab.__version__)} · "
             f"{len(ctx.table):,} images in {len(tables)} dataset(s) · {len(records)} run(s)</p>"]
    if points["n_points"]:
        parts.append(f'<p class="muted" id="thumb-budget">{esc(points["budget_note"])}</p>')
    if rows:
        parts.append(html_table(rows, [("dataset", "dataset", ""), ("path", "path", ""), ("layout", "layout", ""),
                                       ("features", "features", ""), ("images", "images", "int"),
                                       ("ok", f"with {ctx.feature or 'features'}", "int")]))
    if records:
        parts.append(html_table([{"run": r.name, "path": str(r.path), "kind": r.params.get("kind"),
                                  "model": r.params.get("model"), "created": r.params.get("created")}
                                 for r in records],
                                [("run", "run", ""), ("path", "folder", ""), ("kind", "kind", ""),
                                 ("model", "model", ""), ("created", "created", "")]))
    parts += [f'<p class="note">{esc(n)}</p>' for n in ctx.notes]
    return "".join(parts)


def _about(ctx, timings: dict[str, float], started: float) -> str:
    rows = [{"stage": k, "seconds": v} for k, v in timings.items()]
    rows.append({"stage": "total before writing", "seconds": time.perf_counter() - started})
    params = ", ".join(f"{k}={v}" for k, v in ctx.umap_params.items())
    return (f"<p>UMAP parameters: {esc(params)}, seed={ctx.seed}. Origins: labels real/fake decide per face; "
            "otherwise a dataset counts as generated when named so (e.g. synthetic-emotions) or listed with "
            "--generated.</p>" + html_table(rows, [("stage", "stage", ""), ("seconds", "seconds", "f")],
                                             caption="Time spent"))
