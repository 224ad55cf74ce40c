"""Tied language-model heads: the reversed token embedding as the linear map it is.

keras-hub's causal LMs (GPT-2, Llama, Gemma, …) compute their logits with the token embedding
reversed, ``ReversibleEmbedding(h, reverse=True)``: ``logits = h Eᵀ`` (or ``h W`` with an untied
``reverse_embeddings`` W), then optionally Gemma's soft cap ``c·tanh(logits/c)``. The same layer
also looks tokens up, so the layer itself cannot say which of its two maps a call is.
:func:`untie_heads` gives every reversed call its own bias-free ``Dense`` with kernel Eᵀ (and a
:class:`.SoftCap` after it), so the composite's linear rule serves the head like any Dense, and
the lookup keeps the embedding's rule. The embedding matrix then enters the explanation twice, as
it enters the model: the head's rule weighs the hidden state by Eᵀ, the lookup's gives each token
the relevance that reaches its embedding vector.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.core.graph import Graph, Node, Ref


def _reversible(layer) -> bool:
    cls = getattr(keras.layers, "ReversibleEmbedding", None)
    return cls is not None and isinstance(layer, cls)


def is_reverse_call(node: Node) -> bool:
    """A ``ReversibleEmbedding`` called with ``reverse=True`` (the head, not the lookup)."""
    if not _reversible(node.layer):
        return False
    flag = node.kwargs.get("reverse", node.args[1] if len(node.args) > 1 else False)
    return flag is True


def untie_heads(graph: Graph) -> None:
    """Replace every reversed call of a ``ReversibleEmbedding`` by a Dense with kernel Eᵀ
    (see the module docstring). Runs on the user's layers: it only reads their weights."""
    if not any(is_reverse_call(n) for n in graph.nodes):
        return
    nodes, heads = [], {}
    for node in graph.nodes:
        if not is_reverse_call(node):
            nodes.append(node)
            continue
        layer = node.layer
        if id(layer) not in heads:
            kernel = np.asarray(keras.ops.convert_to_numpy(
                layer.embeddings if layer.tie_weights else layer.reverse_embeddings))
            if layer.tie_weights:
                kernel = kernel.T
            dense = keras.layers.Dense(kernel.shape[-1], use_bias=False,
                                       name=f"{layer.name}_head", dtype=layer.dtype_policy)
            cap = getattr(layer, "logit_soft_cap", None)
            soft = None if cap is None else fwd.SoftCap(cap, name=f"{layer.name}_soft_cap",
                                                        dtype=layer.dtype_policy)
            heads[id(layer)] = [dense, soft, [kernel]]
        dense, soft, weights = heads[id(layer)]
        heads[id(layer)][2] = None  # the first call of the head carries its weights
        x = node.args[0] if node.args else node.kwargs["inputs"]
        out = node.outputs[0] if soft is None else graph.new_tensor()
        nodes.append(Node(dense, (x,), {}, [x.tid] if isinstance(x, Ref) else [], [out],
                          list(node.out_shapes), weights=weights,
                          out_dtypes=list(node.out_dtypes)))
        if soft is not None:
            nodes.append(Node(soft, (Ref(out),), {}, [out], list(node.outputs),
                              list(node.out_shapes), out_dtypes=list(node.out_dtypes)))
    graph.nodes = nodes


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["is_reverse_call", "untie_heads"]
