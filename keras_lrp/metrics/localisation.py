"""Localisation: does the relevance fall on a known region (Quantus's "Localisation" category)?

Each metric takes ``s``, a binary mask per sample marking the ground-truth region: shaped like
the feature grid ((N, H, W) for images, (N, F) tabular, (N, T) tokens), or like ``x`` (an
image's pixel is in the region when any of its channels is). The model is not called when ``a``
is given: ``metric(None, x, a=relevance, s=mask)``. A sample whose mask is empty scores NaN.

Ties in the relevance: the ranking metrics (:class:`TopKIntersection`,
:class:`RelevanceRankAccuracy`) break them by feature order (a stable sort, first feature
first); Quantus's unstable sort breaks them by whatever its sort does. They differ only where
features of equal relevance lie on both sides of the mask's border and of the rank cut.
"""

from __future__ import annotations

import warnings

import numpy as np

from keras_lrp.metrics.base import Layout
from keras_lrp.metrics.complexity import AttributionMetric
from keras_lrp.metrics.similarity import rankdata


def masks(s, layout: Layout) -> np.ndarray:
    """The ground-truth masks as (N, P) booleans; ``s`` is shaped like the feature grid or like
    x, holds booleans or 0/1."""
    if s is None:
        raise ValueError("Localisation metrics need s, a binary mask per sample shaped like "
                         f"the feature grid {tuple(layout.shape)} (or like x).")
    s = np.asarray(s)
    grid, x = tuple(layout.shape), layout.x
    if layout.kind == "image" and s.shape == x.shape and x.ndim == 4:
        s = s.any(axis=-1) if s.dtype == bool else s.max(axis=-1)
    elif layout.kind == "image" and s.shape == grid + (1,):
        s = s[..., 0]
    if s.shape != grid:
        raise ValueError(f"The mask s of shape {s.shape} does not fit x of shape {x.shape}: "
                         f"give one shaped like the feature grid {grid} (or like x).")
    if s.dtype != bool and not np.isin(s, (0, 1)).all():
        raise ValueError(f"The mask s must hold booleans or 0/1; it holds {np.unique(s)[:5]}….")
    return s.astype(bool).reshape(len(s), -1)


class LocalisationMetric(AttributionMetric):
    """A metric of the relevance (N, P) and the mask (N, P); NaN where a mask is empty.

    Args:
        abs, normalise: Quantus's (abs off, normalise on by default).
    """

    higher_is_better = True
    category = "localisation"

    def __init__(self, abs: bool = False, normalise: bool = True):
        self.abs, self.normalise = bool(abs), bool(normalise)

    def score(self, r, layout, s):
        m = masks(s, layout)
        out = np.asarray(self.localise(r.reshape(len(r), -1), m, layout), dtype=np.float64)
        out[m.sum(axis=1) == 0] = np.nan
        return out

    def localise(self, r: np.ndarray, m: np.ndarray, layout: Layout):  # pragma: no cover
        raise NotImplementedError


