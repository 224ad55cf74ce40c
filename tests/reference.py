"""Independent NumPy float64 reference for LRP rules, written the slow, obvious way.

Every kernel layer is turned into an explicit dense matrix W of shape (D, M), with
z = x @ W + b for the flattened (C-order, channels_last) input x (D,) and output z (M,).
Each rule then builds an explicit contribution matrix C[i, j] (what input i sends to
output j), a denominator d[j], and returns R_in[i] = sum_j C[i, j] / d[j] * R[j].

Beyond the kernel rules: whole networks (:class:`Net`), sums and element-wise products (the
gate rules), LayerNormalization with σ held constant, attention (the softmax rule, the bilinear
product A·v under AttnLRP and CP-LRP) and recurrent cells (LSTM, GRU, SimpleRNN with Arras et
al.'s ``lrp_linear``), one function per formula.

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
    same: out = ceil(n / s); pad_total = max((out-1)s + (k-1)d + 1 - n, 0);
    pad_before = pad_total // 2."""
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
    outs, pads = zip(*[_out_len_and_pad(in_shape[a], ks[a], s[a], d[a], padding)
                       for a in range(nd)])
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


def _sign(a):
    """sign(a) with sign(0) = +1."""
    return np.where(a >= 0, 1.0, -1.0)


def _stab(den, eps=STAB):
    """den + eps · sign(den), sign(0) = +1 (by default keras-lrp's float64 stabiliser)."""
    return den + eps * _sign(den)


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
    """Z: R_i = sum_j x_i w_ij / z_j R_j, z_j = sum_i x_i w_ij (+ b_j if bias);
    ratio 0 where z_j == 0. x and R may carry leading (batch, token) axes: row by row."""
    if np.ndim(x) > 1:
        return np.stack([z_rule(xn, W, b, Rn, bias) for xn, Rn in zip(x, R)])
    C = _contrib(x, W)
    z = C.sum(axis=0) + (b if bias else 0.0)
    ratio = np.where(z == 0, 0.0, R / np.where(z == 0, 1.0, z))
    return _propagate(C, np.ones_like(z), ratio)


def epsilon_rule(x, W, b, R, epsilon=1e-7, bias=True):
    """Epsilon: R_i = sum_j x_i w_ij / (z_j + eps sign(z_j)) R_j, sign(0) = +1;
    z with b_j if bias."""
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


def alphabeta_innvestigate_rule(x, W, b, R, alpha=2.0, beta=1.0):
    """iNNvestigate 2.1.2's AlphaBeta *with* bias (its relevance_rule.AlphaBetaRule): the kernel and
    the bias are split by sign, and the activator and the inhibitor layer each keep their part,
    so each denominator gets b+ + b- = the whole bias:
    zp_j = sum_i P_ij + b_j, zn_j = sum_i N_ij + b_j (0 replaced by 1e-7, its safe_divide)."""
    x, W, b = np.asarray(x, float), np.asarray(W, float), np.asarray(b, float)
    P = _pos(x)[:, None] * _pos(W) + _neg(x)[:, None] * _neg(W)
    N = _pos(x)[:, None] * _neg(W) + _neg(x)[:, None] * _pos(W)
    zp, zn = P.sum(axis=0) + b, N.sum(axis=0) + b
    zp, zn = np.where(zp == 0, 1e-7, zp), np.where(zn == 0, 1e-7, zn)
    out = alpha * _propagate(P, zp, R)
    return out - beta * _propagate(N, zn, R) if beta else out


def alphabeta_x_innvestigate_rule(x, W, b, R, alpha=(2.0, 0.0), beta=(1.0, 0.0)):
    """iNNvestigate 2.1.2's AlphaBetaXRule (Binder's advanced AlphaBeta), which its
    ``lrp.sequential_preset_a``/``_b`` put on BatchNormalization (``AlphaBetaX2m100Rule``:
    alpha = (2, 0), beta = (1, 0)). Four ratios, each with the matching half of the bias
    (b+ with w+, b- with w-) and iNNvestigate's safe_divide (0 replaced by 1e-7):
    r_ab = x^a (W^b (R / (x^a W^b + b^b))) for a, b in {+, -};
    R_in = alpha0 r_++ + beta1 r_-- - (beta0 r_+- + beta1 r_-+) (beta1 in the first term is
    iNNvestigate's, not alpha1)."""
    x, W, b = np.asarray(x, float), np.asarray(W, float), np.asarray(b, float)
    parts = {"+": (_pos(x), _pos(W), _pos(b)), "-": (_neg(x), _neg(W), _neg(b))}

    def r(sx, sw):
        xs, (_, Ws, bs) = parts[sx][0], parts[sw]
        z = xs @ Ws + bs
        return xs * (Ws @ (R / np.where(z == 0, 1e-7, z)))

    return alpha[0] * r("+", "+") + beta[1] * r("-", "-") - (
        beta[0] * r("+", "-") + beta[1] * r("-", "+"))


