"""Relevance layers for layers without an LRP rule of their own: the contract
(:class:`RelevanceLayer`) and the structural ones (identity, routing, proportional, gates,
normalisation)."""

from keras_lrp.layers.base import RelevanceLayer
from keras_lrp.layers.structural import GateRelevance, IdentityRelevance, LayerNormRelevance, \
    ProportionalRelevance, RouteRelevance

__all__ = ["GateRelevance", "IdentityRelevance", "LayerNormRelevance", "ProportionalRelevance",
           "RelevanceLayer", "RouteRelevance"]
