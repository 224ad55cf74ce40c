"""Layers without a kernel, against NumPy float64 computed from the documented formulas.

Covered: LayerNormalization (σ held constant: the Z rule on an affine map), Multiply as a gate
(squeeze-and-excitation, sigmoid and hard-sigmoid gates), element-wise preprocessing (Rescaling,
Normalization: identity for relevance, but *not* sign-preserving), keras.ops called in functional
code (Add/Subtract proportional, ops with a constant identity), a node reading one tensor twice,
keras.applications' LayerScale and CustomScaleLayer, and ``register_layer``.

Every reference below is written in NumPy from the formula in the docstring of the relevance
layer it checks (``keras_lrp/rules/structural.py``), with kernel layers through the independent
rule functions of ``tests/reference.py``. No TensorFlow is used in a reference; where a
reference needs a forward value it is recomputed in NumPy and the NumPy forward is first checked
against the Keras model.

Tolerances: float64 throughout. The engine and the reference compute the same sums in another
order, so each layer adds a few ulps (~1e-16) of its largest term, amplified by 1/|denominator|.
Every denominator used here (Dense/Conv z, LayerNorm outputs, Add/Subtract/CustomScale outputs)
is asserted to be at least COND = 1e-3 of the sum of the absolute values of its terms, so over
<= 4 layers the expected discrepancy is <~ 1e-12 relative: rtol 1e-9 keeps a 1000x margin while
any wrong formula (a dropped x⁻ term, σ not held constant, relevance sent into a gate, a
doubled self-add) is off by O(1e-2) or more. ATOL = 1e-11 only covers entries that cancel to ~0
(relevances here are O(0.1-10)). Pure pass-throughs (identity relevance) are compared exactly.
"""

from types import SimpleNamespace as types_ns

import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close

import keras_lrp
from keras_lrp.composites import Composite  # noqa: E402
from keras_lrp.composites.registry import REGISTRY  # noqa: E402
from keras_lrp.core import types
from keras_lrp.layers import IdentityRelevance, RelevanceLayer  # noqa: E402

L = keras.layers
RTOL, ATOL = 1e-9, 1e-11
COND = 1e-3
BATCH = 2

RMS_WARNING = "ignore:You passed `rms_scaling=True`"


# ============================================================== helpers
def _signed(g, n, low=0.2, high=1.0):
    """n values with |v| in [low, high] and random signs."""
    return g.uniform(low, high, size=n) * g.choice([-1.0, 1.0], size=n)


def _set_dense(layer, g, bias=True, scale=1.0):
    kernel = g.normal(size=tuple(layer.kernel.shape)) * scale
    if layer.use_bias:
        layer.set_weights([kernel, _signed(g, int(layer.bias.shape[0]), 0.1, 0.5) if bias
                           else np.zeros(int(layer.bias.shape[0]))])
    else:
        layer.set_weights([kernel])


def _weights(layer):
    w = [np.asarray(v, np.float64) for v in layer.get_weights()]
    return w[0], (w[1] if len(w) > 1 else np.zeros(w[0].shape[-1]))


def _cond_ok(terms, extra=0.0):
    """|Σ terms + extra| >= COND · (Σ |terms| + |extra|) per column (terms: (D, M))."""
    terms = np.asarray(terms, np.float64)
    den = terms.sum(axis=0) + extra
    scale = np.abs(terms).sum(axis=0) + np.abs(extra)
    return bool(np.all(np.abs(den) >= COND * scale))


def _check_dense(x, W, b, name):
    """The denominators z_j = Σ_i x_i w_ij + b_j are well conditioned (pass b = 0 for the
    bias-free Z rule)."""
    assert _cond_ok(x[:, None] * W, b), f"ill-conditioned data at {name}: reseed"


def _start(logits):
    """Relevance entering at the output: the max logit, one-hot."""
    R = np.zeros_like(logits)
    k = int(np.argmax(logits))
    R[k] = logits[k]
    return R


def _layerwise(name, model, x, **kwargs):
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    return analyzer.analyze(x, layerwise=True)


@pytest.fixture
def registry():
    """Registrations made in the test are undone afterwards (they are process-wide)."""
    with REGISTRY.scoped():
        yield REGISTRY


def _relevance_class(layer, n_inputs=1):
    """The relevance layer class the default composite gives a single node calling ``layer``."""
    return Composite().rule_for(types_ns(layer=layer, inputs=list(range(n_inputs))), None)


def _op_name(tensor):
    """The layerwise key of a tensor produced by a raw keras.ops call."""
    return tensor._keras_history.operation.name


def _relu(v):
    return np.maximum(v, 0.0)


def _close(got, expected, msg=""):
    assert_close(np.asarray(got, np.float64).reshape(-1),
                 np.asarray(expected, np.float64).reshape(-1), rtol=RTOL, atol=ATOL, err_msg=msg)


def _rules(name):
    """(create_analyzer kwargs, reference rule for kernel layers)."""
    if name == "lrp.z":
        return {}, lambda x, W, b, R: ref.z_rule(x, W, b, R, bias=True)
    if name == "lrp.epsilon":  # a large ε so that the two analyzers really differ on Dense
        return {"epsilon": 0.05}, lambda x, W, b, R: ref.epsilon_rule(x, W, b, R, 0.05)
    if name == "lrp.z_IB":
        return {}, lambda x, W, b, R: ref.z_rule(x, W, b, R, bias=False)
    if name == "lrp.alpha_2_beta_1":
        return {}, lambda x, W, b, R: ref.alphabeta_rule(x, W, b, R, 2.0, 1.0, bias=True)
    raise ValueError(name)


# ============================================================== 1. LayerNormalization
LN_EPS = 1e-3
LN_VARIANTS = {
    "center_scale": dict(center=True, scale=True),
    "scale_only": dict(center=False, scale=True),
    "center_only": dict(center=True, scale=False),
    "neither": dict(center=False, scale=False),
    "rms_scaling": dict(rms_scaling=True),
}


def ln_forward(x, gamma, beta, rms):
    return ref.layernorm_forward(x, gamma, beta, LN_EPS, rms)


def ln_relevance(x, gamma, beta, R, rms):
    """ref.layernorm_rule, on data whose LayerNorm outputs are well conditioned."""
    contrib = x[:, None] * ref.layernorm_matrix(x, gamma, LN_EPS, rms).T
    assert _cond_ok(contrib, beta), "ill-conditioned LayerNorm output: reseed"
    return ref.layernorm_rule(x, gamma, beta, R, LN_EPS, rms)


