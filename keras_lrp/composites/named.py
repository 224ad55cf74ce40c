"""The named composites: every analyzer name's rule assignment, a few parameters each.

iNNvestigate's presets and Deep Taylor, Zennit's EpsilonPlus, EpsilonAlpha2Beta1 and
EpsilonGammaBox (with their ``Flat`` variants), and seed 004's codes.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras

from keras_lrp import rules as rules_mod
from keras_lrp.canonizers.base import (
    ExpandAttention,
    InlineNested,
    SplitActivations,
    SplitSeparable,
    StripSoftmax,
    TraceBlocks,
)
from keras_lrp.composites.core import Composite
from keras_lrp.core import types
from keras_lrp.layers import IdentityRelevance
from keras_lrp.layers.gradient import GradientRelevance

_ANY = keras.layers.Layer  # with a rule: every kernel layer


class NamedComposite(Composite):
    """A composite defined by a few parameters (``PARAMS``); :meth:`assign` returns its
    ``(entries, first_layer)``. Subclasses are ~10 lines each."""

    #: The canonizers when none are given (``None``: the defaults).
    CANONIZERS: Optional[Sequence] = None

    def __init__(self, canonizers: Optional[Sequence] = None, base_map=None, **params):
        unknown = set(params) - set(self.PARAMS)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown parameter(s) "
                            f"{', '.join(sorted(unknown))}; its parameters are "
                            f"{', '.join(self.PARAMS) or 'none'}.")
        params = {k: params.get(k, v) for k, v in self.PARAMS.items()}
        entries, first = self.assign(**params)
        super().__init__(entries, first_layer=first, base_map=base_map,
                         canonizers=self.CANONIZERS if canonizers is None else canonizers)
        self.params = params

    def assign(self, **params):  # pragma: no cover - abstract
        raise NotImplementedError


class Uniform(NamedComposite):
    """One rule on every kernel layer (``lrp.z``, ``lrp.epsilon``, …)."""

    PARAMS = {"rule": "Z"}

    def assign(self, rule):
        return [(_ANY, rule)], None


def _dense_conv(dense, conv):
    return [(types.DENSE, dense), (types.CONV, conv), (_ANY, dense)]


class SequentialPresetA(NamedComposite):
    """iNNvestigate's preset a: Dense Epsilon(ε), convolutions AlphaBeta(1, 0) with bias."""

    PARAMS = {"epsilon": 0.1}

    def assign(self, epsilon):
        return _dense_conv(rules_mod.Epsilon(epsilon=epsilon),
                           rules_mod.AlphaBeta(alpha=1, beta=0)), None


class SequentialPresetB(NamedComposite):
    """iNNvestigate's preset b: Dense Epsilon(ε), convolutions AlphaBeta(2, 1) with bias."""

    PARAMS = {"epsilon": 0.1}

    def assign(self, epsilon):
        return _dense_conv(rules_mod.Epsilon(epsilon=epsilon),
                           rules_mod.AlphaBeta(alpha=2, beta=1)), None


class _Flat:
    """Mixin: the same composite with a Flat first layer, fixed."""

    fixed_first_layer = True

    def assign(self, **params):
        entries, _ = super().assign(**params)
        return entries, rules_mod.Flat()


class SequentialPresetAFlat(_Flat, SequentialPresetA):
    """Preset a with a Flat first layer."""


class SequentialPresetBFlat(_Flat, SequentialPresetB):
    """Preset b with a Flat first layer."""


class EpsilonPlus(NamedComposite):
    """Zennit's EpsilonPlus: Dense Epsilon(ε), convolutions Zennit's ZPlus (the positive bias
    stays in the denominator)."""

    PARAMS = {"epsilon": 1e-6}

    def assign(self, epsilon):
        return _dense_conv(rules_mod.Epsilon(epsilon=epsilon), rules_mod.ZPlus(bias=True)), None


class EpsilonPlusFlat(_Flat, EpsilonPlus):
    """EpsilonPlus with a Flat first layer."""


class EpsilonAlpha2Beta1(NamedComposite):
    """Zennit's EpsilonAlpha2Beta1: Dense Epsilon(ε), convolutions AlphaBeta(2, 1)."""

    PARAMS = {"epsilon": 1e-6}

    def assign(self, epsilon):
        return _dense_conv(rules_mod.Epsilon(epsilon=epsilon),
                           rules_mod.AlphaBeta(alpha=2, beta=1)), None


