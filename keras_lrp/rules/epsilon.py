"""The Z and Epsilon rules (Bach et al. 2015), with Arras et al.'s bias redistribution."""

from __future__ import annotations

from keras import ops

from keras_lrp.rules.base import Rule, safe_divide, stabilize


class Z(Rule):
    """LRP-0: relevance in proportion to each input's contribution.

    Formula:
        z_j = Σ_i x_i w_ij + b_j          (b dropped when ``bias=False``)
        R_i = Σ_j (x_i w_ij + β·s_ij a_j / n_j) / z_j · R_j    (the ratio is 0 where z_j is 0)

    a_j = z_j − Σ_i x_i w_ij is what the bias would absorb, n_j = Σ_i s_ij the number of inputs
    connected to output j (s_ij = 1 where input i reaches output j), and β = ``bias_factor``.
    With β = 0 (default) the share b_j / z_j of R_j is absorbed by the bias; with β = 1 it is
    spread equally over the connected inputs and relevance is conserved exactly: Arras et al.
    2017's ``lrp_linear`` with ``bias_factor=1`` and ``bias_nb_units`` = n_j.

    Args:
        bias: include the bias in z (``False`` is the ignore-bias ``_IB`` variant).
        bias_factor: the share β ∈ [0, 1] of the absorbed relevance given back to the inputs.
    """

    PARAMS = {"bias": True, "bias_factor": 0.0}

    @property
    def x_proportional(self):
        return not self.bias_factor  # the redistributed share reaches inputs that are 0

    def validate(self, bias, bias_factor, **params):
        if not 0.0 <= float(bias_factor) <= 1.0:
            raise ValueError(f"{type(self).__name__} needs 0 <= bias_factor <= 1, got "
                             f"bias_factor={bias_factor!r}.")

    def denominator(self, op, x, z):
        """(z, the stabilised denominator d, R / d)."""
        z = z if self.bias else op(x)
        return z, lambda r: safe_divide(r, z)

    def relevance(self, op, x, z, relevance):
        z, divide = self.denominator(op, x, z)
        ratio = divide(relevance)
        out = x * op.transpose(ratio, x)
        if self.bias_factor:
            out = out + self.bias_factor * self.redistributed(op, x, z, ratio)
        return out

    def redistributed(self, op, x, z, ratio):
        """Σ_j s_ij a_j / n_j · R_j / d_j: the absorbed relevance spread over the inputs."""
        ones = op.kernel * 0 + 1
        absorbed = self.stabilised(z) - op(x)
        links = op.structure()
        count = links(ops.ones_like(x), ones)
        return links.transpose(safe_divide(absorbed, count) * ratio, x, ones)

    def stabilised(self, z):
        return z


class Epsilon(Z):
    """LRP-ε: the Z rule with a stabilised denominator that absorbs weak, contradictory evidence.

    Formula:
        z_j = Σ_i x_i w_ij + b_j          (b dropped when ``bias=False``)
        d_j = z_j + ε·sign(z_j),   sign(0) = +1
        R_i = Σ_j (x_i w_ij + β·s_ij a_j / n_j) / d_j · R_j,   a_j = d_j − Σ_i x_i w_ij

    With ``bias_factor`` β = 0 (default) the bias and the stabiliser absorb their share; with
    β = 1 they are spread equally over the n_j connected inputs (Arras et al. 2017's
    ``lrp_linear``, whose ``bias_nb_units`` is n_j), and relevance is conserved exactly.

    Args:
        epsilon: the stabiliser ε ≥ 0 (default 1e-7, as in iNNvestigate).
        bias: include the bias in z (``False`` is the ``_IB`` variant).
        bias_factor: the share β ∈ [0, 1] of the absorbed relevance given back to the inputs.
    """

    PARAMS = {"epsilon": 1e-7, "bias": True, "bias_factor": 0.0}

    def validate(self, epsilon, bias, bias_factor):
        if not epsilon >= 0:
            raise ValueError(f"Epsilon needs epsilon >= 0, got epsilon={epsilon!r}.")
        super().validate(bias=bias, bias_factor=bias_factor)

    def stabilised(self, z):
        eps = float(self.epsilon)  # absolute, as documented; 0: the default stabiliser
        return stabilize(z, eps) if eps > 0 else stabilize(z)

    def denominator(self, op, x, z):
        z = z if self.bias else op(x)
        return z, lambda r: r / self.stabilised(z)
