"""Relevance heatmaps and figures, drawn off-screen with Matplotlib's Agg canvas.

:func:`heatmap` turns relevance into RGB with a colour map symmetric around zero whose pixel
values are exactly known (red = positive, white = zero, blue = negative); :func:`plot_grid`,
:func:`plot_features` and :func:`plot_comparison` lay such maps (or bar charts, for tabular
inputs) out in a figure and save it as a PNG atomically.
"""

from __future__ import annotations

import os
import tempfile
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

NORMALIZE = ("sample", "global", None)
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def _spatial(relevance, reduce_axis: Optional[int] = -1) -> np.ndarray:
    """Relevance as (N, H, W) float64: a channel axis is summed away."""
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim == 4:
        if reduce_axis is None and r.shape[-1] != 1:
            raise ValueError(f"Relevance of shape {r.shape} has {r.shape[-1]} channels and "
                             "reduce_axis=None; pass reduce_axis=-1 (channels last) or 1 "
                             "(channels first) to sum them.")
        reduce_axis = -1 if reduce_axis is None else reduce_axis
        if reduce_axis % 4 == 0:
            raise ValueError(f"reduce_axis={reduce_axis} is the batch axis of relevance of shape "
                             f"{r.shape}; use -1 (channels last) or 1 (channels first).")
        r = r.sum(axis=reduce_axis)
    if r.ndim != 3:
        raise ValueError(f"Expected image relevance of shape (N, H, W) or (N, H, W, C); got shape "
                         f"{r.shape}. Add a batch axis with r[None] for one image; use "
                         "plot_features for tabular (N, F) relevance.")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"Relevance of shape {r.shape} holds {np.sum(~np.isfinite(r))} NaN or "
                         "infinite values; check the analyzer (e.g. a stabiliser epsilon of 0).")
    return r


def heatmap(relevance, reduce_axis: Optional[int] = -1, normalize: Optional[str] = "sample",
            cmap: str = "bwr") -> np.ndarray:
    """RGB heatmaps of relevance, with a colour map symmetric around zero.

    Args:
        relevance: (N, H, W) or (N, H, W, C) relevance. A channel axis is summed away.
        reduce_axis: the channel axis of 4-D relevance (-1 channels last, 1 channels first);
            ``None`` accepts only a single channel.
        normalize: ``"sample"`` (each sample by its own max |R|), ``"global"`` (one max |R|
            over the batch) or ``None`` (values used as they are, clipped to [-1, 1]).
        cmap: ``"bwr"`` (the exact map below) or any Matplotlib colour map name, fed t/2 + 1/2.

    Returns:
        Float64 array of shape (N, H, W, 3) with values in [0, 1].

    Formula:
        t = clip(R / max|R|, -1, 1)   (max over the sample, the batch, or 1)
        colour(t) = (1, 1 − t, 1 − t)        for t ≥ 0   (0 → white, 1 → pure red)
        colour(t) = (1 − |t|, 1 − |t|, 1)    for t < 0   (−1 → pure blue)
        An all-zero sample (max|R| = 0) is all white.

    Example:
        >>> rgb = heatmap(analyzer.analyze(x))          # (N, H, W, 3)
    """
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}; got {normalize!r}.")
    r = _spatial(relevance, reduce_axis)
    if normalize == "sample":
        scale = np.abs(r).max(axis=(1, 2), keepdims=True)
    else:  # one scale: the batch's max |R| ("global") or 1 (None)
        scale = np.asarray(np.abs(r).max() if normalize and r.size else 1.0)
    t = np.divide(r, scale, out=np.zeros_like(r), where=np.broadcast_to(scale > 0, r.shape))
    t = np.clip(t, -1.0, 1.0)
    if cmap == "bwr":
        pos, neg = np.clip(t, 0.0, 1.0), np.clip(-t, 0.0, 1.0)
        return np.stack([1.0 - neg, 1.0 - pos - neg, 1.0 - pos], axis=-1)
    try:
        colour_map = colormaps[cmap]
    except KeyError:
        raise ValueError(f"Unknown colour map {cmap!r}; use 'bwr' (exact) or a Matplotlib name "
                         "such as 'coolwarm' or 'seismic'.") from None
    return np.asarray(colour_map((t + 1.0) / 2.0), dtype=np.float64)[..., :3]