def _ln_params(ln, g, zero_beta):
    """Random γ (signed, so sign handling is exercised) and β; β = 0 when asked."""
    shape = tuple(ln.gamma.shape) if ln.gamma is not None else (
        tuple(ln.beta.shape) if ln.beta is not None else None)
    weights, gamma, beta = [], None, None
    if ln.gamma is not None:
        gamma = _signed(g, int(np.prod(shape)), 0.5, 1.5).reshape(shape)
        weights.append(gamma)
    if ln.beta is not None:
        beta = np.zeros(shape) if zero_beta else g.normal(size=shape) * 0.5
        weights.append(beta)
    ln.set_weights(weights)
    return gamma, beta


def build_ln_mlp(variant, seed=11, zero_beta=False):
    """Input(6) → Dense(5) → LayerNormalization → ReLU → Dense(3)."""
    g = np.random.default_rng(seed)
    i = keras.Input((6,), name="x")
    d1, relu, out = L.Dense(5, name="d1"), L.ReLU(name="relu"), L.Dense(3, name="out")
    ln = L.LayerNormalization(epsilon=LN_EPS, name="ln", **LN_VARIANTS[variant])
    model = keras.Model(i, out(relu(ln(d1(i)))))
    _set_dense(d1, g)
    gamma, beta = _ln_params(ln, g, zero_beta)
    _set_dense(out, g)
    gamma = np.ones(5) if gamma is None else gamma
    beta = np.zeros(5) if beta is None else beta
    return model, g.normal(size=(BATCH, 6)), gamma, beta


def ln_mlp_reference(model, x, gamma, beta, rms, rule):
    """Expected layerwise relevance of one sample, every layer by hand."""
    W1, b1 = _weights(model.get_layer("d1"))
    Wo, bo = _weights(model.get_layer("out"))
    h1 = x @ W1 + b1
    y = ln_forward(h1, gamma, beta, rms)
    h2 = _relu(y)
    logits = h2 @ Wo + bo
    _check_dense(x, W1, b1, "d1")
    _check_dense(h2, Wo, bo, "out")
    R = {"out": _start(logits)}
    R["relu"] = rule(h2, Wo, bo, R["out"])
    R["ln"] = R["relu"]  # element-wise activation: unchanged
    R["d1"] = ln_relevance(h1, gamma, beta, R["ln"], rms)
    R["x"] = rule(x, W1, b1, R["d1"])
    return logits, R


@pytest.mark.filterwarnings(RMS_WARNING)
@pytest.mark.parametrize("rule_name", ["lrp.z", "lrp.epsilon"])
@pytest.mark.parametrize("variant", list(LN_VARIANTS))
def test_layernorm_mlp_matches_reference(float64, variant, rule_name):
    model, x, gamma, beta = build_ln_mlp(variant)
    rms = variant == "rms_scaling"
    kwargs, rule = _rules(rule_name)
    got = _layerwise(rule_name, model, x, **kwargs)
    assert set(got) == {"x", "d1", "ln", "relu", "out"}
    for n in range(BATCH):
        logits, expected = ln_mlp_reference(model, x[n], gamma, beta, rms, rule)
        # the NumPy forward is the model's (so the reference sees the right values)
        assert_close(np.asarray(model(x[n:n + 1]))[0], logits, rtol=1e-12, atol=1e-13)
        for key, value in expected.items():
            _close(got[key][n], value, f"{variant}, {rule_name}: layer {key!r}, sample {n}")


@pytest.mark.filterwarnings(RMS_WARNING)
@pytest.mark.parametrize("variant", ["center_scale", "center_only", "scale_only",
                                     "rms_scaling"])
def test_layernorm_conserves_with_zero_beta_and_absorbs_beta_share(float64, variant):
    """Σ_k R_k = Σ_i (y_i − β_i)/y_i · R_i: exactly Σ_i R_i when β = 0; otherwise the LN keeps
    the bias share Σ_i β_i / y_i · R_i."""
    for zero_beta in (True, False):
        model, x, gamma, beta = build_ln_mlp(variant, zero_beta=zero_beta)
        got = _layerwise("lrp.z", model, x)
        W1, b1 = _weights(model.get_layer("d1"))
        for n in range(BATCH):
            r_in, r_out = got["d1"][n].sum(), got["ln"][n].sum()
            y = ln_forward(x[n] @ W1 + b1, gamma, beta, variant == "rms_scaling")
            share = np.sum(beta / y * got["ln"][n])
            total = np.abs(got["ln"][n]).sum()
            assert_close(r_out - r_in, share, rtol=1e-9, atol=1e-12 * total, scale=total)
            if zero_beta:
                assert_close(r_in, r_out, rtol=1e-12)
        if not zero_beta and variant in ("center_scale", "center_only"):
            assert abs(r_out - r_in) > 1e-3  # β really absorbs something here


@pytest.mark.parametrize("axis", [-1, (1, 2, 3)], ids=["channels", "all"])
@pytest.mark.parametrize("center", [True, False])
def test_layernorm_on_conv_feature_map(float64, axis, center):
    """Input(4,4,2) → Conv2D(3, 3, same) → LayerNormalization(axis) → ReLU → Flatten → Dense(3):
    relevance at the LN's input from the engine's relevance at its output, by NumPy: per pixel
    over the 3 channels (axis=-1), or over all 48 values (axis=(1, 2, 3))."""
    g = np.random.default_rng(21)
    i = keras.Input((4, 4, 2), name="x")
    conv = L.Conv2D(3, 3, padding="same", name="c")
    ln = L.LayerNormalization(axis=axis, epsilon=LN_EPS, center=center, name="ln")
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(L.Flatten(name="flat")(L.ReLU(name="relu")(ln(conv(i))))))
    _set_dense(conv, g)
    gamma, beta = _ln_params(ln, g, zero_beta=False)
    _set_dense(out, g, scale=0.5)
    x = g.normal(size=(BATCH, 4, 4, 2))
    got = _layerwise("lrp.z", model, x)
    kernel, bias = _weights(conv)
    Wc, shape = ref.conv_matrix(kernel, (4, 4, 2), 1, "same", 1)
    assert shape == (4, 4, 3)
    beta = np.zeros(gamma.shape) if beta is None else beta
    for n in range(BATCH):
        h = (x[n].reshape(-1) @ Wc + ref.expand_bias(bias, shape)).reshape(shape)
        R_out = got["ln"][n]
        if axis == -1:
            expected = np.stack([
                np.stack([ln_relevance(h[r, c], gamma, beta, R_out[r, c], rms=False)
                          for c in range(4)]) for r in range(4)])
            y = np.stack([np.stack([ln_forward(h[r, c], gamma, beta, False) for c in range(4)])
                          for r in range(4)])
        else:
            expected = ln_relevance(h.reshape(-1), gamma.reshape(-1), beta.reshape(-1),
                                    R_out.reshape(-1), rms=False)
            y = ln_forward(h.reshape(-1), gamma.reshape(-1), beta.reshape(-1), False)
        # the NumPy forward is the layer's
        sub = keras.Model(i, ln.output)
        assert_close(np.asarray(sub(x[n:n + 1]))[0].reshape(-1), y.reshape(-1),
                     rtol=1e-12, atol=1e-13)
        assert np.abs(R_out).max() > 1e-3
        _close(got["c"][n], expected, f"LN axis={axis}, center={center}, sample {n}")


