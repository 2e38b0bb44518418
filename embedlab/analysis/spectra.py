"""Mean power spectra per class: where in frequency do real and generated faces differ?

The ``spectrum`` feature is the azimuthally averaged log power spectrum of
the greyscale image (see :mod:`embedlab.features.stats`): value ``k`` is the
power at ``k / size`` cycles per pixel. Generators leave traces at high
frequencies (GAN upsampling), and re-compression or blur removes them; the
mean curve per class shows both.

>>> import numpy as np
>>> m = mean_spectra(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), ["a", "a", "b"], size=4)
>>> m[["group", "frequency", "mean", "n"]].values.tolist()
[['a', 0.0, 2.0, 2], ['a', 0.25, 3.0, 2], ['b', 0.0, 5.0, 1], ['b', 0.25, 6.0, 1]]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from embedlab.analysis.figures import base_layout, colours_for, plain
from embedlab.core.errors import EmbedlabError


def mean_spectra(X: np.ndarray, groups: Sequence[Any], *, size: int) -> pd.DataFrame:
    """Per group and frequency: ``mean`` and ``std`` of the spectra in ``X`` (rows with NaN dropped), and ``n``.

    ``size`` is the side the images were resized to, so that value ``k`` is at
    ``k / size`` cycles per pixel.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(groups):
        raise EmbedlabError(f"mean_spectra needs one spectrum per group value, got {X.shape} and {len(groups)}")
    keep = np.isfinite(X).all(axis=1)
    labels = pd.Series(list(groups), dtype=object).astype(str).to_numpy()[keep]
    X = X[keep]
    frequency = np.arange(X.shape[1]) / float(size)
    parts = []
    for group in pd.unique(labels):
        rows = X[labels == group]
        parts.append(pd.DataFrame({"group": group, "frequency": frequency, "mean": rows.mean(axis=0),
                                   "std": rows.std(axis=0), "n": len(rows)}))
    if not parts:
        return pd.DataFrame(columns=["group", "frequency", "mean", "std", "n"])
    return pd.concat(parts, ignore_index=True)


def plot_mean_spectra(spectra: pd.DataFrame, *, title: str = "Mean power spectrum per class",
                      order: Sequence[str] = (), note: str = ""):
    """One line per group of :func:`mean_spectra` (a band of one standard deviation on hover)."""
    import plotly.graph_objects as go

    groups = list(dict.fromkeys([g for g in order if g in set(spectra["group"])] + list(spectra["group"])))
    colours = colours_for(groups)
    fig = go.Figure()
    for group in groups:
        part = spectra[spectra["group"] == group]
        n = int(part["n"].iloc[0])
        fig.add_trace(go.Scatter(
            x=part["frequency"], y=part["mean"], mode="lines", name=f"{plain(group)} ({n:,})",
            line={"color": colours[group], "width": 2}, customdata=part["std"],
            hovertemplate=f"{plain(group)}<br>%{{x:.3f}} cycles/pixel<br>mean log power %{{y:.2f}} "
                          "± %{customdata:.2f}<extra></extra>"))
    subtitle = f"<br><span style='font-size:11px;color:#555'>{plain(note)}</span>" if note else ""
    fig.update_layout(**base_layout(plain(title) + subtitle, height=420,
                                    xaxis={"title": "spatial frequency (cycles per pixel)"},
                                    yaxis={"title": "mean log power"}))
    return fig
