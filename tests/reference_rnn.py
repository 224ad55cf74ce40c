"""Independent NumPy float64 reference for LRP through recurrent layers, written from the formulas
of Arras et al. 2017/2019 one sample and one step at a time (no TensorFlow).

A cell step is a list of named operations, each with its rule:

* gate · signal: the signal takes all (``"signal"``), or each half (``"half"``), or each its
  share a / (a + b) (``"proportional"``);
* a sum Σ t_k: R_k = t_k / (Σ t + ε·sign) · R;
* the pre-activation, a linear map of [x_t, h_{t−1}]: the LRP rule ``rule(xh, W, b, R)`` (from
  ``reference.py``) on the explicit matrix. In GRU with ``reset_after`` the reset gate r is held
  constant, so the matrix is [W_h; U_h · diag(r)] and the bias b_h + r · b_rh.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACT = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda a: np.maximum(a, 0.0),
       "linear": lambda a: a}


def _sign(a):
    return np.where(a >= 0, 1.0, -1.0)


def lrp_linear(hin, w, b, hout, Rout, bias_nb_units, eps, bias_factor=0.0):
    """Arras's ``lrp_linear`` (seed 001), written again from its formula:
    R_i = Σ_j (w_ij h_i + bias_factor (b_j + ε sign(h_j)) / N) / (h_j + ε sign(h_j)) · R_j."""
    sign_out = _sign(hout)[None, :]
    numer = w * hin[:, None] + bias_factor * (b[None, :] + eps * sign_out) / bias_nb_units
    return (numer / (hout[None, :] + eps * sign_out) * Rout[None, :]).sum(axis=1)


def split_sum(terms, R, eps):
    total = sum(terms)
    den = total + eps * _sign(total)
    return [t / den * R for t in terms]


def product(gate, signal, R, gate_rule, eps):
    """(R_gate, R_signal)."""
    if gate_rule == "signal":
        return np.zeros_like(R), R
    if gate_rule == "half":
        return R / 2, R / 2
    den = gate + signal
    den = den + eps * _sign(den)
    return gate / den * R, signal / den * R


class Cell:
    """One Keras recurrent layer's cell, with float64 NumPy weights."""

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
            R_o, R_tc = product(o, self.act(c), R_states[0], gate_rule, eps)
            R_fc, R_ig = split_sum([f * c_prev, i * g], R_states[1] + R_tc, eps)
            R_f, R_cprev = product(f, c_prev, R_fc, gate_rule, eps)
            R_i, R_g = product(i, g, R_ig, gate_rule, eps)
            if gate_rule == "signal":
                r = rule(xh, W[:, 2 * u:3 * u], self.b[2 * u:3 * u], R_g)
            else:
                r = rule(xh, W, self.b, np.concatenate([R_i, R_f, R_g, R_o]))
            return r[:d], [r[d:], R_cprev]
        zg, rg, hh, h = cache
        R_direct, R_cand = split_sum([zg * h_prev, (1 - zg) * hh], R_states[0], eps)
        Kh, Uh = self.K[:, 2 * u:], self.U[:, 2 * u:]
        if self.reset_after:
            W_eff = np.vstack([Kh, Uh * rg[None, :]])
            b_eff = self.b[0][2 * u:] + rg * self.b[1][2 * u:]
            r = rule(xh, W_eff, b_eff, R_cand)
        else:
            r = rule(np.concatenate([x, rg * h_prev]), np.vstack([Kh, Uh]), self.b[2 * u:],
                     R_cand)
        return r[:d], [R_direct + r[d:]]


def rnn(layer, x, R_seq=None, R_last=None, rule=None, eps=0.0, gate_rule="signal", mask=None,
        R_c_last=None, init=None):
    """One sample through one recurrent layer: (R_x (T, D), outputs h in processing order,
    [R at the initial states]). ``R_seq`` is aligned with the outputs (processing order);
    ``init``: the initial states (zeros by default)."""
    cell = Cell(layer)
    T = len(x)
    order = list(range(T))[::-1] if layer.go_backwards else list(range(T))
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
    return R_x, np.array(outs), R_states


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
        R_f, R_b = split_sum([y_f, y_b], R, eps)
    if seq:
        a = rnn(fwd, x, R_seq=R_f, rule=rule, eps=eps, mask=mask)[0]
        b = rnn(bwd, x, R_seq=R_b[::-1], rule=rule, eps=eps, mask=mask)[0]
    else:
        a = rnn(fwd, x, R_last=R_f, rule=rule, eps=eps, mask=mask)[0]
        b = rnn(bwd, x, R_last=R_b, rule=rule, eps=eps, mask=mask)[0]
    return a + b
