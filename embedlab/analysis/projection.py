"""UMAP projections of feature sets, and how well groups separate.

The picture is for the eye; the numbers come from the original space:
the silhouette of the groups and how often a face's nearest neighbours share
its label (against the rate expected by chance).

>>> import numpy as np
>>> X = np.vstack([np.zeros((20, 4)), np.ones((20, 4))]) + np.random.default_rng(0).normal(0, .1, (40, 4))
>>> s = separation(X, ["a"] * 20 + ["b"] * 20, k=5)
>>> s["knn_agreement"], s["chance"]
(1.0, 0.5)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.figures import base_layout, colours_for, plain
from embedlab.core.errors import EmbedlabError


@dataclass
class Projection:
    """A 2-d embedding of ``n`` vectors and the parameters that made it."""

    embedding: np.ndarray                      # (n, 2) float32
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        """The parameters as one line, for the figure."""
        p = self.params
        return (f"UMAP n_neighbors={p.get('n_neighbors')}, min_dist={p.get('min_dist')}, "
                f"metric={p.get('metric')}, seed={p.get('seed')}, {len(self.embedding):,} points")


def import_umap():
    """``umap``, with every numba kernel of umap-learn and pynndescent compiled once per machine.

    Most of umap-learn's kernels (and some of pynndescent's) are compiled without numba's disk
    cache, so every new process spent 12-15 s compiling them before its first projection, whatever
    the number of points. Enabling the cache on them keeps the machine code numba compiled next to
    the package (numba's own cache, keyed by the source files): the same code, loaded in well under
    a second after the first time.
    """
    import sys

    import umap
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in ("umap", "pynndescent"):
            continue
        for kernel in list(vars(module).values()):
            if isinstance(kernel, CPUDispatcher) and isinstance(getattr(kernel, "_cache", None), NullCache):
                kernel.enable_caching()
    return umap


def project(X: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "euclidean",
            seed: int = 0) -> Projection:
    """UMAP of the rows of ``X`` to 2-d, reproducible for a given ``seed``.

    A fixed seed makes umap-learn run single-threaded, which is what makes
    two runs give the same picture. Rows must be finite.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) < 4:
        raise EmbedlabError(f"project needs at least 4 vectors in a 2-d array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise EmbedlabError("project: X holds NaN or infinite values; keep only rows whose features are ok")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba/umap chatter (e.g. n_jobs overridden by random_state)
        umap = import_umap()
        k = int(max(2, min(n_neighbors, len(X) - 1)))
        started = time.perf_counter()
        reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, metric=metric, random_state=seed,
                            n_components=2, init="spectral" if len(X) > k + 2 else "random")
        embedding = reducer.fit_transform(X)
    params = {"n_neighbors": k, "min_dist": min_dist, "metric": metric, "seed": seed,
              "umap_version": umap.__version__}
    return Projection(np.asarray(embedding, dtype=np.float32), params, time.perf_counter() - started)


def _subsample(n: int, max_points: int | None, seed: int) -> np.ndarray:
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def separation(X: np.ndarray, labels: Sequence[Any], *, k: int = 10, max_points: int | None = 5000,
               seed: int = 0) -> dict[str, float]:
    """How well ``labels`` separate in the space of ``X`` (not in the projection).

    ``silhouette``: scikit-learn's silhouette score (euclidean) on at most
    ``max_points`` rows. ``knn_agreement``: over those rows, the share of
    their ``k`` nearest neighbours (among all rows, itself excluded) with the
    same label; ``chance`` is that share expected for labels at random (the
    sum of squared label frequencies).
    """
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float32)
    labels = pd.Series(list(labels), dtype=object).astype(str).to_numpy()
    if len(X) != len(labels):
        raise EmbedlabError(f"separation: {len(X)} vectors but {len(labels)} labels")
    kinds = np.unique(labels)
    if len(kinds) < 2 or len(X) < 3:
        raise EmbedlabError("separation needs at least two labels and three vectors")
    k = int(min(k, len(X) - 1))
    rows = _subsample(len(X), max_points, seed)
    sil = float(silhouette_score(X[rows], labels[rows])) if len(np.unique(labels[rows])) > 1 else float("nan")
    nn = NearestNeighbors(n_neighbors=k + 1).fit(X)
    _, idx = nn.kneighbors(X[rows])
    # drop each query itself (it is usually, not always, first: exact duplicates tie)
    neighbours = np.array([[j for j in r if j != q][:k] for q, r in zip(rows, idx)])
    agreement = float((labels[neighbours] == labels[rows][:, None]).mean())
    freq = pd.Series(labels).value_counts(normalize=True).to_numpy()
    return {"silhouette": sil, "knn_agreement": agreement, "chance": float((freq ** 2).sum()),
            "k": k, "n": int(len(rows)), "labels": int(len(kinds))}


