"""LRP through ``keras.layers.MultiHeadAttention``: AttnLRP (Achtibat et al., ICML 2024) and
CP-LRP (Ali et al., ICML 2022).

The layer is replayed from its parts: the query, key and value projections q, k, v (EinsumDense),
the scores s = (q / √d) · kᵀ, the masked softmax A = softmax(s), the context c = A · v and the
output projection. Relevance then crosses them backwards:

* the four projections get the rule the composite gives the layer (Epsilon, Z, …);
* the context c = A·v, a bilinear product: AttnLRP splits each term a_ik v_kj uniformly, half to
  each factor, R_A = ½ A ⊙ ∂/∂A ⟨c, R/c⟩ and R_v = ½ v ⊙ ∂/∂v ⟨c, R/c⟩ (denominators stabilised);
  CP-LRP holds A constant: R_v = v ⊙ ∂/∂v ⟨c, R/c⟩, R_A = 0;
* the softmax (AttnLRP only): its linearisation with the bias term absorbing relevance,
  R_s = s ⊙ (R_A − A ⊙ Σ_k R_A), which is input × gradient of the softmax with upstream R_A / A;
* the scores s = q·kᵀ/√d: the same uniform split, half to q and half to k.

With CP-LRP, every bias zero and a tiny ε, relevance is conserved exactly.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops, tree

from keras_lrp.graph import Ref
from keras_lrp.layers.base import RelevanceLayer, stabilize
from keras_lrp.linear import linear_op

#: How relevance crosses attention: ``"attnlrp"`` (default) or ``"cp"``.
ATTENTION_MODES = ("attnlrp", "cp")


def _bilinear(fn, a, b, relevance, eps):
    """(R_a, R_b), each the full share: ``x ⊙ ∂/∂x ⟨fn(a, b), R / fn(a, b)⟩`` for x = a, b.
    ``a`` and ``b`` may be one tensor (self-attention without projections): they are copied, so
    that each gets the derivative through its own argument only."""
    a, b = tf.identity(a), tf.identity(b)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        out = fn(a, b)
    ratio = relevance / stabilize(out, eps)
    ga, gb = tape.gradient(out, [a, b], output_gradients=ratio)
    del tape
    return a * ga, b * gb


def attention_problem(layer):
    """Why keras-lrp cannot explain this attention layer, or ``None``."""
    if getattr(layer, "score_mode", "dot") != "dot":
        return (f"computes its scores with score_mode={layer.score_mode!r}; keras-lrp explains "
                "dot-product scores")
    if getattr(layer, "_use_gate", False):
        return "uses a gate (use_gate=True); keras-lrp explains ungated MultiHeadAttention"
    if getattr(layer, "_sliding_window", None) is not None:
        return "uses a sliding window; not supported yet"
    return None


class MultiHeadAttentionRelevance(RelevanceLayer):
    """AttnLRP or CP-LRP through one ``MultiHeadAttention`` call (see the module docstring).

    Args:
        rule: the LRP rule of the four projections.
        attention: ``"attnlrp"`` or ``"cp"``.
        roles: the keyword (``query``, ``value``, ``key``, ``attention_mask``) of each tensor
            input, in ``node.inputs`` order.
        options: the node's non-tensor call options (``use_causal_mask``).
    """

    def __init__(self, target=None, rule=None, attention="attnlrp", roles=("query", "value"),
                 options=None, **kwargs):
        super().__init__(target=target, **kwargs)
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}.")
        self.rule, self.attention, self.roles = rule, attention, list(roles)
        self.options = dict(options or {})

    def build(self, input_shape):
        """Nothing to build: the weights are the attention layer's."""

    def propagate(self, xs, z, relevance):
        layer = self.target
        named = dict(zip(self.roles, xs))
        query, value = named["query"], named["value"]
        key = named.get("key", value)
        mask = layer._compute_attention_mask(
            query, value, query_mask=named.get("query_mask"), value_mask=named.get("value_mask"),
            key_mask=named.get("key_mask"), attention_mask=named.get("attention_mask"),
            use_causal_mask=bool(self.options.get("use_causal_mask", False)))
        q, k, v = layer._query_dense(query), layer._key_dense(key), layer._value_dense(value)
        scale = ops.cast(layer._inverse_sqrt_key_dim, q.dtype)
        scores_of = lambda qq, kk: ops.einsum(layer._dot_product_equation, kk, qq * scale)  # noqa: E731
        scores = scores_of(q, k)
        probs = layer._masked_softmax(scores, mask)
        combine = lambda a, vv: ops.einsum(layer._combine_equation, a, vv)  # noqa: E731
        context = combine(probs, v)
        # output projection, on the replayed output (Keras' fused dot_product_attention path
        # rounds differently, ~1e-8 relative even in float64)
        r_context = self._linear(layer._output_dense, context, layer._output_dense(context),
                                 relevance)
        r_q, r_k, r_v = self._attend(scores_of, q, k, scores, probs, combine, v, r_context)
        relevances = {"value": self._linear(layer._value_dense, value, v, r_v)}
        if r_q is not None:
            relevances["query"] = self._linear(layer._query_dense, query, q, r_q)
            relevances["key"] = self._linear(layer._key_dense, key, k, r_k)
        return self._route(xs, relevances)

    def _attend(self, scores_of, q, k, scores, probs, combine, v, relevance):
        """(R_q, R_k, R_v) of ``combine(softmax(scores_of(q, k)), v)`` carrying ``relevance``:
        AttnLRP's uniform splits and softmax rule, or CP-LRP's (R_q = R_k = None)."""
        eps = getattr(self.rule, "epsilon", None)
        eps = float(eps) if eps else None
        r_probs, r_v = _bilinear(combine, probs, v, relevance, eps)
        if self.attention == "cp":  # A held constant: the values take all
            return None, None, r_v
        r_probs = 0.5 * r_probs
        total = ops.sum(r_probs, axis=-1, keepdims=True)
        r_q, r_k = _bilinear(scores_of, q, k, scores * (r_probs - probs * total), eps)
        return 0.5 * r_q, 0.5 * r_k, 0.5 * r_v

    def _route(self, xs, relevances):
        """One relevance per input, by role; the key's goes to the value when the call had no
        key (it defaulted to the value); masks and unused inputs get zeros."""
        out = []
        for x, role in zip(xs, self.roles):
            r = relevances.pop(role, None)
            if role == "value" and "key" not in self.roles and "key" in relevances:
                r = r + relevances.pop("key")
            out.append(ops.zeros(ops.shape(x), self.compute_dtype) if r is None else r)
        return out

    def _linear(self, dense, x, z, relevance):
        return self.rule.relevance(linear_op(dense), x, z, relevance)

    def get_config(self):
        return {**super().get_config(), "attention": self.attention, "roles": self.roles,
                "options": self.options}

    def __repr__(self):
        return f"{type(self).__name__}({self.rule!r}, attention={self.attention!r})"


