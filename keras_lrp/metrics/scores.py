"""The model as the metrics call it: a batch in, (N, K) float64 scores out, one compiled
program per Keras model, several perturbation steps stacked into few calls."""

from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, Iterable, Optional

import numpy as np


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

    def stacked(self, batches: Iterable[np.ndarray], per_call: Optional[int] = None) -> np.ndarray:
        """Scores of several batches of the same shape, (B, N, K), with as few model calls as
        :attr:`max_stack` samples (and 2²⁴ input values) per call allow: perturbation steps cost
        one call together instead of one each (a call's fixed cost dominates small models).
        ``batches`` may be a generator: at most one call's worth is held at a time.
        ``per_call`` fixes how many batches go into each call instead."""
        parts, pending, held, n = [], [], 0, None
        for b in batches:
            b = np.asarray(b)
            n = len(b) if n is None else n
            pending.append(b)
            held += len(b)
            per_value = max(1, int(np.prod(b.shape[1:])))
            full = len(pending) >= per_call if per_call else \
                held >= min(self.max_stack, max(len(b), (1 << 24) // per_value))
            if full:
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
