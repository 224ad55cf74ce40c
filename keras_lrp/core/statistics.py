"""The numbers a comparison of explanations reports, in NumPy: a mean with its bootstrap
confidence interval (:func:`bootstrap_ci`), how much relevance moved between two maps
(:func:`moved_share`) and relevance per feature (:func:`feature_map`)."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def bootstrap_ci(values, bootstrap: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> Tuple[float, float, float]:
    """The mean of ``values`` and its percentile bootstrap confidence interval.

    Args:
        values: (N,) per-sample values; NaN (a sample the metric does not apply to) is left
            out first, the n finite values remain.
        bootstrap: resamples B (0: no interval, NaN bounds).
        seed: seed of ``np.random.default_rng``, created afresh for each call, so every method
            and metric with the same n is resampled with the same indices (a paired bootstrap).
        confidence: the interval's level, e.g. 0.95.

    Returns:
        ``(mean, low, high)``; all NaN when no value is finite.

    Formula:
        idx = default_rng(seed).integers(0, n, (B, n)); m_b = mean(v[idx[b]]);
        low, high = percentile(m, 100·(1 − c)/2), percentile(m, 100·(1 + c)/2)
        (NumPy's default linear interpolation).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}.")
    if bootstrap < 1:
        return float(v.mean()), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, v.size, size=(int(bootstrap), v.size))
    means = v[idx].mean(axis=1)
    low, high = np.percentile(means, [50.0 * (1 - confidence), 50.0 * (1 + confidence)])
    return float(v.mean()), float(low), float(high)


def moved_share(a, b) -> np.ndarray:
    """The share of relevance that moved between two explanations of the same samples.

    Each map is scaled to unit total |R|, then half the L1 distance is taken: the fraction of
    the |relevance| mass that has to move to another feature (or change its sign) to turn one
    map into the other. 0: the same map up to a positive factor (a bias that only scales
    relevance moves none); 1: no overlap (disjoint features, or every sign flipped). It is
    symmetric and ignores the maps' overall size (ΣR conservation is a separate question).

    Args:
        a, b: (N, …) relevance of the same N samples, the same shape (e.g. R and R_IB).

    Returns:
        (N,) values in [0, 1]; NaN for a sample where either map is all zero.

    Formula:
        moved = ½ Σ_i | a_i / Σ_j |a_j|  −  b_i / Σ_j |b_j| |
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(f"moved_share needs two relevances of the same shape (N, …); got "
                         f"{a.shape} and {b.shape}.")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    sa, sb = np.abs(a).sum(axis=1, keepdims=True), np.abs(b).sum(axis=1, keepdims=True)
    p = np.divide(a, sa, out=np.zeros_like(a), where=sa > 0)
    q = np.divide(b, sb, out=np.zeros_like(b), where=sb > 0)
    moved = 0.5 * np.abs(p - q).sum(axis=1)
    return np.where((sa[:, 0] > 0) & (sb[:, 0] > 0), moved, np.nan)


def feature_map(relevance, x) -> np.ndarray:
    """Relevance per feature of ``x``: an image's channels summed, a token's embedding summed
    (what the report draws)."""
    r, x = np.asarray(relevance, dtype=np.float64), np.asarray(x)
    if np.issubdtype(x.dtype, np.integer) and x.ndim == 2:
        return r.reshape(x.shape + (-1,)).sum(axis=-1)
    if x.ndim == 4 and r.shape == x.shape:
        return r.sum(axis=-1)
    return r
