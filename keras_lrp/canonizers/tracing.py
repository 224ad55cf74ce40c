"""Tracing one call of a layer: the layer (a copy with its weights, or your own object in a
shell) called on symbolic inputs, read as a functional model of its parts.

:func:`trace` is what :func:`keras_lrp.canonizers.blocks.trace_blocks` calls for each block.
Keras lets a layer be called on symbolic tensors only where every output is a tensor and every
sublayer's output spec is right; a user's model never needs either (its blocks run inside their
parent's call), so a trace arranges both: a foreign sublayer's spec is computed from its
``call``, ``None`` outputs are not recorded (:func:`keras_lrp.core.types.none_free_nodes`), a
call that depends on no input is a constant (:class:`DependsOnNoInput`), and a call that reads
the batch size is traced on a batch and its twin (:mod:`keras_lrp.canonizers.trace_rewrites`).
"""

from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

import keras
import numpy as np
from keras import ops, tree

from keras_lrp.canonizers import copying, foreign_calls
from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.canonizers.attention import cached_mha
from keras_lrp.core import types
from keras_lrp.core.graph import Node, Ref, is_subclassed


def is_foreign(layer) -> bool:
    """A layer whose class is neither Keras' nor keras-lrp's (yours, keras-hub's; a subclassed
    model without a layer graph, :func:`~keras_lrp.core.graph.is_subclassed`): traced into its
    parts unless a composite entry names it (:func:`trace_blocks`)."""
    module = type(layer).__module__
    return types.is_layer(layer) and (not types.is_model(layer) or is_subclassed(layer)) and \
        not types.is_keras_module(module) and not module.startswith("keras_lrp.")


def _same_weights(layer, copy) -> bool:
    return [tuple(w.shape) for w in layer.weights] == [tuple(w.shape) for w in copy.weights]


def _without_cache(compute_output_spec):
    """keras-hub's CachedMultiHeadAttention cannot be called on symbolic tensors (its output
    spec refuses the ``cache`` arguments); without a cache it is MultiHeadAttention."""
    def spec(*args, cache=None, cache_update_index=None, **kwargs):
        return compute_output_spec(*args, **kwargs)
    return spec


def _open_einsum_dense(layer) -> bool:
    """An ``EinsumDense`` built with open sizes in its ``output_shape`` (DeBERTaV3's
    projections, built on token inputs of any length; XLNet's projection of the relative
    positions, built on the tokens' shape and called on twice as many positions): its spec keeps
    those sizes open even on inputs that fix them, where the trace needs them
    (``ops.arange(ops.shape(q)[1])``) and its call knows them."""
    return isinstance(layer, keras.layers.EinsumDense) and \
        None in tuple(getattr(layer, "partial_output_shape", None) or ())


def _patch_specs(copy) -> list:
    """Make the sublayers of ``copy`` callable on symbolic tensors with the shapes they compute
    (:func:`_without_cache`, :func:`~keras_lrp.core.types.spec_from_call` for foreign layers and
    :func:`_open_einsum_dense`); the patched ones, for :func:`_restore`."""
    patched = []
    for sub in copy._flatten_layers(include_self=False):
        if hasattr(sub, "_lrp_spec") or not (cached_mha(sub) or is_foreign(sub)
                                             or _open_einsum_dense(sub)):
            continue
        # a foreign layer's spec from its call (and an open EinsumDense's): its own
        # compute_output_shape (never used when your model was built, since it ran inside its
        # parent's call) may be wrong
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


def constant_nodes(node: Node, constant: DependsOnNoInput) -> List[Node]:
    """The node of a call that depends on no input, as constants read off its first input: a
    :class:`.ShapeConstant`, or one
    :class:`.BatchConstant` per output repeated to the
    batch."""
    x = node.inputs[0]
    if not constant.per_row:
        return [Node(fwd.ShapeConstant(constant.values, name=f"{node.layer.name}_constant"),
                     (Ref(x),), {}, [x], node.outputs, node.out_shapes)]
    return [Node(fwd.BatchConstant(v, dtype=str(v.dtype),
                                   name=f"{node.layer.name}_constant_{i}"),
                 (Ref(x),), {}, [x], [t], [(None,) + v.shape[1:]], out_dtypes=[str(v.dtype)])
            for i, (v, t) in enumerate(zip(constant.values, node.outputs))]


def constant_outputs(node: Node, fn, twin=None) -> List[Node]:
    """Nodes for the constant outputs of a traced call (``fn``, :func:`_split_outputs`): each a
    :class:`.ShapeConstant`, unless ``twin`` (the trace on
    twice the batch) gives it another value: then the value depends on the batch size, and a
    :class:`.ShapeOutput` computes it at run time."""
    theirs = {} if twin is None else twin._lrp_others
    out = []
    for i, value in fn._lrp_others.items():
        other = theirs.get(i, value)
        same = other.shape == value.shape and np.array_equal(other, value)
        layer = fwd.ShapeConstant([value], name=f"{node.layer.name}_constant_{i}") \
            if same else fwd.ShapeOutput(fn._lrp_copy, i,
                                         name=f"{node.layer.name}_batch_output_{i}")
        args, kwargs, inputs = ((Ref(node.inputs[0]),), {}, node.inputs[:1]) if same else \
            (node.args, node.kwargs, node.inputs)
        out.append(Node(layer, args, kwargs, inputs, [node.outputs[i]],
                        [(None,) + value.shape[1:] if not same else value.shape]))
    return out


