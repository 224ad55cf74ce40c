"""Which relevance layer each Keras layer gets: one ordered registry, first match wins.

Kernel layers (Dense, convolutions, standalone BatchNormalization) get an LRP rule chosen by a
:class:`RuleSelector`; every other supported layer has a fixed relevance layer listed in
:data:`LAYER_MAP`. A layer matching nothing raises an error naming it.
"""

from __future__ import annotations

import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from keras_lrp import rules as rules_mod
from keras_lrp.canonize import activation_name, is_softmax
from keras_lrp.graph import Graph, Node, node_call
from keras_lrp.linear import is_kernel_layer
from keras_lrp.rules import GateRelevance, IdentityRelevance, LayerNormRelevance, \
    ProportionalRelevance, RouteRelevance

_NP = keras.src.ops.numpy
_NN = keras.src.ops.nn
#: Element-wise activations called as raw keras.ops in functional code.
_OP_ACTIVATIONS = (_NN.Relu, _NN.Relu6, _NN.Sigmoid, _NN.HardSigmoid, _NN.Softplus, _NN.Softsign,
                   _NN.Silu, _NN.HardSilu, _NN.LogSigmoid, _NN.LeakyRelu, _NN.Elu, _NN.Selu,
                   _NN.Gelu, _NN.Celu, _NP.Tanh)
#: Raw ops whose output is ≥ 0, and those bounded like a gate (sigmoid-like, or relu6 as in
#: hard-sigmoid = relu6(x + 3)/6).
_OP_NONNEGATIVE = (_NN.Relu, _NN.Relu6, _NN.Sigmoid, _NN.HardSigmoid, _NN.Softplus)
_OP_GATES = (_NN.Sigmoid, _NN.HardSigmoid, _NN.Relu6)

L = keras.layers

#: Element-wise activations, by name: relevance passes through them unchanged.
ELEMENTWISE_ACTIVATIONS = {
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid",
    "hard_sigmoid", "softplus", "softsign", "silu", "swish", "hard_silu", "hard_swish", "mish",
    "exponential", "celu", "glu", "log_sigmoid", "sparse_plus", "squareplus", "tanh_shrink",
    "hard_tanh", "soft_shrink", "hard_shrink", "threshold",
}
#: Activations whose output is never negative (rules may then skip x⁻ terms).
NONNEGATIVE_ACTIVATIONS = {"relu", "relu6", "sigmoid", "hard_sigmoid", "softplus",
                           "exponential"}

_ROUTE = (L.InputLayer, L.Flatten, L.Reshape, L.Permute, L.Concatenate, L.RepeatVector,
          L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D,
          L.Cropping3D, L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.GlobalMaxPooling1D,
          L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.UpSampling1D, L.UpSampling3D)
_PROPORTIONAL = (L.Add, L.Subtract, L.Average, L.AveragePooling1D, L.AveragePooling2D,
                 L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
                 L.GlobalAveragePooling3D)
_IDENTITY = (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
             L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
             L.Identity, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU,
             # element-wise affine maps (preprocessing): relevance passes unchanged
             L.Rescaling, L.Normalization)
#: keras.applications' own layers: ConvNeXt's per-channel LayerScale (x·γ, identity for
#: relevance) and StochasticDepth (identity at inference), InceptionResNetV2's CustomScaleLayer
#: (x₀ + s·x₁, proportional).
_APP_IDENTITY, _APP_PROPORTIONAL = [], []
try:  # pragma: no branch - present in every Keras 3 release so far
    from keras.src.applications import convnext as _convnext
    from keras.src.applications import inception_resnet_v2 as _irv2
    _APP_IDENTITY += [c for c in (getattr(_convnext, "LayerScale", None),
                                  getattr(_convnext, "StochasticDepth", None)) if c]
    _APP_PROPORTIONAL += [c for c in (getattr(_irv2, "CustomScaleLayer", None),) if c]
except ImportError:  # pragma: no cover
    pass