def _unit(x: np.ndarray, axes: tuple) -> np.ndarray:
    """Min–max scale each sample to [0, 1] (a constant sample becomes 0.5)."""
    low = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - low
    return np.divide(x - low, span, out=np.full_like(x, 0.5),
                     where=np.broadcast_to(span > 0, x.shape))


def _grey(inputs) -> np.ndarray:
    """(N, H, W) grey version of images (luminance or channel mean), scaled to [0, 1]."""
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim == 4:
        x = x @ np.array([0.299, 0.587, 0.114]) if x.shape[-1] == 3 else x.mean(axis=-1)
    if x.ndim != 3:
        raise ValueError(f"Expected images of shape (N, H, W) or (N, H, W, C); got shape "
                         f"{np.shape(inputs)}.")
    return _unit(x, (1, 2))


def overlay(relevance_rgb, inputs, alpha: float = 0.5) -> np.ndarray:
    """Blend RGB heatmaps onto a grey version of the inputs.

    Args:
        relevance_rgb: (N, H, W, 3) output of :func:`heatmap`.
        inputs: (N, H, W) or (N, H, W, C) images (any range; each is scaled to [0, 1]).
        alpha: weight of the heatmap, in [0, 1].

    Returns:
        (N, H, W, 3) float64 RGB in [0, 1].

    Formula:
        out = α · heatmap + (1 − α) · grey(x),   grey = luminance (C = 3) or channel mean,
        min–max scaled per sample.

    Example:
        >>> blended = overlay(heatmap(relevance), x, alpha=0.6)
    """
    rgb = np.asarray(relevance_rgb, dtype=np.float64)
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"relevance_rgb must have shape (N, H, W, 3) (the output of heatmap); "
                         f"got shape {rgb.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}.")
    grey = _grey(inputs)
    if grey.shape != rgb.shape[:3]:
        raise ValueError(f"inputs of shape {np.shape(inputs)} do not match heatmaps of shape "
                         f"{rgb.shape}; both need the same (N, H, W).")
    return alpha * rgb + (1.0 - alpha) * grey[..., None]


_overlay = overlay  # plot_grid's ``overlay`` flag shadows the function


def save_figure(fig: Figure, path: str, dpi: int = 100) -> None:
    """Save ``fig`` as a PNG atomically: a temp file in the same folder, then os.replace.

    Args:
        fig: the figure.
        path: the PNG's path; its folder must exist.
        dpi: dots per inch (the PNG is figure size × dpi pixels).
    """
    write_atomically(path, lambda handle: fig.savefig(handle, format="png", dpi=dpi))


