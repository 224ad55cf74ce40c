"""Stabilised arithmetic shared by every rule and relevance layer: the default ε, sign-aware
stabilisation, the Z rule's safe division and the sign split x⁺/x⁻."""

from __future__ import annotations

from typing import Optional

import keras
from keras import ops

#: The default stabiliser added (with the denominator's sign) to every denominator other than the
#: Z rule's, so that no rule ever divides by zero. In float32 it is *relative*: RELATIVE × the
#: largest |d| of the sample in that denominator tensor, never below the floor TINY (1e-30), so
#: that a network whose activations are tiny (an untrained MobileNet's logits are ~1e-20) keeps
#: its relevance as in float64. In float64 it is the absolute 1e-100 (conservation is checked
#: precisely there, on networks whose activations may be far below 1e-12). Other dtypes: 1e-12.
TINY = {"float32": 1e-30, "float64": 1e-100}
TINY_DEFAULT = 1e-12
RELATIVE = {"float32": 1e-9}


def tiny(dtype) -> float:
    """The absolute floor of the default stabiliser for tensors of ``dtype``."""
    return TINY.get(keras.backend.standardize_dtype(dtype), TINY_DEFAULT)


def default_eps(z):
    """The default stabiliser for the denominator ``z``: max(RELATIVE · max |z| over each
    sample, TINY) in float32 (a tensor broadcasting against z), TINY otherwise."""
    dtype = keras.backend.standardize_dtype(z.dtype)
    relative = RELATIVE.get(dtype)
    if relative is None:
        return tiny(dtype)
    axes = tuple(range(1, len(z.shape)))
    scale = ops.max(ops.abs(z), axis=axes, keepdims=True) if axes else ops.abs(z)
    return maximum(scale * relative, tiny(dtype))


def sign_plus(z):
    """sign(z) with sign(0) = +1."""
    return ops.where(z >= 0, ops.ones_like(z), -ops.ones_like(z))


def stabilize(z, eps: Optional[float] = None, sign: int = 0):
    """``z + eps·sign(z)`` with sign(0) = +1: never zero, keeps the sign of ``z``. ``eps``
    defaults to :func:`default_eps` (relative to the sample's scale in float32).

    Pass ``sign=+1`` (or ``-1``) when ``z`` is mathematically ≥ 0 (≤ 0) everywhere: two
    operations instead of three. ``z`` is clamped first, so a rounding error of the wrong sign
    (a fast convolution may return −1e-12 for an exact 0) can never cancel ε.
    """
    eps = default_eps(z) if eps is None else eps
    eps = ops.convert_to_tensor(eps, dtype=z.dtype)  # not ops.cast: it rounds through float32
    if sign:
        return positive(z) + eps if sign > 0 else negative(z) - eps
    return z + ops.where(z >= 0, eps, -eps)


def safe_divide(a, b):
    """``a / b`` where ``b ≠ 0`` and exactly 0 where ``b == 0`` (the Z rule's division)."""
    zero = ops.equal(b, 0)
    return ops.where(zero, ops.zeros_like(a), a / ops.where(zero, ops.ones_like(b), b))


# max and min written with ``where``: ``keras.ops.maximum``/``minimum`` on PyTorch promote
# float64 to float32 (Keras 3.15's result_type of a torch dtype), silently halving the precision.
def maximum(a, b):
    """max(a, b) element-wise, in the dtype of ``a``."""
    b = ops.convert_to_tensor(b, dtype=a.dtype)
    return ops.where(a >= b, a, b)


def minimum(a, b):
    """min(a, b) element-wise, in the dtype of ``a``."""
    b = ops.convert_to_tensor(b, dtype=a.dtype)
    return ops.where(a <= b, a, b)


def positive(t):
    """max(t, 0), in the dtype of ``t`` (a tensor or a Keras variable)."""
    t = ops.convert_to_tensor(t)
    return ops.where(t > 0, t, ops.zeros_like(t))


def negative(t):
    """min(t, 0), in the dtype of ``t``."""
    t = ops.convert_to_tensor(t)
    return ops.where(t < 0, t, ops.zeros_like(t))
