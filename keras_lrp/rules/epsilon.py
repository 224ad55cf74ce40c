"""The Z and Epsilon rules (Bach et al. 2015)."""

from __future__ import annotations

from keras_lrp.rules.base import Rule, safe_divide, stabilize, tiny


class Z(Rule):
    """LRP-0: relevance in proportion to each input's contribution.

    Formula:
        z_j = Σ_i x_i w_ij + b_j          (b dropped when ``bias=False``)
        R_i = Σ_j x_i w_ij / z_j · R_j    (the ratio is 0 where z_j is exactly 0)

    With a bias, the share b_j / z_j of R_j is absorbed by the bias.

    Args:
        bias: include the bias in z (``False`` is the ignore-bias ``_IB`` variant).
    """

    PARAMS = {"bias": True}

    def denominator(self, op, x, z):
        z = z if self.bias else op(x)
        return z, safe_divide

    def relevance(self, op, x, z, relevance):
        z, divide = self.denominator(op, x, z)
        return x * op.transpose(divide(relevance, z), x)


class Epsilon(Z):
    """LRP-ε: the Z rule with a stabilised denominator that absorbs weak, contradictory evidence.

    Formula:
        z_j = Σ_i x_i w_ij + b_j          (b dropped when ``bias=False``)
        R_i = Σ_j x_i w_ij / (z_j + ε·sign(z_j)) · R_j,   sign(0) = +1

    Args:
        epsilon: the stabiliser ε ≥ 0 (default 1e-7, as in iNNvestigate).
        bias: include the bias in z (``False`` is the ``_IB`` variant).
    """

    PARAMS = {"epsilon": 1e-7, "bias": True}

    def validate(self, epsilon, bias):
        if not epsilon >= 0:
            raise ValueError(f"Epsilon needs epsilon >= 0, got epsilon={epsilon!r}.")

    def denominator(self, op, x, z):
        z = z if self.bias else op(x)
        eps = max(float(self.epsilon), tiny(z.dtype))
        return z, lambda r, d: r / stabilize(d, eps)
