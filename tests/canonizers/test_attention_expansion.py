"""The ExpandAttention canonizer: MultiHeadAttention, Attention and AdditiveAttention become their
projections, scores, masked softmax and combination, and the expanded graph computes the model's
function (float64, to 1e-6 as the issue asks; the fused attention kernel Keras uses rounds at
~1e-8). Also AdditiveAttention (Bahdanau) against a NumPy float64 oracle of its rules."""

import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close

import keras_lrp
from keras_lrp.canonizers import ExpandAttention, InlineNested, canonize
from keras_lrp.canonizers.forward_layers import AttentionCombine, AttentionScores, AttentionSoftmax
from keras_lrp.core import graph as graph_mod
from keras_lrp.core import types

L = keras.layers
T, S, D = 5, 4, 6


def _expanded(model):
    graph = graph_mod.extract(model)
    canonize(graph, [InlineNested(), ExpandAttention()])
    inputs = [keras.Input(batch_shape=s.shape, dtype=s.dtype) for s in graph.input_specs]
    values = graph_mod.replay(graph, inputs)
    return graph, keras.Model(inputs, [values[t] for t in graph.outputs])


def _mha_self():
    x = keras.Input((T, D))
    return [x], L.MultiHeadAttention(2, 3, name="att")(x, x)


def _mha_cross_key():
    q, v, k = keras.Input((T, D)), keras.Input((S, D)), keras.Input((S, 5))
    return [q, v, k], L.MultiHeadAttention(2, 3, value_dim=4, output_shape=7, name="att")(q, v, k)


def _mha_causal():
    x = keras.Input((T, D))
    return [x], L.MultiHeadAttention(3, 2, use_bias=False, name="att")(x, x, use_causal_mask=True)


def _mha_attention_mask():
    q, v, m = keras.Input((T, D)), keras.Input((S, D)), keras.Input((T, S), dtype="bool")
    return [q, v, m], L.MultiHeadAttention(2, 3, name="att")(q, v, attention_mask=m)


def _mha_token_masks():
    tok = keras.Input((T,), dtype="int32")
    h = L.Embedding(9, D, mask_zero=True)(tok)
    h = L.MultiHeadAttention(2, 3, name="att")(h, h, use_causal_mask=True)
    return [tok], L.GlobalAveragePooling1D()(h)


def _mha_scores_output():
    x = keras.Input((T, D))
    out, scores = L.MultiHeadAttention(2, 3, name="att")(x, x, return_attention_scores=True)
    return [x], [out, scores]


def _mha_2d_axes():
    x = keras.Input((3, 4, D))
    return [x], L.MultiHeadAttention(2, 3, attention_axes=(1, 2), name="att")(x, x)


def _dot_scaled_causal():
    q, v = keras.Input((T, D)), keras.Input((T, D))
    return [q, v], L.Attention(use_scale=True, name="att")([q, v], use_causal_mask=True)


def _dot_token_masks():
    tok_q, tok_v = keras.Input((T,), dtype="int32"), keras.Input((S,), dtype="int32")
    emb = L.Embedding(9, D, mask_zero=True)
    return [tok_q, tok_v], L.Attention(name="att")([emb(tok_q), emb(tok_v)])


def _dot_key():
    q, v, k = keras.Input((T, D)), keras.Input((S, D)), keras.Input((S, D))
    return [q, v, k], L.Attention(name="att")([q, v, k])


def _additive_masks():
    tok = keras.Input((T,), dtype="int32")
    h = L.Embedding(9, D, mask_zero=True)(tok)
    return [tok], L.AdditiveAttention(name="att")([h, h], use_causal_mask=True)


BUILDERS = [_mha_self, _mha_cross_key, _mha_causal, _mha_attention_mask, _mha_token_masks,
            _mha_scores_output, _mha_2d_axes, _dot_scaled_causal, _dot_token_masks, _dot_key,
            _additive_masks]


