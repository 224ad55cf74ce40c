"""Relevance through the parts of an expanded attention layer
(:mod:`keras_lrp.canonizers.attention`):
AttnLRP (Achtibat et al., "AttnLRP: Attention-aware LRP for transformers", ICML 2024) and CP-LRP
(Ali et al., "XAI for transformers: better explanations through conservative propagation",
ICML 2022).

* A bilinear product o = f(a, b) (scores s = k·q/√d, context c = A·v), written as a sum of terms
  a_i b_j: the ε-rule over the sum, then AttnLRP's uniform rule over each product, half to each
  factor:  R_a = ½ a ⊙ ∂/∂a ⟨o, R/o⟩,  R_b = ½ b ⊙ ∂/∂b ⟨o, R/o⟩  (o stabilised by ε·sign).
  CP-LRP holds A constant: R_v = v ⊙ ∂/∂v ⟨c, R/c⟩ (all of it), R_A = 0, so the scores, query
  and key get nothing.
* The softmax A = softmax(s), linearised with its bias term absorbing relevance (AttnLRP's
  softmax rule, input × gradient with upstream R/A):  R_s = s ⊙ (R_A − A ⊙ Σ_k R_A).
* Bahdanau scores s_ts = Σ_d c_d tanh(q_td + k_sd): the ε-rule over d, the identity rule across
  tanh, and the Z rule (ε-stabilised) over the sum q + k.

With CP-LRP, every bias zero and a tiny ε, relevance is conserved exactly.
"""

from __future__ import annotations

from keras import ops

from keras_lrp import backend
from keras_lrp.canonizers.forward_layers import AttentionCombine
from keras_lrp.core.stabilize import stabilize
from keras_lrp.layers.base import RelevanceLayer, named_after

#: How relevance crosses attention: ``"attnlrp"`` (default) or ``"cp"``.
ATTENTION_MODES = ("attnlrp", "cp")


def bilinear(fn, a, b, relevance, eps):
    """(R_a, R_b), each the full share: ``x ⊙ ∂/∂x ⟨fn(a, b), R / fn(a, b)⟩`` for x = a, b.
    ``a`` and ``b`` may be one tensor (self-attention without projections): they are copied, so
    that each gets the derivative through its own argument only."""
    out, pullback = backend.vjp(fn, a, b)
    ga, gb = pullback(relevance / stabilize(out, eps))
    return a * ga, b * gb


def _zeros(xs, dtype):
    return [ops.zeros(ops.shape(x), dtype) for x in xs]


class BilinearRelevance(RelevanceLayer):
    """An attention product (:class:`.AttentionScores`,
    :class:`.AttentionCombine`): AttnLRP's uniform split, or CP-LRP's
    (see the module docstring). Extra inputs (a query mask) get zero.

    Args:
        rule: the composite's rule for the layer; its ``epsilon`` (if any) stabilises o.
        attention: ``"attnlrp"`` or ``"cp"``.
    """

    def __init__(self, layer=None, rule=None, attention="attnlrp", **kwargs):
        super().__init__(layer=layer, **kwargs)
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}.")
        self.rule, self.attention = rule, attention
        eps = getattr(rule, "epsilon", None)
        self.eps = float(eps) if eps else None

    @classmethod
    def rule_problem(cls, node, ctx):
        """None: every attention product takes the composite's rule."""
        return None

    @classmethod
    def with_rule(cls, node, rule, ctx) -> BilinearRelevance:
        """The relevance layer of an attention product under the context's ``attention`` mode,
        stabilised by ``rule``'s ε."""
        return cls(layer=node.layer, rule=rule, attention=ctx.attention,
                   **named_after(node))

    def build(self, input_shape):
        """Nothing to build: the products have no weights."""

    def propagate(self, xs, z, relevance):
        a, b, rest = xs[0], xs[1], xs[2:]
        combine = isinstance(self.layer, AttentionCombine)
        if self.attention == "cp" and not combine:
            return _zeros(xs, self.compute_dtype)  # A is held constant: nothing reaches s
        fn = lambda u, w: self.layer.call(u, w, *rest)  # noqa: E731
        r_a, r_b = bilinear(fn, a, b, relevance, self.eps)
        if self.attention == "cp":
            return [ops.zeros_like(r_a), r_b] + _zeros(rest, self.compute_dtype)
        return [0.5 * r_a, 0.5 * r_b] + _zeros(rest, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "attention": self.attention}

    def __repr__(self):
        return f"{type(self).__name__}({self.rule!r}, attention={self.attention!r})"


class SoftmaxRelevance(RelevanceLayer):
    """A softmax inside the network: attention's (masks get zero), a Softmax layer or
    ``Activation("softmax")`` (AttnLRP's rule: input × gradient with upstream R/A, the bias
    term absorbing the rest). A softmax producing a model output is stripped instead.

    Formula:
        R_s = s ⊙ (R_A − A ⊙ Σ_k R_A),  the sum over the softmax's axes
    """

    def propagate(self, xs, z, relevance):
        axis = getattr(self.layer, "axis", -1)  # Activation("softmax") has none: the last
        axis = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        total = ops.sum(relevance, axis=axis, keepdims=True)
        return [xs[0] * (relevance - z * total)] + _zeros(xs[1:], self.compute_dtype)


class LogSoftmaxRelevance(RelevanceLayer):
    """Log-probabilities y = s − logsumexp(s) (:class:`.LogSoftmax`),
    by the softmax rule's reasoning: input × gradient with upstream R/y (AttnLRP, Achtibat et
    al. 2024, treat the softmax so; the log-softmax is its logarithm). With the explained
    log-probability as the starting relevance this explains a sequence's log-likelihood.

    Formula (∂y_j/∂s_k = δ_jk − A_k, A = softmax(s)):
        u = R / y,   R_s = s ⊙ (u − A · Σ_j u_j)     (y < 0 stabilised by ε·sign)
    """

    def propagate(self, xs, z, relevance):
        s = xs[0]
        u = relevance / stabilize(z)
        a = ops.softmax(s, axis=-1)
        return [s * (u - a * ops.sum(u, axis=-1, keepdims=True))]


class AdditiveScoresRelevance(BilinearRelevance):
    """Bahdanau scores s_ts = Σ_d c_d tanh(q_td + k_sd)
    (:class:`.AdditiveScores`).

    Formula (u = q_t + k_s, t_d = c_d tanh(u_d)):
        R_u = t ⊙ R_s / s                      (ε-rule over d; identity across tanh)
        R_q_t = Σ_s q_t ⊙ R_u / u,  R_k_s = Σ_t k_s ⊙ R_u / u     (Z rule over the sum)

    CP-LRP gives zero (the weights A are constants).
    """

    def propagate(self, xs, z, relevance):
        query, key = xs
        if self.attention == "cp":
            return _zeros(xs, self.compute_dtype)
        u, t = self.layer.terms(query, key)
        r_u = t * ops.expand_dims(relevance / stabilize(z, self.eps), -1)
        ratio = r_u / stabilize(u, self.eps)
        return [query * ops.sum(ratio, axis=-2), key * ops.sum(ratio, axis=-3)]


__all__ = ["ATTENTION_MODES", "AdditiveScoresRelevance", "BilinearRelevance",
           "LogSoftmaxRelevance", "SoftmaxRelevance"]
