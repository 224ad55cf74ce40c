"""Linear maps a canonizer reads off a traced call: a kernel op, an einsum with a weight, a
resize.

:class:`KernelOp` (:mod:`keras_lrp.canonizers.kernels`) and :class:`KernelEinsum`
(:mod:`keras_lrp.canonizers.trace_rewrites`) carry a weight of the layer they came from and are
kernel layers (:data:`keras_lrp.core.linear.LINEAR_OPS`): the composite's linear rule serves
them. :class:`LinearResample` (:mod:`keras_lrp.canonizers.foreign_calls`) is a fixed, bias-free
linear map: the Z rule.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_lrp.core import linear


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


class KernelOp(keras.layers.Layer):
    """``op(x, W) + b`` (or ``op(W, x) + b``) for a raw ``keras.ops`` op linear in x, with the
    weight W (and bias b) of the layer whose ``call`` it came from; see the module docstring.

    Args:
        op: the ``keras.ops`` Operation (its strides, padding, axes… are its attributes).
        kernel_shape: W's shape; ``kernel_first``: whether W is the op's first argument.
        bias_shape: b's shape, or ``None`` without a bias.
    """

    def __init__(self, op=None, kernel_shape=(), kernel_first: bool = False,
                 bias_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.op, self.kernel_first = op, bool(kernel_first)
        self.kernel_shape = tuple(int(d) for d in kernel_shape)
        self.bias_shape = None if bias_shape is None else tuple(int(d) for d in bias_shape)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=self.kernel_shape, name="kernel",
                                      initializer="zeros")
        self.bias = None if self.bias_shape is None else self.add_weight(
            shape=self.bias_shape, name="bias", initializer="zeros")

    def apply_kernel(self, x, kernel):
        return self.op.call(kernel, x) if self.kernel_first else self.op.call(x, kernel)

    def call(self, x):
        z = self.apply_kernel(x, self.kernel)
        return z if self.bias is None else z + ops.cast(self.bias, z.dtype)

    def compute_output_spec(self, x):
        kernel = keras.KerasTensor(self.kernel_shape, dtype=x.dtype)
        spec = self.op.compute_output_spec(*((kernel, x) if self.kernel_first else (x, kernel)))
        return keras.KerasTensor(spec.shape, dtype=x.dtype)

    def get_config(self):  # the op is an object: copies are made from the attributes
        raise NotImplementedError(f"{type(self).__name__} is copied from its attributes.")


linear.LINEAR_OPS.insert(0, (KernelOp, lambda layer: linear.LinearOp(
    layer, layer.apply_kernel, layer.kernel, layer.bias)))


class LinearResample(keras.layers.Layer):
    """A fixed linear map along each of ``axes``: ``y = x ×₁ M₁ ×₂ M₂ …``, where ``x ×ₖ M``
    contracts axis ``k`` of ``x`` with the first axis of ``M`` (``n_in × n_out``). An
    interpolating resize (bilinear, bicubic, area, nearest) is such a map, separable over the
    spatial axes, the same for every channel and sample.

    Relevance: the Z rule through a bias-free linear map
    (:class:`~keras_lrp.layers.structural.ProportionalRelevance`), as for ``Resizing``:
    ``R_i = Σ_j x_i w_ij / z_j · R_j`` with ``z_j = Σ_i x_i w_ij`` (Bach et al., 2015).
    """

    def __init__(self, axes: Sequence[int] = (), matrices=(), **kwargs):
        super().__init__(**kwargs)
        self.axes = [int(a) for a in axes]
        self.matrices = [np.asarray(m).tolist() for m in matrices]

    def call(self, x):
        for axis, m in zip(self.axes, self.matrices):
            m = ops.convert_to_tensor(np.asarray(m), dtype=x.dtype)
            x = ops.moveaxis(ops.tensordot(x, m, axes=[[axis], [0]]), -1, axis)
        return x

    def compute_output_spec(self, x):
        shape = list(x.shape)
        for axis, m in zip(self.axes, self.matrices):
            shape[axis] = len(m[0])
        return keras.KerasTensor(tuple(shape), dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "matrices": self.matrices}


__all__ = ["KernelEinsum", "KernelOp", "LinearResample"]
