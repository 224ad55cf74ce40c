"""The rules causal LMs need, on small functional models written in raw ``keras.ops``, against a
NumPy float64 reference written from the formulas (AttnLRP, Achtibat et al. 2024; CP-LRP, Ali et
al. 2022):

* an RMS norm in raw ops, x · rsqrt(mean(x²) + ε) · g, is found as one norm: the 1/rms factor is
  held constant (the identity rule), so relevance passes the norm unchanged;
* a gated MLP, up ⊙ silu(gate): the identity rule on SiLU; AttnLRP splits the product ½/½,
  CP-LRP holds the gate constant (all to up);
* a two-signal einsum (scores q·kᵀ, then A·v after a softmax): AttnLRP's ½/½ on both products and
  the softmax rule; CP-LRP holds A constant (all to v);
* a product with a constant table (RoPE-like) is linear.
"""
import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close
from keras import ops

import keras_lrp

L = keras.layers
D, F = 6, 5


def _silu(v):
    return v / (1 + np.exp(-v))


def _mlp_model():
    x = keras.Input((D,), name="x")
    h = L.Dense(D, use_bias=False, name="embed")(x)
    n = h * ops.rsqrt(ops.mean(ops.power(h, 2), axis=-1, keepdims=True) + 1e-6)
    n = n * ops.convert_to_tensor(np.linspace(0.5, 1.5, D))  # the norm's scale g
    up = L.Dense(F, use_bias=False, name="up")(n)
    gate = L.Dense(F, use_bias=False, name="gate")(n)
    y = L.Dense(1, use_bias=False, name="down")(ops.multiply(up, ops.silu(gate)))
    return keras.Model(x, y)


