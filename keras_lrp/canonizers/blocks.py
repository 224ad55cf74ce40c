"""Blocks (layers made of layers) traced into their parts: keras-hub's transformer blocks,
and yours.

A block's ``call`` is built from other layers and ``keras.ops`` (keras-hub's
``TransformerEncoder`` is LayerNorm, MultiHeadAttention, Dense and residual adds). keras-lrp
cannot see inside such a layer, so the :class:`~keras_lrp.canonizers.base.TraceBlocks`
canonizer replaces each call by the graph its ``call`` builds: a copy of the layer (with the
same weights) is called on symbolic inputs, and the layers and ops it runs become nodes of the
analysis graph, where the composite's rules and the attention expansion reach them.

What is traced: the keras-hub blocks in :data:`KERAS_HUB_TRACED` (matched by class name and
module, so keras-hub is never imported here), the classes passed to :func:`register_block`,
keras-hub's MultiHeadAttention subclasses with a call of their own (:func:`own_attention`),
and any layer of yours or keras-hub's that no composite entry names. Each call is traced by
:mod:`keras_lrp.canonizers.tracing` (a call that reads the batch size on a batch and its twin,
a call that depends on no input as a constant, ``None`` outputs dropped), and what the trace
leaves is rewritten by :mod:`keras_lrp.canonizers.trace_rewrites`. Kept by hand:

* ``ViTPatchingAndEmbedding`` (:mod:`keras_lrp.canonizers.vit_embedding`);
* ``PositionEmbedding`` (keras-hub) only reads its input's shape: zero relevance to the input,
  so the positions' share of an Add stops there, like a bias.
"""

from __future__ import annotations

from typing import List

import keras
from keras import tree

from keras_lrp.canonizers import copying, tracing
from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.canonizers import trace_rewrites as rewrites
from keras_lrp.canonizers.attention import cached_mha
from keras_lrp.canonizers.kernels import rewrite_kernel_ops
from keras_lrp.canonizers.tracing import is_foreign
from keras_lrp.canonizers.vit_embedding import vit_embedding
from keras_lrp.core import graph as graph_mod
from keras_lrp.core import linear, types
from keras_lrp.core.graph import Graph, Node, Ref

#: keras-hub layers whose call is traced into its parts: the encoder and decoder blocks, and the
#: causal LMs' decoder blocks with their attention layers (their scores and context are raw
#: ``ops.einsum`` or ``ops.dot_product_attention`` calls, handled once exposed) and
#: mixture-of-experts blocks.
KERAS_HUB_TRACED = (
    "TransformerEncoder", "TransformerDecoder", "ViTEncoder", "ViTEncoderBlock", "MLP",
    "TokenAndPositionEmbedding", "MaskedLMHead",
    # causal LMs: decoder blocks
    "LlamaTransformerDecoder", "MistralTransformerDecoder", "GemmaDecoderBlock",
    "Gemma3DecoderBlock", "QwenTransformerDecoder", "Qwen3TransformerDecoder", "Phi3Decoder",
    "MixtralTransformerDecoder", "MixtralSparseMoeBlock", "MixtralMoeExperts",
    # … and their attention layers
    "LlamaAttention", "CachedMistralAttention", "CachedGemmaAttention", "CachedGemma3Attention",
    "QwenAttention", "Qwen3Attention", "Phi3Attention", "CachedMixtralAttention")
#: keras-hub layers keras-lrp refuses, with the reason.
KERAS_HUB_REFUSED: dict = {}
#: Classes registered with :func:`register_block`.
REGISTERED: List[type] = []


