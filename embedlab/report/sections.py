"""The report's sections, each turning tables into HTML and figures on a :class:`Page`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from embedlab import analysis
from embedlab.api import encode, feature_matrix
from embedlab.compute.cache import FeatureCache
from embedlab.core.defaults import DEFAULT_CACHE_DIR
from embedlab.features import create_extractor
from embedlab.datasets import inspect_dataset
from embedlab.analysis import GENERATED, REAL
from embedlab.report.page import Page, esc, fmt, frame_table, html_table
from embedlab.report.thumbnails import budgeted_thumbnails, stratified_order, thumb_html, thumbnail_uri

MIN_POINTS = 10  # fewer faces than this make no useful projection or test
THUMB_BUDGET_MARK = "<!--thumbnail budget-->"  # where the statement of the hover thumbnails goes


@dataclass
class Context:
    """Everything the sections share."""

    page: Page
    table: pd.DataFrame                  # all datasets stacked (combine_tables), feature columns kept
    tables: list[pd.DataFrame]           # per dataset, as encoded
    names: list[str]                     # dataset names, as in table["dataset"]
    feature: str | None                  # the feature analysed ("encoding" when present)
    X: np.ndarray | None                 # its matrix, NaN rows where it failed
    ok: np.ndarray                       # rows where it is present
    records: list[Any]                   # analysis.RunRecord
    generated: list[str] | None
    umap_params: dict[str, Any]
    seed: int
    thumbs_per_class: int
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR   # for the features a section computes (spectra)
    compute: bool = True
    workers: int | None = None
    shipped: list[Any] = field(default_factory=list)   # analysis.ShippedScore: the shipped models, scored


# -- datasets -----------------------------------------------------------------
def overview_section(ctx: Context) -> None:
    parts = []
    for name, table in zip(ctx.names, ctx.tables):
        report = inspect_dataset(table, decode=False)
        counts = report.counts.copy()
        counts["total"] = counts.sum(axis=1)
        counts.loc["total"] = counts.sum(axis=0)
        spec = table.attrs.get("feature_spec") or ", ".join(table.attrs.get("features", {}))
        parts.append(f"<h3>{esc(name)}</h3><p class=\"muted\">{esc(report.root)} · layout {esc(report.layout)}"
                     f" · {len(table):,} images · features {esc(spec)}</p>")
        dropped = table.attrs.get("report_dropped", 0)
        if dropped:
            parts.append(f'<p class="note">{dropped:,} images of this dataset have no cached features yet '
                         "and are left out of this report.</p>")
        parts.append(frame_table(counts, caption="Images per label and split", index_name="label"))
        if not report.sources.empty:
            parts.append(frame_table(report.sources, caption="Images per source (generator of the fakes) and split",
                                     index_name="source"))
        if not report.subsets.empty:
            parts.append(frame_table(report.subsets, caption="FER-2013 subsets", index_name="label"))
        dup = report.duplicates
        parts.append(
            f"<p>Exact duplicates (same bytes): <b>{len(dup):,}</b> groups, "
            f"{int(dup['copies'].sum()) if len(dup) else 0:,} images; "
            f"<b>{len(report.cross_split):,}</b> groups span splits, "
            f"<b>{len(report.conflicting_labels):,}</b> carry conflicting labels.</p>")
        notable = dup[dup["cross_split"] | dup["conflicting_labels"]].head(8)
        if len(notable):
            rows = [{"copies": r.copies, "splits": ", ".join(map(str, r.splits)), "labels": ", ".join(r.labels),
                     "images": ", ".join(map(str, r.image_ids[:4])) + (" …" if len(r.image_ids) > 4 else "")}
                    for r in notable.itertuples()]
            parts.append(html_table(rows, [("copies", "copies", "int"), ("splits", "splits", ""),
                                           ("labels", "labels", ""), ("images", "images", "")],
                                    caption="Duplicates across splits or labels (first 8)"))
        rows, failed = [], {}
        for feat in table.attrs.get("features", {}):
            if f"{feat}.ok" not in table:
                continue
            okf = table[f"{feat}.ok"].to_numpy(bool)
            reasons = table.loc[~okf, f"{feat}.reason"].fillna("unknown").value_counts()
            rows.append({"feature": feat, "ok": int(okf.sum()), "failed": int((~okf).sum()),
                         "why": ", ".join(f"{r}: {n:,}" for r, n in reasons.items()) or "–"})
            for i in np.flatnonzero(~okf):  # the first feature that failed on an image says why
                failed.setdefault(i, {"image": table["image_id"].iloc[i], "reason": table[f"{feat}.reason"].iloc[i],
                                      "error": table[f"{feat}.error"].iloc[i]})
        if rows:
            parts.append(html_table(rows, [("feature", "feature", ""), ("ok", "encoded", "int"),
                                           ("failed", "failed", "int"), ("why", "failures by reason", "")]))
        if failed:
            shown = [failed[i] for i in sorted(failed)][:FAILURES_SHOWN]
            parts.append(html_table(shown, [("image", "image", ""), ("reason", "reason", ""), ("error", "why", "")],
                                    caption=f"Images without features (first {len(shown)} of {len(failed):,})"))
        parts.append('<div class="label">Sample images per class</div>')
        rng = np.random.default_rng(ctx.seed)
        for label, rows_of in table.groupby("label", sort=True).groups.items():
            pick = rng.permutation(np.asarray(rows_of))[:ctx.thumbs_per_class]
            figs = "".join(thumb_html(thumbnail_uri(table.at[i, "path"]), os.path.basename(str(table.at[i, "path"])),
                                      path=str(table.at[i, "path"]))
                           for i in pick)
            parts.append(f'<div class="label">{esc(label)} <span class="muted">({len(rows_of):,})</span></div>'
                         f'<div class="thumbs">{figs}</div>')
    ctx.page.add("datasets", "Datasets", "".join(parts))


#: how many images without features a dataset's section lists by name
FAILURES_SHOWN = 100


# -- like with like ---------------------------------------------------------------------
def settings_warning(ctx: Context) -> str:
    """A warning when the datasets' vectors of the analysed feature were computed with different settings.

    An encoding of a 48x48 crop taken whole (``detector=none``) and one of a
    face found by HOG in a portrait differ by how the face was cropped, not
    only by the face; comparing them across datasets mixes the two.
    """
    settings = {}
    for name, table in zip(ctx.names, ctx.tables):
        described = (table.attrs.get("features") or {}).get(ctx.feature) if ctx.feature else None
        if described is not None:
            settings[name] = {k: str(v) for k, v in (described.get("params") or {}).items()}
    if len({tuple(sorted(p.items())) for p in settings.values()}) < 2:
        return ""
    differing = sorted({k for p in settings.values() for k in p
                        if len({q.get(k, "(default)") for q in settings.values()}) > 1})
    shared = [k for k in differing if all(k in p for p in settings.values())]  # e.g. detector
    differing = shared or differing
    each = "; ".join(f"{name}: " + ", ".join(f"{k}={p.get(k, '(default)')}" for k in differing)
                     for name, p in settings.items())
    return (f'<p class="note warning">The datasets\' {esc(ctx.feature)} vectors were computed with different '
            f"settings ({esc(each)}). Differences between these datasets may come from how the faces were "
            "found and cropped rather than from the faces: encode every dataset with the same spec "
            "(DATA::SPEC) to compare like with like.</p>")


# -- norms ----------------------------------------------------------------------
def _mixed_groups(ctx: Context) -> list[tuple[str, np.ndarray]]:
    """(title, row mask) of each set of faces with both real and generated ones."""
    t, out = ctx.table, []
    for name in ctx.names:
        mask = (t["dataset"] == name).to_numpy() & ctx.ok
        if {REAL, GENERATED} <= set(t.loc[mask, "origin"]):
            out.append((name, mask))
    emo = t["emotion"].notna().to_numpy() & ctx.ok
    if {REAL, GENERATED} <= set(t.loc[emo, "origin"]) and t.loc[emo, "dataset"].nunique() > 0:
        datasets_in = sorted(set(t.loc[emo, "dataset"]))
        if not any(np.array_equal(emo, m) for _, m in out):
            out.append(("emotion faces (" + " + ".join(datasets_in) + ")", emo))
    return out


_STATS_COLUMNS = [
    ("comparison", "comparison", ""), ("a", "A", ""), ("n_a", "n A", "int"), ("b", "B", ""),
    ("n_b", "n B", "int"), ("mean_a", "mean A", "f"), ("mean_b", "mean B", "f"),
    ("ks_statistic", "KS D", "f"), ("ks_pvalue", "KS p", "p"), ("mannwhitney_pvalue", "Mann-Whitney p", "p"),
    ("cohens_d", "Cohen's d (B−A)", "f"), ("cliffs_delta", "Cliff's δ", "f"),
    ("auc", "AUC of norm for B", "f"), ("detector_auc", "AUC, better direction", "f"),
]


def norms_section(ctx: Context) -> None:
    if ctx.feature is None or ctx.X is None or not ctx.ok.any():
        return
    t = ctx.table
    norms = analysis.l2_norms(ctx.X)
    parts = [f"<p>Length (L2 norm) of each <b>{esc(ctx.feature)}</b> vector. Tests are two-sided; "
             "the AUC treats the norm alone as a score for group B (0.5: no information).</p>", settings_warning(ctx)]
    stat_rows: list[dict[str, Any]] = []
    grid = []
    for title, mask in _mixed_groups(ctx):
        origin = t.loc[mask, "origin"].to_numpy()
        fig = analysis.plot_norm_distributions(norms[mask], origin, order=[REAL, GENERATED],
                                               title=f"L2 norm, real vs generated: {title}")
        grid.append(ctx.page.figure(fig))
        res = analysis.norm_tests(norms[mask], origin, [(REAL, GENERATED)])
        stat_rows += [{"comparison": title, **r} for r in res.to_dict("records")]
        emotions = t.loc[mask, "emotion"].to_numpy()
        if pd.notna(emotions).all():
            for emotion in sorted(set(emotions)):
                sub = emotions == emotion
                groups = np.where(origin[sub] == REAL, f"{emotion} · real", f"{emotion} · generated")
                res = analysis.norm_tests(norms[mask][sub], groups,
                                          [(f"{emotion} · real", f"{emotion} · generated")])
                stat_rows += [{"comparison": f"{title}: {emotion}", **r} for r in res.to_dict("records")]
    if len(ctx.names) > 1:
        fig = analysis.plot_norm_distributions(norms[ctx.ok], t.loc[ctx.ok, "dataset"], order=ctx.names,
                                               title="L2 norm per dataset")
        grid.append(ctx.page.figure(fig))
    emo = t["emotion"].notna().to_numpy() & ctx.ok
    if emo.sum() >= MIN_POINTS:
        fig = analysis.plot_norm_boxes(norms[emo], t.loc[emo, "emotion"], t.loc[emo, "origin"],
                                       x_order=analysis.EMOTIONS, colour_order=[REAL, GENERATED],
                                       title="L2 norm per emotion, real and generated faces", x_title="emotion")
        grid.append(ctx.page.figure(fig))
    parts.append(f'<h3>Distributions</h3><div class="grid">{"".join(grid)}</div>')
    if stat_rows:
        parts.append("<h3>Tests: real against generated</h3>"
                     + html_table(stat_rows, _STATS_COLUMNS, caption="Real (A) against generated (B) faces"))
    summary = analysis.summarize_groups(norms[ctx.ok], (t.loc[ctx.ok, "dataset"] + " / " + t.loc[ctx.ok, "label"]
                                                        .astype(str)).to_numpy())
    rows = [{"group": g, **r} for g, r in summary.iterrows()]
    parts.append("<h3>Per dataset and label</h3>" + html_table(rows, [("group", "dataset / label", ""), ("n", "n", "int")] + [
        (c, c, "f") for c in ("mean", "std", "min", "q25", "median", "q75", "max")],
        caption="L2 norm per dataset and label"))
    # which dimensions separate real from generated
    for title, mask in _mixed_groups(ctx):
        positive = (t.loc[mask, "origin"] == GENERATED).to_numpy()
        if positive.sum() < 2 or (~positive).sum() < 2:
            continue
        effects = analysis.dimension_effects(ctx.X[mask], positive)
        parts.append(f"<h3>Dimensions: {esc(title)}</h3>" + ctx.page.figure(analysis.plot_dimension_effects(
            effects, title=f"Per-dimension effect size, generated vs real: {title}")))
        top = effects.reindex(effects["cohens_d"].abs().sort_values(ascending=False).index).head(10)
        parts.append(html_table(top.to_dict("records"), [
            ("dimension", "dimension", "int"), ("mean_negative", "mean real", "f"),
            ("mean_positive", "mean generated", "f"), ("cohens_d", "Cohen's d", "f"), ("auc", "AUC", "f"),
            ("pvalue_bh", "p (BH-adjusted)", "p")], caption=f"The 10 most separating dimensions: {title}"))
    ctx.page.add("norms", "Analysis: L2 norms", "".join(parts))


# -- projections ------------------------------------------------------------------
def _correctness(ctx: Context, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per run with held-out predictions on these rows: correct / wrong / not predicted."""
    out: dict[str, np.ndarray] = {}
    hashes = ctx.table.loc[rows, "hash"].to_numpy()
    for rec in ctx.records:
        pred = rec.predictions
        if pred is None or pred.empty or "hash" not in pred:
            continue
        roles = {n: s.get("role", n) for n, s in rec.sets.items()}
        held = pred[pred["set"].map(lambda s: roles.get(s, "eval")).isin(["test", "eval"]).to_numpy()]
        lookup = held.drop_duplicates("hash").set_index("hash")["correct"]
        found = pd.Series(hashes).map(lookup)
        if found.notna().any():
            out[f"correct: {rec.name}"] = np.where(found.isna(), "not predicted",
                                                   np.where(found.fillna(False).astype(bool), "correct", "wrong"))
        if len(out) >= 3:
            break
    return out