def zplus_rule(x, W, b, R, bias=False):
    """ZPlus = AlphaBeta(alpha=1, beta=0); with bias (Zennit's ZPlus) b+ joins the activator."""
    return alphabeta_rule(x, W, b, R, alpha=1.0, beta=0.0, bias=bias)


def zplusfast_rule(x, W, b, R):
    """ZPlusFast: R_i = sum_j x_i w+_ij / sum_i' x_i' w+_i'j R_j (raw x, no bias)."""
    C = _contrib(x, _pos(np.asarray(W, float)))
    return _propagate(C, _stab(C.sum(axis=0)), R)


def bounded_rule(x, W, b, R, low=-1.0, high=1.0):
    """Bounded (zB): C_ij = x_i w_ij - l_i w+_ij - h_i w-_ij, R_i = sum_j C_ij / sum_i' C_i'j R_j.
    low/high: scalars or arrays broadcastable to x (flat, D)."""
    x, W = np.asarray(x, float), np.asarray(W, float)
    lo = np.broadcast_to(np.asarray(low, float), x.shape)
    hi = np.broadcast_to(np.asarray(high, float), x.shape)
    C = x[:, None] * W - lo[:, None] * _pos(W) - hi[:, None] * _neg(W)
    return _propagate(C, _stab(C.sum(axis=0)), R)


def gamma_rule(x, W, b, R, gamma=0.25, bias=True):
    """Gamma. The branch follows the sign of the real output z_j = sum_i x_i w_ij + b_j (bias
    included even when bias=False, as Zennit does); the b terms below only if bias.
    z_j >= 0: C_ij = x+_i (w_ij + g w+_ij) + x-_i (w_ij + g w-_ij),
              d_j = sum_i C_ij + (b_j + g b+_j)
    z_j <  0: C_ij = x+_i (w_ij + g w-_ij) + x-_i (w_ij + g w+_ij),
              d_j = sum_i C_ij + (b_j + g b-_j)
    (the b terms only if bias); R_i = sum_j C_ij / d_j R_j."""
    x, W, b = np.asarray(x, float), np.asarray(W, float), np.asarray(b, float)
    D, M = W.shape
    z = _contrib(x, W).sum(axis=0) + b
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


# =========================================================================== whole networks
COND = 1e-4  # a denominator must be at least this fraction of the sum of its |terms|


def _cond_ok(terms, extra=0.0):
    """|Σ terms + extra| >= COND · (Σ |terms| + |extra|) per column (or everything is 0)."""
    den = terms.sum(axis=0) + extra
    scale = np.abs(terms).sum(axis=0) + np.abs(extra)
    return bool(np.all((np.abs(den) >= COND * scale) | (scale == 0)))


def pool_windows(in_shape, pool):
    """(M, pool²) flat input indices of each 2-D pooling window (stride = pool, valid), output
    positions in C order (row, col, channel); and the output shape."""
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
    return depthwise_conv2d_matrix(kernel, in_shape, strides=pool, padding="valid")


