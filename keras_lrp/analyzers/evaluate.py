"""Pixel flipping / region perturbation: does the model's score fall where relevance points?

Samek et al. (2017), "Evaluating the visualization of what a deep neural network has learned":
perturb the input's regions from most to least relevant and record the explained score. A good
explanation makes the score fall fast, i.e. gives a large area over the perturbation curve
(AOPC).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

PERTURBATIONS = ("zero", "mean", "uniform")


@dataclasses.dataclass
class PerturbationCurve:
    """Scores along a most-relevant-first perturbation.

    Attributes:
        fractions: (steps + 1,) fraction of regions perturbed at each step (0 first, 1 last).
        scores: (N, steps + 1) explained score per sample; ``scores[:, 0]`` is unperturbed.
        targets: (N,) the explained output index per sample.
        regions: number of regions (patches or features) per sample.
    """

    fractions: np.ndarray
    scores: np.ndarray
    targets: np.ndarray
    regions: int

    def aopc(self) -> np.ndarray:
        """Area over the perturbation curve, per sample.

        Returns:
            (N,) AOPC values, in the units of the model's scores.

        Formula:
            AOPC = 1/(L+1) · Σ_{k=0..L} ( f(x^(0)) − f(x^(k)) ),
            x^(k) the input with the first k chunks of regions perturbed, L = steps.

        Example:
            >>> curve.aopc()          # one value per sample; larger is better
        """
        return np.mean(self.scores[:, :1] - self.scores, axis=1)

    def mean_aopc(self) -> float:
        """AOPC averaged over the samples (Samek et al.'s ⟨·⟩_p(x))."""
        return float(np.mean(self.aopc()))


def _to_nhwc(x: np.ndarray, reduce_axis: Optional[int]) -> tuple:
    """Images as (N, H, W, C) plus the axis to move back; tabular stays (N, F)."""
    if x.ndim in (2, 3):
        return (x if x.ndim == 2 else x[..., None]), None
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, F), (N, H, W) or (N, H, W, C); got {x.shape}.")
    if reduce_axis is None or reduce_axis % 4 not in (1, 3):
        raise ValueError(f"reduce_axis={reduce_axis} is not a channel axis of x of shape "
                         f"{x.shape}; use -1 (channels last) or 1 (channels first).")
    return np.moveaxis(x, reduce_axis % 4, -1), reduce_axis % 4


def _to_numpy(out) -> np.ndarray:
    """A model's scores as NumPy, whatever the backend returned (a torch tensor that requires
    grad has no ``__array__``)."""
    if isinstance(out, np.ndarray):
        return out
    from keras_lrp import backend

    return backend.to_numpy(out)


def _baseline(x: np.ndarray, perturbation, rng: np.random.Generator) -> np.ndarray:
    """The replacement value of every entry of x (channels last / tabular layout)."""
    if perturbation == "zero":
        return np.zeros_like(x)
    if perturbation == "mean":  # per channel (images) or per feature (tabular), over the batch
        axes = tuple(range(x.ndim - 1))
        return np.broadcast_to(x.mean(axis=axes, keepdims=True), x.shape).astype(x.dtype)
    if perturbation == "uniform":
        return rng.uniform(x.min(), x.max(), size=x.shape).astype(x.dtype)
    raise ValueError(f"perturbation must be one of {PERTURBATIONS} or a callable; got "
                     f"{perturbation!r}.")


