"""Whole small networks end to end, against a NumPy float64 reference composed by hand.

Every network below is rebuilt in NumPy (:class:`RefNet`) from the Keras weights: Dense and
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
1/|denominator|. ``RefNet.forward(check=True)`` asserts that every denominator (z with and
without bias, z⁺, z⁻, Add outputs) is at least 1e-4 of the sum of its absolute terms, and that
no max-pooling window has a tie, so over <= 5 layers the expected discrepancy is <~ 1e-11
relative: rtol 1e-8 leaves three orders of margin while still catching any wrong formula (those
are off by O(1)). atol 1e-10 only covers entries that cancel to ~0 (relevances here are O(1)).
Conservation is checked at the issue's acceptance bound, 1e-5 relative, in float64 and float32.
"""
import os
import sys

import keras
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import reference as ref  # noqa: E402
import keras_lrp  # noqa: E402

L = keras.layers
RTOL, ATOL = 1e-8, 1e-10
CONSERVATION_RTOL = 1e-5  # the acceptance bound
COND = 1e-4
BATCH = 2


# ============================================================== NumPy reference network
def _cond_ok(terms, extra=0.0):
    """|Σ terms + extra| >= COND · Σ |terms| + |extra| per column (or everything is 0)."""
    den = terms.sum(axis=0) + extra
    scale = np.abs(terms).sum(axis=0) + np.abs(extra)
    return bool(np.all((np.abs(den) >= COND * scale) | (scale == 0)))


class RefNet:
    """A network on flat (C-order, channels_last) per-sample vectors, with LRP by hand.

    Nodes are added in forward (topological) order; each names its output tensor (the same
    name the engine uses as the ``layerwise`` key) and its input tensors.
    """

    def __init__(self, input_name):
        self.input_name = input_name
        self.nodes = []  # (name, kind, [input names], params)

    def add(self, name, kind, inputs, **params):
        self.nodes.append((name, kind, list(inputs), params))
        return name

    @property
    def output(self):
        return self.nodes[-1][0]

    def names(self):
        return {self.input_name} | {n[0] for n in self.nodes}

    def forward(self, x, check=False):
        """Flat values of every tensor for one sample ``x``; ``check`` asserts conditioning."""
        v = {self.input_name: np.asarray(x, np.float64).reshape(-1)}
        for name, kind, ins, p in self.nodes:
            a = [v[i] for i in ins]
            if kind == "kernel":
                out = a[0] @ p["W"] + p["b"]
                if check:
                    xs, W = a[0], p["W"]
                    xp, xn, wp, wn = (np.maximum(xs, 0), np.minimum(xs, 0), np.maximum(W, 0),
                                      np.minimum(W, 0))
                    for terms, extra in [(xs[:, None] * W, p["b"]), (xs[:, None] * W, 0.0),
                                         (xp[:, None] * wp + xn[:, None] * wn, 0.0),
                                         (xp[:, None] * wn + xn[:, None] * wp, 0.0)]:
                        assert _cond_ok(terms, extra), f"ill-conditioned data at {name}"
            elif kind == "relu":
                out = np.maximum(a[0], 0.0)
            elif kind == "maxpool":
                windows = a[0][p["windows"]]  # (M, window size)
                if check:
                    top2 = np.sort(windows, axis=1)[:, -2:]
                    assert np.all(top2[:, 1] - top2[:, 0] > 1e-6), f"tie in {name}: reseed"
                out = windows.max(axis=1)
            elif kind == "avgpool":
                out = a[0] @ p["P"]
                if check:
                    assert _cond_ok(a[0][:, None] * p["P"]), f"ill-conditioned data at {name}"
            elif kind == "flatten":
                out = a[0]
            elif kind == "add":
                out = sum(a)
                if check:
                    assert _cond_ok(np.stack(a)), f"ill-conditioned data at {name}"
            elif kind == "concat":
                out = np.concatenate(a)
            else:  # pragma: no cover
                raise ValueError(kind)
            v[name] = out
        return v

    def relevance(self, x, rule, check=False):
        """(values, relevances): relevance at every tensor for the max-logit neuron."""
        v = self.forward(x, check)
        logits = v[self.output]
        R = {self.output: np.eye(logits.size)[np.argmax(logits)] * logits}
        for name, kind, ins, p in reversed(self.nodes):
            r = R[name]
            xs = [v[i] for i in ins]
            if kind == "kernel":
                parts = [rule(xs[0], p["W"], p["b"], r, p["S"])]
            elif kind in ("relu", "flatten"):
                parts = [r]  # element-wise activation / reshape: unchanged
            elif kind == "maxpool":  # winner-take-all (data has no ties)
                part = np.zeros_like(xs[0])
                win = p["windows"][np.arange(len(r)), np.argmax(xs[0][p["windows"]], axis=1)]
                np.add.at(part, win, r)
                parts = [part]
            elif kind == "avgpool":  # proportional: Z rule with the pooling matrix, no bias
                C = xs[0][:, None] * p["P"]
                parts = [ref._propagate(C, ref._stab(C.sum(axis=0)), r)]
            elif kind == "add":  # proportional
                z = ref._stab(sum(xs))
                parts = [xi / z * r for xi in xs]
            elif kind == "concat":  # route
                parts = np.split(r, np.cumsum([xi.size for xi in xs])[:-1])
            for i, part in zip(ins, parts):
                R[i] = R[i] + part if i in R else part  # several consumers: summed
        return v, R


def dense_node(net, layer, inp, relu=False):
    kernel, bias = [np.asarray(w, np.float64) for w in layer.get_weights()]
    net.add(layer.name, "kernel", [inp], W=ref.dense_matrix(kernel), b=bias,
            S=np.ones_like(kernel))
    return net.add(f"{layer.name}_activation", "relu", [layer.name]) if relu else layer.name


