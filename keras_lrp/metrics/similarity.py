"""Similarities of relevance maps, row by row, in NumPy: ranks, Pearson's r, Spearman's rank
correlation and SSIM (the measures Quantus takes from SciPy and scikit-image, which keras-lrp
does not depend on)."""

from __future__ import annotations

import numpy as np


def rankdata(a) -> np.ndarray:
    """Ranks 1…P along the last axis, ties sharing their average rank
    (``scipy.stats.rankdata(method="average")``)."""
    a = np.asarray(a, dtype=np.float64)
    p = a.shape[-1]
    order = np.argsort(a, axis=-1, kind="stable")
    s = np.take_along_axis(a, order, axis=-1)
    idx = np.broadcast_to(np.arange(p), a.shape)
    starts = np.ones(a.shape, dtype=bool)
    starts[..., 1:] = s[..., 1:] != s[..., :-1]
    ends = np.ones(a.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, idx, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, idx, p), -1), axis=-1), -1)
    ranks = np.empty(a.shape)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=-1)
    return ranks


def pearson(a, b) -> np.ndarray:
    """Pearson's r of each row of a with the same row of b; NaN for a constant row."""
    a, b = (np.asarray(v, dtype=np.float64) for v in (a, b))
    a, b = a - a.mean(axis=-1, keepdims=True), b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=-1) / den
    return np.clip(np.where(den > 0, r, np.nan), -1.0, 1.0)


def spearman(a, b) -> np.ndarray:
    """Spearman's rank correlation of each row pair (Quantus' ``correlation_spearman``, which
    calls ``scipy.stats.spearmanr``): Pearson's r of the average ranks; NaN for a constant row.
    """
    return pearson(rankdata(a), rankdata(b))


def ssim(a, b, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """The mean structural similarity of each row pair, as Quantus' ``ssim`` computes it:
    ``skimage.metrics.structural_similarity`` on the flattened maps (a 1-D window of
    ``win_size`` consecutive values), uniform weights, sample covariances (÷ (w - 1)),
    ``data_range`` = max - min of both maps together, C1 = (k1 R)², C2 = (k2 R)², averaged over
    the windows that lie inside the map (skimage crops the (w - 1)/2 border)::

        SSIM = mean_windows (2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))
    """
    a, b = (np.asarray(v, dtype=np.float64) for v in (a, b))
    if win_size % 2 != 1 or win_size < 3:
        raise ValueError(f"win_size must be odd and at least 3; got {win_size}.")
    if a.shape[-1] < win_size:
        raise ValueError(f"SSIM's window of {win_size} does not fit maps of {a.shape[-1]} "
                         "features; give a smaller odd win_size, or another similarity_func.")
    both = np.concatenate([a, b], axis=-1)
    r = np.abs(both.max(axis=-1) - both.min(axis=-1))[..., None]
    c1, c2 = (k1 * r) ** 2, (k2 * r) ** 2

    def mean(v):
        return np.lib.stride_tricks.sliding_window_view(v, win_size, axis=-1).mean(axis=-1)

    norm = win_size / (win_size - 1.0)
    ua, ub = mean(a), mean(b)
    va, vb = norm * (mean(a * a) - ua * ua), norm * (mean(b * b) - ub * ub)
    vab = norm * (mean(a * b) - ua * ub)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua ** 2 + ub ** 2 + c1) * (va + vb + c2))
    return s.mean(axis=-1)
