"""keras-hub's ``ViTPatchingAndEmbedding``, rewritten by hand rather than traced.

* ``ViTPatchingAndEmbedding`` → Conv2D patches, Reshape, :class:`.PrependToken` (the class
  token, a learned constant: its share of relevance is absorbed like a bias) and
  :class:`.AddConstant` (the position embedding, also absorbed in proportion: the Z rule).

Its numbers predate tracing (a class token tiled to the batch is now traced:
:mod:`keras_lrp.canonizers.trace_rewrites`), and this rewrite keeps them.
"""

from __future__ import annotations

from typing import List

import keras
import numpy as np

from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.core.graph import Graph, Node, Ref


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
        steps.append((fwd.PrependToken(np.asarray(layer.class_token).reshape(-1),
                                       name=f"{layer.name}_class_token"), None))
    positions = np.asarray(layer.position_embedding.embeddings)
    steps.append((fwd.AddConstant(positions, name=f"{layer.name}_positions"), None))
    shape = shapes[x]
    for step, weights in steps:
        out = graph.new_tensor()
        shape = tuple(step.compute_output_spec(keras.KerasTensor(shape)).shape)
        nodes.append(Node(step, (Ref(x),), {}, [x], [out], [shape], weights=weights))
        x = out
    return [x]


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["vit_embedding"]