# ============================================================== 2. Multiply as a gate
def build_se(order, multiply="layer", seed=34):
    """Squeeze-and-excitation: x → Conv2D(6, 3, relu) = s; GAP(keepdims) → Conv2D(6, 1, sigmoid)
    = gate; Multiply(s, gate) (in the given order) → Flatten → Dense(3)."""
    g = np.random.default_rng(seed)
    i = keras.Input((4, 4, 3), name="x")
    sig = L.Conv2D(6, 3, padding="same", activation="relu", name="sig")
    gap = L.GlobalAveragePooling2D(keepdims=True, name="gap")
    gate = L.Conv2D(6, 1, activation="sigmoid", name="gate")
    s = sig(i)
    gt = gate(gap(s))
    pair = [s, gt] if order == "signal_first" else [gt, s]
    m = L.Multiply(name="mul")(pair) if multiply == "layer" else keras.ops.multiply(*pair)
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(L.Flatten(name="flat")(m)))
    # a positive bias keeps most of the signal's ReLUs on
    sig.set_weights([g.normal(size=(3, 3, 3, 6)) * 0.4, g.uniform(0.3, 0.8, size=6)])
    _set_dense(gate, g)
    _set_dense(out, g, scale=0.5)
    mul_key = "mul" if multiply == "layer" else _op_name(m)
    return model, g.normal(size=(BATCH, 4, 4, 3)), mul_key


def se_reference(model, x):
    """NumPy forward and lrp.z relevance of the SE network for one sample."""
    kc, bc = _weights(model.get_layer("sig"))
    Wc, shape = ref.conv_matrix(kc, (4, 4, 3), 1, "same", 1)
    bc = ref.expand_bias(bc, shape)
    kg, bg = _weights(model.get_layer("gate"))
    Wo, bo = _weights(model.get_layer("out"))
    xf = x.reshape(-1)
    pre = xf @ Wc + bc
    s = _relu(pre).reshape(shape)
    pooled = s.mean(axis=(0, 1))
    gate = ref.sigmoid(pooled @ kg.reshape(6, 6) + bg)
    m = (s * gate).reshape(-1)  # the gate broadcast over the 4x4 positions
    logits = m @ Wo + bo
    _check_dense(xf, Wc, bc, "sig")
    _check_dense(m, Wo, bo, "out")
    R = {"out": _start(logits)}
    R["flat"] = ref.z_rule(m, Wo, bo, R["out"])
    R["mul"] = R["flat"]
    R["sig_activation"] = R["mul"]  # the whole relevance goes to the signal ...
    R["gate_activation"] = np.zeros(6)  # ... none to the gate
    R["gate"] = np.zeros(6)
    R["gap"] = np.zeros(6)
    R["sig"] = R["sig_activation"]
    R["x"] = ref.z_rule(xf, Wc, bc, R["sig"])
    return logits, R


@pytest.mark.parametrize("multiply", ["layer", "ops"])
@pytest.mark.parametrize("order", ["signal_first", "gate_first"])
def test_squeeze_excitation_gate_gets_nothing(float64, order, multiply):
    model, x, mul_key = build_se(order, multiply)
    got = _layerwise("lrp.z", model, x)
    assert set(got) == {"x", "sig", "sig_activation", "gap", "gate", "gate_activation",
                        mul_key, "flat", "out"}
    for n in range(BATCH):
        logits, expected = se_reference(model, x[n])
        assert_close(np.asarray(model(x[n:n + 1]))[0], logits, rtol=1e-12)
        expected[mul_key] = expected.pop("mul")
        for key, value in expected.items():
            _close(got[key][n], value, f"SE {order}/{multiply}: layer {key!r}, sample {n}")
    # exact: the signal's relevance is the product's (plus exact zeros from the gate branch)
    np.testing.assert_array_equal(got["sig_activation"], got[mul_key])
    for key in ("gate_activation", "gate", "gap"):
        np.testing.assert_array_equal(got[key], 0.0)
    assert np.abs(got[mul_key]).max() > 1e-2


def _equal_shape_gate_model(gate_fn, order, seed=41):
    """x → Conv2D(6, relu) = s; x → Conv2D(6) = t; gate = gate_fn(t);
    Multiply(s, gate) (equal shapes) → Flatten → Dense(3)."""
    g = np.random.default_rng(seed)
    i = keras.Input((4, 4, 3), name="x")
    sig = L.Conv2D(6, 3, padding="same", activation="relu", name="sig")
    pre = L.Conv2D(6, 3, padding="same", name="gpre")
    s, t = sig(i), pre(i)
    gt = gate_fn(t)
    m = L.Multiply(name="mul")([s, gt] if order == "signal_first" else [gt, s])
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(L.Flatten(name="flat")(m)))
    sig.set_weights([g.normal(size=(3, 3, 3, 6)) * 0.4, g.uniform(0.3, 0.8, size=6)])
    _set_dense(pre, g)
    _set_dense(out, g, scale=0.5)
    return model, g.normal(size=(BATCH, 4, 4, 3))


