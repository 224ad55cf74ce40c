"""Canonicalisation: exact rewrites of a cloned graph that make LRP rules applicable.

Each step keeps the model's function unchanged (up to float rounding) and never touches the
user's layers: every layer is cloned first.

1. :func:`clone_layers` — a fresh copy of every layer, fused activations split off into their own
   ``Activation`` layer (so kernel layers output the pre-activation z).
2. :func:`split_separable` — SeparableConv → DepthwiseConv (no bias) + 1×1 Conv.
3. :func:`strip_softmax` — remove the softmax producing a model output.
4. :func:`fold_batchnorm` — fold a BatchNormalization that directly follows a kernel layer into
   it: s = γ/√(var+ε), W' = W·s, b' = (b − μ)·s + β.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lrp.graph import Graph, Node, Ref

_SEPARABLE = keras.src.layers.convolutional.base_separable_conv.BaseSeparableConv
_DEPTHWISE = keras.src.layers.convolutional.base_depthwise_conv.BaseDepthwiseConv
_TRANSPOSE = keras.src.layers.convolutional.base_conv_transpose.BaseConvTranspose
_CONV = keras.src.layers.convolutional.base_conv.BaseConv


def canonize(graph: Graph) -> Graph:
    """Apply every canonicalisation step in order; returns the edited graph."""
    clone_layers(graph)
    split_separable(graph)
    strip_softmax(graph)
    fold_batchnorm(graph)
    return graph


def activation_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


#: 16-bit float types: layers computing in them are cloned to compute in float32, so that the
#: analysis of a mixed-precision model runs in at least float32 (the user's model is untouched).
LOW_PRECISION = ("float16", "bfloat16")


def analysis_dtype(layer):
    """The dtype policy a clone of ``layer`` computes in: its own, or float32 if 16-bit."""
    policy = getattr(layer, "dtype_policy", None)
    if policy is not None and policy.compute_dtype in LOW_PRECISION:
        return "float32"
    return policy


def _clone(layer, **overrides):
    if not isinstance(layer, keras.layers.Layer):  # a stateless keras.ops Operation
        # Copy the attributes directly: copy.copy would go through Keras serialisation, which
        # fails for user ops that are not registered as serialisable.
        clone = object.__new__(type(layer))
        clone.__dict__.update(layer.__dict__)
        clone._inbound_nodes, clone._outbound_nodes = [], []
        return clone
    config = {**layer.get_config(), **overrides}
    if analysis_dtype(layer) == "float32" and "dtype" in config:
        config["dtype"] = "float32"
    return type(layer).from_config(config)


def clone_layers(graph: Graph) -> None:
    """Replace every layer by a clone; split fused activations into Activation layers."""
    clones = {}
    new_nodes = []
    for node in graph.nodes:
        layer = node.layer
        act = getattr(layer, "activation", None)
        fused = (isinstance(layer, keras.layers.Layer) and act is not None
                 and not isinstance(layer, keras.layers.Activation)
                 and "activation" in layer.get_config()
                 and activation_name(act) != "linear")
        first_use = id(layer) not in clones
        if first_use:
            clones[id(layer)] = _clone(layer, activation=None) if fused else _clone(layer)
        node.layer = clones[id(layer)]
        if first_use and isinstance(layer, keras.layers.Layer) and layer.weights:
            node.weights = layer.get_weights()
        new_nodes.append(node)
        if fused:
            pre = graph.new_tensor()
            post = node.outputs[0]
            node.outputs = [pre]
            key = ("activation", id(layer))
            if key not in clones:
                clones[key] = keras.layers.Activation(act, name=f"{layer.name}_activation",
                                                      dtype=analysis_dtype(layer))
            new_nodes.append(Node(clones[key], (Ref(pre),), {}, [pre], [post],
                                  list(node.out_shapes)))
    graph.nodes = new_nodes


def split_separable(graph: Graph) -> None:
    """SeparableConv(x) = Conv1x1(DepthwiseConv(x)): two kernel layers the rules understand."""
    new_nodes = []
    for node in graph.nodes:
        layer = node.layer
        if not isinstance(layer, _SEPARABLE):
            new_nodes.append(node)
            continue
        if node.weights is None:
            raise ValueError(f"SeparableConv layer '{layer.name}' is shared between several "
                             "calls; keras-lrp cannot split shared separable convolutions.")
        rank = layer.rank
        depthwise_cls = {1: keras.layers.DepthwiseConv1D, 2: keras.layers.DepthwiseConv2D}[rank]
        pointwise_cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D}[rank]
        common = dict(data_format=layer.data_format, dtype=analysis_dtype(layer))
        depthwise = depthwise_cls(layer.kernel_size, strides=layer.strides, padding=layer.padding,
                                  depth_multiplier=layer.depth_multiplier,
                                  dilation_rate=layer.dilation_rate, use_bias=False,
                                  name=f"{layer.name}_depthwise", **common)
        pointwise = pointwise_cls(layer.filters, 1, use_bias=layer.use_bias,
                                  name=f"{layer.name}_pointwise", **common)
        weights = node.weights
        mid = graph.new_tensor()
        new_nodes.append(Node(depthwise, node.args, node.kwargs, node.inputs, [mid], [None],
                              [weights[0]]))
        new_nodes.append(Node(pointwise, (Ref(mid),), {}, [mid], node.outputs,
                              list(node.out_shapes), weights[1:]))
    graph.nodes = new_nodes


def is_softmax(layer) -> bool:
    if isinstance(layer, keras.layers.Softmax):
        return True
    return (isinstance(layer, keras.layers.Activation)
            and activation_name(layer.activation) == "softmax")


def strip_softmax(graph: Graph) -> None:
    """Remove a softmax (fused, ``Softmax`` or ``Activation("softmax")``) that yields an output."""
    producers = graph.producers()
    consumers = graph.consumers()
    for out in list(graph.outputs):
        node = producers.get(out)
        if node is None or not is_softmax(node.layer) or consumers.get(out):
            continue
        graph.nodes.remove(node)
        graph.replace_tensor(out, node.inputs[0])


def _channel_axis(layer) -> int:
    return 1 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1


def _fold_weights(layer, weights, scale, shift):
    """Kernel and bias of ``layer`` followed by the per-channel affine map x·scale + shift."""
    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else np.zeros_like(shift)
    if isinstance(layer, _DEPTHWISE):
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    elif isinstance(layer, _TRANSPOSE):
        kernel = kernel * scale[:, None]
    else:
        kernel = kernel * scale
    return [kernel.astype(weights[0].dtype), (bias * scale + shift).astype(weights[0].dtype)]


def fold_batchnorm(graph: Graph) -> None:
    """Fold each BatchNormalization that directly follows a Dense/Conv output into that layer."""
    foldable = (keras.layers.Dense, _CONV, _DEPTHWISE, _TRANSPOSE)
    producers, consumers = graph.producers(), graph.consumers()
    uses = {}
    for node in graph.nodes:
        uses[id(node.layer)] = uses.get(id(node.layer), 0) + 1
    for bn in [n for n in graph.nodes if isinstance(n.layer, keras.layers.BatchNormalization)]:
        src = producers.get(bn.inputs[0])
        if (src is None or not isinstance(src.layer, foldable) or uses[id(src.layer)] != 1
                or uses[id(bn.layer)] != 1 or len(consumers[bn.inputs[0]]) != 1
                or src.weights is None or bn.weights is None):
            continue
        rank = len(src.out_shapes[0]) if src.out_shapes and src.out_shapes[0] else None
        axis = bn.layer.axis
        if rank is None or axis % rank != _channel_axis(src.layer) % rank:
            continue
        scale, shift = _bn_affine_numpy(bn.layer, bn.weights)
        old = src.layer
        src.layer = type(old).from_config({**old.get_config(), "use_bias": True})
        src.weights = _fold_weights(old, src.weights, scale, shift)
        graph.nodes.remove(bn)
        graph.replace_tensor(bn.outputs[0], src.outputs[0])


def _bn_affine_numpy(layer, weights):
    """(scale, shift) of an inference-mode BatchNormalization from its weight list."""
    weights = list(weights)
    gamma = weights.pop(0) if layer.scale else 1.0
    beta = weights.pop(0) if layer.center else 0.0
    mean, var = weights[0], weights[1]
    scale = gamma / np.sqrt(var.astype("float64") + layer.epsilon)
    return scale, beta - mean * scale


__all__ = ["activation_name", "analysis_dtype", "canonize", "clone_layers", "fold_batchnorm", "is_softmax",
           "split_separable", "strip_softmax"]