def _tensor_args(node) -> int:
    return len(node.inputs) if node is not None else 1

#: Ordered (layer or operation types, predicate(layer, node) or None, relevance layer class);
#: the first match wins.
LAYER_MAP: List[Tuple[tuple, Optional[Callable], type]] = [
    ((L.Activation,), lambda layer, node: activation_name(layer.activation)
     in ELEMENTWISE_ACTIVATIONS, IdentityRelevance),
    (_IDENTITY + tuple(_APP_IDENTITY) + _OP_ACTIVATIONS, None, IdentityRelevance),
    ((L.LayerNormalization,), None, LayerNormRelevance),
    ((L.UpSampling2D,), lambda layer, node: layer.interpolation == "nearest", RouteRelevance),
    ((L.UpSampling2D,), None, ProportionalRelevance),
    (_ROUTE, None, RouteRelevance),
    (_PROPORTIONAL + tuple(_APP_PROPORTIONAL), None, ProportionalRelevance),
    ((L.Multiply, _NP.Multiply), lambda layer, node: _tensor_args(node) == 2, GateRelevance),
    # keras.ops used directly in functional code: with one tensor and a constant they are
    # element-wise affine maps (x + 3, x · 1/6); Add/Subtract of two tensors are proportional.
    ((_NP.Add, _NP.Subtract, _NP.Multiply, _NP.Divide, _NP.TrueDivide),
     lambda layer, node: _tensor_args(node) == 1, IdentityRelevance),
    ((_NP.Add, _NP.Subtract), lambda layer, node: _tensor_args(node) == 2,
     ProportionalRelevance),
]
#: Activations that make a tensor a gate in [0, 1] (for Multiply of equal shapes).
GATE_ACTIVATIONS = {"sigmoid", "hard_sigmoid"}

#: Layers that leave values unchanged apart from their arrangement (seen through when looking
#: for the layers fed directly by a model input).
RESHAPING = (L.InputLayer, L.Flatten, L.Reshape, L.Permute, L.Dropout)

DENSE = (L.Dense, L.EinsumDense)
CONV = (keras.src.layers.convolutional.base_conv.BaseConv,
        keras.src.layers.convolutional.base_depthwise_conv.BaseDepthwiseConv,
        keras.src.layers.convolutional.base_conv_transpose.BaseConvTranspose)


#: Entries added by :func:`register_layer`; searched before :data:`LAYER_MAP`.
USER_LAYER_MAP: List[Tuple[tuple, Optional[Callable], type]] = []


