"""LRP rules: one class per rule, each with its formula, and the name → rule registry.

The structural relevance layers (``IdentityRelevance``, ``RouteRelevance``, …) are not rules: their
one import path is :mod:`keras_lrp.layers` (the old ``keras_lrp.rules.<name>`` warns for one
release).

A rule is given as a :class:`Rule` instance (``Epsilon(epsilon=0.1)``), a rule class, one of the
names in :data:`RULES` (iNNvestigate's names included), or a ``(low, high)`` tuple, which means
``Bounded(low, high)``. :func:`get` turns any of these into a rule template.
"""

from __future__ import annotations

import functools
import warnings

from keras_lrp import layers as _layers
from keras_lrp.rules.alphabeta import AlphaBeta, ZPlus, ZPlusFast
from keras_lrp.rules.base import TINY, RelevanceLayer, Rule, tiny
from keras_lrp.rules.bounded import Bounded
from keras_lrp.rules.epsilon import Epsilon, Z
from keras_lrp.rules.gamma import Gamma
from keras_lrp.rules.wsquare import Flat, WSquare

#: Every rule name accepted by :func:`get`, mapped to a factory taking the rule's parameters.
#:
#: :meta hide-value:
RULES = {
    "Z": Z,
    "ZIgnoreBias": functools.partial(Z, bias=False),
    "Epsilon": Epsilon,
    "EpsilonIgnoreBias": functools.partial(Epsilon, bias=False),
    "WSquare": WSquare,
    "Flat": Flat,
    "AlphaBeta": AlphaBeta,
    "AlphaBetaIgnoreBias": functools.partial(AlphaBeta, bias=False),
    "Alpha2Beta1": functools.partial(AlphaBeta, alpha=2.0, beta=1.0),
    "Alpha2Beta1IgnoreBias": functools.partial(AlphaBeta, alpha=2.0, beta=1.0, bias=False),
    "Alpha1Beta0": functools.partial(AlphaBeta, alpha=1.0, beta=0.0),
    "Alpha1Beta0IgnoreBias": functools.partial(AlphaBeta, alpha=1.0, beta=0.0, bias=False),
    "ZPlus": ZPlus,
    "ZPlusFast": ZPlusFast,
    "Bounded": Bounded,
    "Gamma": Gamma,
}


def get(identifier, **params) -> Rule:
    """A rule template from a name, class, instance or ``(low, high)`` tuple.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if isinstance(identifier, Rule):
        if params:
            raise ValueError(f"Got a rule instance {identifier!r} and extra parameters {params}; "
                             "put the parameters in the instance.")
        return identifier
    if isinstance(identifier, tuple) and len(identifier) == 2:
        return Bounded(low=identifier[0], high=identifier[1])
    if isinstance(identifier, type) and issubclass(identifier, Rule):
        return identifier(**params)
    if isinstance(identifier, str) and identifier in RULES:
        return RULES[identifier](**params)
    raise ValueError(f"Unknown LRP rule {identifier!r}. Valid rule names: {', '.join(RULES)}; "
                     "or a keras_lrp.rules.Rule subclass or instance, or a (low, high) tuple.")


#: The structural relevance layers once re-exported here (their path is keras_lrp.layers).
_MOVED = ("GateRelevance", "IdentityRelevance", "LayerNormRelevance", "ProportionalRelevance",
          "RouteRelevance")


def __getattr__(name):
    if name in _MOVED:
        warnings.warn(f"keras_lrp.rules.{name} is keras_lrp.layers.{name} (a relevance layer, not "
                      "a rule); the old path goes in the next release.", DeprecationWarning,
                      stacklevel=2)
        return getattr(_layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AlphaBeta", "Bounded", "Epsilon", "Flat", "Gamma", "RULES", "RelevanceLayer", "Rule",
           "TINY", "WSquare", "Z", "ZPlus", "ZPlusFast", "get", "tiny"]
