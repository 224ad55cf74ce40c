"""Robustness: clear errors, no NaN/inf, precision, large inputs, the user's model left alone,
concurrency, and save/load.

Sections (one per block below):

1. **Clear errors** before any TensorFlow work: every message names the problem *and* the
   remedy. "Before any heavy work" is checked, not assumed: analyze-time errors run with the
   analyzer's compiled function replaced by one that fails the test, creation-time errors with
   the model's graph extraction (or cloning) replaced likewise.
2. **No NaN, no inf** (hypothesis): random small Dense and Conv2D ReLU networks, with and without
   bias, weights with exact zeros, all-zero units, dead units and all-zero layers, inputs with
   exact zeros, all-zero samples, ±1e6 and ±1e-6, analysed with *every* LRP analyzer name
   (plus ``lrp.gamma`` without bias); every relevance must be finite. A second property checks,
   on bias-free float64 networks, that the conserving rules (``lrp.z_IB``,
   ``lrp.alpha_1_beta_0_IB``, ``lrp.w_square``, ``lrp.flat``, ``lrp.gamma`` with
   ``bias=False``) conserve exactly the relevance that the NumPy reference
   (``tests/reference.py``) says they must -- see :func:`_reference_lrp` for when relevance is
   lost.
3. **Precision**: mixed_float16 / mixed_bfloat16 models analyse like their float32 twin,
   float64 models like the float64 NumPy reference, and the result is never below float32.
4. **Large inputs**: ``batch_size``, ``tf.data.Dataset``, generators and ``iter_analyze`` agree
   with one-shot analysis.
5. **The user's model stays the user's**: weights, layers, graph, predictions, training and the
   global Keras configuration are untouched by analyses, failed ones included.
6. **Concurrency and reuse**: one analyzer shared by 4 threads; repeated builds do not slow down.
7. **Serialization**: save/load round trips, newer formats, foreign files, unsaveable rules.

Hypothesis profiles (``HYPOTHESIS_PROFILE`` environment variable, default ``ci``):

* ``ci``: 25 examples per property, deterministic (``derandomize``), no deadline, over a fixed
  pool of 7 architectures;
* ``dev``: 400 examples per property, random, over that pool plus 30 random architectures
  (about 2 minutes on 2 cores). Run locally with::

      HYPOTHESIS_PROFILE=dev python -m pytest tests/test_robustness.py -k property -s

``-s`` shows how many networks, inputs and analyses each property tried.

Why a pool of architectures: building the 28 analyzers of one architecture and tracing their
functions takes 2-3 s, while one more set of weights costs ~1 ms per analyzer. So models and
analyzers are cached per architecture and every example only *sets the weights* of the cached
model and of each analyzer's clone (:func:`_set_weights`; that this equals a fresh build is
checked by ``test_weight_swap_equals_fresh_build``). Weights, dead units and inputs are drawn
freely by hypothesis for every example.
"""
import concurrent.futures
import contextlib
import json
import os
import re
import statistics
import sys
import threading
import time
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import reference as ref  # noqa: E402
import keras_lrp  # noqa: E402
from keras_lrp import rules  # noqa: E402
from keras_lrp import serialize  # noqa: E402

L = keras.layers

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "ci")
PROFILE = settings.get_profile(PROFILE_NAME)


# ====================================================================================== helpers
@contextlib.contextmanager
def keras_dtype(dtype):
    """Build layers in ``dtype`` ("float64", or a mixed policy such as "mixed_float16")."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    if not dtype.startswith("mixed"):
        keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def dense_net(in_dim=4, widths=(3, 2), bias=True, name="dense_net", softmax=False):
    """Dense(relu) … Dense(widths[-1]) (linear, or softmax)."""
    x = inputs = keras.Input((in_dim,), name="x")
    for i, w in enumerate(widths):
        last = i == len(widths) - 1
        act = ("softmax" if softmax else None) if last else "relu"
        x = L.Dense(w, activation=act, use_bias=bias, name=f"dense_{i}")(x)
    return keras.Model(inputs, x, name=name)


def conv_net(shape=(5, 5, 1), convs=((2, 2, "valid"),), n_out=3, bias=True, name="conv_net"):
    """Conv2D(relu) per (filters, kernel, padding), Flatten, Dense(n_out) (linear)."""
    x = inputs = keras.Input(shape, name="x")
    for i, (filters, k, padding) in enumerate(convs):
        x = L.Conv2D(filters, k, padding=padding, activation="relu", use_bias=bias,
                     name=f"conv_{i}")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(n_out, use_bias=bias, name="head")(x), name=name)


def build(arch):
    """The Keras model of an architecture tuple (see :data:`CURATED_ARCHS`)."""
    if arch[0] == "dense":
        _, in_dim, widths, bias = arch
        return dense_net(in_dim, widths, bias)
    _, shape, convs, n_out, bias = arch
    return conv_net(shape, convs, n_out, bias)


def two_input_net():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = L.Concatenate()([L.Dense(2, activation="relu")(a), L.Dense(2, activation="relu")(b)])
    return keras.Model([a, b], L.Dense(2)(h), name="two_inputs")


def plain(msg):
    """``msg`` with NumPy 2 scalar reprs (``np.float64(1.0)``) written as plain numbers.

    (Bounded's message shows ``low=np.float64(1.0)``: cosmetic, reported, not a failure.)
    """
    return re.sub(r"np\.(?:float|int)\d+\(([^)]*)\)", r"\1", msg)


def no_tf(monkeypatch, analyzer):
    """Make any run of the analyzer's compiled function fail the test."""
    def fail(*args, **kwargs):
        raise AssertionError("the check came after TensorFlow work")
    monkeypatch.setattr(analyzer, "_function", fail)


def no_build(monkeypatch, what="extract"):
    """Make graph extraction (or cloning, ``what="clone"``) fail the test."""
    def fail(*args, **kwargs):
        raise AssertionError(f"the check came after {what}")
    if what == "extract":
        monkeypatch.setattr(keras_lrp.attribution.graph_mod, "extract", fail)
    else:
        monkeypatch.setattr(keras_lrp.canonizers, "clone_layers", fail)


def _set_weights(analyzer, weights):
    """Put ``weights`` (the user's model's order) into the analyzer's cleaned clone.

    Valid for the models here (no BatchNormalization to fold, no separable convolutions): the
    clone has the same weights in the same order, and the compiled function reads them as
    variables, so nothing is rebuilt or retraced.
    """
    analyzer.forward_model.set_weights(weights)


# ============================================================================ 1. clear errors
@pytest.fixture(scope="module")
def small():
    """A Dense model (input 'x' of 4 features, 3 classes) and an analyzer for it."""
    keras.utils.set_random_seed(1)
    model = dense_net(4, (5, 3), name="small")
    return model, keras_lrp.create_analyzer("lrp.epsilon", model)


@pytest.mark.parametrize("bad, problem, remedy", [
    (np.ones((3, 4, 1), "float32"), "got shape (3, 4, 1)", "shape ('batch', 4)"),
    (np.ones((3, 5), "float32"), "got shape (3, 5)", "shape ('batch', 4)"),
    (np.ones(4, "float32"), "got shape (4,)", "shape ('batch', 4)"),  # no batch axis
    (np.array([["a", "b", "c", "d"]]), "dtype <U1", "np.asarray(x, dtype='float32')"),
    (np.array([[1.0, None, 2.0, 3.0]], dtype=object), "dtype object", "Convert it"),
    (np.ones((2, 4), "complex64"), "dtype complex64", "Convert it"),
])
def test_wrong_input_rank_shape_dtype(small, monkeypatch, bad, problem, remedy):
    _, analyzer = small
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError) as err:
        analyzer.analyze(bad)
    msg = str(err.value)
    assert "Input 'x'" in msg and problem in msg and remedy in msg, msg


