"""A flat, editable copy of a Keras functional graph, and the static analyses run on it.

:func:`extract` walks a Functional or Sequential model (shared layers kept shared) into a list of
:class:`Node` in topological order, each naming its input and output tensors by integer ids; a
nested model stays one node until the :class:`~keras_lrp.canonizers.base.InlineNested` canonizer
expands it with :func:`inline`. :mod:`keras_lrp.canonizers.base` edits that list; :func:`replay`
calls its layers on fresh symbolic inputs to give the cleaned forward graph.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from typing import Any, Dict, List, Optional

import keras
from keras import tree

from keras_lrp.core import types


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
    #: dtypes of the outputs, as in the source model (may be empty for nodes canonizers add).
    out_dtypes: List[Any] = dataclasses.field(default_factory=list)
    #: The nested models the node was inlined from, outermost first ("" at the top level).
    scope: str = ""
    #: The layer whose traced ``call`` the node is a part of (``None`` if not traced).
    traced_from: Any = None


@dataclasses.dataclass
class Graph:
    inputs: List[int]
    outputs: List[int]
    input_specs: List[Any]  # the model's input KerasTensors (shape, dtype, name)
    output_names: List[str]
    nodes: List[Node]
    _ids: Any = dataclasses.field(default_factory=lambda: itertools.count(0))
    #: new tensor id → the id it replaced with the same values (:meth:`replace_tensor`).
    aliases: Dict[int, int] = dataclasses.field(default_factory=dict)
    #: output id → (the softmax layer removed after it, the id of the softmax's output).
    stripped: Dict[int, Any] = dataclasses.field(default_factory=dict)
    #: ``explicit(node, graph)``: whether the analysis' composite names the node's layer (a
    #: foreign layer it does not name is traced into its parts); ``None``: no composite.
    explicit: Any = None

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

    def dtypes(self) -> Dict[int, Any]:
        """tensor id → dtype, where known."""
        out = {tid: spec.dtype for tid, spec in zip(self.inputs, self.input_specs)}
        for node in self.nodes:
            out.update(zip(node.outputs, node.out_dtypes))
        return out

    def producers(self) -> Dict[int, Node]:
        """tensor id → the node that writes it."""
        return {tid: node for node in self.nodes for tid in node.outputs}

    def snapshot(self) -> Graph:
        """A copy whose node list and nodes later edits of this graph leave alone (the nodes'
        layers and arguments are shared: canonizers replace them, never edit them in place)."""
        return dataclasses.replace(self, inputs=list(self.inputs), outputs=list(self.outputs),
                                   output_names=list(self.output_names),
                                   nodes=[dataclasses.replace(n) for n in self.nodes],
                                   aliases=dict(self.aliases), stripped=dict(self.stripped))

    def replace_tensors(self, swaps) -> None:
        """:meth:`replace_tensor` for each ``(old, new)`` pair, where a ``new`` may itself be
        an ``old`` of another pair (a traced layer that returns its input, fed by another
        traced layer): each reader ends at the last tensor of its chain."""
        mapping = dict(swaps)
        for old in mapping:
            new, seen = mapping[old], {old}
            while new in mapping and new not in seen:
                seen.add(new)
                new = mapping[new]
            self.replace_tensor(old, new)

    def replace_tensor(self, old: int, new: int, same: bool = True) -> None:
        """Make every reader of tensor ``old`` read ``new`` instead (``same``: ``new`` holds
        the same values, so :attr:`aliases` records it)."""
        if same and new != old:
            self.aliases.setdefault(new, old)
        swap = lambda v: Ref(new) if isinstance(v, Ref) and v.tid == old else v  # noqa: E731
        for node in self.nodes:
            if old in node.inputs:
                node.inputs = [new if t == old else t for t in node.inputs]
                node.args = tree.map_structure(swap, node.args)
                node.kwargs = tree.map_structure(swap, node.kwargs)
        self.outputs = [new if t == old else t for t in self.outputs]


class UniqueNames:
    """Hands out layer names no other layer of one Keras model has: ``base``, else
    ``base_2``, ``base_3``, … (Keras refuses a model in which two layers share a name)."""

    def __init__(self, taken=()):
        self.taken = set(taken)

    def __call__(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name


def unique_layer_names(graph: Graph) -> None:
    """Rename every layer whose name another layer of the graph already has (the graph's own
    copies: call it after cloning). Two nested models may each hold a ``head``, and one block
    called at several depths is traced into parts of equal names. The first keeps its name; the
    rest get the nested model's or a counter's suffix. A layer called at several places is one
    layer."""
    seen, names = set(), UniqueNames()
    # the outer model's layers keep their names; a nested one's yields, prefixed by its model
    for node in sorted(graph.nodes, key=lambda n: bool(n.scope)):
        layer = node.layer
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if layer.name in names.taken:
            layer.name = names(f"{node.scope}_{layer.name}" if node.scope else layer.name)
        else:
            names.taken.add(layer.name)


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


def is_subclassed(model) -> bool:
    """A ``keras.Model`` subclass with its own ``call`` and no layer graph (keras.io's
    "subclassing" recipe): one node of the graph, traced into its parts like any layer of
    yours (:mod:`keras_lrp.canonizers.tracing`)."""
    return isinstance(model, keras.Model) and not isinstance(model, keras.Sequential) and \
        not hasattr(model, "_nodes_by_depth")


def _subclassed_graph(model) -> Graph:
    """The graph of a subclassed model built on one input: the model, called once."""
    shapes = [s for s in (getattr(model, "_build_shapes_dict", None) or {}).values()
              if isinstance(s, (tuple, list)) and all(isinstance(d, (int, type(None))) for d in s)]
    if not model.built or len(shapes) != 1 or len(shapes[0]) < 1:
        raise TypeError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model without a "
            "layer graph, and keras-lrp cannot tell its input shape (it is read from the one "
            "input the model was built on). Call the model once on a batch of one input "
            "before creating an analyzer, or rebuild it with the functional API (inputs = "
            "keras.Input(...); outputs = ...; keras.Model(inputs, outputs)).")
    spec = keras.Input(batch_shape=(None,) + tuple(shapes[0][1:]), name=f"{model.name}_input")
    out = model.compute_output_spec(spec)
    if not isinstance(out, keras.KerasTensor):
        raise TypeError(f"Model '{model.name}' ({type(model).__name__}) is a subclassed model "
                        "with several outputs; keras-lrp explains one built on one input and "
                        "returning one tensor. Rebuild it with the functional API.")
    node = Node(model, (Ref(0),), {}, [0], [1], [tuple(out.shape)], out_dtypes=[out.dtype])
    graph = Graph(inputs=[], outputs=[], input_specs=[spec], output_names=[model.name],
                  nodes=[node])
    graph.inputs, graph.outputs = [graph.new_tensor()], [graph.new_tensor()]
    return graph


def extract(model) -> Graph:
    """Flatten ``model`` into a :class:`Graph`; a nested model is one node (see :func:`inline`),
    and so is a subclassed model (:func:`is_subclassed`)."""
    if is_subclassed(model):
        return _subclassed_graph(model)
    fn = functional_of(model)
    graph = Graph(inputs=[], outputs=[], input_specs=list(fn.inputs),
                  output_names=[_output_name(t) for t in fn.outputs], nodes=[])
    graph.inputs = [graph.new_tensor() for _ in fn.inputs]
    graph.outputs = walk(fn, graph.inputs, graph, graph.nodes)
    return graph


def inline(graph: Graph) -> bool:
    """Replace every node calling a nested model by that model's own nodes, recursively (shared
    layers stay shared). Returns whether anything was inlined."""
    changed = False
    nested = lambda layer: types.is_model(layer) and not is_subclassed(layer)  # noqa: E731
    while any(nested(node.layer) for node in graph.nodes):
        nodes, swaps = [], []
        for node in graph.nodes:
            if nested(node.layer):
                first = len(nodes)
                outs = walk(functional_of(node.layer), node.inputs, graph, nodes)
                scope = f"{node.scope}_{node.layer.name}" if node.scope else node.layer.name
                for inner in nodes[first:]:
                    inner.scope = scope
                swaps += list(zip(node.outputs, outs))
            else:
                nodes.append(node)
        graph.nodes = nodes
        graph.replace_tensors(swaps)
        changed = True
    return changed


def input_name(tensor) -> str:
    """The name of the InputLayer behind a model input tensor."""
    op = tensor._keras_history.operation
    return op.name if op is not None else tensor.name


def _output_name(tensor) -> str:
    op = tensor._keras_history.operation
    return op.name if op is not None else tensor.name


def walk(fn, input_ids: List[int], graph: Graph, nodes: List[Node]) -> List[int]:
    """Append the nodes of functional ``fn``, called on tensors ``input_ids``, to ``nodes``."""
    tids = {id(kt): tid for kt, tid in zip(fn.inputs, input_ids)}
    to_ref = lambda v: Ref(tids[id(v)]) if isinstance(v, keras.KerasTensor) else v  # noqa: E731
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            args, kwargs = node.arguments.convert(to_ref)
            outs = [graph.new_tensor() for _ in node.outputs]
            nodes.append(Node(node.operation, args, kwargs,
                              [tids[id(kt)] for kt in node.input_tensors], outs,
                              [tuple(kt.shape) for kt in node.outputs],
                              out_dtypes=[kt.dtype for kt in node.outputs]))
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


def needed_nodes(graph: Graph, output: int) -> List[Node]:
    """The nodes ``output`` depends on, in graph order."""
    needed, keep = {output}, []
    for node in reversed(graph.nodes):
        if any(t in needed for t in node.outputs):
            keep.append(node)
            needed.update(node.inputs)
    return keep[::-1]


def replay(graph: Graph, inputs: List[Any], upto: Optional[int] = None,
           training: Optional[bool] = None) -> Dict[int, Any]:
    """Call every node's layer on ``inputs`` (symbolic or eager), or only those tensor ``upto``
    depends on; tensor id → value. ``training`` is passed to the layers that take it (an
    augmentation layer called outside a model defaults to training)."""
    values: Dict[int, Any] = dict(zip(graph.inputs, inputs))
    fill = lambda v: values[v.tid] if isinstance(v, Ref) else v  # noqa: E731
    for node in graph.nodes if upto is None else needed_nodes(graph, upto):
        kwargs = tree.map_structure(fill, node.kwargs)
        if training is not None and getattr(node.layer, "_call_has_training_arg", False):
            kwargs["training"] = training  # as a Functional call overrides what was recorded
        with warnings.catch_warnings():  # masks travel as explicit arguments in this graph
            warnings.filterwarnings("ignore", message=".*does not support masking")
            out = node.layer(*tree.map_structure(fill, node.args), **kwargs)
        dense = not any(getattr(values[t], "sparse", False) for t in node.inputs)
        # a traced block's None outputs (DeiT's attention scores) are not the node's outputs
        for tid, value in zip(node.outputs, [v for v in tree.flatten(out) if v is not None]):
            if dense and isinstance(value, keras.KerasTensor) and value.sparse:
                # Keras marks x * c sparse when c is a constant (a tensor or number without a
                # ``sparse`` attribute); the values are dense, and a layer called on a sparse
                # placeholder fails (TensorFlow builds a SparseTensor)
                value._sparse = False
            values[tid] = value
        if node.weights is not None:
            node.layer.set_weights(node.weights)
            node.weights = None
    return values


class _Inference(keras.layers.Layer):
    """Runs :func:`replay` inside a Keras call with ``training=False``: every nested layer, even
    one inside a layer whose ``call`` takes no ``training`` (keras-hub's SpatialPyramidPooling),
    then runs its BatchNormalization at inference, never updating its statistics."""

    def __init__(self, graph: Graph, upto: Optional[int], **kwargs):
        super().__init__(**kwargs)
        self._graph, self._upto = graph, upto

    def call(self, inputs, training=None):
        xs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return replay(self._graph, xs, upto=self._upto, training=False)


class GraphCall(_Inference):
    """The user's own layers called in graph order up to tensor ``output``, at inference: the
    model as one layer, with no copy and no rewrite (the gradient family differentiates it).
    Called on symbolic inputs, it adds no node to the user's layers (they run inside its call);
    it tracks them, so their variables are the analysis' (a compiled JAX analysis takes them as
    arguments)."""

    def __init__(self, graph: Graph, output: int, **kwargs):
        super().__init__(graph, output, **kwargs)
        self.user_layers = list({id(n.layer): n.layer for n in needed_nodes(graph, output)
                                 if types.is_layer(n.layer)}.values())

    def call(self, inputs, training=None):
        return super().call(inputs)[self._upto]


def replay_at_inference(graph: Graph, inputs: List[Any], upto: Optional[int] = None
                        ) -> Dict[int, Any]:
    """:func:`replay` on eager values at inference: inside a Keras call with
    ``training=False``, so that every nested layer (even one inside a layer whose ``call`` takes
    no ``training``) runs in inference mode and no state (a BatchNormalization's moving
    statistics) changes."""
    return _Inference(graph, upto, autocast=False)(list(inputs), training=False)
