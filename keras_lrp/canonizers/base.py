"""Canonizers: exact rewrites of a cloned graph that make LRP rules applicable.

A canonizer is a small object with ``apply(graph)``. It keeps the model's function unchanged (up
to float rounding) and never touches the user's layers: :func:`canonize` first runs the
structural canonizers (which only restructure the node list, copying what they must), then clones
every layer, then runs the rest of the composite's list in order. Cloning is not optional, so it
is not a canonizer. The defaults (:data:`DEFAULT_CANONIZERS`), structural first:

1. :class:`InlineNested` — a nested model's layers become nodes of the outer graph.
2. :class:`TraceBlocks` — blocks, layers made of layers (keras-hub's transformer blocks,
   classes given to :func:`keras_lrp.register_block`, layers of yours no composite entry names,
   Keras subclasses that override ``call``) become the layers and ops their ``call`` runs
   (:mod:`keras_lrp.canonizers.blocks`).
3. :class:`UntieHeads` — a reversed ``ReversibleEmbedding`` (a tied LM head) becomes a Dense
   with kernel Eᵀ (:mod:`keras_lrp.canonizers.heads`).
4. :class:`ExpandAttention` — MultiHeadAttention, Attention and AdditiveAttention become their
   projections, scores, softmax and combination (:mod:`keras_lrp.canonizers.attention`).
5. :class:`SplitActivations` — a kernel layer's fused activation becomes its own layer, so kernel
   layers output the pre-activation z (recurrent layers keep theirs).
6. :class:`SplitSeparable` — SeparableConv → DepthwiseConv (no bias) + 1×1 Conv.
7. :class:`StripSoftmax` — remove the softmax producing a model output.
8. :class:`FoldBatchNorm` — fold a BatchNormalization that directly follows a kernel layer into
   it: s = γ/√(var+ε), W' = W·s, b' = (b − μ)·s + β.

A composite may list its own.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import keras
import numpy as np

from keras_lrp.canonizers.attention import expand_attention
from keras_lrp.canonizers.blocks import copy_layer, trace_blocks
from keras_lrp.canonizers.copying import inference_config
from keras_lrp.canonizers.heads import untie_heads
from keras_lrp.core import graph as graph_mod
from keras_lrp.core import types
from keras_lrp.core.graph import Graph, Node, Ref
from keras_lrp.core.linear import is_kernel_layer

#: 16-bit float types: layers computing in them are cloned to compute in float32, so that the
#: analysis of a mixed-precision model runs in at least float32 (the user's model is untouched).
LOW_PRECISION = ("float16", "bfloat16")


class Canonizer:
    """An exact rewrite of the analysis' private graph. Subclasses implement :meth:`apply`.

    ``structural = True`` marks a canonizer that only rearranges nodes and may run on the user's
    layers before cloning (so support checks see the layers it exposes).
    """

    structural = False

    def apply(self, graph: Graph) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class InlineNested(Canonizer):
    """A nested model's layers become nodes of the outer graph (shared layers stay shared)."""

    structural = True

    def apply(self, graph: Graph) -> None:
        graph_mod.inline(graph)


def restructure(graph: Graph, canonizers: Sequence[Canonizer],
                explicit: Optional[Callable] = None) -> Graph:
    """The first step of :func:`canonize`: run the structural canonizers, on the user's layers
    (support checks then see the layers they expose). ``explicit(node, graph)`` says whether
    the composite names a layer (:attr:`keras_lrp.core.graph.Graph.explicit`). Returns the
    edited graph."""
    graph.explicit = explicit
    for canonizer in canonizers:
        if canonizer.structural:
            canonizer.apply(graph)
    return graph


def finish(graph: Graph, canonizers: Sequence[Canonizer]) -> Graph:
    """The second step of :func:`canonize`: clone every layer, then run the other canonizers in
    order. Returns the edited graph."""
    clone_layers(graph)
    for canonizer in canonizers:
        if not canonizer.structural:
            canonizer.apply(graph)
    graph_mod.unique_layer_names(graph)  # every layer is our copy now
    return graph


def canonize(graph: Graph, canonizers: Sequence[Canonizer],
             check: Optional[Callable[[Graph], None]] = None,
             explicit: Optional[Callable] = None) -> Graph:
    """:func:`restructure`, ``check(graph)`` (on the user's layers), then :func:`finish`.
    Analyzers call the two steps themselves and check in between (no callback). Returns the
    edited graph."""
    restructure(graph, canonizers, explicit)
    if check is not None:
        check(graph)
    return finish(graph, canonizers)


def analysis_dtype(layer):
    """The dtype policy a clone of ``layer`` computes in: its own, or float32 if 16-bit."""
    policy = getattr(layer, "dtype_policy", None)
    if policy is not None and policy.compute_dtype in LOW_PRECISION:
        return "float32"
    return policy


def _clone(layer, **overrides):
    if not types.is_layer(layer):  # a stateless keras.ops Operation
        # Copy the attributes directly: copy.copy would go through Keras serialisation, which
        # fails for user ops that are not registered as serialisable.
        clone = object.__new__(type(layer))
        clone.__dict__.update(layer.__dict__)
        clone._inbound_nodes, clone._outbound_nodes = [], []
        return clone
    if overrides:
        return type(layer).from_config({**inference_config(layer), **overrides})
    return copy_layer(layer, "float32" if analysis_dtype(layer) == "float32" else None)


