"""The analyzer names: name → (composite, parameters), iNNvestigate's names and Zennit's.

Each entry of :data:`ANALYZERS` lists its own keyword arguments with their defaults and makes the
composite (for LRP) or the analyzer (for the gradient baselines) from them.
:func:`create_analyzer` validates the keywords (a misspelt one is an error), puts the user's
entries in front of the composite, and builds the analyzer. :func:`load_analyzer` rebuilds a
saved one.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Dict, Optional

import keras
import numpy as np

from keras_lrp import composites as C
from keras_lrp import rules as R
from keras_lrp.analyzers.base import Analyzer
from keras_lrp.analyzers.baselines import InputAnalyzer, RandomAnalyzer
from keras_lrp.analyzers.gradient import Gradient
from keras_lrp.analyzers.lengths import PerLength, check_buckets, open_length
from keras_lrp.analyzers.lrp import LRP
from keras_lrp.analyzers.serialize import read_analyzer
from keras_lrp.analyzers.wrappers import IntegratedGradients, SmoothGrad
from keras_lrp.composites.registry import Where
from keras_lrp.core import types
from keras_lrp.layers import DeconvnetReLU, GradientRelevance, GuidedReLU


@dataclasses.dataclass
class Entry:
    """One analyzer name.

    Attributes:
        description: one line, for ``keras-lrp list``.
        params: the analyzer's own keyword arguments and their defaults.
        composite: ``composite(**params)`` → the :class:`~keras_lrp.composites.Composite` (LRP).
        analyzer: ``analyzer(model, **params, **common)`` → an analyzer (gradients).
        defaults: defaults this analyzer gives to common keywords.
        anchor: whose definition the name follows (iNNvestigate, Zennit, keras-lrp).
        family: ``"lrp"``, ``"gradient"`` (the gradient family) or ``"baseline"``.
        pads: whether the analyzer explains inputs padded to a longer length (the wrappers
            do not: on a model of open length they are built per exact length).
    """

    description: str
    params: Dict[str, Any]
    composite: Optional[Callable] = None
    analyzer: Optional[Callable] = None
    defaults: Dict[str, Any] = dataclasses.field(default_factory=dict)
    anchor: str = "iNNvestigate"
    family: str = "lrp"
    pads: bool = True


def _uniform(rule: Callable, description: str, **params) -> Entry:
    return Entry(description, params, lambda **p: C.Uniform(rule=rule(**p)))


def _named(cls, description: str, anchor: str = "iNNvestigate", **defaults) -> Entry:
    return Entry(description, dict(cls.PARAMS), cls, defaults=defaults, anchor=anchor)


def _alpha_beta(alpha=None, beta=None, bias=True):
    if alpha is None and beta is None:
        raise ValueError("lrp.alpha_beta needs alpha or beta (alpha - beta = 1), e.g. "
                         "create_analyzer('lrp.alpha_beta', model, alpha=2, beta=1).")
    for key, value in (("alpha", alpha), ("beta", beta)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating))):
            raise ValueError(f"lrp.alpha_beta needs a number for {key}, got {key}={value!r}.")
    alpha = beta + 1 if alpha is None else alpha
    beta = alpha - 1 if beta is None else beta
    return R.AlphaBeta(alpha=alpha, beta=beta, bias=bias)


def _lrp(rule=None, composite=None):
    if composite is not None:
        if rule is not None:
            raise ValueError("Analyzer 'lrp' takes rule=... or composite=..., not both.")
        if not isinstance(composite, C.Composite):
            raise TypeError(f"composite must be a keras_lrp.composites.Composite, got "
                            f"{composite!r}.")
        return composite
    if rule is None:
        raise ValueError("Analyzer 'lrp' needs rule=... (e.g. rule='Epsilon') or composite=... "
                         f"Valid rule names: {', '.join(R.RULES)}.")
    if isinstance(rule, list):  # iNNvestigate's list of (layer classes or names, rule)
        return C.Uniform(rule=R.Z()).customized(user_map=rule)
    return C.Uniform(rule=R.get(rule))


def _gradient(times_input: bool) -> Callable:
    return lambda model, postprocess=None, **kw: Gradient(
        model, times_input=times_input, postprocess=postprocess, **kw)


def _wrapped(wrapper, **fixed) -> Callable:
    """A wrapper over a gradient (iNNvestigate's SmoothGrad and IntegratedGradients)."""
    def make(model, postprocess=None, name="", kwargs=None, output_relevance="one", **params):
        run = {k: params.pop(k) for k in _RUN_KWARGS}
        inner = Gradient(model, postprocess=postprocess, name="gradient",
                         kwargs={"postprocess": postprocess, **run}, **run)
        return wrapper(inner, name=name, **params)
    return make


def _relu_backward(relu_layer) -> Callable:
    """Every layer passes the gradient, ReLUs with ``relu_layer``'s backward rule."""
    def make():
        return C.Composite([(Where(keras.Operation, lambda node, ctx: types.is_plain_relu(
            node.layer), "ReLU"), relu_layer), (keras.Operation, GradientRelevance)],
            base_map=[])
    return make


_POST = {"postprocess": None}


#: Every analyzer name accepted by :func:`create_analyzer` (the docs generate their table of
#: names, keywords and defaults from it).
#:
#: :meta hide-value:
ANALYZERS: Dict[str, Entry] = {
    "lrp": Entry("LRP with rule=... (one rule, or a list of (layers, rule)) or composite=...",
                 {"rule": None, "composite": None}, _lrp, anchor="iNNvestigate, keras-lrp"),
    "lrp.z": _uniform(lambda bias, bias_factor: R.Z(bias=bias, bias_factor=bias_factor),
                      "Z rule (LRP-0)", bias=True, bias_factor=0.0),
    "lrp.z_IB": _uniform(lambda: R.Z(bias=False), "Z rule ignoring the bias"),
    "lrp.epsilon": _uniform(lambda epsilon, bias, bias_factor: R.Epsilon(
        epsilon=epsilon, bias=bias, bias_factor=bias_factor),
        "Epsilon rule", epsilon=1e-7, bias=True, bias_factor=0.0),
    "lrp.epsilon_IB": _uniform(lambda epsilon: R.Epsilon(epsilon=epsilon, bias=False),
                               "Epsilon rule ignoring the bias", epsilon=1e-7),
    "lrp.w_square": _uniform(R.WSquare, "w² rule on every layer"),
    "lrp.flat": _uniform(R.Flat, "Flat rule on every layer"),
    "lrp.alpha_beta": _uniform(_alpha_beta, "AlphaBeta rule with alpha, beta (alpha - beta = 1)",
                               alpha=None, beta=None, bias=True),
    "lrp.alpha_2_beta_1": _uniform(lambda bias: R.AlphaBeta(alpha=2, beta=1, bias=bias),
                                   "AlphaBeta(2, 1)", bias=True),
    "lrp.alpha_2_beta_1_IB": _uniform(lambda: R.AlphaBeta(alpha=2, beta=1, bias=False),
                                      "AlphaBeta(2, 1) ignoring the bias"),
    "lrp.alpha_1_beta_0": _uniform(lambda bias: R.AlphaBeta(alpha=1, beta=0, bias=bias),
                                   "AlphaBeta(1, 0)", bias=True),
    "lrp.alpha_1_beta_0_IB": _uniform(lambda: R.AlphaBeta(alpha=1, beta=0, bias=False),
                                      "AlphaBeta(1, 0) ignoring the bias"),
    "lrp.z_plus": _uniform(R.ZPlus, "z+ rule: AlphaBeta(1, 0) ignoring the bias"),
    "lrp.z_plus_fast": _uniform(R.ZPlusFast, "z+ with positive weights on the raw input"),
    "lrp.gamma": dataclasses.replace(
        _uniform(lambda gamma, bias: R.Gamma(gamma=gamma, bias=bias), "generalised gamma rule",
                 gamma=0.25, bias=True), anchor="Zennit"),
    "lrp.sequential_preset_a": _named(C.SequentialPresetA,
                                      "Dense: Epsilon(0.1); conv: AlphaBeta(1, 0)"),
    "lrp.sequential_preset_b": _named(C.SequentialPresetB,
                                      "Dense: Epsilon(0.1); conv: AlphaBeta(2, 1)"),
    "lrp.sequential_preset_a_flat": _named(C.SequentialPresetAFlat, "preset a, Flat input layer"),
    "lrp.sequential_preset_b_flat": _named(C.SequentialPresetBFlat, "preset b, Flat input layer"),
    "lrp.sequential_preset_b_flat_until_idx": _named(
        C.SequentialPresetBFlat, "preset b, Flat input layer, until_layer_rule up to "
        "until_layer_idx", until_layer_rule="Flat"),
    "deep_taylor": _named(C.DeepTaylor, "Deep Taylor as iNNvestigate: ZPlus on kernel layers, "
                          "the gradient through ReLU, pooling and Add, from max(y, 0)",
                          output_relevance="positive_logit"),
    "deep_taylor.bounded": _named(C.DeepTaylorBounded, "Deep Taylor with Bounded(low, high) at "
                                  "the input", output_relevance="positive_logit"),
    "lrp.epsilon_plus": _named(C.EpsilonPlus, "Dense: Epsilon; conv: ZPlus", "Zennit"),
    "lrp.epsilon_plus_flat": _named(C.EpsilonPlusFlat,
                                    "Dense: Epsilon; conv: ZPlus; Flat input layer", "Zennit"),
    "lrp.epsilon_alpha_2_beta_1": _named(C.EpsilonAlpha2Beta1,
                                         "Dense: Epsilon; conv: AlphaBeta(2, 1)", "Zennit"),
    "lrp.epsilon_alpha_2_beta_1_flat": _named(
        C.EpsilonAlpha2Beta1Flat, "Dense: Epsilon; conv: AlphaBeta(2, 1); Flat input layer",
        "Zennit"),
    "lrp.epsilon_gamma_box": _named(C.EpsilonGammaBox,
                                    "input: Bounded(low, high); conv: Gamma; Dense: Epsilon",
                                    "Zennit"),
    "zbab": _named(C.BoundedAlpha2Beta1, "seed 004's zbab: Bounded(low, high) input layer, "
                   "AlphaBeta(2, 1) above", "the seeds"),
    "wwab": _named(C.WSquareAlpha2Beta1, "seed 004's wwab: WSquare input layer, AlphaBeta(2, 1) "
                   "above", "the seeds"),
    "deconvnet": Entry("deconvnet: the gradient with each ReLU's backward signal rectified",
                       {}, _relu_backward(DeconvnetReLU), defaults={"output_relevance": "logit"},
                       family="gradient"),
    "guided_backprop": Entry("guided backprop: the gradient where input and backward signal "
                             "are positive at each ReLU", {}, _relu_backward(GuidedReLU),
                             defaults={"output_relevance": "logit"}, family="gradient"),
    "input": Entry("the input itself (a baseline)", {},
                   analyzer=lambda model, **kw: InputAnalyzer(model, **kw),
                   family="baseline"),
    "random": Entry("the input plus Gaussian noise (a baseline)", {"stddev": 1.0, "seed": None},
                    analyzer=lambda model, **kw: RandomAnalyzer(model, **kw),
                    family="baseline"),
    "gradient": Entry("gradient of the explained output", dict(_POST),
                      analyzer=_gradient(False), family="gradient"),
    "gradient.baseline": Entry("the gradient (iNNvestigate's tf.gradients baseline; the same "
                               "numbers)", dict(_POST), analyzer=_gradient(False),
                               family="gradient"),
    "input_t_gradient": Entry("input times gradient", dict(_POST), analyzer=_gradient(True),
                              family="gradient"),
    "integrated_gradients": Entry(
        "integrated gradients along the path from reference_inputs", {
            "steps": 64, "reference_inputs": 0.0, **_POST},
        analyzer=_wrapped(IntegratedGradients), family="gradient", pads=False),
    "smoothgrad": Entry("the mean gradient over noisy copies of the input", {
        "augment_by_n": 64, "noise_scale": 1.0, "seed": None, **_POST},
        analyzer=_wrapped(SmoothGrad), family="gradient", pads=False),
}

#: Keyword arguments every analyzer accepts (LRP analyzers all of them; the gradient baselines
#: those of the analyzer).
COMMON_KWARGS = {"neuron_selection_mode": "max_activation", "output_relevance": None,
                 "input_layer_rule": None, "until_layer_idx": None, "until_layer_rule": None,
                 "rule_map": None, "jit_compile": False, "output": None,
                 "gate_rule": None, "attention": None, "forward_check": True,
                 "buckets": "pow2", "patience": 32, "max_analyses": 8}
#: The keywords of models with an open sequence length
#: (:class:`~keras_lrp.analyzers.lengths.PerLength`); other models ignore them.
LENGTH_KWARGS = {k: COMMON_KWARGS[k] for k in ("buckets", "patience", "max_analyses")}
_RUN_KWARGS = ("neuron_selection_mode", "jit_compile", "output", "forward_check")


def create_analyzer(name: str, model: keras.Model, **kwargs: Any) -> Analyzer:
    """Create the analyzer ``name`` for ``model`` (iNNvestigate-compatible).

    The analyzer is built (:meth:`Analyzer.build <keras_lrp.analyzers.base.Analyzer.build>`)
    before it is returned. A model whose inputs have an open sequence length and a layer traced
    into its parts (a causal LM built on ``keras.Input((None,), "int32")``) gets a
    :class:`~keras_lrp.analyzers.lengths.PerLength` (an Analyzer, so wrappers and metrics take
    it): analyses built for a few bucket lengths when first needed, the inputs padded to them
    where padding leaves the model's outputs unchanged (``buckets``, ``patience``,
    ``max_analyses``).

    Args:
        name: a key of :data:`ANALYZERS`, e.g. ``"lrp.epsilon"`` or ``"lrp.alpha_1_beta_0_IB"``.
        model: a built Functional or Sequential Keras model; it is cloned, never modified.
        **kwargs: the analyzer's own keywords (see ``ANALYZERS[name].params``) and the common
            ones: ``neuron_selection_mode`` ("max_activation", "index", "all"),
            ``output_relevance`` ("logit" or "one"), ``input_layer_rule``,
            ``until_layer_idx``/``until_layer_rule``, ``rule_map`` (an ordered list of
            (layer classes, names or predicates, rule or relevance layer), in front of the
            analyzer's own; ``layer_map`` is its deprecated old name), ``jit_compile``,
            ``output``, ``gate_rule`` (LSTM gates: "signal", "half" or "proportional"),
            ``attention`` ("attnlrp" or "cp"), ``forward_check`` (check at build, on a probe
            batch, that the analysis explains the user's model; default True), ``buckets``
            ("pow2", "exact" or a list of lengths), ``patience`` and ``max_analyses`` (models
            of open length, see :mod:`keras_lrp.analyzers.lengths`).

    Raises:
        ValueError: unknown name (valid names listed) or keyword (valid keywords listed).
    """
    if "layer_map" in kwargs:
        warnings.warn("create_analyzer(layer_map=...) is deprecated and will be removed in the "
                      "next release; pass rule_map=... (the same list).", DeprecationWarning,
                      stacklevel=2)
        kwargs = dict(kwargs)
        old = list(kwargs.pop("layer_map") or [])
        kwargs["rule_map"] = list(kwargs.get("rule_map") or []) + old
    if name not in ANALYZERS:
        raise ValueError(f"Unknown analyzer {name!r}. Valid names: {', '.join(ANALYZERS)}.")
    entry = ANALYZERS[name]
    unknown = set(kwargs) - set(entry.params) - set(COMMON_KWARGS)
    if unknown:
        raise ValueError(f"Analyzer {name!r} got unknown keyword argument(s) "
                         f"{', '.join(sorted(unknown))}. Valid: "
                         f"{', '.join(list(entry.params) + list(COMMON_KWARGS))}.")
    params = {k: kwargs.get(k, v) for k, v in entry.params.items()}
    common = {k: kwargs.get(k, entry.defaults.get(k, v)) for k, v in COMMON_KWARGS.items()}
    if common["until_layer_idx"] is None and "until_layer_rule" not in kwargs:
        common["until_layer_rule"] = None  # an analyzer's default rule waits for the index
    lengths = {k: kwargs.get(k, v) for k, v in LENGTH_KWARGS.items()}
    check_buckets(**lengths)
    if open_length(model):  # analyses for a few lengths, made when first met
        run = {k: common[k] for k in _RUN_KWARGS}
        run["output_relevance"] = common["output_relevance"] or (
            "one" if entry.analyzer is not None else "logit")
        return PerLength(lambda fixed, axes: _build(name, fixed, kwargs, common, params, axes),
                         model, name, kwargs, pads=entry.pads, **lengths, **run).build()
    return _build(name, model, kwargs, common, params).build()


def _build(name, model, kwargs, common, params, length_axes=None) -> Analyzer:
    """The analyzer ``name`` for a model of fixed length (``length_axes``: see
    :class:`~keras_lrp.analyzers.base.Analyzer`)."""
    entry = ANALYZERS[name]
    run = {k: common[k] for k in _RUN_KWARGS}
    run.update(name=name, kwargs=dict(kwargs))
    if length_axes is not None:
        run["length_axes"] = length_axes
    if entry.analyzer is not None:
        return entry.analyzer(model, output_relevance=common["output_relevance"] or "one",
                                **params, **run)
    composite = entry.composite(**params).customized(
        user_map=list(common["rule_map"] or []),
        first_layer=common["input_layer_rule"], until_layer_idx=common["until_layer_idx"],
        until_layer_rule=common["until_layer_rule"], owner=repr(name),
        gate_rule=common["gate_rule"], attention=common["attention"])
    return LRP(model, composite, output_relevance=common["output_relevance"] or "logit", **run)


#: The wrappers :func:`from_config` knows, by class name.
WRAPPERS = {"SmoothGrad": SmoothGrad, "IntegratedGradients": IntegratedGradients}


def from_config(config: Dict[str, Any], model: keras.Model) -> Analyzer:
    """The analyzer an analyzer's ``get_config()`` describes, for ``model``."""
    if "wrapper" in config:
        inner = from_config(config["analyzer"], model)
        return WRAPPERS[config["wrapper"]](inner, name=config.get("name"),
                                           **config["params"]).build()
    return create_analyzer(config["name"], model, **config["kwargs"])


def load_analyzer(path: str, custom_objects: Optional[Dict[str, Any]] = None) -> Analyzer:
    """Load an analyzer written by :meth:`Analyzer.save
    <keras_lrp.analyzers.base.Analyzer.save>`.

    Args:
        path: the file.
        custom_objects: passed to ``keras.models.load_model`` for models with custom layers.

    Raises:
        ValueError: not an analyzer file, or written in a newer format than this keras-lrp reads.
    """
    config, model = read_analyzer(path, custom_objects)
    return from_config(config, model)