def projections_section(ctx: Context) -> None:
    import time

    if ctx.feature is None or ctx.X is None:
        return
    t = ctx.table
    jobs = []  # (title, rows, colourings, symbol column, separation label columns)
    for name in ctx.names:
        mask = (t["dataset"] == name).to_numpy() & ctx.ok
        if mask.sum() >= MIN_POINTS and {REAL, GENERATED} <= set(t.loc[mask, "origin"]):
            jobs.append((f"Real vs generated: {name}", np.flatnonzero(mask), ["label", "split"], None,
                         ["label"]))
    emo = t["emotion"].notna().to_numpy() & ctx.ok
    if emo.sum() >= MIN_POINTS:
        mixed = t.loc[emo, "origin"].nunique() > 1
        seps = ["emotion"] + (["origin"] if mixed else []) + (
            ["dataset"] if t.loc[emo, "dataset"].nunique() > 1 else [])
        # with both origins, the first view shows where the (few) generated faces fall among the real ones
        colours = ["origin", "emotion"] if mixed else ["emotion", "origin"]
        jobs.append(("Emotions, real and generated faces together", np.flatnonzero(emo),
                     colours + ["dataset", "split"], "origin", seps))
    if not jobs and ctx.ok.sum() >= MIN_POINTS:
        jobs.append(("All datasets", np.flatnonzero(ctx.ok), ["dataset", "label", "split"], None,
                     ["label", "dataset"] if len(ctx.names) > 1 else ["label"]))
    if not jobs:
        return
    parts = [f"<p>UMAP of the <b>{esc(ctx.feature)}</b> vectors. Hover a point for its thumbnail and path; "
             f"{THUMB_BUDGET_MARK} The separation numbers are computed in the original space: the "
             "silhouette, and how often a face's nearest neighbours share its group (against chance).</p>",
             settings_warning(ctx)]
    for title, rows, colour_cols, symbol_col, sep_cols in jobs:
        X = ctx.X[rows]
        started = time.perf_counter()
        proj = analysis.project(X, seed=ctx.seed, **ctx.umap_params)
        ctx.timings[f"umap: {title}"] = time.perf_counter() - started
        sep_rows = []
        for col in sep_cols:
            labels = t.loc[rows, col].astype(str).to_numpy()
            if len(set(labels)) > 1:
                sep_rows.append({"grouping": col, **analysis.separation(X, labels, seed=ctx.seed)})
        colourings = {c: t.loc[rows, c].to_numpy() for c in colour_cols if t.loc[rows, c].notna().any()}
        colourings.update(_correctness(ctx, rows))
        note = "\n".join(f"{r['grouping']}: silhouette {r['silhouette']:.3f}, kNN agreement "
                         f"{r['knn_agreement']:.1%} (chance {r['chance']:.1%})" for r in sep_rows)
        fig = analysis.plot_projection(
            proj, colourings, title=title, point_ids=rows, note=note,
            symbol=t.loc[rows, symbol_col].to_numpy() if symbol_col else None,
            order={"origin": [REAL, GENERATED], "emotion": list(analysis.EMOTIONS),
                   "label": ["real", "fake"]})
        parts.append(f"<h3>{esc(title)}</h3>" + ctx.page.figure(fig, points=True))
        if sep_rows:
            parts.append(html_table(sep_rows, [
                ("grouping", "grouping", ""), ("labels", "groups", "int"), ("n", "faces scored", "int"),
                ("silhouette", "silhouette", "f"), ("knn_agreement", f"kNN agreement (k={sep_rows[0]['k']})", "pct"),
                ("chance", "chance", "pct")], caption="How well the groups separate in the original space"))
        if symbol_col == "origin":
            parts.append(_cross_domain(ctx, rows))
    ctx.page.add("projections", "Analysis: projections", "".join(parts))