def clone_layers(graph: Graph) -> None:
    """Replace every layer by a fresh copy (shared layers by one shared copy); the weights travel
    on the first node of each layer and are loaded when the graph is replayed."""
    clones = {}
    for node in graph.nodes:
        layer = node.layer
        if id(layer) not in clones:
            clones[id(layer)] = _clone(layer)
            if types.is_layer(layer) and layer.weights and \
                    not getattr(clones[id(layer)], "_lrp_shares_weights", False):
                node.weights = layer.get_weights()
        node.layer = clones[id(layer)]


def has_fused_activation(layer) -> bool:
    """A kernel layer whose config has a non-linear ``activation``.

    Only kernel layers qualify (:data:`keras_lrp.core.types.ACTIVATION_SPLITTABLE` and layers taught
    with :func:`keras_lrp.register_linear`); a recurrent layer's activation is its cell's.
    """
    if not (isinstance(layer, types.ACTIVATION_SPLITTABLE) or is_kernel_layer(layer)):
        return False
    return types.layer_activation(layer) not in ("", "linear")


class SplitActivations(Canonizer):
    """``Dense(activation=f)`` → ``Dense`` then ``Activation(f)``, for kernel layers only."""

    def apply(self, graph: Graph) -> None:
        replaced, nodes = {}, []
        for node in graph.nodes:
            layer = node.layer
            nodes.append(node)
            if id(layer) not in replaced and not has_fused_activation(layer):
                continue
            if id(layer) not in replaced:
                linear = type(layer).from_config({**inference_config(layer), "activation": None})
                act = keras.layers.Activation(layer.activation, name=f"{layer.name}_activation",
                                              dtype=layer.dtype_policy)
                act.split_from = layer.name  # composites may treat it as part of the layer
                replaced[id(layer)] = (linear, act)
            node.layer, act = replaced[id(layer)]
            pre, post = graph.new_tensor(), node.outputs[0]
            node.outputs = [pre]
            nodes.append(Node(act, (Ref(pre),), {}, [pre], [post], list(node.out_shapes)))
        graph.nodes = nodes


class SplitSeparable(Canonizer):
    """SeparableConv(x) = Conv1x1(DepthwiseConv(x)): two kernel layers the rules understand."""

    def apply(self, graph: Graph) -> None:
        nodes = []
        for node in graph.nodes:
            layer = node.layer
            if not isinstance(layer, types.SEPARABLE):
                nodes.append(node)
                continue
            if node.weights is None:
                raise ValueError(f"SeparableConv layer '{layer.name}' is shared between several "
                                 "calls; keras-lrp cannot split shared separable convolutions.")
            rank = layer.rank
            depthwise_cls = {1: keras.layers.DepthwiseConv1D,
                             2: keras.layers.DepthwiseConv2D}[rank]
            pointwise_cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D}[rank]
            common = dict(data_format=layer.data_format, dtype=layer.dtype_policy)
            depthwise = depthwise_cls(layer.kernel_size, strides=layer.strides,
                                      padding=layer.padding,
                                      depth_multiplier=layer.depth_multiplier,
                                      dilation_rate=layer.dilation_rate, use_bias=False,
                                      name=f"{layer.name}_depthwise", **common)
            pointwise = pointwise_cls(layer.filters, 1, use_bias=layer.use_bias,
                                      name=f"{layer.name}_pointwise", **common)
            mid = graph.new_tensor()
            nodes.append(Node(depthwise, node.args, node.kwargs, node.inputs, [mid], [None],
                              [node.weights[0]]))
            nodes.append(Node(pointwise, (Ref(mid),), {}, [mid], node.outputs,
                              list(node.out_shapes), node.weights[1:]))
        graph.nodes = nodes


class StripSoftmax(Canonizer):
    """Remove a softmax (``Softmax`` or ``Activation("softmax")``, fused ones split first) that
    yields a model output: LRP explains the logits."""

    def apply(self, graph: Graph) -> None:
        producers, consumers = graph.producers(), graph.consumers()
        for out in list(graph.outputs):
            node = producers.get(out)
            if node is None or not types.is_softmax(node.layer) or consumers.get(out):
                continue
            graph.nodes.remove(node)
            graph.replace_tensor(out, node.inputs[0], same=False)
            graph.stripped[node.inputs[0]] = (node.layer, out)


def unfuse_output_softmax(graph: Graph) -> None:
    """A kernel layer with a fused softmax that writes a model output becomes a built copy
    without it (the user's layer is left alone, the weights are the same): the one rewrite the
    gradient family needs, which otherwise explains the user's own layers."""
    producers, shapes = graph.producers(), graph.shapes()
    for out in graph.outputs:
        node = producers.get(out)
        if node is None or not has_fused_activation(node.layer) or \
                types.layer_activation(node.layer) != "softmax":
            continue
        layer = node.layer
        linear = type(layer).from_config({**inference_config(layer), "activation": None})
        linear.build(shapes[node.inputs[0]])
        linear.set_weights(layer.get_weights())
        node.layer = linear


