"""keras-hub's ``ViTPatchingAndEmbedding``, rewritten by hand rather than traced.

* ``ViTPatchingAndEmbedding`` → Conv2D patches, Reshape, :class:`PrependToken` (the class
  token, a learned constant: its share of relevance is absorbed like a bias) and
  :class:`AddConstant` (the position embedding, also absorbed in proportion: the Z rule).

Its numbers predate tracing (a class token tiled to the batch is now traced:
:mod:`keras_lrp.canonizers.trace_rewrites`), and this rewrite keeps them.
"""

from __future__ import annotations

from typing import List

import keras
import numpy as np
from keras import ops

from keras_lrp.core.graph import Graph, Node, Ref


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


def vit_embedding(node: Node, graph: Graph, shapes: dict, nodes: list) -> List[int]:
    """ViTPatchingAndEmbedding by hand (see the module docstring): the nodes appended to
    ``nodes``, and the id of the embedding they compute."""
    layer = node.layer
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        raise ValueError(f"Layer '{layer.name}' (ViTPatchingAndEmbedding) uses channels_first; "
                         "keras-lrp traces the channels_last layout only.")
    x = node.inputs[0]
    conv = type(layer.patch_embedding).from_config(
        {**layer.patch_embedding.get_config(), "name": f"{layer.name}_patches"})
    steps = [(conv, layer.patch_embedding.get_weights()),
             (keras.layers.Reshape((-1, layer.hidden_dim), name=f"{layer.name}_tokens"), None)]
    if layer.use_class_token:
        steps.append((PrependToken(np.asarray(layer.class_token).reshape(-1),
                                   name=f"{layer.name}_class_token"), None))
    positions = np.asarray(layer.position_embedding.embeddings)
    steps.append((AddConstant(positions, name=f"{layer.name}_positions"), None))
    shape = shapes[x]
    for step, weights in steps:
        out = graph.new_tensor()
        shape = tuple(step.compute_output_spec(keras.KerasTensor(shape)).shape)
        nodes.append(Node(step, (Ref(x),), {}, [x], [out], [shape], weights=weights))
        x = out
    return [x]


__all__ = ["AddConstant", "PrependToken", "vit_embedding"]
