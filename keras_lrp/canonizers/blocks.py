"""Composite layers traced into their parts: keras-hub's transformer blocks, and yours.

A block's ``call`` is built from other layers and ``keras.ops`` (keras-hub's
``TransformerEncoder`` is LayerNorm, MultiHeadAttention, Dense and residual adds). keras-lrp
cannot see inside such a layer, so the :class:`~keras_lrp.canonizers.base.TraceBlocks`
canonizer replaces each call by the graph its ``call`` builds: a copy of the layer (with the
same weights) is called on symbolic inputs, and the layers and ops it runs become nodes of the
analysis graph, where the composite's rules and the attention expansion reach them.

What is traced: the keras-hub blocks in :data:`KERAS_HUB_TRACED` (matched by class name and
module, so keras-hub is never imported here), the classes passed to :func:`register_block`,
and any layer of yours or keras-hub's that no composite entry names. A call that reads the
batch size is traced on a batch of 1 and made batch-free; a call that depends on no input
becomes a constant; a block returning ``(y, None)`` loses its ``None``
(:mod:`keras_lrp.canonizers.trace_rewrites`). Kept by hand:

* ``ViTPatchingAndEmbedding`` (:mod:`keras_lrp.canonizers.vit_embedding`);
* ``PositionEmbedding`` (keras-hub) only reads its input's shape: zero relevance to the input,
  so the positions' share of an Add stops there, like a bias.
"""

from __future__ import annotations

from typing import List

import keras
import numpy as np
from keras import ops, tree

from keras_lrp.canonizers import copying
from keras_lrp.canonizers import trace_rewrites as rewrites
from keras_lrp.canonizers.attention import cached_mha
from keras_lrp.canonizers.kernels import rewrite_kernel_ops
from keras_lrp.canonizers.trace_rewrites import KernelEinsum, ReshapeKeeping
from keras_lrp.canonizers.vit_embedding import AddConstant, PrependToken, vit_embedding
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

    For composite layers built from layers and ops keras-lrp knows (your own transformer block);
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
        overrides_call(layer)


def is_foreign(layer) -> bool:
    """A layer whose class is neither Keras' nor keras-lrp's (yours, keras-hub's): traced into
    its parts unless a composite entry names it (:func:`trace_blocks`)."""
    module = type(layer).__module__
    return types.is_layer(layer) and not types.is_model(layer) and \
        not types.is_keras_module(module) and not module.startswith("keras_lrp.")


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


def _same_weights(layer, copy) -> bool:
    return [tuple(w.shape) for w in layer.weights] == [tuple(w.shape) for w in copy.weights]


def _without_cache(compute_output_spec):
    """keras-hub's CachedMultiHeadAttention cannot be called on symbolic tensors (its output
    spec refuses the ``cache`` arguments); without a cache it is MultiHeadAttention."""
    def spec(*args, cache=None, cache_update_index=None, **kwargs):
        return compute_output_spec(*args, **kwargs)
    return spec


def _patch_specs(copy) -> list:
    """Make the sublayers of ``copy`` callable on symbolic tensors (:func:`_without_cache`,
    :func:`~keras_lrp.core.types.spec_from_call`); the patched ones, for :func:`_restore`."""
    patched = []
    for sub in copy._flatten_layers(include_self=False):
        if hasattr(sub, "_lrp_spec") or not (cached_mha(sub) or is_foreign(sub)):
            continue
        # a foreign layer's spec from its call: its own compute_output_shape (never used when
        # your model was built, since it ran inside its parent's call) may be wrong
        sub.compute_output_spec = _without_cache(sub.compute_output_spec) if cached_mha(sub) \
            else types.spec_from_call(sub)
        sub._lrp_spec = True
        patched.append(sub)
    return patched


def _split_outputs(out):
    """(the symbolic outputs of a traced call, {position: value} of the constants among them;
    positions count the outputs that are not ``None``, which Keras does not record): a
    top-level ``None`` or constant among a call's outputs (DeiT's encoder returns empty tensors
    for the hidden states it does not keep) cannot be a functional model's output."""
    if isinstance(out, (tuple, list)) and any(v is None for v in out):
        out = [v for v in out if v is not None]
    items = list(out) if isinstance(out, (tuple, list)) else [out]
    if all(isinstance(v, keras.KerasTensor) for v in items) or not any(
            isinstance(v, keras.KerasTensor) for v in items) or any(
            isinstance(v, (tuple, list, dict)) for v in items):
        return out, {}
    others = {i: np.asarray(ops.convert_to_numpy(v))
              for i, v in enumerate(items) if not isinstance(v, keras.KerasTensor)}
    return [v for v in items if isinstance(v, keras.KerasTensor)], others


