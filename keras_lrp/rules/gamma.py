"""The generalised, sign-aware γ rule (Montavon et al. 2019; Andéol et al. 2021)."""

from __future__ import annotations

from keras import ops

from keras_lrp.rules.base import Rule, SignSplit, negative, positive, stabilize


class Gamma(Rule):
    """LRP-γ: favours contributions that agree in sign with the output.

    Formula:
        where z_j ≥ 0:  c_ij = x⁺_i (w_ij + γ w⁺_ij) + x⁻_i (w_ij + γ w⁻_ij),  d_j = b_j + γ b⁺_j
        where z_j < 0:  c_ij = x⁺_i (w_ij + γ w⁻_ij) + x⁻_i (w_ij + γ w⁺_ij),  d_j = b_j + γ b⁻_j
        R_i = Σ_j c_ij / (Σ_i' c_i'j + d_j) · R_j

    Here z_j = Σ_i x_i w_ij + b_j is the layer's real output, bias included even when
    ``bias=False``: it only chooses the branch, as in Zennit; the b terms are dropped when
    ``bias=False``.

    With γ = 0 this is the Z rule; as γ → ∞ it approaches AlphaBeta(1, 0) on positive outputs.

    Args:
        gamma: γ ≥ 0 (default 0.25).
        bias: include the bias (``False`` conserves relevance exactly).
    """

    PARAMS = {"gamma": 0.25, "bias": True}
    x_proportional = True

    def validate(self, gamma, bias):
        if not gamma >= 0:
            raise ValueError(f"Gamma needs gamma >= 0, got gamma={gamma!r}.")

    def relevance(self, op, x, z, relevance):
        w, g = op.kernel, ops.convert_to_tensor(self.gamma, dtype=op.kernel.dtype)
        b = op.bias if self.bias else None
        positive_out = z >= 0  # the real output's sign, bias included (Zennit's choice)
        zero = ops.zeros_like(relevance)
        # Positive outputs: x⁺ with w + γw⁺, x⁻ with w + γw⁻ (z_a); negative ones mirrored (z_b).
        split = SignSplit(op, x, w + g * positive(w), w + g * negative(w), self.input_nonnegative)
        z_pos, z_neg = split.outputs()
        if b is not None:
            z_pos, z_neg = op.add_bias(z_pos, b + g * positive(b)), op.add_bias(
                z_neg, b + g * negative(b))
        return split.relevance([ops.where(positive_out, relevance, zero) / stabilize(z_pos),
                                ops.where(positive_out, zero, relevance) / stabilize(z_neg)])
