"""The analyzer names: iNNvestigate's LRP names, the ones it dropped or never had, composites.

Each entry of :data:`ANALYZERS` lists its own keyword arguments with their defaults and says
which rule goes on which layer. :func:`create_analyzer` validates the keywords (a misspelt one is
an error) and builds the :class:`~keras_lrp.analyzer.Analyzer`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional

import keras
import tensorflow as tf

from keras_lrp import rules as R
from keras_lrp.analyzer import Analyzer, OutputRelevance
from keras_lrp.layer_map import CONV, DENSE, RuleSelector


def _is_dense(node, graph) -> bool:
    return isinstance(node.layer, DENSE)


def _is_conv(node, graph) -> bool:
    return isinstance(node.layer, CONV)


def _followed_by_relu(node, graph) -> bool:
    readers = graph.consumers().get(node.outputs[0], [])
    return bool(readers) and all(
        (isinstance(n.layer, keras.layers.ReLU) and float(n.layer.negative_slope) == 0)
        or (isinstance(n.layer, keras.layers.Activation)
            and getattr(n.layer.activation, "__name__", "") == "relu") for n in readers)


@dataclasses.dataclass
class Entry:
    """One analyzer name: its description, keyword arguments and rule assignment.

    ``rules(**params)`` returns ``(default rule, [(predicate, rule), …], input-layer rule)``.
    """

    description: str
    params: Dict[str, object]
    rules: Optional[Callable] = None
    gradient: Optional[str] = None


def _one(rule_factory, description, **params) -> Entry:
    return Entry(description, params, lambda **p: (rule_factory(**p), [], None))


def _preset(description, dense, conv, input_rule=None, **params) -> Entry:
    def make(**p):
        dense_rule, conv_rule = dense(**p), conv(**p)
        return dense_rule, [(_is_dense, dense_rule), (_is_conv, conv_rule)], (
            input_rule(**p) if input_rule else None)
    return Entry(description, params, make)


def _alpha_beta(alpha=None, beta=None, bias=True):
    if alpha is None and beta is None:
        raise ValueError("lrp.alpha_beta needs alpha or beta (alpha - beta = 1), e.g. "
                         "create_analyzer('lrp.alpha_beta', model, alpha=2, beta=1).")
    alpha = beta + 1 if alpha is None else alpha
    beta = alpha - 1 if beta is None else beta
    return R.AlphaBeta(alpha=alpha, beta=beta, bias=bias)


def _lrp_rule(rule=None):
    if rule is None:
        raise ValueError("Analyzer 'lrp' needs rule=..., e.g. rule='Epsilon'. Valid rule names: "
                         f"{', '.join(R.RULES)}.")
    return R.get(rule)


_eps = lambda epsilon=1e-7, **_: R.Epsilon(epsilon=epsilon)  # noqa: E731
_a1b0 = lambda **_: R.AlphaBeta(alpha=1, beta=0)  # noqa: E731
_a2b1 = lambda **_: R.AlphaBeta(alpha=2, beta=1)  # noqa: E731
_flat = lambda **_: R.Flat()  # noqa: E731

#: Every analyzer name accepted by :func:`create_analyzer`.
ANALYZERS: Dict[str, Entry] = {
    "lrp": Entry("LRP with the rule given by rule=...", {"rule": None},
                 lambda rule: (_lrp_rule(rule), [], None)),
    "lrp.z": _one(R.Z, "Z rule (LRP-0)", bias=True),
    "lrp.z_IB": _one(lambda: R.Z(bias=False), "Z rule ignoring the bias"),
    "lrp.epsilon": _one(R.Epsilon, "Epsilon rule", epsilon=1e-7, bias=True),
    "lrp.epsilon_IB": _one(lambda epsilon: R.Epsilon(epsilon=epsilon, bias=False),
                           "Epsilon rule ignoring the bias", epsilon=1e-7),
    "lrp.w_square": _one(R.WSquare, "w² rule on every layer"),
    "lrp.flat": _one(R.Flat, "Flat rule on every layer"),
    "lrp.alpha_beta": _one(_alpha_beta, "AlphaBeta rule with alpha, beta (alpha - beta = 1)",
                           alpha=None, beta=None, bias=True),
    "lrp.alpha_2_beta_1": _one(lambda bias: R.AlphaBeta(alpha=2, beta=1, bias=bias),
                               "AlphaBeta(2, 1)", bias=True),
    "lrp.alpha_2_beta_1_IB": _one(lambda: R.AlphaBeta(alpha=2, beta=1, bias=False),
                                  "AlphaBeta(2, 1) ignoring the bias"),
    "lrp.alpha_1_beta_0": _one(lambda bias: R.AlphaBeta(alpha=1, beta=0, bias=bias),
                               "AlphaBeta(1, 0)", bias=True),
    "lrp.alpha_1_beta_0_IB": _one(lambda: R.AlphaBeta(alpha=1, beta=0, bias=False),
                                  "AlphaBeta(1, 0) ignoring the bias"),
    "lrp.z_plus": _one(R.ZPlus, "z+ rule: AlphaBeta(1, 0) ignoring the bias"),
    "lrp.z_plus_fast": _one(R.ZPlusFast, "z+ with positive weights on the raw input"),
    "lrp.gamma": _one(R.Gamma, "generalised gamma rule", gamma=0.25, bias=True),
    "lrp.sequential_preset_a": _preset("Dense: Epsilon(0.1); conv: AlphaBeta(1, 0)", _eps, _a1b0,
                                       epsilon=0.1),
    "lrp.sequential_preset_b": _preset("Dense: Epsilon(0.1); conv: AlphaBeta(2, 1)", _eps, _a2b1,
                                       epsilon=0.1),
    "lrp.sequential_preset_a_flat": _preset("preset a, Flat input layer", _eps, _a1b0, _flat,
                                            epsilon=0.1),
    "lrp.sequential_preset_b_flat": _preset("preset b, Flat input layer", _eps, _a2b1, _flat,
                                            epsilon=0.1),
    "lrp.sequential_preset_b_flat_until_idx": _preset(
        "preset b, Flat input layer, until_layer_rule up to until_layer_idx", _eps, _a2b1,
        _flat, epsilon=0.1),
    "deep_taylor": Entry("Deep Taylor: ZPlus on kernel layers followed by ReLU, WSquare "
                         "elsewhere", {}, lambda: (R.WSquare(), [(_followed_by_relu, R.ZPlus())],
                                                   None)),
    "deep_taylor.bounded": Entry(
        "Deep Taylor with Bounded(low, high) at the input", {"low": -1.0, "high": 1.0},
        lambda low, high: (R.WSquare(), [(_followed_by_relu, R.ZPlus())],
                           R.Bounded(low=low, high=high))),
    "lrp.epsilon_plus": _preset("Dense: Epsilon; conv: ZPlus", _eps, lambda **_: R.ZPlus(),
                                epsilon=1e-6),
    "lrp.epsilon_plus_flat": _preset("Dense: Epsilon; conv: ZPlus; Flat input layer", _eps,
                                     lambda **_: R.ZPlus(), _flat, epsilon=1e-6),
    "lrp.epsilon_alpha_2_beta_1": _preset("Dense: Epsilon; conv: AlphaBeta(2, 1)", _eps, _a2b1,
                                          epsilon=1e-6),
    "lrp.epsilon_alpha_2_beta_1_flat": _preset(
        "Dense: Epsilon; conv: AlphaBeta(2, 1); Flat input layer", _eps, _a2b1, _flat,
        epsilon=1e-6),
    "lrp.epsilon_gamma_box": _preset(
        "input: Bounded(low, high); conv: Gamma; Dense: Epsilon", _eps,
        lambda gamma=0.25, **_: R.Gamma(gamma=gamma),
        lambda low=-1.0, high=1.0, **_: R.Bounded(low=low, high=high),
        epsilon=1e-6, gamma=0.25, low=-1.0, high=1.0),
    "gradient": Entry("gradient of the explained output", {}, gradient="gradient"),
    "input_t_gradient": Entry("input times gradient", {}, gradient="input_t_gradient"),
}

#: Keyword arguments every analyzer accepts.
COMMON_KWARGS = {"neuron_selection_mode": "max_activation", "output_relevance": None,
                 "input_layer_rule": None, "until_layer_idx": None, "until_layer_rule": None,
                 "rule_map": None, "jit_compile": False, "output": None}
_FLAT_INPUT = {"lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat",
               "lrp.sequential_preset_b_flat_until_idx", "lrp.epsilon_plus_flat",
               "lrp.epsilon_alpha_2_beta_1_flat"}


def create_analyzer(name: str, model, **kwargs) -> Analyzer:
    """Create the analyzer ``name`` for ``model`` (iNNvestigate-compatible).

    Args:
        name: a key of :data:`ANALYZERS`, e.g. ``"lrp.epsilon"`` or ``"lrp.alpha_1_beta_0_IB"``.
        model: a built Functional or Sequential Keras model; it is cloned, never modified.
        **kwargs: the analyzer's own keywords (see ``ANALYZERS[name].params``) and the common
            ones: ``neuron_selection_mode`` ("max_activation", "index", "all"),
            ``output_relevance`` ("logit" or "one"), ``input_layer_rule``,
            ``until_layer_idx``/``until_layer_rule``, ``rule_map`` (ordered list of
            (layer classes or names, rule)), ``jit_compile``.

    Raises:
        ValueError: unknown name (valid names listed) or keyword (valid keywords listed).
    """
    if name not in ANALYZERS:
        raise ValueError(f"Unknown analyzer {name!r}. Valid names: {', '.join(ANALYZERS)}.")
    entry = ANALYZERS[name]
    given = dict(kwargs)
    unknown = set(kwargs) - set(entry.params) - set(COMMON_KWARGS)
    if name == "lrp.sequential_preset_b_flat_until_idx" and kwargs.get(
            "until_layer_idx") is not None:
        kwargs.setdefault("until_layer_rule", "Flat")
    if unknown:
        raise ValueError(f"Analyzer {name!r} got unknown keyword argument(s) "
                         f"{', '.join(sorted(unknown))}. Valid: "
                         f"{', '.join(list(entry.params) + list(COMMON_KWARGS))}.")
    params = {k: kwargs.get(k, v) for k, v in entry.params.items()}
    common = {k: kwargs.get(k, v) for k, v in COMMON_KWARGS.items()}
    run = dict(neuron_selection_mode=common["neuron_selection_mode"], name=name,
               jit_compile=common["jit_compile"], output=common["output"])
    if entry.gradient:
        analyzer = GradientAnalyzer(model, times_input=entry.gradient == "input_t_gradient",
                                    output_relevance=common["output_relevance"] or "one", **run)
        analyzer.config = {"name": name, "kwargs": given}
        return analyzer
    if name == "lrp" and isinstance(params["rule"], list):
        common["rule_map"] = list(params["rule"]) + list(common["rule_map"] or [])
        params["rule"] = R.Z()
    default, conditional, input_rule = entry.rules(**params)
    if name in _FLAT_INPUT and common["input_layer_rule"] is not None and not isinstance(
            R.get(common["input_layer_rule"]), R.Flat):
        raise ValueError(f"Analyzer {name!r} fixes input_layer_rule='Flat'; got "
                         f"{common['input_layer_rule']!r}. Use the analyzer without '_flat'.")
    selector = RuleSelector(
        default=default, conditional=conditional, rule_map=common["rule_map"] or (),
        input_layer_rule=common["input_layer_rule"] if common["input_layer_rule"] is not None
        else input_rule, until_layer_idx=common["until_layer_idx"],
        until_layer_rule=common["until_layer_rule"], model=model)
    analyzer = Analyzer(model, selector, output_relevance=common["output_relevance"] or "logit",
                        **run)
    analyzer.config = {"name": name, "kwargs": given}
    return analyzer


class InputGradient(keras.layers.Layer):
    """Gradient of the selected output w.r.t. the input (times the input if asked).

    Formula:
        R_i = Σ_k m_k ∂y_k/∂x_i   (or x_i times it), m the selection mask.
    """

    def __init__(self, forward, start, times_input=False, **kwargs):
        super().__init__(**kwargs)
        self.forward, self.start, self.times_input = forward, start, times_input

    def call(self, inputs):
        n = len(self.forward.inputs)
        xs, extra = [tf.convert_to_tensor(x) for x in inputs[:n]], list(inputs[n:])
        with tf.GradientTape() as tape:
            for x in xs:
                tape.watch(x)
            logits = self.forward(xs[0] if n == 1 else xs)
            target = tf.reduce_sum(tf.stop_gradient(self.start([logits] + extra)) * logits)
        grads = tape.gradient(target, xs, unconnected_gradients="zero")
        out = [g * x for g, x in zip(grads, xs)] if self.times_input else grads
        return out[0] if n == 1 else out

    def compute_output_spec(self, inputs):
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                 for x in inputs[:len(self.forward.inputs)]]
        return specs[0] if len(specs) == 1 else specs


class GradientAnalyzer(Analyzer):
    """The baselines ``gradient`` and ``input_t_gradient`` on the same cleaned model."""

    def __init__(self, model, times_input=False, **kwargs):
        self.times_input = times_input
        super().__init__(model, None, **kwargs)

    def _build(self):
        self._make_inputs()
        start = OutputRelevance(self.neuron_selection_mode, self.output_relevance,
                                name="gradient_selection", dtype=self.logits.dtype)
        grad = InputGradient(self.forward_model, start, self.times_input, name=self.name,
                             dtype=self.inputs[0].dtype)(self._model_inputs())
        grads = grad if isinstance(grad, (list, tuple)) else [grad]
        self.layer_names = [x.name for x in self.inputs]
        inputs = self._model_inputs()
        inputs = inputs[0] if len(inputs) == 1 else inputs
        self.relevance_model = keras.Model(inputs, grad, name=self.name)
        self._layerwise_model = keras.Model(inputs, dict(zip(self.layer_names, grads)))