def _mlp_reference(model, x, attention):
    w = {layer.name: np.asarray(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")}
    h = x @ w["embed"]
    n = h / np.sqrt((h ** 2).mean(-1, keepdims=True) + 1e-6) * np.linspace(0.5, 1.5, D)
    up, gate = n @ w["up"], n @ w["gate"]
    act = _silu(gate)
    m = up * act
    r_m = ref.z_rule(m, w["down"], 0, m @ w["down"])
    r_act, r_up = ref.product_rule(act, up, r_m, "half" if attention == "attnlrp" else "signal")
    r_n = ref.z_rule(n, w["up"], 0, r_up) + ref.z_rule(n, w["gate"], 0, r_act)  # SiLU: identity
    return ref.z_rule(x, w["embed"], 0, r_n)  # identity through the norm


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_norm_and_gated_mlp(float64, attention):
    keras.utils.set_random_seed(0)
    model = _mlp_model()
    x = np.random.default_rng(1).normal(size=(4, D))
    a = keras_lrp.create_analyzer("lrp.z", model, attention=attention)
    assert_close(a.analyze(x), _mlp_reference(model, x, attention), rtol=1e-7, atol=1e-12)


def _attention_model(t=4, d=3):
    x = keras.Input((t, d), name="x")
    q = L.Dense(d, use_bias=False, name="q")(x)
    k = L.Dense(d, use_bias=False, name="k")(x)
    v = L.Dense(d, use_bias=False, name="v")(x)
    s = ops.einsum("btd,bsd->bts", q, k)
    a = ops.softmax(s, axis=-1)
    c = ops.einsum("bts,bsd->btd", a, v)
    return keras.Model(x, L.Dense(1, use_bias=False, name="out")(ops.sum(c, axis=1)))


def _attention_reference(model, x, attention, t=4, d=3):
    w = {layer.name: np.asarray(layer.kernel) for layer in model.layers if hasattr(layer, "kernel")}
    q, k, v = x @ w["q"], x @ w["k"], x @ w["v"]
    kT = np.swapaxes(k, 1, 2)
    s = q @ kT
    a = ref.softmax(s)
    c = a @ v
    pooled = c.sum(1)
    r_pooled = ref.z_rule(pooled, w["out"], 0, pooled @ w["out"])
    r_c = np.repeat(r_pooled[:, None, :], t, axis=1) * c / pooled[:, None, :]  # Z rule of the sum
    r_a, r_v_total = ref.matmul_rule(a, v, r_c, attention)
    r_q, r_kT = ref.matmul_rule(q, kT, ref.softmax_rule(s, a, r_a), attention)
    r_k = np.swapaxes(r_kT, 1, 2)
    return sum(ref.z_rule(x, w[n], 0, r) for n, r in zip("qkv", (r_q, r_k, r_v_total)))


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_raw_attention(float64, attention):
    keras.utils.set_random_seed(2)
    model = _attention_model()
    x = np.random.default_rng(3).normal(size=(2, 4, 3))
    a = keras_lrp.create_analyzer("lrp.z", model, attention=attention)
    got = a.analyze(x)
    assert_close(got, _attention_reference(model, x, attention), rtol=1e-7, atol=1e-12)
    if attention == "cp":  # bias-free and A held constant: conservative
        assert_close(got.sum((1, 2)), np.asarray(model(x))[:, 0], rtol=1e-9)


def test_log_softmax(float64):
    """LogSoftmaxRelevance against its formula: u = R/y, R_s = s ⊙ (u − A Σ u), with R the
    explained log-probability at its own entry."""
    keras.utils.set_random_seed(4)
    x = keras.Input((D,), name="x")
    s = L.Dense(F, use_bias=False, name="s")(x)
    model = keras.Model(x, keras_lrp.canonizers.forward_layers.LogSoftmax()(s))
    xs = np.random.default_rng(5).normal(size=(3, D))
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    got = a.analyze(xs, neuron_selection=[0, 2, 4])
    w = np.asarray(model.get_layer("s").kernel)
    sv = xs @ w
    y = sv - np.log(np.exp(sv).sum(-1, keepdims=True))
    r = np.zeros_like(y)
    r[np.arange(3), [0, 2, 4]] = y[np.arange(3), [0, 2, 4]]
    u = r / y
    a_ = np.exp(y)
    r_s = sv * (u - a_ * u.sum(-1, keepdims=True))
    assert_close(got, ref.z_rule(xs, w, 0, r_s), rtol=1e-9, atol=1e-14)


def _dpa_models(t=5, heads=4, kv=2, h=3, d=6):
    """(ops.dot_product_attention with grouped heads and a causal mask, the same written out in
    raw ops: repeat, einsum, where, softmax, einsum)."""
    x = keras.Input((t, d), name="x")
    q = L.Reshape((t, heads, h))(L.Dense(heads * h, use_bias=False, name="q")(x))
    k = L.Reshape((t, kv, h))(L.Dense(kv * h, use_bias=False, name="k")(x))
    v = L.Reshape((t, kv, h))(L.Dense(kv * h, use_bias=False, name="v")(x))
    fused = ops.dot_product_attention(q, k, v, scale=0.7, is_causal=True)
    kr, vr = ops.repeat(k, heads // kv, axis=2), ops.repeat(v, heads // kv, axis=2)
    s = ops.einsum("btnh,bsnh->bnts", q, kr) * 0.7
    s = ops.where(np.tril(np.ones((t, t), bool)), s, -1e9)
    c = ops.einsum("bnts,bsnh->btnh", ops.softmax(s, axis=-1), vr)
    out = L.Dense(1, use_bias=False, name="out")
    head = lambda a: out(ops.sum(L.Reshape((t, heads * h))(a), axis=1))  # noqa: E731
    return keras.Model(x, head(fused)), keras.Model(x, head(c))


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_dot_product_attention(float64, attention):
    """ops.dot_product_attention (keras-hub's attention on JAX and PyTorch) is expanded into the
    parts whose rules the raw-op reference above checks: the same relevance as the written-out
    attention on the same weights."""
    keras.utils.set_random_seed(6)
    fused, written = _dpa_models()
    x = np.random.default_rng(7).normal(size=(2, 5, 6))
    # the backends' fused op may round through float32 inside (5e-9 relative seen on TensorFlow)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x)),
                               keras.ops.convert_to_numpy(written(x)), rtol=1e-6)
    got = keras_lrp.create_analyzer("lrp.z", fused, attention=attention).analyze(x)
    want = keras_lrp.create_analyzer("lrp.z", written, attention=attention).analyze(x)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * np.abs(want).max())


def test_quantized_layer_is_refused():
    x = keras.Input((D,), name="x")
    dense = L.Dense(3, name="q8")
    model = keras.Model(x, dense(x))
    dense.quantize("int8")
    with pytest.raises(ValueError, match=r"'q8' \(Dense\) is quantized \(quantization_mode="):
        keras_lrp.create_analyzer("lrp.epsilon", model).analyze(np.ones((1, D), "float32"))


def test_rope_written_in_ops(float64):
    """RoPE in raw ops (split in halves, −x₂, concatenate, times constant cos/sin tables): a
    bias-free linear map, so with CP-LRP (attention weights constant) relevance is conserved,
    and it equals the Z rule through the rotation computed in NumPy."""
    keras.utils.set_random_seed(9)
    t, d = 4, 6
    x = keras.Input((t, d), name="x")
    h = L.Dense(d, use_bias=False, name="h")(x)
    angles = np.arange(t, dtype="float64")[:, None] * np.concatenate([[1.0, 0.5, 0.25]] * 2)
    cos, sin = np.cos(angles), np.sin(angles)  # constants (NumPy: PyTorch's dtypes confuse
    # Keras' symbolic dtype inference of x * c)
    a, b = ops.split(h, 2, axis=-1)
    rotated = h * cos + ops.concatenate([ops.negative(b), a], axis=-1) * sin
    model = keras.Model(x, L.Dense(1, use_bias=False, name="out")(ops.sum(rotated, axis=1)))
    xs = np.random.default_rng(10).normal(size=(3, t, d))
    got = keras_lrp.create_analyzer("lrp.z", model).analyze(xs)
    w_h, w_o = (np.asarray(model.get_layer(n).kernel) for n in ("h", "out"))
    hv = xs @ w_h
    ang = np.arange(t)[:, None] * np.concatenate([[1.0, 0.5, 0.25]] * 2)
    rot = np.concatenate([-hv[..., 3:], hv[..., :3]], -1)
    y = hv * np.cos(ang) + rot * np.sin(ang)
    pooled = y.sum(1)
    r_pooled = ref.z_rule(pooled, w_o, 0, pooled @ w_o)
    r_y = np.repeat(r_pooled[:, None], t, 1) * y / pooled[:, None]
    # the Add of the two terms (Z rule), then each term to h: h·cos keeps its share, the
    # rotated term's share goes back to the features it was copied from (with its sign)
    t1, t2 = hv * np.cos(ang), rot * np.sin(ang)
    r1, r2 = r_y * t1 / y, r_y * t2 / y
    r_h = r1 + np.concatenate([r2[..., 3:], r2[..., :3]], -1)
    assert_close(got, ref.z_rule(xs, w_h, 0, r_h), rtol=1e-7, atol=1e-12)
    assert_close(got.sum((1, 2)), np.asarray(model(xs))[:, 0], rtol=1e-9)