def register_block(layer_class: type) -> None:
    """Trace every call of ``layer_class`` into the layers and ops its ``call`` runs, even where
    a composite entry names the class (a layer no entry names is traced anyway).

    For blocks built from layers and ops keras-lrp knows (your own transformer block);
    its ``call`` must not read the batch size. No ``get_config`` is needed: the trace runs on a
    copy where one can be made, else on the layer itself, sharing its weights.
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"register_block needs a keras.layers.Layer subclass, got "
                        f"{layer_class!r}.")
    REGISTERED.insert(0, layer_class)


def _from_keras_hub(layer, names) -> bool:
    cls = type(layer)
    return cls.__module__.startswith("keras_hub") and cls.__name__ in names


def is_traced(layer) -> bool:
    """Layers always traced: keras-hub's blocks, registered classes, GroupQueryAttention, and
    subclasses of Keras layers that override ``call`` (:func:`overrides_call`)."""
    return _from_keras_hub(layer, KERAS_HUB_TRACED + ("ViTPatchingAndEmbedding",)) or \
        isinstance(layer, tuple(REGISTERED) + types.GROUP_QUERY_ATTENTION) or \
        overrides_call(layer) or own_attention(layer)


def own_attention(layer) -> bool:
    """keras-hub's subclass of MultiHeadAttention with a ``call`` of its own (XLNet's
    TwoStreamRelativeAttention: relative-position and segment scores, a relative shift): not
    the attention the expansion knows (:func:`~keras_lrp.canonizers.attention.
    attention_problem`), so its call is traced into its projections, products and softmax.
    The cached MultiHeadAttention (:func:`~keras_lrp.canonizers.attention.cached_mha`) is
    MultiHeadAttention with a cache, and stays for the expansion."""
    return isinstance(layer, keras.layers.MultiHeadAttention) and \
        type(layer).__module__.startswith("keras_hub") and \
        type(layer).call is not keras.layers.MultiHeadAttention.call and not cached_mha(layer)


def overrides_call(layer) -> bool:
    """A class of yours derived from a Keras layer (``Conv2D``) whose ``call`` is its own: its
    attributes (``activation="relu"``) need not say what it computes, so it is traced from what
    ``call`` runs, unless you registered it (:func:`keras_lrp.register_layer`,
    :func:`keras_lrp.register_linear`, ``rule_map``)."""
    if not is_foreign(layer) or type(layer).__module__.startswith("keras_hub"):
        return False
    base = types.keras_layer_base(layer)
    if base is None or base in (keras.layers.Layer, keras.layers.InputLayer):
        return False
    return type(layer).call is not base.call and not linear.is_registered(layer)


def auto_traced(node: Node, graph: Graph) -> bool:
    """Whether ``node``'s layer is traced: :func:`is_traced`, or a foreign layer no entry of
    the analysis' composite names (``graph.explicit``; without one, foreign layers stay)."""
    if is_traced(node.layer):
        return not (graph.explicit is not None and overrides_call(node.layer)
                    and graph.explicit(node, graph))
    # a subclass of a Keras layer that keeps its call (keras-hub's attention, embeddings) is
    # that layer: the later canonizers and the base map serve it
    return graph.explicit is not None and is_foreign(node.layer) and \
        types.keras_layer_base(node.layer) is keras.layers.Layer and \
        not graph.explicit(node, graph)


def is_position_embedding(node, ctx=None) -> bool:
    """keras-hub's PositionEmbedding: its output depends on its input's shape only."""
    return _from_keras_hub(node.layer, ("PositionEmbedding",))


copy_layer = copying.copy_layer


def refine_shapes(graph: Graph, changed=()) -> None:
    """Fill in static shapes a nested model left open: a keras-hub backbone is built on
    (None, None) token inputs, so after inlining, its tensors know their sequence length only
    from the outer model's inputs. Each node's output spec is recomputed from its inputs'
    (``compute_output_spec`` runs the call on placeholders and records nothing); so is that
    of every node reading a tensor in ``changed`` (whose traced shape differs from the one the
    model recorded: SigLIP's vision embedding reports one token too many), and on downstream."""
    shapes, dtypes, changed = graph.shapes(), graph.dtypes(), set(changed)
    spec = lambda v: keras.KerasTensor(shapes[v.tid], dtype=dtypes.get(v.tid)) \
        if isinstance(v, Ref) else v  # noqa: E731
    for node in graph.nodes:
        if all(d is not None for shape in node.out_shapes for d in (shape or ())[1:]) and \
                not any(t in changed for t in node.inputs):
            continue
        try:
            out = node.layer.compute_output_spec(*tree.map_structure(spec, node.args),
                                                 **tree.map_structure(spec, node.kwargs))
        except Exception:  # noqa: BLE001 - keep the shapes we have
            continue
        new = [tuple(t.shape) for t in tree.flatten(out) if t is not None]
        if len(new) == len(node.outputs):
            changed.update(t for t, a, b in zip(node.outputs, node.out_shapes, new)
                           if tuple(a or ())[1:] != b[1:])
            node.out_shapes = new
            shapes.update(zip(node.outputs, new))


