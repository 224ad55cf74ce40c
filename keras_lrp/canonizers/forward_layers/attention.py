"""The parts an attention call is expanded into (:mod:`keras_lrp.canonizers.attention`).

For ``keras.layers.MultiHeadAttention``, with projections q, k, v:

    s = k · (q / √d)                                             (:class:`AttentionScores`)
    A = softmax(s + mask)                                        (:class:`AttentionSoftmax`)
    c = A · v                                                    (:class:`AttentionCombine`)

``keras.layers.AdditiveAttention`` (Bahdanau) scores with :class:`AdditiveScores`; the masks
``keras.layers.Attention`` reads off its inputs are :class:`KerasMask`; grouped key/value heads
are repeated by :class:`RepeatHeads`. Their relevance layers are in
:mod:`keras_lrp.layers.attention`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class AttentionScores(keras.layers.Layer):
    """s = einsum(equation, k, q · scale): the first bilinear product of attention."""

    def __init__(self, equation: str, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.equation, self.scale = equation, float(scale)

    def call(self, query, key):
        if self.scale != 1.0:
            query = query * ops.convert_to_tensor(self.scale, dtype=query.dtype)  # not ops.cast:
            # that rounds a Python float through float32
        return ops.einsum(self.equation, key, query)

    def get_config(self):
        return {**super().get_config(), "equation": self.equation, "scale": self.scale}


class AdditiveScores(keras.layers.Layer):
    """s_ts = Σ_d scale_d · tanh(q_td + k_sd) (Bahdanau scores; scale_d = 1 without use_scale)."""

    def __init__(self, scale=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = None if scale is None else [float(v) for v in np.ravel(scale)]

    def terms(self, query, key):
        """(u, t): u_tsd = q_td + k_sd and t = scale · tanh(u), before the sum over d."""
        u = ops.expand_dims(query, -2) + ops.expand_dims(key, -3)
        t = ops.tanh(u)
        if self.scale is not None:
            t = t * ops.convert_to_tensor(np.asarray(self.scale), dtype=t.dtype)
        return u, t

    def call(self, query, key):
        return ops.sum(self.terms(query, key)[1], axis=-1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


class AttentionSoftmax(keras.layers.Layer):
    """A = softmax(s) over the key axes, masked positions pushed to −10⁹ first.

    ``style="mha"`` builds the mask as MultiHeadAttention does (query, value and key masks, the
    causal mask and ``attention_mask``, joined by AND, expanded over the heads) and applies it as
    ``keras.layers.Softmax`` does; ``style="dot"`` as ``keras.layers.Attention`` does (value mask
    and causal mask, subtracted before ``ops.softmax``).
    """

    def __init__(self, axis=(-1,), style: str = "mha", causal: bool = False,
                 expand_axis: int = -3, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.style = tuple(axis), style
        self.causal, self.expand_axis = bool(causal), int(expand_axis)

    def call(self, scores, query_mask=None, value_mask=None, key_mask=None, attention_mask=None):
        if self.style == "dot":
            return self._dot(scores, value_mask)
        mask = _join(None, None if query_mask is None else ops.expand_dims(
            ops.cast(query_mask, "bool"), -1))
        for m in (value_mask, key_mask):
            mask = _join(mask, None if m is None else ops.expand_dims(ops.cast(m, "bool"), -2))
        if self.causal:
            mask = _join(mask, _causal(ops.shape(scores)[-2], ops.shape(scores)[-1]))
        mask = _join(None if attention_mask is None else ops.cast(attention_mask, "bool"), mask)
        if mask is not None:
            while len(mask.shape) < len(scores.shape):
                mask = ops.expand_dims(mask, self.expand_axis)
            big = -3e4 if scores.dtype == "float16" else -1e9  # as keras.layers.Softmax
            scores = scores + (1.0 - ops.cast(mask, scores.dtype)) * big
        if len(self.axis) > 1:
            return ops.exp(scores - ops.logsumexp(scores, axis=self.axis, keepdims=True))
        return ops.softmax(scores, axis=self.axis[0])

    def _dot(self, scores, value_mask):
        mask = None if value_mask is None else ops.expand_dims(value_mask, -2)
        if self.causal:
            mask = _join(mask, _causal(ops.shape(scores)[-2], ops.shape(scores)[-1]))
        if mask is not None:
            big = 65504.0 if scores.dtype == "float16" else 1.0e9
            scores = scores - big * ops.cast(ops.logical_not(mask), scores.dtype)
        return ops.softmax(scores, axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis), "style": self.style,
                "causal": self.causal, "expand_axis": self.expand_axis}


class AttentionCombine(keras.layers.Layer):
    """c = einsum(equation, A, v): the second bilinear product; rows of masked queries are zero
    (``keras.layers.Attention`` with a query mask)."""

    def __init__(self, equation: str, **kwargs):
        super().__init__(**kwargs)
        self.equation = equation

    def call(self, probs, value, query_mask=None):
        out = ops.einsum(self.equation, probs, value)
        if query_mask is not None:
            out = ops.where(ops.expand_dims(query_mask, -1), out, ops.zeros_like(out))
        return out

    def get_config(self):
        return {**super().get_config(), "equation": self.equation}


class KerasMask(keras.layers.Layer):
    """The Keras mask a tensor carries (``keras.layers.Attention`` reads its inputs' masks
    implicitly), or all True: True where the step is real. Carries no relevance."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        # Keras passes the mask in (the way that works on every backend: a JAX array under jit
        # carries no attribute); a tensor's own mask is the fallback
        if mask is None:
            mask = keras.backend.get_keras_mask(x) if hasattr(keras.backend, "get_keras_mask") \
                else getattr(x, "_keras_mask", None)
        if mask is None:
            return ops.ones(ops.shape(x)[:-1], "bool")
        return ops.cast(mask, "bool")

    def compute_output_spec(self, x, mask=None):
        return keras.KerasTensor(x.shape[:-1], dtype="bool")


def _join(a, b):
    return b if a is None else a if b is None else ops.logical_and(a, b)


def _causal(t, s):
    """(1, T, S) with True where the key position s ≤ the query position t."""
    rows = ops.expand_dims(ops.arange(t), -1)
    return ops.expand_dims(ops.greater_equal(rows, ops.expand_dims(ops.arange(s), 0)), 0)


class RepeatHeads(keras.layers.Layer):
    """Grouped-query attention's key/value heads, each repeated for its group of query heads
    (``ops.repeat`` along the head axis). Relevance is routed back (summed over the copies)."""

    def __init__(self, repeats: int = 1, axis: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.repeats, self.axis = int(repeats), int(axis)

    def call(self, x):
        return ops.repeat(x, self.repeats, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "repeats": self.repeats, "axis": self.axis}


__all__ = ["AdditiveScores", "AttentionCombine", "AttentionScores", "AttentionSoftmax", "KerasMask",
           "RepeatHeads"]
