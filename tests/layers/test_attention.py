"""AttnLRP and CP-LRP through keras.layers.MultiHeadAttention, against a NumPy float64 oracle
written from the rules (Achtibat et al. 2024; Ali et al. 2022): the projections' Epsilon rule on
explicit matrices, the uniform (½, ½) split of the two bilinear products, and the softmax rule
R_s = s ⊙ (R_A − A ⊙ Σ R_A). Self- and cross-attention, with and without a causal mask, with and
without biases. Float64; rtol 1e-6 with a floor of 1e-7 of the largest value, because Keras'
fused attention path rounds the layer's output at ~1e-8 relative even in float64, and the
layers after it (pooling, Dense) see that output."""

import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close

import keras_lrp

T, S, D, H, KD, K = 5, 4, 4, 2, 3, 3
L = keras.layers
EPS = 1e-7


def build(bias, causal=False, cross=False):
    q_in = keras.Input((T, D), name="q")
    inputs = [q_in]
    mha = L.MultiHeadAttention(H, KD, use_bias=bias, name="mha")
    if cross:
        v_in = keras.Input((S, D), name="v")
        inputs.append(v_in)
        h = mha(q_in, v_in, use_causal_mask=causal)
    else:
        h = mha(q_in, q_in, use_causal_mask=causal)
    h = L.GlobalAveragePooling1D()(h)
    model = keras.Model(inputs, L.Dense(K, use_bias=bias, name="out")(h))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0, 0.5, w.shape) if not w.path.endswith("bias") else
                       rng.uniform(-0.3, 0.3, w.shape) for w in model.weights])
    return model


def oracle(model, xq, xv, attention, causal):
    """(R at the query input, R at the value input, logits) for one sample."""
    mha, dense = model.get_layer("mha"), model.get_layer("out")
    names = ["query", "key", "value", "attention_output"]
    W, B = {}, {}
    for n in names:
        sub = {"query": mha._query_dense, "key": mha._key_dense, "value": mha._value_dense,
               "attention_output": mha._output_dense}[n]
        w = [np.asarray(a, np.float64) for a in sub.get_weights()]
        W[n] = w[0]
        B[n] = w[1] if len(w) > 1 else np.zeros(w[0].shape[1:] if n != "attention_output"
                                                 else w[0].shape[-1:])
    q = np.einsum("tc,chk->thk", xq, W["query"]) + B["query"]
    k = np.einsum("sc,chk->shk", xv, W["key"]) + B["key"]
    v = np.einsum("sc,chk->shk", xv, W["value"]) + B["value"]
    scale = 1 / np.sqrt(KD)
    qs, kT = (q * scale).transpose(1, 0, 2), k.transpose(1, 2, 0)  # (h, t, k), (h, k, s)
    scores = qs @ kT  # (h, t, s)
    A = ref.softmax(scores, np.triu(np.ones(scores.shape[1:], bool), 1) if causal else None)
    ctx = (A @ v.transpose(1, 0, 2)).transpose(1, 0, 2)  # (t, h, j)
    out = np.einsum("thj,hje->te", ctx, W["attention_output"]) + B["attention_output"]
    g = out.mean(axis=0)
    wd = [np.asarray(a, np.float64) for a in dense.get_weights()]
    bd = wd[1] if len(wd) > 1 else np.zeros(K)
    logits = g @ wd[0] + bd
    R = np.zeros(K)
    R[np.argmax(logits)] = logits.max()
    R_g = ref.epsilon_rule(g, wd[0], bd, R, EPS)
    R_out = (out / len(xq)) / ref._stab(g) * R_g  # average pooling: proportional
    Wo = W["attention_output"].reshape(H * KD, -1)
    R_ctx = np.stack([ref.epsilon_rule(ctx[t].reshape(-1), Wo, B["attention_output"], R_out[t],
                                       EPS) for t in range(len(xq))]).reshape(ctx.shape)
    R_A, R_v = ref.matmul_rule(A, v.transpose(1, 0, 2), R_ctx.transpose(1, 0, 2), attention, EPS)
    R_v = R_v.transpose(1, 0, 2)
    if attention == "attnlrp":
        R_qs, R_kT = ref.matmul_rule(qs, kT, ref.softmax_rule(scores, A, R_A), attention, EPS)
        R_q, R_k = R_qs.transpose(1, 0, 2), R_kT.transpose(2, 0, 1)
    else:
        R_q = R_k = None

    def project(x, name, r):
        Wf = W[name].reshape(D, -1)
        return np.stack([ref.epsilon_rule(x[t], Wf, B[name].reshape(-1), r[t].reshape(-1), EPS)
                         for t in range(len(x))])

    R_xv = project(xv, "value", R_v)
    R_xq = np.zeros_like(xq)
    if R_q is not None:
        R_xq = project(xq, "query", R_q)
        R_xv = R_xv + project(xv, "key", R_k)
    return R_xq, R_xv, logits


