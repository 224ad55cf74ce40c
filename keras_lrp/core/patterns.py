"""Facts about the values of a graph that decide how relevance crosses a product.

A product ``a ⊙ b`` (or an einsum of two tensors) is linear in one factor only when the other is
held constant. These analyses say which factor that is, from the graph alone:

* :func:`constant_tensors` — tensors the graph computes from no model input (a table or mask
  built from ``ops.arange`` inside a traced call): a constant factor. Constants evaluated while
  the model was built are not tensors of the graph at all; a product with one is linear too.
* :func:`norm_statistics` — the factor ``1/rms(x)`` of an RMS norm written in raw ops
  (``x * rsqrt(mean(x²) + ε)``; Gemma's ``x * reciprocal(sqrt(mean(square(x)) + ε))``), held
  constant by AttnLRP's identity rule for norms; and the nodes that compute it.
* :func:`held_factor` — the one question every product rule asks: which operand of a product is
  held constant. Its ``kind`` says which factors count: ``"outright"`` (a norm's 1/rms, a
  constant, a gate or a factor broadcast over the other: a mixture of experts' routing weights),
  ``"gate"`` (the gates alone) or ``"cp"`` (the factor CP-LRP holds in a product of two
  signals: the attention weights, a softmax output, or the activated gate of a gated MLP).
  :func:`held_nodes` — the nodes that only feed factors held outright (a router's softmax and
  top-k), which get no relevance and need no rule.

Each is seen through casts, dropout and the like (:data:`PASS_THROUGH`), since keras-hub casts
around its norms and activations.

And two facts the rules read (moved here from :mod:`keras_lrp.core.graph`, which builds and runs
graphs): :func:`nonnegative_tensors` — tensors provably ≥ 0, and :func:`input_fed_nodes` — the
first layers an input-layer rule serves.

The names ``factor_index``, ``gate_index`` and ``held_operand`` of 0.5 were three names for
:func:`held_factor`; they work for one more release and warn with a DeprecationWarning.
"""

from __future__ import annotations

import warnings
from typing import Dict, Optional, Set

import keras
import numpy as np

from keras_lrp.core import types
from keras_lrp.core.graph import Graph, Node, Ref

#: Layers and ops that leave a value as it is (up to precision): seen through by the analyses.
PASS_THROUGH = (keras.layers.Dropout, keras.layers.Identity) + types.OP_CAST


def constant_tensors(graph: Graph) -> Set[int]:
    """The ids of tensors that depend on no model input (a layer whose class says
    ``depends_on_no_input`` reads its input's shape only)."""
    live = set(graph.inputs)
    out = set()
    for node in graph.nodes:
        depends = any(t in live for t in node.inputs) and \
            not getattr(node.layer, "depends_on_no_input", False)
        (live if depends else out).update(node.outputs)
    return out


def _source(tid: int, producers: Dict[int, Node]) -> int:
    """The tensor behind ``tid`` once casts and dropout are seen through."""
    node = producers.get(tid)
    while node is not None and isinstance(node.layer, PASS_THROUGH) and len(node.inputs) == 1:
        tid = node.inputs[0]
        node = producers.get(tid)
    return tid


def _constant_arg(node: Node, value: float) -> bool:
    """Whether ``node`` is called on one tensor and the Python number ``value``."""
    numbers = [a for a in node.args if not isinstance(a, Ref)]
    return len(node.inputs) == 1 and any(
        isinstance(a, (int, float)) and float(a) == value for a in numbers)


def _mean_of_squares(tid: int, producers, chain: list) -> Optional[int]:
    """x if ``tid`` is mean(x²) over some axes (x², x**2 or x·x), else None."""
    node = producers.get(_source(tid, producers))
    if node is None or not isinstance(node.layer, types.OP_MEAN):
        return None
    chain.append(node)
    sq = producers.get(_source(node.inputs[0], producers))
    if sq is None:
        return None
    if isinstance(sq.layer, types.OP_SQUARE) or (
            isinstance(sq.layer, types.OP_POWER) and _constant_arg(sq, 2)):
        chain.append(sq)
        return _source(sq.inputs[0], producers)
    if isinstance(sq.layer, types.MULTIPLY) and len(sq.args) == 2 and \
            len(set(_source(t, producers) for t in sq.inputs)) == 1 and len(sq.inputs) == 2:
        chain.append(sq)
        return _source(sq.inputs[0], producers)
    return None


def _inverse_rms(tid: int, producers, chain: list) -> Optional[int]:
    """x if ``tid`` is 1/√(mean(x²) + ε) (rsqrt, or reciprocal of sqrt), else None."""
    node = producers.get(_source(tid, producers))
    if node is None:
        return None
    chain.append(node)
    if isinstance(node.layer, types.OP_RECIPROCAL):
        node = producers.get(_source(node.inputs[0], producers))
        if node is None or not isinstance(node.layer, types.OP_SQRT):
            return None
        chain.append(node)
    elif not isinstance(node.layer, types.OP_RSQRT):
        return None
    inner = _source(node.inputs[0], producers)
    add = producers.get(inner)
    if add is not None and isinstance(add.layer, types.OP_ARITHMETIC) and len(add.inputs) == 1:
        chain.append(add)  # + ε
        inner = _source(add.inputs[0], producers)
    return _mean_of_squares(inner, producers, chain)


