"""L2 norms of face encodings: do real and generated faces differ in length?

dlib's encodings are not normalised, so their length carries information;
the original study compared it between real and generated faces. Here each
comparison gets two tests (Kolmogorov-Smirnov, Mann-Whitney U), two effect
sizes (Cohen's d, Cliff's delta) and the ROC AUC of the norm used alone as a
detector.

>>> import numpy as np
>>> norms = l2_norms(np.array([[3.0, 4.0], [6.0, 8.0]]))
>>> norms.tolist()
[5.0, 10.0]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.figures import base_layout, colours_for, plain
from embedlab.core.errors import EmbedlabError


def l2_norms(X: np.ndarray) -> np.ndarray:
    """Euclidean length of each row, as ``float64`` (NaN rows stay NaN)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise EmbedlabError(f"l2_norms needs a 2-d array of vectors, got shape {X.shape}")
    return np.sqrt(np.einsum("ij,ij->i", X, X))


def summarize_groups(values: Sequence[float], groups: Sequence[Any]) -> pd.DataFrame:
    """Per group: n, mean, std, min, quartiles, max (NaN values dropped)."""
    frame = pd.DataFrame({"group": pd.Series(list(groups), dtype=object).astype(str),
                          "value": np.asarray(values, dtype=np.float64)}).dropna()
    stats = frame.groupby("group", sort=False)["value"].describe()
    stats = stats.rename(columns={"count": "n", "25%": "q25", "50%": "median", "75%": "q75"})
    stats["n"] = stats["n"].astype(int)
    return stats[["n", "mean", "std", "min", "q25", "median", "q75", "max"]]