def write_atomically(path, write) -> None:
    """Call ``write(handle)`` on a binary temp file in ``path``'s folder, then move it onto
    ``path``: a reader never sees a half-written file, and a failure leaves none behind.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Folder {folder!r} for {path!r} does not exist; create it.")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private (0600); ours are not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _new_figure(width: float, height: float, **kwargs) -> Figure:
    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def plot_grid(columns: Mapping[str, np.ndarray], inputs=None,
              row_titles: Optional[Sequence[str]] = None, path: Optional[str] = None,
              overlay: bool = False, dpi: int = 100, normalize: Optional[str] = "sample",
              cell_size: float = 2.0) -> Figure:
    """Heatmaps in a grid: one row per sample, one column per analyzer.

    Args:
        columns: analyzer name → (N, H, W[, C]) relevance; the name is the column title.
        inputs: optional (N, H, W[, C]) images, shown as the first column.
        row_titles: optional N labels, one per row.
        path: save the figure there as a PNG (atomically) when given.
        overlay: blend each heatmap onto the grey input (needs ``inputs``).
        dpi: PNG resolution.
        normalize: passed to :func:`heatmap`.
        cell_size: width and height of one cell, in inches.

    Returns:
        The Matplotlib figure (not registered with pyplot; nothing is shown).

    Example:
        >>> plot_grid({a.name: a.analyze(x) for a in analyzers}, inputs=x, path="grid.png")
    """
    if not columns:
        raise ValueError("plot_grid needs at least one column, e.g. {'lrp.epsilon': relevance}.")
    maps: Dict[str, np.ndarray] = {str(k): heatmap(v, normalize=normalize)
                                   for k, v in columns.items()}
    shapes = {k: v.shape[:3] for k, v in maps.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"All columns need the same (N, H, W); got {shapes}.")
    n, h, w = next(iter(shapes.values()))
    if n == 0:
        raise ValueError(f"plot_grid got relevance with no samples: (N, H, W) = {(n, h, w)}.")
    if inputs is not None and np.shape(inputs)[:3] != (n, h, w):
        raise ValueError(f"inputs of shape {np.shape(inputs)} do not match relevance of "
                         f"(N, H, W) = {(n, h, w)}.")
    if overlay:
        if inputs is None:
            raise ValueError("overlay=True needs inputs=... to blend the heatmaps onto.")
        maps = {k: _overlay(v, inputs) for k, v in maps.items()}
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles has {len(row_titles)} entries for {n} rows (samples).")
    ncols = len(maps) + (inputs is not None)
    fig = _new_figure(ncols * cell_size, n * cell_size + 0.4)
    axes = fig.subplots(n, ncols, squeeze=False)
    fig.subplots_adjust(left=0.02 + 0.1 / ncols * (row_titles is not None), right=0.98,
                        bottom=0.02, top=1.0 - 0.4 / (n * cell_size + 0.4), wspace=0.05,
                        hspace=0.05)
    images = [(name, m, None) for name, m in maps.items()]
    if inputs is not None:
        x = np.asarray(inputs, dtype=np.float64)
        rgb = x.ndim == 4 and x.shape[-1] == 3
        images.insert(0, ("input", _unit(x, (1, 2, 3)) if rgb else _grey(x), None if rgb
                                                                             else "gray"))
    for j, (title, stack, cmap) in enumerate(images):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(stack[i], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set(xticks=[], yticks=[])
            if i == 0:
                ax.set_title(title, fontsize=9 if len(title) <= 22 else 7)
            if j == 0 and row_titles is not None:
                ax.set_ylabel(str(row_titles[i]), fontsize=9)
    if path is not None:
        save_figure(fig, path, dpi)
    return fig


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
    fig = _new_figure(max(4.0, 0.4 * len(series) * f + 1.5), 2.5 * max(n, 1),
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


def plot_comparison(with_bias, ignore_bias, inputs=None, names: Sequence[str] = ("bias", "IB"),
                    path: Optional[str] = None, feature_names: Optional[Sequence[str]] = None,
                    dpi: int = 100) -> Figure:
    """The bias-included and ignore-bias (IB) variants of one rule, side by side.

    Images get heatmaps sharing one scale per sample (so a variant's weaker relevance looks
    weaker); tabular (N, F) relevance gets grouped bars (the IB bars hatched).

    Args:
        with_bias: relevance of the variant with biases, (N, H, W[, C]) or (N, F).
        ignore_bias: relevance of the IB variant, the same shape.
        inputs: optional images for an input column (images only).
        names: the two column / legend labels.
        path: save the figure there as a PNG (atomically) when given.
        feature_names: F names for tabular relevance.
        dpi: PNG resolution.

    Returns:
        The figure.

    Formula:
        images: t = R / max(max|R_bias|, max|R_IB|) per sample, then the :func:`heatmap` map.

    Example:
        >>> plot_comparison(eps.analyze(x), eps_ib.analyze(x), inputs=x, path="ib.png")
    """
    a, b = np.asarray(with_bias, dtype=np.float64), np.asarray(ignore_bias, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"with_bias has shape {a.shape} but ignore_bias has shape {b.shape}; "
                         "explain the same inputs with both variants.")
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different labels; got {tuple(names)!r}.")
    if a.ndim in (3, 4):
        a, b = _spatial(a), _spatial(b)
        scale = np.maximum(np.abs(a).max(axis=(1, 2), keepdims=True),
                           np.abs(b).max(axis=(1, 2), keepdims=True))
        scale = np.where(scale > 0, scale, 1.0)
        return plot_grid({names[0]: a / scale, names[1]: b / scale}, inputs=inputs, path=path,
                         dpi=dpi, normalize=None)
    a, b = _tabular(a, "plot_comparison"), _tabular(b, "plot_comparison")
    return _bar_figure([(a, None), (b, "//")], feature_names, None, names, path, dpi)