class EpsilonAlpha2Beta1Flat(_Flat, EpsilonAlpha2Beta1):
    """EpsilonAlpha2Beta1 with a Flat first layer."""


class EpsilonGammaBox(NamedComposite):
    """Zennit's EpsilonGammaBox: Bounded(low, high) on a first layer that is a convolution (as
    Zennit: a first Dense layer keeps Epsilon), convolutions Gamma(γ), Dense Epsilon(ε)."""

    first_layer_types = types.CONV
    PARAMS = {"epsilon": 1e-6, "gamma": 0.25, "low": -1.0, "high": 1.0}

    def assign(self, epsilon, gamma, low, high):
        return (_dense_conv(rules_mod.Epsilon(epsilon=epsilon), rules_mod.Gamma(gamma=gamma)),
                rules_mod.Bounded(low=low, high=high))


def _split_activation(node, ctx) -> bool:
    """An activation SplitActivations took off a kernel layer."""
    return getattr(node.layer, "split_from", None) is not None


def _passes_gradient(node, ctx) -> bool:
    layer = node.layer
    return (types.is_plain_relu(layer) or types.layer_activation(layer) == "linear"
            and isinstance(layer, types.ACTIVATION)) or isinstance(
        layer, types.DEEP_TAYLOR_GRADIENT)


class DeepTaylor(NamedComposite):
    """Deep Taylor decomposition as iNNvestigate 2.1.2 computes it (Montavon et al. 2017).

    Every kernel layer gets ZPlus (z⁺ ignoring the bias) on the relevance at its activation's
    output (a fused activation passes relevance unchanged, as iNNvestigate treats a layer and its
    activation as one); BatchNormalization (not folded), standalone ReLUs, max and average
    pooling, Add,
    Concatenate, padding, cropping, dropout, up-sampling and reshaping layers pass the *gradient*
    of relevance (so average pooling spreads R evenly, not in proportion to its inputs, and Add
    gives each branch the full R); the explained output enters through a ReLU (the analysis
    starts from max(y, 0)). Layers iNNvestigate refuses get keras-lrp's base map.

    BatchNormalization takes the gradient, R_in = R·γ/√(var + ε), which does not conserve:
    iNNvestigate registers a WSquare mapping for it, but its earlier "ReLU" mapping (no kernel and
    no or only a ReLU/linear activation) already matches the layer, so the gradient is what it
    computes; tests/test_anchor_innvestigate.py checks this against its numbers.
    """

    CANONIZERS = (InlineNested(), TraceBlocks(), ExpandAttention(), SplitActivations(),
                  SplitSeparable(), StripSoftmax())

    def assign(self):
        return [(types.BATCHNORM, GradientRelevance), (_ANY, rules_mod.ZPlus()),
                (_split_activation, IdentityRelevance), (_passes_gradient, GradientRelevance)], None


class DeepTaylorBounded(NamedComposite):
    """Deep Taylor with Bounded(low, high) on the first layer."""

    PARAMS = {"low": -1.0, "high": 1.0}
    CANONIZERS = DeepTaylor.CANONIZERS  # BatchNormalization not folded, as in deep_taylor

    def assign(self, low, high):
        return DeepTaylor.assign(self)[0], rules_mod.Bounded(low=low, high=high)


class BoundedAlpha2Beta1(NamedComposite):
    """Seed 004's ``zbab``: Bounded(low, high) on the first layer, AlphaBeta(2, 1) above."""

    PARAMS = {"low": -1.0, "high": 1.0, "bias": True}

    def assign(self, low, high, bias):
        return ([(_ANY, rules_mod.AlphaBeta(alpha=2, beta=1, bias=bias))],
                rules_mod.Bounded(low=low, high=high))


class WSquareAlpha2Beta1(NamedComposite):
    """Seed 004's ``wwab``: WSquare on the first layer, AlphaBeta(2, 1) above."""

    PARAMS = {"bias": True}

    def assign(self, bias):
        return [(_ANY, rules_mod.AlphaBeta(alpha=2, beta=1, bias=bias))], rules_mod.WSquare()


#: The named composites, by class name (for saving analyzers that were given one).
COMPOSITES = {cls.__name__: cls for cls in (
    Uniform, SequentialPresetA, SequentialPresetB, SequentialPresetAFlat, SequentialPresetBFlat,
    EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox,
    DeepTaylor, DeepTaylorBounded, BoundedAlpha2Beta1, WSquareAlpha2Beta1)}


__all__ = ["COMPOSITES", "NamedComposite"] + list(COMPOSITES)