def _check_equal_shape_gate(model, x, gate_keys):
    """Relevance at the signal = at the product; 0 in the gate branch; at the input, the signal
    conv's Z rule only (the gate conv, also fed by x, contributes exactly 0)."""
    got = _layerwise("lrp.z", model, x)
    np.testing.assert_array_equal(got["sig_activation"], got["mul"])
    for key in gate_keys:
        np.testing.assert_array_equal(got[key], 0.0, err_msg=key)
    kc, bc = _weights(model.get_layer("sig"))
    Wc, shape = ref.conv_matrix(kc, (4, 4, 3), 1, "same", 1)
    bc = ref.expand_bias(bc, shape)
    for n in range(BATCH):
        xf = x[n].reshape(-1)
        _check_dense(xf, Wc, bc, "sig")
        _close(got["x"][n], ref.z_rule(xf, Wc, bc, got["sig"][n].reshape(-1)), f"sample {n}")
    assert np.abs(got["mul"]).max() > 1e-2
    return got


def _gate_branch(model):
    """The names of every operation of the gate branch (all but x, sig, mul, flat, out)."""
    return [op.name for op in model.operations if op.name not in ("x", "sig", "mul", "flat", "out")]


@pytest.mark.parametrize("order", ["signal_first", "gate_first"])
def test_sigmoid_gate_of_equal_shape(float64, order):
    gate = L.Activation("sigmoid", name="gsig")
    model, x = _equal_shape_gate_model(gate, order)
    _check_equal_shape_gate(model, x, ["gsig", "gpre"])


@pytest.mark.parametrize("order", ["signal_first", "gate_first"])
def test_fused_sigmoid_gate_of_equal_shape(float64, order):
    """The gate is a Conv2D with a fused sigmoid (split off by canonicalisation)."""
    g = np.random.default_rng(42)
    i = keras.Input((4, 4, 3), name="x")
    sig = L.Conv2D(6, 3, padding="same", activation="relu", name="sig")
    gate = L.Conv2D(6, 3, padding="same", activation="sigmoid", name="gate")
    s = sig(i)
    gt = gate(s)
    m = L.Multiply(name="mul")([s, gt] if order == "signal_first" else [gt, s])
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(L.Flatten(name="flat")(m)))
    sig.set_weights([g.normal(size=(3, 3, 3, 6)) * 0.4, g.uniform(0.3, 0.8, size=6)])
    _set_dense(gate, g, scale=0.3)
    _set_dense(out, g, scale=0.5)
    x = g.normal(size=(BATCH, 4, 4, 3))
    got = _layerwise("lrp.z", model, x)
    # the signal feeds the gate too: that path adds exactly 0
    np.testing.assert_array_equal(got["sig_activation"], got["mul"])
    np.testing.assert_array_equal(got["gate_activation"], 0.0)
    np.testing.assert_array_equal(got["gate"], 0.0)


def _hard_sigmoid_relu_layer(t):
    """MobileNetV3's hard sigmoid: ReLU(6)(t + 3) · 1/6, as raw ops and a ReLU layer."""
    return L.ReLU(6.0, name="r6")(t + 3.0) * (1.0 / 6.0)


def _hard_sigmoid_rescaling(t):
    return L.Rescaling(1.0 / 6.0, name="div6")(
        L.ReLU(6.0, name="r6")(L.Rescaling(1.0, offset=3.0, name="plus3")(t)))


@pytest.mark.parametrize("gate_fn", [_hard_sigmoid_relu_layer, _hard_sigmoid_rescaling],
                         ids=["ops_and_relu_layer", "rescaling_layers"])
@pytest.mark.parametrize("order", ["signal_first", "gate_first"])
def test_hard_sigmoid_gate_is_recognised(float64, order, gate_fn):
    model, x = _equal_shape_gate_model(gate_fn, order)
    names = _gate_branch(model)
    assert "r6" in names and "gpre" in names
    _check_equal_shape_gate(model, x, names)


@pytest.mark.parametrize("order", ["signal_first", "gate_first"])
def test_hard_sigmoid_gate_from_relu6_activation(float64, order):
    model, x = _equal_shape_gate_model(
        lambda t: L.Activation("relu6", name="r6")(t + 3.0) / 6.0, order)
    _check_equal_shape_gate(model, x, _gate_branch(model))


def test_raw_relu6_op_builds_a_gate_without_registration(float64):
    """keras.ops.relu6 called directly is an element-wise activation keras-lrp knows, and
    relu6(t + 3)/6 is recognised as a (hard-sigmoid) gate."""
    model, x = _equal_shape_gate_model(lambda t: keras.ops.relu6(t + 3.0) / 6.0, "signal_first")
    _check_equal_shape_gate(model, x, _gate_branch(model))


def test_hard_sigmoid_gate_from_registered_raw_relu6(float64, registry):
    keras_lrp.register_layer(keras.src.ops.nn.Relu6, IdentityRelevance)
    model, x = _equal_shape_gate_model(lambda t: keras.ops.relu6(t + 3.0) / 6.0,
                                       "signal_first")
    _check_equal_shape_gate(model, x, _gate_branch(model))