def _constant_nodes(node: Node, constant: _DependsOnNoInput) -> List[Node]:
    """The node of a call that depends on no input, as constants read off its first input: a
    :class:`~keras_lrp.canonizers.trace_rewrites.ShapeConstant`, or one
    :class:`~keras_lrp.canonizers.trace_rewrites.BatchConstant` per output repeated to the
    batch."""
    x = node.inputs[0]
    if not constant.per_row:
        return [Node(rewrites.ShapeConstant(constant.values, name=f"{node.layer.name}_constant"),
                     (Ref(x),), {}, [x], node.outputs, node.out_shapes)]
    return [Node(rewrites.BatchConstant(v, dtype=str(v.dtype),
                                        name=f"{node.layer.name}_constant_{i}"),
                 (Ref(x),), {}, [x], [t], [(None,) + v.shape[1:]], out_dtypes=[str(v.dtype)])
            for i, (v, t) in enumerate(zip(constant.values, node.outputs))]


def _constant_outputs(node: Node, others: dict) -> List[Node]:
    """:class:`~keras_lrp.canonizers.trace_rewrites.ShapeConstant` nodes for the constant
    outputs of a traced call (:func:`_split_outputs`)."""
    return [Node(rewrites.ShapeConstant([value], name=f"{node.layer.name}_constant_{i}"),
                 (Ref(node.inputs[0]),), {}, node.inputs[:1], [node.outputs[i]],
                 [value.shape]) for i, value in others.items()]


def _trace_with(node: Node, shapes: dict, dtypes: dict, batch):
    layer = node.layer
    tids = list(dict.fromkeys(node.inputs))
    symbolic = {t: keras.Input(batch_shape=(batch,) + tuple(shapes[t][1:]), dtype=dtypes.get(t))
                for t in tids}
    fill = lambda v: symbolic[v.tid] if isinstance(v, Ref) else v  # noqa: E731
    args = tree.map_structure(fill, node.args)
    kwargs = tree.map_structure(fill, node.kwargs)
    kwargs.pop("training", None)
    copy = layer
    if not getattr(layer, "_lrp_private", False):  # a user's layer: trace a copy
        copy = _built_copy(layer, args, kwargs)
    patched = _patch_specs(copy)
    shared = _user_sublayers(copy)
    try:
        with types.none_free_nodes():
            out = copy.call(*args, **kwargs)
    except Exception:
        _restore(shared, patched)
        raise
    if not any(isinstance(v, keras.KerasTensor) for v in tree.flatten(out)):
        _restore(shared, patched)
        raise _DependsOnNoInput([np.asarray(ops.convert_to_numpy(v)) for v in tree.flatten(out)])
    out, others = _split_outputs(out)
    if others and len(tree.flatten(out)) + len(others) != len(node.outputs):
        _restore(shared, patched)
        raise ValueError(f"its call returns {len(tree.flatten(out)) + len(others)} outputs "
                         f"where the model's graph has {len(node.outputs)}")
    fn = keras.Model([symbolic[t] for t in tids], out)
    fn._lrp_others = others
    fn._lrp_restore = lambda: _restore(shared, patched)
    fn._lrp_user_layers = {id(sub) for sub, _, _ in shared}
    return fn, tids, copy, args, kwargs


class _DependsOnNoInput(Exception):
    """A traced call whose outputs depend on no input's values (``values``); ``per_row``: they
    are one row repeated to the batch (DeBERTa's relative embeddings), ``values`` that row."""

    def __init__(self, values, per_row: bool = False):
        super().__init__("the call depends on no input")
        self.values, self.per_row = values, per_row


def _repeated_rows(node: Node, shapes: dict, dtypes: dict, one) -> None:
    """Raise ``one`` (a batch-1 trace that depends on no input) as rows repeated to the batch,
    if the call on a batch of 2 gives each row twice."""
    try:
        _trace_with(node, shapes, dtypes, 2)
    except _DependsOnNoInput as two:
        if len(two.values) == len(one.values) and all(
                v.shape[:1] == (1,) and w.shape == (2,) + v.shape[1:] and
                np.array_equal(np.broadcast_to(v, w.shape), w)
                for v, w in zip(one.values, two.values)):
            raise _DependsOnNoInput(one.values, per_row=True) from None
    except Exception:  # noqa: BLE001 - not a constant on a batch of 2
        return