def pixel_flipping(model_fn: Callable[[np.ndarray], np.ndarray], x: ArrayLike,
                   relevance: ArrayLike, target: Optional[Union[int, ArrayLike]] = None,
                   steps: int = 10,
                   region: int = 1,
                   perturbation: Union[str, Callable] = "zero", reduce_axis: Optional[int] = -1,
                   seed: int = 0) -> PerturbationCurve:
    """Perturb regions most-relevant-first and record the explained score after each chunk.

    Regions are ``region × region`` patches for images (N, H, W) or (N, H, W, C) (relevance
    summed over the patch and the channels; edge patches may be smaller) and single features
    for tabular (N, F) inputs. They are ranked per sample by relevance (ties in reading order)
    and perturbed cumulatively in ``steps`` equal chunks. One model call per step: steps + 1.

    Args:
        model_fn: batch → scores (N, K) or (N,), e.g. ``analyzer.forward_model.predict_on_batch``
            or any callable (its output is converted with ``np.asarray``).
        x: the inputs.
        relevance: shaped like ``x``, or (N, H, W) for images.
        target: the output index per sample (an int or (N,)); default: argmax of f(x).
        steps: number of chunks L (1 ≤ L ≤ number of regions).
        region: patch side in pixels (images only).
        perturbation: ``"zero"``; ``"mean"`` (the channel's / feature's mean over the batch);
            ``"uniform"`` (noise in [min x, max x] of the batch, drawn once from ``seed``); or
            a callable ``x → replacement array shaped like x``.
        reduce_axis: the channel axis of 4-D ``x`` (-1 channels last, 1 channels first).
        seed: seed of the uniform noise.

    Returns:
        A :class:`PerturbationCurve`.

    Formula:
        With regions r_1, …, r_P sorted so that R(r_1) ≥ … ≥ R(r_P), chunk ends
        c_k = round(k·P/L), x^(k) = x with r_1..r_{c_k} replaced, k = 0..L;
        scores[:, k] = f(x^(k))[target].

    Example:
        >>> curve = pixel_flipping(a.forward_model.predict_on_batch, x, a.analyze(x), region=4)
        >>> curve.mean_aopc()
    """
    x = np.asarray(x)
    rel = np.asarray(relevance, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x needs a batch axis with at least one sample; got shape {x.shape}.")
    xs, channel_axis = _to_nhwc(x, reduce_axis)
    if rel.shape == x.shape and x.ndim == 4:
        rel = np.moveaxis(rel, channel_axis, -1).sum(axis=-1)
    if rel.shape != (x.shape if x.ndim == 2 else xs.shape[:3]):
        raise ValueError(f"relevance of shape {np.shape(relevance)} does not fit x of shape "
                         f"{x.shape}; give relevance shaped like x (or (N, H, W) for images).")
    if not np.all(np.isfinite(rel)):
        raise ValueError(f"relevance holds {np.sum(~np.isfinite(rel))} NaN or infinite values.")
    if not isinstance(region, (int, np.integer)) or region < 1 or (x.ndim == 2 and region != 1):
        raise ValueError(f"region must be a positive int (1 for tabular (N, F) inputs); got "
                         f"{region!r} for x of shape {x.shape}.")
    n = x.shape[0]
    if x.ndim == 2:  # every feature is a region
        ids, scores_by_region = np.arange(x.shape[1]), rel
    else:
        h, w = xs.shape[1:3]
        rows, cols = -(-h // region), -(-w // region)
        ids = (np.arange(h)[:, None] // region) * cols + np.arange(w)[None, :] // region
        scores_by_region = np.zeros((n, rows * cols))
        np.add.at(scores_by_region, (slice(None), ids), rel)
    regions = scores_by_region.shape[1]
    if not isinstance(steps, (int, np.integer)) or not 1 <= steps <= regions:
        raise ValueError(f"steps must be an int in [1, {regions}] (the number of regions of "
                         f"size {region}); got {steps!r}. Use fewer steps or a smaller region.")
    order = np.argsort(-scores_by_region, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(regions)[None, :].repeat(n, axis=0), axis=1)
    rank_map = rank[:, ids]  # (N, F) or (N, H, W): position of each entry's region in the order
    if x.ndim != 2:
        rank_map = rank_map[..., None]
    if callable(perturbation):
        replacement = np.asarray(perturbation(x))
        if replacement.shape != x.shape:
            raise ValueError(f"The perturbation callable returned shape {replacement.shape} "
                             f"for x of shape {x.shape}; return an array shaped like x.")
        replacement = _to_nhwc(replacement, reduce_axis)[0]
    else:
        replacement = _baseline(xs, perturbation, np.random.default_rng(seed))
    counts = np.rint(np.linspace(0, regions, steps + 1)).astype(int)

    def run(batch: np.ndarray) -> np.ndarray:
        if x.ndim == 3:
            batch = batch[..., 0]
        elif x.ndim == 4:
            batch = np.moveaxis(batch, -1, channel_axis)
        out = _to_numpy(model_fn(batch))
        if out.ndim == 0 or out.shape[0] != n:
            raise ValueError(f"model_fn returned shape {out.shape} for a batch of {n}; it must "
                             "return scores with the batch axis first, (N, K) or (N,).")
        return out.reshape(n, -1)

    first = run(xs)
    targets = first.argmax(axis=1) if target is None else np.asarray(target)
    if targets.ndim == 0:
        targets = np.full(n, targets)
    if (targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer)
            or targets.min() < 0 or targets.max() >= first.shape[1]):
        raise ValueError(f"target must be an int or {n} ints in [0, {first.shape[1]}); got "
                         f"{target!r}.")
    scores = np.empty((n, steps + 1))
    scores[:, 0] = first[np.arange(n), targets]
    for k, count in enumerate(counts[1:], start=1):
        perturbed = np.where(rank_map < count, replacement, xs).astype(x.dtype, copy=False)
        scores[:, k] = run(perturbed)[np.arange(n), targets]
    return PerturbationCurve(fractions=counts / regions, scores=scores, targets=targets,
                             regions=regions)