def test_integer_and_bool_inputs_are_converted(small):
    _, analyzer = small
    ints = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    np.testing.assert_array_equal(analyzer.analyze(ints), analyzer.analyze(ints.astype("f4")))
    flags = ints > 1
    np.testing.assert_array_equal(analyzer.analyze(flags), analyzer.analyze(flags.astype("f4")))


def test_nested_list_for_single_input_model(small):
    _, analyzer = small
    rows = [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]
    try:
        result = analyzer.analyze(rows)
    except ValueError as err:  # acceptable if it says what to do with the list
        assert "np.asarray" in str(err) and "inputs;" not in str(err), str(err)
    else:
        np.testing.assert_array_equal(result, analyzer.analyze(np.asarray(rows, "float32")))


@pytest.mark.parametrize("given", ["one", "three", "bare array"])
def test_list_of_wrong_length_for_two_input_model(monkeypatch, given):
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    no_tf(monkeypatch, analyzer)
    a, b = np.ones((2, 3), "float32"), np.ones((2, 2), "float32")
    x = {"one": [a], "three": [a, b, b], "bare array": a}[given]
    with pytest.raises(ValueError) as err:
        analyzer.analyze(x)
    msg = str(err.value)
    assert "has 2 inputs (a, b)" in msg and "Pass a list with one array per input" in msg, msg


def test_different_batch_sizes_for_two_input_model(monkeypatch):
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError, match=r"different batch sizes \[2, 3\]; give every input "
                                         "the same number of samples"):
        analyzer.analyze([np.ones((2, 3)), np.ones((3, 2))])


def test_nan_and_inf_rejected_with_counts_and_first_index(small, monkeypatch):
    model, analyzer = small
    x = np.random.default_rng(0).random((4, 4)).astype("float32")
    x[1, 2] = np.nan
    x[2, 0] = np.inf
    x[3, 3] = -np.inf
    with monkeypatch.context() as patch:
        no_tf(patch, analyzer)
        with pytest.raises(ValueError) as err:
            analyzer.analyze(x)
    msg = str(err.value)
    assert "1 NaN and 2 infinite values" in msg and "first at index (1, 2)" in msg, msg
    assert "clean the data, or pass allow_nonfinite=True" in msg, msg
    # allow_nonfinite=True analyses; the finite sample is unaffected by its batch mates
    out = analyzer.analyze(x, allow_nonfinite=True)
    assert out.shape == x.shape
    np.testing.assert_allclose(out[:1], analyzer.analyze(x[:1]), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="allow_nonfinite"):  # datasets are checked per batch
        analyzer.analyze(tf.data.Dataset.from_tensor_slices(x).batch(2))


@pytest.mark.parametrize("selection, problem, remedy", [
    (3, "got [3, 3]", "integer indices in [0, 3)"),
    (-1, "got [-1, -1]", "integer indices in [0, 3)"),
    ([0, 1, 2], "has 3 entries for a batch of 2", "one int or one index per sample"),
    (1.0, "got [1.0, 1.0]", "integer indices in [0, 3)"),
    (None, "needs analyze(x, neuron_selection=i)", "an int or one index per sample"),
])
def test_neuron_selection_out_of_range_or_wrong_length(small, monkeypatch, selection, problem,
                                                       remedy):
    model, _ = small
    analyzer = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError) as err:
        analyzer.analyze(np.ones((2, 4), "float32"), neuron_selection=selection)
    msg = str(err.value)
    assert problem in msg and remedy in msg, msg


def test_neuron_selection_without_index_mode(small, monkeypatch):
    _, analyzer = small
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError, match="only used with neuron_selection_mode='index'"):
        analyzer.analyze(np.ones((2, 4)), neuron_selection=0)


def test_unknown_analyzer_name_lists_valid_names(small, monkeypatch):
    model, _ = small
    no_build(monkeypatch)
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.epsilom", model)
    msg = str(err.value)
    assert "Unknown analyzer 'lrp.epsilom'" in msg and "Valid names:" in msg
    assert all(name in msg for name in keras_lrp.ANALYZERS), msg


def test_misspelt_keyword_lists_valid_keywords(small, monkeypatch):
    model, _ = small
    no_build(monkeypatch)
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.epsilon", model, epsilom=0.1)
    msg = str(err.value)
    assert "unknown keyword argument(s) epsilom" in msg, msg
    assert "Valid: epsilon, bias, neuron_selection_mode" in msg and "rule_map" in msg, msg


@pytest.mark.parametrize("name, kwargs, problem", [
    ("lrp.alpha_beta", {"alpha": 2, "beta": 2}, "alpha=2, beta=2 (alpha - beta = 0)"),
    ("lrp.alpha_beta", {"alpha": 0.5, "beta": -0.5}, "alpha=0.5, beta=-0.5"),
    ("lrp.epsilon", {"epsilon": -1e-3}, "got epsilon=-0.001"),
    ("lrp.epsilon", {"epsilon": float("nan")}, "got epsilon=nan"),
    ("lrp.gamma", {"gamma": -0.5}, "got gamma=-0.5"),
    ("deep_taylor.bounded", {"low": 1.0, "high": -1.0}, "got low=1.0 > high=-1.0"),
    ("lrp.epsilon_gamma_box", {"low": np.array([0.0, 0.0, 2.0, 0.0]), "high": 1.0},
     "got low=2.0 > high=1.0 at index (2,)"),
    ("lrp.z", {"input_layer_rule": (np.zeros(4), np.array([1.0, -1.0, 1.0, 1.0]))},
     "got low=0.0 > high=-1.0 at index (1,)"),
    ("lrp.z", {"rule_map": [(L.Dense, (1.0, 0.0))]}, "got low=1.0 > high=0.0"),
])
def test_invalid_rule_parameters(small, monkeypatch, name, kwargs, problem):
    model, _ = small
    no_build(monkeypatch)
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer(name, model, **kwargs)
    msg = plain(str(err.value))
    remedy = {"lrp.alpha_beta": "needs alpha - beta = 1, alpha >= 1 and beta >= 0",
              "lrp.epsilon": "needs epsilon >= 0", "lrp.gamma": "needs gamma >= 0"}.get(
                  name, "needs low <= high")
    assert problem in msg and remedy in msg, msg


@pytest.mark.parametrize("make, problem", [
    (lambda: rules.Epsilon(epsilon=-1), "Epsilon needs epsilon >= 0, got epsilon=-1"),
    (lambda: rules.AlphaBeta(alpha=1, beta=1), "alpha - beta = 1"),
    (lambda: rules.Gamma(gamma=float("nan")), "Gamma needs gamma >= 0, got gamma=nan"),
    (lambda: rules.Bounded(low=[0, 2], high=[1, 1]), "got low=2.0 > high=1.0 at index (1,)"),
    (lambda: rules.Bounded(low=np.zeros(3), high=np.ones(2)), "must broadcast together"),
    (lambda: rules.get("Epsilom"), "Valid rule names: Z, ZIgnoreBias, Epsilon"),
])
def test_invalid_rule_objects_fail_at_construction(make, problem):
    with pytest.raises(ValueError) as err:
        make()
    assert problem in plain(str(err.value)), str(err.value)


