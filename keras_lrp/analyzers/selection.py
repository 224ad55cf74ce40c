"""The relevance entering the network at its explained output: :class:`OutputRelevance`, from
the logits, the neuron selection and (inputs padded to a longer length) each row's real length.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_lrp.core.stabilize import positive

NEURON_SELECTION_MODES = ("max_activation", "index", "all")
OUTPUT_RELEVANCES = ("logit", "one", "positive_logit")


class OutputRelevance(keras.layers.Layer):
    """The relevance entering the network at its output (pre-softmax logits).

    Formula:
        R_k = m_k · y_k  (``output_relevance="logit"``), R_k = m_k · max(y_k, 0)
        (``"positive_logit"``, Deep Taylor's) or  R_k = m_k  (``"one"``), with m the
        selection mask: one-hot of argmax_k y_k (``max_activation``), one-hot of the given index
        (``index``) or all ones (``all``).

        With ``length_axes`` (inputs padded to a longer length, see
        :mod:`keras_lrp.analyzers.lengths`), the last input holds each row's real length n
        and only outputs at positions p < n along those axes may be selected: m_k is zeroed at
        the padded positions, and ``max_activation`` takes its argmax over the real ones.
    """

    def __init__(self, mode: str = "max_activation", start: str = "logit",
                 length_axes: Sequence[int] = (), **kwargs):
        super().__init__(**kwargs)
        self.mode, self.start = mode, start
        self.length_axes = tuple(int(a) for a in length_axes)

    def _real(self, logits, lengths):
        """1 at the outputs whose positions along :attr:`length_axes` are below the row's
        length, else 0 (flattened like the logits)."""
        shape = tuple(logits.shape)
        real = None
        for axis in self.length_axes:
            where = [1] * len(shape)
            where[axis] = shape[axis]
            positions = ops.reshape(ops.arange(shape[axis], dtype="int32"), where)
            bound = ops.reshape(ops.cast(lengths, "int32"), (-1,) + (1,) * (len(shape) - 1))
            inside = ops.less(positions, bound)
            real = inside if real is None else ops.logical_and(real, inside)
        real = ops.broadcast_to(real, ops.shape(logits))
        return ops.reshape(real, (-1, int(np.prod(shape[1:]))))

    def call(self, inputs):
        logits = inputs[0]
        static = None not in tuple(logits.shape[1:])  # else an open length (a sequence tagger)
        if static:
            n = int(np.prod(logits.shape[1:]))
            flat = ops.reshape(logits, (-1, n))
        else:
            flat = ops.reshape(logits, (ops.shape(logits)[0], -1))
            n = ops.shape(flat)[1]
        real = self._real(logits, inputs[-1]) if self.length_axes else None

        def one_hot(index):
            if static:
                return ops.one_hot(index, n, dtype=flat.dtype)
            return ops.cast(ops.equal(ops.expand_dims(ops.arange(n, dtype="int32"), 0),
                                      ops.expand_dims(ops.cast(index, "int32"), 1)), flat.dtype)

        if self.mode == "all":
            mask = ops.ones_like(flat)
        elif self.mode == "max_activation":
            scores = flat if real is None else ops.where(
                real, flat, ops.full_like(flat, -np.inf))
            mask = one_hot(ops.argmax(scores, axis=-1))
        else:
            mask = one_hot(ops.cast(inputs[1], "int32"))
        if real is not None:
            mask = mask * ops.cast(real, mask.dtype)
        if self.start == "one":
            relevance = mask
        else:  # "logit", or "positive_logit" (Deep Taylor explains max(y, 0))
            relevance = mask * (flat if self.start == "logit" else positive(flat))
        return ops.reshape(relevance, ops.shape(logits))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "start": self.start,
                "length_axes": self.length_axes}
