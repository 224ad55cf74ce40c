"""The linear part of each kernel layer, applicable with a substitute kernel.

Every LRP rule for a kernel layer needs the layer's map ``x -> K(x; W)`` evaluated with modified
weights (``W⁺``, ``W²``, ``1``, ``W + γW⁺``, …) and its transpose ``s -> Kᵀ(s; W)``. A
:class:`LinearOp` gives both for one layer, whatever its type, so a rule is written once for
Dense, every convolution and standalone BatchNormalization alike.

Formula:
    z = K(x; W) + b,   and the transpose is the vector-Jacobian product of K in x, which does
    not depend on x because K is linear.
"""

from __future__ import annotations

from typing import Callable, Optional

import keras
from keras import ops

from keras_lrp import backend
from keras_lrp.core import types


class LinearOp:
    """The affine map ``z = K(x; W) + b`` of one Keras layer.

    Args:
        layer: the (built) Keras layer.
        apply: ``apply(x, kernel) -> K(x; kernel)`` without bias.
        kernel: the layer's kernel tensor.
        bias: the bias, shaped to broadcast against the output, or ``None``.
    """

    def __init__(self, layer, apply: Callable, kernel, bias=None,
                 stack_axis: Optional[int] = None):
        self.layer = layer
        self._apply = apply
        self.kernel = kernel
        self.bias = bias
        #: Kernel axis of the output channels, if kernels may be stacked along it to evaluate
        #: several kernels in one op; ``None`` where that is not exact (grouped, depthwise).
        self.stack_axis = stack_axis
        #: Whether stacking kernels pays: yes for convolutions (compute-bound), no for Dense
        #: layers, whose cost at small batches is reading the kernel (the stacked copy doubles it).
        self.stack_pays = stack_axis is not None and not isinstance(layer, types.DENSE)
        self.out_axis = 1 if getattr(layer, "data_format", None) == "channels_first" else -1

    def __call__(self, x, kernel=None):
        """``K(x; kernel)``, the layer's linear map without bias (kernel defaults to W)."""
        return self._apply(x, self.kernel if kernel is None else kernel)

    def structure(self) -> LinearOp:
        """The op whose all-ones kernel marks which inputs reach which outputs (itself, unless
        some weights are scaled per sample, as GRU's reset gate scales its recurrent ones)."""
        return self

    def transpose(self, s, like, kernel=None):
        """``Kᵀ(s; kernel)``: the transpose of the linear map applied to ``s``.

        ``like`` is any tensor with the input's shape; its values are never used. In a compiled
        graph the forward op on it has no consumer and is pruned, so this costs one backward op.
        """
        _, pullback = backend.vjp(lambda x0: self(x0, kernel), ops.zeros_like(like))
        return pullback(s)[0]

    def add_bias(self, z, bias):
        return z if bias is None else z + ops.cast(bias, z.dtype)


def _channel_bias(layer, bias, rank_out: int):
    """Reshape a per-channel bias so it broadcasts against an output of rank ``rank_out``."""
    if bias is None:
        return None
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return ops.reshape(bias, (1, -1) + (1,) * (rank_out - 2))
    return bias


def _dense(layer) -> LinearOp:
    return LinearOp(layer, lambda x, k: ops.matmul(x, k), layer.kernel, layer.bias,
                    stack_axis=-1)


def _einsum_dense(layer) -> LinearOp:
    return LinearOp(layer, lambda x, k: ops.einsum(layer.equation, x, k), layer.kernel,
                    layer.bias)


def _conv(layer) -> LinearOp:
    rank_out = layer.rank + 2
    return LinearOp(layer, layer.convolution_op, layer.kernel,
                    _channel_bias(layer, layer.bias, rank_out),
                    stack_axis=-1 if getattr(layer, "groups", 1) == 1 else None)


def _depthwise(layer) -> LinearOp:
    def apply(x, k):
        return ops.depthwise_conv(x, k, strides=layer.strides, padding=layer.padding,
                                  dilation_rate=layer.dilation_rate,
                                  data_format=layer.data_format)
    return LinearOp(layer, apply, layer.kernel,
                    _channel_bias(layer, layer.bias, layer.rank + 2))


