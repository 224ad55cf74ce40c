"""Input-independent rules: WSquare (Montavon et al. 2017) and Flat (Lapuschkin et al. 2019)."""

from __future__ import annotations

from keras import ops

from keras_lrp.rules.base import Rule, stabilize


class WSquare(Rule):
    """w²-rule: relevance by squared weights, independent of the input values.

    Formula:
        R_i = Σ_j w_ij² / Σ_i' w_i'j² · R_j     (no bias)
    """

    def modified_kernel(self, kernel):
        return ops.square(kernel)

    def relevance(self, op, x, z, relevance):
        kernel = self.modified_kernel(op.kernel)
        denominator = op(ops.ones_like(x), kernel)
        return op.transpose(relevance / stabilize(denominator), x, kernel)


class Flat(WSquare):
    """Flat rule: relevance spread uniformly over each output's receptive field.

    Formula:
        R_i = Σ_j 1 / Σ_i' 1 · R_j      (the w²-rule with every weight 1; no bias)
    """

    def modified_kernel(self, kernel):
        return ops.ones(ops.shape(kernel), dtype=kernel.dtype)  # not ones_like: a Keras variable