def _cross_domain(ctx: Context, rows: np.ndarray) -> str:
    t = ctx.table
    origin = t.loc[rows, "origin"].to_numpy()
    real, gen = rows[origin == REAL], rows[origin == GENERATED]
    if len(real) < MIN_POINTS or len(gen) < 1:
        return ""
    res = analysis.knn_transfer(ctx.X[real], t.loc[real, "emotion"], ctx.X[gen], t.loc[gen, "emotion"])
    return html_table(res.to_dict("records"), [
        ("label", "generated emotion", ""), ("n", "faces", "int"),
        ("agreement", "neighbours (real) with the same emotion", "pct"), ("chance", "chance", "pct"),
        ("accuracy", "kNN vote correct", "pct"), ("most_common", "most common kNN vote", "")],
        caption="Where generated faces fall among real ones: their 10 nearest real faces, in the original space")


# -- spectra ----------------------------------------------------------------------
SPECTRUM_SPEC = "spectrum[size=64]"  # one size for every dataset, so that their frequency axes agree
SPECTRUM_PER_CLASS = 200             # images per class behind a mean spectrum when none are encoded


def _spectra(ctx: Context, name: str, table: pd.DataFrame) -> tuple[pd.DataFrame, str] | None:
    """The ``spectrum`` rows of one dataset: its own when encoded, else a sample per class; and a note."""
    if "spectrum.ok" in table and table["spectrum.ok"].fillna(False).astype(bool).any():
        size = int(((table.attrs.get("features") or {}).get("spectrum") or {}).get("params", {}).get("size", 256))
        return table, f"spectrum[size={size}] of every image"
    sample = table[["image_id", "path", "label", "split", "hash"]].copy()
    sample.attrs.update({k: v for k, v in table.attrs.items() if k in ("name", "root", "layout")})
    if not ctx.compute:  # cached-only: the images whose spectrum is already cached
        sample = sample[sample["hash"].isin(FeatureCache(ctx.cache_dir).known_hashes(
            create_extractor(SPECTRUM_SPEC).key())).to_numpy()]
        if sample.empty:
            return None
    encoded = encode(sample, SPECTRUM_SPEC, cache_dir=ctx.cache_dir, workers=ctx.workers,
                     per_class=SPECTRUM_PER_CLASS, seed=ctx.seed)
    return encoded, f"{SPECTRUM_SPEC}, up to {SPECTRUM_PER_CLASS} images per class"


