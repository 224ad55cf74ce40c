"""Independent NumPy float64 reference for LRP rules, written the slow, obvious way.

Every kernel layer is turned into an explicit dense matrix W of shape (D, M), with
z = x @ W + b for the flattened (C-order, channels_last) input x (D,) and output z (M,).
Each rule then builds an explicit contribution matrix C[i, j] (what input i sends to
output j), a denominator d[j], and returns R_in[i] = sum_j C[i, j] / d[j] * R[j].

Notation: a+ = max(a, 0), a- = min(a, 0). No TensorFlow is used here.
"""
import itertools
import math

import numpy as np

STAB = 1e-100  # keras-lrp's float64 stabiliser (rules.tiny) for denominators other than Z's


# --------------------------------------------------------------------------- matrices
def dense_matrix(kernel):
    """Dense: z_j = sum_i x_i kernel[i, j] + b_j, so W = kernel (D, M)."""
    return np.array(kernel, dtype=np.float64)


def _tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _out_len_and_pad(n, k, s, d, padding):
    """TF convention. valid: out = ceil((n - (k-1)d) / s), no padding.
    same: out = ceil(n / s); pad_total = max((out-1)s + (k-1)d + 1 - n, 0); pad_before = pad_total // 2."""
    if padding == "valid":
        return math.ceil((n - (k - 1) * d) / s), 0
    if padding == "same":
        out = math.ceil(n / s)
        pad_total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        return out, pad_total // 2
    raise ValueError(padding)


