"""The Keras layers of a conditional relevance program (:mod:`keras_lrp.concepts.conditional`):
the forward values gathered once per condition row, the explained output of each row, and the
channel mask applied to the relevance at a conditioned layer."""

from __future__ import annotations

import keras
from keras import ops


class Rows(keras.layers.Layer):
    """``x[rows]``: the forward value of the sample each condition row explains (the forward
    pass runs once per sample, the reverse pass once per row)."""

    def call(self, inputs):
        x, rows = inputs
        return ops.take(x, ops.cast(rows, "int32"), axis=0)

    def compute_output_spec(self, inputs):
        x, rows = inputs
        return keras.KerasTensor((rows.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype)


class Targets(keras.layers.Layer):
    """The explained output index of each row: the given one, or the row's largest output where
    it is negative."""

    def call(self, inputs):
        logits, targets = inputs
        flat = ops.reshape(logits, (ops.shape(logits)[0], -1))
        best = ops.cast(ops.argmax(flat, axis=-1), "int32")
        targets = ops.cast(targets, "int32")
        return ops.where(ops.less(targets, 0), best, targets)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs[0].shape[0],), dtype="int32")


class ChannelMask(keras.layers.Layer):
    """R ⊙ m: the relevance at a layer's output times a per-row channel mask m (rows, K),
    broadcast over every axis but the batch and the channel ``axis``.

    Formula:
        R'_{n, …, k, …} = R_{n, …, k, …} · m_{n, k}  (Achtibat et al. 2023: the
        relevance of all but the conditioned channels is zeroed).
    """

    def __init__(self, axis: int, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs):
        relevance, mask = inputs
        rank = len(relevance.shape)
        shape = [1] * rank
        shape[0], shape[self.axis] = -1, relevance.shape[self.axis]
        return relevance * ops.reshape(ops.cast(mask, relevance.dtype), shape)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class KeepRows(keras.layers.Layer):
    """R · (1 − c): the relevance pending on paths parallel to a conditioned layer, zeroed in
    the rows c (M,) whose condition names that layer (zennit-crp's ``exclude_parallel``)."""

    def call(self, inputs):
        relevance, conditioned = inputs
        keep = 1 - ops.cast(conditioned, relevance.dtype)
        return relevance * ops.reshape(keep, (-1,) + (1,) * (len(relevance.shape) - 1))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)


__all__ = ["ChannelMask", "KeepRows", "Rows", "Targets"]