class Net:
    """The one NumPy float64 oracle for whole networks: a DAG on flat (C-order, channels_last)
    per-sample vectors, with LRP propagated by hand.

    Nodes are added in forward (topological) order; each names its output tensor (the name the
    engine uses as a ``layerwise`` key) and its input tensors. Kinds: ``kernel`` (z = x W + b,
    with ``S`` the structure matrix for the Flat rule), ``relu``, ``maxpool`` (``windows``),
    ``avgpool`` (matrix ``P``), ``flatten``, ``add``, ``concat``. Relevance follows the rules
    the engine documents: element-wise activations pass it unchanged, max pooling is
    winner-take-all, average pooling and Add are proportional (z stabilised by ``_stab``),
    Concatenate and Flatten route it, and relevance reaching a tensor from several readers is
    summed.
    """

    def __init__(self, input_name, input_shape=None):
        self.input_name, self.input_shape = input_name, input_shape
        self.nodes = []  # (name, kind, [input names], params)
        self.shapes = {input_name: input_shape}

    def add(self, name, kind, inputs, shape=None, **params):
        self.nodes.append((name, kind, list(inputs), params))
        self.shapes[name] = shape
        return name

    def dense(self, layer, inp, relu=False):
        """A Dense layer (its weights read from Keras) and, with ``relu``, its split ReLU."""
        kernel, *bias = [np.asarray(w, np.float64) for w in layer.get_weights()]
        b = bias[0] if bias else np.zeros(kernel.shape[1])
        shape = (kernel.shape[1],)
        self.add(layer.name, "kernel", [inp], shape, W=dense_matrix(kernel), b=b,
                 S=np.ones_like(kernel))
        return self.add(f"{layer.name}_activation", "relu", [layer.name], shape) if relu \
            else layer.name

    def conv(self, layer, inp, in_shape, relu=False):
        """A Conv2D layer as a matrix; returns (output name, output shape)."""
        kernel, *bias = [np.asarray(w, np.float64) for w in layer.get_weights()]
        args = (in_shape, layer.strides, layer.padding, layer.dilation_rate)
        W, out_shape = conv_matrix(kernel, *args)
        S, _ = conv_matrix(np.ones_like(kernel), *args)  # structure for the Flat rule
        b = expand_bias(bias[0], out_shape) if bias else np.zeros(W.shape[1])
        self.add(layer.name, "kernel", [inp], out_shape, W=W, b=b, S=S)
        name = self.add(f"{layer.name}_activation", "relu", [layer.name], out_shape) if relu \
            else layer.name
        return name, out_shape

    @classmethod
    def from_keras(cls, model, fold_bn=True, innvestigate_bn=False):
        """The oracle of a Keras model built from Dense, Conv1D/2D (activations relu, linear, or a
        softmax on the output, dropped), ReLU or Activation("relu"), MaxPooling2D /
        AveragePooling2D (stride = pool, valid), Flatten, Add, Concatenate and BatchNormalization,
        read from its weights and config. A BatchNormalization right after a kernel layer is folded
        into it with ``fold_bn`` (W' = W·s, b' = (b − μ)·s + β, s = γ/√(var + ε)); otherwise it is
        a kernel node of its own, the diagonal affine map y = s·x + β − μ·s.

        ``innvestigate_bn`` (with ``fold_bn=False``): the BatchNormalization node keeps its true
        forward map, but its rule sees iNNvestigate 2.1.2's surrogate layer instead
        (``backend.graph.apply_mapping_to_fused_bn_layer``, "one_linear"): kernel
        k = γ/√(var² + ε) and bias β − μ/√(var² + ε), with the variance squared and γ missing
        from the mean term, stored as the node's ``Wr``/``br``."""
        import keras

        L = keras.layers
        spec = model.inputs[0]
        name_of = {id(spec): spec._keras_history.operation.name}
        net = cls(name_of[id(spec)], tuple(spec.shape[1:]))
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                layer = node.operation
                if node.is_input or isinstance(layer, L.InputLayer):
                    continue
                ins = [name_of[id(t)] for t in node.input_tensors]
                shape = net.shapes[ins[0]]
                act = getattr(getattr(layer, "activation", None), "__name__", "linear")
                if isinstance(layer, (L.Dense, L.Conv1D, L.Conv2D)):
                    assert act in ("relu", "linear", "softmax"), act
                    relu = act == "relu"
                    out = net.dense(layer, ins[0], relu) if isinstance(layer, L.Dense) else \
                        net.conv(layer, ins[0], shape, relu)[0]
                elif isinstance(layer, L.ReLU) or (isinstance(layer, L.Activation)
                                                   and act == "relu"):
                    out = net.add(layer.name, "relu", ins, shape)
                elif isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
                    p = layer.pool_size[0]
                    assert tuple(layer.pool_size) == (p, p) == tuple(layer.strides)
                    assert layer.padding == "valid"
                    windows, out_shape = pool_windows(shape, p)
                    if isinstance(layer, L.MaxPooling2D):
                        out = net.add(layer.name, "maxpool", ins, out_shape, windows=windows)
                    else:
                        P, out_shape = avgpool_matrix(shape, p)
                        out = net.add(layer.name, "avgpool", ins, out_shape, P=P)
                elif isinstance(layer, L.BatchNormalization):
                    ws = [np.asarray(w, np.float64) for w in layer.get_weights()]
                    gamma = ws.pop(0) if layer.scale else 1.0
                    beta = ws.pop(0) if layer.center else 0.0
                    scale = gamma / np.sqrt(ws[1] + layer.epsilon)
                    shift = beta - ws[0] * scale
                    reps = int(np.prod(shape[:-1]))
                    s_full, t_full = np.tile(scale, reps), np.tile(shift * np.ones_like(scale),
                                                                   reps)
                    prev = net.nodes[-1]
                    if fold_bn and prev[0] == ins[0] and prev[1] == "kernel":
                        p = prev[3]
                        p["W"], p["b"] = p["W"] * s_full, p["b"] * s_full + t_full
                        name_of[id(node.outputs[0])] = ins[0]
                        continue
                    rule_params = {}
                    if innvestigate_bn:
                        root = np.sqrt(ws[1] ** 2 + layer.epsilon)
                        rule_params = {"Wr": np.diag(np.tile(gamma / root * np.ones_like(root),
                                                             reps)),
                                       "br": np.tile(beta - ws[0] / root, reps)}
                    out = net.add(layer.name, "kernel", ins, shape, W=np.diag(s_full), b=t_full,
                                  S=np.eye(len(s_full)), **rule_params)
                elif isinstance(layer, L.Flatten):
                    out = net.add(layer.name, "flatten", ins, (int(np.prod(shape)),))
                elif isinstance(layer, L.Add):
                    out = net.add(layer.name, "add", ins, shape)
                elif isinstance(layer, L.Concatenate):
                    size = sum(int(np.prod(net.shapes[i])) for i in ins)
                    out = net.add(layer.name, "concat", ins, (size,))
                else:
                    raise AssertionError(f"Net.from_keras does not model {type(layer).__name__}")
                name_of[id(node.outputs[0])] = out
        return net

    @property
    def output(self):
        return self.nodes[-1][0]

    def names(self):
        return {self.input_name} | {n[0] for n in self.nodes}

    def kernels(self):
        """(name, input name, params) of every kernel node, in forward order."""
        return [(name, ins[0], p) for name, kind, ins, p in self.nodes if kind == "kernel"]

    def forward(self, x, check=False):
        """Flat values of every tensor for one sample ``x``; ``check`` asserts that every
        denominator is well conditioned (``_cond_ok``) and that no max-pooling window ties."""
        v = {self.input_name: np.asarray(x, np.float64).reshape(-1)}
        for name, kind, ins, p in self.nodes:
            a = [v[i] for i in ins]
            if kind == "kernel":
                out = a[0] @ p["W"] + p["b"]
                if check:
                    xs, W = a[0], p["W"]
                    xp, xn, wp, wn = _pos(xs), _neg(xs), _pos(W), _neg(W)
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

    def margins(self, x):
        """(smallest |z| over kernel outputs, smallest max-pool gap or winner) over the batch."""
        min_z = min_gap = np.inf
        for a in np.asarray(x, np.float64).reshape(len(x), -1):
            v = self.forward(a)
            for name, kind, ins, p in self.nodes:
                if kind == "kernel":
                    min_z = min(min_z, float(np.min(np.abs(v[name]))))
                elif kind == "maxpool":
                    top2 = np.sort(v[ins[0]][p["windows"]], axis=1)[:, -2:]
                    min_gap = min(min_gap, float(np.min(top2[:, 1] - top2[:, 0])),
                                  float(np.min(top2[:, 1])))
        return min_z, min_gap

    def relevance(self, x, rule, start=None, check=False, on_kernel=None):
        """(values, relevances) for one sample: relevance at every tensor.

        Args:
            rule: ``rule(x, W, b, R, S)`` for every kernel node, or a dict name → such a rule.
            start: the relevance at the output (flat); default: the max logit, one-hot.
            on_kernel: ``on_kernel(name, x, W, S, R)`` is called before each kernel node
                propagates (to measure what a rule drops).
        """
        v = self.forward(x, check)
        logits = v[self.output]
        R = {self.output: np.eye(logits.size)[np.argmax(logits)] * logits if start is None
             else np.asarray(start, np.float64).reshape(-1)}
        for name, kind, ins, p in reversed(self.nodes):
            r = R[name]
            xs = [v[i] for i in ins]
            if kind == "kernel":
                fn = rule[name] if isinstance(rule, dict) else rule
                if on_kernel is not None:
                    on_kernel(name, xs[0], p["W"], p["S"], r)
                parts = [fn(xs[0], p.get("Wr", p["W"]), p.get("br", p["b"]), r, p["S"])]
            elif kind in ("relu", "flatten"):
                parts = [r]  # element-wise activation / reshape: unchanged
            elif kind == "maxpool":  # winner-take-all
                part = np.zeros_like(xs[0])
                win = p["windows"][np.arange(len(r)), np.argmax(xs[0][p["windows"]], axis=1)]
                np.add.at(part, win, r)
                parts = [part]
            elif kind == "avgpool":  # proportional: Z rule with the pooling matrix, no bias
                C = xs[0][:, None] * p["P"]
                parts = [_propagate(C, _stab(C.sum(axis=0)), r)]
            elif kind == "add":  # proportional
                z = _stab(sum(xs))
                parts = [xi / z * r for xi in xs]
            elif kind == "concat":  # route
                parts = np.split(r, np.cumsum([xi.size for xi in xs])[:-1])
            for i, part in zip(ins, parts):
                R[i] = R[i] + part if i in R else part  # several readers: summed
        return v, R

    def batch_relevance(self, x, rule, starts=None):
        """Input relevance shaped like ``x`` and ``{name: (B, *shape)}`` for a batch."""
        rows = [self.relevance(xn, rule, None if starts is None else starts[n])[1]
                for n, xn in enumerate(np.asarray(x, np.float64))]
        layerwise = {k: np.stack([r[k].reshape(self.shapes[k] or (-1,)) for r in rows])
                     for k in self.names()}
        return layerwise[self.input_name], layerwise

    def logits(self, x):
        return np.stack([self.forward(xn)[self.output] for xn in np.asarray(x, np.float64)])


