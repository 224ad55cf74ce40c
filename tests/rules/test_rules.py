"""keras_lrp.rules against the NumPy matrix reference (tests/reference.py), in float64.

Tolerances: everything is float64. The reference and the engine compute the same sums in a
different order, so they differ by a few ulps of the largest term, amplified by 1/|denominator|.
The data below is checked (``_check_conditioning``) to keep every denominator >= 1e-4 of the
sum of its absolute terms, so the expected discrepancy is <~ 1e-16 * 1e4 * (few) << rtol 1e-9;
atol 1e-12 covers entries that are ~0 by cancellation. The contract's 1e-12 stabiliser is in
the reference too, so it cannot cause a mismatch either.
"""

import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close

from keras_lrp import rules

RTOL, ATOL = 1e-9, 1e-12
BATCH = 2


# ----------------------------------------------------------------- layers
# id -> (factory, input shape without batch)
LAYERS = {
    "dense": (lambda: keras.layers.Dense(3, dtype="float64"), (4,)),
    "conv1d_valid_s1": (lambda: keras.layers.Conv1D(3, 3, padding="valid",
                                                    dtype="float64"), (7, 2)),
    "conv1d_valid_s2": (lambda: keras.layers.Conv1D(3, 3, strides=2, padding="valid",
                                                    dtype="float64"), (7, 2)),
    "conv1d_same_s1": (lambda: keras.layers.Conv1D(3, 3, padding="same",
                                                   dtype="float64"), (7, 2)),
    "conv1d_same_s2": (lambda: keras.layers.Conv1D(3, 2, strides=2, padding="same",
                                                   dtype="float64"), (7, 2)),
    "conv2d_valid_s1": (lambda: keras.layers.Conv2D(2, (3, 2), padding="valid",
                                                    dtype="float64"), (5, 4, 2)),
    "conv2d_valid_s2": (lambda: keras.layers.Conv2D(2, (3, 2), strides=2, padding="valid",
                                                    dtype="float64"), (5, 5, 2)),
    "conv2d_same_s1": (lambda: keras.layers.Conv2D(2, (3, 2), padding="same",
                                                   dtype="float64"), (5, 4, 2)),
    "conv2d_same_s2": (lambda: keras.layers.Conv2D(2, (3, 3), strides=2, padding="same",
                                                   dtype="float64"), (5, 4, 2)),
    "conv2d_same_dil2": (lambda: keras.layers.Conv2D(2, (2, 2), dilation_rate=2, padding="same",
                                                     dtype="float64"), (5, 5, 2)),
    "depthwise_same_s2": (lambda: keras.layers.DepthwiseConv2D((3, 2), strides=2, padding="same",
                                                               depth_multiplier=2,
                                                               dtype="float64"), (5, 4, 2)),
}


def _layer_matrices(layer, in_shape):
    """Flat W (D, M), flat bias (M,), and the structure matrix (conv of an all-ones kernel)."""
    kernel, bias = [np.asarray(w, np.float64) for w in layer.get_weights()]
    if isinstance(layer, keras.layers.Dense):
        return ref.dense_matrix(kernel), bias, np.ones_like(kernel)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        build = ref.depthwise_conv2d_matrix
    else:
        build = ref.conv_matrix
    args = (in_shape, layer.strides, layer.padding, layer.dilation_rate)
    W, out_shape = build(kernel, *args)
    ones, _ = build(np.ones_like(kernel), *args)
    return W, ref.expand_bias(bias, out_shape), ones


def _signed_uniform(g, size, low=0.5, high=1.5):
    return g.uniform(low, high, size=size) * g.choice([-1.0, 1.0], size=size)


def _make(layer_id, seed, x_kind="mixed", zero_kernel=False, zero_bias=False, zero_x=False):
    factory, in_shape = LAYERS[layer_id]
    g = np.random.default_rng(seed)
    layer = factory()
    x = g.uniform(-1, 1, size=(BATCH,) + in_shape)  # inside [-1, 1] (Bounded's default box)
    if x_kind == "nonneg":
        x = np.abs(x)
    if zero_x:
        x = np.zeros_like(x)
    layer(x)  # build
    kernel_shape = layer.get_weights()[0].shape
    kernel = np.zeros(kernel_shape) if zero_kernel else g.normal(size=kernel_shape)
    n_out = layer.get_weights()[1].shape
    bias = np.zeros(n_out) if zero_bias else _signed_uniform(g, n_out)
    layer.set_weights([kernel, bias])
    z = keras.ops.convert_to_numpy(layer(x))
    R_out = g.normal(size=z.shape)
    return layer, in_shape, x, z, R_out


