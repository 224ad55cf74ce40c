"""Relevance layers for token and sequence models that are not recurrence: embeddings, what
carries no signal (masks, comparisons, constants), and ``TimeDistributed`` wrappers. The
recurrent layers themselves are in :mod:`keras_lrp.layers.recurrent`.
"""

from __future__ import annotations

import dataclasses

from keras import ops

from keras_lrp.core.linear import is_kernel_layer, linear_op
from keras_lrp.layers.base import RelevanceLayer, named_after


class TimeDistributedRelevance(RelevanceLayer):
    """``TimeDistributed(layer)``: the inner layer's relevance at every step, the batch and time
    axes merged into one (a kernel layer's rule, or the relevance layer of a layer without a
    kernel: Flatten, pooling, activations, …).

    Args:
        rule: the rule, bound to the inner kernel layer; or
        inner: the relevance layer of the inner layer.
    """

    def __init__(self, layer=None, rule=None, inner=None, **kwargs):
        super().__init__(layer=layer, **kwargs)
        self.rule, self.inner = rule, inner

    # -- as a map value: TimeDistributed around a layer without a kernel ------------------------
    @staticmethod
    def inner_node(node):
        """The node of the wrapped layer, called on the wrapper's input alone."""
        return dataclasses.replace(node, layer=node.layer.layer, args=(node.args[0],), kwargs={})

    @classmethod
    def serves(cls, layer) -> bool:
        return not is_kernel_layer(getattr(layer, "layer", None))

    @classmethod
    def problem(cls, node, ctx):
        """The inner layer's problem under the composite's own entry for it."""
        return ctx.problem(cls.inner_node(node))

    @classmethod
    def bind(cls, node, ctx) -> TimeDistributedRelevance:
        """The inner layer's relevance layer (from the composite's entry for it), at every
        step."""
        return cls(layer=node.layer, inner=ctx.relevance_layer(cls.inner_node(node)),
                   **named_after(node))

    # -- TimeDistributed around a kernel layer: the rule's layer --------------------------------
    @classmethod
    def rule_problem(cls, node, ctx):
        """None: the rule binds to the inner kernel layer."""
        return None

    @classmethod
    def with_rule(cls, node, rule, ctx) -> TimeDistributedRelevance:
        """The rule bound to the inner kernel layer, at every step."""
        return cls(layer=node.layer, rule=rule.bind(node.layer.layer),
                   **named_after(node))

    def build(self, input_shape):
        """Nothing to build: the weights are the inner layer's."""

    def propagate(self, xs, z, relevance):
        x = xs[0]
        shape = ops.shape(x)
        merge = lambda t: ops.reshape(t, (-1,) + tuple(t.shape[2:]))  # noqa: E731
        if self.rule is not None:
            r = self.rule.relevance(linear_op(self.layer.layer), merge(x), merge(z),
                                    merge(relevance))
        else:
            r = self.inner.propagate([merge(x)], merge(z), merge(relevance))[0]
        return [ops.reshape(r, shape)]

    def __repr__(self):
        return f"{type(self).__name__}({self.rule or self.inner!r})"


class ZeroRelevance(RelevanceLayer):
    """Masks and comparisons (``not_equal``, ``any``, …): they carry no signal, so relevance
    reaching them (always zero, from a recurrent layer's mask input) stops.

    Formula:
        R_in = 0
    """

    #: Nothing reaches the inputs: the reverse graph skips a multi-output layer with this rule
    #: (a held router's top-k) instead of calling it.
    gives_nothing = True

    def propagate(self, xs, z, relevance):
        return [ops.zeros(ops.shape(x), self.compute_dtype) for x in xs]


class EmbeddingRelevance(RelevanceLayer):
    """Embedding: a token's relevance is the sum over its embedding vector.

    Formula:
        R_t = Σ_k R_{t,k}     (the lookup is a copy: each vector belongs to one token)
    The (batch, T, d) relevance of the embedding vectors is the layer's ``layerwise`` entry.
    """

    def propagate(self, xs, z, relevance):
        return [ops.sum(relevance, axis=-1)]


__all__ = ["EmbeddingRelevance", "TimeDistributedRelevance", "ZeroRelevance"]
