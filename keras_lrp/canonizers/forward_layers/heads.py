"""Layers on a language model's logits: Gemma's soft cap (:mod:`keras_lrp.canonizers.heads`)
and the log-probabilities :func:`keras_lrp.explain_generation` appends.
"""

from __future__ import annotations

import keras
from keras import ops


class SoftCap(keras.layers.Layer):
    """Logit soft-capping, y = c · tanh(x / c) (Gemma's final logits); its relevance layer is
    :class:`~keras_lrp.layers.structural.SoftCapRelevance` (LXT's treatment)."""

    def __init__(self, cap: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.cap = float(cap)

    def call(self, x):
        cap = ops.convert_to_tensor(self.cap, dtype=x.dtype)
        return ops.tanh(x / cap) * cap

    def get_config(self):
        return {**super().get_config(), "cap": self.cap}


class LogSoftmax(keras.layers.Layer):
    """log p = s − logsumexp(s) over the last axis: the log-probabilities of a language model's
    next token, appended by :func:`keras_lrp.explain_generation` to explain a span's
    log-likelihood. Its relevance layer is
    :class:`~keras_lrp.layers.attention.LogSoftmaxRelevance`."""

    def call(self, logits):
        return logits - ops.logsumexp(logits, axis=-1, keepdims=True)


__all__ = ["LogSoftmax", "SoftCap"]
