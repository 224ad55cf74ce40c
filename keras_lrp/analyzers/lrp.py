"""LRP: the analyzer whose relevance model is the reverse graph of a composite."""

from __future__ import annotations

import keras

from keras_lrp.analyzers.base import Analyzer
from keras_lrp.analyzers.reverse import reverse
from keras_lrp.composites import Composite


class LRP(Analyzer):
    """Layer-wise Relevance Propagation with a :class:`~keras_lrp.composites.Composite`.

    The reverse graph calls, for every forward layer from the output back to the inputs, the
    relevance layer the composite chooses (Bach et al. 2015; Montavon et al. 2019).

    Args:
        model: the Keras model.
        composite: which rule or relevance layer each layer gets, and the canonizers.
        **kwargs: see :class:`Analyzer`.
    """

    def __init__(self, model: keras.Model, composite: Composite, **kwargs):
        self.composite = composite
        self.canonizers = composite.canonizers
        super().__init__(model, **kwargs)
        self._options["composite"] = composite

    def check(self, graph) -> None:
        self.composite.check(graph, self.model)

    def explicit(self, node, graph) -> bool:
        """Whether the composite names ``node``'s layer (one context per state of the graph)."""
        key = (id(graph.nodes), len(graph.nodes))
        if getattr(self, "_context_key", None) != key:
            self._context = self.composite.context(graph, self.model)
            self._context_key = key
        return self.composite.maps(node, self._context)

    def build_relevances(self):
        rev = reverse(self.graph, self.composite, self._values,
                      self.graph.outputs[self.output_index], self.start_relevance(), self.inputs,
                      self.model)
        return rev.inputs, rev.layerwise
