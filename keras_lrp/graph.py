"""A flat, editable copy of a Keras functional graph.

:func:`extract` walks a Functional or Sequential model (nested models inlined, shared layers kept
shared) into a list of :class:`Node` in topological order, each naming its input and output
tensors by integer ids. :mod:`keras_lrp.canonize` edits that list; :func:`replay` calls its
layers on fresh symbolic inputs to give the cleaned forward graph.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Dict, List

import keras
from keras import tree


@dataclasses.dataclass(frozen=True)
class Ref:
    """Placeholder for tensor ``tid`` inside a node's call arguments."""

    tid: int


@dataclasses.dataclass
class Node:
    """One call of ``layer``: ``outputs = layer(*args, **kwargs)`` with tensors as :class:`Ref`."""

    layer: Any
    args: tuple
    kwargs: dict
    inputs: List[int]
    outputs: List[int]
    #: Static shapes of the outputs, as in the source model.
    out_shapes: List[Any] = dataclasses.field(default_factory=list)
    #: Weights to load into ``layer`` once it is built (set by canonicalisation).
    weights: Any = None


@dataclasses.dataclass
class Graph:
    inputs: List[int]
    outputs: List[int]
    input_specs: List[Any]  # the model's input KerasTensors (shape, dtype, name)
    output_names: List[str]
    nodes: List[Node]
    _ids: Any = dataclasses.field(default_factory=lambda: itertools.count(0))

    def new_tensor(self) -> int:
        return next(self._ids)

    def consumers(self) -> Dict[int, List[Node]]:
        """tensor id → the nodes that read it."""
        out: Dict[int, List[Node]] = {}
        for node in self.nodes:
            for tid in dict.fromkeys(node.inputs):
                out.setdefault(tid, []).append(node)
        return out

    def shapes(self) -> Dict[int, Any]:
        """tensor id → static shape (batch first), where known."""
        out = {tid: tuple(spec.shape) for tid, spec in zip(self.inputs, self.input_specs)}
        for node in self.nodes:
            for tid, shape in zip(node.outputs, node.out_shapes):
                out[tid] = shape
        return out

    def producers(self) -> Dict[int, Node]:
        """tensor id → the node that writes it."""
        return {tid: node for node in self.nodes for tid in node.outputs}

    def replace_tensor(self, old: int, new: int) -> None:
        """Make every reader of tensor ``old`` read ``new`` instead."""
        swap = lambda v: Ref(new) if isinstance(v, Ref) and v.tid == old else v  # noqa: E731
        for node in self.nodes:
            if old in node.inputs:
                node.inputs = [new if t == old else t for t in node.inputs]
                node.args = tree.map_structure(swap, node.args)
                node.kwargs = tree.map_structure(swap, node.kwargs)
        self.outputs = [new if t == old else t for t in self.outputs]


def functional_of(model):
    """The Functional graph behind ``model``, or a clear error if it has none."""
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError(
                f"Sequential model '{model.name}' has not been built, so its input shape is "
                "unknown. Start it with keras.Input(shape=...) or call model.build(input_shape) "
                "before creating an analyzer.")
        return model._functional
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    if isinstance(model, keras.Model):
        raise TypeError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model without a "
            "layer graph, so its layers cannot be traversed. Rebuild it with the functional API "
            "(inputs = keras.Input(...); outputs = ...; keras.Model(inputs, outputs)) or as a "
            "keras.Sequential.")
    raise TypeError(f"Expected a keras.Model, got {type(model).__name__}: {model!r}.")


def _is_nested_model(op) -> bool:
    return isinstance(op, keras.Model)


def extract(model) -> Graph:
    """Flatten ``model`` into a :class:`Graph` (nested models inlined)."""
    fn = functional_of(model)
    graph = Graph(inputs=[], outputs=[], input_specs=list(fn.inputs),
                  output_names=[_output_name(t) for t in fn.outputs], nodes=[])
    graph.inputs = [graph.new_tensor() for _ in fn.inputs]
    graph.outputs = _walk(fn, graph.inputs, graph)
    return graph


def input_name(tensor) -> str:
    """The name of the InputLayer behind a model input tensor."""
    op = tensor._keras_history.operation
    return op.name if op is not None else tensor.name


def _output_name(tensor) -> str:
    op = tensor._keras_history.operation
    return op.name if op is not None else tensor.name


def _walk(fn, input_ids: List[int], graph: Graph) -> List[int]:
    tids = {id(kt): tid for kt, tid in zip(fn.inputs, input_ids)}
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            ins = [tids[id(kt)] for kt in node.input_tensors]
            if _is_nested_model(node.operation):
                outs = _walk(functional_of(node.operation), ins, graph)
            else:
                to_ref = lambda v: Ref(tids[id(v)]) if isinstance(v, keras.KerasTensor) else v  # noqa: E731,E501
                args, kwargs = node.arguments.convert(to_ref)
                outs = [graph.new_tensor() for _ in node.outputs]
                graph.nodes.append(Node(node.operation, args, kwargs, ins, outs,
                                        [tuple(kt.shape) for kt in node.outputs]))
            for kt, tid in zip(node.outputs, outs):
                tids[id(kt)] = tid
    return [tids[id(kt)] for kt in fn.outputs]


def node_call(node: Node):
    """``f(xs)``: call the node's layer on new values for its tensor arguments, by position.

    Positions, not tensor ids, so a node that reads the same tensor twice (``Add([x, x])``)
    gets one value (and one gradient) per argument.
    """
    def call(xs):
        values = iter(xs)
        fill = lambda v: next(values) if isinstance(v, Ref) else v  # noqa: E731
        args = tree.map_structure(fill, node.args)
        kwargs = tree.map_structure(fill, node.kwargs)
        return node.layer(*args, **kwargs)
    return call


def replay(graph: Graph, inputs: List[Any]) -> Dict[int, Any]:
    """Call every node's layer on ``inputs`` (symbolic or eager); tensor id → value."""
    values: Dict[int, Any] = dict(zip(graph.inputs, inputs))
    fill = lambda v: values[v.tid] if isinstance(v, Ref) else v  # noqa: E731
    for node in graph.nodes:
        out = node.layer(*tree.map_structure(fill, node.args),
                         **tree.map_structure(fill, node.kwargs))
        for tid, value in zip(node.outputs, tree.flatten(out)):
            values[tid] = value
        if node.weights is not None:
            node.layer.set_weights(node.weights)
            node.weights = None
    return values