def register_layer(layer_class: type, relevance: type) -> None:
    """Teach keras-lrp how relevance crosses a layer class without a kernel.

    Args:
        layer_class: the Keras layer class, or ``keras.Operation`` class for ops called directly
            in functional code (subclasses match too).
        relevance: one of :class:`~keras_lrp.rules.IdentityRelevance` (element-wise layers),
            :class:`~keras_lrp.rules.RouteRelevance` (layers that move or select values) or
            :class:`~keras_lrp.rules.ProportionalRelevance` (bias-free linear layers), or your
            own :class:`~keras_lrp.rules.RelevanceLayer` subclass.

    Example:
        >>> keras_lrp.register_layer(MyScaling, keras_lrp.rules.IdentityRelevance)
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.Operation)):
        raise TypeError(f"register_layer needs a keras.layers.Layer (or keras.Operation) "
                        f"subclass, got {layer_class!r}.")
    if not (isinstance(relevance, type) and issubclass(relevance, rules_mod.RelevanceLayer)):
        raise TypeError(f"register_layer needs a keras_lrp.rules.RelevanceLayer subclass "
                        f"(e.g. IdentityRelevance), got {relevance!r}.")
    USER_LAYER_MAP.insert(0, ((layer_class,), None, relevance))


#: (layer classes or names, rule) pairs added by :func:`register_rule`, newest first.
GLOBAL_RULE_MAP: List[Tuple[Any, Any]] = []


def register_rule(layer: Any, rule) -> None:
    """Use ``rule`` for a kernel layer class (or layer name) in every analyzer from now on.

    Takes precedence over the analyzers' own assignments, ``input_layer_rule`` and
    ``until_layer_rule``; an analyzer's ``rule_map`` still comes first. The layer must be a kernel
    layer keras-lrp knows, or one taught with :func:`keras_lrp.register_linear`.

    Args:
        layer: a layer class, a layer name, or a tuple of them.
        rule: a rule name, :class:`~keras_lrp.rules.Rule` subclass or instance.

    Example:
        >>> keras_lrp.register_rule(MyDense, keras_lrp.rules.Epsilon(epsilon=0.01))
    """
    _matches(layer, types.SimpleNamespace(name=""))  # validates the key: TypeError if bad
    GLOBAL_RULE_MAP.insert(0, (layer, rules_mod.get(rule)))


def structural_relevance(layer, node: Optional[Node] = None) -> Optional[type]:
    """The fixed relevance layer class for a layer without a kernel, or None if unsupported."""
    for classes, predicate, cls in USER_LAYER_MAP + LAYER_MAP:
        if isinstance(layer, classes) and (predicate is None or predicate(layer, node)):
            return cls
    return None


def gate_index(node: Node, graph: Graph) -> Optional[int]:
    """Which of a two-input Multiply's inputs is the gate, or None if neither clearly is.

    The gate is the input broadcast over the other (fewer elements: squeeze-and-excitation), or
    else the one produced by a sigmoid-like activation.
    """
    shapes = graph.shapes()
    sizes = [_size(shapes.get(t)) for t in node.inputs]
    if None not in sizes and sizes[0] != sizes[1]:
        return int(np.argmin(sizes))
    producers = graph.producers()
    gated = [i for i, t in enumerate(node.inputs) if _is_gate(t, producers)]
    return gated[0] if len(gated) == 1 else None


def _is_gate(tid, producers, depth: int = 0) -> bool:
    """Whether a tensor is a gate: a sigmoid-like activation, or a bounded ReLU (relu6, as in
    hard-sigmoid = relu6(x + 3)/6), seen through reshapes and element-wise ops with constants."""
    node = producers.get(tid)
    if node is None or depth > 8:
        return False
    layer = node.layer
    if _activation_of(layer) in GATE_ACTIVATIONS | {"relu6"} or isinstance(layer, _OP_GATES):
        return True
    if isinstance(layer, L.ReLU) and layer.max_value is not None:
        return True
    passthrough = isinstance(layer, (L.Reshape, L.Rescaling)) or (
        not isinstance(layer, L.Layer) and len(node.inputs) == 1)
    return passthrough and _is_gate(node.inputs[0], producers, depth + 1)


def _size(shape) -> Optional[int]:
    if shape is None or any(d is None for d in shape[1:]):
        return None
    return int(np.prod(shape[1:]))


def _activation_of(layer) -> str:
    if isinstance(layer, L.Activation) or hasattr(layer, "activation"):
        act = getattr(layer, "activation", None)
        return activation_name(act) if act is not None else ""
    return ""


def unsupported_error(layer, detail: str = "") -> ValueError:
    cls = type(layer)
    return ValueError(
        f"keras-lrp has no relevance mapping for layer '{layer.name}' of class "
        f"{cls.__module__}.{cls.__name__}{detail}. Supported: kernel layers (Dense, "
        "Conv1D/2D/3D, DepthwiseConv, SeparableConv, Conv2DTranspose, BatchNormalization), "
        "element-wise activations, pooling, Add/Subtract/Average/Concatenate and reshaping "
        "layers. If the layer is element-wise, register it with "
        f"keras_lrp.register_layer({cls.__name__}, keras_lrp.rules.IdentityRelevance); if it "
        "only moves or selects values, with keras_lrp.rules.RouteRelevance; if it is a "
        "bias-free linear map, with keras_lrp.rules.ProportionalRelevance. Otherwise replace "
        "the layer with supported ones.")


def check_supported(graph: Graph) -> None:
    """Raise :func:`unsupported_error` for the first layer keras-lrp cannot propagate through.

    Runs on the extracted graph before anything is cloned, so the error names the user's layer
    (a softmax producing a model output is fine: it is stripped).
    """
    for node in graph.nodes:
        layer = node.layer
        output = any(t in graph.outputs for t in node.outputs)
        if is_softmax(layer) and output:
            continue
        act = getattr(layer, "activation", None)
        if is_kernel_layer(layer):
            name = activation_name(act) if act is not None else "linear"
            if name not in ELEMENTWISE_ACTIVATIONS and not (name == "softmax" and output):
                raise unsupported_error(layer, f" (its fused activation '{name}' is not "
                                               "element-wise)")
            continue
        cls = structural_relevance(layer, node)
        if cls is None:
            raise unsupported_error(layer)
        if cls is GateRelevance and gate_index(node, graph) is None:
            raise unsupported_error(layer, " (a product of two signals, neither of which is a "
                                           "gate: not linear, so no LRP rule applies)")


#: Layers whose output is ≥ 0 wherever all their inputs are (they copy, select, add or
#: average values). Rescaling and Normalization are absent: an offset can make values negative.
SIGN_PRESERVING = (L.InputLayer, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D,
                   L.SpatialDropout3D, L.GaussianDropout, L.AlphaDropout, L.Identity,
                   L.ActivityRegularization, L.Flatten, L.Reshape, L.Permute, L.RepeatVector,
                   L.Concatenate, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
                   L.Cropping1D, L.Cropping2D, L.Cropping3D, L.MaxPooling1D, L.MaxPooling2D,
                   L.MaxPooling3D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D,
                   L.GlobalMaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
                   L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
                   L.GlobalAveragePooling3D, L.UpSampling1D, L.UpSampling2D, L.UpSampling3D,
                   L.Add, L.Average)


def is_nonnegative_producer(layer, inputs_nonnegative: bool) -> bool:
    """Whether ``layer``'s output is provably ≥ 0, given whether all of its inputs are."""
    if isinstance(layer, L.Activation):
        return activation_name(layer.activation) in NONNEGATIVE_ACTIVATIONS
    if isinstance(layer, L.ReLU):
        return float(layer.negative_slope) == 0.0
    if isinstance(layer, _OP_NONNEGATIVE):
        return True
    return inputs_nonnegative and isinstance(layer, SIGN_PRESERVING)