def conv_node(net, layer, inp, in_shape, relu=False):
    kernel, bias = [np.asarray(w, np.float64) for w in layer.get_weights()]
    args = (in_shape, layer.strides, layer.padding, layer.dilation_rate)
    W, out_shape = ref.conv_matrix(kernel, *args)
    S, _ = ref.conv_matrix(np.ones_like(kernel), *args)  # structure for the Flat rule
    net.add(layer.name, "kernel", [inp], W=W, b=ref.expand_bias(bias, out_shape), S=S)
    name = net.add(f"{layer.name}_activation", "relu", [layer.name]) if relu else layer.name
    return name, out_shape


def pool_windows(in_shape, pool):
    """(M, pool²) flat input indices of each 2-D pooling window (stride = pool, valid), output
    positions in C order (row, col, channel)."""
    H, W, C = in_shape
    rows = []
    for oh in range(H // pool):
        for ow in range(W // pool):
            for c in range(C):
                rows.append([np.ravel_multi_index((oh * pool + dh, ow * pool + dw, c), in_shape)
                             for dh in range(pool) for dw in range(pool)])
    return np.array(rows), (H // pool, W // pool, C)


def avgpool_matrix(in_shape, pool):
    """Average pooling = a depthwise convolution with the constant kernel 1/pool²."""
    kernel = np.full((pool, pool, in_shape[-1], 1), 1.0 / pool ** 2)
    return ref.depthwise_conv2d_matrix(kernel, in_shape, strides=pool, padding="valid")


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
    net = RefNet("x")
    h = dense_node(net, d1, "x", relu=True)
    h = dense_node(net, d2, h, relu=True)
    dense_node(net, d3, h)
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
    net = RefNet("x")
    h, shape = conv_node(net, c1, "x", (8, 8, 2), relu=True)
    windows, shape_mp = pool_windows(shape, 2)
    h = net.add("mp", "maxpool", [h], windows=windows)
    h, shape = conv_node(net, c2, h, shape_mp, relu=True)
    P, shape = avgpool_matrix(shape, 2)
    h = net.add("ap", "avgpool", [h], P=P)
    h = net.add("flat", "flatten", [h])
    dense_node(net, out, h)
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
    net = RefNet("x")
    h = dense_node(net, r1, "x", relu=True)
    h = dense_node(net, r2, h)
    p = dense_node(net, proj, "x")
    h = net.add("add", "add", [h, p])
    h = net.add("relu", "relu", [h])
    dense_node(net, out, h)
    return model, net, g.normal(size=(BATCH, 6)), False


def build_concat(g, bias):
    """Two Dense branches from one input, concatenated → Dense(3)."""
    i = keras.Input((6,), name="x")
    b1, b2 = L.Dense(3, activation="relu", name="b1"), L.Dense(4, activation="relu", name="b2")
    cat, out = L.Concatenate(name="cat"), L.Dense(3, name="out")
    model = keras.Model(i, out(cat([b1(i), b2(i)])))
    for layer in (b1, b2, out):
        _set_kernel(layer, g, bias)
    net = RefNet("x")
    h1 = dense_node(net, b1, "x", relu=True)
    h2 = dense_node(net, b2, "x", relu=True)
    h = net.add("cat", "concat", [h1, h2])
    dense_node(net, out, h)
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
    net = RefNet("x")
    net.add("d1", "kernel", ["x"], W=W * s, b=(b - mean) * s + beta, S=np.ones_like(W))
    h = net.add("relu", "relu", ["d1"])
    dense_node(net, out, h)
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


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _flat_batch(a):
    a = np.asarray(a, np.float64)
    return a.reshape(a.shape[0], -1)


# ============================================================== tests
@pytest.mark.parametrize("net_name", list(NETWORKS))
def test_forward_matches_numpy(float64, net_name):
    model, net, x, softmax = build(net_name)
    logits = np.stack([net.forward(xn, check=True)[net.output] for xn in x])
    analyzer = keras_lrp.create_analyzer("lrp.z", model)
    np.testing.assert_allclose(_flat_batch(analyzer.forward_model(x)), logits, rtol=1e-12,
                               atol=1e-13)
    expected = _softmax(logits) if softmax else logits
    np.testing.assert_allclose(_flat_batch(model(x, training=False)), expected, rtol=1e-12,
                               atol=1e-13)


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
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, rtol=1e-12,
                               atol=1e-13)


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
            np.testing.assert_allclose(
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
        np.testing.assert_allclose(report.explained[n], logit, rtol=1e-12)
        np.testing.assert_allclose(report.input_sum[n], R["x"].sum(), rtol=RTOL)
        np.testing.assert_allclose(report.input_sum[n], R_in[n].sum(), rtol=1e-12)
        np.testing.assert_allclose(report.absorbed[n], logit - R["x"].sum(), rtol=1e-7)
        np.testing.assert_allclose(report.absorbed[n], sum(shares.values()), rtol=1e-7)
        np.testing.assert_allclose(report.relative_error()[n],
                                   abs(logit - R["x"].sum()) / abs(logit), rtol=1e-7)
        for key, total in report.sums.items():
            np.testing.assert_allclose(total[n], R[key].sum(), rtol=RTOL, atol=ATOL,
                                       err_msg=key)
        # layer by layer: what a kernel layer keeps is its own bias share
        for name, inp, _ in kernels:
            np.testing.assert_allclose(report.sums[name][n] - report.sums[inp][n],
                                       shares[name], rtol=1e-7, atol=1e-10, err_msg=name)
    assert abs(sum(report.absorbed)) > 1e-3  # the biases really absorb something here
    assert list(report.sums) == analyzer.layer_names
    assert "lrp.z" in str(report)
