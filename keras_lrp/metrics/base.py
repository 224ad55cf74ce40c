"""What every metric shares: the model as scores, the explanation, the targets and the layout.

Quantus (Hedström et al., "Quantus: An Explainable AI Toolkit for Responsible Evaluation of
Neural Network Explanations and Beyond", JMLR 24(34), 2023) defines the metrics this package
computes; it calls them as ``metric(model, x_batch, y_batch, a_batch, s_batch, ...)`` and returns
one score per sample. Ours are called the same way, on Keras 3 models and any backend, with the
whole batch in each model call:

    >>> metric = keras_lrp.metrics.PixelFlipping(features_in_step=4)
    >>> values = metric(model, x, y, a=relevance)       # (N, steps) curves
    >>> metric.per_sample(values)                       # (N,) area under each curve

Layouts (:class:`Layout`): images ``(N, H, W)`` or ``(N, H, W, C)`` channels last (a
*feature* is a pixel, all its channels perturbed together; relevance is summed over channels),
tabular ``(N, F)`` floats, and token ids ``(N, T)`` integers (a feature is a token; a perturbed
token becomes ``token_baseline``).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Optional

import numpy as np

from keras_lrp.analyzers.inputs import is_batch_stream
from keras_lrp.metrics.layout import BASELINES, Layout  # noqa: F401 - the metrics' contract
from keras_lrp.metrics.scores import Scores  # noqa: F401 - the metrics' contract


class Explainer:
    """Explanations of chosen outputs, for metrics that explain again (robustness,
    randomisation, input invariance).

    Args:
        explain: a keras-lrp analyzer (rebuilt with ``neuron_selection_mode="index"`` when it
            was made for another mode, so each sample explains its own target), or a callable
            ``(x, targets) → relevance`` shaped like ``x`` (e.g. a NumPy explainer).
    """

    def __init__(self, explain: Any):
        from keras_lrp.analyzers.base import Analyzer

        self.analyzer = None
        if isinstance(explain, Analyzer):
            self.analyzer = _index_mode(explain)
            self.fn = lambda x, t: self.analyzer.analyze(x, neuron_selection=np.asarray(t))
        elif callable(explain):
            self.fn = explain
        else:
            raise TypeError(f"explain must be a keras-lrp analyzer or a callable (x, targets) → "
                            f"relevance; got {type(explain).__name__}.")

    def __call__(self, x, targets) -> np.ndarray:
        out = np.asarray(self.fn(x, np.asarray(targets)), dtype=np.float64)
        if out.shape[0] != len(x):
            raise ValueError(f"The explainer returned shape {out.shape} for {len(x)} inputs; it "
                             "must return one relevance per input, shaped like x.")
        return out


def _index_mode(analyzer):
    """The analyzer, or its twin with ``neuron_selection_mode="index"``."""
    if analyzer.neuron_selection_mode == "index":
        return analyzer
    return analyzer.clone(neuron_selection_mode="index")


def snake(name: str) -> str:
    """``PixelFlipping`` → ``pixel_flipping``; ``ROAD`` → ``road``; ``AUC`` → ``auc``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def targets_for(y, scores: np.ndarray) -> np.ndarray:
    """The explained output index per sample: ``y`` (an int or (N,) ints), or the argmax of
    the model's scores where ``y`` is None."""
    n, k = scores.shape
    t = scores.argmax(axis=1) if y is None else np.asarray(y)
    if t.ndim == 0:
        t = np.full(n, t)
    if t.shape != (n,) or not np.issubdtype(t.dtype, np.integer) or t.min() < 0 or t.max() >= k:
        raise ValueError(f"y must be an int or {n} ints in [0, {k}) (the explained outputs); "
                         f"got {y!r}.")
    return t.astype(np.int64)


def normalise_by_max(a: np.ndarray) -> np.ndarray:
    """Each sample divided by its own max |a| (zero samples stay zero): a / max_i |a_i|.

    Quantus 0.6's ``normalise_by_max`` divides by the max over the whole batch, so there a
    sample's score depends on the samples beside it; the tests of the metrics it changes show
    both (every metric here is per sample)."""
    a = np.asarray(a, dtype=np.float64)
    top = np.abs(a.reshape(len(a), -1)).max(axis=1).reshape((-1,) + (1,) * (a.ndim - 1))
    return np.divide(a, top, out=np.zeros_like(a), where=top != 0)


def prepare_relevance(a, layout: Layout, normalise: bool, absolute: bool) -> np.ndarray:
    """Relevance per feature ``(N, *grid)``, with Quantus's ``abs`` and ``normalise`` applied (in
    either order the same: max |a| is the max of |a|)."""
    r = layout.relevance(a)
    if absolute:
        r = np.abs(r)
    if normalise:
        r = normalise_by_max(r)
    return r


