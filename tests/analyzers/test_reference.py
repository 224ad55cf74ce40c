"""Checks of tests/reference.py itself (hand-worked numbers, identities, conv matrices).

Independent of keras_lrp. Keras is only used as an oracle for the conv-matrix layout.
"""
import math

import numpy as np
import pytest
import reference as ref  # noqa: E402


# ----------------------------------------------------------------- seed 002 (toy matrices)
def test_seed002_single_z_rule():
    # Seed writes y = W x with W (out x in) = [[1,1,0],[0,1,2]];
    # our W is (in x out) = its transpose.
    W = np.array([[1, 1, 0], [0, 1, 2]], float).T
    x = np.ones(3)
    Q = np.ones(2)
    # y = [1+1, 1+2] = [2, 3].  R_i = x_i sum_j W_ij Q_j / y_j:
    # R_0 = 1/2 ; R_1 = 1/2 + 1/3 = 5/6 ; R_2 = 2/3.   (sum = 2 = sum Q)
    expected = [1 / 2, 5 / 6, 2 / 3]
    np.testing.assert_allclose(ref.z_rule(x, W, np.zeros(2), Q), expected, rtol=1e-15)
    np.testing.assert_allclose(ref.z_rule(x, W, np.zeros(2), Q, bias=False), expected, rtol=1e-15)


# Batch example: W = [[-1,1,0],[0,1,2]] (out x in), b = 0, Q_j = 1 where relu(y_j) != 0.
W002 = np.array([[-1, 1, 0], [0, 1, 2]], float).T
X002 = np.array([[1, 1, 1], [1, 2, 3], [0, 3, 2], [3, 0, 2], [1, 2, 0], [1, 0, 0], [0, 0, 1]],
                float)
# y rows: [0,3] [1,8] [3,7] [-3->0,4] [1,2] [-1->0,0] [0,2]
Q002 = np.array([[0, 1], [1, 1], [1, 1], [0, 1], [1, 1], [0, 0], [0, 1]], float)


def test_seed002_batch_wsquare():
    # w^2 columns normalised: out0 = [1,1,0]/2 = [.5,.5,0]; out1 = [0,1,4]/5 = [0,.2,.8]
    # R = Q0*[.5,.5,0] + Q1*[0,.2,.8]  (the seed's 1e-5 stabiliser is dropped: exact values)
    expected = [[0, .2, .8], [.5, .7, .8], [.5, .7, .8], [0, .2, .8], [.5, .7, .8], [0, 0, 0],
                [0, .2, .8]]
    for x, q, e in zip(X002, Q002, expected):
        np.testing.assert_allclose(ref.wsquare_rule(x, W002, np.zeros(2), q), e,
                                   rtol=1e-12, atol=1e-15)


def test_seed002_batch_z():
    # R = x * (W (Q / z)), z = x W (ratio 0 where z == 0 or Q == 0):
    # x=[1,1,1] z=[0,3]  ratio [0,1/3]   W.r=[0,1/3,2/3]        -> [0,1/3,2/3]
    # x=[1,2,3] z=[1,8]  ratio [1,1/8]   W.r=[-1,9/8,1/4]       -> [-1,9/4,3/4]
    # x=[0,3,2] z=[3,7]  ratio [1/3,1/7] W.r=[-1/3,10/21,2/7]   -> [0,10/7,4/7]
    # x=[3,0,2] z=[-3,4] ratio [0,1/4]   W.r=[0,1/4,1/2]        -> [0,0,1]
    # x=[1,2,0] z=[1,2]  ratio [1,1/2]   W.r=[-1,3/2,1]         -> [-1,3,0]
    # x=[1,0,0] z=[-1,0] Q=0                                     -> [0,0,0]
    # x=[0,0,1] z=[0,2]  ratio [0,1/2]   W.r=[0,1/2,1]          -> [0,0,1]
    expected = [[0, 1 / 3, 2 / 3], [-1, 9 / 4, 3 / 4], [0, 10 / 7, 4 / 7], [0, 0, 1],
                [-1, 3, 0], [0, 0, 0], [0, 0, 1]]
    for x, q, e in zip(X002, Q002, expected):
        np.testing.assert_allclose(ref.z_rule(x, W002, np.zeros(2), q), e, rtol=1e-12, atol=1e-15)


