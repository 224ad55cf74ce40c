"""Whole small networks end to end, against a NumPy float64 reference composed by hand.

Every network below is rebuilt by hand in the NumPy oracle (``reference.Net``) from the Keras
weights: Dense and
convolutions as explicit matrices (``tests/reference.py``), ReLU, max pooling by explicit
windows, average pooling as a matrix, Flatten, Add, Concatenate. Relevance is then propagated
backwards layer by layer with the reference rule functions and the routing the engine
documents: element-wise activations pass relevance unchanged; max pooling is winner-take-all;
average pooling and Add are proportional (R_i = x_i c_i / z · R, z stabilised by 1e-12·sign);
Concatenate and Flatten route unchanged; relevance reaching a tensor from several consumers is
summed. BatchNormalization is folded into the preceding Dense *in NumPy* (W' = W·s,
b' = (b − μ)·s + β, s = γ/√(var+ε)), so that network checks the engine's folding too.

Tolerances (float64, rtol 1e-8, atol 1e-10): the engine and the reference compute the same sums
in a different order, so each layer adds a few ulps (~1e-16) of its largest term, amplified by
1/|denominator|. ``Net.forward(check=True)`` asserts that every denominator (z with and
without bias, z⁺, z⁻, Add outputs) is at least 1e-4 of the sum of its absolute terms, and that
no max-pooling window has a tie, so over <= 5 layers the expected discrepancy is <~ 1e-11
relative: rtol 1e-8 leaves three orders of margin while still catching any wrong formula (those
are off by O(1)). atol 1e-10 only covers entries that cancel to ~0 (relevances here are O(1)).
Conservation is checked at the issue's acceptance bound, 1e-5 relative, in float64 and float32.
"""

import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close

import keras_lrp

L = keras.layers
RTOL, ATOL = 1e-8, 1e-10
CONSERVATION_RTOL = 1e-5  # the acceptance bound
BATCH = 2


# ============================================================== the networks
def _signed(g, n, low=0.1, high=0.5):
    return g.uniform(low, high, size=n) * g.choice([-1.0, 1.0], size=n)


def _set_kernel(layer, g, bias, scale=1.0, bias_values=None):
    kernel = g.normal(size=tuple(layer.kernel.shape)) * scale
    n = int(layer.bias.shape[0])
    if not bias:
        b = np.zeros(n)
    else:
        b = _signed(g, n) if bias_values is None else bias_values(n)
    layer.set_weights([kernel, b])


def build_mlp(g, bias):
    """Input(6) → Dense(5, relu) → Dense(4, relu) → Dense(3, softmax)."""
    i = keras.Input((6,), name="x")
    d1, d2 = L.Dense(5, activation="relu", name="d1"), L.Dense(4, activation="relu", name="d2")
    d3 = L.Dense(3, activation="softmax", name="d3")
    model = keras.Model(i, d3(d2(d1(i))))
    for layer in (d1, d2, d3):
        _set_kernel(layer, g, bias)
    net = ref.Net("x")
    h = net.dense(d1, "x", relu=True)
    h = net.dense(d2, h, relu=True)
    net.dense(d3, h)
    return model, net, g.normal(size=(BATCH, 6)), True


def build_cnn(g, bias):
    """Input(8,8,2) → Conv2D(3,3,relu,same) → MaxPool2D(2) → Conv2D(4,3,relu,valid)
    → AveragePooling2D(2) → Flatten → Dense(3)."""
    i = keras.Input((8, 8, 2), name="x")
    c1 = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")
    mp = L.MaxPooling2D(2, name="mp")
    c2 = L.Conv2D(4, 3, padding="valid", activation="relu", name="c2")
    ap, fl = L.AveragePooling2D(2, name="ap"), L.Flatten(name="flat")
    out = L.Dense(3, name="out")
    model = keras.Model(i, out(fl(ap(c2(mp(c1(i)))))))
    # c1: a small kernel and a positive bias keep most ReLUs on, so that no max-pooling window
    # is all zero (a tie); its ReLUs still switch off for some positions.
    _set_kernel(c1, g, bias, scale=0.3, bias_values=lambda n: g.uniform(0.6, 1.2, size=n))
    _set_kernel(c2, g, bias)
    _set_kernel(out, g, bias)
    net = ref.Net("x")
    h, shape = net.conv(c1, "x", (8, 8, 2), relu=True)
    windows, shape_mp = ref.pool_windows(shape, 2)
    h = net.add("mp", "maxpool", [h], windows=windows)
    h, shape = net.conv(c2, h, shape_mp, relu=True)
    P, shape = ref.avgpool_matrix(shape, 2)
    h = net.add("ap", "avgpool", [h], P=P)
    h = net.add("flat", "flatten", [h])
    net.dense(out, h)
    return model, net, g.normal(size=(BATCH, 8, 8, 2)), False