@pytest.mark.parametrize("multiply", ["layer", "ops"])
def test_product_of_two_signals_splits_uniformly(float64, multiply):
    """A product of two signals, neither a gate (a gated MLP's up ⊙ act(gate) when both are
    activated): AttnLRP's uniform rule, half of the product's relevance to each factor
    (keras_lrp.layers.products.ProductRelevance), then the Z rule through the Dense layers,
    against NumPy."""
    keras.utils.set_random_seed(1)
    i = keras.Input((5,), name="x")
    a = L.Dense(4, activation="relu", name="a")(i)
    b = L.Dense(4, activation="relu", name="b")(i)
    m = L.Multiply(name="prod")([a, b]) if multiply == "layer" else keras.ops.multiply(a, b)
    model = keras.Model(i, L.Dense(3, name="out")(m))
    x = np.random.default_rng(2).normal(size=(4, 5))
    got = keras_lrp.create_analyzer("lrp.z", model).analyze(x)
    (wa, ba), (wb, bb), (wo, bo) = (model.get_layer(n).get_weights() for n in ("a", "b", "out"))
    za, zb = x @ wa + ba, x @ wb + bb
    ya, yb = np.maximum(za, 0), np.maximum(zb, 0)
    prod = ya * yb
    out = prod @ wo + bo
    r_out = np.where(out == out.max(1, keepdims=True), out, 0.0)
    r_prod = prod * ((r_out / out) @ wo.T)
    r_ya, r_yb = ref.product_rule(ya, yb, r_prod, "half")
    with np.errstate(divide="ignore", invalid="ignore"):
        r_a = np.where(za > 0, r_ya, 0.0)  # ReLU: identity where it passes
        r_b = np.where(zb > 0, r_yb, 0.0)
        want = x * ((np.nan_to_num(r_a / za)) @ wa.T) + x * ((np.nan_to_num(r_b / zb)) @ wb.T)
    assert_close(got, want, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_product_with_an_activated_factor_follows_the_attention_mode(float64, attention):
    """up ⊙ gelu(gate), a gated MLP's product: the composite's attention mode reaches the
    product's relevance layer through the context. AttnLRP gives each factor half; CP-LRP
    holds the activated factor constant, so the linear one gets all of it. Against NumPy."""
    keras.utils.set_random_seed(3)
    i = keras.Input((5,), name="x")
    a = L.Dense(4, name="up")(i)
    b = L.Dense(4, activation="gelu", name="gate")(i)
    model = keras.Model(i, L.Dense(3, name="out")(keras.ops.multiply(a, b)))
    x = np.random.default_rng(4).normal(size=(4, 5))
    got = keras_lrp.create_analyzer("lrp.z", model, attention=attention).analyze(x)
    (wa, ba), (wb, bb), (wo, bo) = (model.get_layer(n).get_weights() for n in
                                    ("up", "gate", "out"))
    za, zb = x @ wa + ba, x @ wb + bb
    yb = keras.ops.convert_to_numpy(keras.activations.gelu(zb))  # Keras' gelu, float64
    prod = za * yb
    out = prod @ wo + bo
    r_out = np.where(out == out.max(1, keepdims=True), out, 0.0)
    r_prod = prod * ((r_out / out) @ wo.T)
    share_a, share_b = (0.5, 0.5) if attention == "attnlrp" else (1.0, 0.0)
    want = x * (((share_a * r_prod) / za) @ wa.T) + x * (((share_b * r_prod) / zb) @ wb.T)
    assert_close(got, want, rtol=1e-7, atol=1e-12)  # float64 in float32 off TensorFlow


# ============================================================== 3. element-wise preprocessing
MEAN = np.array([0.5, -1.0, 2.0, 0.0, 1.0, -0.5])
VAR = np.array([0.25, 4.0, 1.0, 2.0, 0.5, 1.5])
#: Keras' Rescaling casts its Python-float scale through float32 even under a float64 policy
#: (1/255 becomes float32(1/255), a relative change of ~1e-8): the reference uses that value.
SCALE_255 = float(np.float32(1.0 / 255))
PREPROCESSING = {
    "rescaling": (lambda: L.Rescaling(1.0 / 255, offset=-1.0, name="pre"),
                  lambda v: v * SCALE_255 - 1.0),
    "normalization": (lambda: L.Normalization(mean=MEAN, variance=VAR, name="pre"),
                      lambda v: (v - MEAN) / np.sqrt(VAR)),
}


@pytest.mark.parametrize("kind", list(PREPROCESSING))
def test_preprocessing_passes_relevance_unchanged(float64, kind):
    """Input → preprocessing → Dense(4, relu) → Dense(3): relevance at the input equals the
    relevance at the preprocessing layer's output, which is the Z rule of d1 on the
    preprocessed values."""
    g = np.random.default_rng(51)
    make, fn = PREPROCESSING[kind]
    i = keras.Input((6,), name="x")
    d1, out = L.Dense(4, activation="relu", name="d1"), L.Dense(3, name="out")
    model = keras.Model(i, out(d1(make()(i))))
    _set_dense(d1, g, scale=0.5)
    _set_dense(out, g)
    x = g.uniform(0, 255, size=(BATCH, 6)) if kind == "rescaling" else g.normal(size=(BATCH, 6))
    got = _layerwise("lrp.z", model, x)
    np.testing.assert_array_equal(got["x"], got["pre"])
    W1, b1 = _weights(d1)
    assert_close(np.asarray(model.get_layer("pre")(x)), fn(x), rtol=1e-15, atol=1e-15)
    for n in range(BATCH):
        p = fn(x[n])
        _check_dense(p, W1, b1, "d1")
        _close(got["pre"][n], ref.z_rule(p, W1, b1, got["d1_activation"][n]), f"sample {n}")
    assert np.abs(got["x"]).max() > 1e-2


SHIFTS = {
    "rescaling": lambda t: L.Rescaling(1.0, offset=-0.5, name="shift")(t),
    "normalization": lambda t: L.Normalization(mean=0.5, variance=1.0, name="shift")(t),
    "ops_add_constant": lambda t: keras.ops.add(t, -0.5),
    "ops_subtract_constant": lambda t: t - 0.5,
}


def _alphabeta_assuming_nonnegative(x, W, b, R, alpha=2.0, beta=1.0):
    """What AlphaBeta(2, 1) would give if x were wrongly assumed ≥ 0 (the x⁻ terms skipped:
    P = x w⁺, N = x w⁻ on the raw x). Used only to show the data tells the two apart."""
    P = x[:, None] * np.maximum(W, 0)
    N = x[:, None] * np.minimum(W, 0)
    zp = ref._stab(P.sum(axis=0) + np.maximum(b, 0))
    zn = ref._stab(N.sum(axis=0) + np.minimum(b, 0))
    return alpha * ref._propagate(P, zp, R) - beta * ref._propagate(N, zn, R)


@pytest.mark.parametrize("kind", list(SHIFTS))
def test_shift_after_relu_is_not_sign_preserving(float64, kind):
    """Input → ReLU → x − 0.5 (Rescaling offset, Normalization, raw ops) → Dense(4, relu) →
    Dense(3), lrp.alpha_2_beta_1: d1's input is negative in places, so its x⁻ terms count."""
    g = np.random.default_rng(61)
    i = keras.Input((6,), name="x")
    relu0 = L.ReLU(name="relu0")
    d1, out = L.Dense(4, activation="relu", name="d1"), L.Dense(3, name="out")
    shifted = SHIFTS[kind](relu0(i))
    model = keras.Model(i, out(d1(shifted)))
    shift_key = "shift" if kind in ("rescaling", "normalization") else _op_name(shifted)
    _set_dense(d1, g)
    _set_dense(out, g)
    x = g.normal(size=(BATCH, 6))
    _, rule = _rules("lrp.alpha_2_beta_1")
    got = _layerwise("lrp.alpha_2_beta_1", model, x)
    assert set(got) == {"x", "relu0", shift_key, "d1", "d1_activation", "out"}
    W1, b1 = _weights(d1)
    Wo, bo = _weights(out)
    for n in range(BATCH):
        p = _relu(x[n]) - 0.5
        assert (p < -0.1).sum() >= 2 and (p > 0.1).sum() >= 1, "data: reseed"
        h = _relu(p @ W1 + b1)
        logits = h @ Wo + bo
        assert_close(np.asarray(model(x[n:n + 1]))[0], logits, rtol=1e-12)
        R = {"out": _start(logits)}
        R["d1_activation"] = rule(h, Wo, bo, R["out"])
        R["d1"] = R["d1_activation"]
        R[shift_key] = rule(p, W1, b1, R["d1"])
        R["relu0"] = R[shift_key]
        R["x"] = R["relu0"]
        for key, value in R.items():
            _close(got[key][n], value, f"{kind}: layer {key!r}, sample {n}")
        wrong = _alphabeta_assuming_nonnegative(p, W1, b1, R["d1"])
        assert np.abs(wrong - R[shift_key]).max() > 1e-2 * np.abs(R[shift_key]).max()


@pytest.mark.parametrize("layer, inputs_nonnegative, expected", [
    (L.Rescaling(1.0, offset=-0.5), True, False),
    (L.Rescaling(2.0), True, False),  # not even a pure scale: its sign is not analysed
    (L.Normalization(mean=0.5, variance=1.0), True, False),
    (L.ReLU(), False, True),
    (L.Add(), True, True),
    (L.Flatten(), True, True),
    (L.Flatten(), False, False),
])
def test_nonnegative_producer_table(layer, inputs_nonnegative, expected):
    assert types.is_nonnegative_producer(layer, inputs_nonnegative) is expected


# ============================================================== 4. keras.ops in functional code
def _two_branches(g):
    i = keras.Input((5,), name="x")
    da, db = L.Dense(4, name="a"), L.Dense(4, name="b")
    a, b = da(i), db(i)
    _set_dense(da, g)
    _set_dense(db, g)
    return i, da, db, a, b


def test_ops_add_proportional_and_constant_ops_identity(float64):
    """h = ops.add(a, b) → ops.multiply(h, 0.5) → + 3.0 → / 2.0 → 1.0 + · → Dense(3):
    R_a = a·R/(a + b), R_b = b·R/(a + b); the ops with a constant pass relevance unchanged."""
    g = np.random.default_rng(71)
    i, da, db, a, b = _two_branches(g)
    h = keras.ops.add(a, b)
    h2 = keras.ops.multiply(h, 0.5)
    h3 = h2 + 3.0
    h4 = h3 / 2.0
    h5 = 1.0 + h4
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(h5))
    _set_dense(out, g)
    keys = [_op_name(t) for t in (h, h2, h3, h4, h5)]
    x = g.normal(size=(BATCH, 5))
    got = _layerwise("lrp.z", model, x)
    assert set(got) == {"x", "a", "b", "out", *keys}
    Wa, ba = _weights(da)
    Wb, bb = _weights(db)
    Wo, bo = _weights(out)
    for n in range(BATCH):
        av, bv = x[n] @ Wa + ba, x[n] @ Wb + bb
        assert _cond_ok(np.stack([av, bv])), "data: reseed"
        v5 = 1.0 + ((av + bv) * 0.5 + 3.0) / 2.0
        logits = v5 @ Wo + bo
        assert_close(np.asarray(model(x[n:n + 1]))[0], logits, rtol=1e-12)
        _check_dense(v5, Wo, bo, "out")
        R_h = ref.z_rule(v5, Wo, bo, _start(logits))
        for key in keys:
            _close(got[key][n], R_h, f"{key}, sample {n}")
        R_a, R_b = av * R_h / (av + bv), bv * R_h / (av + bv)
        _close(got["a"][n], R_a, f"a, sample {n}")
        _close(got["b"][n], R_b, f"b, sample {n}")
        np.testing.assert_allclose(got["a"][n] + got["b"][n], got[keys[0]][n], rtol=1e-12,
                                   atol=1e-14)
        _check_dense(x[n], Wa, ba, "a")
        _check_dense(x[n], Wb, bb, "b")
        _close(got["x"][n], ref.z_rule(x[n], Wa, ba, R_a) + ref.z_rule(x[n], Wb, bb, R_b),
               f"x, sample {n}")
    # the identities are exact
    for k1, k2 in zip(keys[1:], keys[2:]):
        np.testing.assert_array_equal(got[k1], got[k2])
    np.testing.assert_array_equal(got[keys[0]], got[keys[1]])


