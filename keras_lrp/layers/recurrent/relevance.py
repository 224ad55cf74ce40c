"""Relevance layers for sequence models: recurrent layers, Bidirectional, TimeDistributed and
Embedding (the maths of the cells is in :mod:`keras_lrp.layers.recurrent.cells`)."""

from __future__ import annotations

import warnings

import keras
from keras import ops, tree

from keras_lrp.core.graph import Ref
from keras_lrp.core.stabilize import stabilize
from keras_lrp.layers import sequence
from keras_lrp.layers.base import RelevanceLayer, named_after
from keras_lrp.layers.recurrent import cells as recurrent


def input_roles(node) -> list:
    """The role of each of a recurrent node's tensor inputs, in ``node.inputs`` order:
    ``"x"`` (the sequence), ``"state"`` (an initial state) or ``"mask"``."""
    roles = []
    for path, value in tree.flatten_with_path((list(node.args), dict(node.kwargs))):
        if isinstance(value, Ref):
            key = path[1] if path[0] == 1 else None
            roles.append("mask" if key == "mask" else "state" if key == "initial_state" or
                         (key is None and roles) else "x")
    return roles


def recurrent_problem(layer):
    """Why keras-lrp cannot explain this recurrent layer (words following "Layer 'name' "), or
    ``None``."""
    if getattr(layer, "stateful", False):
        return ("is stateful: its initial state is carried over from earlier batches, so "
                "relevance cannot be attributed within one batch; rebuild the model with "
                "stateful=False and copy the weights")
    cell = getattr(layer, "cell", None)
    kinds = (keras.layers.LSTMCell, keras.layers.GRUCell, keras.layers.SimpleRNNCell)
    if type(cell) not in kinds:
        return (f"has a cell of type {type(cell).__name__}; keras-lrp propagates relevance "
                "through LSTM, GRU and SimpleRNN cells (register a relevance layer for others "
                "with keras_lrp.register_layer)")
    return None


class RecurrentRelevance(RelevanceLayer):
    """LRP through an LSTM, GRU or SimpleRNN layer (Arras et al. 2017), one compiled loop.

    Called on ``[x, *initial states, *outputs, *relevances at the outputs]``; the outputs are
    the sequence (or last step) and, with ``return_state``, the final states. Returns the
    relevance at x and at each initial state. See :mod:`keras_lrp.layers.recurrent.cells` for
    the rules.

    Args:
        rule: the LRP rule of the linear maps inside the cell.
        gate_rule: ``"signal"`` (default), ``"half"`` or ``"proportional"`` (LSTM).
        roles: the role of each tensor input (:func:`input_roles`).
    """

    multi_output = True

    def __init__(self, layer=None, rule=None, gate_rule="signal", roles=("x",), **kwargs):
        super().__init__(layer=layer, **kwargs)
        self.rule, self.gate_rule, self.roles = rule, gate_rule, list(roles)
        self.n_inputs = len(self.roles)
        self.cell = recurrent.cell_math(layer, rule, gate_rule)

    @classmethod
    def rule_problem(cls, node, ctx):
        """Why ``rule`` cannot serve this recurrent node under the context's ``gate_rule``, or
        ``None`` (a stateful layer, an unknown cell, a gate rule other than LSTM's)."""
        layer = node.layer
        problem = recurrent_problem(layer)
        if problem is None and ctx.gate_rule != "signal" and \
                not isinstance(layer, keras.layers.LSTM):
            return (f"is a {type(layer).__name__}; gate_rule={ctx.gate_rule!r} is implemented "
                    "for LSTM only (use gate_rule='signal', the default)")
        return problem

    @classmethod
    def with_rule(cls, node, rule, ctx) -> RecurrentRelevance:
        """The relevance layer of a recurrent node whose cell's linear maps take ``rule``."""
        return cls(layer=node.layer, rule=rule, gate_rule=ctx.gate_rule, roles=input_roles(node),
                   **named_after(node))

    @property
    def n_outputs(self):
        return 1 + (self.cell.n_states if self.layer.return_state else 0)

    def build(self, input_shape):
        """Nothing to build: the weights are the forward layer's."""

    def call(self, inputs, mask=None):
        xs = inputs[:self.n_inputs]
        zs = inputs[self.n_inputs:self.n_inputs + self.n_outputs]
        rs = inputs[self.n_inputs + self.n_outputs:]
        given = [x for x, role in zip(xs, self.roles) if role == "mask"]
        x_mask = given[0] if given else (mask[0] if isinstance(mask, (list, tuple)) else mask)
        signals = [x for x, role in zip(xs, self.roles) if role != "mask"]
        relevant = iter(self.propagate_all(signals, zs, rs, x_mask))
        return self.checked(xs, [ops.zeros(ops.shape(x), self.compute_dtype) if role == "mask"
                                 else next(relevant) for x, role in zip(xs, self.roles)])

    def propagate_all(self, xs, zs, rs, mask):
        layer, x = self.layer, xs[0]
        init = list(xs[1:]) or [ops.zeros((ops.shape(x)[0], layer.cell.units), x.dtype)
                                for _ in range(self.cell.n_states)]
        r_seq = rs[0] if layer.return_sequences else None
        r_states = list(rs[1:]) if layer.return_state else []
        if not layer.return_sequences:
            r_states = [rs[0] + (r_states[0] if r_states else 0)] + r_states[1:]
        r_x, r_init = recurrent.run(self.cell, x, init, r_seq, r_states, mask,
                                    layer.go_backwards)
        return [r_x] + r_init[:len(xs) - 1]

    def compute_output_spec(self, inputs, mask=None):
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                 for x in inputs[:self.n_inputs]]
        return specs[0] if len(specs) == 1 else specs

    def get_config(self):
        return {**super().get_config(), "gate_rule": self.gate_rule, "roles": self.roles}

    def __repr__(self):
        return f"{type(self).__name__}({self.rule!r}, gate_rule={self.gate_rule!r})"


