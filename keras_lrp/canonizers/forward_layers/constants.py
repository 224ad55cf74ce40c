"""Layers that bring constants into the canonized graph: tables a trace fixed, tokens and
position embeddings.

:class:`BatchConstant`, :class:`ShapeConstant` and :class:`ShapeOutput` stand for what a traced
call computes from no input's values (:mod:`keras_lrp.canonizers.trace_rewrites`); their outputs
count as constants (:func:`keras_lrp.core.patterns.constant_tensors`). :class:`PrependToken` and
:class:`AddConstant` are ViT's class token and position embedding
(:mod:`keras_lrp.canonizers.vit_embedding`), whose share of relevance is absorbed like a bias.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops, tree


class BatchConstant(keras.layers.Layer):
    """A constant that a trace on a batch of 1 computed with a leading size of 1 where the call
    read the batch size (a class token tiled to the batch, SigLIP's pooling probe repeated to
    it), broadcast to the batch of the signal it is called on.

    Relevance: none reaches the signal (:class:`~keras_lrp.layers.ZeroRelevance`); its output
    counts as a constant (:func:`keras_lrp.core.patterns.constant_tensors`): concatenated to
    the signal, its rows' share is absorbed like a bias (as :class:`PrependToken`'s class
    token); a product with it is linear in the other factor.
    """

    #: Read by :func:`keras_lrp.core.patterns.constant_tensors`.
    depends_on_no_input = True

    def __init__(self, value=None, **kwargs):
        super().__init__(**kwargs)
        self.value = None if value is None else np.asarray(value).tolist()

    def call(self, x):
        value = ops.convert_to_tensor(np.asarray(self.value), dtype=self.compute_dtype)
        return ops.broadcast_to(value, (ops.shape(x)[0],) + tuple(value.shape[1:]))

    def compute_output_spec(self, x):
        return keras.KerasTensor((x.shape[0],) + np.shape(self.value)[1:],
                                 dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "value": self.value}


class ShapeConstant(keras.layers.Layer):
    """A traced call whose outputs depend on no input's values (only on its shape, which the
    trace fixed): those outputs, returned for any input.

    Relevance: none reaches the input (:class:`~keras_lrp.layers.ZeroRelevance`); its outputs
    count as constants (:func:`keras_lrp.core.patterns.constant_tensors`), so a product with
    them holds them, as a bias-like table.
    """

    #: Read by :func:`keras_lrp.core.patterns.constant_tensors`.
    depends_on_no_input = True

    def __init__(self, values=(), dtypes=None, shapes=None, **kwargs):
        super().__init__(**kwargs)
        self.dtypes = list(dtypes) if dtypes else [str(np.asarray(v).dtype) for v in values]
        # the shapes too: an empty array's list ([]) forgets them (DeiT's (0, T, d) outputs)
        self.shapes = [list(s) for s in shapes] if shapes else \
            [list(np.shape(v)) for v in values]
        self.values = [np.asarray(v).tolist() for v in values]

    def _arrays(self):
        return [np.asarray(v, d).reshape(s)
                for v, d, s in zip(self.values, self.dtypes, self.shapes)]

    def call(self, x):
        out = [ops.convert_to_tensor(a) for a in self._arrays()]
        return out[0] if len(out) == 1 else tuple(out)

    def compute_output_spec(self, x):
        out = [keras.KerasTensor(a.shape, dtype=str(a.dtype)) for a in self._arrays()]
        return out[0] if len(out) == 1 else tuple(out)

    def get_config(self):
        return {**super().get_config(), "values": self.values, "dtypes": self.dtypes,
                "shapes": self.shapes}


class ShapeOutput(keras.layers.Layer):
    """An output of a traced call that depends on no input's values but on the batch size
    (XLNet's relative position table, laid out by batch, so that each row's positions depend on
    how many rows there are): ``layer``'s own call at run time, its ``index``-th output.

    Relevance: none reaches the inputs (:class:`~keras_lrp.layers.ZeroRelevance`); its output
    counts as a constant (:func:`keras_lrp.core.patterns.constant_tensors`), like
    :class:`ShapeConstant`'s, which it stands for where the twin traces' values differ.
    """

    #: Read by :func:`keras_lrp.core.patterns.constant_tensors`.
    depends_on_no_input = True

    def __init__(self, layer=None, index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.layer, self.index = layer, int(index)

    def call(self, *args, **kwargs):
        return [v for v in tree.flatten(self.layer(*args, **kwargs)) if v is not None][self.index]

    def compute_output_spec(self, *args, **kwargs):
        out = self.layer.compute_output_spec(*args, **kwargs)
        return [v for v in tree.flatten(out) if v is not None][self.index]

    def get_config(self):
        return {**super().get_config(), "index": self.index,
                "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("layer")), **config)


class PrependToken(keras.layers.Layer):
    """Concatenate a learned token (a constant here) in front of the sequence: (B, T, d) →
    (B, T+1, d). Relevance: the sequence keeps its rows, the token's row is absorbed."""

    def __init__(self, token=None, **kwargs):
        super().__init__(**kwargs)
        self.token = None if token is None else np.asarray(token, np.float64).tolist()

    def call(self, x):
        token = ops.convert_to_tensor(np.asarray(self.token), dtype=x.dtype)
        token = ops.reshape(token, (1, 1, -1)) + ops.zeros_like(x[:, :1, :])
        return ops.concatenate([token, x], axis=1)

    def get_config(self):
        return {**super().get_config(), "token": self.token}


class AddConstant(keras.layers.Layer):
    """x + c for a constant c broadcast over the batch (a position embedding). Relevance: the
    Z rule, R_x = x / (x + c) · R; the constant's share is absorbed like a bias."""

    def __init__(self, value=None, **kwargs):
        super().__init__(**kwargs)
        self.value = None if value is None else np.asarray(value, np.float64).tolist()

    def call(self, x):
        return x + ops.convert_to_tensor(np.asarray(self.value), dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "value": self.value}


__all__ = ["AddConstant", "BatchConstant", "PrependToken", "ShapeConstant", "ShapeOutput"]
