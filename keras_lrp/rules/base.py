"""Shared pieces of every relevance layer: stabilised division and the rule base class."""

from __future__ import annotations

from typing import Optional

import keras
from keras import ops

from keras_lrp.linear import LinearOp, linear_op

#: Magnitude of the stabiliser added (with the denominator's sign) to every denominator other than
#: the Z rule's, so that no rule ever divides by zero: 1e-12 in float32 (R / 1e-12 stays finite
#: for any |R| < 3e26), 1e-100 in float64 (float64 is used to check conservation precisely, on
#: networks whose activations may be far below 1e-12).
TINY = {"float64": 1e-100}
TINY_DEFAULT = 1e-12


def tiny(dtype) -> float:
    """The stabiliser magnitude for tensors of ``dtype``."""
    return TINY.get(keras.backend.standardize_dtype(dtype), TINY_DEFAULT)


def sign_plus(z):
    """sign(z) with sign(0) = +1."""
    return ops.where(z >= 0, ops.ones_like(z), -ops.ones_like(z))


def stabilize(z, eps: Optional[float] = None, sign: int = 0):
    """``z + eps·sign(z)`` with sign(0) = +1: never zero, keeps the sign of ``z``.

    Pass ``sign=+1`` (or ``-1``) when ``z`` is mathematically ≥ 0 (≤ 0) everywhere: two
    operations instead of three. ``z`` is clamped first, so a rounding error of the wrong sign
    (a fast convolution may return −1e-12 for an exact 0) can never cancel ε.
    """
    eps = tiny(z.dtype) if eps is None else eps
    eps = ops.convert_to_tensor(eps, dtype=z.dtype)  # not ops.cast: it rounds through float32
    if sign:
        return ops.maximum(z, 0) + eps if sign > 0 else ops.minimum(z, 0) - eps
    return z + ops.where(z >= 0, eps, -eps)


def safe_divide(a, b):
    """``a / b`` where ``b ≠ 0`` and exactly 0 where ``b == 0`` (the Z rule's division)."""
    zero = ops.equal(b, 0)
    return ops.where(zero, ops.zeros_like(a), a / ops.where(zero, ops.ones_like(b), b))


def positive(t):
    return ops.maximum(t, 0)


def negative(t):
    return ops.minimum(t, 0)


class RelevanceLayer(keras.layers.Layer):
    """A layer of the reverse graph: relevance at a forward layer's output → at its inputs.

    Called on ``[x_1, …, x_n, z, R]``: the forward layer's inputs, its output and the relevance
    at that output. Returns the relevance at the input (a list when the layer has several).

    Args:
        target: the forward layer (or keras Operation) whose relevance this layer propagates.
        forward: ``forward(xs)`` recomputes the target's output from its inputs, replaying the
            node's own call arguments; defaults to calling ``target`` on one input or a list.
    """

    def __init__(self, target=None, forward=None, **kwargs):
        super().__init__(**kwargs)
        self.target = target
        self.forward = forward or (lambda xs: target(xs[0] if len(xs) == 1 else xs))

    def call(self, inputs):
        *xs, z, relevance = inputs
        out = self.propagate(xs, z, relevance)
        return out[0] if len(out) == 1 else out

    def propagate(self, xs, z, relevance):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_output_spec(self, inputs):
        xs = inputs[:-2]
        self.check_input_shapes([tuple(x.shape) for x in xs])
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype) for x in xs]
        return specs[0] if len(specs) == 1 else specs

    def check_input_shapes(self, shapes) -> None:
        """Raise ValueError if the layer's input shapes do not suit this relevance layer; called
        when the reverse graph is built, before any analysis."""


