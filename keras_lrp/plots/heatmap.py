"""Relevance heatmaps and figures, drawn off-screen with Matplotlib's Agg canvas.

:func:`heatmap` turns relevance into RGB with a colour map symmetric around zero whose pixel
values are exactly known (red = positive, white = zero, blue = negative); :func:`plot_grid`,
:func:`plot_features` and :func:`plot_comparison` lay such maps (or bar charts, for tabular
inputs) out in a figure and save it as a PNG atomically. Heatmap figures state their colour
scale: a colour bar of the exact map labelled with what its t is, and per-panel captions of
the max |R| the colours are divided by.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure

from keras_lrp.plots.features import _bar_figure, _tabular, plot_features  # noqa: F401
from keras_lrp.plots.figures import BLUE, RED, new_figure, save_figure  # noqa: F401

NORMALIZE = ("sample", "global", None)


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


#: The colour bar's label for each ``normalize`` of :func:`plot_grid`: what its t means.
SCALE_LABELS = {"sample": "R / max|R| of each panel", "global": "R / max|R| of the batch",
                None: "R (clipped to [-1, 1])"}
SHARED_LABEL = "R / max|R| shared by the row"  #: the colour bar's label in plot_comparison
_TOP, _CAPTION, _BAR = 0.4, 0.16, 0.45  # inches: title band, caption band, colour-bar strip
_TITLE = 0.3  # inches: the band of plot_grid's ``title`` line, above the column titles


def _bwr_colormap(n: int = 255) -> ListedColormap:
    """:func:`heatmap`'s own "bwr" map as a colour map for t in [-1, 1]: each of the ``n`` bins
    has heatmap's colour at the bin's centre."""
    t = (2.0 * np.arange(n) + 1.0) / n - 1.0
    return ListedColormap(heatmap(t[None, None, :], normalize=None)[0, 0], name="heatmap_bwr")


def _captions(spatial: Dict[str, np.ndarray], normalize, scales, n: int) -> Dict[str, list]:
    """Per column, the N captions under its panels (None: no caption)."""
    if scales is not None:
        if normalize is not None:
            raise ValueError(f"scales are the scales the relevance was already divided by; "
                             f"pass normalize=None with them, not {normalize!r}.")
        s = np.asarray(scales, dtype=np.float64).reshape(-1)
        if s.shape != (n,) or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError(f"scales needs {n} finite values >= 0, one per row; got "
                             f"{np.array2string(s, threshold=8)}.")
        return {k: [f"max|R| {v:.3g}" for v in s] for k in spatial}
    if normalize == "sample":
        return {k: [f"max|R| {v:.3g}" for v in np.abs(r).max(axis=(1, 2))]
                for k, r in spatial.items()}
    if normalize == "global":  # once per column, under its last row
        return {k: [None] * (n - 1) + [f"batch max|R| {np.abs(r).max():.3g}"]
                for k, r in spatial.items()}
    return {k: [None] * n for k in spatial}


def plot_grid(columns: Mapping[str, np.ndarray], inputs=None,
              row_titles: Optional[Sequence[str]] = None, path: Optional[str] = None,
              overlay: bool = False, dpi: int = 100, normalize: Optional[str] = "sample",
              cell_size: float = 2.0, scales: Optional[Sequence[float]] = None,
              scale_label: Optional[str] = None, bars: Optional[Mapping[str, str]] = None,
              captions: Optional[Mapping[str, Sequence[Optional[str]]]] = None,
              title: Optional[str] = None) -> Figure:
    """Heatmaps in a grid: one row per sample, one column per analyzer, with a colour bar.

    The colour bar, left of the heatmaps (right of the input column), is :func:`heatmap`'s exact
    map for t in [-1, 1], labelled with what t is: ``"R / max|R| of each panel"``, ``"R /
    max|R| of the batch"``, ``"R (clipped to [-1, 1])"`` for "sample", "global", None
    (:data:`SCALE_LABELS`), or ``scale_label``. Captions give the max |R| the colours are
    divided by: ``"max|R| 0.83"`` (``:.3g``) under each heatmap for "sample" (its own) or
    ``scales`` (its row's); ``"batch max|R| 0.83"`` under each column's last one for "global".
    The colour bar is an inset (child) axes of the first heatmap: ``fig.axes`` are the panels.

    Args:
        columns: analyzer name → (N, H, W[, C]) relevance; the name is the column title.
        inputs: optional (N, H, W[, C]) images, shown as the first column.
        row_titles: optional N labels, one per row (e.g. ``"3 → 5"``: true → predicted).
        path: save the figure there as a PNG (atomically) when given.
        overlay: blend each heatmap onto the grey input (needs ``inputs``); the colour bar
            shows the map before blending.
        dpi: PNG resolution.
        normalize: passed to :func:`heatmap`.
        cell_size: inches of figure per column (width) and per row (height, plus 0.4 for the
            titles); the panels shrink to leave room for the colour bar and the captions.
        scales: with ``normalize=None``: the N per-row scales (max |R|) the relevance was
            already divided by; row i's heatmaps are captioned ``f"max|R| {scales[i]:.3g}"``.
        scale_label: the colour bar's label instead of the default for ``normalize``.
        bars: column name → label: a second colour bar (the same map) left of that column, for
            the columns from it on when they are scaled otherwise (e.g. a difference map).
        captions: column name → N captions, instead of the default ones of that column.
        title: a line above the column titles.

    Returns:
        The Matplotlib figure (not registered with pyplot; nothing is shown).

    Example:
        >>> plot_grid({a.name: a.analyze(x) for a in analyzers}, inputs=x, path="grid.png")
    """
    if not columns:
        raise ValueError("plot_grid needs at least one column, e.g. {'lrp.epsilon': relevance}.")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}; got {normalize!r}.")
    spatial = {str(k): _spatial(v) for k, v in columns.items()}
    shapes = {k: v.shape for k, v in spatial.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"All columns need the same (N, H, W); got {shapes}.")
    n, h, w = next(iter(shapes.values()))
    if n == 0:
        raise ValueError(f"plot_grid got relevance with no samples: (N, H, W) = {(n, h, w)}.")
    if inputs is not None and np.shape(inputs)[:3] != (n, h, w):
        raise ValueError(f"inputs of shape {np.shape(inputs)} do not match relevance of "
                         f"(N, H, W) = {(n, h, w)}.")
    maps = {k: heatmap(v, normalize=normalize) for k, v in spatial.items()}
    if overlay:
        if inputs is None:
            raise ValueError("overlay=True needs inputs=... to blend the heatmaps onto.")
        maps = {k: _overlay(v, inputs) for k, v in maps.items()}
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles has {len(row_titles)} entries for {n} rows (samples).")
    defaults = _captions(spatial, normalize, scales, n)
    for name, caps in (captions or {}).items():
        if name not in defaults or len(caps) != n:
            raise ValueError(f"captions[{name!r}] must be {n} captions of a column of "
                             f"{list(defaults)}.")
        defaults[name] = list(caps)
    bars = dict(bars or {})
    if set(bars) - set(spatial):
        raise ValueError(f"bars names columns {sorted(set(bars) - set(spatial))} that are not "
                         f"among {list(spatial)}.")
    images = [(name, m, None, defaults[name]) for name, m in maps.items()]
    if inputs is not None:
        x = np.asarray(inputs, dtype=np.float64)
        rgb = x.ndim == 4 and x.shape[-1] == 3
        images.insert(0, ("input", _unit(x, (1, 2, 3)) if rgb else _grey(x),
                          None if rgb else "gray", [None] * n))
    # In inches, left to right: [row titles][input][colour-bar strip][heatmaps][a margin as
    # wide as the strip, which keeps the heatmaps centred]; each row: panel, caption band.
    # Further colour-bar strips sit left of the columns named in ``bars``.
    ni, cols = int(inputs is not None), len(images)
    starts = [ni] + [ni + list(spatial).index(k) for k in bars if list(spatial).index(k) > 0]
    top = _TOP + _TITLE * (title is not None)
    bar = min(_BAR, 0.25 * cell_size)
    width, height = cols * cell_size + (len(starts) - 1) * bar, n * cell_size + top
    strips = len(starts) + 1  # and the right-hand margin
    cap = _CAPTION * any(c is not None for *_, caps in images for c in caps)
    left = 0.1 * cell_size * (row_titles is not None)
    pw = max(0.05 * cell_size, min((0.96 * width - left - strips * bar) / (1.05 * cols - 0.05),
                                   (height - top - 0.05 - n * cap) / (1.05 * n - 0.05) * w / h))
    ph = pw * h / w
    x0 = left + (width - left - strips * bar - (1.05 * cols - 0.05) * pw) / 2
    xs = [x0 + j * 1.05 * pw + bar * sum(j >= s for s in starts) for j in range(cols)]
    y0 = top + (height - top - n * (ph + cap) - (n - 1) * 0.05 * ph) / 2
    ys = [y0 + i * (1.05 * ph + cap) for i in range(n)]  # panel tops, from the figure's top
    fig = new_figure(width, height)
    axes = [[fig.add_axes([xs[j] / width, 1 - (ys[i] + ph) / height, pw / width, ph / height])
             for j in range(cols)] for i in range(n)]
    for j, (head, stack, cmap, caps) in enumerate(images):
        for i in range(n):
            ax = axes[i][j]
            ax.imshow(stack[i], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set(xticks=[], yticks=[])
            if i == 0:
                ax.set_title(head, fontsize=9 if len(head) <= 22 else 7)
            if j == 0 and row_titles is not None:  # without inputs: left of the colour bar
                ax.set_ylabel(str(row_titles[i]), fontsize=9, labelpad=4 + 72 * bar * (ni == 0))
            if caps[i] is not None:
                ax.set_xlabel(caps[i], fontsize=7, labelpad=1.5)
    span = ys[-1] + ph - ys[0]
    bar_h = min(span, 4.0)  # centred on the rows
    labels = [SCALE_LABELS[normalize] if scale_label is None else scale_label]
    labels += [bars[k] for k in bars if list(spatial).index(k) > 0]
    if list(spatial)[0] in bars:
        labels[0] = bars[list(spatial)[0]]
    for start, label in zip(starts, labels):
        cax = axes[0][start].inset_axes([(xs[start] - 0.35 * bar) / width,
                                         1 - (ys[0] + (span + bar_h) / 2) / height,
                                         0.22 * bar / width, bar_h / height],
                                        transform=fig.transFigure)
        colorbar = fig.colorbar(ScalarMappable(Normalize(-1.0, 1.0), _bwr_colormap()), cax=cax,
                                ticks=[-1, 0, 1], ticklocation="left")
        colorbar.set_label(label, fontsize=7, labelpad=1)
        cax.tick_params(labelsize=7, length=2, pad=1)
    if title is not None:  # just above the column titles, however the panels are centred
        fig.text(0.5, 1 - (ys[0] - _TOP - 0.5 * _TITLE) / height, title, ha="center",
                 va="center", fontsize=9)
    if path is not None:
        save_figure(fig, path, dpi)
    return fig


def plot_comparison(with_bias, ignore_bias, inputs=None, names: Sequence[str] = ("bias", "IB"),
                    path: Optional[str] = None, feature_names: Optional[Sequence[str]] = None,
                    dpi: int = 100, row_titles: Optional[Sequence[str]] = None,
                    difference: bool = False) -> Figure:
    """The bias-included and ignore-bias (IB) variants of one rule, side by side.

    Images get heatmaps sharing one scale per sample (so a variant's weaker relevance looks
    weaker): the colour bar reads ``"R / max|R| shared by the row"`` and each heatmap is
    captioned with its row's shared scale, ``"max|R| 0.83"``. Tabular (N, F) relevance gets
    grouped bars (the IB bars hatched).

    With ``difference=True`` a third column shows ΔR = R_bias − R_IB on its own scale: a second
    colour bar (``"ΔR / max|ΔR| of each panel"``), each panel captioned ``"max|ΔR| 0.12, moved
    23%"``: its max |ΔR| and the share of relevance that moved between the two maps
    (:func:`keras_lrp.core.statistics.moved_share`); the figure's title gives the mean
    moved share over the rows. Tabular relevance gets ΔR as a third, cross-hatched bar and the
    moved share in each panel's title.

    Args:
        with_bias: relevance of the variant with biases, (N, H, W[, C]) or (N, F).
        ignore_bias: relevance of the IB variant, the same shape.
        inputs: optional images for an input column (images only).
        names: the two column / legend labels.
        path: save the figure there as a PNG (atomically) when given.
        feature_names: F names for tabular relevance.
        dpi: PNG resolution.
        row_titles: optional N row labels (e.g. ``"3 → 5"``, true → predicted); the panel
            titles for tabular relevance.
        difference: add the difference column (bars) and the moved shares.

    Returns:
        The figure.

    Formula:
        images: t = R / max(max|R_bias|, max|R_IB|) per sample, then the :func:`heatmap` map;
        difference: t = ΔR / max|ΔR| per sample.

    Example:
        >>> plot_comparison(eps.analyze(x), eps_ib.analyze(x), inputs=x, path="ib.png",
        ...                 difference=True)
    """
    a, b = np.asarray(with_bias, dtype=np.float64), np.asarray(ignore_bias, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"with_bias has shape {a.shape} but ignore_bias has shape {b.shape}; "
                         "explain the same inputs with both variants.")
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different labels; got {tuple(names)!r}.")
    image = a.ndim in (3, 4)
    a, b = (_spatial(a), _spatial(b)) if image else (_tabular(a, "plot_comparison"),
                                                     _tabular(b, "plot_comparison"))
    moved = None
    if difference:
        from keras_lrp.core.statistics import moved_share

        moved = moved_share(a, b)
    if image:
        peak = np.maximum(np.abs(a).max(axis=(1, 2)), np.abs(b).max(axis=(1, 2)))
        scale = np.where(peak > 0, peak, 1.0)[:, None, None]
        columns = {names[0]: a / scale, names[1]: b / scale}
        options = {}
        if difference:
            d = a - b
            dpeak = np.abs(d).max(axis=(1, 2))
            name = _unused(DIFFERENCE, names)
            columns[name] = d / np.where(dpeak > 0, dpeak, 1.0)[:, None, None]
            options = dict(bars={name: DIFFERENCE_LABEL},
                           captions={name: [f"max|ΔR| {p:.3g}, moved {_percent(m)}"
                                            for p, m in zip(dpeak, moved)]},
                           title=f"{names[0]} − {names[1]}: {_percent(np.nanmean(moved))} of "
                                 "the relevance moved (mean over the rows)"
                           if np.isfinite(moved).any() else None)
        return plot_grid(columns, inputs=inputs, row_titles=row_titles, path=path, dpi=dpi,
                         normalize=None, scales=peak, scale_label=SHARED_LABEL, **options)
    series, legend, titles = [(a, None), (b, "//")], list(names), row_titles
    if difference:
        series.append((a - b, "xx"))
        legend.append(f"{names[0]} − {names[1]}")
        titles = [(f"{t} · " if t is not None else "") + f"moved {_percent(m)}"
                  for t, m in zip(row_titles if row_titles is not None else [None] * len(a),
                                  moved)]
    return _bar_figure(series, feature_names, titles, legend, path, dpi)


DIFFERENCE = "difference"  #: the title of plot_comparison's difference column
DIFFERENCE_LABEL = "ΔR / max|ΔR| of each panel"  #: its colour bar's label


def _unused(name: str, taken: Sequence[str]) -> str:
    while name in taken:
        name += "'"
    return name


def _percent(value: float) -> str:
    """A share as a percentage (``"23%"``; ``"–"`` when undefined)."""
    return f"{100 * value:.0f}%" if np.isfinite(value) else "–"
