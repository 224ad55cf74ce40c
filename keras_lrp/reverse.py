"""The reverse graph: (graph, composite, explained output) → relevance at every tensor.

:func:`reverse` walks the canonized forward graph from the explained output back to the inputs,
calling one relevance layer per forward node (chosen by the composite) on symbolic Keras
tensors. Relevance reaching a tensor from several readers is summed. The result is ordinary Keras
tensors, from which the attributor makes a Keras model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List

import keras
from keras import ops

from keras_lrp.composites import Composite, Context
from keras_lrp.graph import Graph


@dataclasses.dataclass
class Reverse:
    """What :func:`reverse` returns."""

    #: The relevance at each model input, in input order.
    inputs: List[Any]
    #: Layer name → relevance at that layer's output, in forward order (inputs not included).
    layerwise: Dict[str, Any]


def reverse(graph: Graph, composite: Composite, values: Dict[int, Any], output: int, start,
            inputs: List[Any], model=None) -> Reverse:
    """Propagate ``start`` (the relevance at tensor ``output``) back through ``graph``.

    Args:
        graph: the canonized forward graph.
        composite: decides each node's relevance layer.
        values: tensor id → symbolic value of the replayed forward graph.
        output: the id of the explained output tensor.
        start: the symbolic relevance at that output.
        inputs: the symbolic model inputs (for zero relevance where an input is not used).
        model: the user's model (for ``until_layer_idx``).
    """
    ctx = Context(graph, model)
    relevance = {output: start}
    layerwise: Dict[str, Any] = {}
    calls: Dict[str, int] = {}  # a shared layer's calls are numbered in forward order
    call_index = {}
    for node in graph.nodes:
        call_index[id(node)] = calls.get(node.layer.name, 0)
        calls[node.layer.name] = call_index[id(node)] + 1
    sums = 0
    for node in reversed(graph.nodes):
        r_outs = [relevance.get(t) for t in node.outputs]
        if all(r is None for r in r_outs):
            continue  # the node does not lead to the explained output
        rel = composite.relevance_layer(node, ctx)
        if len(node.outputs) != 1 and not getattr(rel, "multi_output", False):
            raise ValueError(f"Layer '{node.layer.name}' has {len(node.outputs)} outputs; "
                             "keras-lrp supports single-output layers (and recurrent layers "
                             "with return_state=True).")
        r_outs = [ops.zeros_like(values[t]) if r is None else r
                  for t, r in zip(node.outputs, r_outs)]
        k = call_index[id(node)]
        layerwise[f"{node.layer.name}_{k}" if k else node.layer.name] = r_outs[0]
        if k:
            rel.name = f"{rel.name}_{k}"
        out = rel([values[t] for t in node.inputs] + [values[t] for t in node.outputs] + r_outs)
        out = out if isinstance(out, (list, tuple)) else [out]
        for tid, r in zip(node.inputs, out):
            if tid in relevance:  # several readers: sum their relevance
                sums += 1
                r = keras.layers.Add(name=f"relevance_sum_{sums}",
                                     dtype=relevance[tid].dtype)([relevance[tid], r])
            relevance[tid] = r
    input_relevance = [relevance[tid] if tid in relevance else ops.zeros_like(x)
                       for tid, x in zip(graph.inputs, inputs)]
    return Reverse(input_relevance, dict(reversed(list(layerwise.items()))))
