"""The ops a block's trace leaves that a replay cannot run or the rules cannot see, rewritten.

Tracing (:mod:`keras_lrp.canonizers.blocks`) calls a block on symbolic inputs and reads the
layers and ops it runs. Some of what it reads needs a rewrite:

* a raw reshape to a shape read off a symbolic tensor (holding ``None``) becomes
  :class:`.ReshapeKeeping`; an einsum of a signal and a weight becomes :class:`.KernelEinsum`
  (the composite's linear rule serves it);
* a call that depends on no input (DINOv3's rotary tables, computed from the image's shape)
  becomes :class:`.ShapeConstant`, whose outputs count as constants: a product with them holds
  them, like RoPE's tables;
* **a call that reads the batch size** (a class token tiled to the batch,
  ``ops.tile(token, (ops.shape(x)[0], 1, 1))``, a reshape to ``(batch_size, -1, d)``, a window
  attention's reshape to ``batch × windows``) cannot be traced with an unknown batch, so
  :mod:`keras_lrp.canonizers.tracing` traces it on a batch b and on 2b, the twin. What differs
  between the two is made batch-free (:func:`rewrite_batch_one`): a constant that grows with
  the batch (the token a concatenation prepends, the probe an attention pooling queries with)
  becomes a :class:`.BatchConstant`, broadcast to the signal's batch at run time, a reshape
  whose target differs in one size gets −1 there, a slice or broadcast whose sizes differ reads
  them off its input (:mod:`keras_lrp.canonizers.batch_sizes`), and a constant output whose
  value differs is the call's own at run time (:class:`.ShapeOutput`). Whatever else a call
  does with the batch size is not guessed: the rewritten parts are run on a batch of 2b next
  to the block itself (:func:`check_batch_free`), and a block whose parts differ is refused,
  never explained as another network.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Dict, List, Optional

import keras
import numpy as np
from keras import ops, tree

from keras_lrp import backend
from keras_lrp.canonizers import batch_sizes
from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.core import graph as graph_mod
from keras_lrp.core import types
from keras_lrp.core.graph import Node, Ref


def rewrite_batch_one(nodes: List[Node], first: int, graph, twin: List[Node],
                      shapes: Dict[int, tuple]) -> None:
    """Make the parts of a batch-1 trace (``nodes[first:]``) batch-free, from what differs in
    ``twin``, the same call traced on a batch of 2 (part by part; a twin that differs in its
    parts leaves the trace as it is, for :func:`check_batch_free` to refuse):

    * a constant argument of a part that reads a signal, of size 1 there and 2 in the twin
      along its leading axis (the tiled token, the repeated probe), becomes the output of a
      :class:`.BatchConstant` called on that signal;
    * a raw reshape whose target differs in one size (``batch``, ``batch * heads``: ViTDet's
      and Swin's windows) gets −1 there, the sizes the trace found elsewhere;
    * a raw slice or broadcast whose sizes differ reads them off its input at run time
      (:func:`keras_lrp.canonizers.batch_sizes.keep_batch_size`; ``shapes``: the trace's).
    """
    parts = nodes[first:]
    if len(twin) != len(parts) or any(type(a.layer) is not type(b.layer)
                                      for a, b in zip(parts, twin)):
        return
    del nodes[first:]
    for node, other in zip(parts, twin):
        if isinstance(node.layer, types.OP_RESHAPE) and node.inputs:
            _reshape_to_any_batch(node, other)
        elif batch_sizes.keep_batch_size(node, shapes, other):
            pass
        elif node.inputs and not isinstance(node.layer, _NOT_BROADCAST):
            _broadcast_constants(node, other, nodes, graph)
        nodes.append(node)


def _reshape_to_any_batch(node: Node, other: Node) -> None:
    one, two = (getattr(n.layer, "newshape", None) for n in (node, other))
    if not isinstance(one, (list, tuple)) or not isinstance(two, (list, tuple)) or \
            len(one) != len(two):
        return
    differ = [k for k, (a, b) in enumerate(zip(one, two)) if a != b]
    if len(differ) != 1:
        return
    traced = tuple(node.out_shapes[0]) if node.out_shapes else tuple(one)
    node.layer.newshape = tuple(-1 if k == differ[0] else (d if d is not None else one[k])
                                for k, d in enumerate(traced))


def _batch_one_constant(value, twin) -> bool:
    shape, other = getattr(value, "shape", None), getattr(twin, "shape", None)
    return not isinstance(value, (Ref, keras.Variable)) and shape is not None and \
        other is not None and len(shape) >= 1 and len(shape) == len(other) and \
        shape[0] == 1 and other[0] == 2 and tuple(shape[1:]) == tuple(other[1:])


def _broadcast_constants(node: Node, other: Node, nodes: List[Node], graph) -> None:
    """Replace each batch-1 constant in ``node``'s arguments (:func:`_batch_one_constant`
    against ``other``'s) by a :class:`.BatchConstant` called on the node's first signal
    (appended to ``nodes``)."""
    signal = node.inputs[0]

    def to_batch(value, twin):
        if not _batch_one_constant(value, twin):
            return value
        tid, dtype = graph.new_tensor(), keras.backend.standardize_dtype(value.dtype)
        const = fwd.BatchConstant(np.asarray(ops.convert_to_numpy(value)), dtype=dtype,
                                  name=f"{node.layer.name}_batch_constant_{tid}")
        nodes.append(Node(const, (Ref(signal),), {}, [signal], [tid],
                          [(None,) + tuple(value.shape[1:])], out_dtypes=[dtype]))
        return Ref(tid)

    for key in ("args", "kwargs"):
        mine, theirs = tree.flatten(getattr(node, key)), tree.flatten(getattr(other, key))
        if len(mine) == len(theirs):
            setattr(node, key, tree.pack_sequence_as(
                getattr(node, key), [to_batch(v, w) for v, w in zip(mine, theirs)]))
    # a node's inputs are its tensor arguments in order (the reverse graph reads them so)
    node.inputs = [v.tid for v in tree.flatten((node.args, node.kwargs)) if isinstance(v, Ref)]


#: Parts whose batch-1 constants stay as they are: they broadcast by themselves.
_NOT_BROADCAST = types.OP_ARITHMETIC + types.OP_MINMAX


def check_batch_free(layer, call, parts: List[Node], tids: List[int], outs: List[int],
                     shapes: Dict[int, tuple], dtypes: Dict[int, str], batch: int = 2) -> None:
    """Refuse ``layer`` unless its traced ``parts`` (reading ``tids``, giving ``outs``) equal
    ``call`` (the layer's own call on the same values) on a batch of ``batch``."""
    rng = np.random.default_rng(0)

    def sample(t):
        shape, dtype = (batch,) + tuple(shapes[t][1:]), str(dtypes.get(t) or "float32")
        if "float" in dtype:
            return rng.normal(size=shape).astype(dtype)
        return np.ones(shape, dtype)

    refusal = ValueError(
        f"Layer '{layer.name}' ({type(layer).__name__}) reads the batch size in its call in a "
        f"way keras-lrp cannot trace (its traced parts do not equal the layer on a batch of "
        f"{batch}), so keras-lrp cannot trace it into its parts. Give it a rule with "
        f"rule_map=[({type(layer).__name__}, …)] or keras_lrp.register_layer.")
    try:
        values = {t: sample(t) for t in tids}
        want = call(values)
        got = graph_mod.replay(SimpleNamespace(inputs=list(values), nodes=parts),
                               list(values.values()))
    except Exception as error:  # noqa: BLE001 - the parts fail on the larger batch
        raise refusal from error
    for w, t in zip([v for v in tree.flatten(want) if v is not None], outs):
        w, g = backend.to_numpy(w), backend.to_numpy(got[t])  # (a torch tensor may need grad)
        if w.shape != g.shape or not np.allclose(w, g, rtol=1e-4, atol=1e-5):
            raise refusal




def rewrite_traced_ops(nodes: List[Node], first: int, graph, twin=None,
                       in_shapes: Optional[Dict[int, tuple]] = None) -> bool:
    """Rewrite the ops a trace left (from ``nodes[first]`` on; ``in_shapes``: the shapes of the
    tensors it reads, as traced) that a replay cannot run or the rules cannot see: raw reshapes
    to a shape holding ``None`` become :class:`.ReshapeKeeping`, slices and broadcasts to sizes
    holding ``None`` read them off their input (:mod:`keras_lrp.canonizers.batch_sizes`),
    einsums of a tensor and a weight :class:`.KernelEinsum`; a trace on a batch of 1 is first
    made batch-free (:func:`rewrite_batch_one`). Whether a slice or broadcast was rewritten on
    a trace with an unknown batch (what it assumed is then to be checked)."""
    shapes = dict(in_shapes or {})
    shapes.update((t, s) for node in nodes[first:] for t, s in zip(node.outputs, node.out_shapes))
    if twin is not None:
        rewrite_batch_one(nodes, first, graph, twin, shapes)
    reshape, einsum = types.OP_RESHAPE, types.OP_EINSUM
    kept = False
    for node in nodes[first:]:
        kept = batch_sizes.keep_batch_size(node, shapes) or kept
        shape = getattr(node.layer, "newshape", None)
        if isinstance(node.layer, reshape) and isinstance(shape, (list, tuple)) and \
                any(d is None for d in shape):
            node.layer = fwd.ReshapeKeeping(shape, name=f"{node.layer.name}_keeping")
        elif isinstance(node.layer, einsum) and len(node.inputs) == 1 and len(node.args) == 2:
            weights = [a for a in node.args if isinstance(a, keras.Variable)]
            if len(weights) != 1:
                continue
            first_is_kernel = isinstance(node.args[0], keras.Variable)
            tensor = node.args[1] if first_is_kernel else node.args[0]
            node.layer = fwd.KernelEinsum(node.layer.subscripts, tuple(weights[0].shape),
                                          first_is_kernel, name=f"{node.layer.name}_kernel")
            node.args, node.kwargs = (tensor,), {}
            node.weights = [np.asarray(keras.ops.convert_to_numpy(weights[0]))]
    return kept


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["check_batch_free", "rewrite_batch_one", "rewrite_traced_ops"]
