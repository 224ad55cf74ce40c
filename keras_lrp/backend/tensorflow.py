"""The TensorFlow implementation of the backend seam (see :mod:`keras_lrp.backend`).

Every TensorFlow call keras-lrp makes is here: the backward product (``tf.GradientTape``), the
recurrent scan (``tf.scan``), the ordering hint (``tf.control_dependencies``), the compiled run
(``tf.function``), ``tf.distribute``, the framework's version, and what ``tf.gather`` and the
image resizes compute when a layer's call uses them (:func:`foreign_functions`).
"""

from __future__ import annotations

import contextlib
from typing import Callable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from keras_lrp.backend import forms

NAME = "tensorflow"


def start() -> None:
    """Nothing more: importing TensorFlow started it."""


def version() -> str:
    return tf.__version__


def vjp(fn: Callable, *primals):
    """``(y, pullback)`` with ``y = fn(*primals)``: ``pullback(cotangent)`` is the list of the
    derivatives ∂⟨y, cotangent⟩/∂x_i of each primal x_i, ``None`` where ``y`` does not depend
    on x_i.

    The primals are copied first (``tf.identity``), so a tensor passed twice gets the derivative
    through each argument on its own. Call the pullback once.
    """
    xs = [tf.identity(tf.convert_to_tensor(x)) for x in primals]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        out = fn(*xs)

    def pullback(cotangent) -> List[Optional[tf.Tensor]]:
        return list(tape.gradient(out, xs, output_gradients=cotangent))

    return out, pullback


def scan(fn: Callable, elems, initializer, reverse: bool = False):
    """``tf.scan``: ``acc_t = fn(acc_{t-1}, elems_t)`` over the leading axis of ``elems``; every
    ``acc_t`` stacked (one compiled loop, whatever the length)."""
    return tf.scan(fn, elems, initializer=initializer, reverse=reverse)


@contextlib.contextmanager
def after(tensor):
    """Ops created inside wait for ``tensor`` (an ordering hint that bounds peak memory)."""
    with tf.control_dependencies([tensor]):
        yield


def compile_model(fn: Callable, model, jit_compile: bool = False) -> Callable:
    """``fn`` traced once into one TensorFlow graph, for inputs shaped like ``model.inputs``
    (XLA with ``jit_compile``)."""
    specs = [tf.TensorSpec(tuple(t.shape), t.dtype) for t in model.inputs]
    return tf.function(fn, input_signature=specs, jit_compile=jit_compile,
                       reduce_retracing=True)


# -- distribution ---------------------------------------------------------------------------
def current_strategy():
    """The ``tf.distribute`` strategy whose scope is active (the default strategy: 1 replica)."""
    return tf.distribute.get_strategy()


def distributed(strategy, fn: Callable, args: Sequence[np.ndarray]):
    """``fn`` on one contiguous shard of every array per replica, gathered back in input order.
    Returns ``(function, values)``: call ``function(*values)``; the function can be reused."""
    n = strategy.num_replicas_in_sync
    shards = [np.array_split(a, n) for a in args]
    values = [strategy.experimental_distribute_values_from_function(
        lambda ctx, parts=parts: tf.convert_to_tensor(parts[ctx.replica_id_in_sync_group]))
        for parts in shards]

    def step(*parts):
        out = strategy.run(lambda *xs: fn(*xs), args=parts)  # per replica
        return tf.nest.map_structure(lambda t: strategy.gather(t, axis=0), out)
    return step, values


def check_build(function, model) -> None:
    """Trace the compiled ``function`` now, so that shape errors are raised when the analyzer is
    built (the graph is then reused by every call)."""
    function.get_concrete_function()


def num_replicas(strategy) -> int:
    return strategy.num_replicas_in_sync


def compile_function(fn: Callable) -> Callable:
    return tf.function(fn, reduce_retracing=True)


def device_strategy(n: Optional[int], error: Callable[[str], Exception]):
    """A ``MirroredStrategy`` over every GPU (``n`` is ``None``; one CPU when there is none),
    the first ``n`` GPUs, or, without GPUs, ``n`` logical CPU devices. ``error(message)`` makes
    the exception raised for a count that cannot be honoured (the CLI has checked n >= 1)."""
    gpus = tf.config.list_physical_devices("GPU")
    if n is None:
        names = [f"/gpu:{i}" for i in range(len(gpus))] or ["/cpu:0"]
    else:
        if gpus:
            if n > len(gpus):
                raise error(f"--devices {n}: this machine has {len(gpus)} GPU(s).")
            names = [f"/gpu:{i}" for i in range(n)]
        else:
            if n > 1:
                cpu = tf.config.list_physical_devices("CPU")[0]
                try:
                    tf.config.set_logical_device_configuration(
                        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
                except RuntimeError:
                    raise error("--devices: TensorFlow's devices were already set up in this "
                                "process; pass --devices on a fresh start.") from None
            names = [f"/cpu:{i}" for i in range(n)]
    return tf.distribute.MirroredStrategy(names)


# ------------------------------------------------------------- functions a layer may call directly
def _gather(original, params, indices, validate_indices=None, axis=None, batch_dims=0,
            name=None):
    """``tf.gather``: ``ops.take`` without batch dimensions, ``ops.take_along_axis`` where
    every axis but the gathered one is a batch axis (DeBERTaV3's relative attention)."""
    rank = len(indices.shape)
    batch_dims = batch_dims + rank if batch_dims < 0 else batch_dims
    axis = batch_dims if axis is None else (axis + len(params.shape) if axis < 0 else axis)
    if batch_dims == 0:
        return forms.Take(params, indices, axis)
    if rank == len(params.shape) and batch_dims == rank - 1 == axis:
        return forms.TakeAlong(params, indices, axis)
    raise forms.NoForm


def _resize(original, images, size, *args, **kwargs):
    """``tf.image.resize`` / ``tf.compat.v1.image.resize`` (an interpolation along the height
    and width of NHWC or HWC images; keras-hub's Depth Anything resizes with align_corners)."""
    if kwargs.get("preserve_aspect_ratio") or len(images.shape) not in (3, 4):
        raise forms.NoForm
    axes = (1, 2) if len(images.shape) == 4 else (0, 1)
    return forms.Resample(images, lambda a: original(a, size, *args, **kwargs).numpy(), axes)


def foreign_functions():
    """``(owner, attribute, reader)`` for the TensorFlow functions whose calls on symbolic
    tensors keras-lrp reads into :mod:`keras_lrp.backend.forms`."""
    return [(tf, "gather", _gather), (tf.image, "resize", _resize),
            (tf.compat.v1.image, "resize", _resize)]
