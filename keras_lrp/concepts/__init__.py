"""Concept Relevance Propagation (Achtibat et al., "From attribution maps to human-understandable
explanations through Concept Relevance Propagation", Nature Machine Intelligence 5, 2023).

* :mod:`~keras_lrp.concepts.conditional`: :class:`Conditional` and :func:`conditional`, the
  conditional heatmaps R(x | θ) of many conditions in one batched pass;
* :mod:`~keras_lrp.concepts.relevances`: the relevance of each channel (concept) at a layer,
  and the relevance transfer matrix between two layers;
* :mod:`~keras_lrp.concepts.program`: the Keras relevance program behind them;
* :mod:`~keras_lrp.concepts.conditions`: what a condition is, and its checks;
* :mod:`~keras_lrp.concepts.layers`: the Keras layers of the relevance program.
"""

from keras_lrp.concepts.conditional import Conditional, ConditionalResult, conditional
from keras_lrp.concepts.relevances import channel_relevance, concept_relevances, transfer_matrix

__all__ = ["Conditional", "ConditionalResult", "channel_relevance", "concept_relevances",
           "conditional", "transfer_matrix"]
