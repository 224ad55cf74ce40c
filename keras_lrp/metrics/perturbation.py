"""What the perturbation (faithfulness) metrics share: feature orders, patch and segment grids,
the batched perturbation loop, and the curve summaries (area, AOPC).

A *feature* is what :class:`~keras_lrp.metrics.base.Layout` says it is: a pixel of an image (all
its channels together), a column of a tabular input, a token. A *region* is a set of features
perturbed together: a ``patch_size`` patch of the feature grid (2-D for images, a window of
consecutive features for tabular and token inputs) or a segment of a user-given segmentation.

Every loop here calls the model once per perturbation step on the whole batch (the samples'
perturbed inputs stacked), never once per sample.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from keras_lrp.metrics.base import Layout, Metric, Scores, prepare_relevance

#: Orders in which features or regions are perturbed: most relevant first, least relevant
#: first, or a random permutation per sample (drawn from the metric's ``seed``).
ORDERS = ("morf", "lerf", "random")


def check_order(order: str) -> str:
    """``order`` if it is one of :data:`ORDERS`, else a ValueError naming them."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS} (most / least relevant first, or "
                         f"random); got {order!r}.")
    return order


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")
    return int(value)


def ranking(values: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """(N, M) indices of the M items per sample in perturbation order.

    "morf": ``argsort(-values)``, "lerf": ``argsort(values)`` (NumPy's default sort, as Quantus
    calls it, so ties fall the same way), "random": one permutation per sample."""
    if order == "morf":
        return np.argsort(-values, axis=1)
    if order == "lerf":
        return np.argsort(values, axis=1)
    return np.stack([rng.permutation(values.shape[1]) for _ in range(len(values))])


def positions(ranked: np.ndarray) -> np.ndarray:
    """(N, M) the place of each item in its sample's order (the inverse permutation)."""
    place = np.empty_like(ranked)
    np.put_along_axis(place, ranked, np.broadcast_to(np.arange(ranked.shape[1]), ranked.shape),
                      axis=1)
    return place


def patch_labels(grid: Sequence[int], patch_size: Union[int, Sequence[int]]
                 ) -> Tuple[np.ndarray, int]:
    """The patch of every cell of a feature grid (H, W) or (F,), and the number of patches.

    Patches tile the grid padded to a multiple of ``patch_size`` on each axis, the padding split
    ⌊·/2⌋ before and ⌈·/2⌉ after (Quantus's ``get_padding_size``), so border patches may be
    smaller. Patches are numbered row by row (Quantus's order of ``get_block_indices``).

    Returns:
        (``(*grid)`` int labels, number of patches)."""
    sizes = (patch_size,) * len(grid) if np.ndim(patch_size) == 0 else tuple(patch_size)
    if len(sizes) != len(grid):
        raise ValueError(f"patch_size {patch_size!r} does not fit the feature grid "
                         f"{tuple(grid)}: give an int or one size per axis.")
    sizes = tuple(check_positive_int("patch_size", p) for p in sizes)
    index, counts = [], []
    for n, p in zip(grid, sizes):
        pad = (p - n % p) % p
        index.append((np.arange(n) + pad // 2) // p)
        counts.append((n + pad) // p)
    labels = np.ravel_multi_index(np.meshgrid(*index, indexing="ij"), counts)
    return labels, int(np.prod(counts))


def segment_labels(segments, layout: Layout) -> Tuple[np.ndarray, np.ndarray]:
    """User segments as (N, P) labels 0..n_i−1 per sample (in the order of the given labels),
    and n_i, the segments per sample.

    ``segments`` is shaped like the feature grid, (N, H, W) / (N, F) / (N, T), or one grid
    shared by all samples, (H, W) / (F,) / (T,); any integer labels."""
    seg = np.asarray(segments)
    grid = tuple(layout.shape[1:])
    if seg.shape == grid:
        seg = np.broadcast_to(seg, tuple(layout.shape))
    if seg.shape != tuple(layout.shape) or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"segments must be integer labels shaped like the feature grid, "
                         f"{tuple(layout.shape)} or {grid}; got {seg.dtype} of shape "
                         f"{seg.shape}.")
    flat = seg.reshape(len(seg), -1)
    labels = np.empty(flat.shape, dtype=np.int64)
    counts = np.empty(len(flat), dtype=np.int64)
    for i, row in enumerate(flat):  # relabelling only: no model call in this loop
        _, labels[i] = np.unique(row, return_inverse=True)
        counts[i] = labels[i].max() + 1
    return labels, counts


def region_sums(values: np.ndarray, labels: np.ndarray, regions: int) -> np.ndarray:
    """(N, regions): the sum of ``values`` (N, P) over each region of ``labels`` ((N, P) or
    (P,)); empty regions sum to 0."""
    n = len(values)
    labels = np.broadcast_to(labels.reshape(-1) if labels.ndim == 1 else labels, values.shape)
    out = np.zeros((n, regions))
    np.add.at(out, (np.arange(n)[:, None], labels), values)
    return out


def perturb_steps(scores: Scores, layout: Layout, targets: np.ndarray, step_of: np.ndarray,
                  steps: int, baseline: np.ndarray, mode: str = "remove") -> np.ndarray:
    """The explained score after each perturbation step: (N, steps); the steps are stacked
    into as few model calls as :meth:`~keras_lrp.metrics.base.Scores.stacked` allows.

    Args:
        step_of: (N, P) the step (0-based) at which each feature is perturbed; a value ≥
            ``steps`` never.
        baseline: the values perturbed features take, shaped like x.
        mode: "remove": at step k the features with step_of ≤ k take the baseline (cumulative
            removal); "single": only those with step_of == k (each step from the original x);
            "insert": start from the baseline and restore x's features with step_of ≤ k.
    """
    def perturbed(k: int) -> np.ndarray:
        if mode == "remove":
            return layout.replace(step_of <= k, baseline)
        if mode == "single":
            return layout.replace(step_of == k, baseline)
        return layout.replace(step_of > k, baseline)

    stacked = scores.stacked(perturbed(k) for k in range(steps))  # (steps, N, K)
    return stacked[:, np.arange(len(targets)), targets].T


def area(curves: np.ndarray) -> np.ndarray:
    """(N,) trapezoidal area under each curve with unit spacing: Quantus's ``calculate_auc``
    (``np.trapz(curve, dx=1)``); a one-point curve has area 0."""
    curves = np.asarray(curves, dtype=np.float64)
    return (curves[:, 1:] + curves[:, :-1]).sum(axis=1) / 2.0


class PerturbationMetric(Metric):
    """The parameters every perturbation metric takes (Quantus's names and meanings).

    Args:
        abs: take |a| before ranking (Quantus's ``abs``).
        normalise: divide a by its max |a| (Quantus's ``normalise``; a positive scale per
            sample, which leaves every order and correlation here unchanged).
        perturb_baseline: the value a perturbed feature takes (see
            :meth:`~keras_lrp.metrics.base.Layout.baseline`): "black", "white", "mean",
            "uniform", "zero" or a number, computed once from the original x. Token inputs
            always take ``token_baseline``.
        perturb_func_kwargs: ``uniform_low`` / ``uniform_high`` for "uniform".
        softmax: score softmax probabilities instead of logits (Quantus's ``softmax`` at call).
        token_baseline: the id a perturbed token takes (token inputs only).
        seed: seed of the random draws ("uniform" baseline, "random" order).
    """

    category = "faithfulness"

    def __init__(self, abs: bool = False, normalise: bool = True,
                 perturb_baseline: Union[str, float] = "black",
                 perturb_func_kwargs: Optional[Dict[str, Any]] = None, softmax: bool = True,
                 token_baseline: Optional[int] = None, seed: int = 0):
        self.abs = bool(abs)
        self.normalise = bool(normalise)
        self.perturb_baseline = perturb_baseline
        self.perturb_func_kwargs = dict(perturb_func_kwargs or {})
        self.softmax = bool(softmax)
        self.token_baseline = token_baseline
        self.seed = seed

    def _prepare(self, x: np.ndarray, a: np.ndarray):
        """(layout, relevance (N, P), baseline shaped like x, rng) for one call."""
        layout = Layout(x, token_baseline=self.token_baseline)
        relevance = prepare_relevance(a, layout, self.normalise, self.abs)
        rng = np.random.default_rng(self.seed)
        baseline = layout.baseline(self.perturb_baseline, rng, **self.perturb_func_kwargs)
        return layout, relevance.reshape(len(x), -1), baseline, rng

    @staticmethod
    def _initial(scores: Scores, x: np.ndarray, targets: np.ndarray, first=None) -> np.ndarray:
        """(N,) the explained score of the unperturbed x (``first``, the scores that
        :meth:`Metric.__call__` computed, when given)."""
        first = scores(x) if first is None else np.asarray(first, dtype=np.float64)
        return first[np.arange(len(targets)), targets]