def _check_conditioning(x, W, b):
    """Every Z-like denominator (with and without bias, x.w+, zp, zn) is far from 0 relative to
    its terms, so float64 reordering stays below RTOL (see module docstring)."""
    for xs in x.reshape(len(x), -1):
        terms = [xs[:, None] * W, xs[:, None] * np.maximum(W, 0),
                 np.maximum(xs, 0)[:, None] * np.maximum(W, 0)
                 + np.minimum(xs, 0)[:, None] * np.minimum(W, 0),
                 np.maximum(xs, 0)[:, None] * np.minimum(W, 0)
                 + np.minimum(xs, 0)[:, None] * np.maximum(W, 0)]
        for t, extra in [(terms[0], b), (terms[0], 0.0), (terms[1], 0.0),
                         (terms[2], 0.0), (terms[3], 0.0)]:
            den = t.sum(axis=0) + extra
            scale = np.abs(t).sum(axis=0) + np.abs(extra)
            ok = (np.abs(den) >= 1e-4 * scale) | (scale == 0)
            assert ok.all(), "ill-conditioned random data: pick another seed"


# ----------------------------------------------------------------- rules
def _bounds_arrays(in_shape):
    g = np.random.default_rng(123)
    return -1.0 - g.uniform(0, 1, size=in_shape), 1.0 + g.uniform(0, 1, size=in_shape)