@pytest.mark.parametrize("form", ["ops", "operator"])
def test_ops_subtract_proportional_with_signs(float64, form):
    """s = a − b: R_a = a·R/(a − b), R_b = −b·R/(a − b); R_a + R_b = R."""
    g = np.random.default_rng(72)
    i, da, db, a, b = _two_branches(g)
    s = keras.ops.subtract(a, b) if form == "ops" else a - b
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(s))
    _set_dense(out, g)
    key = _op_name(s)
    x = g.normal(size=(BATCH, 5))
    got = _layerwise("lrp.z", model, x)
    Wa, ba = _weights(da)
    Wb, bb = _weights(db)
    Wo, bo = _weights(out)
    for n in range(BATCH):
        av, bv = x[n] @ Wa + ba, x[n] @ Wb + bb
        assert _cond_ok(np.stack([av, -bv])), "data: reseed"
        sv = av - bv
        logits = sv @ Wo + bo
        _check_dense(sv, Wo, bo, "out")
        R = ref.z_rule(sv, Wo, bo, _start(logits))
        _close(got[key][n], R, f"{key}, sample {n}")
        _close(got["a"][n], av * R / sv, f"a, sample {n}")
        _close(got["b"][n], -bv * R / sv, f"b, sample {n}")
        np.testing.assert_allclose(got["a"][n] + got["b"][n], got[key][n], rtol=1e-12,
                                   atol=1e-14)
        # a − b really mixes signs here (otherwise the −b term would not be exercised)
        assert np.any(av * bv > 0)