def build_residual(g, bias):
    """x → Dense(4, relu) → Dense(4); Add([that, Dense(4)(x)]) → ReLU → Dense(3)."""
    i = keras.Input((6,), name="x")
    r1, r2 = L.Dense(4, activation="relu", name="r1"), L.Dense(4, name="r2")
    proj, add, relu, out = L.Dense(4, name="proj"), L.Add(name="add"), L.ReLU(name="relu"), \
        L.Dense(3, name="out")
    model = keras.Model(i, out(relu(add([r2(r1(i)), proj(i)]))))
    for layer in (r1, r2, proj, out):
        _set_kernel(layer, g, bias)
    net = ref.Net("x")
    h = net.dense(r1, "x", relu=True)
    h = net.dense(r2, h)
    p = net.dense(proj, "x")
    h = net.add("add", "add", [h, p])
    h = net.add("relu", "relu", [h])
    net.dense(out, h)
    return model, net, g.normal(size=(BATCH, 6)), False


def build_concat(g, bias):
    """Two Dense branches from one input, concatenated → Dense(3)."""
    i = keras.Input((6,), name="x")
    b1, b2 = L.Dense(3, activation="relu", name="b1"), L.Dense(4, activation="relu", name="b2")
    cat, out = L.Concatenate(name="cat"), L.Dense(3, name="out")
    model = keras.Model(i, out(cat([b1(i), b2(i)])))
    for layer in (b1, b2, out):
        _set_kernel(layer, g, bias)
    net = ref.Net("x")
    h1 = net.dense(b1, "x", relu=True)
    h2 = net.dense(b2, "x", relu=True)
    h = net.add("cat", "concat", [h1, h2])
    net.dense(out, h)
    return model, net, g.normal(size=(BATCH, 6)), False


BN_EPS = 1e-3


def build_batchnorm(g, bias):
    """Dense(5) → BatchNormalization (hand-set statistics) → ReLU → Dense(3); the reference
    folds the BatchNorm into the Dense explicitly. Without bias, β = μ·s so the shift is 0."""
    i = keras.Input((6,), name="x")
    d1, bn = L.Dense(5, name="d1"), L.BatchNormalization(epsilon=BN_EPS, name="bn")
    relu, out = L.ReLU(name="relu"), L.Dense(3, name="out")
    model = keras.Model(i, out(relu(bn(d1(i)))))
    _set_kernel(d1, g, bias)
    _set_kernel(out, g, bias)
    gamma = _signed(g, 5, 0.5, 1.5)  # one or more negative scales: sign handling
    mean, var = g.normal(size=5) * 0.5, g.uniform(0.5, 2.0, size=5)
    s = gamma / np.sqrt(var + BN_EPS)
    beta = g.normal(size=5) * 0.5 if bias else mean * s
    bn.set_weights([gamma, beta, mean, var])
    W, b = [np.asarray(w, np.float64) for w in d1.get_weights()]
    net = ref.Net("x")
    net.add("d1", "kernel", ["x"], W=W * s, b=(b - mean) * s + beta, S=np.ones_like(W))
    h = net.add("relu", "relu", ["d1"])
    net.dense(out, h)
    return model, net, g.normal(size=(BATCH, 6)), False


# name -> (builder, seed for the biased network, seed for the bias-free one). The bias-free seeds
# are ones where the NumPy reference itself conserves for every rule in CONSERVING (checked in
# _check_conservation): αβ loses the β share of a unit whose z⁻ is empty (every active input
# pushes it up, common for the max logit after a ReLU), and w²/flat lose what reaches an
# all-zero average-pooling window. Those are properties of the rules, not of the engine.
NETWORKS = {
    "mlp": (build_mlp, 1, 120),
    "cnn": (build_cnn, 2, 103),
    "residual": (build_residual, 3, 135),
    "concat": (build_concat, 4, 100),
    "batchnorm": (build_batchnorm, 5, 101),
}


def build(name, bias=True, seed=None):
    builder, seed_b, seed_nb = NETWORKS[name]
    g = np.random.default_rng(seed if seed is not None else (seed_b if bias else seed_nb))
    return builder(g, bias)


# ============================================================== rules
def _flat(x, W, b, R, S):
    return ref.flat_rule(x, W, b, R, structure=S)