def test_seed002_batch_zplus():
    # W+ (out x in) = [[0,1,0],[0,1,2]]; R = x * (W+ (Q / z+)), z+ = x W+ (x >= 0 so z+ = ZPlus)
    # x=[1,1,1] z+=[1,3] Q=[0,1]  W+.r=[0,1/3,2/3]    -> [0,1/3,2/3]
    # x=[1,2,3] z+=[2,8] r=[1/2,1/8] W+.r=[0,5/8,1/4] -> [0,5/4,3/4]
    # x=[0,3,2] z+=[3,7] r=[1/3,1/7] W+.r=[0,10/21,2/7] -> [0,10/7,4/7]
    # x=[3,0,2] z+=[0,4] r=[0,1/4]  W+.r=[0,1/4,1/2]  -> [0,0,1]
    # x=[1,2,0] z+=[2,2] r=[1/2,1/2] W+.r=[0,1,1]     -> [0,2,0]
    # x=[1,0,0] Q=0 -> 0 ;  x=[0,0,1] z+=[0,2] r=[0,1/2] -> [0,0,1]
    expected = [[0, 1 / 3, 2 / 3], [0, 5 / 4, 3 / 4], [0, 10 / 7, 4 / 7], [0, 0, 1],
                [0, 2, 0], [0, 0, 0], [0, 0, 1]]
    for x, q, e in zip(X002, Q002, expected):
        np.testing.assert_allclose(ref.zplus_rule(x, W002, np.zeros(2), q), e,
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ref.zplusfast_rule(x, W002, np.zeros(2), q), e,
                                   rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------- seed 003 (one Dense unit)
# The seed computes in float64 from float32 weights and the float32 logit R_last; x is the
# float64 row 2 of np.random.rand after seeding 42 (printed as [0.15601864, 0.15599452]).
X003 = np.random.RandomState(42).rand(3, 2)[2]
W003 = np.array([1.2197995, 1.2793059], np.float32).astype(np.float64)[:, None]
B003 = np.array([3.634342], np.float32).astype(np.float64)
R003 = np.array([np.float32(4.0242043)], np.float64)
ZIB003 = [1.9643472463166156, 2.0598570078337755]


def test_seed003_x_is_the_printed_one():
    np.testing.assert_allclose(X003, [0.15601864, 0.15599452], rtol=1e-8)


@pytest.mark.parametrize("fn,kw,expected", [
    (ref.alphabeta_rule, dict(alpha=1, beta=0, bias=False), ZIB003),
    (ref.zplus_rule, {}, ZIB003),
    (ref.z_rule, dict(bias=False), ZIB003),
    # epsilon-IB with eps = 1e-7: the seed's own number (differs from Z-IB at ~3e-7 relative)
    (ref.epsilon_rule, dict(epsilon=1e-7, bias=False), [1.964346742477999, 2.059856479497705]),
    (ref.wsquare_rule, {}, [1.916335747629476, 2.1078685065209144]),
    (ref.z_rule, dict(bias=True), [0.1903108061325644, 0.19956402739573104]),
    (ref.epsilon_rule, dict(epsilon=1e-7, bias=True), [0.1903108014034271, 0.19956402243665533]),
    # AlphaBeta with bias (contract: b+ only in the denominator) = seed's "without bias in
    # numerator and only one bias in denominator"
    (ref.alphabeta_rule, dict(alpha=1, beta=0, bias=True),
     [0.1903108061325644, 0.19956402739573104]),
])
def test_seed003_numbers(fn, kw, expected):
    # rtol 1e-11: the reference adds the contract's 1e-12 stabiliser to denominators of size
    # ~0.39 (2.6e-12 relative); float64 rounding of the seed's own arithmetic is ~1e-16.
    np.testing.assert_allclose(fn(X003, W003, B003, R003, **kw), expected, rtol=1e-11)


def test_seed003_epsilon_ib_close_to_z_ib():
    # the brief's claim "epsilon-IB == Z-IB" holds only up to eps / z ~ 2.6e-7
    np.testing.assert_allclose(ref.epsilon_rule(X003, W003, B003, R003, bias=False), ZIB003,
                               rtol=5e-7)


def test_seed003_bounded():
    # w > 0 so w- = 0: C_i = x_i w_i - (-1) w_i - 1 * 0 = (1 + x_i) w_i ; R_i = R C_i / sum C.
    w = W003[:, 0]
    C = (1 + X003) * w
    np.testing.assert_allclose(ref.bounded_rule(X003, W003, B003, R003),
                               R003[0] * C / C.sum(), rtol=1e-11)
    # The seed's "Manual LRP-Bounded" literal [1.9643472463166178, 2.0598570078337777] used
    # np.max(w, 0) / np.min(w, 0), where 0 is the *axis*: both return w, so its numerator is
    # x w + w - w = x w, i.e. it is the Z-IB value, not the Bounded rule.
    seed_literal = [1.9643472463166178, 2.0598570078337777]
    np.testing.assert_allclose(seed_literal, ZIB003, rtol=1e-14)
    assert np.max(np.float32(1.2197995), 0) == np.min(np.float32(1.2197995), 0)  # the artefact
    # the true Bounded value: [1.9642127685079454, 2.0599914856424455]
    np.testing.assert_allclose(ref.bounded_rule(X003, W003, B003, R003),
                               [1.9642127685079454, 2.0599914856424455], rtol=1e-11)
    assert abs(ref.bounded_rule(X003, W003, B003, R003)[0] - seed_literal[0]) > 1e-5


# ----------------------------------------------------------------- conservation identities
def _rand(seed, D=5, M=4):
    g = np.random.default_rng(seed)
    return g.normal(size=D), g.normal(size=(D, M)), g.normal(size=M), g.normal(size=M)


def _pn_sums(x, W):
    P = np.maximum(x, 0)[:, None] * np.maximum(W, 0) + np.minimum(x, 0)[:, None] * np.minimum(W, 0)
    N = np.maximum(x, 0)[:, None] * np.minimum(W, 0) + np.minimum(x, 0)[:, None] * np.maximum(W, 0)
    return P.sum(axis=0), N.sum(axis=0)


CONSERVING = [
    (ref.z_rule, dict(bias=False)),
    (ref.alphabeta_rule, dict(alpha=2, beta=1, bias=False)),
    (ref.alphabeta_rule, dict(alpha=1, beta=0, bias=False)),
    (ref.alphabeta_rule, dict(alpha=3, beta=2, bias=False)),
    (ref.zplus_rule, {}),
    (ref.zplusfast_rule, {}),
    (ref.wsquare_rule, {}),
    (ref.flat_rule, {}),
    (ref.bounded_rule, {}),
    (ref.gamma_rule, dict(gamma=0.25, bias=False)),
    (ref.gamma_rule, dict(gamma=1.0, bias=False)),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fn,kw", CONSERVING)
def test_conservation(fn, kw, seed):
    x, W, b, R = _rand(seed, D=10, M=4)
    if fn is ref.zplusfast_rule:
        x = np.abs(x)  # with raw mixed-sign x the positive-weight sum may be ill-conditioned
    if fn is ref.bounded_rule:
        x = np.tanh(x)  # inside [low, high] = [-1, 1]: all contributions >= 0
    # conservation needs every zp_j, zn_j != 0 (a zero column sends its relevance nowhere)
    zp, zn = _pn_sums(x, W)
    assert np.all(zp > 1e-3) and np.all(zn < -1e-3), "pick another seed"
    np.testing.assert_allclose(fn(x, W, b, R, **kw).sum(), R.sum(), rtol=1e-9)


def test_bias_absorbs_relevance():
    x, W, b, R = _rand(7)
    z = x @ W + b
    # Z with bias: sum R_in = sum_j (z_j - b_j)/z_j R_j
    np.testing.assert_allclose(ref.z_rule(x, W, b, R).sum(), ((z - b) / z * R).sum(), rtol=1e-12)


def test_epsilon_small_eps_equals_z_and_large_eps_shrinks():
    x, W, b, R = _rand(3)
    np.testing.assert_allclose(ref.epsilon_rule(x, W, b, R, epsilon=1e-14),
                               ref.z_rule(x, W, b, R), rtol=1e-10)
    assert abs(ref.epsilon_rule(x, W, b, R, epsilon=1e6).sum()) < 1e-4


def test_zplus_equals_zplusfast_for_nonneg_x():
    x, W, b, R = _rand(5)
    x = np.abs(x)
    np.testing.assert_allclose(ref.zplus_rule(x, W, b, R),
                               ref.zplusfast_rule(x, W, b, R), rtol=1e-12)


def test_gamma_zero_is_z():
    x, W, b, R = _rand(6)
    for bias in (True, False):
        np.testing.assert_allclose(ref.gamma_rule(x, W, b, R, gamma=0.0, bias=bias),
                                   ref.z_rule(x, W, b, R, bias=bias), rtol=1e-10)


def test_gamma_hand_example():
    # x = [1, -1], w column = [2, -1], b = 0.5 ; z = 2 + 1 + .5 = 3.5 >= 0 ; g = 0.5
    # C_0 = x+ (w + g w+) = 1 * (2 + 1) = 3 ; C_1 = x- (w + g w-) = -1 * (-1 - .5) = 1.5
    # d = 4.5 + (b + g b+) = 4.5 + .75 = 5.25 ; R = 2 -> [6/5.25, 3/5.25]
    out = ref.gamma_rule(np.array([1., -1.]), np.array([[2.], [-1.]]), np.array([.5]),
                         np.array([2.]), gamma=.5)
    np.testing.assert_allclose(out, [6 / 5.25, 3 / 5.25], rtol=1e-10)
    # negative z: b = -5 -> z = -2 < 0. C_0 = x+ (w + g w-) = 2 ; C_1 = x- (w + g w+) = 1 ;
    # d = 3 + (b + g b-) = 3 - 7.5 = -4.5 ; R = 2 -> [-4/4.5, -2/4.5]
    out = ref.gamma_rule(np.array([1., -1.]), np.array([[2.], [-1.]]), np.array([-5.]),
                         np.array([2.]), gamma=.5)
    np.testing.assert_allclose(out, [-4 / 4.5, -2 / 4.5], rtol=1e-10)


def test_alphabeta_hand_example():
    # x = [1, -2], w = [3, 1], b = -1, R = 1, alpha 2 beta 1
    # P = [x+ w+ , x- w-] = [3, 0] ; N = [x+ w-, x- w+] = [0, -2] ; zp = 3 + 0 ; zn = -2 - 1 = -3
    # R = 2 * [3/3, 0] - 1 * [0, -2/-3] = [2, -2/3]
    out = ref.alphabeta_rule(np.array([1., -2.]), np.array([[3.], [1.]]),
                             np.array([-1.]), np.array([1.]))
    np.testing.assert_allclose(out, [2, -2 / 3], rtol=1e-10)


def test_z_zero_denominator_is_zero():
    # x = [1, -1], w column 0 = [2, 2] -> z_0 = 0 exactly ; column 1 = [1, 0] -> z_1 = 1
    out = ref.z_rule(np.array([1., -1.]), np.array([[2., 1.], [2., 0.]]),
                     np.zeros(2), np.array([5., 3.]))
    np.testing.assert_allclose(out, [3., 0.])


# ----------------------------------------------------------------- conv matrices
K1 = np.array([1., 2., 3.])[:, None, None]  # Conv1D kernel (3, 1, 1)


@pytest.mark.parametrize("n,s,pad,d,cols", [
    # hand-derived columns (one per output position)
    (4, 1, "valid", 1, [[1, 2, 3, 0], [0, 1, 2, 3]]),
    # same, s=1: pad_total = 3*1 + 2 + 1 - 4 = 2, before 1: out0 reads x[-1..1]
    (4, 1, "same", 1, [[2, 3, 0, 0], [1, 2, 3, 0], [0, 1, 2, 3], [0, 0, 1, 2]]),
    # same, s=2, n=4: out 2, pad_total = 2 + 3 - 4 = 1, before 0: out1 reads x[2..4]
    (4, 2, "same", 1, [[1, 2, 3, 0], [0, 0, 1, 2]]),
    # same, s=2, n=5: out 3, pad_total = 4 + 3 - 5 = 2, before 1
    (5, 2, "same", 1, [[2, 3, 0, 0, 0], [0, 1, 2, 3, 0], [0, 0, 0, 1, 2]]),
    # valid, s=2, n=5: out ceil(3/2) = 2
    (5, 2, "valid", 1, [[1, 2, 3, 0, 0], [0, 0, 1, 2, 3]]),
    # valid, dilation 2, n=5: one output reading x0, x2, x4
    (5, 1, "valid", 2, [[1, 0, 2, 0, 3]]),
])
def test_conv1d_matrix_hand(n, s, pad, d, cols):
    W, out_shape = ref.conv_matrix(K1, (n, 1), s, pad, d)
    assert out_shape == (len(cols), 1)
    np.testing.assert_array_equal(W, np.array(cols, float).T)


def test_conv2d_matrix_hand():
    k = np.array([[1., 2.], [3., 4.]])[:, :, None, None]
    W, out_shape = ref.conv_matrix(k, (3, 3, 1), 1, "valid")
    assert out_shape == (2, 2, 1)
    # output (0,0) reads input (0,0)=1 (0,1)=2 (1,0)=3 (1,1)=4 ; flat input index = 3 r + c
    np.testing.assert_array_equal(W[:, 0], [1, 2, 0, 3, 4, 0, 0, 0, 0])
    # output (1,1) reads (1,1) (1,2) (2,1) (2,2)
    np.testing.assert_array_equal(W[:, 3], [0, 0, 0, 0, 1, 2, 0, 3, 4])
    # output (0,1) reads (0,1) (0,2) (1,1) (1,2)
    np.testing.assert_array_equal(W[:, 1], [0, 1, 2, 0, 3, 4, 0, 0, 0])


def _direct_conv2d(x, k, s, pad, d):
    """Direct loop convolution on an explicitly zero-padded array (TF 'same' convention)."""
    (H, Wd, C), (kh, kw, _, F) = x.shape, k.shape
    oh, ph = ref._out_len_and_pad(H, kh, s[0], d[0], pad)
    ow, pw = ref._out_len_and_pad(Wd, kw, s[1], d[1], pad)
    xp = np.zeros((H + 2 * kh * d[0], Wd + 2 * kw * d[1], C))
    xp[ph:ph + H, pw:pw + Wd] = x
    out = np.zeros((oh, ow, F))
    for r in range(oh):
        for c in range(ow):
            for a in range(kh):
                for bb in range(kw):
                    out[r, c] += xp[r * s[0] + a * d[0], c * s[1] + bb * d[1]] @ k[a, bb]
    return out


CONV2D_CFGS = [((5, 5, 2), (3, 2), 1, "valid", 1), ((5, 5, 2), (3, 2), 2, "valid", 1),
               ((5, 6, 2), (3, 2), 1, "same", 1), ((5, 6, 2), (3, 3), 2, "same", 1),
               ((6, 5, 2), (2, 2), (2, 1), "same", 1), ((6, 6, 1), (3, 2), 1, "same", 2),
               ((7, 6, 2), (2, 3), 1, "valid", (2, 1))]


@pytest.mark.parametrize("in_shape,ks,s,pad,d", CONV2D_CFGS)
def test_conv2d_matrix_vs_direct_loop(in_shape, ks, s, pad, d):
    g = np.random.default_rng(0)
    x, k = g.normal(size=in_shape), g.normal(size=ks + (in_shape[-1], 3))
    W, out_shape = ref.conv_matrix(k, in_shape, s, pad, d)
    direct = _direct_conv2d(x, k, ref._tuple(s, 2), pad, ref._tuple(d, 2))
    assert direct.shape == out_shape
    np.testing.assert_allclose(x.reshape(-1) @ W, direct.reshape(-1), rtol=1e-12, atol=1e-12)


def _assert_matrix_is_the_layer(layer, in_shape, matrix, seed):
    """Random x, kernel and bias: x W + b (W = ``matrix(kernel)``) is the Keras layer's output."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(1,) + in_shape)
    layer(x)
    k, b = g.normal(size=layer.kernel.shape), g.normal(size=layer.bias.shape)
    layer.set_weights([k, b])
    z = np.asarray(layer(x))[0]
    W, out_shape = matrix(k)
    assert z.shape == out_shape
    np.testing.assert_allclose(x.reshape(-1) @ W + ref.expand_bias(b, out_shape), z.reshape(-1),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_shape,ks,s,pad,d", CONV2D_CFGS + [
    ((7, 2), (3,), 1, "same", 1), ((7, 2), (3,), 2, "same", 1), ((8, 2), (2,), 2, "same", 1),
    ((7, 2), (3,), 2, "valid", 1), ((7, 1), (2,), 1, "same", 3)])
def test_conv_matrix_vs_keras(in_shape, ks, s, pad, d):
    keras = pytest.importorskip("keras")
    cls = keras.layers.Conv1D if len(ks) == 1 else keras.layers.Conv2D
    layer = cls(3, ks, strides=s, padding=pad, dilation_rate=d, dtype="float64")
    _assert_matrix_is_the_layer(layer, in_shape, lambda k: ref.conv_matrix(k, in_shape, s, pad, d),
                                seed=1)


@pytest.mark.parametrize("s,pad", [(1, "valid"), (2, "same"), (1, "same")])
def test_depthwise_matrix_vs_keras(s, pad):
    keras = pytest.importorskip("keras")
    layer = keras.layers.DepthwiseConv2D((3, 2), strides=s, padding=pad, depth_multiplier=2,
                                         dtype="float64")
    _assert_matrix_is_the_layer(
        layer, (5, 5, 3), lambda k: ref.depthwise_conv2d_matrix(k, (5, 5, 3), s, pad), seed=2)


def test_expand_bias_and_out_len():
    np.testing.assert_array_equal(ref.expand_bias([1., 2.], (2, 1, 2)), [1, 2, 1, 2])
    assert ref._out_len_and_pad(7, 3, 2, 1, "same") == (4, 1)   # pad_total = 6 + 3 - 7 = 2
    assert ref._out_len_and_pad(7, 3, 2, 1, "valid") == (math.ceil(5 / 2), 0)