# id -> (rule factory(in_shape), reference fn(x, W, b, R, structure, in_shape), x kinds)
MIXED, BOTH = ("mixed",), ("mixed", "nonneg")
RULES = {
    "Z_bias": (lambda s: rules.Z(bias=True),
               lambda x, W, b, R, S, s: ref.z_rule(x, W, b, R, bias=True), MIXED),
    "Z_nobias": (lambda s: rules.Z(bias=False),
                 lambda x, W, b, R, S, s: ref.z_rule(x, W, b, R, bias=False), MIXED),
    "Epsilon_default": (lambda s: rules.Epsilon(),
                        lambda x, W, b, R, S, s: ref.epsilon_rule(x, W, b, R, 1e-7, True), MIXED),
    "Epsilon_0.1_bias": (lambda s: rules.Epsilon(epsilon=0.1, bias=True),
                         lambda x, W, b, R, S, s: ref.epsilon_rule(x, W, b, R, 0.1, True), MIXED),
    "Epsilon_0.1_nobias": (lambda s: rules.Epsilon(epsilon=0.1, bias=False),
                           lambda x, W, b, R, S, s: ref.epsilon_rule(x, W, b, R, 0.1, False),
                           MIXED),
    "Epsilon_get": (lambda s: rules.get("Epsilon", epsilon=0.1),
                    lambda x, W, b, R, S, s: ref.epsilon_rule(x, W, b, R, 0.1, True), MIXED),
    "WSquare": (lambda s: rules.WSquare(),
                lambda x, W, b, R, S, s: ref.wsquare_rule(x, W, b, R), MIXED),
    "Flat": (lambda s: rules.Flat(),
             lambda x, W, b, R, S, s: ref.flat_rule(x, W, b, R, structure=S), MIXED),
    "AlphaBeta_default": (lambda s: rules.AlphaBeta(),
                          lambda x, W, b, R, S, s: ref.alphabeta_rule(x, W, b, R, 2, 1, True),
                          BOTH),
    "AlphaBeta_2_1_nobias": (lambda s: rules.AlphaBeta(alpha=2, beta=1, bias=False),
                             lambda x, W, b, R, S, s: ref.alphabeta_rule(x, W, b, R, 2, 1, False),
                             BOTH),
    "AlphaBeta_1_0_bias": (lambda s: rules.AlphaBeta(alpha=1, beta=0, bias=True),
                           lambda x, W, b, R, S, s: ref.alphabeta_rule(x, W, b, R, 1, 0, True),
                           BOTH),
    "AlphaBeta_1_0_nobias": (lambda s: rules.AlphaBeta(alpha=1, beta=0, bias=False),
                             lambda x, W, b, R, S, s: ref.alphabeta_rule(x, W, b, R, 1, 0, False),
                             BOTH),
    "AlphaBeta_3_2_bias": (lambda s: rules.AlphaBeta(alpha=3, beta=2, bias=True),
                           lambda x, W, b, R, S, s: ref.alphabeta_rule(x, W, b, R, 3, 2, True),
                           BOTH),
    "ZPlus": (lambda s: rules.ZPlus(), lambda x, W, b, R, S, s: ref.zplus_rule(x, W, b, R), BOTH),
    "ZPlus_bias": (lambda s: rules.ZPlus(bias=True),
                   lambda x, W, b, R, S, s: ref.zplus_rule(x, W, b, R, bias=True), BOTH),
    "ZPlusFast": (lambda s: rules.ZPlusFast(),
                  lambda x, W, b, R, S, s: ref.zplusfast_rule(x, W, b, R), BOTH),
    "Bounded_default": (lambda s: rules.Bounded(),
                        lambda x, W, b, R, S, s: ref.bounded_rule(x, W, b, R), MIXED),
    "Bounded_-2_3": (lambda s: rules.Bounded(low=-2.0, high=3.0),
                     lambda x, W, b, R, S, s: ref.bounded_rule(x, W, b, R, -2.0, 3.0), MIXED),
    "Bounded_arrays": (lambda s: rules.Bounded(low=_bounds_arrays(s)[0], high=_bounds_arrays(s)[1]),
                       lambda x, W, b, R, S, s: ref.bounded_rule(x, W, b, R,
                                                                 _bounds_arrays(s)[0].reshape(-1),
                                                                 _bounds_arrays(s)[1].reshape(-1)),
                       MIXED),
    # parameters not representable in float32, to catch a float32 round trip of the parameter
    "AlphaBeta_1.7_0.7_bias": (
        lambda s: rules.AlphaBeta(alpha=1.7, beta=0.7, bias=True),
        lambda x, W, b, R, S, s: ref.alphabeta_rule(x, W, b, R, 1.7, 0.7, True), BOTH),
    "Bounded_-1.1_1.3": (lambda s: rules.Bounded(low=-1.1, high=1.3),
                         lambda x, W, b, R, S, s: ref.bounded_rule(x, W, b, R, -1.1, 1.3), MIXED),
    "Gamma_0.1_bias": (lambda s: rules.Gamma(gamma=0.1, bias=True),
                       lambda x, W, b, R, S, s: ref.gamma_rule(x, W, b, R, 0.1, True), BOTH),
    "Gamma_default": (lambda s: rules.Gamma(),
                      lambda x, W, b, R, S, s: ref.gamma_rule(x, W, b, R, 0.25, True), BOTH),
    "Gamma_0.25_nobias": (lambda s: rules.Gamma(gamma=0.25, bias=False),
                          lambda x, W, b, R, S, s: ref.gamma_rule(x, W, b, R, 0.25, False), BOTH),
    "Gamma_1_bias": (lambda s: rules.Gamma(gamma=1.0, bias=True),
                     lambda x, W, b, R, S, s: ref.gamma_rule(x, W, b, R, 1.0, True), BOTH),
}

CASES = [pytest.param(r, layer_id, k, id=f"{r}-{layer_id}-{k}")
         for r in RULES for layer_id in LAYERS for k in RULES[r][2]]


def _run_rule(rule, layer, x, z, R_out):
    R_in = rule.bind(layer)([x, z, R_out])
    return np.asarray(keras.ops.convert_to_numpy(R_in), dtype=np.float64)


def _expected(rule_id, layer, in_shape, x, R_out):
    W, b, S = _layer_matrices(layer, in_shape)
    fn = RULES[rule_id][1]
    return W, b, [fn(x[n].reshape(-1), W, b, R_out[n].reshape(-1), S, in_shape)
                  for n in range(len(x))]


@pytest.mark.parametrize("rule_id,layer_id,x_kind", CASES)
def test_rule_matches_reference(rule_id, layer_id, x_kind):
    seed = list(LAYERS).index(layer_id) + (100 if x_kind == "nonneg" else 0)
    layer, in_shape, x, z, R_out = _make(layer_id, seed, x_kind)
    W, b, expected = _expected(rule_id, layer, in_shape, x, R_out)
    assert_close(x.reshape(BATCH, -1) @ W + b, z.reshape(BATCH, -1), rtol=1e-12, atol=1e-12)
    _check_conditioning(x, W, b)
    R_in = _run_rule(RULES[rule_id][0](in_shape), layer, x, z, R_out)
    assert R_in.shape == x.shape
    for n in range(BATCH):  # each sample separately
        assert_close(R_in[n].reshape(-1), expected[n], rtol=RTOL, atol=ATOL,
                     err_msg=f"{rule_id} on {layer_id} ({x_kind}), sample {n}")


