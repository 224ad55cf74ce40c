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

import functools
import re
import weakref
from typing import Any, Callable, Dict, Iterable, Optional, Union

import numpy as np

from keras_lrp.analyzers.inputs import is_batch_stream

#: Quantus's baseline names (``perturb_baseline``): the value a perturbed feature takes.
BASELINES = ("black", "white", "mean", "uniform", "random", "zero")


class Scores:
    """The model as the metrics call it: a batch in, (N, K) float64 scores out.

    Args:
        model: a Keras model (an output softmax is stripped: the scores are logits, as
            keras-lrp explains them), a keras-lrp analyzer (its ``forward_model``), or any
            callable batch → (N, K) scores.
        softmax: apply a softmax to the scores (Quantus's ``softmax=True``).
        batch_size: call the model on at most this many samples at once (None: the whole
            batch in one call).
        max_stack: the most samples :meth:`stacked` puts into one call.

    Attributes:
        calls: how many times the model was called (tests check the batching with it).
    """

    def __init__(self, model: Any, softmax: bool = False, batch_size: Optional[int] = None,
                 max_stack: int = 8192):
        if isinstance(model, Scores):
            model = model.forward
        self.forward = _logits_of(model)
        self.softmax = bool(softmax)
        self.batch_size = batch_size
        self.max_stack = max_stack
        self.calls = 0

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x)
        step = self.batch_size or max(len(x), 1)
        parts = [self._one(x[i:i + step]) for i in range(0, len(x), step)]
        out = np.concatenate(parts) if parts else np.zeros((0, 0))
        if self.softmax:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out = out / out.sum(axis=1, keepdims=True)
        return out

    def stacked(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        """Scores of several batches of the same shape, (B, N, K), with as few model calls as
        :attr:`max_stack` samples (and 2²⁴ input values) per call allow: perturbation steps cost
        one call together instead of one each (a call's fixed cost dominates small models).
        ``batches`` may be a generator: at most one call's worth is held at a time."""
        parts, pending, held, n = [], [], 0, None
        for b in batches:
            b = np.asarray(b)
            n = len(b) if n is None else n
            pending.append(b)
            held += len(b)
            per_value = max(1, int(np.prod(b.shape[1:])))
            if held >= min(self.max_stack, max(len(b), (1 << 24) // per_value)):
                parts.append(self(np.concatenate(pending)))
                pending, held = [], 0
        if pending:
            parts.append(self(np.concatenate(pending)))
        if not parts:
            raise ValueError("stacked needs at least one batch.")
        return np.concatenate(parts).reshape(-1, n, parts[0].shape[-1])

    def _one(self, x: np.ndarray) -> np.ndarray:
        from keras_lrp import backend

        self.calls += 1
        out = self.forward(x)
        out = out if isinstance(out, np.ndarray) else backend.to_numpy(out)
        if out.ndim == 0 or out.shape[0] != len(x):
            raise ValueError(f"The model returned shape {out.shape} for a batch of {len(x)}; it "
                             "must return scores with the batch axis first, (N, K) or (N,).")
        return np.asarray(out, dtype=np.float64).reshape(len(x), -1)


#: Keras model → (its logits model, compiled): every metric called on the same model reuses one
#: build. The logits model runs the user's own layers (their weights are variables of the
#: program) except the copies it made (an output layer with a fused softmax, float32 copies of
#: 16-bit layers), whose weights :func:`_sync_copies` refreshes at every reuse.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sync_copies(forward, model) -> None:
    """Give the logits model's copies of the user's layers the user's current weights."""
    own = {id(layer) for layer in model._flatten_layers(include_self=False, recursive=True)}
    for layer in forward._flatten_layers(include_self=False, recursive=True):
        if id(layer) in own or not layer.weights:
            continue
        try:
            source = model.get_layer(layer.name)
        except ValueError:
            continue
        if source is not None and len(source.weights) == len(layer.weights):
            layer.set_weights(source.get_weights())


def _logits_of(model: Any) -> Callable:
    """A callable batch → logits for a Keras model or analyzer; other callables as they are."""
    import keras

    from keras_lrp.analyzers.running import _run

    forward = getattr(model, "forward_model", None)
    if forward is None and isinstance(model, keras.Model):
        if model in _COMPILED:
            forward, compiled = _COMPILED[model]
            _sync_copies(forward, model)
            return compiled
        from keras_lrp.analyzers.names import create_analyzer

        forward = create_analyzer("input", model, forward_check=False).forward_model
    if forward is not None:  # one compiled program (a graph, jit, or no_grad on PyTorch)
        from keras_lrp import backend

        compiled = backend.compile_model(functools.partial(_run, forward), forward)
        if isinstance(model, keras.Model):
            _COMPILED[model] = (forward, compiled)
        return compiled
    if callable(model):
        return model
    raise TypeError(f"model must be a Keras model, a keras-lrp analyzer or a callable batch → "
                    f"scores; got {type(model).__name__}.")


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


class Layout:
    """How an input batch splits into features, and how relevance maps onto them.

    Args:
        x: the input batch: images (N, H, W) / (N, H, W, C), tabular (N, F) floats, or token
            ids (N, T) integers.
        token_baseline: the id a perturbed token takes (token inputs only).

    Attributes:
        kind: ``"image"``, ``"tabular"`` or ``"tokens"``.
        shape: (N, P…) the feature grid: (N, H, W) for images, (N, F) or (N, T) otherwise.
    """

    def __init__(self, x: np.ndarray, token_baseline: Optional[int] = None):
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x needs a batch axis with at least one sample and a feature "
                             f"axis; got shape {x.shape}.")
        if np.issubdtype(x.dtype, np.integer):
            if x.ndim != 2:
                raise ValueError(f"Integer inputs are token ids of shape (N, T); got shape "
                                 f"{x.shape}.")
            if token_baseline is None:
                raise ValueError("x holds token ids: give token_baseline, the id a perturbed "
                                 "token takes (e.g. the padding or [MASK] id).")
            self.kind = "tokens"
        elif x.ndim == 2:
            self.kind = "tabular"
        elif x.ndim in (3, 4):
            self.kind = "image"
        else:
            raise ValueError(f"x of shape {x.shape} is neither images (N, H, W[, C]), tabular "
                             "(N, F) nor token ids (N, T).")
        self.x = x
        self.token_baseline = token_baseline
        self.shape = x.shape[:3] if self.kind == "image" else x.shape

    @property
    def features(self) -> int:
        """Features per sample."""
        return int(np.prod(self.shape[1:]))

    def relevance(self, a) -> np.ndarray:
        """Relevance per feature, ``(N, *feature grid)`` float64: summed over an image's channels.

        Accepts relevance shaped like x, or like the feature grid."""
        a = np.asarray(a, dtype=np.float64)
        if self.kind == "image" and a.shape == self.x.shape and self.x.ndim == 4:
            a = a.sum(axis=-1)
        elif self.kind == "image" and a.ndim == 4 and a.shape[-1] == 1 and \
                a.shape[:3] == tuple(self.shape):
            a = a[..., 0]
        if a.shape != tuple(self.shape):
            raise ValueError(f"Relevance of shape {a.shape} does not fit x of shape "
                             f"{self.x.shape}; give one shaped like x (or {tuple(self.shape)}).")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Relevance holds {np.sum(~np.isfinite(a))} NaN or infinite values.")
        return a

    def flat(self, a) -> np.ndarray:
        """Relevance per feature, flattened: (N, P)."""
        return self.relevance(a).reshape(len(self.x), -1)

    def replace(self, mask: np.ndarray, replacement: np.ndarray, x=None) -> np.ndarray:
        """x with the features where ``mask`` (N, P) is True set to ``replacement`` (shaped
        like x, or a per-sample value broadcast): all channels of a pixel together."""
        x = self.x if x is None else x
        m = np.asarray(mask, dtype=bool).reshape(self.shape)
        if self.kind == "image" and x.ndim == 4:
            m = m[..., None]
        return np.where(m, replacement, x).astype(x.dtype, copy=False)

    def baseline(self, kind: Union[str, float], rng: np.random.Generator,
                 x=None, **kwargs) -> np.ndarray:
        """The value every feature takes when perturbed, shaped like x (Quantus's
        ``perturb_baseline``): "black" / "white" the sample's min / max, "mean" its mean,
        "uniform" uniform in [uniform_low, uniform_high) (default [0, 1)), "random" the same,
        "zero" 0, or a number. Token inputs always take ``token_baseline``."""
        x = self.x if x is None else x
        if self.kind == "tokens":
            return np.full_like(x, self.token_baseline)
        axes = tuple(range(1, x.ndim))
        if isinstance(kind, (int, float)) and not isinstance(kind, bool):
            return np.full(x.shape, kind, dtype=x.dtype)
        values = {"black": lambda: x.min(axis=axes, keepdims=True),
                  "white": lambda: x.max(axis=axes, keepdims=True),
                  "mean": lambda: x.mean(axis=axes, keepdims=True),
                  "zero": lambda: np.zeros((len(x),) + (1,) * (x.ndim - 1)),
                  "uniform": lambda: rng.uniform(kwargs.get("uniform_low", 0.0),
                                                 kwargs.get("uniform_high", 1.0), x.shape),
                  "random": lambda: rng.uniform(kwargs.get("uniform_low", 0.0),
                                                kwargs.get("uniform_high", 1.0), x.shape)}
        if kind not in values:
            raise ValueError(f"perturb_baseline must be one of {BASELINES} or a number; got "
                             f"{kind!r}.")
        return np.broadcast_to(values[kind](), x.shape).astype(x.dtype)


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