# ============================================================== 5. one tensor read twice
@pytest.mark.parametrize("form", ["add_layer", "ops_add"])
def test_node_reading_one_tensor_twice(float64, form):
    """h + h: each argument gets h·R/(2h) = R/2, summed at h: R (not 2R). lrp.z_IB on a
    bias-free net, so the input relevance also sums to the explained logit."""
    g = np.random.default_rng(81)
    i = keras.Input((6,), name="x")
    d1 = L.Dense(5, activation="relu", use_bias=False, name="d1")
    out = L.Dense(3, use_bias=False, name="out")
    h = d1(i)
    s = L.Add(name="twice")([h, h]) if form == "add_layer" else keras.ops.add(h, h)
    model = keras.Model(i, out(s))
    _set_dense(d1, g)
    _set_dense(out, g)
    key = "twice" if form == "add_layer" else _op_name(s)
    x = g.normal(size=(BATCH, 6))
    got = _layerwise("lrp.z_IB", model, x)
    W1, _ = _weights(d1)
    Wo, _ = _weights(out)
    for n in range(BATCH):
        hv = _relu(x[n] @ W1)
        logits = (2 * hv) @ Wo
        _check_dense(2 * hv, Wo, 0.0, "out")
        _check_dense(x[n], W1, 0.0, "d1")
        R = ref.z_rule(2 * hv, Wo, 0.0, _start(logits), bias=False)
        _close(got[key][n], R, f"{key}, sample {n}")
        _close(got["d1_activation"][n], R, f"h, sample {n}")
        _close(got["x"][n], ref.z_rule(x[n], W1, 0.0, R, bias=False), f"x, sample {n}")
        assert_close(got["x"][n].sum(), logits.max(), rtol=1e-10)
    assert np.abs(got[key]).max() > 1e-2


# ============================================================== 6. keras.applications layers
def test_convnext_layer_scale_is_identity(float64):
    from keras.src.applications.convnext import LayerScale
    g = np.random.default_rng(91)
    i = keras.Input((6,), name="x")
    d1, out = L.Dense(4, name="d1"), L.Dense(3, name="out")
    ls = LayerScale(0.5, 4, name="ls")
    model = keras.Model(i, out(L.ReLU(name="relu")(ls(d1(i)))))
    _set_dense(d1, g)
    ls.set_weights([_signed(g, 4)])  # signed per-channel scales
    _set_dense(out, g)
    x = g.normal(size=(BATCH, 6))
    got = _layerwise("lrp.z", model, x)
    np.testing.assert_array_equal(got["d1"], got["ls"])
    W1, b1 = _weights(d1)
    Wo, bo = _weights(out)
    gamma = np.asarray(ls.get_weights()[0])
    for n in range(BATCH):
        hv = _relu((x[n] @ W1 + b1) * gamma)
        logits = hv @ Wo + bo
        assert_close(np.asarray(model(x[n:n + 1]))[0], logits, rtol=1e-12)
        _check_dense(hv, Wo, bo, "out")
        _close(got["ls"][n], ref.z_rule(hv, Wo, bo, _start(logits)), f"sample {n}")
    assert np.abs(got["d1"]).max() > 1e-2


def test_inception_resnet_custom_scale_layer_is_proportional(float64):
    """CustomScaleLayer(s)([a, b]) = a + s·b: R_a = a·R/(a + s·b), R_b = s·b·R/(a + s·b)."""
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer
    scale = 0.3
    g = np.random.default_rng(92)
    i, da, db, a, b = _two_branches(g)
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(CustomScaleLayer(scale, name="csl")([a, b])))
    _set_dense(out, g)
    x = g.normal(size=(BATCH, 5))
    got = _layerwise("lrp.z", model, x)
    Wa, ba = _weights(da)
    Wb, bb = _weights(db)
    Wo, bo = _weights(out)
    for n in range(BATCH):
        av, bv = x[n] @ Wa + ba, x[n] @ Wb + bb
        assert _cond_ok(np.stack([av, scale * bv])), "data: reseed"
        z = av + scale * bv
        logits = z @ Wo + bo
        assert_close(np.asarray(model(x[n:n + 1]))[0], logits, rtol=1e-12)
        _check_dense(z, Wo, bo, "out")
        R = ref.z_rule(z, Wo, bo, _start(logits))
        _close(got["csl"][n], R, f"csl, sample {n}")
        _close(got["a"][n], av * R / z, f"a, sample {n}")
        _close(got["b"][n], scale * bv * R / z, f"b, sample {n}")
        np.testing.assert_allclose(got["a"][n] + got["b"][n], got["csl"][n], rtol=1e-12,
                                   atol=1e-14)


# ============================================================== 7. register_layer
class _SoftSign(L.Layer):
    """A custom element-wise layer keras-lrp does not know."""

    def call(self, x):
        return x / (1.0 + keras.ops.abs(x))


def _softsign_model(g):
    i = keras.Input((6,), name="x")
    d1, out = L.Dense(4, name="d1"), L.Dense(3, name="out")
    model = keras.Model(i, out(_SoftSign(name="soft")(d1(i))))
    _set_dense(d1, g)
    _set_dense(out, g)
    return model


def test_register_custom_elementwise_layer(float64, registry):
    g = np.random.default_rng(101)
    model = _softsign_model(g)
    with pytest.raises(ValueError, match=r"'soft'.*register_layer\(_SoftSign, "):
        keras_lrp.create_analyzer("lrp.z", model)
    keras_lrp.register_layer(_SoftSign, IdentityRelevance)
    assert registry.layers == [(_SoftSign, IdentityRelevance)]
    x = g.normal(size=(BATCH, 6))
    got = _layerwise("lrp.z", model, x)
    np.testing.assert_array_equal(got["d1"], got["soft"])
    Wo, bo = _weights(model.get_layer("out"))
    W1, b1 = _weights(model.get_layer("d1"))
    for n in range(BATCH):
        pre = x[n] @ W1 + b1
        hv = pre / (1.0 + np.abs(pre))
        logits = hv @ Wo + bo
        _check_dense(hv, Wo, bo, "out")
        _close(got["soft"][n], ref.z_rule(hv, Wo, bo, _start(logits)), f"sample {n}")


def test_registration_takes_precedence_over_the_built_in_map(float64, registry):
    """Registrations are searched before the base map: a subclass of a mapped layer can be given
    another relevance layer."""

    class _MyAdd(L.Add):
        pass

    layer = _MyAdd()
    assert _relevance_class(layer, 2) is keras_lrp.layers.ProportionalRelevance
    keras_lrp.register_layer(_MyAdd, keras_lrp.layers.RouteRelevance)
    assert _relevance_class(layer, 2) is keras_lrp.layers.RouteRelevance
    assert _relevance_class(L.Add(), 2) is keras_lrp.layers.ProportionalRelevance


