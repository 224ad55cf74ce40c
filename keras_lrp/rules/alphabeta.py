"""The αβ family: AlphaBeta, ZPlus and ZPlusFast (Bach et al. 2015; Montavon et al. 2017)."""

from __future__ import annotations

from keras_lrp.rules.base import Rule, SignSplit, negative, positive, stabilize


class AlphaBeta(Rule):
    """LRP-αβ: positive and negative contributions propagated separately, weighted α and −β.

    Formula (x⁺, x⁻, w⁺, w⁻, b⁺, b⁻ the clamped parts):
        z⁺_j = Σ_i (x⁺_i w⁺_ij + x⁻_i w⁻_ij) + b⁺_j
        z⁻_j = Σ_i (x⁺_i w⁻_ij + x⁻_i w⁺_ij) + b⁻_j
        R_i = Σ_j [α (x⁺_i w⁺_ij + x⁻_i w⁻_ij) / z⁺_j − β (x⁺_i w⁻_ij + x⁻_i w⁺_ij) / z⁻_j] R_j

    The bias is an extra input of value 1: b⁺ joins the activator, b⁻ the inhibitor, and each
    absorbs its share. (iNNvestigate adds the whole bias to both denominators, which loses
    relevance or explodes when z⁺ + b ≈ 0; keras-lrp deliberately does not.)

    Args:
        alpha: weight α ≥ 1 of the positive part.
        beta: weight β ≥ 0 of the negative part; α − β must be 1.
        bias: include the bias (``False`` is the ``_IB`` variant).
    """

    PARAMS = {"alpha": 2.0, "beta": 1.0, "bias": True}
    x_proportional = True

    def validate(self, alpha, beta, bias):
        if not (abs(alpha - beta - 1) < 1e-9 and alpha >= 1 and beta >= 0):
            raise ValueError(
                "AlphaBeta needs alpha - beta = 1, alpha >= 1 and beta >= 0; got "
                f"alpha={alpha!r}, beta={beta!r} (alpha - beta = {alpha - beta!r}).")

    def relevance(self, op, x, z, relevance):
        use_bias = self.bias and op.bias is not None
        split = SignSplit(op, x, positive(op.kernel), negative(op.kernel),
                          self.input_nonnegative, need_b=bool(self.beta))
        z = split.outputs()
        # z⁺ = Σ (x⁺w⁺ + x⁻w⁻) + b⁺ ≥ 0 and z⁻ = Σ (x⁺w⁻ + x⁻w⁺) + b⁻ ≤ 0 everywhere.
        ratios = [self.alpha * relevance / stabilize(
            op.add_bias(z[0], positive(op.bias) if use_bias else None), sign=+1)]
        if self.beta:
            ratios.append(-self.beta * relevance / stabilize(
                op.add_bias(z[1], negative(op.bias) if use_bias else None), sign=-1))
        return split.relevance(ratios)


class ZPlus(AlphaBeta):
    """z⁺-rule: AlphaBeta(α=1, β=0) (Montavon et al. 2017).

    Formula:
        R_i = Σ_j (x⁺_i w⁺_ij + x⁻_i w⁻_ij) / (Σ_i' (x⁺_i' w⁺_i'j + x⁻_i' w⁻_i'j) + b⁺_j) · R_j

    Args:
        bias: keep the positive bias b⁺ in the denominator, as Zennit's ZPlus does (it absorbs
            its share); ``False`` (default) drops it, as iNNvestigate's ``lrp.z_plus`` does.
    """

    PARAMS = {"bias": False}

    def __init__(self, layer=None, **kwargs):
        super().__init__(layer=layer, **kwargs)
        self.alpha, self.beta = 1.0, 0.0

    def validate(self, bias):
        pass


class ZPlusFast(Rule):
    """Fast z⁺: positive weights on the raw input, no bias (iNNvestigate's ``ZPlusFast``).

    Formula:
        R_i = Σ_j x_i w⁺_ij / Σ_i' x_i' w⁺_i'j · R_j

    Equal to ZPlus when x ≥ 0 (e.g. after a ReLU).
    """

    x_proportional = True

    def relevance(self, op, x, z, relevance):
        wp = positive(op.kernel)
        s = relevance / stabilize(op(x, wp))  # x may be negative: the sign is not known
        return x * op.transpose(s, x, wp)