def _reads_stale(node: Node, stale: set) -> bool:
    """Whether ``node`` reads an output of a block traced in this pass (``stale``) whose sizes
    the model left open or recorded wrong (keras-hub's XLNet records its (B, T, T) attention
    masks as (B, T)): the block's parts know them once refined (:func:`refine_shapes`)."""
    return any(t in stale for t in node.inputs)


def _stale_outputs(node: Node, parts: List[Node], swaps: dict, shapes: dict) -> set:
    """The outputs of ``node`` (traced into ``parts``; ``swaps``: its outputs' new ids) whose
    traced sizes are open or differ from those the model recorded."""
    traced = {t: s for part in parts for t, s in zip(part.outputs, part.out_shapes)}

    def differs(t):
        old, new = tuple(shapes.get(t) or (None, None))[1:], traced.get(swaps.get(t, t))
        return None in old or new is None or tuple(new)[1:] != old
    return {t for t in node.outputs if differs(t)}


def trace_blocks(graph: Graph) -> None:
    """Replace every traced block's call by its parts, recursively."""
    if any(auto_traced(n, graph) for n in graph.nodes):
        refine_shapes(graph)
    while any(auto_traced(n, graph) for n in graph.nodes):
        for node in graph.nodes:
            reason = KERAS_HUB_REFUSED.get(type(node.layer).__name__)
            if reason and _from_keras_hub(node.layer, KERAS_HUB_REFUSED):
                raise ValueError(f"Layer '{node.layer.name}' ({type(node.layer).__name__}) "
                                 f"{reason}.")
        # the nodes a pass adds are read only by the next pass: shapes and dtypes once per pass
        nodes, swaps, shapes, dtypes = [], [], graph.shapes(), graph.dtypes()
        stale = set()  # outputs of the blocks this pass traces whose sizes the model got wrong
        for node in graph.nodes:
            if not auto_traced(node, graph) or _reads_stale(node, stale):
                nodes.append(node)  # (a block reading another's stale sizes waits a pass)
            elif _from_keras_hub(node.layer, ("ViTPatchingAndEmbedding",)):
                swaps += list(zip(node.outputs, vit_embedding(node, graph, shapes, nodes)))
            else:
                try:
                    fn, tids, batched = tracing.trace(node, shapes, dtypes)
                except tracing.DependsOnNoInput as constant:
                    nodes += tracing.constant_nodes(node, constant)
                    continue
                first = len(nodes)
                outs = graph_mod.walk(fn, tids, graph, nodes)
                twin_parts = None if batched is None else []
                if batched is not None and batched.twin is not None:
                    graph_mod.walk(batched.twin, tids, graph, twin_parts)
                    batched.twin._lrp_restore()
                renamed = dict(zip([t for i, t in enumerate(node.outputs)
                                    if i not in fn._lrp_others], outs))
                swaps += list(renamed.items())
                nodes += tracing.constant_outputs(node, fn, batched and batched.twin)
                stale |= _stale_outputs(node, nodes[first:], renamed, shapes)
                fn._lrp_restore()  # the trace is read: the user's layers lose its nodes
                for part in nodes[first:]:
                    part.scope = f"{node.scope}_{node.layer.name}" if node.scope else \
                        node.layer.name
                    part.traced_from = node.traced_from or node.layer
                batch = None if batched is None else batched.batch // 2
                kept = rewrites.rewrite_traced_ops(
                    nodes, first, graph, twin=twin_parts,
                    in_shapes={t: (batch,) + tuple(shapes[t][1:]) for t in tids})
                rewrite_kernel_ops(nodes, first, graph, keep=set(outs))
                if batched is not None or kept:  # (kept: batch sizes read at run time)
                    batched = batched or tracing.BatchTrace(fn._lrp_call, None, 2)
                    rewrites.check_batch_free(node.layer, batched.call, nodes[first:], tids,
                                              [renamed.get(t, t) for t in node.outputs],
                                              shapes, dtypes, batched.batch)
        graph.nodes = nodes
        graph.replace_tensors(swaps)
        graph_mod.inline(graph)  # a block's own nested models (a Sequential MLP)
        traced = graph.shapes()
        # sizes a symbolic reshape left open (Swin's patch merging), and a block whose traced
        # output differs from the size the model recorded
        refine_shapes(graph, [new for old, new in swaps if old in shapes and new in traced and
                              tuple(shapes[old])[1:] != tuple(traced[new])[1:]])


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["KERAS_HUB_TRACED", "copy_layer",
           "is_position_embedding",
           "is_traced", "register_block", "trace_blocks"]