# =========================================================================== products and norms
def sum_rule(terms, R, eps=STAB):
    """y = Σ_k t_k: R_k = t_k / (Σ t + ε·sign(Σ t)) · R (the ε rule of a sum; Bach et al. 2015)."""
    total = sum(terms)
    den = total + eps * _sign(total)
    return [t / den * R for t in terms]


def product_rule(gate, signal, R, gate_rule="signal", eps=STAB):
    """y = gate · signal, element-wise: (R_gate, R_signal). ``"signal"``: the signal takes all
    (Arras et al. 2017; CP-LRP's gate held constant, Ali et al. 2022); ``"half"``: R/2 each (the
    uniform rule, Arras et al. 2019, AttnLRP, Achtibat et al. 2024); ``"proportional"``:
    R · a / (a + b) each, a + b stabilised by ε·sign (Arras et al. 2019)."""
    if gate_rule == "signal":
        return np.zeros_like(R), R
    if gate_rule == "half":
        return R / 2, R / 2
    den = gate + signal
    den = den + eps * _sign(den)
    return gate / den * R, signal / den * R


def layernorm_matrix(x, gamma, epsilon, rms=False):
    """c[i, k] of LayerNormalization with σ held constant (Ali et al. 2022; keras-lrp's
    LayerNormRelevance), y = C x + β over the normalised values ``x`` (flat):
    c_ik = (δ_ik − 1/N) γ_i / σ, σ = √(var(x) + ε); with ``rms`` (no centring) c_ik = δ_ik γ_i / σ.
    Keras 3's deprecated ``rms_scaling=True`` divides by √(var + ε) all the same (its own
    deprecation warning says so); for rms the relevance does not depend on σ (the map is
    diagonal without a bias)."""
    N = x.size
    sigma = np.sqrt(x.var() + epsilon)
    centring = np.eye(N) if rms else np.eye(N) - 1.0 / N
    return centring * (np.asarray(gamma, np.float64) / sigma)[:, None]


