"""The reverse graph: (graph, composite, explained output) → relevance at every tensor.

:func:`reverse` walks the canonized forward graph from the explained output back to the inputs,
calling one relevance layer per forward node (chosen by the composite) on symbolic Keras
tensors. Relevance reaching a tensor from several readers is summed. The result is ordinary Keras
tensors, from which the analyzer makes a Keras model.

Memory: a kernel layer followed by a ReLU needs its pre-activation z only where relevance
arrives, and relevance never arrives where the ReLU's output a is 0 when every reader of a
gives each input that input times something finite (the Z, ε, αβ, z⁺ and γ rules, proportional
and routing layers: :func:`zero_where_zero`). There z = a wherever a > 0, and both ratios
R/z and R/a are 0 elsewhere, so the rule is handed a instead of z: the analysis then keeps one
activation per layer, as a gradient does, instead of two (:func:`relu_stand_ins`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Dict, List, Optional

import keras
from keras import ops

from keras_lrp.composites import Composite
from keras_lrp.core import types
from keras_lrp.core.graph import Graph, Node, UniqueNames


def __getattr__(name):
    if name == "ZERO_AT_ZERO":  # moved to keras_lrp.core.types beside its twin
        warnings.warn("keras_lrp.analyzers.reverse.ZERO_AT_ZERO moved to "
                      "keras_lrp.core.types.ZERO_AT_ZERO; the old name goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        return types.ZERO_AT_ZERO
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclasses.dataclass
class Reverse:
    """What :func:`reverse` returns."""

    #: The relevance at each model input, in input order.
    inputs: List[Any]
    #: Layer name → relevance at that layer's output, in forward order (inputs not included).
    layerwise: Dict[str, Any]


def reverse(graph: Graph, composite: Composite, values: Dict[int, Any], output: int, start,
            inputs: List[Any], model=None, condition: Optional[Dict[int, Any]] = None,
            parallel: Optional[Dict[int, Any]] = None) -> Reverse:
    """Propagate ``start`` (the relevance at tensor ``output``) back through ``graph``.

    Args:
        graph: the canonized forward graph.
        composite: decides each node's relevance layer.
        values: tensor id → symbolic value of the replayed forward graph.
        output: the id of the explained output tensor.
        start: the symbolic relevance at that output.
        inputs: the symbolic model inputs (for zero relevance where an input is not used).
        model: the user's model (for ``until_layer_idx``).
        condition: tensor id → ``f(relevance) → relevance``, applied to the relevance at that
            tensor (summed over its readers) before its layer's rule reads it: Concept
            Relevance Propagation's masks (:mod:`keras_lrp.concepts`).
        parallel: tensor id → ``f(relevance) → relevance``, applied, when the walk reaches
            that tensor, to the relevance pending at every other tensor (on paths parallel to
            it, e.g. a residual block's skip): zennit-crp's ``exclude_parallel`` zeroes it for
            the rows conditioned there, so that all their relevance passes the condition.
    """
    ctx = composite.context(graph, model)
    rels = relevance_layers(graph, composite, ctx, output)
    stand_in = relu_stand_ins(graph, rels, output)
    value = lambda t: values[stand_in.get(t, t)]  # noqa: E731
    relevance = {output: start}
    layerwise: Dict[str, Any] = {}
    calls: Dict[str, int] = {}  # a shared layer's calls are numbered in forward order
    call_index = {}
    for node in graph.nodes:
        call_index[id(node)] = calls.get(node.layer.name, 0)
        calls[node.layer.name] = call_index[id(node)] + 1
    # relevance layers are named after their forward layer, never onto a name in use (a layer
    # named "output" would meet the start's "output_relevance")
    names = UniqueNames({n.layer.name for n in graph.nodes} | {x.name for x in inputs}
                        | {start._keras_history.operation.name})
    sums = 0
    for node in reversed(graph.nodes):
        r_outs = [relevance.pop(t, None) for t in node.outputs]  # what is left: still pending
        if all(r is None for r in r_outs):
            continue  # the node does not lead to the explained output
        rel = rels[id(node)]
        if getattr(rel, "gives_nothing", False) and len(node.outputs) != 1:
            continue  # a held router's top-k: its inputs get no relevance
        if len(node.outputs) != 1 and not getattr(rel, "multi_output", False):
            raise ValueError(f"Layer '{node.layer.name}' has {len(node.outputs)} outputs; "
                             "keras-lrp supports single-output layers (and recurrent layers "
                             "with return_state=True).")
        r_outs = [ops.zeros_like(values[t]) if r is None else r
                  for t, r in zip(node.outputs, r_outs)]
        if condition and any(t in condition for t in node.outputs):
            r_outs = [condition[t](r) if t in condition else r
                      for t, r in zip(node.outputs, r_outs)]
            for t in node.outputs:
                if parallel and t in parallel:
                    relevance = {p: parallel[t](r) for p, r in relevance.items()}
        k = call_index[id(node)]
        layerwise[f"{node.layer.name}_{k}" if k else node.layer.name] = r_outs[0]
        rel.name = names(f"{rel.name}_{k}" if k else rel.name)
        out = rel([value(t) for t in node.inputs] + [value(t) for t in node.outputs] + r_outs)
        out = out if isinstance(out, (list, tuple)) else [out]
        for tid, r in zip(node.inputs, out):
            if tid in relevance:  # several readers: sum their relevance
                sums += 1
                r = keras.layers.Add(name=names(f"relevance_sum_{sums}"),
                                     dtype=relevance[tid].dtype)([relevance[tid], r])
            relevance[tid] = r
    input_relevance = [relevance[tid] if tid in relevance else ops.zeros_like(x)
                       for tid, x in zip(graph.inputs, inputs)]
    return Reverse(input_relevance, dict(reversed(list(layerwise.items()))))


def relevance_layers(graph: Graph, composite: Composite, ctx, output: int) -> Dict[int, Any]:
    """id(node) → its relevance layer, for the nodes that lead to tensor ``output``."""
    needed, rels = {output}, {}
    for node in reversed(graph.nodes):
        if any(t in needed for t in node.outputs):
            rels[id(node)] = composite.relevance_layer(node, ctx)
            needed.update(node.inputs)
    return rels


def zero_where_zero(graph: Graph, rels: Dict[int, Any], output: int) -> Dict[int, bool]:
    """tensor id → True where the relevance reaching the tensor is provably 0 wherever its
    value is 0: every reader passes relevance to it in proportion to it (x-proportional rules,
    ProportionalRelevance), or routes it unchanged through layers that map 0 to 0 into a tensor
    with the same property: each relevance layer declares it (``keeps_zeros(node,
    outputs_keep)``). Graph outputs never qualify (their relevance is the start)."""
    readers = {t: [r for r in users if id(r) in rels]
               for t, users in graph.consumers().items()}
    known: Dict[int, bool] = {}
    for node in reversed(graph.nodes):
        for t in node.outputs:
            known[t] = (t not in graph.outputs and t != output and bool(readers.get(t))
                        and all(_keeps_zeros(r, rels[id(r)], known) for r in readers[t]))
    return known


def _keeps_zeros(node: Node, rel, known) -> bool:
    return rel.keeps_zeros(node, all(known.get(t, False) for t in node.outputs))


def _plain_relu(layer) -> bool:
    if isinstance(layer, types.ACTIVATION):
        return types.layer_activation(layer) == "relu"
    return (isinstance(layer, keras.layers.ReLU) and layer.max_value is None
            and float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0)


def relu_stand_ins(graph: Graph, rels: Dict[int, Any], output: int) -> Dict[int, int]:
    """z's id → a's id, for each kernel layer output z = Wx + b read only by a plain ReLU
    a = max(z, 0) whose output satisfies :func:`zero_where_zero`: the rule and the ReLU's
    relevance layer are handed a in place of z (see the module docstring)."""
    zero = zero_where_zero(graph, rels, output)
    readers = graph.consumers()
    out = {}
    for node in graph.nodes:
        if not getattr(rels.get(id(node)), "output_stand_in", False) or len(node.outputs) != 1:
            continue
        z = node.outputs[0]
        users = readers.get(z, [])
        if (len(users) == 1 and id(users[0]) in rels and _plain_relu(users[0].layer)
                and users[0].inputs == [z] and z not in graph.outputs
                and zero.get(users[0].outputs[0], False)):
            out[z] = users[0].outputs[0]
    return out
