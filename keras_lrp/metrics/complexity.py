"""Complexity: how concentrated an explanation is (Quantus's "Complexity" category).

A concise explanation puts its relevance on few features. These metrics read the relevance
alone (no model call): ``metric(None, x, a=relevance)`` works, and so does Quantus's call with a
model, which is then not called. They work on every layout (images, tabular, token ids): a
feature is what :class:`~keras_lrp.metrics.base.Layout` calls one (an image's pixel, its
channels summed).

:class:`AttributionMetric` is the base of the metrics that need only ``a`` (and ``s``); the
localisation metrics use it too.
"""

from __future__ import annotations

import numpy as np

from keras_lrp.analyzers.inputs import is_batch_stream
from keras_lrp.metrics.base import Layout, Metric, prepare_relevance


class AttributionMetric(Metric):
    """A metric of the relevance alone (and of a mask ``s``): the model is not called when
    ``a`` is given (it may be None then); without ``a``, ``explain`` computes it as for every
    metric. Subclasses implement :meth:`score` on the prepared relevance ``(N, *feature grid)``.

    Quantus applies ``normalise`` (each sample divided by its max |a|) and ``abs`` before the
    metric; so does :meth:`prepared`.
    """

    normalise = True
    abs = True

    def __call__(self, model=None, x=None, y=None, a=None, s=None, explain=None,
                 **kwargs) -> np.ndarray:
        if x is None:
            raise ValueError(f"{type(self).__name__} needs the inputs x (for their layout).")
        if is_batch_stream(x):
            return self.stream(model, x, y, a=a, s=s, explain=explain, **kwargs)
        if a is None:
            return super().__call__(model, x, y, a=a, s=s, explain=explain, **kwargs)
        return self.evaluate(None, np.asarray(x), None, np.asarray(a), s=s, **kwargs)

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None,
                 **kwargs) -> np.ndarray:
        layout = relevance_layout(x)
        return self.score(self.prepared(a, layout), layout, s)

    def prepared(self, a, layout: Layout) -> np.ndarray:
        """``a`` per feature ``(N, *grid)``, with ``abs`` and ``normalise`` applied."""
        return prepare_relevance(a, layout, normalise=self.normalise, absolute=self.abs)

    def score(self, r: np.ndarray, layout: Layout, s) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


def relevance_layout(x) -> Layout:
    """The layout of ``x`` for reading relevance only: token ids need no ``token_baseline``
    (nothing is perturbed)."""
    x = np.asarray(x)
    return Layout(x, token_baseline=0 if np.issubdtype(x.dtype, np.integer) else None)


class Sparseness(AttributionMetric):
    """The Gini index of the relevance: 1 when one feature holds all of it, 0 when it is
    spread evenly (higher is better).

    With r the prepared relevance of one sample plus 1e-7 (Quantus's offset, which keeps an
    all-zero map defined), sorted ascending r_(1) ≤ … ≤ r_(P)::

        G = Σ_i (2i − P − 1) r_(i) / (P Σ_i r_(i))

    Chalasani, Kumar, Sen, Chen, Wu and Jha, "Concise Explanations of Neural Networks using
    Adversarial Training", ICML 2020.

    Args:
        abs, normalise: Quantus's, applied before the index (both on by default, as in
            Quantus; the index assumes non-negative relevance).

    Differs from Quantus 0.6: ``normalise`` divides each sample by its own max |a| (Quantus
    divides the whole batch by one max, so a sample's score depends on the batch it came in;
    the index itself is scale-free, so only the 1e-7 offset feels it).
    """

    higher_is_better = True
    category = "complexity"

    def __init__(self, abs: bool = True, normalise: bool = True):
        self.abs, self.normalise = bool(abs), bool(normalise)

    def score(self, r, layout, s):
        r = np.sort(r.reshape(len(r), -1) + 1e-7, axis=1)
        p = r.shape[1]
        i = np.arange(1, p + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return ((2 * i - p - 1) * r).sum(axis=1) / (p * r.sum(axis=1))


class Complexity(AttributionMetric):
    """The entropy of the fractional contribution of each feature (lower is better)::

        p_i = r_i / Σ_j |r_j|,    H = − Σ_i p_i log(p_i + 1e-12)

    log(P) when the relevance is spread evenly over P features, 0 when one feature holds it.

    Bhatt, Weller and Moura, "Evaluating and Aggregating Feature-based Model Explanations",
    IJCAI 2020.

    Args:
        abs, normalise: Quantus's (both on by default). With ``abs=False`` the relevance must
            be non-negative: a negative fraction has no entropy (Quantus returns NaN there; we
            refuse). An all-zero map gives NaN, as in Quantus.
    """

    higher_is_better = False
    category = "complexity"

    def __init__(self, abs: bool = True, normalise: bool = True):
        self.abs, self.normalise = bool(abs), bool(normalise)

    def score(self, r, layout, s):
        r = r.reshape(len(r), -1)
        if np.any(r < 0):
            raise ValueError(f"Complexity is the entropy of each feature's share of the "
                             f"relevance; {int(np.sum(r < 0))} values are negative. Use "
                             "abs=True (the default), or give non-negative relevance.")
        with np.errstate(divide="ignore", invalid="ignore"):
            p = r / np.abs(r).sum(axis=1, keepdims=True)
            return -(p * np.log(p + 1e-12)).sum(axis=1)


class EffectiveComplexity(AttributionMetric):
    """How many features have relevance above ``eps`` (lower is better)::

        EC = #{i : r_i > eps}

    with r the prepared relevance (``abs`` and ``normalise`` on by default, so: |a_i| / max|a|
    above eps).

    Nguyen and Martínez, "On Quantitative Aspects of Model Interpretability", arXiv:2007.07584,
    2020.

    Differs from Quantus 0.6: ``normalise`` divides each sample by its own max |a|; Quantus
    divides the whole batch by one max, so a sample of small relevance next to one of large
    relevance counts no feature there (tests/metrics/test_complexity.py shows it).
    """

    higher_is_better = False
    category = "complexity"

    def __init__(self, eps: float = 1e-5, abs: bool = True, normalise: bool = True):
        self.eps = float(eps)
        self.abs, self.normalise = bool(abs), bool(normalise)

    def score(self, r, layout, s):
        return (r.reshape(len(r), -1) > self.eps).sum(axis=1).astype(np.int64)
