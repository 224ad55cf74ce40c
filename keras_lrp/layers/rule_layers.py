"""The layers without a kernel of their own whose linear maps take the composite's rule.

A recurrent layer's cell, ``Bidirectional``'s two directions, ``TimeDistributed`` around a kernel
layer and the attention products (:data:`~keras_lrp.canonizers.attention.PRODUCTS`) compute
linear maps inside them; the composite's rule for such a layer is handed to the class that
builds its relevance layer (:data:`RULE_LAYERS`), through that class's ``rule_problem(node,
ctx)`` and ``with_rule(node, rule, ctx)``. :meth:`keras_lrp.rules.Rule.bind` asks this table, so
the composite never tests what its entries hold.
"""

from __future__ import annotations

from typing import Optional

from keras_lrp.canonizers.attention import PRODUCTS
from keras_lrp.canonizers.forward_layers import AdditiveScores
from keras_lrp.core import types
from keras_lrp.core.linear import is_kernel_layer
from keras_lrp.layers.attention import AdditiveScoresRelevance, BilinearRelevance
from keras_lrp.layers.recurrent.relevance import BidirectionalRelevance, RecurrentRelevance
from keras_lrp.layers.sequence import TimeDistributedRelevance

#: (layer classes, the relevance layer class built from a rule), first match wins.
RULE_LAYERS = [
    ((AdditiveScores,), AdditiveScoresRelevance),
    (PRODUCTS, BilinearRelevance),
    (types.TIME_DISTRIBUTED, TimeDistributedRelevance),
    (types.BIDIRECTIONAL, BidirectionalRelevance),
    (types.RNN, RecurrentRelevance),
]


def rule_layer(layer) -> Optional[type]:
    """The class building ``layer``'s relevance layer from a rule, or ``None`` (a kernel layer
    takes the rule itself; any other layer takes none)."""
    if isinstance(layer, types.TIME_DISTRIBUTED) and not is_kernel_layer(layer.layer):
        return None  # a layer without a kernel, at every step: its own entry serves it
    for classes, cls in RULE_LAYERS:
        if isinstance(layer, classes):
            return cls
    return None


def takes_rule(layer) -> bool:
    """Kernel layers, and the layers of :data:`RULE_LAYERS`."""
    return is_kernel_layer(layer) or rule_layer(layer) is not None


__all__ = ["RULE_LAYERS", "rule_layer", "takes_rule"]