class BidirectionalRelevance(RecurrentRelevance):
    """LRP through ``Bidirectional``: the merge, then each direction's recurrent relevance.

    Formula (merge of the forward output y_f and the time-aligned backward output y_b):
        concat: each part keeps its relevance;
        sum, ave: R_f = y_f / (y_f + y_b + ε·sign) · R,  R_b = y_b / (…) · R
    The input relevance is the sum of both directions'.
    """

    def __init__(self, layer=None, rule=None, gate_rule="signal", roles=("x",), **kwargs):
        RelevanceLayer.__init__(self, layer=layer, **kwargs)
        self.rule, self.gate_rule, self.roles = rule, gate_rule, list(roles)
        self.n_inputs = len(self.roles)
        self.cells = [recurrent.cell_math(d, rule, gate_rule)
                      for d in (layer.forward_layer, layer.backward_layer)]

    @classmethod
    def rule_problem(cls, node, ctx):
        """Why ``rule`` cannot serve this Bidirectional node, or ``None``."""
        return bidirectional_problem(node.layer)

    @property
    def n_outputs(self):
        return 1

    def propagate_all(self, xs, zs, rs, mask):
        layer, x, r = self.layer, xs[0], rs[0]
        seq = layer.return_sequences
        replays, outs = [], []
        for cell, sub in zip(self.cells, (layer.forward_layer, layer.backward_layer)):
            init = [ops.zeros((ops.shape(x)[0], sub.cell.units), x.dtype)
                    for _ in range(cell.n_states)]
            replays.append(recurrent.replay(cell, x, init, mask, sub.go_backwards))
            h = replays[-1].outputs
            outs.append(h if seq else h[:, -1])
        if seq:
            outs[1] = ops.flip(outs[1], axis=1)
        if layer.merge_mode == "concat":
            parts = [r[..., :outs[0].shape[-1]], r[..., outs[0].shape[-1]:]]
        else:
            ratio = r / stabilize(outs[0] + outs[1], self.cells[0].eps(x.dtype))
            parts = [outs[0] * ratio, outs[1] * ratio]
        if seq:
            parts[1] = ops.flip(parts[1], axis=1)
        total = None
        for rep, part in zip(replays, parts):  # each direction replayed once, above
            r_x, _ = recurrent.relevance(rep, part if seq else None, None if seq else [part])
            total = r_x if total is None else total + r_x
        return [total]


def bidirectional_problem(layer):
    if layer.merge_mode not in ("concat", "sum", "ave"):
        return (f"merges its directions with merge_mode={layer.merge_mode!r}; keras-lrp "
                "supports 'concat', 'sum' and 'ave'")
    if layer.return_state:
        return "returns its states (return_state=True) inside Bidirectional; not supported yet"
    return recurrent_problem(layer.forward_layer) or recurrent_problem(layer.backward_layer)


_MOVED = ("EmbeddingRelevance", "TimeDistributedRelevance", "ZeroRelevance")


def __getattr__(name):
    if name in _MOVED:  # they serve masks, embeddings and transformers, not recurrence
        warnings.warn(f"keras_lrp.layers.recurrent.relevance.{name} moved to "
                      f"keras_lrp.layers.sequence.{name} (also keras_lrp.layers.{name}); the old "
                      "path goes in the next release.", DeprecationWarning, stacklevel=2)
        return getattr(sequence, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BidirectionalRelevance", "RecurrentRelevance", "bidirectional_problem",
           "input_roles", "recurrent_problem"]