class FoldBatchNorm(Canonizer):
    """Fold each BatchNormalization that directly follows a Dense/Conv output into that layer.

    Formula:
        s = γ/√(var+ε),   W' = W·s,   b' = (b − μ)·s + β
    """

    def apply(self, graph: Graph) -> None:
        producers, consumers = graph.producers(), graph.consumers()
        uses = {}
        for node in graph.nodes:
            uses[id(node.layer)] = uses.get(id(node.layer), 0) + 1
        for bn in [n for n in graph.nodes if isinstance(n.layer, types.BATCHNORM)]:
            src = producers.get(bn.inputs[0])
            if (src is None or not isinstance(src.layer, types.BATCHNORM_FOLDABLE)
                    or uses[id(src.layer)] != 1 or uses[id(bn.layer)] != 1
                    or len(consumers[bn.inputs[0]]) != 1 or bn.inputs[0] in graph.outputs
                    or src.weights is None
                    or bn.weights is None):
                continue
            rank = len(src.out_shapes[0]) if src.out_shapes and src.out_shapes[0] else None
            if rank is None or bn.layer.axis % rank != _channel_axis(src.layer) % rank:
                continue
            scale, shift = _bn_affine_numpy(bn.layer, bn.weights)
            old = src.layer
            src.layer = type(old).from_config({**inference_config(old), "use_bias": True})
            src.weights = _fold_weights(old, src.weights, scale, shift)
            # the folded layer writes the BatchNormalization's tensor (its own output had no
            # other reader), so every tensor id keeps its meaning for the forward check
            src.outputs, src.out_shapes = list(bn.outputs), list(bn.out_shapes)
            src.out_dtypes = list(bn.out_dtypes) or src.out_dtypes
            graph.nodes.remove(bn)


def _channel_axis(layer) -> int:
    return 1 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1


def _fold_weights(layer, weights, scale, shift):
    """Kernel and bias of ``layer`` followed by the per-channel affine map x·scale + shift."""
    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else np.zeros_like(shift)
    if isinstance(layer, types.DEPTHWISE):
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    elif isinstance(layer, types.TRANSPOSE):
        kernel = kernel * scale[:, None]
    else:
        kernel = kernel * scale
    return [kernel.astype(weights[0].dtype), (bias * scale + shift).astype(weights[0].dtype)]


def _bn_affine_numpy(layer, weights):
    """(scale, shift) of an inference-mode BatchNormalization from its weight list."""
    weights = list(weights)
    gamma = weights.pop(0) if layer.scale else 1.0
    beta = weights.pop(0) if layer.center else 0.0
    mean, var = weights[0], weights[1]
    scale = gamma / np.sqrt(var.astype("float64") + layer.epsilon)
    return scale, beta - mean * scale


class TraceBlocks(Canonizer):
    """Every call of a block, a layer made of layers (keras-hub's TransformerEncoder,
    TransformerDecoder, ViT blocks; classes given to :func:`keras_lrp.register_block`) becomes
    the layers and ops its ``call`` runs, traced on a copy with the same weights
    (:mod:`keras_lrp.canonizers.blocks`). Structural, like :class:`InlineNested`."""

    structural = True

    def apply(self, graph: Graph) -> None:
        trace_blocks(graph)


class UntieHeads(Canonizer):
    """Every reversed call of a ``ReversibleEmbedding`` (keras-hub's tied LM heads) becomes a
    bias-free Dense with kernel Eᵀ, and Gemma's logit soft cap its own layer
    (:mod:`keras_lrp.canonizers.heads`). Structural: it only reads the user's weights."""

    structural = True

    def apply(self, graph: Graph) -> None:
        untie_heads(graph)


class ExpandAttention(Canonizer):
    """Every MultiHeadAttention, Attention and AdditiveAttention call becomes its projections
    (the layer's own EinsumDense sublayers), scores, masked softmax and combination, so the
    composite's linear rule serves the projections and AttnLRP or CP-LRP the rest
    (:mod:`keras_lrp.canonizers.attention`). Structural: it runs on the user's layers before cloning
    (and before the support check, which then sees the parts).

    Raises:
        ValueError: an attention layer keras-lrp cannot expand, named, with the reason.
    """

    structural = True

    def apply(self, graph: Graph) -> None:
        expand_attention(graph)


#: The canonizers every built-in composite lists, in order.
DEFAULT_CANONIZERS = (InlineNested(), TraceBlocks(), UntieHeads(), ExpandAttention(),
                      SplitActivations(),
                      SplitSeparable(), StripSoftmax(), FoldBatchNorm())

__all__ = ["Canonizer", "DEFAULT_CANONIZERS", "ExpandAttention", "FoldBatchNorm", "InlineNested",
           "LOW_PRECISION", "SplitActivations", "SplitSeparable", "StripSoftmax", "TraceBlocks",
           "UntieHeads",
           "analysis_dtype", "canonize", "clone_layers", "finish", "has_fused_activation",
           "restructure", "unfuse_output_softmax"]
