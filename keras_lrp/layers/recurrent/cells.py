"""LRP through recurrent cells (Arras et al. 2017, "Explaining recurrent neural network
predictions in sentiment analysis"; Arras et al. 2019, "Evaluating recurrent neural network
explanations").

The forward recurrence is replayed with its gates, then relevance runs back through time. Both are
one compiled loop each (:func:`keras_lrp.backend.scan`), so the graph, and the build time, do not
grow with the sequence length. Three kinds of operation appear inside a cell, each with its rule:

* a product of a gate and a signal (``o·tanh(c)``, ``i·g``, ``f·c``): with ``gate_rule="signal"``
  (the default, Arras et al. 2017) the signal takes all of the relevance and the gate none;
  ``"half"`` gives each half, and ``"proportional"`` splits in proportion to their values
  (R_a = a / (a + b) · R, stabilised); the gate's share then crosses its own linear map;
* a sum (``c_t = f·c_{t−1} + i·g``, GRU's ``h_t = z·h_{t−1} + (1−z)·h̃``):
  R_k = t_k / (Σ t + ε·sign) · R, with the rule's ε (or the tiny default stabiliser);
* a linear map of ``[x_t, h_{t−1}]`` (the pre-activations): the rule the composite gives the
  layer (Epsilon, Z, AlphaBeta, …), applied to the concatenated input and kernel ``[W; U]``.
  In GRU (``reset_after=True``) the reset gate r is held constant: h̃'s pre-activation is
  x W_h + b_h + r·(h U_h + b_rh), linear in [x, h] with the columns of U_h scaled by r.

Element-wise activations (tanh, sigmoid) pass relevance unchanged. Relevance of h_{t−1} from
step t is added to the relevance h_{t−1} receives as an output. A masked step keeps the state
unchanged (h_t = h_{t−1}), so relevance passes it unchanged and its input gets exactly 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List, Optional

import keras
from keras import ops

from keras_lrp import backend
from keras_lrp.core.linear import LinearOp
from keras_lrp.core.stabilize import stabilize

#: How a product of a gate and a signal divides its relevance.
GATE_RULES = ("signal", "half", "proportional")


class StepOp(LinearOp):
    """The linear map of one cell step, ``z = [x, h] K + b``, with an explicit transpose.

    With ``gate`` (GRU, ``reset_after=True``), the rows of K from ``split`` on act on h and their
    output is multiplied by the per-sample gate: ``z = x K_x + gate ⊙ (h K_h) + b``.
    """

    def __init__(self, kernel, bias, gate=None, split: Optional[int] = None):
        super().__init__(None, self._matmul, kernel, bias)
        self.gate, self.split = gate, split

    def _matmul(self, x, k):
        if self.gate is None:
            return ops.matmul(x, k)
        s = self.split
        return ops.matmul(x[:, :s], k[:s]) + self.gate * ops.matmul(x[:, s:], k[s:])

    def structure(self):
        return StepOp(self.kernel, self.bias)

    def transpose(self, s, like, kernel=None):
        k = self.kernel if kernel is None else kernel
        if self.gate is None:
            return ops.matmul(s, ops.transpose(k))
        n = self.split
        return ops.concatenate([ops.matmul(s, ops.transpose(k[:n])),
                                ops.matmul(self.gate * s, ops.transpose(k[n:]))], axis=-1)


def split_product(gate, signal, relevance, gate_rule: str, eps):
    """(R_gate, R_signal) of ``gate · signal`` carrying ``relevance``."""
    if gate_rule == "signal":
        return None, relevance
    if gate_rule == "half":
        return 0.5 * relevance, 0.5 * relevance
    ratio = relevance / stabilize(gate + signal, eps)
    return gate * ratio, signal * ratio


class _Cell:
    """One cell's forward step (with what its backward step needs) and backward step."""

    #: Number of states (h, or h and c).
    n_states = 1

    def __init__(self, cell, rule, gate_rule: str = "signal"):
        if gate_rule not in GATE_RULES:
            raise ValueError(f"gate_rule must be one of {GATE_RULES}, got {gate_rule!r}.")
        self.cell, self.rule, self.gate_rule = cell, rule, gate_rule
        self.units = cell.units
        self.act, self.ract = cell.activation, getattr(cell, "recurrent_activation", None)

    def weights(self, dtype):
        cast = lambda w: None if w is None else ops.cast(w, dtype)  # noqa: E731
        return (cast(self.cell.kernel), cast(self.cell.recurrent_kernel),
                cast(self.cell.bias) if self.cell.use_bias else None)

    def eps(self, dtype):
        """The rule's ε for the sums, or ``None``: the default stabiliser."""
        e = getattr(self.rule, "epsilon", None)
        return float(e) if e is not None and float(e) > 0 else None

    def linear(self, op, xh, z, relevance):
        return self.rule.relevance(op, xh, z, relevance)