# analyzer name -> (create_analyzer kwargs, reference rule fn(x, W, b, R, structure))
RULES = {
    "lrp.z": ({}, lambda x, W, b, R, S: ref.z_rule(x, W, b, R, bias=True)),
    "lrp.epsilon": ({"epsilon": 0.01},
                    lambda x, W, b, R, S: ref.epsilon_rule(x, W, b, R, 0.01, bias=True)),
    "lrp.alpha_2_beta_1": ({}, lambda x, W, b, R, S: ref.alphabeta_rule(x, W, b, R, 2, 1, True)),
    "lrp.alpha_1_beta_0_IB": ({},
                              lambda x, W, b, R, S: ref.alphabeta_rule(x, W, b, R, 1, 0, False)),
    "lrp.w_square": ({}, lambda x, W, b, R, S: ref.wsquare_rule(x, W, b, R)),
    "lrp.gamma": ({"gamma": 0.25}, lambda x, W, b, R, S: ref.gamma_rule(x, W, b, R, 0.25, True)),
}

# Rules that ignore the bias (or never use it): they conserve relevance on bias-free networks.
# Epsilon absorbs ε/(z+ε) of the relevance at every layer, hence the tiny ε.
CONSERVING = {
    "lrp.z_IB": ({}, lambda x, W, b, R, S: ref.z_rule(x, W, b, R, bias=False)),
    "lrp.epsilon_IB": ({"epsilon": 1e-9},
                       lambda x, W, b, R, S: ref.epsilon_rule(x, W, b, R, 1e-9, bias=False)),
    "lrp.alpha_1_beta_0_IB": ({},
                              lambda x, W, b, R, S: ref.alphabeta_rule(x, W, b, R, 1, 0, False)),
    "lrp.alpha_2_beta_1_IB": ({},
                              lambda x, W, b, R, S: ref.alphabeta_rule(x, W, b, R, 2, 1, False)),
    "lrp.w_square": ({}, lambda x, W, b, R, S: ref.wsquare_rule(x, W, b, R)),
    "lrp.flat": ({}, _flat),
    "lrp.gamma": ({"gamma": 0.25, "bias": False},
                  lambda x, W, b, R, S: ref.gamma_rule(x, W, b, R, 0.25, bias=False)),
}


def _flat_batch(a):
    a = np.asarray(a, np.float64)
    return a.reshape(a.shape[0], -1)


# ============================================================== tests
@pytest.mark.parametrize("net_name", list(NETWORKS))
def test_forward_matches_numpy(float64, net_name):
    model, net, x, softmax = build(net_name)
    logits = np.stack([net.forward(xn, check=True)[net.output] for xn in x])
    analyzer = keras_lrp.create_analyzer("lrp.z", model)
    assert_close(_flat_batch(analyzer.forward_model(x)), logits, rtol=1e-12, atol=1e-13)
    expected = ref.softmax(logits) if softmax else logits
    assert_close(_flat_batch(model(x, training=False)), expected, rtol=1e-12, atol=1e-13)