def spectra_section(ctx: Context) -> None:
    """Mean power spectrum per class of each dataset, and real against generated across them."""
    figs, pooled, notes = [], [], []
    for name, table in zip(ctx.names, ctx.tables):
        found = _spectra(ctx, name, table)
        if found is None:
            notes.append(f"{name}: no cached spectra (--cached-only)")
            continue
        encoded, how = found
        X, ok = feature_matrix(encoded, ["spectrum"])
        size = int(encoded.attrs["features"]["spectrum"]["params"]["size"])
        labels = encoded.loc[ok, "label"].astype(str).to_numpy()
        spectra = analysis.mean_spectra(X[ok], labels, size=size)
        figs.append(ctx.page.figure(analysis.plot_mean_spectra(
            spectra, title=f"Mean power spectrum per class: {name}", order=analysis.EMOTIONS + ("real", "fake"),
            note=f"{how}; images resized to {size}x{size} and made grey first")))
        origin = analysis.origin_of_labels(labels, analysis.dataset_is_generated(
            str(encoded.attrs.get("root") or name), ctx.generated) or analysis.dataset_is_generated(name, ctx.generated))
        pooled.append((name, size, X[ok], origin))
    if not figs:
        return
    parts = ["<p>The azimuthally averaged log power spectrum (the <code>spectrum</code> feature): how much of "
             "each image's variation lies at each spatial frequency. Generators can leave traces at high "
             "frequencies; blur and compression remove them.</p>"]
    parts += [f'<p class="note">{esc(n)}</p>' for n in notes]
    parts.append(f'<h3>Per class</h3><div class="grid">{"".join(figs)}</div>')
    sizes = {size for _, size, _, _ in pooled}
    origins = {o for *_, origin in pooled for o in origin}
    if len(sizes) == 1 and {REAL, GENERATED} <= origins:
        X = np.vstack([x for _, _, x, _ in pooled])
        groups = np.concatenate([np.char.add(f"{name} · ", origin.astype(str)) for name, _, _, origin in pooled])
        fig = analysis.plot_mean_spectra(analysis.mean_spectra(X, groups, size=sizes.pop()),
                                         title="Mean power spectrum, real and generated faces")
        parts.append("<h3>Real and generated</h3>" + ctx.page.figure(fig))
    ctx.page.add("spectra", "Analysis: spectra", "".join(parts))