def knn_transfer(X_reference: np.ndarray, y_reference: Sequence[Any], X_query: np.ndarray,
                 y_query: Sequence[Any], *, k: int = 10) -> pd.DataFrame:
    """Where query faces fall among reference faces: one row per query label.

    For the cross-domain view: reference = real FER-2013 faces, query =
    generated portraits. ``agreement`` is the share of a query face's ``k``
    nearest reference faces with the same label; ``accuracy`` the share of
    query faces whose neighbours' majority label is their own;
    ``most_common`` the majority label most often seen for that group.
    """
    from sklearn.neighbors import KNeighborsClassifier

    yr = pd.Series(list(y_reference), dtype=object).astype(str).to_numpy()
    yq = pd.Series(list(y_query), dtype=object).astype(str).to_numpy()
    if len(X_reference) < 1 or len(X_query) < 1:
        raise EmbedlabError("knn_transfer needs reference and query vectors")
    k = int(min(k, len(X_reference)))
    clf = KNeighborsClassifier(n_neighbors=k).fit(np.asarray(X_reference, np.float32), yr)
    _, idx = clf.kneighbors(np.asarray(X_query, np.float32))
    same = (yr[idx] == yq[:, None]).mean(axis=1)
    predicted = clf.predict(np.asarray(X_query, np.float32))
    frame = pd.DataFrame({"label": yq, "agreement": same, "correct": predicted == yq, "predicted": predicted})
    out = frame.groupby("label").agg(n=("agreement", "size"), agreement=("agreement", "mean"),
                                     accuracy=("correct", "mean"),
                                     most_common=("predicted", lambda s: s.value_counts().index[0]))
    freq = pd.Series(yr).value_counts(normalize=True)
    out["chance"] = [float(freq.get(label, 0.0)) for label in out.index]
    return out.reset_index()


_SYMBOLS = (0, 2, 1, 3, 4, 5)  # circle, diamond, square, cross, x, triangle-up