CASES = [(bias, causal, cross, attention) for bias in (True, False) for causal in (False, True)
         for cross in (False, True) for attention in ("attnlrp", "cp")]


@pytest.mark.parametrize("bias, causal, cross, attention", CASES,
                         ids=[f"{'bias' if b else 'nobias'}-{'causal' if c else 'full'}-"
                              f"{'cross' if x else 'self'}-{a}" for b, c, x, a in CASES])
def test_matches_numpy_oracle(float64, bias, causal, cross, attention):
    model = build(bias, causal, cross)
    rng = np.random.default_rng(7)
    xq = rng.normal(size=(3, T, D))
    xv = rng.normal(size=(3, S, D)) if cross else xq
    x = [xq, xv] if cross else xq
    got = keras_lrp.create_analyzer("lrp.epsilon", model, attention=attention).analyze(x)
    rows = [oracle(model, a, b, attention, causal) for a, b in zip(xq, xv)]
    # the oracle's forward pass is Keras' (whose fused dot_product_attention path rounds at
    # ~1e-8 relative even in float64)
    assert_close(np.stack([r[2] for r in rows]), model.predict(x, verbose=0), rtol=1e-7, atol=1e-9)
    if cross:
        for part, k in zip(got, (0, 1)):
            expected = np.stack([r[k] for r in rows])
            assert_close(part, expected, rtol=1e-6, atol=1e-7 * max(np.abs(expected).max(), 1e-30))
    else:
        expected = np.stack([r[0] + r[1] for r in rows])  # query, key and value are one tensor
        assert_close(got, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())


@pytest.mark.parametrize("causal", [False, True])
def test_cp_lrp_conserves_without_bias(float64, causal):
    """CP-LRP holds the attention weights constant: with every bias zero and ε = 1e-30 the input
    relevance sums to the explained logit; AttnLRP's softmax rule does not conserve."""
    model = build(False, causal)
    x = np.random.default_rng(1).normal(size=(4, T, D))
    logits = model.predict(x, verbose=0).max(axis=1)
    cp = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30,
                                   attention="cp").analyze(x)
    assert_close(cp.reshape(4, -1).sum(axis=1), logits, rtol=1e-10)
    attn = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30).analyze(x)
    assert np.abs(attn.reshape(4, -1).sum(axis=1) - logits).max() > 1e-3


def test_attention_option_errors():
    model = build(True)
    with pytest.raises(ValueError, match="attention must be one of attnlrp, cp; got 'full'"):
        keras_lrp.create_analyzer("lrp.epsilon", model, attention="full")
    i = keras.Input((T, D))
    gated = keras.Model(i, L.Dense(2)(L.GlobalAveragePooling1D()(
        L.MultiHeadAttention(2, 3, use_gate=True, name="gated")(i, i))))
    with pytest.raises(ValueError, match="Layer 'gated' uses a gate"):
        keras_lrp.create_analyzer("lrp.epsilon", gated)


# ------------------------------------------------------------------------ the shipped ViT
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vit():
    model = keras.models.load_model(REPO / "keras_lrp" / "demos" / "models" / "digits_vit.keras")
    data = np.load(REPO / "keras_lrp" / "demos" / "models" / "digits_test.npz")
    return model, data["x"], data["y"]


def test_shipped_vit_accuracy(vit):
    model, x, y = vit
    assert np.mean(model.predict(x, verbose=0).argmax(axis=1) == y) >= 0.95


def test_position_embedding_absorbs_its_share(vit):
    """The ViT adds Embedding(positions) to the patch tokens, the positions computed from the
    tokens' shape (zeros_like + arange). The Add splits relevance in proportion (the Z rule), the
    positions' share ends at zeros_like (it carries no relevance, like a bias), and the patch
    tokens keep exactly theirs: R_tokens = tokens / (tokens + P) · R_sum."""
    model, x, _ = vit
    lw = keras_lrp.create_analyzer("lrp.z", model).analyze(x[:4], layerwise=True)
    tokens = keras.Model(model.input, model.get_layer("tokens").output)(x[:4])
    position = model.get_layer("position").get_weights()[0]
    total = np.asarray(tokens) + position
    expected = np.asarray(tokens) / np.where(total == 0, 1, total) * lw["add_positions"]
    np.testing.assert_allclose(lw["tokens"], expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max())
    assert np.all(lw["get_item"] == 0)  # nothing flows back through the position computation


