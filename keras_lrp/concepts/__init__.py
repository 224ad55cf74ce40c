"""Concept Relevance Propagation (Achtibat et al., "From attribution maps to human-understandable
explanations through Concept Relevance Propagation", Nature Machine Intelligence 5, 2023).

* :mod:`~keras_lrp.concepts.conditional`: :class:`Conditional` and :func:`conditional`, the
  conditional heatmaps R(x | θ) of many conditions in one batched pass;
* :mod:`~keras_lrp.concepts.relevances`: the relevance of each channel (concept) at a layer,
  and the relevance transfer matrix between two layers;
* :mod:`~keras_lrp.concepts.program`: the Keras relevance program behind them;
* :mod:`~keras_lrp.concepts.conditions`: what a condition is, and its checks;
* :mod:`~keras_lrp.concepts.layers`: the Keras layers of the relevance program;
* :mod:`~keras_lrp.concepts.relmax`: relevance and activation maximisation over a dataset
  (the top samples of every channel, per class too), streamed and resumable
  (:mod:`~keras_lrp.concepts.topk`, :mod:`~keras_lrp.concepts.relmax_io`);
* :mod:`~keras_lrp.concepts.references`: reference images, cropped to the concept's receptive
  field and masked by its heatmap;
* :mod:`~keras_lrp.concepts.graph`: attribution graphs, the lower-layer concepts a concept is
  built from (drawn by :mod:`~keras_lrp.concepts.graph_plot`).
"""

from keras_lrp.concepts.conditional import Conditional, ConditionalResult, conditional
from keras_lrp.concepts.graph import AttributionGraph, attribution_graph
from keras_lrp.concepts.references import (
    Reference,
    crop_box,
    receptive_field_heatmaps,
    reference_images,
)
from keras_lrp.concepts.relevances import channel_relevance, concept_relevances, transfer_matrix
from keras_lrp.concepts.relmax import (
    RelevanceMaximization,
    RelMaxResult,
    load_relmax,
    relevance_maximization,
    top_samples,
)

__all__ = ["AttributionGraph", "Conditional", "ConditionalResult", "RelMaxResult", "Reference",
           "RelevanceMaximization", "attribution_graph", "channel_relevance", "concept_relevances",
           "conditional", "crop_box", "load_relmax", "receptive_field_heatmaps", "reference_images",
           "relevance_maximization", "top_samples", "transfer_matrix"]