class Metric:
    """One evaluation measure: ``metric(model, x, y, a=…, s=…, explain=…)`` → per-sample values.

    Subclasses set :attr:`name`, :attr:`higher_is_better` and :attr:`category`, take Quantus's
    parameters in ``__init__`` and implement :meth:`evaluate`. Curves come back (N, steps);
    :meth:`per_sample` reduces them to one number per sample (the area under a pixel-flipping
    curve, the AOPC of region perturbation: each metric says which).

    Call args:
        model: a Keras model, keras-lrp analyzer or callable batch → scores (see :class:`Scores`).
        x: the inputs (see :class:`Layout`).
        y: the explained output per sample (None: the model's argmax).
        a: the relevance of ``x`` for ``y``, shaped like ``x``; None: computed with ``explain``.
        s: a binary mask per sample (localisation metrics), shaped like the feature grid.
        explain: an analyzer or callable ``(x, targets) → relevance`` (metrics that explain
        again need it; see :class:`Explainer`).
    """

    #: The metric's one name: its class name in snake case (set for every subclass that does
    #: not set its own).
    name = "metric"
    higher_is_better = True
    category = ""
    needs_explain = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:  # a subclass may name itself
            cls.name = snake(cls.__name__)

    def __call__(self, model, x, y=None, a=None, s=None, explain=None, **kwargs) -> np.ndarray:
        if is_batch_stream(x):
            return self.stream(model, x, y, a=a, s=s, explain=explain, **kwargs)
        scores = model if isinstance(model, Scores) else Scores(
            model, softmax=getattr(self, "softmax", False))
        x = np.asarray(x)
        explainer = Explainer(explain) if explain is not None else None
        first = scores(x)
        targets = targets_for(y, first)
        if a is None:
            if explainer is None:
                raise ValueError(f"{type(self).__name__} needs the relevance a, or explain to "
                                 "compute it.")
            a = explainer(x, targets)
        if self.needs_explain and explainer is None:
            raise ValueError(f"{type(self).__name__} explains perturbed inputs again: give "
                             "explain (an analyzer or a callable (x, targets) → relevance).")
        return self.evaluate(scores, x, targets, np.asarray(a), s=s, explainer=explainer,
                             first=first, **kwargs)

    def stream(self, model, data: Iterable, y=None, a=None, s=None, explain=None,
               **kwargs) -> np.ndarray:
        """The metric over a dataset, one batch at a time, as ``analyze`` reads one: a
        ``tf.data.Dataset``, a generator or any iterable yielding ``x`` or ``(x, y, …)``
        batches (``metric(model, data, …)`` comes here). Each batch is evaluated as a call of
        its own, so memory is bounded by the batch; the per-sample values are concatenated.

        The explained outputs are ``y`` where given (one int, or one per sample of the whole
        dataset), else the batch's own ``y``, else the model's argmax; ``a`` and ``s``, where
        given, hold the whole dataset's samples in order and are sliced to each batch. A
        seeded metric draws afresh for each batch (the same seed: reproducible, but not the
        draws of one call on the whole dataset).
        """
        parts, offset = [], 0
        for batch in data:
            xb, yb = batch[:2] if isinstance(batch, tuple) and len(batch) >= 2 else (batch, None)
            xb = np.asarray(xb)
            n = len(xb)

            def rows(v, n=n, offset=offset):
                return None if v is None else np.asarray(v)[offset:offset + n]

            if y is not None:
                yb = y if np.ndim(y) == 0 else rows(y)
            if a is not None and len(rows(a)) != n or s is not None and len(rows(s)) != n:
                raise ValueError(f"a (or s) holds fewer samples than the data: the batch at "
                                 f"sample {offset} has {n}; give one per sample of the whole "
                                 "dataset, in order.")
            parts.append(self(model, xb, yb, a=rows(a), s=rows(s), explain=explain, **kwargs))
            offset += n
        if not parts:
            raise ValueError("The data yielded no batches.")
        return np.concatenate(parts)

    def evaluate(self, scores: Scores, x: np.ndarray, targets: np.ndarray, a: np.ndarray,
                 s=None, explainer: Optional[Explainer] = None, first=None,
                 **kwargs) -> np.ndarray:
        raise NotImplementedError

    def per_sample(self, values: np.ndarray) -> np.ndarray:
        """One number per sample: the values themselves for scalar metrics."""
        return np.asarray(values, dtype=np.float64)

    def describe(self) -> Dict[str, Any]:
        """Name, category and direction, for tables and reports."""
        return {"name": self.name, "category": self.category,
                "higher_is_better": self.higher_is_better}