def nonnegative_tensors(graph: Graph) -> Dict[int, bool]:
    """tensor id → True where the tensor is provably ≥ 0 (static analysis of the graph)."""
    known = {tid: False for tid in graph.inputs}
    for node in graph.nodes:
        ins = all(known.get(t, False) for t in node.inputs)
        flag = is_nonnegative_producer(node.layer, ins)
        for tid in node.outputs:
            known[tid] = flag
    return known


def input_fed_nodes(graph: Graph) -> set:
    """ids of kernel-layer nodes fed by a model input through reshaping layers only."""
    producers = graph.producers()
    result = set()

    def from_input(tid) -> bool:
        if tid in graph.inputs:
            return True
        node = producers.get(tid)
        return (node is not None and isinstance(node.layer, RESHAPING)
                and all(from_input(t) for t in node.inputs))

    for node in graph.nodes:
        if is_kernel_layer(node.layer) and node.inputs and all(from_input(t)
                                                                for t in node.inputs):
            result.add(id(node))
    return result


def _layer_names_until(model, idx: int) -> set:
    """Names of the layers among ``model.layers[0..idx]`` (nested models contribute all)."""
    names = set()

    def add(layer):
        names.add(layer.name)
        for sub in getattr(layer, "layers", []) if isinstance(layer, keras.Model) else []:
            add(sub)

    for layer in model.layers[: idx + 1]:
        add(layer)
    return names