# -- models -------------------------------------------------------------------------
def models_section(ctx: Context, mistakes_per_run: int = 8) -> None:
    if not ctx.records:
        return
    page = ctx.page
    comp = analysis.comparison_table(ctx.records, ctx.generated)
    parts = ["<p>Accuracy on real and on generated faces counts the test and evaluation sets together "
             "(Wilson 95% intervals); the test accuracy and AUC intervals are the runs' bootstrap intervals.</p>"]
    rows = []
    for r in comp.to_dict("records"):
        rows.append({**r, "real": _acc_cell(r, REAL), "generated": _acc_cell(r, GENERATED)})
    parts.append("<h3>Model comparison</h3>" + html_table(rows, [
        ("run", "run", ""), ("model", "model", ""), ("features", "features", ""), ("task", "task", ""),
        ("train_accuracy", "train accuracy", "pct"), ("real", "test accuracy, real faces", ""),
        ("generated", "test accuracy, generated faces", ""), ("test_accuracy", "test accuracy", "pct"),
        ("test_accuracy_ci", "95% CI", "ci"), ("test_auc", "test AUC", "f"), ("test_auc_ci", "95% CI", "ci3"),
        ("test_brier", "test Brier", "f"), ("threshold", "decision threshold (predict applies it)", "f"),
        ("eval_sets", "evaluated on", "")], caption="Model comparison", numeric=["real", "generated"]))
    parts.append(_threshold_note(ctx))
    parts.append(_per_class(ctx))
    parts.append(_origin_gap(ctx))
    parts.append(_detection(ctx))
    parts.append(_calibration(ctx))
    parts.append(_sources(ctx))
    parts.append(_learning(ctx))
    # confusion matrices
    cms = []
    for rec in ctx.records:
        for set_name, s in rec.sets.items():
            if s.get("role") in ("test", "eval") and s.get("confusion_matrix") and s.get("labels"):
                cms.append(page.figure(analysis.plot_confusion(s["labels"], s["confusion_matrix"],
                                                               title=f"{rec.name} · {set_name} (n={s.get('n', '?')})")))
    if cms:
        parts.append("<h3>Confusion matrices</h3><p class=\"muted\">Rows are true labels, normalised to 100%; "
                     "hover for counts.</p>" + f'<div class="grid">{"".join(cms)}</div>')
    hist = [page.figure(analysis.plot_history(rec.history, title=f"Training curves: {rec.name}"))
            for rec in ctx.records if rec.history is not None and len(rec.history)]
    if hist:
        parts.append("<h3>Training curves</h3>" + f'<div class="grid">{"".join(hist)}</div>')
    gallery = []
    for rec in ctx.records:
        if rec.predictions is None or rec.predictions.empty:
            continue
        held = [n for n, s in rec.sets.items() if s.get("role") in ("test", "eval")] or None
        wrong = analysis.confident_mistakes(rec.predictions, n=mistakes_per_run, sets=held)
        if wrong.empty:
            continue
        figs = "".join(
            thumb_html(thumbnail_uri(str(r["path"])), os.path.basename(str(r["path"])), path=str(r["path"]),
                       extra=f"true <b>{esc(r['label'])}</b>, predicted <b>{esc(r['pred'])}</b> "
                             f"({esc(fmt(r['confidence'], 'pct'))}) · {esc(r['set'])}", css="thumb mistake")
            for r in wrong.to_dict("records"))
        gallery.append(f'<div class="label">{esc(rec.name)}</div><div class="thumbs">{figs}</div>')
    if gallery:
        parts.append("<h3>Most confident mistakes</h3>" + "".join(gallery))
    page.add("models", "Results: models", "".join(parts))