def _ranked(r: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The mask in the order of decreasing relevance (ties: first feature first)."""
    return np.take_along_axis(m, np.argsort(-r, axis=1, kind="stable"), axis=1)


class PointingGame(LocalisationMetric):
    """1 when the most relevant feature lies in the mask, else 0 (higher is better); a tie for
    the maximum hits when any of the tied features lies in the mask.

    Zhang, Bargal, Lin, Brandt, Shen and Sclaroff, "Top-Down Neural Attention by Excitation
    Backprop", International Journal of Computer Vision 126, 2018.

    Args:
        weighted: a hit scores 1 − |mask| / P instead of 1 (a small region is harder to hit).
        abs, normalise: Quantus's (abs off, normalise on by default).

    Differs from Quantus 0.6, which stores the hits in a boolean array: there ``weighted=True``
    raises a TypeError and an empty mask scores True instead of NaN. Ours are floats.
    """

    def __init__(self, weighted: bool = False, abs: bool = False, normalise: bool = True):
        self.weighted = bool(weighted)
        self.abs, self.normalise = bool(abs), bool(normalise)

    def localise(self, r, m, layout):
        hit = np.any(m & (r == r.max(axis=1, keepdims=True)), axis=1).astype(np.float64)
        if self.weighted:
            hit *= 1.0 - m.sum(axis=1) / m.shape[1]
        return hit


class AttributionLocalisation(LocalisationMetric):
    """The share of the relevance inside the mask (higher is better)::

        μ = Σ_{i ∈ s} r_i / (Σ_i r_i + 1e-9)

    NaN where μ > 1 (negative relevance outside the mask; a warning says so).

    Kohlbrenner, Bauer, Nakajima, Binder, Samek and Lapuschkin, "Towards Best Practice in
    Explaining Neural Network Decisions with LRP", IJCNN 2020.

    Args:
        weighted: multiply μ by the mask's share of the features, |s| / P (Quantus's weighting).
        max_size: warn when a mask covers more than this share of the features.
        positive_attributions: clip the relevance at 0 first.
        abs, normalise: Quantus's (both on by default).

    Differs from Quantus 0.6, whose batched code divides |s| by ``x_batch[2:].size`` (every
    value of the batch but the first two samples) instead of the sample's feature count: its
    weighted scores shrink with the batch size (and are infinite for two samples).
    """

    def __init__(self, weighted: bool = False, max_size: float = 1.0,
                 positive_attributions: bool = False, abs: bool = True, normalise: bool = True):
        self.weighted, self.max_size = bool(weighted), float(max_size)
        self.positive_attributions = bool(positive_attributions)
        self.abs, self.normalise = bool(abs), bool(normalise)

    def localise(self, r, m, layout):
        if self.positive_attributions:
            r = np.clip(r, 0, None)
        ratio = m.sum(axis=1) / m.shape[1]
        if np.any(ratio > self.max_size):
            warnings.warn(f"{int(np.sum(ratio > self.max_size))} masks cover more than "
                          f"max_size={self.max_size} of the features.", stacklevel=4)
        inside = (r * m).sum(axis=1) / (r.sum(axis=1) + 1e-9)
        over = inside > 1
        if np.any(over):
            warnings.warn(f"{int(over.sum())} samples have more relevance inside the mask than "
                          "in total (negative relevance outside it): NaN there; use abs=True "
                          "or positive_attributions=True.", stacklevel=4)
            inside[over] = np.nan
        return inside * ratio if self.weighted else inside


class TopKIntersection(LocalisationMetric):
    """The share of the k most relevant features that lie in the mask (higher is better)::

        TKI = |top_k(r) ∩ s| / k        (× P / |s| with ``concept_influence``)

    Theiner, Müller-Budack and Ewerth, "Interpretable Semantic Photo Geolocation", WACV 2022
    (arXiv:2104.14995, 2021).

    Args:
        k: how many features (Quantus's default 1000 fits 224×224 images; at most P).
        concept_influence: divide by the mask's share of the features, |s| / P (1 is then
            chance level).
        abs, normalise: Quantus's (abs off, normalise on by default).
    """

    def __init__(self, k: int = 1000, concept_influence: bool = False, abs: bool = False,
                 normalise: bool = True):
        self.k, self.concept_influence = int(k), bool(concept_influence)
        self.abs, self.normalise = bool(abs), bool(normalise)

    def localise(self, r, m, layout):
        if not 0 < self.k <= m.shape[1]:
            raise ValueError(f"k={self.k} must be between 1 and the number of features per "
                             f"sample, {m.shape[1]}: give TopKIntersection(k=…) that fits.")
        tki = _ranked(r, m)[:, :self.k].mean(axis=1)
        if self.concept_influence:
            with np.errstate(divide="ignore", invalid="ignore"):
                tki = tki * m.shape[1] / m.sum(axis=1)
        return tki


class RelevanceRankAccuracy(LocalisationMetric):
    """The share of the K = |s| most relevant features that lie in the mask (higher is
    better)::

        RRA = |top_K(r) ∩ s| / K

    Arras, Osman and Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
    neural network explanations", Information Fusion 81, 2022.

    Args:
        abs, normalise: Quantus's (abs off, normalise on by default).
    """

    def localise(self, r, m, layout):
        size = m.sum(axis=1)
        hits = np.cumsum(_ranked(r, m), axis=1)[np.arange(len(m)), np.maximum(size - 1, 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            return hits / size


class RelevanceMassAccuracy(LocalisationMetric):
    """The relevance inside the mask over the total (higher is better)::

        RMA = Σ_{i ∈ s} r_i / Σ_i r_i

    (no clipping: with negative relevance it can leave [0, 1]).

    Arras, Osman and Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
    neural network explanations", Information Fusion 81, 2022.

    Args:
        abs, normalise: Quantus's (abs off, normalise on by default).
    """

    def localise(self, r, m, layout):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (r * m).sum(axis=1) / r.sum(axis=1)


class AUC(LocalisationMetric):
    """The area under the ROC curve of the relevance as a score for the mask (higher is
    better): the probability that a feature in the mask outranks one outside it, ties counting
    one half (Mann–Whitney; equal to ``sklearn.metrics.roc_auc_score(s, r)``)::

        AUC = (Σ_{i ∈ s} rank_i − |s|(|s| + 1)/2) / (|s| (P − |s|))

    with rank_i the rank of r_i among the sample's P values (1 = smallest, ties averaged). NaN
    where the mask is empty or covers every feature.

    Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 27(8), 2006.

    Args:
        abs, normalise: Quantus's (abs off, normalise on by default).
    """

    def localise(self, r, m, layout):
        ranks = rankdata(r)
        pos = m.sum(axis=1)
        neg = m.shape[1] - pos
        with np.errstate(divide="ignore", invalid="ignore"):
            return ((ranks * m).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