BOUNDED_SHAPE = ("layer 'dense_0'", "a bound of shape (3,) does not broadcast to the layer's "
                 "input shape (4,)", "Pass a scalar or an array of that shape")


def test_bounded_bound_of_wrong_shape_fails_at_creation(small):
    model, _ = small
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("deep_taylor.bounded", model, low=np.zeros(3), high=1.0)
    assert all(part in str(err.value) for part in BOUNDED_SHAPE), str(err.value)


@pytest.mark.parametrize("thing, remedy", [
    (object(), "Expected a keras.Model"),
    ("models/digits_cnn.keras", "Expected a keras.Model"),
    (lambda x: x, "Expected a keras.Model"),
])
def test_non_keras_model_object(thing, remedy):
    with pytest.raises(TypeError) as err:
        keras_lrp.create_analyzer("lrp.z", thing)
    assert remedy in str(err.value) and type(thing).__name__ in str(err.value), str(err.value)


def test_subclassed_and_unbuilt_models():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.ones((1, 3)))
    with pytest.raises(TypeError, match="subclassed model.*Rebuild it with the functional API"):
        keras_lrp.create_analyzer("lrp.z", sub)
    with pytest.raises(ValueError, match="has not been built.*keras.Input"):
        keras_lrp.create_analyzer("lrp.z", keras.Sequential([L.Dense(2)]))


class Cube(L.Layer):
    """An element-wise layer keras-lrp does not know."""

    def call(self, x):
        return x ** 3


def unsupported_net():
    x = inputs = keras.Input((4,), name="x")
    x = Cube(name="cube")(L.Dense(3, activation="relu", name="d0")(x))
    return keras.Model(inputs, L.Dense(2, name="d1")(x), name="unsupported")


def test_unsupported_layer_named_before_cloning(monkeypatch):
    model = unsupported_net()
    no_build(monkeypatch, "clone")
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.epsilon", model)
    msg = str(err.value)
    assert "no relevance mapping for layer 'cube'" in msg and "Cube" in msg, msg
    assert "keras_lrp.register_layer(Cube, keras_lrp.rules.IdentityRelevance)" in msg, msg


def test_batch_size_zero_or_negative(small, monkeypatch):
    _, analyzer = small
    no_tf(monkeypatch, analyzer)
    for bad in (0, -5):
        with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {bad}"):
            analyzer.analyze(np.ones((3, 4)), batch_size=bad)


@pytest.mark.parametrize("bad", [2.5, "100"])
def test_batch_size_of_wrong_type_is_rejected_whatever_the_data_size(small, bad):
    _, analyzer = small
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        analyzer.analyze(np.ones((2, 4), "float32"), batch_size=bad)


# =================================================================== 2. no NaN / no inf
#: (kind, input, layers, [n_out], bias): Dense nets have 1-3 layers (the last gives the
#: logits); conv nets have 1-3 Conv2D(relu) then Flatten and a Dense head.
CURATED_ARCHS = [
    ("dense", 3, (2,), True),                  # a linear model
    ("dense", 4, (1, 3), False),               # a width-1 bottleneck
    ("dense", 5, (4, 3, 2), True),
    ("dense", 2, (3, 4, 1), False),            # a single logit
    ("conv", (4, 4, 1), ((2, 2, "valid"),), 2, True),
    ("conv", (5, 5, 2), ((1, 3, "same"), (3, 2, "valid")), 3, False),
    ("conv", (4, 4, 2), ((2, 2, "same"), (2, 2, "valid"), (1, 2, "valid")), 2, True),
]


def _random_archs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bias = bool(rng.integers(2))
        depth = int(rng.integers(1, 4))
        if i % 2:
            widths = tuple(int(w) for w in rng.integers(1, 6, depth))
            out.append(("dense", int(rng.integers(1, 7)), widths, bias))
        else:
            shape = (int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(1, 3)))
            paddings = [str(rng.choice(["valid", "same"])) for _ in range(depth)]
            while min(shape[:2]) - paddings.count("valid") < 1:  # keep the output non-empty
                paddings[paddings.index("valid")] = "same"
            convs = tuple((int(rng.integers(1, 4)), 2, p) for p in paddings)
            out.append(("conv", shape, convs, int(rng.integers(1, 4)), bias))
    return out


ARCHS = CURATED_ARCHS + (_random_archs(30, seed=0) if PROFILE_NAME == "dev" else [])

#: Every LRP analyzer name (``gradient`` and ``input_t_gradient`` are not LRP), with keywords
#: where the name needs some, plus lrp.gamma without bias.
LRP_ANALYZERS = [(n, {"lrp": {"rule": "Bounded"}, "lrp.alpha_beta": {"alpha": 3},
                      "lrp.sequential_preset_b_flat_until_idx": {"until_layer_idx": 1}}.get(n, {}))
                 for n in keras_lrp.ANALYZERS if n not in ("gradient", "input_t_gradient")]
LRP_ANALYZERS.append(("lrp.gamma", {"bias": False}))
#: The rules that conserve relevance on bias-free networks (NumPy reference, contributions).
CONSERVING = {
    "lrp.z_IB": (lambda x, W, b, R, S: ref.z_rule(x, W, b, R, bias=False),
                 lambda x, W, S: ref._contrib(x, W)),
    "lrp.alpha_1_beta_0_IB": (
        lambda x, W, b, R, S: ref.alphabeta_rule(x, W, b, R, 1.0, 0.0, bias=False),
        lambda x, W, S: ref._pos(x)[:, None] * ref._pos(W) + ref._neg(x)[:, None] * ref._neg(W)),
    "lrp.w_square": (lambda x, W, b, R, S: ref.wsquare_rule(x, W, b, R),
                     lambda x, W, S: W ** 2),
    "lrp.flat": (lambda x, W, b, R, S: ref.flat_rule(x, W, b, R, S),
                 lambda x, W, S: np.ones_like(W) if S is None else (S != 0).astype(float)),
    "lrp.gamma": (lambda x, W, b, R, S: ref.gamma_rule(x, W, b, R, 0.25, bias=False),
                  lambda x, W, S: _gamma_contrib(x, W, 0.25)),
}


def _gamma_contrib(x, W, g):
    up = (x @ W) >= 0
    xp, xn = ref._pos(x)[:, None], ref._neg(x)[:, None]
    wp, wn = ref._pos(W), ref._neg(W)
    return np.where(up, xp * (W + g * wp) + xn * (W + g * wn),
                    xp * (W + g * wn) + xn * (W + g * wp))


_MODELS, _ANALYZERS = {}, {}


def cached_model(arch, dtype):
    key = (arch, dtype)
    if key not in _MODELS:
        with keras_dtype(dtype):
            _MODELS[key] = build(arch)
    return _MODELS[key]