def norm_statistics(graph: Graph):
    """(id(product node) → index of its 1/rms factor, ids of the nodes computing those factors)
    for every RMS norm written in raw ops: a product of x and 1/√(mean(x²) + ε)."""
    producers = graph.producers()
    factors, chains = {}, set()
    for node in graph.nodes:
        if not (isinstance(node.layer, types.MULTIPLY) and len(node.inputs) == 2):
            continue
        for i in (0, 1):
            chain: list = []
            x = _inverse_rms(node.inputs[i], producers, chain)
            if x is not None and x == _source(node.inputs[1 - i], producers):
                factors[id(node)] = i
                chains.update(id(n) for n in chain)
                break
    return factors, chains


class Facts:
    """The analyses of one graph, computed once (the base map asks for every node)."""

    def __init__(self, graph: Graph):
        self.constants = constant_tensors(graph)
        self.norm_factors, self.norm_chain = norm_statistics(graph)
        self.held = held_nodes(graph, lambda node: held_factor(node, graph, found=self))


def facts(graph: Graph) -> Facts:
    """The :class:`Facts` of ``graph`` as it is now (recomputed after the node list changes)."""
    key = (id(graph.nodes), len(graph.nodes), id(graph.nodes[-1]) if graph.nodes else 0)
    cached = getattr(graph, "_lrp_facts", None)
    if cached is None or cached[0] != key:
        cached = (key, Facts(graph))
        graph._lrp_facts = cached
    return cached[1]


#: The kinds of :func:`held_factor`: which factors of a product count as held constant.
HELD_KINDS = ("outright", "gate", "cp")


def held_factor(node: Node, graph: Graph, *, kind: str = "outright",
                found: Optional[Facts] = None) -> Optional[int]:
    """Which operand (0 or 1) of a two-tensor product is held constant, or ``None``.

    Args:
        node: the product (for ``"outright"``, a ``Multiply`` or ``ops.multiply``).
        graph: the graph ``node`` is in.
        kind: which factors count, one of :data:`HELD_KINDS`:

            * ``"outright"`` (default) — a factor held constant outright, so the product is
              linear in the other and the factor gets no relevance: the 1/rms of a norm, a
              tensor that depends on no input, else a gate (``"gate"``; a mixture of experts'
              routing weights, broadcast over the features, are one).
            * ``"gate"`` — the input broadcast over the other (fewer elements:
              squeeze-and-excitation), or else the one produced by a sigmoid-like activation or
              a capped ReLU, seen through reshapes and element-wise ops with constants.
            * ``"cp"`` — the factor CP-LRP holds in a product of two signals: the one produced
              by a softmax (attention weights) or a non-linear activation (a gated MLP's gate),
              seen through casts and dropout; ``None`` if neither or both are.
        found: the graph's :class:`Facts`, if already computed (``"outright"`` only).
    """
    if kind not in HELD_KINDS:
        raise ValueError(f"kind must be one of {HELD_KINDS}, got {kind!r}.")
    if len(node.inputs) != 2:
        return None
    if kind == "gate":
        return _gate(node, graph)
    if kind == "cp":
        return _activated_factor(node, graph)
    if not isinstance(node.layer, types.MULTIPLY):
        return None
    found = facts(graph) if found is None else found
    if id(node) in found.norm_factors:
        return found.norm_factors[id(node)]
    constant = [i for i, t in enumerate(node.inputs) if t in found.constants]
    if len(constant) == 1:
        return constant[0]
    return _gate(node, graph)


def held_nodes(graph: Graph, factor) -> Set[int]:
    """ids of the nodes whose outputs reach the explained output only as factors held constant
    (``factor(node)``: the index of a product's held input, or None): a router's softmax, top-k
    and normalisation, a norm's statistic. They get no relevance, so they need no rule."""
    consumers, held = graph.consumers(), set()
    for node in reversed(graph.nodes):
        if not node.outputs or any(t in graph.outputs for t in node.outputs):
            continue
        dead = True
        for t in node.outputs:
            for user in consumers.get(t, []):
                if id(user) in held:
                    continue
                i = factor(user)
                if i is None or user.inputs[i] != t or user.inputs.count(t) != 1:
                    dead = False
                    break
            if not dead:
                break
        if dead:
            held.add(id(node))
    return held


