"""What a framework function called directly in a layer's ``call`` computes, in words keras-lrp
can trace: the records each backend's ``foreign_functions`` readers return.

Some layers call their framework instead of ``keras.ops`` (keras-hub's DeBERTaV3 attention
calls ``tf.gather`` on TensorFlow; Depth Anything's head resizes with ``tf.compat.v1.image``,
``jax.image`` or ``torch.nn.functional.interpolate``). Called on the symbolic tensors of a trace
they fail. A backend module lists such functions with a reader for each
(``foreign_functions()``: ``(owner, attribute, reader)``); while a layer is traced
(:func:`keras_lrp.canonizers.foreign_calls.keras_forms`), a call on symbolic tensors is read
into one of these records, which the tracer computes with ``keras.ops``. A call a reader does
not recognise raises :class:`NoForm`, and the framework's own error stands: the layer is then
refused by name, never traced as something else.

No framework is imported here.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Tuple


class NoForm(Exception):
    """A framework call with no ``keras.ops`` form that keras-lrp knows (its other arguments
    differ from the forms below)."""


class TakeAlong(NamedTuple):
    """``ops.take_along_axis(params, indices, axis)``: ``tf.gather(params, indices,
    batch_dims=r - 1)`` with ``r`` the rank of both, gathering along the last batch axis."""

    params: Any
    indices: Any
    axis: int


class Take(NamedTuple):
    """``ops.take(params, indices, axis)``: ``tf.gather`` without batch dimensions."""

    params: Any
    indices: Any
    axis: int


class Resample(NamedTuple):
    """A resize (interpolation) of ``x`` along its ``axes``: a fixed linear map on each axis,
    read off ``call`` (the framework function with its other arguments fixed, NumPy array in,
    NumPy array out; the array's batch and channel sizes may differ from ``x``'s)."""

    x: Any
    call: Callable
    axes: Tuple[int, ...]


__all__ = ["NoForm", "Resample", "Take", "TakeAlong"]