def cached_analyzers(arch, dtype, conserving=False):
    """{label: analyzer} for the cached model of ``arch`` (built once per architecture)."""
    key = (arch, dtype, conserving)
    if key not in _ANALYZERS:
        model = cached_model(arch, dtype)
        with keras_dtype(dtype):
            if conserving:
                made = {n: keras_lrp.create_analyzer(n, model, neuron_selection_mode="index",
                                                     **({"bias": False} if n == "lrp.gamma"
                                                        else {}))
                        for n in CONSERVING}
            else:
                made = {f"{n}{kw or ''}": keras_lrp.create_analyzer(n, model, **kw)
                        for n, kw in LRP_ANALYZERS}
        shapes = [w.shape for w in model.get_weights()]
        for analyzer in made.values():
            assert [tuple(w.shape) for w in analyzer.forward_model.weights] == shapes
        _ANALYZERS[key] = made
    return _ANALYZERS[key]


def layer_shapes(arch):
    """(input shape, [weight shapes per kernel layer], number of logits) of an architecture,
    computed without building it (strategies must not build Keras models)."""
    if arch[0] == "dense":
        _, prev, widths, bias = arch
        layers, in_shape = [], (prev,)
        for w in widths:
            layers.append([(prev, w)] + ([(w,)] if bias else []))
            prev = w
        return in_shape, layers, widths[-1]
    _, in_shape, convs, n_out, bias = arch
    (h, w, c), layers = in_shape, []
    for filters, k, padding in convs:
        layers.append([(k, k, c, filters)] + ([(filters,)] if bias else []))
        if padding == "valid":
            h, w = h - k + 1, w - k + 1
        c = filters
    layers.append([(h * w * c, n_out)] + ([(n_out,)] if bias else []))
    return in_shape, layers, n_out


def _mostly(general, special):
    """Three draws in four from ``general``, one from ``special``."""
    return st.one_of(general, general, general, st.sampled_from(special))


def _signed(low, high):
    """±[low, high] (hypothesis's simplest float is 0; exact zeros come from the specials)."""
    return st.builds(lambda m, s: s * m, st.floats(low, high, width=32), st.sampled_from([1, -1]))


#: Input values: ±[1/64, 1], or exactly 0, ±1e6, ±1e-6, ±1.
FINITE_ELEMENTS = _mostly(_signed(0.015625, 1), [0.0, 1e6, -1e6, 1e-6, -1e-6, 1.0, -1.0])
#: Weights: ±[1/64, 2], or exactly 0, ±1, ±1e-6.
WEIGHT_ELEMENTS = _mostly(_signed(0.015625, 2), [0.0, 1.0, -1.0, 1e-6, -1e-6])
#: What to do to each kernel layer's drawn weights, and to the drawn batch (as_drawn first:
#: hypothesis shrinks towards it; it is also drawn more often, so that not too many networks
#: are dead from the start).
LAYER_MODES = ["as_drawn", "zero_unit", "dead_unit", "zero_kernel"]
INPUT_MODES = ["as_drawn", "zero_sample", "huge", "tiny", "all_zero"]
BATCH = 3


@st.composite
def examples(draw, dtype, bias_free=False):
    """(arch, weights, x, neuron, modes): one network and one batch of inputs."""
    arch = draw(st.sampled_from([a for a in ARCHS if not (bias_free and a[-1])]))
    in_shape, layers, n_out = layer_shapes(arch)
    weights, modes = [], []
    for shapes in layers:
        w = [draw(hnp.arrays(dtype, shape, elements=WEIGHT_ELEMENTS, fill=st.nothing()))
             for shape in shapes]
        mode = draw(st.one_of(st.just("as_drawn"), st.just("as_drawn"),
                              st.sampled_from(LAYER_MODES)))  # 3/4 as drawn
        unit = draw(st.integers(0, w[0].shape[-1] - 1))
        if mode == "zero_unit":  # z_j = 0 exactly (0/0 for Z; zero denominators elsewhere)
            w[0][..., unit] = 0
            if len(w) > 1:
                w[1][unit] = 0
        elif mode == "dead_unit":  # z_j < 0 for every input >= 0: a dead ReLU
            w[0][..., unit] = -np.abs(w[0][..., unit])
            if len(w) > 1:
                w[1][unit] = -np.abs(w[1][unit]) - 1
        elif mode == "zero_kernel":
            w[0][...] = 0
        weights += w
        modes.append(mode)
    x = draw(hnp.arrays(dtype, (BATCH,) + in_shape, elements=FINITE_ELEMENTS, fill=st.nothing()))
    x_mode = draw(st.one_of(st.just("as_drawn"), st.sampled_from(INPUT_MODES)))
    if x_mode == "zero_sample":
        x[0] = 0
    elif x_mode == "huge":
        x = np.clip(x * np.asarray(1e6, dtype), -1e6, 1e6).astype(dtype)
    elif x_mode == "tiny":
        x = (x * np.asarray(1e-6, dtype)).astype(dtype)
    elif x_mode == "all_zero":
        x[...] = 0
    neuron = draw(st.integers(0, n_out - 1))
    return arch, weights, x, neuron, modes + [x_mode]


COUNTS = {}


def _count(key, **amounts):
    row = COUNTS.setdefault(key, {})
    for k, v in amounts.items():
        row[k] = row.get(k, 0) + v


def test_weight_swap_equals_fresh_build():
    """The property tests' shortcut (new weights into a cached analyzer) equals a fresh build."""
    arch = CURATED_ARCHS[-1]
    model = cached_model(arch, "float32")
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    x = rng.normal(size=(4,) + model.input_shape[1:]).astype("float32")
    fresh_model = build(arch)
    fresh_model.set_weights(weights)
    for label, analyzer in list(cached_analyzers(arch, "float32").items())[:6]:
        _set_weights(analyzer, weights)
        config = analyzer.get_config()
        fresh = keras_lrp.create_analyzer(config["name"], fresh_model, **config["kwargs"])
        np.testing.assert_array_equal(analyzer.analyze(x), fresh.analyze(x), err_msg=label)


@settings(PROFILE)
@given(examples("float32"))
def _finite_property(example):
    arch, weights, x, _, modes = example
    cached_model(arch, "float32").set_weights(weights)
    analyzers = cached_analyzers(arch, "float32")
    for label, analyzer in analyzers.items():
        _set_weights(analyzer, weights)
        relevance = analyzer.analyze(x)
        assert relevance.shape == x.shape and relevance.dtype == np.float32
        bad = ~np.isfinite(relevance)
        assert not bad.any(), (f"{label} on {arch} (modes {modes}): {int(bad.sum())} non-finite "
                               f"relevances, first at {np.argwhere(bad)[0].tolist()}")
    _count("float32, every LRP analyzer", networks=1, inputs=len(x), analyses=len(analyzers),
           **{f"arch {ARCHS.index(arch)}": 1})


def test_property_relevance_is_always_finite():
    _finite_property()
    row = COUNTS.get("float32, every LRP analyzer", {})
    print(f"\n[hypothesis/{PROFILE_NAME}] finite: {row.get('networks', 0)} networks, "
          f"{row.get('inputs', 0)} inputs, {row.get('analyses', 0)} analyses over "
          f"{len(LRP_ANALYZERS)} analyzers; architectures used: "
          f"{sum(1 for k in row if k.startswith('arch'))} of {len(ARCHS)}")
    assert row.get("networks", 0) >= min(PROFILE.max_examples, 10)