def _data(model, rng):
    out = []
    for spec in model.inputs:
        shape = (3,) + tuple(spec.shape[1:])
        if spec.dtype == "bool":
            out.append(rng.random(shape) > 0.3)
        elif "int" in spec.dtype:
            tokens = rng.integers(1, 9, shape)
            tokens[:, -2:] = 0  # padding
            out.append(tokens.astype("int32"))
        else:
            out.append(rng.normal(size=shape))
    return out


@pytest.mark.parametrize("builder", BUILDERS, ids=[b.__name__[1:] for b in BUILDERS])
def test_expansion_computes_the_same_function(float64, builder):
    if builder is _mha_cross_key and keras.backend.backend() == "jax":
        pytest.skip("Keras' own MultiHeadAttention with value_dim != key_dim fails on JAX "
                    "(Keras 3.15: 'cannot reshape array of shape (3, 5, 2, 1, 4)')")
    inputs, outputs = builder()
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape) for w in model.weights])
    graph, expanded = _expanded(model)
    kinds = [type(n.layer) for n in graph.nodes]
    assert not any(issubclass(k, types.ATTENTION) for k in kinds)
    for part in (AttentionSoftmax, AttentionCombine):
        assert kinds.count(part) == 1
    x = _data(model, rng)
    want, got = model.predict(x, verbose=0), expanded.predict(x, verbose=0)
    for w, g in zip(*(v if isinstance(v, list) else [v] for v in (want, got))):
        assert_close(g, w, rtol=1e-6, atol=1e-9)
    assert all(layer.name != "att" for layer in expanded.layers)  # the user's layer is not used


def test_projections_are_the_layers_own_weights(float64):
    """The projections take the composite's linear rule: they are EinsumDense clones with the
    attention layer's own weights, and the user's model is untouched."""
    inputs, outputs = _mha_self()
    model = keras.Model(inputs, outputs)
    before = [np.array(w) for w in model.get_weights()]
    graph, _ = _expanded(model)
    dense = [n.layer for n in graph.nodes if isinstance(n.layer, L.EinsumDense)]
    mha = model.get_layer("att")
    assert len(dense) == 4 and all(d is not s for d, s in zip(dense, (
        mha._query_dense, mha._key_dense, mha._value_dense, mha._output_dense)))
    for d, s in zip(dense, (mha._query_dense, mha._key_dense, mha._value_dense,
                            mha._output_dense)):
        for a, b in zip(d.get_weights(), s.get_weights()):
            np.testing.assert_array_equal(a, b)
    assert isinstance(graph.nodes[3].layer, AttentionScores)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert [type(n.layer) for n in graph_mod.extract(model).nodes].count(L.MultiHeadAttention) == 1


def _additive_oracle(model, xq, xv, attention):
    """AdditiveAttention (scores Σ_d c_d tanh(q_d + k_d)) → mean over tokens → Dense, lrp.z."""
    att, dense = model.get_layer("add"), model.get_layer("out")
    c = np.asarray(att.scale, np.float64)
    u = xq[:, None, :] + xv[None, :, :]  # (t, s, d)
    t = c * np.tanh(u)
    scores = t.sum(axis=-1)
    A = ref.softmax(scores)
    R_A, R_v, logits = ref.attention_pool_dense(A, xv, dense.get_weights(), attention)
    R_q = np.zeros_like(xq)
    if attention == "attnlrp":
        R_s = ref.softmax_rule(scores, A, R_A)
        R_u = t * (R_s / ref._stab(scores))[..., None]  # ε over d, identity across tanh
        r = R_u / ref._stab(u)
        R_q = xq * r.sum(axis=1)
        R_v = R_v + xv * r.sum(axis=0)  # the key is the value
    return R_q, R_v, logits


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_additive_attention_matches_numpy_oracle(float64, attention):
    q_in, v_in = keras.Input((T, D)), keras.Input((S, D))
    out = L.AdditiveAttention(name="add")([q_in, v_in])
    model = keras.Model([q_in, v_in], L.Dense(3, name="out")(L.GlobalAveragePooling1D()(out)))
    rng = np.random.default_rng(4)
    model.set_weights([rng.normal(0, 0.7, w.shape) for w in model.weights])
    xq, xv = rng.normal(size=(3, T, D)), rng.normal(size=(3, S, D))
    got = keras_lrp.create_analyzer("lrp.z", model, attention=attention).analyze([xq, xv])
    rows = [_additive_oracle(model, a, b, attention) for a, b in zip(xq, xv)]
    assert_close(np.stack([r[2] for r in rows]), model.predict([xq, xv], verbose=0), rtol=1e-10)
    for part, k in zip(got, (0, 1)):
        expected = np.stack([r[k] for r in rows])
        assert_close(part, expected, rtol=1e-8, atol=1e-10 * max(np.abs(expected).max(), 1e-30))