def _conv_transpose(layer) -> LinearOp:
    def apply(x, k):
        return ops.conv_transpose(x, k, strides=list(layer.strides), padding=layer.padding,
                                  output_padding=layer.output_padding,
                                  dilation_rate=layer.dilation_rate,
                                  data_format=layer.data_format)
    return LinearOp(layer, apply, layer.kernel,
                    _channel_bias(layer, layer.bias, layer.rank + 2), stack_axis=-2)


def batchnorm_affine(layer):
    """Scale ``s = γ/√(var+ε)`` and shift ``β − μ·s`` of an inference-mode BatchNormalization."""
    scale = ops.rsqrt(layer.moving_variance + layer.epsilon)
    if layer.gamma is not None:
        scale = scale * layer.gamma
    shift = -layer.moving_mean * scale
    if layer.beta is not None:
        shift = shift + layer.beta
    return scale, shift


def _batchnorm(layer) -> LinearOp:
    scale, shift = batchnorm_affine(layer)
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]

    def broadcast(v, x):
        shape = [1] * len(x.shape)
        shape[axis] = -1
        return ops.reshape(v, shape)

    class _BN(LinearOp):
        def __call__(self, x, kernel=None):
            return x * broadcast(self.kernel if kernel is None else kernel, x)

        def add_bias(self, z, bias):
            return z if bias is None else z + broadcast(ops.cast(bias, z.dtype), z)

    return _BN(layer, None, scale, shift)


# Ordered: the first isinstance match wins.
LINEAR_OPS = [
    (keras.layers.Dense, _dense),
    (keras.layers.EinsumDense, _einsum_dense),
    (types.DEPTHWISE, _depthwise),
    (types.TRANSPOSE, _conv_transpose),
    (types.SEPARABLE, None),
    (types.CONV_BASE, _conv),
    (keras.layers.BatchNormalization, _batchnorm),
]


def register_linear(layer_class: type, apply: Callable, kernel="kernel", bias="bias") -> None:
    """Teach keras-lrp the linear map of your own kernel layer, so every LRP rule applies to it.

    Args:
        layer_class: your Keras layer class (subclasses match too).
        apply: ``apply(layer, x, kernel) -> K(x; kernel)``, the layer's map without bias,
            linear in ``x`` and in ``kernel``, for any kernel of the layer's kernel shape.
        kernel: the attribute holding the kernel, or ``kernel(layer) -> tensor``.
        bias: the attribute holding the bias (broadcastable against the output), or
            ``bias(layer) -> tensor or None``; ``None`` if the layer has no bias.

    Formula:
        z = apply(layer, x, W) + b;  rules call apply with modified kernels (W⁺, W², …)

    Example:
        >>> keras_lrp.register_linear(MyDense, lambda layer, x, k: x @ k, kernel="w", bias="b")
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise TypeError(f"register_linear needs a keras.layers.Layer subclass, got "
                        f"{layer_class!r}.")
    if not callable(apply):
        raise TypeError(f"register_linear needs apply(layer, x, kernel), got {apply!r}.")
    get = lambda spec, layer: spec(layer) if callable(spec) else (  # noqa: E731
        None if spec is None else getattr(layer, spec))
    LINEAR_OPS.insert(0, (layer_class, lambda layer: LinearOp(
        layer, lambda x, k: apply(layer, x, k), get(kernel, layer), get(bias, layer))))


def linear_op(layer) -> Optional[LinearOp]:
    """The :class:`LinearOp` of ``layer``, or ``None`` if it is not a kernel layer."""
    for cls, make in LINEAR_OPS:
        if isinstance(layer, cls):
            mode = getattr(layer, "quantization_mode", None)
            if mode is not None:
                raise ValueError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) is quantized "
                    f"(quantization_mode={mode!r}): its kernel holds integers and a scale, not "
                    "the weights the LRP rules read. Explain the model before quantizing it "
                    "(or a copy with float weights).")
            if make is None:
                raise ValueError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) has two kernels; the analyzer "
                    "splits it into a depthwise and a pointwise convolution before binding rules. "
                    "Bind the rule to those two layers instead.")
            return make(layer)
    return None


def is_registered(layer) -> bool:
    """Whether :func:`register_linear` taught a class of ``layer`` (not Keras' own)."""
    return any(isinstance(layer, cls) for cls, _ in LINEAR_OPS
               if not cls.__module__.startswith("keras"))


def is_kernel_layer(layer) -> bool:
    """True for layers whose relevance is given by an LRP rule on a kernel."""
    return any(isinstance(layer, cls) for cls, _ in LINEAR_OPS)