def compare_groups(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Two-sample comparison of ``b`` (e.g. generated) against ``a`` (e.g. real).

    Returns ``n_a``, ``n_b``, ``mean_a``, ``mean_b``, ``ks_statistic``,
    ``ks_pvalue`` (two-sided), ``mannwhitney_u`` (U of ``b``),
    ``mannwhitney_pvalue`` (two-sided), ``cohens_d`` (``b`` minus ``a`` over
    the pooled standard deviation), ``cliffs_delta`` and ``auc``: the ROC AUC
    of the value as a score for "is from ``b``", i.e. P(b > a) + P(b = a) / 2.
    An AUC below 0.5 means ``b`` tends to be smaller; ``detector_auc`` is the
    better of the two directions.
    """
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        raise EmbedlabError(f"compare_groups needs at least 2 values per group, got {len(a)} and {len(b)}")
    ks = stats.ks_2samp(b, a)
    mw = stats.mannwhitneyu(b, a, alternative="two-sided")
    auc = float(mw.statistic) / (len(a) * len(b))
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    d = (b.mean() - a.mean()) / pooled if pooled > 0 else float("nan")
    return {
        "n_a": len(a), "n_b": len(b), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
        "ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue),
        "mannwhitney_u": float(mw.statistic), "mannwhitney_pvalue": float(mw.pvalue),
        "cohens_d": float(d), "cliffs_delta": 2.0 * auc - 1.0, "auc": auc,
        "detector_auc": max(auc, 1.0 - auc),
    }


def norm_tests(values: Sequence[float], groups: Sequence[Any],
               pairs: Sequence[tuple[Any, Any]]) -> pd.DataFrame:
    """:func:`compare_groups` for each ``(a, b)`` pair of group names, one row each.

    Pairs with fewer than two values on a side are left out.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = pd.Series(list(groups), dtype=object).astype(str).to_numpy()
    rows = []
    for a, b in pairs:
        va, vb = values[groups == str(a)], values[groups == str(b)]
        if np.isfinite(va).sum() < 2 or np.isfinite(vb).sum() < 2:
            continue
        rows.append({"a": str(a), "b": str(b), **compare_groups(va, vb)})
    return pd.DataFrame(rows)


def dimension_effects(X: np.ndarray, positive: Sequence[bool]) -> pd.DataFrame:
    """How well each dimension alone separates ``positive`` rows from the rest.

    One row per dimension: ``mean_negative``, ``mean_positive``,
    ``cohens_d``, ``auc`` (ROC AUC of the dimension as a score for
    positive), ``pvalue`` (two-sided Mann-Whitney) and ``pvalue_bh``
    (Benjamini-Hochberg adjusted over all dimensions). Sorted by dimension;
    sort by ``abs(cohens_d)`` for the most separating ones.
    """
    from scipy import stats

    X = np.asarray(X, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    keep = ~np.isnan(X).any(axis=1)
    X, positive = X[keep], positive[keep]
    pos, neg = X[positive], X[~positive]
    if len(pos) < 2 or len(neg) < 2:
        raise EmbedlabError(f"dimension_effects needs at least 2 rows per group, got {len(neg)} and {len(pos)}")
    mw = stats.mannwhitneyu(pos, neg, alternative="two-sided", axis=0)
    pooled = np.sqrt(((len(neg) - 1) * neg.var(axis=0, ddof=1) + (len(pos) - 1) * pos.var(axis=0, ddof=1))
                     / (len(neg) + len(pos) - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (pos.mean(axis=0) - neg.mean(axis=0)) / pooled
    pvalues = np.asarray(mw.pvalue, dtype=np.float64)
    finite = np.isfinite(pvalues)
    adjusted = np.full_like(pvalues, np.nan)
    if finite.any():
        adjusted[finite] = stats.false_discovery_control(pvalues[finite])
    return pd.DataFrame({
        "dimension": np.arange(X.shape[1]),
        "mean_negative": neg.mean(axis=0), "mean_positive": pos.mean(axis=0),
        "cohens_d": d, "auc": np.asarray(mw.statistic, dtype=np.float64) / (len(pos) * len(neg)),
        "pvalue": pvalues, "pvalue_bh": adjusted,
    })


def plot_norm_distributions(values: Sequence[float], groups: Sequence[Any], *, title: str = "L2 norm",
                            order: Sequence[Any] | None = None, bins: int = 60):
    """Overlaid density histograms of ``values`` per group; returns a Plotly figure.

    The histograms are binned here, so the figure's size does not grow with
    the number of faces.
    """
    import plotly.graph_objects as go

    values = np.asarray(values, dtype=np.float64)
    groups = pd.Series(list(groups), dtype=object).astype(str).to_numpy()
    ok = np.isfinite(values)
    names = [str(g) for g in (order if order is not None else pd.unique(groups[ok]))]
    if not ok.any():
        raise EmbedlabError("plot_norm_distributions: no finite values")
    edges = np.histogram_bin_edges(values[ok], bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    colours = colours_for(names)
    fig = go.Figure()
    for name in names:
        v = values[ok & (groups == name)]
        if not len(v):
            continue
        density, _ = np.histogram(v, bins=edges, density=True)
        fig.add_trace(go.Bar(
            x=centres.astype(np.float32), y=density.astype(np.float32), width=float(edges[1] - edges[0]),
            name=f"{plain(name)} (n={len(v):,})", marker={"color": colours[name]}, opacity=0.55,
            hovertemplate=f"{plain(name)}<br>norm %{{x:.3f}}<br>density %{{y:.3f}}<extra></extra>"))
    fig.update_layout(**base_layout(plain(title), barmode="overlay", bargap=0,
                                    xaxis_title="L2 norm of the encoding", yaxis_title="density"))
    return fig


def plot_dimension_effects(effects: pd.DataFrame, *, title: str = "Effect size per dimension",
                           top: int = 10):
    """Cohen's d per dimension as bars, the ``top`` largest by magnitude labelled."""
    import plotly.graph_objects as go

    d = effects["cohens_d"].to_numpy(dtype=np.float64)
    order = np.argsort(-np.abs(np.nan_to_num(d)))
    colours = np.where(np.isin(np.arange(len(d)), order[:top]), "#d62728", "#9aa5b1")
    fig = go.Figure(go.Bar(
        x=effects["dimension"].to_numpy(), y=d.astype(np.float32), marker={"color": colours.tolist()},
        customdata=np.stack([effects["auc"].to_numpy(), effects["pvalue_bh"].to_numpy()], axis=1),
        hovertemplate="dimension %{x}<br>Cohen's d %{y:.3f}<br>AUC %{customdata[0]:.3f}"
                      "<br>BH-adjusted p %{customdata[1]:.2g}<extra></extra>"))
    fig.update_layout(**base_layout(plain(title), xaxis_title="dimension", yaxis_title="Cohen's d",
                                    showlegend=False))
    return fig


def plot_norm_boxes(values: Sequence[float], x: Sequence[Any], colour: Sequence[Any], *,
                    title: str = "L2 norm", x_order: Sequence[Any] | None = None,
                    colour_order: Sequence[Any] | None = None, x_title: str = ""):
    """Box plots of ``values`` per ``x`` group, side by side per ``colour`` group."""
    import plotly.graph_objects as go

    values = np.asarray(values, dtype=np.float64)
    xs = pd.Series(list(x), dtype=object).astype(str).to_numpy()
    cs = pd.Series(list(colour), dtype=object).astype(str).to_numpy()
    ok = np.isfinite(values)
    c_names = [str(c) for c in (colour_order or pd.unique(cs[ok])) if (cs[ok] == str(c)).any()]
    x_names = [str(v) for v in (x_order or sorted(set(xs[ok]))) if (xs[ok] == str(v)).any()]
    colours = colours_for(c_names)
    fig = go.Figure()
    for c in c_names:
        sel = ok & (cs == c)
        fig.add_trace(go.Box(x=[plain(v) for v in xs[sel]], y=values[sel].astype(np.float32),
                             name=f"{plain(c)} (n={int(sel.sum()):,})", marker={"color": colours[c]},
                             boxpoints=False, boxmean=True))
    fig.update_layout(**base_layout(plain(title), boxmode="group", yaxis_title="L2 norm of the encoding",
                                    xaxis={"title": plain(x_title), "categoryorder": "array",
                                           "categoryarray": [plain(v) for v in x_names]}))
    return fig
