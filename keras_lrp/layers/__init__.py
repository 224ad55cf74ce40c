"""Relevance layers for layers without an LRP rule of their own: the contract
(:class:`RelevanceLayer`) and the structural ones (identity, routing, proportional, gates,
normalisation), those of token and sequence models (embeddings, masks, ``TimeDistributed``), and
the backward layers of the gradient family."""

from keras_lrp.layers.base import RelevanceLayer
from keras_lrp.layers.gradient import DeconvnetReLU, GradientRelevance, GuidedReLU
from keras_lrp.layers.sequence import EmbeddingRelevance, TimeDistributedRelevance, ZeroRelevance
from keras_lrp.layers.structural import (
           GateRelevance,
           IdentityRelevance,
           LayerNormRelevance,
           ProportionalRelevance,
           RouteRelevance,
)

__all__ = ["DeconvnetReLU", "EmbeddingRelevance", "GateRelevance", "GradientRelevance",
           "GuidedReLU", "IdentityRelevance", "LayerNormRelevance", "ProportionalRelevance",
           "RelevanceLayer", "RouteRelevance", "TimeDistributedRelevance", "ZeroRelevance"]