def layernorm_forward(x, gamma, beta, epsilon, rms=False):
    """y = C x + β (:func:`layernorm_matrix`)."""
    return layernorm_matrix(x, gamma, epsilon, rms) @ x + beta


def layernorm_rule(x, gamma, beta, R, epsilon, rms=False):
    """The Z rule on the held-σ affine map (Ali et al. 2022):
    R_k = Σ_i x_k c_ik / (Σ_k' x_k' c_ik' + β_i) · R_i, an explicit double loop."""
    contrib = x[:, None] * layernorm_matrix(x, gamma, epsilon, rms).T  # contrib[k, i] = x_k c_ik
    return _propagate(contrib, _stab(contrib.sum(axis=0) + beta), R)


# =========================================================================== attention
def softmax(scores, mask=None):
    """A = exp(s − max s) / Σ exp(s − max s) over the last axis; entries where ``mask`` is True
    are −∞ (weight 0)."""
    s = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(s if mask is None else np.where(mask, -np.inf, s))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_rule(scores, A, R_A):
    """AttnLRP's softmax rule (Achtibat et al. 2024, Prop. 3.1): R_s = s ⊙ (R_A − A ⊙ Σ R_A),
    the sum over the last axis."""
    return scores * (R_A - A * R_A.sum(axis=-1, keepdims=True))


def matmul_rule(A, v, R, attention="attnlrp", eps=STAB):
    """out = A v (batched over leading axes), out_tj = Σ_s A_ts v_sj: each term's share of R_tj
    is A_ts v_sj / (out_tj + ε·sign) (the ε rule of the sum). AttnLRP (Achtibat et al. 2024)
    gives each term half to A and half to v (the uniform rule); CP-LRP (Ali et al. 2022) holds A
    constant, all to v. Returns (R_A, R_v)."""
    ratio = R / _stab(A @ v, eps)
    R_A = A * (ratio @ np.swapaxes(v, -1, -2))
    R_v = v * (np.swapaxes(A, -1, -2) @ ratio)
    if attention == "attnlrp":
        return R_A / 2, R_v / 2
    return np.zeros_like(A), R_v


def attention_pool_dense(A, v, dense_weights, attention):
    """The tail shared by the attention oracles: out = A·v (one sample, (t, s) · (s, j)), its
    mean over tokens g, logits = g W + b, the Z rule from the winning logit back to out (the
    mean is proportional), then the product out = A·v: (R_A, R_v, logits). The product by
    :func:`matmul_rule`."""
    out = A @ v
    g = out.mean(axis=0)
    W, b = (np.asarray(a, np.float64) for a in dense_weights)
    logits = g @ W + b
    R = np.zeros(len(logits))
    R[np.argmax(logits)] = logits.max()
    R_out = (out / len(out)) / _stab(g) * z_rule(g, W, b, R)
    return (*matmul_rule(A, v, R_out, attention), logits)