class SimpleRNNCell(_Cell):
    """h_t = act(x_t W + h_{t−1} U + b): the rule on the linear map, the activation passes R."""

    def forward(self, x, states, w):
        K, U, b = w
        pre = ops.matmul(x, K) + ops.matmul(states[0], U)
        pre = pre if b is None else pre + b
        return [self.act(pre)], [pre]

    def backward(self, x, prev, record, r_states, w):
        K, U, b = w
        op = StepOp(ops.concatenate([K, U], axis=0), b)
        r = self.linear(op, ops.concatenate([x, prev[0]], axis=-1), record[0], r_states[0])
        d = x.shape[-1]
        return r[:, :d], [r[:, d:]]


class LSTMCell(_Cell):
    """Keras' LSTM (gates in the order i, f, c, o)."""

    n_states = 2

    def forward(self, x, states, w):
        K, U, b = w
        h, c = states
        z = ops.matmul(x, K) + ops.matmul(h, U)
        z = z if b is None else z + b
        zi, zf, zg, zo = ops.split(z, 4, axis=-1)
        c_new = self.ract(zf) * c + self.ract(zi) * self.act(zg)
        return [self.ract(zo) * self.act(c_new), c_new], [z, c_new]

    def backward(self, x, prev, record, r_states, w):
        K, U, b = w
        (h_prev, c_prev), (z, c), (r_h, r_c) = prev, record, r_states
        eps = self.eps(x.dtype)
        zi, zf, zg, zo = ops.split(z, 4, axis=-1)
        i, f, g, o = self.ract(zi), self.ract(zf), self.act(zg), self.ract(zo)
        r_o, r_tanh = split_product(o, self.act(c), r_h, self.gate_rule, eps)
        r_c = r_c + r_tanh
        ratio = r_c / stabilize(c, eps)
        r_f, r_cprev = split_product(f, c_prev, f * c_prev * ratio, self.gate_rule, eps)
        r_i, r_g = split_product(i, g, i * g * ratio, self.gate_rule, eps)
        xh = ops.concatenate([x, h_prev], axis=-1)
        kernel = ops.concatenate([K, U], axis=0)
        u = self.units
        if self.gate_rule == "signal":  # only the cell candidate's columns carry relevance
            op = StepOp(kernel[:, 2 * u:3 * u], None if b is None else b[2 * u:3 * u])
            r = self.linear(op, xh, zg, r_g)
        else:
            r = self.linear(StepOp(kernel, b), xh, z,
                            ops.concatenate([r_i, r_f, r_g, r_o], axis=-1))
        d = x.shape[-1]
        return r[:, :d], [r[:, d:], r_cprev]


