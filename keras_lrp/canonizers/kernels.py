"""Linear maps written with ``keras.ops`` inside a traced layer's ``call``: a kernel layer each.

A custom layer that keeps its own weight and computes ``ops.matmul(x, self.kernel)``,
``ops.dot``, ``ops.tensordot``, ``ops.conv``, ``ops.depthwise_conv`` or ``ops.conv_transpose``
(or a Conv2D subclass whose ``call`` runs ``self.convolution_op``) leaves, once traced, a raw op
node whose arguments are the input tensor and a weight variable. That is a linear map of the
input, so it becomes a :class:`.KernelOp` layer, which the composite's rule serves like a Dense
or a convolution (:data:`keras_lrp.core.linear.LINEAR_OPS`). A bias added right after it (a
weight variable broadcast over the output's last axis, the node's only reader) is folded in,
so that ``_IB`` and the ε rule treat it as a Dense's bias.

Formula:
    z = K(x; W) + b  with K the op (matmul, conv, …) and W, b the layer's variables.
"""

from __future__ import annotations

from typing import List, Optional

import keras
import numpy as np
from keras import ops

from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.core import types
from keras_lrp.core.graph import Node

#: Raw ops linear in their tensor argument when the other one is a weight: the weight's
#: position may be either (``matmul(W, x)``).
KERNEL_OPS = types.OP_KERNEL
#: The ops that add a bias.
BIAS_OPS = types.OP_BIAS




def _weight_arg(node: Node) -> Optional[int]:
    """The position of the one weight variable among a two-argument op's arguments."""
    if len(node.inputs) != 1 or len(node.args) != 2 or node.kwargs:
        return None
    weights = [i for i, a in enumerate(node.args) if isinstance(a, keras.Variable)]
    return weights[0] if len(weights) == 1 else None


def _value(variable) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(variable))


def rewrite_kernel_ops(nodes: List[Node], first: int, graph, keep=()) -> None:
    """Turn the kernel-op nodes from ``nodes[first]`` on into :class:`.KernelOp` nodes, each
    with the bias added right after it folded in (see the module docstring), unless its output
    is in ``keep`` (a trace's result, which readers outside the trace read)."""
    readers = {}
    for node in nodes[first:]:
        for tid in node.inputs:
            readers.setdefault(tid, []).append(node)
    dropped = []
    for node in nodes[first:]:
        at = _weight_arg(node) if isinstance(node.layer, KERNEL_OPS) else None
        if at is None:
            continue
        kernel = node.args[at]
        weights = [_value(kernel)]
        bias_node = None if node.outputs[0] in keep else _bias_after(node, readers, graph)
        bias_shape = None
        if bias_node is not None:
            bias = next(a for a in bias_node.args if isinstance(a, keras.Variable))
            weights.append(_value(bias))
            bias_shape = tuple(bias.shape)
            node.outputs, node.out_shapes = list(bias_node.outputs), list(bias_node.out_shapes)
            node.out_dtypes = list(bias_node.out_dtypes)
            dropped.append(bias_node)
        node.layer = fwd.KernelOp(node.layer, tuple(kernel.shape), at == 0, bias_shape,
                                  name=f"{node.layer.name}_kernel")
        node.args, node.kwargs = (node.args[1 - at],), {}
        node.weights = weights
    for node in dropped:
        nodes.remove(node)


def _bias_after(node: Node, readers, graph) -> Optional[Node]:
    """The node adding a bias variable to ``node``'s output, if it is that output's only
    reader and the bias broadcasts over the last axis only."""
    out = node.outputs[0]
    users = readers.get(out, [])
    if len(users) != 1 or out in graph.outputs or not isinstance(users[0].layer, BIAS_OPS):
        return None
    user = users[0]
    if len(user.inputs) != 1 or len(user.args) != 2:
        return None
    bias = [a for a in user.args if isinstance(a, keras.Variable)]
    if len(bias) != 1 or len(bias[0].shape) != 1:
        return None
    shape = node.out_shapes[0] if node.out_shapes else None
    if not shape or shape[-1] != bias[0].shape[0]:
        return None
    return user


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["BIAS_OPS", "KERNEL_OPS", "rewrite_kernel_ops"]