# =========================================================================== recurrent cells
def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACT = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda a: np.maximum(a, 0.0),
       "linear": lambda a: a}


def lrp_linear(hin, w, b, hout, Rout, bias_nb_units, eps, bias_factor=0.0):
    """Arras et al. 2017's ``lrp_linear`` (seed 001), written again from its formula:
    R_i = Σ_j (w_ij h_i + bias_factor (b_j + ε sign(h_j)) / N) / (h_j + ε sign(h_j)) · R_j."""
    sign_out = _sign(hout)[None, :]
    numer = w * hin[:, None] + bias_factor * (b[None, :] + eps * sign_out) / bias_nb_units
    return (numer / (hout[None, :] + eps * sign_out) * Rout[None, :]).sum(axis=1)


class RecurrentCell:
    """One Keras recurrent layer's cell (SimpleRNN, LSTM, GRU), with float64 NumPy weights, one
    sample and one step at a time (Arras et al. 2017/2019). ``back`` splits a step into named
    operations: gate · signal by :func:`product_rule`, a sum by :func:`sum_rule`, and the
    pre-activation, a linear map of [x_t, h_{t−1}], by ``rule(xh, W, b, R)`` on the explicit
    matrix. In GRU with ``reset_after`` the reset gate r is held constant, so the matrix is
    [W_h; U_h · diag(r)] and the bias b_h + r · b_rh."""

    def __init__(self, layer):
        cell = layer.cell
        self.kind = type(cell).__name__.replace("Cell", "")
        w = [np.asarray(v, np.float64) for v in cell.get_weights()]
        self.K, self.U = w[0], w[1]
        self.u = cell.units
        if len(w) > 2:
            self.b = w[2]
        else:
            shape = (2, 3 * self.u) if self.kind == "GRU" and cell.reset_after else \
                (self.K.shape[1],)
            self.b = np.zeros(shape)
        self.act = ACT[cell.activation.__name__]
        self.ract = ACT[getattr(cell, "recurrent_activation", cell.activation).__name__]
        self.reset_after = getattr(cell, "reset_after", False)
        self.n_states = 2 if self.kind == "LSTM" else 1

    def step(self, x, states):
        """(new states, cache for the backward step)."""
        u, h = self.u, states[0]
        if self.kind == "SimpleRNN":
            pre = x @ self.K + h @ self.U + self.b
            return [self.act(pre)], (pre,)
        if self.kind == "LSTM":
            c = states[1]
            z = x @ self.K + h @ self.U + self.b
            i, f, o = (self.ract(z[k * u:(k + 1) * u]) for k in (0, 1, 3))
            g = self.act(z[2 * u:3 * u])
            c_new = f * c + i * g
            return [o * self.act(c_new), c_new], (z, c_new)
        b_in, b_rec = (self.b[0], self.b[1]) if self.reset_after else (self.b, np.zeros(3 * u))
        xz = x @ self.K + b_in
        rec = h @ self.U + (b_rec if self.reset_after else 0.0)
        zg = self.ract(xz[:u] + rec[:u])
        r = self.ract(xz[u:2 * u] + rec[u:2 * u])
        if self.reset_after:
            pre = xz[2 * u:] + r * rec[2 * u:]
        else:
            pre = xz[2 * u:] + (r * h) @ self.U[:, 2 * u:]
        hh = self.act(pre)
        h_new = zg * h + (1 - zg) * hh
        return [h_new], (zg, r, hh, h_new)

    def back(self, x, prev, cache, R_states, rule, eps, gate_rule):
        """(R_x, [R at each previous state])."""
        u, d, h_prev = self.u, len(x), prev[0]
        xh = np.concatenate([x, h_prev])
        W = np.vstack([self.K, self.U])
        if self.kind == "SimpleRNN":
            r = rule(xh, W, self.b, R_states[0])
            return r[:d], [r[d:]]
        if self.kind == "LSTM":
            z, c = cache
            c_prev = prev[1]
            i, f, o = (self.ract(z[k * u:(k + 1) * u]) for k in (0, 1, 3))
            g = self.act(z[2 * u:3 * u])
            R_o, R_tc = product_rule(o, self.act(c), R_states[0], gate_rule, eps)
            R_fc, R_ig = sum_rule([f * c_prev, i * g], R_states[1] + R_tc, eps)
            R_f, R_cprev = product_rule(f, c_prev, R_fc, gate_rule, eps)
            R_i, R_g = product_rule(i, g, R_ig, gate_rule, eps)
            if gate_rule == "signal":
                r = rule(xh, W[:, 2 * u:3 * u], self.b[2 * u:3 * u], R_g)
            else:
                r = rule(xh, W, self.b, np.concatenate([R_i, R_f, R_g, R_o]))
            return r[:d], [r[d:], R_cprev]
        zg, rg, hh, h = cache
        R_direct, R_cand = sum_rule([zg * h_prev, (1 - zg) * hh], R_states[0], eps)
        Kh, Uh = self.K[:, 2 * u:], self.U[:, 2 * u:]
        if self.reset_after:
            W_eff = np.vstack([Kh, Uh * rg[None, :]])
            b_eff = self.b[0][2 * u:] + rg * self.b[1][2 * u:]
            r = rule(xh, W_eff, b_eff, R_cand)
        else:
            r = rule(np.concatenate([x, rg * h_prev]), np.vstack([Kh, Uh]), self.b[2 * u:],
                     R_cand)
        return r[:d], [R_direct + r[d:]]