class GRUCell(_Cell):
    """Keras' GRU (gates in the order z, r, h), ``reset_after`` True or False."""

    def __init__(self, cell, rule, gate_rule="signal"):
        super().__init__(cell, rule, gate_rule)
        if gate_rule != "signal":
            raise ValueError(f"GRU layer '{cell.name}': gate_rule={gate_rule!r} is implemented "
                             "for LSTM only; use gate_rule='signal' (the default) for GRU.")
        self.reset_after = cell.reset_after

    def _biases(self, b):
        if b is None:
            return None, None
        if self.reset_after:
            return b[0], b[1]
        return b, None

    def _parts(self, x, h, w):
        K, U, b = w
        u = self.units
        b_in, b_rec = self._biases(b)
        xz = ops.matmul(x, K)
        xz = xz if b_in is None else xz + b_in
        if self.reset_after:
            rec = ops.matmul(h, U)
            rec = rec if b_rec is None else rec + b_rec
            z = self.ract(xz[:, :u] + rec[:, :u])
            r = self.ract(xz[:, u:2 * u] + rec[:, u:2 * u])
            pre = xz[:, 2 * u:] + r * rec[:, 2 * u:]
        else:
            rec = ops.matmul(h, U[:, :2 * u])
            z = self.ract(xz[:, :u] + rec[:, :u])
            r = self.ract(xz[:, u:2 * u] + rec[:, u:])
            pre = xz[:, 2 * u:] + ops.matmul(r * h, U[:, 2 * u:])
        return z, r, pre

    def forward(self, x, states, w):
        h = states[0]
        z, r, pre = self._parts(x, h, w)
        h_new = z * h + (1 - z) * self.act(pre)
        return [h_new], [z, r, pre, h_new]

    def backward(self, x, prev, record, r_states, w):
        K, U, b = w
        u, d = self.units, x.shape[-1]
        h_prev = prev[0]
        z, r, pre, h = record
        ratio = r_states[0] / stabilize(h, self.eps(x.dtype))
        r_direct = z * h_prev * ratio
        r_cand = (1 - z) * self.act(pre) * ratio
        kernel = ops.concatenate([K[:, 2 * u:], U[:, 2 * u:]], axis=0)
        b_in, b_rec = self._biases(b)
        if self.reset_after:  # x W_h + b_h + r·(h U_h + b_rh): r held constant
            bias = None if b is None else b_in[2 * u:] + r * b_rec[2 * u:]
            op = StepOp(kernel, bias, gate=r, split=d)
            rel = self.linear(op, ops.concatenate([x, h_prev], axis=-1), pre, r_cand)
        else:  # x W_h + (r·h) U_h + b_h: (r·h) is the signal, its relevance goes to h
            op = StepOp(kernel, None if b is None else b_in[2 * u:])
            rel = self.linear(op, ops.concatenate([x, r * h_prev], axis=-1), pre, r_cand)
        return rel[:, :d], [r_direct + rel[:, d:]]


def cell_math(layer, rule, gate_rule: str = "signal") -> _Cell:
    """The cell math for a Keras LSTM, GRU or SimpleRNN layer."""
    kinds = ((keras.layers.LSTMCell, LSTMCell), (keras.layers.GRUCell, GRUCell),
             (keras.layers.SimpleRNNCell, SimpleRNNCell))
    for cls, math in kinds:
        if type(layer.cell) is cls:
            return math(layer.cell, rule, gate_rule)
    raise ValueError(f"Layer '{layer.name}' has a cell of type {type(layer.cell).__name__}; "
                     "keras-lrp propagates relevance through LSTMCell, GRUCell and "
                     "SimpleRNNCell. Register a relevance layer for it (keras_lrp.register_layer).")


def _time_major(t):
    return ops.transpose(t, [1, 0] + list(range(2, len(t.shape))))


@dataclasses.dataclass
class Replay:
    """One layer's forward recurrence, replayed: what :func:`relevance` needs (time-major)."""

    cell: _Cell
    weights: tuple
    xs: Any  # the inputs (T, B, D), in processing order
    masks: Any  # (T, B, 1) of 0/1, or None
    init_states: List
    states: List  # each (T, B, units)
    records: List  # what each step's backward needs
    go_backwards: bool

    @property
    def outputs(self):
        """h at every step (B, T, units), in processing order (as the layer returns them)."""
        return ops.transpose(self.states[0], [1, 0, 2])


