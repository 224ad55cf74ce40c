"""Relevance layers for layers without an LRP rule of their own (no kernel)."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_lrp.rules.base import RelevanceLayer, stabilize


def _vjp(fn, xs, cotangent):
    """Vector-Jacobian product of ``fn`` at ``xs`` (a list) with ``cotangent``."""
    xs = [tf.convert_to_tensor(x) for x in xs]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        y = fn(xs[0] if len(xs) == 1 else xs)
    grads = tape.gradient(y, xs, output_gradients=cotangent)
    return [ops.zeros_like(x) if g is None else g for x, g in zip(xs, grads)]


class IdentityRelevance(RelevanceLayer):
    """Element-wise layers (activations, dropout, noise): relevance passes unchanged.

    Formula:
        R_i = R_i
    """

    def propagate(self, xs, z, relevance):
        return [relevance]


class RouteRelevance(RelevanceLayer):
    """Layers that only move, copy or select values: relevance follows the values.

    Reshape, Flatten, Permute, padding, cropping, Concatenate, nearest-neighbour up-sampling and
    max pooling (winner-take-all) all route relevance by the transpose of their selection.

    Formula:
        R_i = Σ_j [output j is a copy of input i] · R_j     (the layer's vector-Jacobian product)
    """

    def propagate(self, xs, z, relevance):
        return _vjp(lambda v: self.target(v), xs, relevance)


class ProportionalRelevance(RelevanceLayer):
    """Bias-free linear layers (Add, Subtract, Average, average pooling): the Z rule.

    Formula:
        z_j = Σ_i c_ij x_i,    R_i = Σ_j c_ij x_i / z_j · R_j    (z_j stabilised by 1e-12·sign)
    """

    def propagate(self, xs, z, relevance):
        grads = _vjp(lambda v: self.target(v), xs, relevance / stabilize(z))
        return [x * g for x, g in zip(xs, grads)]