def rnn_forward(layer, x, mask=None, init=None):
    """One sample forward through one recurrent layer: (cell, processing order, the states
    before each step, each step's cache (None where masked), outputs h in processing order,
    the final states)."""
    cell = RecurrentCell(layer)
    order = list(range(len(x)))[::-1] if layer.go_backwards else list(range(len(x)))
    states = list(init) if init is not None else [np.zeros(cell.u) for _ in range(cell.n_states)]
    prevs, caches, outs = [], [], []
    for t in order:
        prevs.append(states)
        if mask is None or mask[t]:
            states, cache = cell.step(x[t], states)
        else:
            cache = None
        caches.append(cache)
        outs.append(states[0])
    return cell, order, prevs, caches, np.array(outs), states


def rnn(layer, x, R_seq=None, R_last=None, rule=None, eps=0.0, gate_rule="signal", mask=None,
        R_c_last=None, init=None):
    """One sample through one recurrent layer: (R_x (T, D), outputs h in processing order,
    [R at the initial states]). ``R_seq`` is aligned with the outputs (processing order);
    ``init``: the initial states (zeros by default)."""
    cell, order, prevs, caches, outs, _ = rnn_forward(layer, x, mask, init)
    T = len(x)
    R_states = [np.zeros(cell.u) for _ in range(cell.n_states)]
    if R_last is not None:
        R_states[0] = R_states[0] + R_last
    if R_c_last is not None:
        R_states[1] = R_states[1] + R_c_last
    R_x = np.zeros_like(x, dtype=np.float64)
    for s in reversed(range(T)):
        t = order[s]
        if R_seq is not None:
            R_states[0] = R_states[0] + R_seq[s]
        if caches[s] is None:
            continue  # masked: the state passes, the input gets nothing
        R_x[t], R_states = cell.back(x[t], prevs[s], caches[s], R_states, rule, eps, gate_rule)
    return R_x, outs, R_states


def bidirectional(layer, x, R, rule, eps, mask=None):
    """One sample through Bidirectional (merge concat, sum or ave)."""
    seq = layer.return_sequences
    fwd, bwd = layer.forward_layer, layer.backward_layer
    _, h_f, _ = rnn(fwd, x, rule=rule, eps=eps, mask=mask)
    _, h_b, _ = rnn(bwd, x, rule=rule, eps=eps, mask=mask)
    y_f, y_b = (h_f, h_b[::-1]) if seq else (h_f[-1], h_b[-1])
    if layer.merge_mode == "concat":
        R_f, R_b = R[..., :y_f.shape[-1]], R[..., y_f.shape[-1]:]
    else:
        R_f, R_b = sum_rule([y_f, y_b], R, eps)
    if seq:
        a = rnn(fwd, x, R_seq=R_f, rule=rule, eps=eps, mask=mask)[0]
        b = rnn(bwd, x, R_seq=R_b[::-1], rule=rule, eps=eps, mask=mask)[0]
    else:
        a = rnn(fwd, x, R_last=R_f, rule=rule, eps=eps, mask=mask)[0]
        b = rnn(bwd, x, R_last=R_b, rule=rule, eps=eps, mask=mask)[0]
    return a + b