def _reference_lrp(arch, weights, x, neuron, rule):
    """NumPy float64 LRP of one sample through a bias-free ReLU net with one rule everywhere.

    Returns ``(R_input, logit, lost, flow)``:

    * ``lost``: relevance that the rule must drop: at every kernel layer, the sum of R_j over
      the output units j whose *unstabilised* denominator d_j = Σ_i C_ij is exactly 0. For the
      five conserving rules all C_ij are then 0 as well (they are ≥ 0 for alpha_1_beta_0, w²,
      flat; for Z, the ratio is defined as 0; for γ without bias d_j = 0 forces every x_i w_ij
      to 0), so R_j reaches no input. Every other unit passes exactly R_j down
      (Σ_i C_ij / d_j · R_j = R_j). On bias-free ReLU nets this can only happen for
      ``lrp.alpha_1_beta_0_IB`` when the explained logit is < 0 with no positive contribution,
      and for ``lrp.w_square`` at a unit whose incoming weights are all 0 (w² gives relevance
      to dead units too); Z, flat and γ always conserve (a unit with z_j = 0 is dead, so
      R_j = 0 for Z and γ; flat's denominators are counts ≥ 1).
    * ``flow``: Σ over layers of Σ_ij |C_ij / d_j · R_j|, the scale of the round-off in the
      sums (ill-conditioned denominators make it large, and the tolerance with it).
    """
    propagate, contrib = CONSERVING[rule]
    mats, a = [], np.asarray(x, np.float64).reshape(-1)
    shape = tuple(x.shape)
    paddings = iter([c[2] for c in arch[2]] if arch[0] == "conv" else [])
    for kernel in weights:  # bias-free: the weights are the kernels
        if kernel.ndim == 4:
            padding = next(paddings)
            W, out_shape = ref.conv_matrix(kernel, shape, 1, padding)
            S = ref.conv_matrix(np.ones_like(kernel), shape, 1, padding)[0]
            shape = out_shape
        else:
            W, S = ref.dense_matrix(kernel), None
        mats.append((W, S))
    acts = [a]
    for i, (W, _) in enumerate(mats):
        z = acts[-1] @ W
        acts.append(np.maximum(z, 0) if i < len(mats) - 1 else z)
    logit = acts[-1][neuron]
    R = np.zeros_like(acts[-1])
    R[neuron] = logit
    lost = flow = 0.0
    for (W, S), a in zip(reversed(mats), reversed(acts[:-1])):
        C = contrib(a, W, S)
        d = C.sum(axis=0)
        lost += float(R[d == 0].sum())
        live = d != 0
        flow += float(np.abs(C[:, live] / d[live] * R[live]).sum())
        R = propagate(a, W, np.zeros(W.shape[1]), R, S)
    return R, logit, lost, flow


@settings(PROFILE)
@given(examples("float64", bias_free=True))
def _conservation_property(example):
    arch, weights, x, neuron, modes = example
    analyzers = cached_analyzers(arch, "float64", conserving=True)
    for rule, analyzer in analyzers.items():
        _set_weights(analyzer, weights)
        relevance = analyzer.analyze(x, neuron_selection=neuron)
        assert relevance.dtype == np.float64 and np.isfinite(relevance).all(), (rule, arch)
        for i in range(len(x)):
            expected, logit, lost, flow = _reference_lrp(arch, weights, x[i], neuron, rule)
            tol = 1e-9 * (flow + abs(logit)) + 1e-280
            label = f"{rule} on {arch}, sample {i} (modes {modes}): "
            # the reference itself conserves all but the lost relevance ...
            assert abs(expected.sum() - (logit - lost)) <= tol, label + "reference"
            # ... and so does keras-lrp, value by value
            got = relevance[i].reshape(-1)
            assert abs(got.sum() - (logit - lost)) <= tol, (
                label + f"sum {got.sum()!r} != logit {logit!r} - lost {lost!r} (tol {tol:.2e})")
            np.testing.assert_allclose(got, expected, rtol=1e-7, atol=tol, err_msg=label)
            _count("float64 conservation", checks=1, exact=int(lost == 0),
                   lost=int(lost != 0), zero_logit=int(logit == 0))
    _count("float64 conservation", networks=1, inputs=len(x))


def test_property_conserving_rules_conserve_in_float64():
    _conservation_property()
    row = COUNTS.get("float64 conservation", {})
    print(f"\n[hypothesis/{PROFILE_NAME}] conservation (float64, bias-free): "
          f"{row.get('networks', 0)} networks, {row.get('inputs', 0)} inputs, "
          f"{row.get('checks', 0)} checks over {len(CONSERVING)} rules: "
          f"{row.get('exact', 0)} with nothing to lose, {row.get('lost', 0)} where the reference "
          f"drops relevance at a zero denominator, {row.get('zero_logit', 0)} with logit 0")
    assert row.get("networks", 0) >= min(PROFILE.max_examples, 10)


# ================================================================================ 3. precision
def precision_net(hidden_dtype=None):
    """Conv(relu) → MaxPool → Dense(relu) → Dense(softmax) in float32 (Keras' advice for mixed
    precision: the softmax output in float32); the hidden layers follow the global policy."""
    x = inputs = keras.Input((6, 6, 2), name="img")
    x = L.Conv2D(3, 3, activation="relu", name="conv")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(6, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", dtype="float32", name="out")(x),
                       name="precision_net")


PRECISION_ANALYZERS = [("lrp.z", {}), ("lrp.epsilon", {"epsilon": 1e-3}),
                       ("lrp.alpha_2_beta_1", {}), ("lrp.gamma", {}), ("lrp.w_square", {}),
                       ("lrp.epsilon_gamma_box", {}), ("gradient", {})]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_model_analyses_like_its_float32_twin(policy):
    """Tolerance: the 16-bit layers' clones compute in float32 with the same float32 variables,
    so the analyses are the same float32 computation: rtol 1e-5 and atol 1e-6 of the largest
    relevance allow only reordering round-off, while a 16-bit step anywhere would show errors
    of ~1e-3 (float16) or ~1e-2 (bfloat16)."""
    keras.utils.set_random_seed(4)
    with keras_dtype(policy):
        low = precision_net()
    assert low.get_layer("conv").compute_dtype == policy.split("_")[1]
    twin = precision_net()
    twin.set_weights(low.get_weights())
    x = np.random.default_rng(4).normal(size=(5, 6, 6, 2)).astype("float32")
    for name, kwargs in PRECISION_ANALYZERS:
        got = keras_lrp.create_analyzer(name, low, **kwargs).analyze(x)
        want = keras_lrp.create_analyzer(name, twin, **kwargs).analyze(x)
        assert got.dtype == np.float32, (name, got.dtype)
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale, err_msg=name)
    assert low.get_layer("conv").compute_dtype == policy.split("_")[1]  # the user's, untouched


def _reference_dense_lrp(weights, x, neuron, rule):
    """NumPy float64 LRP of a Dense ReLU net with bias (weights: kernel, bias, …)."""
    acts, layers = [np.asarray(x, np.float64)], list(zip(weights[::2], weights[1::2]))
    for i, (W, b) in enumerate(layers):
        z = acts[-1] @ W + b
        acts.append(np.maximum(z, 0) if i < len(layers) - 1 else z)
    R = np.zeros_like(acts[-1])
    R[neuron] = acts[-1][neuron]
    for (W, b), a in zip(reversed(layers), reversed(acts[:-1])):
        R = rule(a, W, b, R)
    return R


