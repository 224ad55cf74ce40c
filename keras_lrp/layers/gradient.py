"""Backward layers for the gradient family run on the reverse graph: the plain vector-Jacobian
product, and the two modified ReLU backward passes of deconvnet and guided backprop.

Here the quantity sent backwards is a (modified) gradient, not relevance: the attribution is
∂y/∂x with some ReLUs' backward rule replaced.
"""

from __future__ import annotations

from keras import ops

from keras_lrp.core.stabilize import positive
from keras_lrp.layers.structural import RouteRelevance


class GradientRelevance(RouteRelevance):
    """The layer's vector-Jacobian product: the gradient passes unchanged.

    Formula:
        g_i = Σ_j ∂y_j/∂x_i · g_j
    """

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """A gradient is not relevance: never declared."""
        return False

    @classmethod
    def check_node(cls, node, graph):
        """Integer model inputs (token ids) have no gradient: refuse, rather than return
        zeros."""
        for tid in node.inputs:
            if tid in graph.inputs:
                spec = graph.input_specs[graph.inputs.index(tid)]
                if "int" in str(spec.dtype) or "bool" in str(spec.dtype):
                    return (f"reads the model input '{spec.name}' of {spec.dtype} values (token "
                            "ids), which have no gradient; use an LRP analyzer (a token's "
                            "relevance is the sum over its embedding vector)")
        return None


class DeconvnetReLU(RouteRelevance):
    """Deconvnet's ReLU (Zeiler & Fergus 2014): the backward signal is rectified, and the forward
    input is ignored.

    Formula:
        g_in = max(g_out, 0)
    """

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """A gradient is not relevance: never declared."""
        return False

    def propagate(self, xs, z, relevance):
        return [positive(relevance)]


class GuidedReLU(RouteRelevance):
    """Guided backprop's ReLU (Springenberg et al. 2015): the gradient where both the forward
    input and the backward signal are positive.

    Formula:
        g_in = max(g_out, 0) · [x > 0]
    """

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """A gradient is not relevance: never declared."""
        return False

    def propagate(self, xs, z, relevance):
        x = xs[0]
        return [positive(relevance) * ops.cast(x > 0, relevance.dtype)]