def _threshold_note(ctx: Context) -> str:
    """What the comparison table's threshold is, and that it is the one ``predict`` applies."""
    chosen = []
    for rec in ctx.records:
        cut = rec.params.get("threshold")
        if rec.params.get("task") != "binary":
            continue
        if not isinstance(cut, dict) or cut.get("value") is None:  # fitted before runs saved a threshold
            chosen.append(f"{esc(rec.name)}: none saved, so predict applies 0.5 (the most probable class)")
        else:
            chosen.append(f"{esc(rec.name)}: {fmt(cut['value'])}, chosen on {esc(cut.get('chosen_on') or 'validation')} "
                          f"for at most {fmt(cut.get('target_fpr'), 'pct')} of {esc(cut.get('negative_class') or 'real')}"
                          f" faces called {esc(cut.get('positive_class') or rec.params.get('positive_class'))}")
    if not chosen:
        return ""
    return ('<p class="muted" id="decision-threshold">The <b>decision threshold</b> is the probability of '
            "the positive class (fake) at or above which a binary run calls a face that class. "
            "<code>embedlab fit</code> chose it on the validation set for a stated false-positive rate on reals "
            "(<code>--target-fpr</code>) and saved it with the run; it is the threshold "
            "<b><code>embedlab predict</code> applies</b> (unless given <code>--threshold</code>), the one behind "
            "the accuracies on real and generated faces and the mistakes below. Test accuracy, AUC and the "
            "confusion matrices count the most probable class, as the run's metrics.json does. "
            + "; ".join(chosen) + ".</p>")


def _per_class(ctx: Context) -> str:
    """Per-class accuracy, real against generated faces, for each multiclass run."""
    frame = analysis.per_class_accuracy(ctx.records, ctx.generated)
    figs = [ctx.page.figure(analysis.plot_per_class_accuracy(
        part, order=analysis.EMOTIONS, title=f"Accuracy per class, real and generated faces: {run}"))
        for run, part in frame.groupby("run", sort=False) if part["origin"].nunique() > 1]
    if not figs:
        return ""
    return ("<h3>Accuracy per emotion, real and generated faces</h3><p class=\"muted\">Over the test and "
            "evaluation sets: which classes a model trained on real faces still recognises on generated ones "
            "(bars show 95% Wilson intervals; n is the number of faces).</p>" + f'<div class="grid">{"".join(figs)}</div>')


def _origin_gap(ctx: Context) -> str:
    """Per multiclass run, the real and the generated confusion matrix side by side, and which classes
    lose most from real to generated faces."""
    parts = []
    for item in analysis.origin_confusions(ctx.records, ctx.generated):
        fig = analysis.plot_confusion_pair(item["labels"], item["predicted"], item["real"], item["generated"],
                                           title=f"Real against generated faces: {item['run']}")
        rows = [{**r, "real_ci": [r["real_ci_low"], r["real_ci_high"]],
                 "generated_ci": [r["generated_ci_low"], r["generated_ci_high"]],
                 "drop_ci": [r["drop_ci_low"], r["drop_ci_high"]]} for r in item["gap"].to_dict("records")]
        parts.append(ctx.page.figure(fig) + html_table(rows, [
            ("label", "class", ""), ("n_real", "real faces", "int"), ("recall_real", "recall, real", "pct"),
            ("real_ci", "95% CI", "ci"), ("n_generated", "generated faces", "int"),
            ("recall_generated", "recall, generated", "pct"), ("generated_ci", "95% CI", "ci"),
            ("drop", "drop", "pct"), ("drop_ci", "95% CI", "ci")],
            caption=f"{item['run']}: recall drop per class, the classes that lose most first"))
    if not parts:
        return ""
    return ("<h3>Real against generated faces, per class</h3><p class=\"muted\">The same model's confusion "
            "matrices on real and on generated faces, over the classes the generated faces hold (rows) and the "
            "model's own choices (columns), normalised per row. Recall intervals are Wilson 95% intervals; the "
            "drop's is Newcombe's interval for a difference of two proportions.</p>" + "".join(parts))