def _trace_with(node: Node, shapes: dict, dtypes: dict, batch):
    """:func:`_trace_call` with the framework functions a call may use directly traced through
    their ``keras.ops`` form (:func:`~keras_lrp.canonizers.foreign_calls.keras_forms`)."""
    with foreign_calls.keras_forms():
        return _trace_call(node, shapes, dtypes, batch)


def _trace_call(node: Node, shapes: dict, dtypes: dict, batch):
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
    try:  # whatever fails, the user's layers lose the trace's nodes and patches
        with types.none_free_nodes():
            out = copy.call(*args, **kwargs)
        if not any(isinstance(v, keras.KerasTensor) for v in tree.flatten(out)):
            raise DependsOnNoInput([np.asarray(ops.convert_to_numpy(v))
                                    for v in tree.flatten(out)])
        out, others = _split_outputs(out)
        if others and len(tree.flatten(out)) + len(others) != len(node.outputs):
            raise ValueError(f"its call returns {len(tree.flatten(out)) + len(others)} outputs "
                             f"where the model's graph has {len(node.outputs)}")
        fn = keras.Model([symbolic[t] for t in tids], out)
    except Exception:
        _restore(shared, patched)
        raise
    fn._lrp_others, fn._lrp_copy = others, copy
    fn._lrp_restore = lambda: _restore(shared, patched)
    fn._lrp_user_layers = {id(sub) for sub, _, _ in shared}
    return fn, tids, copy, args, kwargs


class DependsOnNoInput(Exception):
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
    except DependsOnNoInput as two:
        if len(two.values) == len(one.values) and all(
                v.shape[:1] == (1,) and w.shape == (2,) + v.shape[1:] and
                np.array_equal(np.broadcast_to(v, w.shape), w)
                for v, w in zip(one.values, two.values)):
            raise DependsOnNoInput(one.values, per_row=True) from None
    except Exception:  # noqa: BLE001 - not a constant on a batch of 2
        return


def _built_copy(layer, args, kwargs):
    """A copy of ``layer`` with its weights, called once on the trace's inputs (built): from
    its config or constructor where that gives the layer's weight shapes, else the user's own
    layer object in a shallow shell (:func:`keras_lrp.canonizers.copying.shallow_copy`)."""
    copy = copying.copy_layer(layer)
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


class BatchTrace(NamedTuple):
    """What a trace of a call that reads the batch size brings along: the layer's own call on
    values by tensor id, the twin trace on twice the batch (``None`` if it failed), and the
    batch the parts are checked on."""

    call: Callable
    twin: Optional[keras.Model]
    batch: int


def trace(node: Node, shapes: dict, dtypes: dict):
    """(functional model of the layer's call on symbolic inputs, the tensor ids it reads, and
    None or a :class:`BatchTrace`).

    The trace runs with an unknown batch size; if the call needs a concrete one (a class token
    tiled to the batch), it runs with a batch of 1 (or of the leading size the graph recorded,
    :func:`_trace_on_a_batch`) and of twice that, the twin; the parts of the first are made
    batch-free from what differs in the twin, then checked against the call on the larger batch
    (:mod:`keras_lrp.canonizers.trace_rewrites`): a call whose result depends on the batch size
    in any other way is an error, never a wrong graph.
    """
    try:
        fn, tids, copy, args, kwargs = _trace_with(node, shapes, dtypes, None)
        batched = None
        fn._lrp_call = _own_call(fn, tids, copy, args, kwargs)  # to check what a rewrite assumed
    except DependsOnNoInput:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of the symbolic call
        fn, tids, copy, args, kwargs, batch = _trace_on_a_batch(node, shapes, dtypes, error)
        try:  # the same call on twice the batch: what differs reads the batch size
            twin = _trace_with(node, shapes, dtypes, 2 * batch)[0]
        except Exception:  # noqa: BLE001 - no twin: the trace is checked as it is
            twin = None
        batched = BatchTrace(_own_call(fn, tids, copy, args, kwargs), twin, 2 * batch)
    for sub in fn.layers:  # sublayer names repeat across blocks: prefix the block's
        if isinstance(sub, keras.layers.InputLayer) or id(sub) in fn._lrp_user_layers:
            continue  # a user's own sublayer keeps its name (its copy is renamed if need be)
        sub.name = f"{node.layer.name}_{sub.name}"
        sub._lrp_private = True  # ours: a nested block is traced without a copy
    return fn, tids, batched


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
        except DependsOnNoInput as again:
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
        f"rule_map=[({type(node.layer).__name__}, keras_lrp.layers.IdentityRelevance)] "
        "(element-wise), RouteRelevance (moves values), ProportionalRelevance (a "
        "bias-free linear map), or keras_lrp.register_linear for a kernel.") from error


def _own_call(fn, tids, copy, args, kwargs):
    """The traced layer's own call on values given by tensor id (for the batch check)."""
    slot = {id(kt): t for kt, t in zip(fn.inputs, tids)}

    def call(values):
        fill = lambda v: values[slot[id(v)]] if isinstance(v, keras.KerasTensor) else v  # noqa: E731
        return copy(*tree.map_structure(fill, args), **tree.map_structure(fill, kwargs))
    return call


__all__ = ["BatchTrace", "DependsOnNoInput", "constant_nodes", "constant_outputs", "is_foreign",
           "trace"]