class Rule(RelevanceLayer):
    """An LRP rule for a kernel layer (Dense, convolutions, BatchNormalization).

    A rule is created unbound, as a template holding its parameters (``Epsilon(epsilon=0.1)``);
    :meth:`bind` makes the relevance layer for one kernel layer. Subclasses implement
    :meth:`relevance` from the layer's :class:`~keras_lrp.linear.LinearOp`.
    """

    #: name -> default of the rule's parameters, in order; subclasses override.
    PARAMS: dict = {}

    def __init__(self, target=None, **kwargs):
        params = {k: kwargs.pop(k, v) for k, v in self.PARAMS.items()}
        super().__init__(target=target, **kwargs)
        self.params = params
        self.validate(**params)
        for key, value in params.items():
            setattr(self, key, value)
        #: Set by the analyzer when the layer's input is known to be ≥ 0 (it comes from a ReLU);
        #: rules may then skip the terms in x⁻, which are exactly zero.
        self.input_nonnegative = False

    def validate(self, **params) -> None:
        """Raise ValueError for invalid parameters (the values are shown)."""

    def bind(self, layer, **kwargs) -> "Rule":
        """A copy of this rule propagating relevance through ``layer``."""
        if linear_op(layer) is None:
            raise ValueError(
                f"Rule {type(self).__name__} applies to kernel layers (Dense, convolutions, "
                f"BatchNormalization); layer '{layer.name}' is a {type(layer).__name__}.")
        activation = getattr(layer, "activation", None)
        if activation is not None and getattr(activation, "__name__", "") != "linear":
            raise ValueError(
                f"Layer '{layer.name}' has the fused activation '{activation.__name__}'; a rule "
                "needs the pre-activation output. create_analyzer splits activations for you; "
                "to bind a rule by hand, use a layer with activation=None.")
        kwargs.setdefault("name", f"{layer.name}_relevance")
        kwargs.setdefault("dtype", layer.dtype_policy)
        return type(self)(target=layer, **self.params, **kwargs)

    def propagate(self, xs, z, relevance):
        if len(xs) != 1:
            raise ValueError(f"Rule {type(self).__name__} expects one input to layer "
                             f"'{self.target.name}', got {len(xs)}.")
        return [self.relevance(linear_op(self.target), xs[0], z, relevance)]

    def relevance(self, op: LinearOp, x, z, relevance):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), **self.params}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class SignSplit:
    """Contributions split by input sign, for rules that treat x⁺ and x⁻ differently.

    With two kernels ``k_same`` and ``k_cross`` it gives

        z_a = K(x⁺; k_same) + K(x⁻; k_cross),      z_b = K(x⁺; k_cross) + K(x⁻; k_same)

    and, for ratios s_a, s_b at the output, the relevance

        R = x⁺ ⊙ (Kᵀ(s_a; k_same) + Kᵀ(s_b; k_cross)) + x⁻ ⊙ (Kᵀ(s_a; k_cross) + Kᵀ(s_b; k_same)).

    AlphaBeta uses (w⁺, w⁻): z_a = z⁺ (activator), z_b = z⁻ (inhibitor). Gamma uses
    (w + γw⁺, w + γw⁻). When the input is known to be ≥ 0, the x⁻ terms are skipped (exactly 0);
    the kernels are stacked so that each line costs one op where the layer allows it.
    """

    def __init__(self, op: LinearOp, x, k_same, k_cross, nonnegative: bool, need_b: bool = True):
        self.op, self.x, self.nonnegative = op, x, nonnegative
        self.xp = x if nonnegative else positive(x)
        self.xn = None if nonnegative else negative(x)
        self.same = [k_same, k_cross] if need_b else [k_same]
        self.cross = [k_cross, k_same] if need_b else [k_cross]

    def outputs(self):
        """``[z_a, z_b]`` (or ``[z_a]`` when ``need_b`` is False)."""
        z = self.op.apply_many(self.xp, self.same)
        if self.xn is not None:
            z = [a + b for a, b in zip(z, self.op.apply_many(self.xn, self.cross))]
        return z

    def relevance(self, ratios):
        """R from the output ratios ``[s_a, s_b]`` (or ``[s_a]``)."""
        out = self.xp * self.op.transpose_many(ratios, self.x, self.same)
        if self.xn is not None:
            out = out + self.xn * self.op.transpose_many(ratios, self.x, self.cross)
        return out
