"""The rule base class (a relevance layer for kernel layers) and the sign split αβ and γ share."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_lrp import backend
from keras_lrp.core.linear import LinearOp, is_kernel_layer, linear_op
from keras_lrp.core.stabilize import (
    TINY,
    TINY_DEFAULT,
    negative,
    positive,
    safe_divide,
    sign_plus,
    stabilize,
    tiny,
)
from keras_lrp.layers.base import RelevanceLayer
from keras_lrp.layers.rule_layers import rule_layer, takes_rule


class Rule(RelevanceLayer):
    """An LRP rule for a kernel layer (Dense, convolutions, BatchNormalization).

    A rule is created unbound, as a template holding its parameters (``Epsilon(epsilon=0.1)``);
    :meth:`bind` makes the relevance layer for one kernel layer. Subclasses implement
    :meth:`relevance` from the layer's :class:`~keras_lrp.core.linear.LinearOp`.

    As a composite's map value (see :mod:`keras_lrp.layers.base`) a rule serves the kernel layers
    and the layers whose inner linear maps take a rule (recurrent layers, Bidirectional,
    TimeDistributed, attention products: :mod:`keras_lrp.layers.rule_layers`), whose own classes
    build their relevance layers from it.
    """

    #: name -> default of the rule's parameters, in order; subclasses override.
    PARAMS: dict = {}
    #: Whether the relevance this rule gives each input is that input times something finite
    #: (R_i = x_i · c_i): then an input that is 0 gets exactly 0 (see
    #: :mod:`keras_lrp.analyzers.reverse`).
    x_proportional = False
    output_stand_in = True

    def __init__(self, layer=None, **kwargs):
        params = {k: kwargs.pop(k, v) for k, v in self.PARAMS.items()}
        super().__init__(layer=layer, **kwargs)
        self.params = params
        self._check_types(params)
        self.validate(**params)
        for key, value in params.items():
            setattr(self, key, value)
        #: Set by the analyzer when the layer's input is known to be ≥ 0 (it comes from a ReLU);
        #: rules may then skip the terms in x⁻, which are exactly zero.
        self.input_nonnegative = False

    def _check_types(self, params) -> None:
        """A parameter whose default is a bool must be a bool, one whose default is a number
        must be a number (or an array of numbers): ``Epsilon(epsilon="abc")`` is a clear
        ValueError, not a TypeError from deep inside a comparison."""
        for key, default in self.PARAMS.items():
            value = params[key]
            if isinstance(default, bool):
                if not isinstance(value, (bool, np.bool_)):
                    raise ValueError(f"{type(self).__name__} needs {key}=True or False, got "
                                     f"{key}={value!r}.")
            elif isinstance(default, (int, float)) and not _numeric(value):
                raise ValueError(f"{type(self).__name__} needs a number for {key}, got "
                                 f"{key}={value!r}.")

    def validate(self, **params) -> None:
        """Raise ValueError for invalid parameters (the values are shown)."""

    # -- the map-value contract -----------------------------------------------------------------
    def serves(self, layer) -> bool:
        """Kernel layers, and those whose linear maps take a rule."""
        return takes_rule(layer)

    def problem(self, node, ctx):
        """Why this rule cannot serve ``node`` (a recurrent layer it cannot explain), or
        ``None``."""
        cls = None if is_kernel_layer(node.layer) else rule_layer(node.layer)
        return None if cls is None else cls.rule_problem(node, ctx)

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """:attr:`x_proportional`."""
        return bool(self.x_proportional)

    def bind(self, node, ctx=None, **kwargs) -> RelevanceLayer:
        """The relevance layer of this rule for a node of the canonized graph (``ctx``: the
        composite's context): the rule bound to a kernel layer, told whether its input is
        ≥ 0, or the relevance layer its class builds for a layer whose linear maps take the rule.

        ``bind(layer)``, without a context, binds the rule to a kernel layer by hand.
        """
        if ctx is None:
            return self._bind_layer(node, **kwargs)
        if not is_kernel_layer(node.layer):
            return rule_layer(node.layer).with_rule(node, self, ctx)
        rel = self._bind_layer(node.layer)
        rel.input_nonnegative = all(ctx.nonnegative.get(t, False) for t in node.inputs)
        return rel

    def _bind_layer(self, layer, **kwargs) -> Rule:
        """A copy of this rule propagating relevance through the kernel layer ``layer``."""
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
        return type(self)(layer=layer, **self.params, **kwargs)

    def propagate(self, xs, z, relevance):
        if len(xs) != 1:
            raise ValueError(f"Rule {type(self).__name__} expects one input to layer "
                             f"'{self.layer.name}', got {len(xs)}.")
        # Everything the rule computes waits for the relevance arriving here: otherwise the
        # kernels it derives from the weights alone (w⁺, w⁻, w², stacks) have no data
        # dependency, may all be computed at the start of the analysis and stay in memory
        # together (several times the model's size on VGG16).
        with backend.after(relevance):
            return [self.relevance(linear_op(self.layer), xs[0], z, relevance)]

    def relevance(self, op: LinearOp, x, z, relevance):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), **self.params}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _numeric(value) -> bool:
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    try:
        return np.asarray(value).dtype.kind in "iuf"
    except Exception:  # noqa: BLE001 - anything numpy cannot read is not a number
        return False


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
        self.need_b = need_b
        self.kernels = [k_same, k_cross]
        # Stacked once, along the output channels, for both passes and both input signs: the
        # x⁻ terms use the same stack with the halves swapped (K(x⁻; [k_same, k_cross]) gives
        # [z_b part, z_a part]). Only where the layer stacks exactly and it pays (convolutions:
        # compute-bound; a Dense layer at small batch is memory-bound, and the copy costs more).
        self.stacked = None
        if need_b and op.stack_axis is not None and op.stack_pays:
            self.stacked = ops.concatenate(self.kernels, axis=op.stack_axis)

    def _apply(self, x, kernels):
        if self.stacked is not None:
            return ops.split(self.op(x, self.stacked), 2, axis=self.op.out_axis)
        return [self.op(x, k) for k in kernels]

    def _transpose(self, ratios, kernels):
        if self.stacked is not None:
            return self.op.transpose(ops.concatenate(ratios, axis=self.op.out_axis), self.x,
                                     self.stacked)
        out = None
        for s, k in zip(ratios, kernels):
            t = self.op.transpose(s, self.x, k)
            out = t if out is None else out + t
        return out

    def outputs(self):
        """``[z_a, z_b]`` (or ``[z_a]`` when ``need_b`` is False)."""
        same = self.kernels if self.need_b else self.kernels[:1]
        z = self._apply(self.xp, same)
        if self.xn is not None:
            cross = self._apply(self.xn, self.kernels[::-1] if self.need_b else self.kernels[1:])
            if self.stacked is not None:
                cross = cross[::-1]  # the stack is [k_same, k_cross]: x⁻ meets them swapped
            z = [a + b for a, b in zip(z, cross)]
        return z

    def relevance(self, ratios):
        """R from the output ratios ``[s_a, s_b]`` (or ``[s_a]``)."""
        same = self.kernels if self.need_b else self.kernels[:1]
        out = self.xp * self._transpose(ratios, same)
        if self.xn is not None:
            if self.stacked is not None:
                cross = self._transpose(ratios[::-1], None)
            else:
                cross = self._transpose(ratios, self.kernels[::-1] if self.need_b
                                        else self.kernels[1:])
            out = out + self.xn * cross
        return out


__all__ = ["TINY", "TINY_DEFAULT", "RelevanceLayer", "Rule", "SignSplit", "negative", "positive",
           "safe_divide", "sign_plus", "stabilize", "tiny"]