FLOAT64_RULES = {
    "lrp.epsilon": (dict(epsilon=1e-3), lambda a, W, b, R: ref.epsilon_rule(a, W, b, R, 1e-3)),
    "lrp.alpha_2_beta_1": ({}, lambda a, W, b, R: ref.alphabeta_rule(a, W, b, R, 2.0, 1.0)),
    "lrp.gamma": ({}, lambda a, W, b, R: ref.gamma_rule(a, W, b, R, 0.25)),
    "lrp.z_plus_fast": ({}, lambda a, W, b, R: ref.zplusfast_rule(a, W, b, R)),
    "lrp.w_square": ({}, lambda a, W, b, R: ref.wsquare_rule(a, W, b, R)),
}


def test_float64_model_matches_float64_reference():
    """Built in float64, analysed while the global policy is float32 (the default): results are
    float64 and match the NumPy float64 reference to rtol 1e-9 (the inputs keep every
    denominator far from 0, so the only difference is summation order, ~1e-15)."""
    with keras_dtype("float64"):
        keras.utils.set_random_seed(6)
        model = dense_net(5, (6, 4, 3), name="f64")
    assert keras.config.dtype_policy().name == "float32"
    rng = np.random.default_rng(6)
    weights = [rng.uniform(0.2, 1.0, w.shape) * rng.choice([-1, 1], w.shape)
               for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.uniform(0.5, 1.5, (4, 5))
    for name, (kwargs, rule) in FLOAT64_RULES.items():
        analyzer = keras_lrp.create_analyzer(name, model, neuron_selection_mode="index",
                                             **kwargs)
        got = analyzer.analyze(x, neuron_selection=[0, 1, 2, 0])
        assert got.dtype == np.float64, (name, got.dtype)
        want = np.stack([_reference_dense_lrp(weights, x[i], n, rule)
                         for i, n in enumerate([0, 1, 2, 0])])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max(),
                                   err_msg=name)


def branching_net():
    """Two Dense branches added: relevance from both consumers of the input is summed."""
    inputs = keras.Input((4,), name="x")
    a = L.Dense(3, activation="relu", name="left")(inputs)
    b = L.Dense(3, activation="relu", name="right")(inputs)
    return keras.Model(inputs, L.Dense(2, name="out")(L.Add(name="add")([a, b])), name="branch")


@pytest.mark.parametrize("model_dtype, global_policy", [("float32", "mixed_float16"),
                                                        ("float64", "float32")])
def test_global_policy_does_not_leak_into_analysis(model_dtype, global_policy):
    with keras_dtype(model_dtype):
        keras.utils.set_random_seed(7)
        model = branching_net()
        x = np.random.default_rng(7).random((6, 4)).astype(model_dtype)
        want = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
    with keras_dtype(global_policy):
        got = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
    assert got.dtype == np.dtype(model_dtype), got.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if model_dtype == "float32" else 1e-12)


# ============================================================================= 4. large inputs
@pytest.fixture(scope="module")
def digits():
    """The shipped digits CNN, an analyzer for it, the 360 test digits and their labels."""
    root = os.path.dirname(HERE)
    model = keras.models.load_model(os.path.join(root, "models", "digits_cnn.keras"))
    data = np.load(os.path.join(root, "models", "digits_test.npz"))
    return model, keras_lrp.create_analyzer("lrp.alpha_2_beta_1", model), data["x"], data["y"]


def assert_same(a, b):
    """Batching changes nothing but the batch dimension of the same ops: equal to 1e-6 of the
    largest value (exact equality is not promised: oneDNN may block a batch differently)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * float(np.abs(b).max()))


def test_batch_size_equals_one_shot(digits):
    _, analyzer, x, _ = digits
    one_shot = analyzer.analyze(x)
    for batch_size in (1, 7, 100, 360, 1000):
        assert_same(analyzer.analyze(x[:50] if batch_size == 1 else x, batch_size=batch_size),
                    one_shot[:50] if batch_size == 1 else one_shot)


def test_datasets_and_generators_equal_arrays(digits):
    _, analyzer, x, y = digits
    one_shot = analyzer.analyze(x)

    def gen(with_labels):
        for i in range(0, len(x), 64):
            yield (x[i:i + 64], y[i:i + 64]) if with_labels else x[i:i + 64]

    sources = {
        "dataset": tf.data.Dataset.from_tensor_slices(x).batch(50),
        "dataset (x, y)": tf.data.Dataset.from_tensor_slices((x, y)).batch(50),
        "dataset (x, y, w)": tf.data.Dataset.from_tensor_slices((x, y, y * 0.5)).batch(50),
        "generator": gen(False),
        "generator (x, y)": gen(True),
        "iterator of lists": iter([x[:200], x[200:]]),
    }
    for label, source in sources.items():
        out = analyzer.analyze(source)
        assert out.shape == x.shape, label
        assert_same(out, one_shot)
    # batch_size splits the stream's batches further
    assert_same(analyzer.analyze(tf.data.Dataset.from_tensor_slices(x).batch(100),
                                 batch_size=30), one_shot)


def test_iter_analyze_yields_batches_in_order_and_lazily(digits):
    _, analyzer, x, _ = digits
    one_shot = analyzer.analyze(x)
    parts = list(analyzer.iter_analyze(x, batch_size=100))
    assert [len(inputs) for inputs, _ in parts] == [100, 100, 100, 60]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in parts]), x)
    assert_same(np.concatenate([r for _, r in parts]), one_shot)

    pulled = []

    def source():
        for i in range(0, len(x), 40):
            pulled.append(i)
            yield x[i:i + 40]

    stream = analyzer.iter_analyze(source())
    first_inputs, first = next(stream)
    assert pulled == [0], "iter_analyze read ahead of what was asked"
    np.testing.assert_array_equal(first_inputs, x[:40])
    rest = list(stream)
    assert len(rest) == 8 and pulled == list(range(0, 360, 40))
    assert_same(np.concatenate([first] + [r for _, r in rest]), one_shot)


def test_per_sample_neuron_selection_and_layerwise_with_batch_size(digits):
    model, _, x, y = digits
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model, neuron_selection_mode="index")
    assert_same(analyzer.analyze(x, neuron_selection=y, batch_size=64),
                analyzer.analyze(x, neuron_selection=y))
    whole = analyzer.analyze(x[:100], neuron_selection=3, layerwise=True)
    batched = analyzer.analyze(x[:100], neuron_selection=3, layerwise=True, batch_size=32)
    assert list(whole) == list(batched) == analyzer.layer_names
    for key in whole:
        assert_same(batched[key], whole[key])
    with pytest.raises(ValueError, match="neuron_selection must be one int"):
        analyzer.analyze(tf.data.Dataset.from_tensor_slices(x).batch(10), neuron_selection=y)


def _two_inputs(n=30):
    rng = np.random.default_rng(8)
    return rng.random((n, 3)).astype("float32"), rng.random((n, 2)).astype("float32")


def test_two_input_model_streams():
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    a, b = _two_inputs()
    whole = analyzer.analyze([a, b])
    for out in (analyzer.analyze([a, b], batch_size=4),
                analyzer.analyze((a, b)),
                analyzer.analyze([a[i:i + 8], b[i:i + 8]] for i in range(0, 30, 8)),
                analyzer.analyze(([a[i:i + 8], b[i:i + 8]], np.zeros(8)) for i in range(0, 30, 8))):
        assert isinstance(out, list) and len(out) == 2
        assert_same(out[0], whole[0])
        assert_same(out[1], whole[1])


@pytest.mark.parametrize("source", ["dataset", "generator"])
def test_two_input_model_from_tuple_batches(source):
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    a, b = _two_inputs()
    whole = analyzer.analyze([a, b])
    data = (tf.data.Dataset.from_tensor_slices(((a, b), np.zeros(30))).batch(7)
            if source == "dataset" else
            (((a[i:i + 8], b[i:i + 8]), np.zeros(8)) for i in range(0, 30, 8)))
    out = analyzer.analyze(data)
    assert_same(out[0], whole[0])
    assert_same(out[1], whole[1])


@pytest.mark.parametrize("empty", ["generator", "dataset", "list iterator"])
def test_empty_stream_is_a_clear_error(digits, empty):
    _, analyzer, x, _ = digits
    source = {"generator": (b for b in []),
              "dataset": tf.data.Dataset.from_tensor_slices(x).take(0).batch(10),
              "list iterator": iter([])}[empty]
    with pytest.raises(ValueError, match="analyze got no samples: the dataset or generator was "
                                         "empty"):
        analyzer.analyze(source)


# ============================================================ 5. the user's model stays theirs
def user_net():
    """Conv → BatchNorm → ReLU (the clone folds the BN) → Dense(relu) → Dense(softmax)."""
    x = inputs = keras.Input((6, 6, 1), name="img")
    x = L.Conv2D(3, 3, name="conv")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(8, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="out")(x), name="user")


def snapshot(model, x):
    """Everything about the user's model an analysis could change."""
    return {
        "weights": [(v.path, v.dtype, np.array(v.numpy(), copy=True)) for v in model.weights],
        "layers": [(layer.name, type(layer).__name__, layer.trainable, layer.dtype_policy.name,
                    getattr(getattr(layer, "activation", None), "__name__", None),
                    len(layer._inbound_nodes), len(layer._outbound_nodes))
                   for layer in model.layers],
        "predictions": np.array(model(x, training=False), copy=True),
        "io": ([t.name for t in model.inputs], [t.name for t in model.outputs]),
        "trainable": model.trainable,
    }