def recurrent_net(model, x, rule, eps, gate_rule="signal"):
    """One sample through a Keras model built from Embedding (``mask_zero``), Masking,
    TimeDistributed(Dense), SimpleRNN / LSTM / GRU (``return_sequences``, ``return_state``,
    ``go_backwards``, ``initial_state`` from other tensors), Bidirectional, Flatten,
    Concatenate and Dense, walked node by node: (relevance at each input, a list for several
    inputs; the NumPy logits). Dense layers take ``rule(x, W, b, R)``; the cells go through
    :func:`rnn` and :func:`bidirectional`; the winning logit starts the relevance; an Embedding
    passes the summed relevance of each vector to its token; relevance reaching a tensor from
    several readers is summed."""
    import keras

    L = keras.layers
    xs = list(x) if len(model.inputs) > 1 else [x]
    v, mask, done = {}, {}, []  # value and mask by tensor id; (node, inputs, extra) in order
    for k, t in enumerate(model.inputs):
        v[id(t)] = np.asarray(xs[k])
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input or isinstance(layer, L.InputLayer):
                continue
            if not isinstance(layer, L.Layer):  # the ops computing a Keras mask (NotEqual,
                v[id(node.outputs[0])] = np.zeros(0, bool)  # Any): the masks are kept below
                continue
            targets = [t for t in node.input_tensors if v[id(t)].dtype != bool]  # not masks
            ins = [v[id(t)] for t in targets]
            m = mask.get(id(node.input_tensors[0]))
            extra = None
            if isinstance(layer, L.Embedding):
                outs = [layer.get_weights()[0][ins[0]]]
                m = ins[0] != 0 if layer.mask_zero else None
            elif isinstance(layer, L.Masking):
                outs, m = [ins[0]], np.any(ins[0] != layer.mask_value, axis=-1)
            elif isinstance(layer, (L.Dense, L.TimeDistributed)):
                dense = layer.layer if isinstance(layer, L.TimeDistributed) else layer
                w = [np.asarray(a, np.float64) for a in dense.get_weights()]
                extra = (w[0], w[1] if len(w) > 1 else np.zeros(w[0].shape[1]))
                outs = [ins[0] @ extra[0] + extra[1]]
            elif isinstance(layer, L.Bidirectional):
                h_f = rnn_forward(layer.forward_layer, ins[0], m)[4]
                h_b = rnn_forward(layer.backward_layer, ins[0], m)[4]
                y_f, y_b = (h_f, h_b[::-1]) if layer.return_sequences else (h_f[-1], h_b[-1])
                outs = [np.concatenate([y_f, y_b], axis=-1) if layer.merge_mode == "concat" else
                        (y_f + y_b) * (0.5 if layer.merge_mode == "ave" else 1.0)]
            elif isinstance(layer, L.RNN):
                init = ins[1:] or None
                *_, h, states = rnn_forward(layer, ins[0], m, init)
                outs = [h if layer.return_sequences else h[-1]]
                outs += list(states) if layer.return_state else []
                extra = init
            elif isinstance(layer, L.Flatten):
                outs = [ins[0].reshape(-1)]
            elif isinstance(layer, L.Concatenate):
                outs = [np.concatenate(ins, axis=-1)]
            else:
                raise AssertionError(f"recurrent_net does not model {type(layer).__name__}")
            for t, o in zip(node.outputs, outs):
                v[id(t)], mask[id(t)] = o, m
            done.append((node, targets, ins, m, extra))
    logits = v[id(model.outputs[0])]
    R = {id(model.outputs[0]): np.eye(logits.size)[np.argmax(logits)] * logits}
    for node, targets, ins, m, extra in reversed(done):
        layer = node.operation
        Rs = [R.get(id(t), np.zeros_like(v[id(t)])) for t in node.outputs]
        if isinstance(layer, L.Embedding):
            parts = [Rs[0].sum(axis=-1)]
        elif isinstance(layer, L.Dense):
            parts = [rule(ins[0], *extra, Rs[0])]
        elif isinstance(layer, L.TimeDistributed):
            parts = [np.stack([rule(xt, *extra, rt) for xt, rt in zip(ins[0], Rs[0])])]
        elif isinstance(layer, L.Bidirectional):
            parts = [bidirectional(layer, ins[0], Rs[0], rule, eps, mask=m)]
        elif isinstance(layer, L.RNN):
            seq = layer.return_sequences
            R_last = (Rs[1] if layer.return_state else 0.0) + (0.0 if seq else Rs[0])
            R_c = Rs[2] if layer.return_state and len(Rs) > 2 else None
            R_x, _, R_init = rnn(layer, ins[0], R_seq=Rs[0] if seq else None, R_last=R_last,
                                 rule=rule, eps=eps, gate_rule=gate_rule, mask=m, R_c_last=R_c,
                                 init=extra)
            parts = [R_x] + (list(R_init) if extra is not None else [])
        elif isinstance(layer, L.Flatten):
            parts = [Rs[0].reshape(ins[0].shape)]
        elif isinstance(layer, L.Concatenate):
            parts = np.split(Rs[0], np.cumsum([a.shape[-1] for a in ins])[:-1], axis=-1)
        else:  # Masking
            parts = [Rs[0]]
        for t, part in zip(targets, parts):
            R[id(t)] = R[id(t)] + part if id(t) in R else part
    found = [R.get(id(t), np.zeros_like(v[id(t)], dtype=np.float64)) for t in model.inputs]
    return (found if len(found) > 1 else found[0]), logits