def test_cp_lrp_conserves_through_additive_attention(float64):
    """CP-LRP: the values carry all relevance; bias-free, the inputs sum to the logit."""
    q_in, v_in = keras.Input((T, D)), keras.Input((S, D))
    out = L.AdditiveAttention(name="add")([q_in, v_in])
    model = keras.Model([q_in, v_in], L.Dense(3, use_bias=False)(L.GlobalAveragePooling1D()(out)))
    rng = np.random.default_rng(2)
    xq, xv = rng.normal(size=(4, T, D)), rng.normal(size=(4, S, D))
    rq, rv = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30,
                                       attention="cp").analyze([xq, xv])
    assert np.all(rq == 0)
    assert_close(rv.reshape(4, -1).sum(axis=1),
                 model.predict([xq, xv], verbose=0).max(axis=1), rtol=1e-10)


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_group_query_attention(float64, attention):
    """keras.layers.GroupQueryAttention (4 query heads sharing 2 key-value heads, causal) is
    traced into its projections, repeats and products: the same relevance as the attention
    written out in raw ops with its weights; causal; CP-LRP conserves (no biases)."""
    from keras import ops

    keras.utils.set_random_seed(3)
    t, d, heads, kv, h = 6, 8, 4, 2, 4
    x = keras.Input((t, d))
    gqa = L.GroupQueryAttention(head_dim=h, num_query_heads=heads, num_key_value_heads=kv,
                                use_bias=False, name="gqa")
    head = L.Dense(1, use_bias=False, name="head")
    model = keras.Model(x, head(gqa(x, x, use_causal_mask=True)[:, 3, :]))
    wq, wk, wv, wo = (np.asarray(w) for w in gqa.get_weights())
    q = ops.einsum("btd,dnh->btnh", x, wq)
    k = ops.repeat(ops.einsum("btd,dnh->btnh", x, wk), heads // kv, axis=2)
    v = ops.repeat(ops.einsum("btd,dnh->btnh", x, wv), heads // kv, axis=2)
    s = ops.einsum("btnh,bsnh->bnts", q, k) * (1.0 / np.sqrt(h))
    s = ops.where(np.tril(np.ones((t, t), bool)), s, -1e9)
    c = ops.einsum("bnts,bsnh->btnh", ops.softmax(s, axis=-1), v)
    written = keras.Model(x, head(ops.einsum("btnh,nhd->btd", c, wo)[:, 3, :]))
    xs = np.random.default_rng(4).normal(size=(2, t, d))
    assert_close(keras.ops.convert_to_numpy(model(xs)),
                 keras.ops.convert_to_numpy(written(xs)), rtol=1e-9)
    got = keras_lrp.create_analyzer("lrp.z", model, attention=attention).analyze(xs)
    want = keras_lrp.create_analyzer("lrp.z", written, attention=attention).analyze(xs)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)
    assert np.all(got[:, 4:] == 0)
    if attention == "cp":
        assert_close(got.sum((1, 2)), np.asarray(model(xs))[:, 0], rtol=1e-9)
