"""The ops a block's trace leaves that a replay cannot run or the rules cannot see, rewritten.

Tracing (:mod:`keras_lrp.canonizers.blocks`) calls a block on symbolic inputs and reads the
layers and ops it runs. Some of what it reads needs a rewrite:

* a raw reshape to a shape read off a symbolic tensor (holding ``None``) becomes
  :class:`ReshapeKeeping`; an einsum of a signal and a weight becomes :class:`KernelEinsum`
  (the composite's linear rule serves it);
* a call that depends on no input (DINOv3's rotary tables, computed from the image's shape)
  becomes :class:`ShapeConstant`, whose outputs count as constants: a product with them holds
  them, like RoPE's tables;
* **a call that reads the batch size** (a class token tiled to the batch,
  ``ops.tile(token, (ops.shape(x)[0], 1, 1))``, a reshape to ``(batch_size, -1, d)``, a window
  attention's reshape to ``batch × windows``) cannot be traced with an unknown batch, so
  :mod:`keras_lrp.canonizers.tracing` traces it on a batch b and on 2b, the twin. What differs
  between the two is made batch-free (:func:`rewrite_batch_one`): a constant that grows with
  the batch (the token a concatenation prepends, the probe an attention pooling queries with)
  becomes a :class:`BatchConstant`, broadcast to the signal's batch at run time, a reshape
  whose target differs in one size gets −1 there, a slice or broadcast whose sizes differ reads
  them off its input (:mod:`keras_lrp.canonizers.batch_sizes`), and a constant output whose
  value differs is the call's own at run time (:class:`ShapeOutput`). Whatever else a call
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
from keras_lrp.core import graph as graph_mod
from keras_lrp.core import linear, types
from keras_lrp.core.graph import Node, Ref


class BatchConstant(keras.layers.Layer):
    """A constant that a trace on a batch of 1 computed with a leading size of 1 where the call
    read the batch size (a class token tiled to the batch, SigLIP's pooling probe repeated to
    it), broadcast to the batch of the signal it is called on.

    Relevance: none reaches the signal (:class:`~keras_lrp.layers.ZeroRelevance`); its output
    counts as a constant (:func:`keras_lrp.core.patterns.constant_tensors`): concatenated to
    the signal, its rows' share is absorbed like a bias (as :class:`~keras_lrp.canonizers.
    vit_embedding.PrependToken`'s class token); a product with it is linear in the other factor.
    """

    #: Read by :func:`keras_lrp.core.patterns.constant_tensors`.
    depends_on_no_input = True

    def __init__(self, value=None, **kwargs):
        super().__init__(**kwargs)
        self.value = None if value is None else np.asarray(value).tolist()

    def call(self, x):
        value = ops.convert_to_tensor(np.asarray(self.value), dtype=self.compute_dtype)
        return ops.broadcast_to(value, (ops.shape(x)[0],) + tuple(value.shape[1:]))

    def compute_output_spec(self, x):
        return keras.KerasTensor((x.shape[0],) + np.shape(self.value)[1:],
                                 dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "value": self.value}


class ShapeConstant(keras.layers.Layer):
    """A traced call whose outputs depend on no input's values (only on its shape, which the
    trace fixed): those outputs, returned for any input.

    Relevance: none reaches the input (:class:`~keras_lrp.layers.ZeroRelevance`); its outputs
    count as constants (:func:`keras_lrp.core.patterns.constant_tensors`), so a product with
    them holds them, as a bias-like table.
    """

    #: Read by :func:`keras_lrp.core.patterns.constant_tensors`.
    depends_on_no_input = True

    def __init__(self, values=(), dtypes=None, shapes=None, **kwargs):
        super().__init__(**kwargs)
        self.dtypes = list(dtypes) if dtypes else [str(np.asarray(v).dtype) for v in values]
        # the shapes too: an empty array's list ([]) forgets them (DeiT's (0, T, d) outputs)
        self.shapes = [list(s) for s in shapes] if shapes else \
            [list(np.shape(v)) for v in values]
        self.values = [np.asarray(v).tolist() for v in values]

    def _arrays(self):
        return [np.asarray(v, d).reshape(s)
                for v, d, s in zip(self.values, self.dtypes, self.shapes)]

    def call(self, x):
        out = [ops.convert_to_tensor(a) for a in self._arrays()]
        return out[0] if len(out) == 1 else tuple(out)

    def compute_output_spec(self, x):
        out = [keras.KerasTensor(a.shape, dtype=str(a.dtype)) for a in self._arrays()]
        return out[0] if len(out) == 1 else tuple(out)

    def get_config(self):
        return {**super().get_config(), "values": self.values, "dtypes": self.dtypes,
                "shapes": self.shapes}


class ShapeOutput(keras.layers.Layer):
    """An output of a traced call that depends on no input's values but on the batch size
    (XLNet's relative position table, laid out by batch, so that each row's positions depend on
    how many rows there are): ``layer``'s own call at run time, its ``index``-th output.

    Relevance: none reaches the inputs (:class:`~keras_lrp.layers.ZeroRelevance`); its output
    counts as a constant (:func:`keras_lrp.core.patterns.constant_tensors`), like
    :class:`ShapeConstant`'s, which it stands for where the twin traces' values differ.
    """

    #: Read by :func:`keras_lrp.core.patterns.constant_tensors`.
    depends_on_no_input = True

    def __init__(self, layer=None, index: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.layer, self.index = layer, int(index)

    def call(self, *args, **kwargs):
        return [v for v in tree.flatten(self.layer(*args, **kwargs)) if v is not None][self.index]

    def compute_output_spec(self, *args, **kwargs):
        out = self.layer.compute_output_spec(*args, **kwargs)
        return [v for v in tree.flatten(out) if v is not None][self.index]

    def get_config(self):
        return {**super().get_config(), "index": self.index,
                "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(keras.saving.deserialize_keras_object(config.pop("layer")), **config)


def rewrite_batch_one(nodes: List[Node], first: int, graph, twin: List[Node],
                      shapes: Dict[int, tuple]) -> None:
    """Make the parts of a batch-1 trace (``nodes[first:]``) batch-free, from what differs in
    ``twin``, the same call traced on a batch of 2 (part by part; a twin that differs in its
    parts leaves the trace as it is, for :func:`check_batch_free` to refuse):

    * a constant argument of a part that reads a signal, of size 1 there and 2 in the twin
      along its leading axis (the tiled token, the repeated probe), becomes the output of a
      :class:`BatchConstant` called on that signal;
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
    against ``other``'s) by a :class:`BatchConstant` called on the node's first signal
    (appended to ``nodes``)."""
    signal = node.inputs[0]

    def to_batch(value, twin):
        if not _batch_one_constant(value, twin):
            return value
        tid, dtype = graph.new_tensor(), keras.backend.standardize_dtype(value.dtype)
        const = BatchConstant(np.asarray(ops.convert_to_numpy(value)), dtype=dtype,
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


class ReshapeKeeping(keras.layers.Layer):
    """``ops.reshape(x, shape)`` where ``shape`` was read off a tensor in a symbolic trace and
    holds ``None`` (the batch, a sequence axis a layer left open). One ``None`` is the size that
    fits (−1); the batch and one more: the batch, and the size that fits there (MiT's H·W);
    else ``None`` at position i is the input's size there (Gemma's rotary embedding reshapes to
    ``ops.shape(x)``)."""

    def __init__(self, newshape=(), **kwargs):
        super().__init__(**kwargs)
        self.newshape = [None if d is None else int(d) for d in newshape]

    def _target(self, shape):
        new = list(self.newshape)
        rest = [k for k, d in enumerate(new[1:], 1) if d is None or d == -1]
        static = [d for d in shape[1:] if isinstance(d, int)]
        if new[0] is None and len(rest) == 1 and len(static) == len(shape) - 1:
            # the batch, and one open size: the size that fits, from the input's static sizes
            # (MiT's reshape to (B, -1, C) with B read off a symbolic shape)
            known = int(np.prod([d for k, d in enumerate(new[1:], 1) if k not in rest]))
            new[rest[0]] = int(np.prod(static)) // known
            return [-1] + new[1:]
        if sum(d is None for d in new) == 1 and -1 not in new:
            return [-1 if d is None else d for d in new]
        return [shape[k] if d is None else d for k, d in enumerate(new)]

    def call(self, x):
        return ops.reshape(x, self._target(ops.shape(x)))

    def compute_output_spec(self, x):
        target = self._target(x.shape)
        if -1 in target:
            known = [d for d in target if d != -1]
            total = None if None in x.shape else int(np.prod(x.shape))
            fill = None if total is None or None in known else total // int(np.prod(known))
            target = [fill if d == -1 else d for d in target]
        return keras.KerasTensor(target, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "newshape": self.newshape}


class KernelEinsum(keras.layers.Layer):
    """``ops.einsum(equation, x, W)`` (or ``(W, x)``) with a weight W, written in a block's call
    (Mixtral's experts): a linear map of x, so the composite's linear rule serves it like an
    EinsumDense (:data:`keras_lrp.core.linear.LINEAR_OPS`)."""

    def __init__(self, equation: str = "", kernel_shape=(), kernel_first: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.equation, self.kernel_first = equation, bool(kernel_first)
        self.kernel_shape = [int(d) for d in kernel_shape]

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=tuple(self.kernel_shape), name="kernel",
                                      initializer="zeros")

    def apply_kernel(self, x, kernel):
        return ops.einsum(self.equation, kernel, x) if self.kernel_first else \
            ops.einsum(self.equation, x, kernel)

    def call(self, x):
        return self.apply_kernel(x, self.kernel)

    def get_config(self):
        return {**super().get_config(), "equation": self.equation,
                "kernel_shape": self.kernel_shape, "kernel_first": self.kernel_first}


linear.LINEAR_OPS.insert(0, (KernelEinsum, lambda layer: linear.LinearOp(
    layer, layer.apply_kernel, layer.kernel)))


def rewrite_traced_ops(nodes: List[Node], first: int, graph, twin=None,
                       in_shapes: Optional[Dict[int, tuple]] = None) -> bool:
    """Rewrite the ops a trace left (from ``nodes[first]`` on; ``in_shapes``: the shapes of the
    tensors it reads, as traced) that a replay cannot run or the rules cannot see: raw reshapes
    to a shape holding ``None`` become :class:`ReshapeKeeping`, slices and broadcasts to sizes
    holding ``None`` read them off their input (:mod:`keras_lrp.canonizers.batch_sizes`),
    einsums of a tensor and a weight :class:`KernelEinsum`; a trace on a batch of 1 is first
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
            node.layer = ReshapeKeeping(shape, name=f"{node.layer.name}_keeping")
        elif isinstance(node.layer, einsum) and len(node.inputs) == 1 and len(node.args) == 2:
            weights = [a for a in node.args if isinstance(a, keras.Variable)]
            if len(weights) != 1:
                continue
            first_is_kernel = isinstance(node.args[0], keras.Variable)
            tensor = node.args[1] if first_is_kernel else node.args[0]
            node.layer = KernelEinsum(node.layer.subscripts, tuple(weights[0].shape),
                                      first_is_kernel, name=f"{node.layer.name}_kernel")
            node.args, node.kwargs = (tensor,), {}
            node.weights = [np.asarray(keras.ops.convert_to_numpy(weights[0]))]
    return kept


__all__ = ["BatchConstant", "KernelEinsum", "ReshapeKeeping", "ShapeConstant", "ShapeOutput",
           "check_batch_free",
           "rewrite_batch_one", "rewrite_traced_ops"]