def replay(cell: _Cell, x, init_states: List, mask=None, go_backwards: bool = False) -> Replay:
    """The forward recurrence of one layer on x (B, T, D), one compiled loop.

    Args:
        init_states: the initial states (zeros unless the model passes them).
        mask: (B, T) booleans, or ``None``: a masked step keeps the state.
    """
    dtype = x.dtype
    w = cell.weights(dtype)
    if go_backwards:
        x = ops.flip(x, axis=1)
        mask = None if mask is None else ops.flip(mask, axis=1)
    xs = _time_major(x)
    ms = None if mask is None else _time_major(ops.expand_dims(ops.cast(mask, dtype), -1))
    n = cell.n_states

    def forward(acc, elems):
        x_t, m_t = elems if ms is not None else (elems, None)
        states = list(acc[:n])
        new, record = cell.forward(x_t, states, w)
        if m_t is not None:
            new = [m_t * a + (1 - m_t) * s for a, s in zip(new, states)]
        return tuple(new) + tuple(record)

    first = cell.forward(xs[0], list(init_states), w)
    init = tuple(init_states) + tuple(ops.zeros_like(t) for t in first[1])
    seq = backend.scan(forward, xs if ms is None else (xs, ms), init)
    return Replay(cell, w, xs, ms, list(init_states), list(seq[:n]), list(seq[n:]),
                  go_backwards)


def relevance(rep: Replay, r_seq=None, r_states: Optional[List] = None):
    """The backward recurrence of relevance, one compiled loop.

    Args:
        r_seq: relevance at every output step (B, T, units), in the order the layer returns them
            (the processing order, reversed with ``go_backwards``), or ``None``.
        r_states: relevance at the final states [h_T(, c_T)], or ``None``.

    Returns:
        (relevance at x (B, T, D), [relevance at each initial state]).
    """
    cell, w, xs, ms = rep.cell, rep.weights, rep.xs, rep.masks
    prevs = [ops.concatenate([ops.expand_dims(s0, 0), s[:-1]], axis=0)
             for s0, s in zip(rep.init_states, rep.states)]
    r_out = ops.zeros_like(rep.states[0]) if r_seq is None else _time_major(r_seq)

    def backward(acc, elems):
        x_t, prev, record, r_t, m_t = elems
        r_states_t = list(acc[1:])
        r_states_t[0] = r_states_t[0] + r_t
        r_x, r_prev = cell.backward(x_t, list(prev), list(record), r_states_t, w)
        if m_t is not None:  # a masked step: state passes, its input gets nothing
            r_x = r_x * m_t
            r_prev = [m_t * a + (1 - m_t) * s for a, s in zip(r_prev, r_states_t)]
        return (r_x,) + tuple(r_prev)

    r_last = [ops.zeros_like(s) for s in rep.init_states]
    for k, r in enumerate(r_states or []):
        if r is not None:
            r_last[k] = r_last[k] + r
    elems = (xs, tuple(prevs), tuple(rep.records), r_out)
    if ms is None:
        step = lambda acc, e: backward(acc, e + (None,))  # noqa: E731
    else:
        elems, step = elems + (ms,), backward
    init_back = (ops.zeros_like(xs[0]),) + tuple(r_last)
    out = backend.scan(step, elems, init_back, reverse=True)
    r_x = ops.transpose(out[0], [1, 0, 2])
    if rep.go_backwards:
        r_x = ops.flip(r_x, axis=1)
    return r_x, [r[0] for r in out[1:]]


def run(cell: _Cell, x, init_states: List, r_seq=None, r_states: Optional[List] = None,
        mask=None, go_backwards: bool = False):
    """Relevance of one recurrent layer: :func:`replay`, then :func:`relevance`."""
    return relevance(replay(cell, x, init_states, mask, go_backwards), r_seq, r_states)


__all__ = ["GATE_RULES", "GRUCell", "LSTMCell", "Replay", "SimpleRNNCell", "StepOp", "cell_math",
           "relevance", "replay", "run",
           "split_product"]