class DotAttentionRelevance(MultiHeadAttentionRelevance):
    """AttnLRP or CP-LRP through ``keras.layers.Attention`` (dot-product scores, Luong et al.):
    the same rules as :class:`MultiHeadAttentionRelevance` without projections, on
    scores s = q·kᵀ (times the learned scale with ``use_scale``), A = softmax(s) and o = A·v.
    Relevance reaches the query, value and key inputs directly."""

    def propagate(self, xs, z, relevance):
        layer = self.target
        named = dict(zip(self.roles, xs))
        query, value = named["query"], named["value"]
        key = named.get("key", value)
        scores_of = layer._calculate_scores
        scores = scores_of(query, key)
        scores_mask = layer._calculate_score_mask(
            scores, named.get("mask1"), bool(self.options.get("use_causal_mask", False)))
        masked = scores if scores_mask is None else ops.where(
            ops.logical_not(scores_mask), scores - ops.cast(1e9, scores.dtype), scores)
        probs = ops.softmax(masked, axis=-1)
        r_q, r_k, r_v = self._attend(scores_of, query, key, scores, probs, ops.matmul, value,
                                     relevance)
        relevances = {"value": r_v}
        if r_q is not None:
            relevances["query"], relevances["key"] = r_q, r_k
        return self._route(xs, relevances)


def dot_attention_roles(node) -> list:
    """The role of each tensor input of a ``keras.layers.Attention`` node: the query, value and
    key of its input list, then its masks (``mask0`` the query's, ``mask1`` the value's)."""
    roles = []
    for path, leaf in tree.flatten_with_path((list(node.args), dict(node.kwargs))):
        if isinstance(leaf, Ref):
            if path[0] == 0:
                roles.append(("query", "value", "key")[path[-1]] if len(path) > 2 else "query")
            else:
                roles.append(f"{path[1]}{path[2]}" if len(path) > 2 else str(path[1]))
    return roles


def attention_roles(node) -> list:
    """The call keyword of each of a MultiHeadAttention node's tensor inputs."""
    positional = ["query", "value", "key"]
    roles = []
    for i, arg in enumerate(node.args):
        for leaf in tree.flatten(arg):
            if isinstance(leaf, Ref):
                roles.append(positional[i] if i < 3 else f"arg{i}")
    for path, leaf in tree.flatten_with_path(dict(node.kwargs)):
        if isinstance(leaf, Ref):
            roles.append(path[0])
    return roles


def attention_options(node) -> dict:
    return {"use_causal_mask": bool(node.kwargs.get("use_causal_mask", False))}


__all__ = ["ATTENTION_MODES", "DotAttentionRelevance", "MultiHeadAttentionRelevance",
           "attention_options", "attention_problem", "attention_roles", "dot_attention_roles"]