def assert_untouched(before, after):
    assert len(before["weights"]) == len(after["weights"])
    for (p0, d0, w0), (p1, d1, w1) in zip(before["weights"], after["weights"]):
        assert (p0, d0) == (p1, d1) and w0.tobytes() == w1.tobytes(), p0  # bit-identical
    assert before["layers"] == after["layers"]
    assert before["predictions"].tobytes() == after["predictions"].tobytes()
    assert before["io"] == after["io"] and before["trainable"] == after["trainable"]


def global_config():
    return (keras.config.floatx(), keras.config.dtype_policy().name,
            keras.config.image_data_format(), keras.config.epsilon(),
            tf.config.functions_run_eagerly())


def fit_step(model, x, y):
    keras.utils.set_random_seed(11)
    return model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)


def test_the_users_model_is_untouched_by_analyses(monkeypatch, tmp_path):
    keras.utils.set_random_seed(9)
    model = user_net()
    rng = np.random.default_rng(9)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3),
                    rng.uniform(0.5, 2, 3)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    x = rng.random((16, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    twin.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    config, before = global_config(), snapshot(model, x)

    analyzers = [keras_lrp.create_analyzer(name, model, **kwargs) for name, kwargs in [
        ("lrp.epsilon", {}), ("lrp.alpha_2_beta_1", {}), ("lrp.epsilon_gamma_box", {}),
        ("gradient", {}), ("lrp.z", {"rule_map": [("fc", "Flat")], "input_layer_rule": (0, 1)}),
        ("lrp.epsilon", {"neuron_selection_mode": "index"})]]
    for analyzer in analyzers[:-1]:
        analyzer.analyze(x)
        analyzer.analyze(x, layerwise=True, batch_size=5)
        list(analyzer.iter_analyze(x, batch_size=8))
    analyzers[0].conservation(x)
    analyzers[0].save(tmp_path / "a.lrp")
    keras_lrp.load_analyzer(tmp_path / "a.lrp").analyze(x)
    bad_x = x.copy()
    bad_x[0, 0, 0, 0] = np.nan
    failures = [lambda: analyzers[0].analyze(bad_x),                       # NaN input
                lambda: analyzers[0].analyze(x[..., 0]),                   # wrong shape
                lambda: analyzers[-1].analyze(x, neuron_selection=7),      # bad neuron index
                lambda: keras_lrp.create_analyzer("lrp.alpha_beta", model, alpha=1, beta=1),
                lambda: keras_lrp.create_analyzer("deep_taylor.bounded", model,
                                                  low=np.zeros(5)).analyze(x)]
    for fail in failures:
        with pytest.raises(ValueError):
            fail()
    assert global_config() == config
    assert_untouched(before, snapshot(model, x))
    # still trains, exactly like its never-analysed twin (same compile, data and seed)
    loss = fit_step(model, x, y).history["loss"][0]
    twin_loss = fit_step(twin, x, y).history["loss"][0]
    assert np.isfinite(loss) and loss == twin_loss
    for w, t in zip(model.weights, twin.weights):
        np.testing.assert_array_equal(w.numpy(), t.numpy(), err_msg=w.path)
    assert any(not np.array_equal(w, v.numpy()) for (_, _, w), v in zip(before["weights"],
                                                                        model.weights))


def test_model_with_unsupported_layer_is_untouched_by_the_failure():
    keras.utils.set_random_seed(10)
    model = unsupported_net()
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(10).random((8, 4)).astype("float32")
    config, before = global_config(), snapshot(model, x)
    with pytest.raises(ValueError, match="no relevance mapping for layer 'cube'"):
        keras_lrp.create_analyzer("lrp.epsilon", model)
    assert global_config() == config
    assert_untouched(before, snapshot(model, x))
    assert np.isfinite(fit_step(model, x, np.zeros((8, 2))).history["loss"][0])


@pytest.mark.parametrize("model_policy, global_policy", [("mixed_float16", "float32"),
                                                        ("float32", "mixed_float16"),
                                                        ("mixed_bfloat16", "float64")])
def test_global_configuration_unchanged_across_policies(model_policy, global_policy):
    keras.utils.set_random_seed(12)
    with keras_dtype(model_policy):
        model = precision_net()
    x = np.random.default_rng(12).random((3, 6, 6, 2)).astype("float32")
    before = snapshot(model, x)
    with keras_dtype(global_policy):
        config = global_config()
        for name in ("lrp.epsilon", "lrp.gamma", "gradient"):
            relevance = keras_lrp.create_analyzer(name, model).analyze(x)
            assert np.isfinite(relevance).all()
            assert global_config() == config
    assert_untouched(before, snapshot(model, x))


# ============================================================== 6. concurrency and reuse
def test_one_analyzer_shared_by_four_threads(digits):
    """4 threads call one fresh analyzer at once (the first calls race to trace it), mixing
    plain and layerwise analyses; each result equals the sequential one exactly."""
    model, _, x, _ = digits
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    batches = [x[i * 20:(i + 1) * 20] for i in range(16)]
    start = threading.Barrier(4, timeout=60)

    def work(i):
        if i < 4:
            start.wait()  # the four first tasks start together, before anything is traced
        return analyzer.analyze(batches[i], layerwise=i % 3 == 0)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(work, range(16)))
    for i, got in enumerate(together):
        alone = analyzer.analyze(batches[i], layerwise=i % 3 == 0)
        if isinstance(alone, dict):
            assert list(got) == list(alone)
            for key in alone:
                np.testing.assert_array_equal(got[key], alone[key], err_msg=f"{i} {key}")
        else:
            np.testing.assert_array_equal(got, alone, err_msg=str(i))


def test_repeated_builds_do_not_slow_down():
    """30 builds (+ one analysis each, as a user would) of one small model: the median of the
    last 5 is within 3x (+20 ms) of the first 5 (benchmarks/bench_memory.py measures 200)."""
    keras.utils.set_random_seed(13)
    model = dense_net(8, (16, 16, 4), name="reuse")
    x = np.random.default_rng(13).random((4, 8)).astype("float32")
    times = []
    for _ in range(30):
        start = time.perf_counter()
        keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
        times.append(time.perf_counter() - start)
    first, last = statistics.median(times[:5]), statistics.median(times[-5:])
    print(f"\n[reuse] build+analyze median: first 5 {first * 1e3:.1f} ms, "
          f"last 5 {last * 1e3:.1f} ms")
    assert last <= 3 * first + 0.02, times


# ============================================================================ 7. serialization
def serial_net():
    x = inputs = keras.Input((5, 5, 1), name="img")
    x = L.Conv2D(2, 2, activation="relu", name="conv")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(4, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x), name="serial")