def _detection(ctx: Context) -> str:
    """ROC and precision-recall per held-out set (``--eval-on`` sets included), and the TPR at 1% FPR."""
    curves: dict[str, dict[str, dict]] = {}
    for rec in ctx.records:
        for set_name, c in analysis.detection_curves(rec).items():
            curves.setdefault(set_name, {})[rec.name] = c
    if not curves:
        return ""
    grid = []
    for set_name, per_run in curves.items():
        roc = {n: (c["fpr"], c["tpr"], f"(AUC {fmt(c['auc'])}, TPR {fmt(c['tpr_at_fpr'], 'pct')} at "
                                       f"{c['target_fpr']:.0%} FPR)") for n, c in per_run.items()}
        against = {c["negatives"] for c in per_run.values()} - {set_name}
        suffix = f" (reals of {', '.join(sorted(against))})" if against else ""
        fig = analysis.plot_roc(roc, title=f"ROC · {set_name}{suffix}")
        target = next(iter(per_run.values()))["target_fpr"]
        fig.add_vline(x=target, line={"dash": "dot", "color": "#888", "width": 1})
        grid.append(ctx.page.figure(fig))
        pr = {n: (c["recall"], c["precision"], f"(AP {fmt(c['ap'])})") for n, c in per_run.items() if len(c["recall"])}
        if pr:
            grid.append(ctx.page.figure(analysis.plot_pr(pr, title=f"Precision-recall · {set_name}{suffix}")))
    table = analysis.detection_table(ctx.records)
    rows = table.assign(negatives=[n if n != s else "same set" for n, s in zip(table["negatives"], table["set"])])
    target = f"{analysis.TARGET_FPR:.0%}"
    return ("<h3>ROC and precision-recall curves</h3><p class=\"muted\">Every held-out set, the "
            "<code>--eval-on</code> sets included; a set that holds only fakes is ranked against the reals of "
            f"the test set. The dotted line marks {target} of reals called fake. The <i>threshold giving it "
            f"here</i> is read off each set after the fact, the one that lets through at most {target} of that "
            "set's reals, to compare detectors at the same false-positive rate; <code>predict</code> does not "
            'apply it: it applies the run\'s <a href="#decision-threshold">decision threshold</a>, chosen '
            "beforehand on validation (Model comparison).</p>"
            + f'<div class="grid">{"".join(grid)}</div>'
            + html_table(rows.to_dict("records"), [
                ("run", "run", ""), ("set", "set", ""), ("negatives", "reals from", ""),
                ("n_pos", "fakes", "int"), ("n_neg", "reals", "int"), ("auc", "ROC AUC", "f"),
                ("ap", "average precision", "f"), ("tpr_at_fpr", f"TPR at {target} FPR", "pct"),
                ("threshold", "threshold giving it here (not the one predict applies)", "f")],
                caption=f"Fakes caught when at most {target} of reals are called fake"))


def _calibration(ctx: Context) -> str:
    """Reliability curves per held-out set across binary runs, with their Brier scores."""
    curves: dict[str, dict[str, dict]] = {}
    for rec in ctx.records:
        for set_name, s in rec.sets.items():
            if s.get("role") in ("test", "eval") and (s.get("reliability") or {}).get("predicted"):
                curves.setdefault(set_name, {})[rec.name] = s
    if not curves:
        return ""
    figs = [ctx.page.figure(analysis.plot_reliability(per_run, title=f"Reliability · {set_name}"))
            for set_name, per_run in curves.items()]
    return ("<h3>Calibration</h3><p class=\"muted\">Can the probabilities be read as probabilities? Images are "
            "binned by their predicted probability of fake; a calibrated model's bins lie on the diagonal. "
            "The Brier score is the mean squared error of that probability (0 is perfect, 0.25 is a coin "
            "at 0.5).</p>" + f'<div class="grid">{"".join(figs)}</div>')


def _sources(ctx: Context) -> str:
    """Per-source figures of held-out sets, and the trained-on x scored-on matrix."""
    matrix = analysis.source_matrix(ctx.records)
    if matrix.empty:
        return ""
    parts = ["<h3>Sources of fakes</h3><p class=\"muted\">Each source's fakes against all the reals of the test "
             "set: ROC AUC, and recall at the run's decision threshold (chosen on validation for a stated "
             "false-positive rate on reals). A run fitted with <code>--leave-out SOURCE</code> never saw that "
             "source: its cell, marked <i>unseen</i>, says how the detector does on a generator it has not met."
             "</p>"]
    if matrix["scored_on"].nunique() > 1 or matrix["unseen"].any():
        parts.append(ctx.page.figure(analysis.plot_source_matrix(matrix)))
    rows = matrix.assign(unseen=matrix["unseen"].map({True: "yes", False: ""})).to_dict("records")
    parts.append(html_table(rows, [("run", "run", ""), ("trained_on", "trained on", ""),
                                   ("scored_on", "scored on", ""), ("n", "fakes", "int"), ("auc", "ROC AUC", "f"),
                                   ("recall", "recall at threshold", "pct"), ("unseen", "unseen", "")],
                            caption="Per source of fakes, test set"))
    return "".join(parts)