def _activated(tid: int, producers) -> bool:
    node = producers.get(_source(tid, producers))
    if node is None:
        return False
    layer = node.layer
    if types.is_softmax(layer) or isinstance(layer, types.OP_ACTIVATIONS + types.OP_SOFTMAX):
        return True
    name = types.layer_activation(layer) if isinstance(layer, types.ACTIVATION) else ""
    return name not in ("", "linear")


def _activated_factor(node: Node, graph: Graph) -> Optional[int]:
    """:func:`held_factor` of kind ``"cp"``: the one factor a softmax or activation produced."""
    producers = graph.producers()
    held = [i for i, t in enumerate(node.inputs) if _activated(t, producers)]
    return held[0] if len(held) == 1 else None


# ------------------------------------------------------------------- facts the rules read
def nonnegative_tensors(graph: Graph) -> Dict[int, bool]:
    """tensor id → True where the tensor is provably ≥ 0 (after a ReLU, through pooling, …)."""
    known = {tid: False for tid in graph.inputs}
    for node in graph.nodes:
        flag = types.is_nonnegative_producer(node.layer,
                                             all(known.get(t, False) for t in node.inputs))
        for tid in node.outputs:
            known[tid] = flag
    return known


def input_fed_nodes(graph: Graph, is_kernel) -> set:
    """ids of the nodes accepted by ``is_kernel(layer)`` that are fed by a model input through
    reshaping layers only (the "first layers" of an input-layer rule)."""
    producers = graph.producers()

    def from_input(tid) -> bool:
        if tid in graph.inputs:
            return True
        node = producers.get(tid)
        return (node is not None and isinstance(node.layer, types.RESHAPING)
                and all(from_input(t) for t in node.inputs))

    return {id(node) for node in graph.nodes
            if is_kernel(node.layer) and node.inputs and all(from_input(t) for t in node.inputs)}


def _gate(node: Node, graph: Graph) -> Optional[int]:
    """:func:`held_factor` of kind ``"gate"``: which of two inputs is the gate, or None."""
    shapes = graph.shapes()
    sizes = [_size(shapes.get(t)) for t in node.inputs]
    if None not in sizes and sizes[0] != sizes[1]:
        return int(np.argmin(sizes))
    if None in sizes:  # open sizes: the factor of size 1 where the other is not, on every axis
        broadcast = _broadcast_factor(*(shapes.get(t) for t in node.inputs))
        if broadcast is not None:
            return broadcast
    producers = graph.producers()
    gated = [i for i, t in enumerate(node.inputs) if _is_gate(t, producers)]
    return gated[0] if len(gated) == 1 else None


def _is_gate(tid, producers, depth: int = 0) -> bool:
    """A gate, seen through reshapes and element-wise ops with constants (hard-sigmoid is
    relu6(x + 3)/6)."""
    node = producers.get(tid)
    if node is None or depth > 8:
        return False
    if types.is_gate_producer(node.layer):
        return True
    passthrough = isinstance(node.layer, types.RESHAPE_LIKE) or (
        not types.is_layer(node.layer) and len(node.inputs) == 1)
    return passthrough and _is_gate(node.inputs[0], producers, depth + 1)


def _broadcast_factor(a, b) -> Optional[int]:
    """0 or 1 if that shape broadcasts over the other (a 1 wherever they differ), else None."""
    if a is None or b is None or len(a) != len(b):
        return None
    ones = [(x == 1 and y != 1, y == 1 and x != 1) for x, y in zip(a[1:], b[1:])]
    first, second = any(o[0] for o in ones), any(o[1] for o in ones)
    differ = all(x == y or o[0] or o[1] for (x, y), o in zip(zip(a[1:], b[1:]), ones))
    if differ and first != second:
        return 0 if first else 1
    return None


def _size(shape) -> Optional[int]:
    if shape is None or any(d is None for d in shape[1:]):
        return None
    return int(np.prod(shape[1:]))


#: The 0.5 names of :func:`held_factor`: old name → its kind. Each works for one more release.
_DEPRECATED = {"factor_index": "outright", "gate_index": "gate", "held_operand": "cp"}


def __getattr__(name: str):
    if name in _DEPRECATED:
        kind = _DEPRECATED[name]
        warnings.warn(f"keras_lrp.core.patterns.{name} is deprecated and will be removed in the "
                      f"next release; use keras_lrp.core.patterns.held_factor(node, graph, "
                      f"kind={kind!r}).", DeprecationWarning, stacklevel=2)

        def old(node: Node, graph: Graph, found: Optional[Facts] = None) -> Optional[int]:
            return held_factor(node, graph, kind=kind, found=found)

        old.__name__ = old.__qualname__ = name
        return old
    raise AttributeError(f"module 'keras_lrp.core.patterns' has no attribute {name!r}")


__all__ = ["Facts", "HELD_KINDS", "PASS_THROUGH", "constant_tensors", "facts", "held_factor",
           "held_nodes", "input_fed_nodes", "nonnegative_tensors", "norm_statistics"]