def _built_copy(layer, args, kwargs):
    """A copy of ``layer`` with its weights, called once on the trace's inputs (built): from
    its config or constructor where that gives the layer's weight shapes, else the user's own
    layer object in a shallow shell (:func:`keras_lrp.canonizers.copying.shallow_copy`)."""
    copy = copy_layer(layer)
    if getattr(copy, "_lrp_shares_weights", False):
        return copy
    try:
        copy(*args, **kwargs)  # builds it
        if not _same_weights(layer, copy):
            copy = copying.copy_from_attributes(layer)
            copy(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a copy that cannot run: trace the layer itself
        return copying.shallow_copy(layer)
    if not _same_weights(layer, copy):
        return copying.shallow_copy(layer)
    copy.set_weights(layer.get_weights())
    return copy


def _user_sublayers(copy) -> list:
    """(layer, node counts) of the user's layers a shallow copy's call will call on symbolic
    tensors: the nodes that adds are removed once the trace is read (:func:`_restore`)."""
    if not getattr(copy, "_lrp_shares_weights", False):
        return []
    return [(sub, len(sub._inbound_nodes), len(sub._outbound_nodes))
            for sub in copy._flatten_layers(include_self=False)]


def _restore(shared, patched) -> None:
    for sub, n_in, n_out in shared:
        del sub._inbound_nodes[n_in:]
        del sub._outbound_nodes[n_out:]
    for sub in patched:
        if not getattr(sub, "_lrp_private", False) and "compute_output_spec" in vars(sub):
            del sub.compute_output_spec, sub._lrp_spec


def _trace(node: Node, shapes: dict, dtypes: dict):
    """(functional model of the layer's call on symbolic inputs, the tensor ids it reads, and
    None or (the layer's own call on values by tensor id, its twin trace, the check's batch)).

    The trace runs with an unknown batch size; if the call needs a concrete one (a class token
    tiled to the batch), it runs with a batch of 1 (or of the leading size the graph recorded,
    :func:`_trace_on_a_batch`) and of twice that, the twin; the parts of the first are made
    batch-free from what differs in the twin, then checked against the call on the larger batch
    (:mod:`keras_lrp.canonizers.trace_rewrites`): a call whose result depends on the batch size
    in any other way is an error, never a wrong graph.
    """
    try:
        fn, tids, copy, args, kwargs = _trace_with(node, shapes, dtypes, None)
        call = None
    except _DependsOnNoInput:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the symbolic call
        fn, tids, copy, args, kwargs, batch = _trace_on_a_batch(node, shapes, dtypes, error)
        call = _own_call(fn, tids, copy, args, kwargs)
        try:  # the same call on twice the batch: what differs reads the batch size
            twin = _trace_with(node, shapes, dtypes, 2 * batch)[0]
        except Exception:  # noqa: BLE001 - no twin: the trace is checked as it is
            twin = None
        call = (call, twin, 2 * batch)
    for sub in fn.layers:  # sublayer names repeat across blocks: prefix the block's
        if isinstance(sub, keras.layers.InputLayer) or id(sub) in fn._lrp_user_layers:
            continue  # a user's own sublayer keeps its name (its copy is renamed if need be)
        sub.name = f"{node.layer.name}_{sub.name}"
        sub._lrp_private = True  # ours: a nested composite is traced without a copy
    return fn, tids, call


def _trace_on_a_batch(node: Node, shapes: dict, dtypes: dict, error):
    """:func:`_trace_with` on a batch of 1, else on the leading size the graph recorded for the
    layer's input (a window attention's batch × windows, which its call divides by the number
    of windows), and that size."""
    lead = (shapes.get(node.inputs[0]) or (None,))[0] if node.inputs else None
    sizes = [1] + ([lead] if isinstance(lead, int) and lead > 1 else [])
    failures = []
    for batch in sizes:
        try:
            return _trace_with(node, shapes, dtypes, batch) + (batch,)
        except _DependsOnNoInput as again:
            if batch == 1:
                _repeated_rows(node, shapes, dtypes, again)
            failures.append(f"with a batch of {batch}: {again}")
        except Exception as again:  # noqa: BLE001
            failures.append(f"with a batch of {batch}: {again}")
    detail = "; ".join([str(error)] + [f for f in failures if str(error) not in f])
    raw = "cannot be used as input to a" in detail  # tf.gather, jax.image on a KerasTensor
    why = (" (its call uses the backend's own functions, not keras.ops: only keras.ops "
           "can be traced)") if raw else ""
    raise ValueError(
        f"keras-lrp could not trace layer '{node.layer.name}' "
        f"({type(node.layer).__name__}) into its parts{why}: {detail}. Tracing calls the "
        "layer on symbolic inputs with static shapes except the batch size (build the "
        "model on keras.Input((T, ...)) with a fixed length); or give the layer a rule: "
        f"rule_map=[({type(node.layer).__name__}, keras_lrp.rules.IdentityRelevance)] "
        "(element-wise), RouteRelevance (moves values), ProportionalRelevance (a "
        "bias-free linear map), or keras_lrp.register_linear for a kernel.") from error


def _own_call(fn, tids, copy, args, kwargs):
    """The traced layer's own call on values given by tensor id (for the batch check)."""
    slot = {id(kt): t for kt, t in zip(fn.inputs, tids)}

    def call(values):
        fill = lambda v: values[slot[id(v)]] if isinstance(v, keras.KerasTensor) else v  # noqa: E731
        return copy(*tree.map_structure(fill, args), **tree.map_structure(fill, kwargs))
    return call


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


def _reads_open(node: Node, replaced: set, shapes: dict) -> bool:
    """Whether ``node`` reads a tensor of a block traced in this pass whose sizes a symbolic
    call left open: the block's parts know them once refined (:func:`refine_shapes`)."""
    return any(t in replaced and None in tuple(shapes.get(t) or (None, None))[1:]
               for t in node.inputs)


def trace_blocks(graph: Graph) -> None:
    """Replace every traced composite layer's call by its parts, recursively."""
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
        replaced = set()  # outputs of the blocks this pass traces
        for node in graph.nodes:
            if not auto_traced(node, graph) or _reads_open(node, replaced, shapes):
                nodes.append(node)  # (a block reading another's open sizes waits a pass)
            elif _from_keras_hub(node.layer, ("ViTPatchingAndEmbedding",)):
                swaps += list(zip(node.outputs, vit_embedding(node, graph, shapes, nodes)))
            else:
                try:
                    fn, tids, call = _trace(node, shapes, dtypes)
                except _DependsOnNoInput as constant:
                    nodes += _constant_nodes(node, constant)
                    continue
                call, twin, batch = call or (None, None, None)
                first = len(nodes)
                outs = graph_mod.walk(fn, tids, graph, nodes)
                twin_parts = [] if call is not None else None
                if twin is not None:
                    graph_mod.walk(twin, tids, graph, twin_parts)
                    twin._lrp_restore()
                swaps += list(zip([t for i, t in enumerate(node.outputs)
                                   if i not in fn._lrp_others], outs))
                replaced.update(node.outputs)
                nodes += _constant_outputs(node, fn._lrp_others)
                fn._lrp_restore()  # the trace is read: the user's layers lose its nodes
                for part in nodes[first:]:
                    part.scope = f"{node.scope}_{node.layer.name}" if node.scope else \
                        node.layer.name
                    part.traced_from = node.traced_from or node.layer
                rewrites.rewrite_traced_ops(nodes, first, graph, twin=twin_parts)
                rewrite_kernel_ops(nodes, first, graph, keep=set(outs))
                if call is not None:
                    rewrites.check_batch_free(node.layer, call, nodes[first:], tids, outs,
                                              shapes, dtypes, batch)
        graph.nodes = nodes
        graph.replace_tensors(swaps)
        graph_mod.inline(graph)  # a block's own nested models (a Sequential MLP)
        traced = graph.shapes()
        # sizes a symbolic reshape left open (Swin's patch merging), and a block whose traced
        # output differs from the size the model recorded
        refine_shapes(graph, [new for old, new in swaps if old in shapes and new in traced and
                              tuple(shapes[old])[1:] != tuple(traced[new])[1:]])


__all__ = ["AddConstant", "KERAS_HUB_TRACED", "KernelEinsum", "PrependToken", "ReshapeKeeping",
           "copy_layer",
           "is_position_embedding",
           "is_traced", "register_block", "trace_blocks"]