def _learning(ctx: Context) -> str:
    """Learning curves of the recipes trained at several sizes, and whether more data would pay."""
    curves = analysis.learning_curves(ctx.records)
    if curves.empty:
        return ""
    figs = [ctx.page.figure(analysis.plot_learning_curves(part, title=f"Learning curve: {recipe}"))
            for recipe, part in curves.groupby("recipe", sort=False)]
    rows = [{**r, "ci": None if np.isnan(r["ci_low"]) else [r["ci_low"], r["ci_high"]]}
            for r in curves.to_dict("records")]
    return ("<h3>Learning curves</h3><p class=\"muted\">Runs of one recipe (model, features and parameters) "
            "that differ only in how many training images they saw, scored on the same test set: the "
            "in-distribution curve is the test AUC (accuracy for emotions), a <i>left out</i> curve the AUC on "
            "the source those runs never saw. " + esc(analysis.more_data_sentence(curves)) + "</p>"
            + f'<div class="grid">{"".join(figs)}</div>'
            + html_table(rows, [("recipe", "recipe", ""), ("curve", "curve", ""), ("n_train", "training images", "int"),
                                ("share", "share", "pct"), ("metric", "metric", ""), ("value", "value", "f"),
                                ("ci", "95% CI", "ci3"), ("run", "run", "")], caption="Learning curves, test set"))


def _acc_cell(row: dict, origin: str) -> str:
    acc = row.get(f"{origin}_accuracy")
    if acc is None or (isinstance(acc, float) and np.isnan(acc)):
        return "–"
    return f"{acc:.1%} (n={row.get(f'{origin}_n', 0):,}) {fmt(row.get(f'{origin}_ci'), 'ci')}"


# -- hover data ---------------------------------------------------------------------
@dataclass
class ThumbnailBudget:
    """How much of the page the hover thumbnails may take, and at most how many there are."""

    megabytes: float = 15.0
    max_count: int | None = None

    def describe(self, n_thumbs: int, n_points: int, used_bytes: int) -> str:
        every = "every plotted point" if n_thumbs >= n_points else f"{n_thumbs:,} of {n_points:,} plotted points"
        return (f"Hover thumbnails for {every} ({used_bytes / 1e6:.1f} MB of a {self.megabytes:g} MB size budget"
                + (f", at most {self.max_count:,}" if self.max_count is not None else "")
                + "; set with --thumbnail-budget MB).")


def points_data(ctx: Context, budget: ThumbnailBudget) -> dict[str, Any]:
    """The table the hover card reads: per row indices into small lists, paths, and thumbnails."""
    t = ctx.table
    roots = []
    for name in ctx.names:
        sub = [tb for nm, tb in zip(ctx.names, ctx.tables) if nm == name][0]
        roots.append(os.path.abspath(str(sub.attrs.get("root", ""))))
    d_index = {n: i for i, n in enumerate(ctx.names)}
    dataset = t["dataset"].map(d_index).to_numpy()
    rel = []
    for p, d in zip(t["path"].astype(str), dataset):
        full = os.path.abspath(p)
        root = roots[d]
        rel.append(full[len(root) + 1:] if root and full.startswith(root + os.sep) else full)
    labels, label_idx = _codes(t["label"])
    splits, split_idx = _codes(t["split"].fillna(""))
    order = thumbnail_order(ctx)
    picked = order if budget.max_count is None else order[:max(0, budget.max_count)]
    hashes = t["hash"].astype(str).to_numpy() if "hash" in t else t["path"].astype(str).to_numpy()
    thumbs, used = budgeted_thumbnails(((int(i), str(t.at[int(i), "path"]), hashes[int(i)]) for i in picked),
                                       int(budget.megabytes * 1e6))
    return {"datasets": ctx.names, "roots": roots, "dataset": dataset.tolist(), "rel": rel,
            "labels": labels, "label": label_idx, "splits": splits, "split": split_idx,
            "thumbs": thumbs, "n_thumbs": len(thumbs), "n_points": int(len(order)), "thumb_bytes": used,
            "budget_note": budget.describe(len(thumbs), len(order), used)}


def _codes(values: pd.Series) -> tuple[list[str], list[int]]:
    codes, uniques = pd.factorize(values.astype(str))
    return [str(u) for u in uniques], codes.tolist()


def thumbnail_order(ctx: Context) -> np.ndarray:
    """The plotted rows in the order they get a hover thumbnail: round robin over dataset x label."""
    if not len(ctx.table):
        return np.empty(0, dtype=np.int64)
    rows = np.flatnonzero(ctx.ok) if ctx.X is not None else np.arange(len(ctx.table))
    groups = (ctx.table.loc[rows, "dataset"] + "/" + ctx.table.loc[rows, "label"].astype(str)).to_numpy()
    return rows[stratified_order(groups, seed=ctx.seed)]