def plot_projection(projection: Projection, colour_by: Mapping[str, Sequence[Any]], *,
                    title: str = "UMAP projection", symbol: Sequence[Any] | None = None,
                    hover: Sequence[str] | None = None, point_ids: Sequence[int] | None = None,
                    note: str = "", order: Mapping[str, Sequence[Any]] | None = None):
    """A WebGL scatter of the projection; returns a Plotly figure.

    ``colour_by`` maps a name (``"label"``, ``"split"``, ``"dataset"``,
    ``"correct"``...) to one value per point; with more than one, buttons
    switch between them. ``symbol`` gives points a marker shape per value
    (rarer values drawn larger, on top of the most common one). ``hover`` is one
    text per point (shown as written); ``point_ids`` are stored as each
    point's ``customdata`` for pages that show their own tooltip. The
    parameters of the projection and ``note`` (one entry per line) are
    written under the title.
    """
    import plotly.graph_objects as go

    emb = projection.embedding
    n = len(emb)
    if not colour_by:
        raise EmbedlabError("plot_projection needs at least one colouring")
    symbols = None
    base = 7.0 if n < 2_000 else 5.0 if n < 10_000 else 3.5  # smaller markers as points crowd
    size = np.full(n, base, dtype=np.float32)
    draw_order = np.arange(n)
    if symbol is not None:
        sym = pd.Series(list(symbol), dtype=object).astype(str).to_numpy()
        kinds = list(pd.Series(sym).value_counts(sort=True).index)  # the most common first
        code = {s: _SYMBOLS[i % len(_SYMBOLS)] for i, s in enumerate(kinds)}
        symbols = np.array([code[s] for s in sym], dtype=np.int8)
        size[sym != kinds[0]] = base * 2
        draw_order = np.argsort(sym != kinds[0], kind="stable")  # rarer kinds last, on top
    ids = np.asarray(point_ids if point_ids is not None else np.arange(n), dtype=np.int32)
    fig = go.Figure()
    buttons = []
    n_traces = []
    for c, (name, values) in enumerate(colour_by.items()):
        vals = pd.Series(list(values), dtype=object).map(lambda v: "(none)" if v is None else str(v)).to_numpy()
        kinds = [str(v) for v in (order or {}).get(name, [])] + sorted(set(vals))
        kinds = list(dict.fromkeys(k for k in kinds if k in set(vals)))
        colours = colours_for(kinds)
        count = 0
        for kind in kinds:
            rows = draw_order[vals[draw_order] == kind]
            marker: dict[str, Any] = {"color": colours[kind], "size": size[rows], "opacity": 0.75,
                                      "line": {"width": 0}}
            if symbols is not None:
                marker["symbol"] = symbols[rows]
            trace = go.Scattergl(
                x=emb[rows, 0], y=emb[rows, 1], mode="markers", marker=marker, customdata=ids[rows],
                name=f"{plain(kind)} ({len(rows):,})", legendgroup=f"{c}", visible=c == 0,
                legendgrouptitle={"text": plain(name)} if count == 0 else None)
            if hover is not None:
                trace.update(hovertext=[plain(hover[i]) for i in rows], hoverinfo="text")
            else:
                trace.update(hoverinfo="none" if point_ids is not None else "name")
            fig.add_trace(trace)
            count += 1
        n_traces.append(count)
    start = 0
    for name, count in zip(colour_by, n_traces):
        visible = [False] * sum(n_traces)
        visible[start:start + count] = [True] * count
        buttons.append({"label": f"colour: {plain(name)}", "method": "restyle", "args": [{"visible": visible}]})
        start += count
    lines = [plain(projection.describe())] + [plain(line) for line in note.splitlines() if line.strip()]
    subtitle = "<br>".join(lines)
    layout = base_layout(f"{plain(title)}<br><span style='font-size:11px;color:#555'>{subtitle}</span>",
                         xaxis={"title": "UMAP 1", "zeroline": False},
                         yaxis={"title": "UMAP 2", "zeroline": False}, hovermode="closest", height=600)
    layout["margin"] = {"l": 60, "r": 20, "t": 60 + 16 * len(lines), "b": 50}
    layout["legend"] = {"itemsizing": "constant", "x": 1.02, "xanchor": "left", "y": 1.0, "yanchor": "top"}
    if len(buttons) > 1:
        # the colouring buttons sit above the legend, out of the title's way
        # (a button takes about 36 px of the plot's height; the legend starts below the last one)
        plot_height = layout["height"] - layout["margin"]["t"] - layout["margin"]["b"]
        layout["legend"].update(y=max(0.0, 1.0 - (36 * len(buttons) + 12) / plot_height))
        layout["updatemenus"] = [{"type": "buttons", "direction": "down", "buttons": buttons, "showactive": True,
                                  "x": 1.02, "xanchor": "left", "y": 1.0, "yanchor": "top"}]
    fig.update_layout(**layout)
    return fig