SAVED = [
    ("lrp.epsilon", {"epsilon": 0.01}),
    ("lrp.alpha_beta", {"alpha": 3}),
    ("lrp", {"rule": "Gamma", "rule_map": [((L.Dense,), rules.Epsilon(epsilon=0.05)),
                                           ("conv", rules.AlphaBeta(alpha=2, beta=1))],
             "input_layer_rule": (np.full((5, 5, 1), -0.5), 2.0)}),
    ("lrp.epsilon_gamma_box", {"low": 0.0, "high": np.float32(1), "neuron_selection_mode": "all"}),
    ("lrp.z", {"neuron_selection_mode": "index", "until_layer_idx": 1,
               "until_layer_rule": "Flat"}),
    ("input_t_gradient", {}),
]


@pytest.fixture(scope="module")
def serial():
    keras.utils.set_random_seed(14)
    model = serial_net()
    return model, np.random.default_rng(14).normal(size=(6, 5, 5, 1)).astype("float32")


@pytest.mark.parametrize("name, kwargs", SAVED, ids=[f"{n}-{i}" for i, (n, _) in
                                                     enumerate(SAVED)])
def test_save_load_round_trip_is_identical(serial, tmp_path, name, kwargs):
    model, x = serial
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    selection = {"neuron_selection": [0, 1, 2, 0, 1, 2]} if kwargs.get(
        "neuron_selection_mode") == "index" else {}
    path = tmp_path / "analyzer.lrp"
    analyzer.save(path)
    loaded = keras_lrp.load_analyzer(path)
    assert type(loaded) is type(analyzer) and loaded.name == analyzer.name
    assert loaded.neuron_selection_mode == analyzer.neuron_selection_mode
    np.testing.assert_array_equal(loaded.analyze(x, **selection), analyzer.analyze(x, **selection))
    assert os.listdir(tmp_path) == ["analyzer.lrp"]  # no temporary files left behind


def test_newer_format_version_says_upgrade(serial, tmp_path):
    model, _ = serial
    path = tmp_path / "new.lrp"
    keras_lrp.create_analyzer("lrp.z", model).save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("analyzer.json"))
        saved_model = archive.read("model.keras")
    assert config["format_version"] == serialize.FORMAT_VERSION
    config["format_version"] = serialize.FORMAT_VERSION + 1
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("analyzer.json", json.dumps(config))
        archive.writestr("model.keras", saved_model)
    with pytest.raises(ValueError) as err:
        keras_lrp.load_analyzer(path)
    msg = str(err.value)
    assert f"file format {serialize.FORMAT_VERSION + 1}" in msg, msg
    assert f"reads formats up to {serialize.FORMAT_VERSION}" in msg, msg
    assert "Upgrade keras-lrp to load it" in msg, msg


@pytest.mark.parametrize("kind", ["text file", "keras model file", "zip without analyzer.json"])
def test_non_analyzer_file_fails_clearly(serial, tmp_path, kind):
    model, _ = serial
    path = tmp_path / "thing"
    if kind == "text file":
        path.write_text("not an analyzer")
    elif kind == "keras model file":
        path = tmp_path / "model.keras"
        model.save(path)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="is not a keras-lrp analyzer file"):
        keras_lrp.load_analyzer(path)


def test_missing_file_is_reported_as_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        keras_lrp.load_analyzer(tmp_path / "nowhere.lrp")


class MyEpsilon(rules.Epsilon):
    """A user's rule: not a keras-lrp built-in, so it cannot be saved by name."""


@pytest.mark.parametrize("kwargs, keyword", [
    ({"rule": MyEpsilon(epsilon=0.1)}, "rule"),
    ({"rule": "Z", "rule_map": [(L.Dense, MyEpsilon())]}, "rule_map"),
    ({"rule": "Z", "input_layer_rule": MyEpsilon}, "input_layer_rule"),
])
def test_custom_rule_cannot_be_saved(serial, tmp_path, kwargs, keyword):
    model, x = serial
    analyzer = keras_lrp.create_analyzer("lrp", model, **kwargs)
    analyzer.analyze(x)  # a fine analyzer; only saving it is impossible
    path = tmp_path / "custom.lrp"
    with pytest.raises(TypeError) as err:
        analyzer.save(path)
    msg = str(err.value)
    assert f"keyword argument {keyword!r}" in msg and "MyEpsilon" in msg, msg
    assert "Recreate analyzers with custom objects in code" in msg, msg
    assert not path.exists() and os.listdir(tmp_path) == []


def test_overflowing_rule_is_an_error_naming_the_layer_not_a_silent_inf():
    """If a rule's ratios blow up (as ZPlusFast can on mixed-sign inputs, seen on
    EfficientNetV2B0), analyze raises and names the layer and rule instead of returning inf."""

    class Overflow(keras_lrp.rules.Rule):
        """R_i = x_i · 1e30 · Σ_j R_j (overflows float32 for any nonzero x and R)."""

        def relevance(self, op, x, z, relevance):
            total = keras.ops.sum(relevance, axis=-1, keepdims=True)
            return x * 1e30 * 1e30 * total

    inputs = keras.Input((3,), name="x")
    h = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(h))
    analyzer = keras_lrp.create_analyzer("lrp.z", model, rule_map=[("hidden", Overflow())])
    x = np.random.default_rng(0).uniform(0.5, 1.0, (2, 3)).astype("float32")
    with pytest.raises(FloatingPointError, match=r"at layer 'hidden' \(Overflow\(\)\), passing "
                                                 r"relevance to 'x'.*Use a stabilised rule"):
        analyzer.analyze(x)