# ----------------------------------------------------------------- degenerate inputs
ZERO_CASES = [pytest.param(r, layer_id, what, id=f"{r}-{layer_id}-{what}") for r in RULES
              for layer_id in ("dense", "conv2d_same_s2")
              for what in ("zero_x", "zero_weights", "zero_kernel_only")]


@pytest.mark.parametrize("rule_id,layer_id,what", ZERO_CASES)
def test_no_nan_on_zeros(rule_id, layer_id, what):
    layer, in_shape, x, z, R_out = _make(layer_id, seed=7, zero_x=(what == "zero_x"),
                                         zero_kernel=(what != "zero_x"),
                                         zero_bias=(what == "zero_weights"))
    R_in = _run_rule(RULES[rule_id][0](in_shape), layer, x, z, R_out)
    assert np.all(np.isfinite(R_in)), f"{rule_id}: non-finite relevance for {what}"
    _, _, expected = _expected(rule_id, layer, in_shape, x, R_out)
    for n in range(BATCH):
        assert_close(R_in[n].reshape(-1), expected[n], rtol=RTOL, atol=ATOL)


def _dense(kernel, bias):
    layer = keras.layers.Dense(np.shape(kernel)[1], dtype="float64")
    layer(np.zeros((1, np.shape(kernel)[0])))
    layer.set_weights([np.asarray(kernel, float), np.asarray(bias, float)])
    return layer


def test_z_exact_zero_output_gives_zero():
    # sample 0: x = [1, -1], column 0 = [2, 2], b = 0 -> z_0 = 0 exactly ;
    #   column 1 = [1, 0] -> z_1 = 1
    #   R_in = x_i w_i1 / 1 * 3 = [3, 0] (the z_0 = 0 unit contributes nothing)
    # sample 1: x = [1, 1] -> z = [4, 1]: R_in = [2/4*5 + 3, 2/4*5] = [5.5, 2.5]
    layer = _dense([[2., 1.], [2., 0.]], [0., 0.])
    x = np.array([[1., -1.], [1., 1.]])
    R_out = np.array([[5., 3.], [5., 3.]])
    for bias in (True, False):
        R_in = _run_rule(rules.Z(bias=bias), layer, x, keras.ops.convert_to_numpy(layer(x)), R_out)
        np.testing.assert_allclose(R_in, [[3., 0.], [5.5, 2.5]], rtol=1e-12, atol=1e-15)


def test_z_exact_zero_output_with_bias():
    # x = [1, .5]; column 0 = [1, 1], b_0 = -1.5 -> z_0 = 0 exactly ; column 1 = [1, 2], b_1 = .25
    # -> z_1 = 2.25 ; R = [5, 3] -> R_in = [1/2.25*3, 1/2.25*3] = [4/3, 4/3]
    layer = _dense([[1., 1.], [1., 2.]], [-1.5, 0.25])
    x = np.array([[1., .5]])
    z = keras.ops.convert_to_numpy(layer(x))
    assert z[0, 0] == 0.0
    R_in = _run_rule(rules.Z(bias=True), layer, x, z, np.array([[5., 3.]]))
    assert np.all(np.isfinite(R_in))
    assert_close(R_in, [[4 / 3, 4 / 3]], rtol=1e-12)


# ----------------------------------------------------------------- parameter validation
@pytest.mark.parametrize("alpha,beta,shown", [(3.5, 1.25, ("3.5", "1.25")),   # alpha - beta != 1
                                              (2.0, 0.0, ("2", "0")),
                                              (0.5, -0.5, ("-0.5",))])        # beta < 0 (alpha < 1)
def test_alphabeta_invalid_params(alpha, beta, shown):
    layer = _dense(np.ones((2, 2)), np.zeros(2))
    with pytest.raises(ValueError) as info:
        rules.AlphaBeta(alpha=alpha, beta=beta).bind(layer)
    for s in shown:
        assert s in str(info.value), f"message should show {s}: {info.value}"
