"""Attention, expanded into parts LRP rules can serve.

``keras.layers.MultiHeadAttention`` computes, for query x_q, key x_k and value x_v,

    q = x_q W_q + b_q,  k = x_k W_k + b_k,  v = x_v W_v + b_v     (EinsumDense projections)
    s = k · (q / √d)                                             (:class:`.AttentionScores`)
    A = softmax(s + mask)                                        (:class:`.AttentionSoftmax`)
    c = A · v                                                    (:class:`.AttentionCombine`)
    y = c W_o + b_o                                              (EinsumDense)

and ``keras.layers.Attention`` (Luong dot scores) the same without projections, with s = q·kᵀ
times its learned scalar. ``keras.layers.AdditiveAttention`` (Bahdanau) has
s_ts = Σ_d scale_d · tanh(q_td + k_sd) (:class:`.AdditiveScores`). The
:class:`~keras_lrp.canonizers.base.ExpandAttention` canonizer replaces each such call by these nodes
(:func:`expand_attention`), and so is a raw ``ops.dot_product_attention`` (keras-hub's
attention on JAX and PyTorch; grouped key/value heads repeated by :class:`.RepeatHeads`). The
projections are the attention layer's own EinsumDense sublayers, so the composite's linear rule
applies to them; the parts are stateless layers whose relevance
layers are in :mod:`keras_lrp.layers.attention` (AttnLRP, Achtibat et al., ICML 2024, and
CP-LRP, Ali et al., ICML 2022). The expanded graph computes the same function (tested to 1e-6).
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
from keras import ops

from keras_lrp.canonizers import forward_layers as fwd
from keras_lrp.core import types
from keras_lrp.core.graph import Graph, Node, Ref

#: The keyword masks a MultiHeadAttention call may carry.
MHA_MASKS = ("query_mask", "value_mask", "key_mask", "attention_mask")


#: The two bilinear products (their relevance layers split between both operands).
PRODUCTS = (fwd.AttentionScores, fwd.AttentionCombine, fwd.AdditiveScores)


#: keras-hub's MultiHeadAttention with an optional key/value cache (Whisper's builds its key
#: projection without a bias, and is otherwise the same).
CACHED_MHA = ("CachedMultiHeadAttention", "WhisperCachedMultiHeadAttention")


def cached_mha(layer) -> bool:
    """keras-hub's CachedMultiHeadAttention (:data:`CACHED_MHA`): MultiHeadAttention with an
    optional key/value cache, and only an explicit ``attention_mask`` (the cache is refused per
    call)."""
    cls = type(layer)
    base = next((c for c in cls.__mro__ if c.__name__ == CACHED_MHA[0]), None)
    return (isinstance(layer, keras.layers.MultiHeadAttention) and cls.__name__ in CACHED_MHA
            and base is not None and cls.call is base.call
            and cls._compute_attention is keras.layers.MultiHeadAttention._compute_attention)


def attention_problem(layer) -> Optional[str]:
    """Why keras-lrp cannot expand this attention layer, or ``None``."""
    if type(layer) not in (keras.layers.MultiHeadAttention, keras.layers.Attention,
                           keras.layers.AdditiveAttention) and not cached_mha(layer):
        return (f"is a {type(layer).__name__}; keras-lrp expands MultiHeadAttention, Attention "
                "and AdditiveAttention")
    if getattr(layer, "score_mode", "dot") != "dot" and type(layer) is keras.layers.Attention:
        return (f"computes its scores with score_mode={layer.score_mode!r}; keras-lrp explains "
                "dot-product scores (or use AdditiveAttention)")
    if getattr(layer, "_use_gate", False):
        return "uses a gate (use_gate=True); keras-lrp explains ungated MultiHeadAttention"
    if getattr(layer, "_sliding_window", None) is not None:
        return "uses a sliding window; not supported yet"
    return None


class _Builder:
    """Appends the part nodes of one attention call, tracking static shapes."""

    def __init__(self, graph: Graph, shapes: dict, nodes: list, prefix: str, copies: dict):
        self.graph, self.shapes, self.nodes = graph, shapes, nodes
        self.prefix, self.copies = prefix, copies

    def name(self, part: str) -> str:
        return f"{self.prefix}_{part}"

    def add(self, layer, args, kwargs=None, out_shape=None) -> int:
        kwargs = {k: v for k, v in (kwargs or {}).items() if v is not None}
        refs = [a for a in list(args) + list(kwargs.values()) if isinstance(a, Ref)]
        out = self.graph.new_tensor()
        if out_shape is None:
            specs = [keras.KerasTensor(self.shapes[a.tid]) if isinstance(a, Ref) else a
                     for a in args]
            kspecs = {k: keras.KerasTensor(self.shapes[v.tid], dtype="bool")
                      for k, v in kwargs.items()}
            out_shape = tuple(layer.compute_output_spec(*specs, **kspecs).shape)
        self.shapes[out] = out_shape
        self.nodes.append(Node(layer, tuple(args), kwargs, [r.tid for r in refs], [out],
                               [out_shape]))
        return out

    def dense(self, layer, ref: Ref, owner) -> int:
        """A projection: a copy of the attention layer's sublayer ``layer``, named after its
        owner (sublayer names repeat across attention layers), with its weights and with the
        static output shape of this call (the sublayer leaves the sequence axes open). One copy
        per sublayer and shape, so a shared attention layer keeps shared projections."""
        shape = tuple(ops.einsum(layer.equation, keras.KerasTensor(self.shapes[ref.tid]),
                                 keras.KerasTensor(tuple(layer.kernel.shape))).shape)
        key = (id(layer), shape)
        if key not in self.copies:
            suffix = "" if not any(k[0] == id(layer) for k in self.copies) else \
                f"_{len(self.copies)}"
            config = {**layer.get_config(), "name": f"{owner.name}_{layer.name}{suffix}",
                      "output_shape": list(shape[1:])}
            self.copies[key] = [type(layer).from_config(config), layer.get_weights()]
        copy, weights = self.copies[key]
        out = self.add(copy, (ref,), out_shape=shape)
        if weights is not None:  # the first node of a layer carries its weights
            self.nodes[-1].weights, self.copies[key][1] = weights, None
        return out


def _expand_mha(node: Node, b: _Builder):
    layer, named = node.layer, _mha_arguments(node)
    query, value = named["query"], named["value"]
    key = named.get("key") or value
    kw = dict(name=b.name("scores"), dtype=layer.dtype_policy)
    q = b.dense(layer._query_dense, query, layer)
    k = b.dense(layer._key_dense, key, layer)
    v = b.dense(layer._value_dense, value, layer)
    # 1/√d rounded through float32, as MultiHeadAttention itself computes it (ops.cast)
    scale = float(np.float32(layer._inverse_sqrt_key_dim))
    scores = b.add(fwd.AttentionScores(layer._dot_product_equation, scale, **kw), (Ref(q), Ref(k)))
    masks = {m: named.get(m) for m in MHA_MASKS}
    if named.get("key") is None or key == value:
        masks["key_mask"] = None  # Keras ignores the key's mask when the key is the value
    probs = b.add(fwd.AttentionSoftmax(axis=layer._softmax.axis, style="mha",
                                       causal=bool(node.kwargs.get("use_causal_mask", False)),
                                       expand_axis=-len(layer._attention_axes) * 2 - 1,
                                       name=b.name("softmax"), dtype=layer.dtype_policy),
                  (Ref(scores),), masks, out_shape=b.shapes[scores])
    context = b.add(fwd.AttentionCombine(layer._combine_equation, name=b.name("combine"),
                                         dtype=layer.dtype_policy), (Ref(probs), Ref(v)))
    return b.dense(layer._output_dense, Ref(context), layer), probs


def _mha_arguments(node: Node) -> dict:
    named = dict(zip(("query", "value", "key"), node.args))
    named.update({k: v for k, v in node.kwargs.items() if k in ("query", "value", "key")
                  or k in MHA_MASKS})
    return {k: v for k, v in named.items() if isinstance(v, Ref)}


def _expand_dot(node: Node, b: _Builder):
    layer = node.layer
    inputs = node.args[0] if node.args else node.kwargs["inputs"]
    query, value = inputs[0], inputs[1]
    key = inputs[2] if len(inputs) > 2 else value
    kw = dict(dtype=layer.dtype_policy)
    # the layer reads its inputs' Keras masks implicitly (all True where there is none)
    q_mask = Ref(b.add(fwd.KerasMask(name=b.name("query_mask")), (query,),
                       out_shape=b.shapes[query.tid][:-1]))
    v_mask = Ref(b.add(fwd.KerasMask(name=b.name("value_mask")), (value,),
                       out_shape=b.shapes[value.tid][:-1]))
    if isinstance(layer, keras.layers.AdditiveAttention):
        scale = np.asarray(layer.scale) if layer.use_scale else None
        part = fwd.AdditiveScores(scale, name=b.name("scores"), **kw)
    else:
        scale = float(np.asarray(layer.scale)) if layer.use_scale else 1.0
        part = fwd.AttentionScores("...sd,...td->...ts", scale, name=b.name("scores"), **kw)
    scores = b.add(part, (query, key))
    probs = b.add(fwd.AttentionSoftmax(style="dot",
                                       causal=bool(node.kwargs.get("use_causal_mask", False)),
                                       name=b.name("softmax"), **kw),
                  (Ref(scores),), {"value_mask": v_mask}, out_shape=b.shapes[scores])
    out = b.add(fwd.AttentionCombine("...ts,...sd->...td", name=b.name("combine"), **kw),
                (Ref(probs), value), {"query_mask": q_mask})
    return out, probs


def _dpa_arguments(node: Node) -> dict:
    names = ("query", "key", "value", "bias", "mask", "scale")
    named = dict(zip(names, node.args))
    named.update({k: v for k, v in node.kwargs.items() if k in names})
    return named


def _expand_dot_product(node: Node, b: _Builder):
    """``ops.dot_product_attention(q, k, v, mask=…, scale=…)`` (keras-hub's attention on JAX and
    PyTorch): q (B, T, N, H), k and v (B, S, K, H) with K dividing N."""
    op, named = node.layer, _dpa_arguments(node)
    if isinstance(named.get("bias"), Ref) or named.get("bias") is not None:
        raise ValueError(f"Operation '{op.name}' (dot_product_attention) adds a bias to its "
                         "scores; keras-lrp expands it without one.")
    if getattr(op, "attn_logits_soft_cap", None) is not None:
        raise ValueError(f"Operation '{op.name}' (dot_product_attention) soft-caps its scores; "
                         "keras-lrp expands it without a soft cap.")
    query, key, value = named["query"], named["key"], named["value"]
    heads, kv_heads, depth = (b.shapes[query.tid][2], b.shapes[key.tid][2],
                              b.shapes[query.tid][-1])
    if heads != kv_heads:
        if kv_heads is None or heads is None or heads % kv_heads:
            raise ValueError(f"Operation '{op.name}' (dot_product_attention): {heads} query "
                             f"heads cannot share {kv_heads} key/value heads evenly.")
        key, value = (Ref(b.add(fwd.RepeatHeads(heads // kv_heads, name=b.name(part)), (ref,)))
                      for part, ref in (("repeat_key", key), ("repeat_value", value)))
    scale = named.get("scale")
    scale = float(1.0 / np.sqrt(depth)) if scale is None else float(scale)
    scores = b.add(fwd.AttentionScores("bsnh,btnh->bnts", scale, name=b.name("scores")),
                   (query, key))
    mask = named.get("mask")
    probs = b.add(fwd.AttentionSoftmax(axis=(-1,), style="mha", causal=bool(op.is_causal),
                                       expand_axis=1, name=b.name("softmax")),
                  (Ref(scores),), {"attention_mask": mask if isinstance(mask, Ref) else None},
                  out_shape=b.shapes[scores])
    if mask is not None and not isinstance(mask, Ref):
        raise ValueError(f"Operation '{op.name}' (dot_product_attention) has a constant mask; "
                         "pass it as a tensor.")
    out = b.add(fwd.AttentionCombine("bnts,bsnh->btnh", name=b.name("combine")),
                (Ref(probs), value))
    return out, probs


def expand_attention(graph: Graph) -> None:
    """Replace every attention call in ``graph`` by its parts (see the module docstring).

    Raises:
        ValueError: an attention layer keras-lrp cannot expand (named, with the reason).
    """
    attention = types.ATTENTION + types.OP_DOT_PRODUCT_ATTENTION
    if not any(isinstance(n.layer, attention) for n in graph.nodes):
        return
    shapes, nodes, swaps, copies, calls = graph.shapes(), [], [], {}, {}
    for node in graph.nodes:
        if not isinstance(node.layer, attention):
            nodes.append(node)
            continue
        if isinstance(node.layer, types.OP_DOT_PRODUCT_ATTENTION):
            b = _Builder(graph, shapes, nodes, node.layer.name, copies)
            swaps += list(zip(node.outputs, _expand_dot_product(node, b)))
            continue
        problem = attention_problem(node.layer)
        if problem is None and any(isinstance(node.kwargs.get(k), Ref) for k in
                                   ("cache", "cache_update_index")):
            problem = "is called with a key/value cache; explain the model without its cache"
        if problem:
            raise ValueError(f"Layer '{node.layer.name}' {problem}.")
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
        prefix = node.layer.name + ("" if calls[id(node.layer)] == 1
                                    else f"_{calls[id(node.layer)]}")
        b = _Builder(graph, shapes, nodes, prefix, copies)
        expand = _expand_mha if isinstance(node.layer, keras.layers.MultiHeadAttention) \
            else _expand_dot
        swaps += list(zip(node.outputs, expand(node, b)))
    graph.nodes = nodes
    for old, new in swaps:
        graph.replace_tensor(old, new)


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["PRODUCTS", "attention_problem", "expand_attention"]