def conv_matrix(kernel, in_shape, strides=1, padding="valid", dilation=1):
    """Conv1D/2D/3D (channels_last) as a matrix.

    kernel: (k_1, ..., k_n, c_in, c_out); in_shape: (n_1, ..., n_n, c_in) (no batch).
    z[o, co] = sum_{kpos, ci} x[o*s - pad_before + kpos*d, ci] * kernel[kpos, ci, co]
    (terms whose input position falls in the zero padding are absent).
    Returns W (prod(in_shape), prod(out_shape)) and out_shape = (*out_spatial, c_out).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    nd = kernel.ndim - 2
    ks, cin, cout = kernel.shape[:nd], kernel.shape[nd], kernel.shape[nd + 1]
    assert tuple(in_shape[nd:]) == (cin,), (in_shape, kernel.shape)
    s, d = _tuple(strides, nd), _tuple(dilation, nd)
    outs, pads = zip(*[_out_len_and_pad(in_shape[a], ks[a], s[a], d[a], padding) for a in range(nd)])
    out_shape = tuple(outs) + (cout,)
    W = np.zeros((int(np.prod(in_shape)), int(np.prod(out_shape))))
    for o in itertools.product(*[range(n) for n in outs]):
        for kp in itertools.product(*[range(k) for k in ks]):
            pos = tuple(o[a] * s[a] - pads[a] + kp[a] * d[a] for a in range(nd))
            if any(p < 0 or p >= in_shape[a] for a, p in enumerate(pos)):
                continue  # zero padding: no weight
            for ci in range(cin):
                for co in range(cout):
                    i = np.ravel_multi_index(pos + (ci,), in_shape)
                    j = np.ravel_multi_index(o + (co,), out_shape)
                    W[i, j] += kernel[kp + (ci, co)]
    return W, out_shape


def depthwise_conv2d_matrix(kernel, in_shape, strides=1, padding="valid", dilation=1):
    """DepthwiseConv2D: kernel (kh, kw, c_in, mult); output channel c*mult + m sees only input
    channel c with kernel[:, :, c, m]. Built as a Conv2D matrix with a block-diagonal kernel."""
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw, cin, mult = kernel.shape
    full = np.zeros((kh, kw, cin, cin * mult))
    for c in range(cin):
        for m in range(mult):
            full[:, :, c, c * mult + m] = kernel[:, :, c, m]
    return conv_matrix(full, in_shape, strides, padding, dilation)


def expand_bias(bias, out_shape):
    """Bias (c_out,) -> flat output (prod(out_shape),): b_flat[j] = bias[j's channel]."""
    bias = np.asarray(bias, dtype=np.float64)
    out = np.zeros(int(np.prod(out_shape)))
    for j in range(out.size):
        out[j] = bias[np.unravel_index(j, out_shape)[-1]]
    return out


# --------------------------------------------------------------------------- helpers
def _pos(a):
    return np.maximum(a, 0.0)


def _neg(a):
    return np.minimum(a, 0.0)


def _stab(den):
    """den + STAB * sign(den), sign(0) = +1 (keras-lrp's float64 stabiliser)."""
    return den + STAB * np.where(den >= 0, 1.0, -1.0)


def _propagate(C, den, R):
    """R_in[i] = sum_j C[i, j] / den[j] * R[j], written as an explicit double loop."""
    D, M = C.shape
    R_in = np.zeros(D)
    for i in range(D):
        for j in range(M):
            R_in[i] += C[i, j] / den[j] * R[j]
    return R_in


def _contrib(x, W):
    """C[i, j] = x_i W_ij."""
    return np.asarray(x, float)[:, None] * np.asarray(W, float)


# --------------------------------------------------------------------------- rules
def z_rule(x, W, b, R, bias=True):
    """Z: R_i = sum_j x_i w_ij / z_j R_j, z_j = sum_i x_i w_ij (+ b_j if bias); ratio 0 where z_j == 0."""
    C = _contrib(x, W)
    z = C.sum(axis=0) + (b if bias else 0.0)
    ratio = np.where(z == 0, 0.0, R / np.where(z == 0, 1.0, z))
    return _propagate(C, np.ones_like(z), ratio)


def epsilon_rule(x, W, b, R, epsilon=1e-7, bias=True):
    """Epsilon: R_i = sum_j x_i w_ij / (z_j + eps sign(z_j)) R_j, sign(0) = +1; z with b_j if bias."""
    C = _contrib(x, W)
    z = C.sum(axis=0) + (b if bias else 0.0)
    return _propagate(C, z + epsilon * np.where(z >= 0, 1.0, -1.0), R)


def wsquare_rule(x, W, b, R):
    """WSquare: R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j (x and b unused)."""
    C = np.asarray(W, float) ** 2
    return _propagate(C, _stab(C.sum(axis=0)), R)


def flat_rule(x, W, b, R, structure=None):
    """Flat: WSquare with every (structurally present) w = 1. For conv layers pass
    structure = the matrix of the same conv with an all-ones kernel (padding has no weight);
    default: all ones (Dense)."""
    C = np.ones(np.shape(W)) if structure is None else (np.asarray(structure) != 0).astype(float)
    return _propagate(C, _stab(C.sum(axis=0)), R)


def alphabeta_rule(x, W, b, R, alpha=2.0, beta=1.0, bias=True):
    """AlphaBeta: P_ij = x+_i w+_ij + x-_i w-_ij, N_ij = x+_i w-_ij + x-_i w+_ij,
    zp_j = sum_i P_ij + b+_j, zn_j = sum_i N_ij + b-_j (b terms only if bias),
    R_i = sum_j [alpha P_ij / zp_j - beta N_ij / zn_j] R_j."""
    x, W, b = np.asarray(x, float), np.asarray(W, float), np.asarray(b, float)
    P = _pos(x)[:, None] * _pos(W) + _neg(x)[:, None] * _neg(W)
    N = _pos(x)[:, None] * _neg(W) + _neg(x)[:, None] * _pos(W)
    zp = P.sum(axis=0) + (_pos(b) if bias else 0.0)
    zn = N.sum(axis=0) + (_neg(b) if bias else 0.0)
    return alpha * _propagate(P, _stab(zp), R) - beta * _propagate(N, _stab(zn), R)


def zplus_rule(x, W, b, R):
    """ZPlus = AlphaBeta(alpha=1, beta=0, bias=False)."""
    return alphabeta_rule(x, W, b, R, alpha=1.0, beta=0.0, bias=False)


def zplusfast_rule(x, W, b, R):
    """ZPlusFast: R_i = sum_j x_i w+_ij / sum_i' x_i' w+_i'j R_j (raw x, no bias)."""
    C = _contrib(x, _pos(np.asarray(W, float)))
    return _propagate(C, _stab(C.sum(axis=0)), R)


def bounded_rule(x, W, b, R, low=-1.0, high=1.0):
    """Bounded (zB): C_ij = x_i w_ij - l_i w+_ij - h_i w-_ij, R_i = sum_j C_ij / sum_i' C_i'j R_j.
    low/high: scalars or arrays broadcastable to x (flat, D)."""
    x, W = np.asarray(x, float), np.asarray(W, float)
    l = np.broadcast_to(np.asarray(low, float), x.shape)
    h = np.broadcast_to(np.asarray(high, float), x.shape)
    C = x[:, None] * W - l[:, None] * _pos(W) - h[:, None] * _neg(W)
    return _propagate(C, _stab(C.sum(axis=0)), R)


def gamma_rule(x, W, b, R, gamma=0.25, bias=True):
    """Gamma. z_j = sum_i x_i w_ij (+ b_j if bias).
    z_j >= 0: C_ij = x+_i (w_ij + g w+_ij) + x-_i (w_ij + g w-_ij), d_j = sum_i C_ij + (b_j + g b+_j)
    z_j <  0: C_ij = x+_i (w_ij + g w-_ij) + x-_i (w_ij + g w+_ij), d_j = sum_i C_ij + (b_j + g b-_j)
    (the b terms only if bias); R_i = sum_j C_ij / d_j R_j."""
    x, W, b = np.asarray(x, float), np.asarray(W, float), np.asarray(b, float)
    D, M = W.shape
    z = _contrib(x, W).sum(axis=0) + (b if bias else 0.0)
    C = np.zeros((D, M))
    den = np.zeros(M)
    for j in range(M):
        up = z[j] >= 0
        for i in range(D):
            wp, wn = _pos(W[i, j]), _neg(W[i, j])
            gp, gn = (wp, wn) if up else (wn, wp)  # which part of w gets boosted for x+ / x-
            C[i, j] = _pos(x[i]) * (W[i, j] + gamma * gp) + _neg(x[i]) * (W[i, j] + gamma * gn)
        bterm = (b[j] + gamma * (_pos(b[j]) if up else _neg(b[j]))) if bias else 0.0
        den[j] = C[:, j].sum() + bterm
    return _propagate(C, _stab(den), R)
