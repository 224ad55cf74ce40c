"""Slices and broadcasts whose sizes hold the batch size, made batch-free.

A traced call may read the batch size off a tensor and pass it to ``ops.slice`` or
``ops.broadcast_to``: XLNet's relative shift transposes its positional scores to (T, L, B, N)
and slices them with sizes read off ``ops.shape``, batch included; its segment scores are
broadcast to ``ops.shape`` of the positional ones. A trace with an unknown batch
(:mod:`keras_lrp.canonizers.tracing`) records ``None`` for such a size; a trace on a batch b
and its twin on 2b, sizes that differ between the two. Either way the size is the batch, read
at run time from the tensor the op is called on:

* :class:`.SliceKeeping`: a slice from 0 on an axis whose size the call read off that axis
  takes the whole axis;
* :class:`.BroadcastKeeping`: a target size the input already has there stays the input's.

Any other use of such a size (a slice starting past 0, a broadcast of a size-1 axis to the
batch, a size that is not the axis' own) is refused, naming the layer and the op
(:func:`keep_batch_size`); what is rewritten is then checked against the layer's own call on
a larger batch (:func:`keras_lrp.canonizers.trace_rewrites.check_batch_free`). Both layers
move values: relevance follows them (``RouteRelevance``).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.core import types
from keras_lrp.core.graph import Node, Ref

#: The raw ops whose sizes may hold the batch.
_SLICE, _BROADCAST = types.OP_SLICE, types.OP_BROADCAST


def _batch_axes(node: Node, other: Optional[Node]) -> List[int]:
    """The axes where ``node``'s sizes hold the batch: ``None`` in a trace with an unknown
    batch, sizes that differ from ``other``'s, the twin trace's."""
    mine = list(node.layer.shape)
    if other is None:
        return [k for k, d in enumerate(mine) if d is None]
    theirs = list(getattr(other.layer, "shape", None) or ())
    if len(theirs) != len(mine):
        return []
    return [k for k, (a, b) in enumerate(zip(mine, theirs)) if a != b]


def keep_batch_size(node: Node, shapes: Dict[int, tuple], other: Optional[Node] = None) -> bool:
    """Rewrite ``node``, a raw slice or broadcast of a trace whose sizes hold the batch, into a
    :class:`.SliceKeeping` or :class:`.BroadcastKeeping`; whether it was. ``shapes``: the trace's
    tensor shapes (its batch included); ``other``: the node in the twin trace, or ``None`` for a
    trace with an unknown batch.

    Raises:
        ValueError: a size holds the batch where neither reads it off the op's input.
    """
    if not isinstance(node.layer, _SLICE + _BROADCAST) or not node.inputs:
        return False
    axes = _batch_axes(node, other)
    if not axes:
        return False
    sizes, x = list(node.layer.shape), node.args[0]
    known = tuple(shapes.get(x.tid) or ()) if isinstance(x, Ref) else ()
    start = list(node.args[1]) if isinstance(node.layer, _SLICE) and len(node.args) > 1 and \
        isinstance(node.args[1], (list, tuple)) else None
    fits = len(known) == len(sizes) and all(known[k] == sizes[k] for k in axes) and \
        (not isinstance(node.layer, _SLICE) or
         (start is not None and all(not isinstance(s, Ref) and (k not in axes or s == 0)
                                    for k, s in enumerate(start))))
    if not fits:
        _refuse(node, axes)
    open_sizes = [None if k in axes else d for k, d in enumerate(sizes)]
    name = f"{node.layer.name}_keeping"
    node.layer = fwd.SliceKeeping(start, open_sizes, name=name) \
        if isinstance(node.layer, _SLICE) else fwd.BroadcastKeeping(open_sizes, name=name)
    node.args, node.kwargs = (x,), {}
    return True


def _refuse(node: Node, axes: List[int]) -> None:
    block = node.traced_from
    op = "ops.slice" if isinstance(node.layer, _SLICE) else "ops.broadcast_to"
    owner = f"Layer '{block.name}' ({type(block).__name__})" if block is not None else \
        "A traced layer"
    cls = type(block).__name__ if block is not None else "YourLayer"
    raise ValueError(
        f"{owner} passes the batch size to {op} (its part '{node.layer.name}', sizes "
        f"{list(node.layer.shape)}, axes {axes}) in a way keras-lrp cannot make batch-free: "
        "only a slice of a whole axis from 0, or a broadcast keeping the input's own size "
        "there, reads the batch at run time. Give the layer a rule with "
        f"rule_map=[({cls}, …)] or keras_lrp.register_layer.")


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["keep_batch_size"]
