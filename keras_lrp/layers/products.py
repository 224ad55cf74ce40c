"""Relevance through a product of two signals: ``a ⊙ b`` or an einsum of two tensors.

Causal LMs written in raw ops have such products where the attention layers of
:mod:`keras_lrp.canonizers.attention` have their parts: the scores ``einsum(q, k)``, the context
``einsum(A, v)``, and the gated MLP's ``up ⊙ act(gate)`` (SwiGLU, GeGLU). A product is linear in
neither factor alone, so it needs its own rule:

* AttnLRP (Achtibat et al., "AttnLRP: Attention-aware LRP for transformers", ICML 2024) splits
  it uniformly: the ε-rule over the sum the product is, then half of each term to each factor.
* CP-LRP (Ali et al., ICML 2022) holds one factor constant, so the product is a linear map of the
  other, which takes all of it: the attention weights A (a softmax output), or the activated
  gate (:func:`~keras_lrp.core.patterns.held_factor` of kind ``"cp"``). A product with neither
  (the scores q·kᵀ, whose relevance is zero under CP-LRP anyway, as A is constant) is split
  uniformly.
"""

from __future__ import annotations

from keras import ops

from keras_lrp.core.graph import node_call
from keras_lrp.core.patterns import held_factor
from keras_lrp.layers.attention import ATTENTION_MODES, bilinear
from keras_lrp.layers.base import RelevanceLayer, named_after


class ProductRelevance(RelevanceLayer):
    """A product o = f(a, b) bilinear in two signals (see the module docstring).

    Formula (o = Σ terms a_i b_j, stabilised by ε·sign):
        AttnLRP:  R_a = ½ a ⊙ ∂/∂a ⟨o, R/o⟩,   R_b = ½ b ⊙ ∂/∂b ⟨o, R/o⟩
        CP-LRP, b held:  R_a = a ⊙ ∂/∂a ⟨o, R/o⟩,   R_b = 0

    For an element-wise product the AttnLRP split is R_a = R_b = R/2.

    Args:
        attention: ``"attnlrp"`` or ``"cp"`` (the composite's attention mode).
        held: the factor CP-LRP holds constant (0 or 1), or ``None``.
    """

    def __init__(self, layer=None, attention="attnlrp", held=None, **kwargs):
        super().__init__(layer=layer, **kwargs)
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}.")
        self.attention, self.held = attention, held

    @classmethod
    def bind(cls, node, ctx) -> ProductRelevance:
        """The relevance layer for ``node`` under the context's attention mode."""
        return cls.for_node(node, ctx.graph, forward=node_call(node),
                            **named_after(node),
                            attention=ctx.attention)

    @classmethod
    def for_node(cls, node, graph, attention="attnlrp", **kwargs):
        return cls(layer=node.layer, attention=attention,
                   held=held_factor(node, graph, kind="cp"), **kwargs)

    @classmethod
    def check_node(cls, node, graph):
        if len(node.inputs) != 2:
            return (f"has {len(node.inputs)} tensor inputs, but {cls.__name__} serves products "
                    "of two")
        return None

    def build(self, input_shape):
        """Nothing to build: a product has no weights."""

    def propagate(self, xs, z, relevance):
        r_a, r_b = bilinear(lambda a, b: self.forward_fn([a, b]), xs[0], xs[1], relevance,
                             None)
        if self.attention == "cp" and self.held is not None:
            return [ops.zeros_like(r) if i == self.held else r
                    for i, r in enumerate((r_a, r_b))]
        return [0.5 * r_a, 0.5 * r_b]

    def get_config(self):
        return {**super().get_config(), "attention": self.attention, "held": self.held}

    def __repr__(self):
        return f"{type(self).__name__}(attention={self.attention!r}, held={self.held!r})"


__all__ = ["ProductRelevance"]