class _Twice(keras.Operation):
    """A custom raw op (not registered for Keras serialization)."""

    def call(self, x):
        return x * 2.0

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=x.dtype)


def test_register_operation_subclass_is_accepted(registry):
    keras_lrp.register_layer(_Twice, IdentityRelevance)
    keras_lrp.register_layer(keras.src.ops.nn.Relu6, IdentityRelevance)
    assert [entry[0] for entry in registry.layers] == [keras.src.ops.nn.Relu6, _Twice]
    assert _relevance_class(_Twice()) is IdentityRelevance


def test_scoped_registrations_are_undone(registry):
    with REGISTRY.scoped():
        keras_lrp.register_layer(_Twice, IdentityRelevance)
        keras_lrp.register_rule("d1", "Flat")
        assert len(registry.layers) == 1 and len(registry.rules) == 1
    assert registry.layers == [] and registry.rules == []
    assert _relevance_class(_Twice()) is None


def test_registered_builtin_op_used_in_a_model(float64, registry):
    """keras.ops.relu6 (the Relu6 operation) registered as element-wise: relevance passes."""
    keras_lrp.register_layer(keras.src.ops.nn.Relu6, IdentityRelevance)
    g = np.random.default_rng(102)
    i = keras.Input((6,), name="x")
    d1, out = L.Dense(4, name="d1"), L.Dense(3, name="out")
    h = keras.ops.relu6(d1(i))
    model = keras.Model(i, out(h))
    _set_dense(d1, g, scale=3.0)
    _set_dense(out, g)
    x = g.normal(size=(BATCH, 6))
    got = _layerwise("lrp.z", model, x)
    np.testing.assert_array_equal(got["d1"], got[_op_name(h)])
    assert np.abs(got["d1"]).max() > 1e-2


def test_custom_operation_mapped_for_one_analyzer(float64):
    """rule_map= serves one analyzer: the next one, without it, refuses the unknown op."""
    g = np.random.default_rng(103)
    i = keras.Input((6,), name="x")
    d1, out = L.Dense(4, name="d1"), L.Dense(3, name="out")
    h = _Twice()(d1(i))
    model = keras.Model(i, out(h))
    _set_dense(d1, g)
    _set_dense(out, g)
    got = _layerwise("lrp.z", model, g.normal(size=(BATCH, 6)),
                     rule_map=[(_Twice, IdentityRelevance)])
    np.testing.assert_array_equal(got["d1"], got[_op_name(h)])
    assert np.abs(got["d1"]).max() > 1e-3
    with pytest.raises(ValueError, match="no relevance mapping"):
        keras_lrp.create_analyzer("lrp.z", model)


@pytest.mark.parametrize("layer_class, relevance, needs", [
    ("Dense", IdentityRelevance, "keras.layers.Layer"),
    (L.Dense(3), IdentityRelevance, "keras.layers.Layer"),
    (int, IdentityRelevance, "keras.layers.Layer"),
    (_SoftSign, "IdentityRelevance", "RelevanceLayer"),
    (_SoftSign, int, "RelevanceLayer"),
    (_SoftSign, L.Dense, "RelevanceLayer"),
    (_SoftSign, IdentityRelevance(), "RelevanceLayer"),
], ids=["str_layer", "layer_instance", "int_layer", "str_relevance", "int_relevance",
        "keras_layer_relevance", "relevance_instance"])
def test_register_layer_rejects_bad_arguments(registry, layer_class, relevance, needs):
    bad = layer_class if needs == "keras.layers.Layer" else relevance
    with pytest.raises(TypeError) as info:
        keras_lrp.register_layer(layer_class, relevance)
    message = str(info.value)
    assert needs in message and repr(bad) in message, message
    assert registry.layers == []


def test_register_layer_accepts_a_rule_class(registry):
    """Any RelevanceLayer subclass is accepted (rules are RelevanceLayers too)."""
    assert issubclass(keras_lrp.rules.Z, RelevanceLayer)
    keras_lrp.register_layer(_SoftSign, keras_lrp.layers.ProportionalRelevance)
    assert registry.layers == [(_SoftSign, keras_lrp.layers.ProportionalRelevance)]


# ============================================================== 8. misregistered two-input layer
class _PairList(L.Layer):
    def call(self, inputs):
        return inputs[0] + inputs[1]


class _PairArgs(L.Layer):
    def call(self, a, b):
        return a + b


@pytest.mark.parametrize("cls", [_PairList, _PairArgs], ids=["list_input", "two_arguments"])
def test_identity_registered_for_two_input_layer_is_a_clear_error(float64, registry, cls):
    keras_lrp.register_layer(cls, IdentityRelevance)
    i = keras.Input((5,), name="x")
    a, b = L.Dense(4, name="a")(i), L.Dense(4, name="b")(i)
    pair = cls(name="pair")
    h = pair([a, b]) if cls is _PairList else pair(a, b)
    model = keras.Model(i, L.Dense(3, name="out")(h))
    with pytest.raises(ValueError, match=r"'pair' has 2 inputs, but IdentityRelevance passes "
                                         r"relevance through single-input layers"):
        keras_lrp.create_analyzer("lrp.z", model)  # caught when building, before any analysis


def test_rms_normalization_passes_relevance_unchanged(float64):
    """keras.layers.RMSNormalization, y = x / rms(x) · scale, with rms(x) held constant is a
    diagonal map without a bias: the Z rule gives each input exactly the relevance of its
    output (R_k = x_k c_k / (x_k c_k) · R_k)."""
    g = np.random.default_rng(5)
    i = keras.Input((6,), name="x")
    h = L.Dense(5, name="d1")(i)
    h = L.RMSNormalization(name="rms")(h)
    model = keras.Model(i, L.Dense(3, name="out")(L.ReLU(name="relu")(h)))
    model.set_weights([g.normal(size=w.shape) for w in model.weights])
    x = g.normal(size=(BATCH, 6))
    lw = keras_lrp.create_analyzer("lrp.z", model).analyze(x, layerwise=True)
    np.testing.assert_allclose(lw["d1"], lw["rms"], rtol=1e-12)
    assert np.abs(lw["rms"]).sum() > 0