def _matches(selector, layer) -> bool:
    """A rule_map key: a layer class, a layer name, or a tuple/list of them."""
    if isinstance(selector, (tuple, list)):
        return any(_matches(s, layer) for s in selector)
    if isinstance(selector, str):
        base = layer.name
        for suffix in ("_depthwise", "_pointwise"):
            base = base[: -len(suffix)] if base.endswith(suffix) else base
        return selector in (layer.name, base)
    if isinstance(selector, type):
        return isinstance(layer, selector)
    raise TypeError(f"A rule_map key must be a layer class, a layer name or a tuple of them; "
                    f"got {selector!r}.")


class RuleSelector:
    """Chooses the rule for each kernel layer, in this order of priority:

    1. ``rule_map``: the user's ordered (layer classes or names, rule) pairs, first match wins,
       then the pairs added by :func:`register_rule`;
    2. ``input_layer_rule``: kernel layers fed directly by a model input;
    3. ``until_layer_rule``: layers among ``model.layers[0..until_layer_idx]``;
    4. ``conditional``: the analyzer's own (predicate(node, graph), rule) pairs (presets);
    5. ``default``.
    """

    def __init__(self, default=None, rule_map: Sequence = (), input_layer_rule=None,
                 until_layer_idx: Optional[int] = None, until_layer_rule=None,
                 conditional: Sequence = (), model=None):
        self.rule_map = [(key, rules_mod.get(rule)) for key, rule in (rule_map or ())]
        self.input_layer_rule = None if input_layer_rule is None else rules_mod.get(
            input_layer_rule)
        self.until_rule = None
        if (until_layer_idx is None) != (until_layer_rule is None):
            raise ValueError("until_layer_idx and until_layer_rule go together; got "
                             f"until_layer_idx={until_layer_idx!r}, "
                             f"until_layer_rule={until_layer_rule!r}.")
        if until_layer_idx is not None:
            self.until_rule = rules_mod.get(until_layer_rule)
            self.until_names = _layer_names_until(model, int(until_layer_idx))
        self.conditional = [(cond, rules_mod.get(rule)) for cond, rule in conditional]
        self.default = None if default is None else rules_mod.get(default)

    def select(self, node: Node, graph: Graph, input_fed: set) -> rules_mod.Rule:
        layer = node.layer
        for key, rule in self.rule_map + GLOBAL_RULE_MAP:
            if _matches(key, layer):
                return rule
        if self.input_layer_rule is not None and id(node) in input_fed:
            return self.input_layer_rule
        if self.until_rule is not None and _matches(tuple(self.until_names), layer):
            return self.until_rule
        for cond, rule in self.conditional:
            if cond(node, graph):
                return rule
        if self.default is None:
            raise ValueError(f"No LRP rule applies to layer '{layer.name}' "
                             f"({type(layer).__name__}); pass rule=... or a rule_map entry.")
        return self.default


def relevance_layer(node: Node, selector: RuleSelector, graph: Graph, input_fed: set,
                    nonnegative: Dict[int, bool]) -> Any:
    """The relevance layer for one node of the forward graph."""
    layer = node.layer
    name = f"{layer.name}_relevance"
    dtype = getattr(layer, "dtype_policy", None)
    if is_kernel_layer(layer):
        rel = selector.select(node, graph, input_fed).bind(layer)
        rel.input_nonnegative = all(nonnegative.get(t, False) for t in node.inputs)
        return rel
    cls = structural_relevance(layer, node)
    if cls is None:
        raise unsupported_error(layer)
    if cls is IdentityRelevance and len(node.inputs) != 1:
        raise ValueError(f"Layer '{layer.name}' has {len(node.inputs)} inputs, but "
                         "IdentityRelevance passes relevance through single-input layers; "
                         "register it with RouteRelevance or ProportionalRelevance instead.")
    extra = {"gate_index": gate_index(node, graph)} if cls is GateRelevance else {}
    return cls(target=layer, forward=node_call(node), name=name, dtype=dtype, **extra)
