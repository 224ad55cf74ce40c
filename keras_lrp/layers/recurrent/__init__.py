"""Recurrent layers (SimpleRNN, LSTM, GRU, Bidirectional; Arras et al. 2017, 2019).

:mod:`~keras_lrp.layers.recurrent.cells` holds each cell's forward equations, split into the
linear steps and gates LRP needs, and the replay/relevance recurrences over time;
:mod:`~keras_lrp.layers.recurrent.relevance` the relevance layers the composite gives to a
recurrent layer (embeddings and masks: :mod:`keras_lrp.layers.sequence`).
"""

from keras_lrp.layers.recurrent.cells import GATE_RULES
from keras_lrp.layers.recurrent.relevance import BidirectionalRelevance, RecurrentRelevance


def __getattr__(name):
    from keras_lrp.layers.recurrent import relevance

    return getattr(relevance, name)  # the moved names warn there


__all__ = ["GATE_RULES", "BidirectionalRelevance", "RecurrentRelevance"]