@pytest.mark.slow  # the whole demo task, ~20 s
def test_transformer_demo(tmp_path, vit):
    """The demo's AOPC table: AttnLRP's equals the one computed here, and every method beats the
    random ordering on the ViT."""
    from keras_lrp.analyzers import evaluate
    from keras_lrp.demos.transformer import run_transformer_demo

    aopc = run_transformer_demo(out_dir=tmp_path / "out",
                                models_dir=REPO / "keras_lrp" / "demos" / "models",
                                verbose=False)
    model, x, _ = vit
    a = keras_lrp.create_analyzer("lrp.z", model)
    forward = a.forward_model
    target = np.asarray(forward(x)).argmax(axis=1)
    curve = evaluate.pixel_flipping(lambda b: np.asarray(forward(b)), x, a.analyze(x),
                                    target=target, steps=16, perturbation="zero")
    np.testing.assert_allclose(aopc["AttnLRP (lrp.z)"], curve.mean_aopc(), rtol=1e-5)
    assert all(v > aopc["random (baseline)"] for k, v in aopc.items() if k != "random (baseline)")
    assert (tmp_path / "out" / "vit_heatmaps.png").read_bytes()[:4] == b"\x89PNG"
    assert "digits_vit on 360 test digits" in (tmp_path / "out" / "summary.txt").read_text()


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_causal_language_model_explains_a_chosen_position(float64, attention):
    """Next-token prediction: logits (batch, T, vocabulary); the explained neuron is chosen over
    the flattened output (position p, token k: index p·V + k). With a causal mask, the tokens
    after position p get exactly zero relevance, and the tokens up to p get some."""
    V = 7
    tokens_in = keras.Input((T,), dtype="int32")
    h = L.Embedding(V, D)(tokens_in)
    h = L.LayerNormalization()(L.Add()([h, L.MultiHeadAttention(H, KD)(h, h,
                                                                     use_causal_mask=True)]))
    model = keras.Model(tokens_in, L.Dense(V)(h))
    tokens = np.random.default_rng(0).integers(0, V, size=(4, T)).astype("int32")
    a = keras_lrp.create_analyzer("lrp.z", model, attention=attention,
                                  neuron_selection_mode="index")
    for p in (1, 3, T - 1):
        r = a.analyze(tokens, neuron_selection=p * V + np.arange(4) % V)
        assert r.shape == tokens.shape
        assert np.all(r[:, p + 1:] == 0.0)
        assert np.all(np.abs(r[:, :p + 1]).sum(axis=1) > 0)


def _dot_oracle(model, xq, xv, attention, causal):
    """keras.layers.Attention (dot scores × scale, no projections) → mean over tokens → Dense."""
    att, dense = model.get_layer("dot"), model.get_layer("out")
    scale = float(np.asarray(att.scale)) if att.scale is not None else 1.0
    scores = scale * xq @ xv.T  # (t, s)
    A = ref.softmax(scores, np.triu(np.ones(scores.shape, bool), 1) if causal else None)
    R_A, R_v, logits = ref.attention_pool_dense(A, xv, dense.get_weights(), attention)
    R_q = np.zeros_like(xq)
    if attention == "attnlrp":
        R_q, R_kT = ref.matmul_rule(scale * xq, xv.T, ref.softmax_rule(scores, A, R_A))
        R_v = R_v + R_kT.T  # the key is the value
    return R_q, R_v, logits


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("cross", [False, True])
def test_dot_attention_layer_matches_numpy_oracle(float64, attention, causal, cross):
    """keras.layers.Attention with a learned scale: the same AttnLRP / CP-LRP rules, relevance
    reaching the query and value inputs directly (lrp.z, so the oracle uses the Z rule)."""
    q_in = keras.Input((T, D))
    v_in = keras.Input((T if causal else S, D)) if cross else q_in
    layer = L.Attention(use_scale=True, name="dot")
    out = layer([q_in, v_in], use_causal_mask=causal)
    model = keras.Model([q_in, v_in] if cross else q_in,
                        L.Dense(K, name="out")(L.GlobalAveragePooling1D()(out)))
    rng = np.random.default_rng(5)
    model.set_weights([np.array(1.7)] + [rng.normal(0, 0.5, w.shape) for w in model.weights[1:]])
    xq = rng.normal(size=(3, T, D))
    xv = rng.normal(size=(3, T if causal else S, D)) if cross else xq
    x = [xq, xv] if cross else xq
    got = keras_lrp.create_analyzer("lrp.z", model, attention=attention).analyze(x)
    rows = [_dot_oracle(model, a, b, attention, causal) for a, b in zip(xq, xv)]
    assert_close(np.stack([r[2] for r in rows]), model.predict(x, verbose=0),
                 rtol=1e-10, atol=1e-12)
    expected = [np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])]
    if not cross:
        got, expected = [got], [expected[0] + expected[1]]
    for part, exp in zip(got, expected):
        assert_close(part, exp, rtol=1e-8, atol=1e-10 * np.abs(exp).max())


def test_dot_attention_concat_scores_refused():
    q = keras.Input((T, D))
    model = keras.Model(q, L.Dense(2)(L.GlobalAveragePooling1D()(
        L.Attention(score_mode="concat", name="cat")([q, q]))))
    with pytest.raises(ValueError, match="Layer 'cat' computes its scores with "
                                         "score_mode='concat'"):
        keras_lrp.create_analyzer("lrp.epsilon", model)