def test_batchnorm_numpy_forward_unfolded(float64):
    """The folded reference equals the textbook inference BatchNorm γ(z − μ)/√(var+ε) + β."""
    model, net, x, _ = build("batchnorm")
    W, b = model.get_layer("d1").get_weights()
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    Wo, bo = model.get_layer("out").get_weights()
    h = np.maximum(gamma * (x @ W + b - mean) / np.sqrt(var + BN_EPS) + beta, 0)
    expected = h @ Wo + bo
    folded = np.stack([net.forward(xn)[net.output] for xn in x])
    np.testing.assert_allclose(folded, expected, rtol=1e-12, atol=1e-13)
    assert_close(np.asarray(model(x, training=False)), expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("rule_name", list(RULES))
@pytest.mark.parametrize("net_name", list(NETWORKS))
def test_layerwise_relevance_matches_reference(float64, net_name, rule_name):
    model, net, x, _ = build(net_name)
    kwargs, rule = RULES[rule_name]
    analyzer = keras_lrp.create_analyzer(rule_name, model, **kwargs)
    got = analyzer.analyze(x, layerwise=True)
    assert set(got) == net.names(), f"layerwise keys {sorted(got)} != {sorted(net.names())}"
    for n in range(BATCH):
        _, expected = net.relevance(x[n], rule, check=True)
        for key in got:
            assert_close(
                got[key][n].reshape(-1), expected[key], rtol=RTOL, atol=ATOL,
                err_msg=f"{rule_name} on {net_name}: layer {key!r}, sample {n}")
    # the plain call returns the input entry of the layerwise dict
    np.testing.assert_array_equal(analyzer.analyze(x), got["x"])
    assert got["x"].shape == x.shape


def _check_conservation(analyzer, net, x, rule, rtol):
    """Σ R_input = explained logit, via the report and via our own sums."""
    R_in = _flat_batch(analyzer.analyze(x))
    report = analyzer.conservation(x)
    for n in range(len(x)):
        values, expected = net.relevance(x[n], rule)
        logit = values[net.output].max()
        # precondition on the data: the NumPy reference itself conserves (no relevance lost to
        # an all-zero average-pooling window or an empty z⁻ in the αβ rule; ε = 1e-9 keeps a few
        # 1e-9 of it)
        assert abs(expected["x"].sum() - logit) <= rtol / 10 * abs(logit), "data: reseed"
        np.testing.assert_allclose(report.explained[n], logit, rtol=rtol)
        np.testing.assert_allclose(R_in[n].sum(), logit, rtol=rtol)
        np.testing.assert_allclose(report.input_sum[n], R_in[n].sum(), rtol=1e-12)
        # sums are independent of max-pool tie-breaking, so compare them with the reference
        np.testing.assert_allclose(R_in[n].sum(), expected["x"].sum(), rtol=rtol)
    assert np.all(report.relative_error() <= rtol), report
    np.testing.assert_allclose(report.absorbed, report.explained - report.input_sum, rtol=0,
                               atol=1e-12 * np.abs(report.explained).max())


@pytest.mark.parametrize("rule_name", list(CONSERVING))
@pytest.mark.parametrize("net_name", list(NETWORKS))
def test_bias_free_conservation_float64(float64, net_name, rule_name):
    model, net, x, _ = build(net_name, bias=False)
    kwargs, rule = CONSERVING[rule_name]
    analyzer = keras_lrp.create_analyzer(rule_name, model, **kwargs)
    _check_conservation(analyzer, net, x, rule, CONSERVATION_RTOL)


@pytest.mark.parametrize("rule_name", list(CONSERVING))
@pytest.mark.parametrize("net_name", ["mlp", "cnn"])
def test_bias_free_conservation_float32(net_name, rule_name):
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    model, net, x, _ = build(net_name, bias=False)
    assert model.get_layer("out" if net_name == "cnn" else "d3").kernel.dtype == "float32"
    x = x.astype(np.float32).astype(np.float64)  # the reference sees exactly the float32 input
    kwargs, rule = CONSERVING[rule_name]
    # the reference net holds the float32 weights (read back from the model) in float64
    analyzer = keras_lrp.create_analyzer(rule_name, model, **kwargs)
    _check_conservation(analyzer, net, x, rule, CONSERVATION_RTOL)
    assert analyzer.analyze(x).dtype == np.float32


def test_conservation_report_with_bias_mlp(float64):
    """Z rule with biases: the report's numbers are our sums, and the absorbed relevance is the
    sum over layers of the bias shares Σ_j b_j / z_j · R_j computed in NumPy."""
    model, net, x, _ = build("mlp")
    analyzer = keras_lrp.create_analyzer("lrp.z", model)
    report = analyzer.conservation(x)
    R_in = _flat_batch(analyzer.analyze(x))
    kernels = [(name, ins[0], p) for name, kind, ins, p in net.nodes if kind == "kernel"]
    for n in range(BATCH):
        values, R = net.relevance(x[n], RULES["lrp.z"][1], check=True)
        logit = values["d3"].max()
        shares = {name: np.sum(p["b"] / values[name] * R[name]) for name, _, p in kernels}
        assert_close(report.explained[n], logit, rtol=1e-12)
        assert_close(report.input_sum[n], R["x"].sum(), rtol=RTOL)
        np.testing.assert_allclose(report.input_sum[n], R_in[n].sum(), rtol=1e-12)
        assert_close(report.absorbed[n], logit - R["x"].sum(), rtol=1e-7)
        assert_close(report.absorbed[n], sum(shares.values()), rtol=1e-7)
        assert_close(report.relative_error()[n], abs(logit - R["x"].sum()) / abs(logit), rtol=1e-7)
        for key, total in report.sums.items():
            assert_close(total[n], R[key].sum(), rtol=RTOL, atol=ATOL, err_msg=key)
        # layer by layer: what a kernel layer keeps is its own bias share
        for name, inp, _ in kernels:
            assert_close(report.sums[name][n] - report.sums[inp][n],
                         shares[name], rtol=1e-7, atol=1e-10, err_msg=name)
    assert abs(sum(report.absorbed)) > 1e-3  # the biases really absorb something here
    assert list(report.sums) == analyzer.layer_names
    assert "lrp.z" in str(report)
