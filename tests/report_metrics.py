"""Small honest metrics for the comparison report's tests (keras_lrp.metrics' own classes come
from elsewhere): a Gini index of |R| (one number per sample) and a pixel-flipping curve
(keras_lrp.analyzers.evaluate), each also computed independently in the tests."""

import numpy as np

from keras_lrp.analyzers.evaluate import pixel_flipping
from keras_lrp.metrics.base import Metric


def features(a):
    """|R| per feature, (N, P): an image's channels summed first."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 4:
        a = a.sum(axis=-1)
    return np.abs(a.reshape(len(a), -1))


class Gini(Metric):
    """Gini index of |R| per sample (Chalasani et al.'s sparseness): sorted-form formula
    G = Σ_k (2k − P − 1) r_(k) / (P Σ r), r_(1) ≤ … ≤ r_(P)."""

    higher_is_better = True  # named "gini" by Metric (its snake-case class name)
    category = "complexity"

    def evaluate(self, scores, x, targets, a, **kwargs):
        r = np.sort(features(a), axis=1)
        p = r.shape[1]
        k = np.arange(1, p + 1)
        return ((2 * k - p - 1) * r).sum(axis=1) / (p * r.sum(axis=1))


class FlipCurve(Metric):
    """The explained score while pixels are set to 0 most relevant first: (N, steps + 1)
    curves; per sample their AOPC."""

    higher_is_better = True  # named "flip_curve"
    category = "faithfulness"

    def __init__(self, steps=4):
        self.steps = steps

    def evaluate(self, scores, x, targets, a, **kwargs):
        return pixel_flipping(scores, x, a, target=targets, steps=self.steps).scores

    def per_sample(self, values):
        values = np.asarray(values, dtype=np.float64)
        return np.mean(values[:, :1] - values, axis=1)


def gini_by_pairs(a):
    """The Gini index by its pairwise definition, Σ_i Σ_j |r_i − r_j| / (2 P Σ r): the
    independent check of :class:`Gini`."""
    r = features(a)
    return np.abs(r[:, :, None] - r[:, None, :]).sum(axis=(1, 2)) / (2 * r.shape[1]
                                                                       * r.sum(axis=1))


def register(monkeypatch, **metrics):
    """Make the registry of ``keras_lrp.metrics`` hold just these metrics (name → class)."""
    from keras_lrp.metrics import registry

    table = dict(metrics)
    monkeypatch.setattr(registry, "METRICS", table)
    return table
