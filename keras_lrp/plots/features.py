"""Bar charts of relevance for tabular inputs (N, F): one panel per sample, positive bars red,
negative blue (:func:`plot_features`; :func:`keras_lrp.plots.heatmap.plot_comparison` groups
two variants' bars)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from keras_lrp.plots.figures import BLUE, RED, new_figure, save_figure


def _tabular(relevance, what: str) -> np.ndarray:
    r = np.asarray(relevance, dtype=np.float64)
    r = r[None] if r.ndim == 1 else r
    if r.ndim != 2:
        raise ValueError(f"{what} expects tabular relevance of shape (N, F) or (F,); got shape "
                         f"{np.shape(relevance)}. Use plot_grid for images.")
    return r


def _bar_figure(series: Sequence[Tuple[np.ndarray, Optional[str]]], feature_names, titles,
                legend: Optional[Sequence[str]], path, dpi) -> Figure:
    """One bar panel per sample; each series (N, F) a bar group member, red ≥ 0, blue < 0."""
    n, f = series[0][0].shape
    if feature_names is not None and len(feature_names) != f:
        raise ValueError(f"feature_names has {len(feature_names)} entries for {f} features.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} samples.")
    names = [str(s) for s in feature_names] if feature_names is not None else [
        f"x{i}" for i in range(f)]
    width = 0.8 / len(series)
    fig = new_figure(max(4.0, 0.4 * len(series) * f + 1.5), 2.5 * max(n, 1),
                      layout="constrained")
    for i, ax in enumerate(fig.subplots(max(n, 1), 1, squeeze=False)[:n, 0]):
        for j, (values, hatch) in enumerate(series):
            ax.bar(np.arange(f) + (j - (len(series) - 1) / 2) * width, values[i], width=width,
                   hatch=hatch, edgecolor="white" if hatch else None,
                   color=[RED if v >= 0 else BLUE for v in values[i]])
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(f), names, rotation=45 if f > 8 else 0, fontsize=8)
        ax.set_ylabel("relevance", fontsize=8)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
        if legend is not None:
            ax.legend(handles=[Patch(facecolor="lightgrey", hatch=h, label=str(label))
                               for label, (_, h) in zip(legend, series)], fontsize=7)
    if path is not None:
        save_figure(fig, path, dpi)
    return fig


def plot_features(relevance, feature_names: Optional[Sequence[str]] = None,
                  path: Optional[str] = None, titles: Optional[Sequence[str]] = None,
                  dpi: int = 100) -> Figure:
    """Bar charts of feature relevance for tabular inputs, one panel per sample.

    Args:
        relevance: (N, F) or (F,) relevance.
        feature_names: F names for the x axis (default ``x0 … x{F-1}``).
        path: save the figure there as a PNG (atomically) when given.
        titles: optional N panel titles.
        dpi: PNG resolution.

    Returns:
        The figure; positive bars are pure red, negative ones pure blue.

    Example:
        >>> plot_features(analyzer.analyze(x_tab[:3]), feature_names=columns, path="bars.png")
    """
    r = _tabular(relevance, "plot_features")
    return _bar_figure([(r, None)], feature_names, titles, None, path, dpi)
