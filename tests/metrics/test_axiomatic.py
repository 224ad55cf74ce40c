"""Completeness (and CompletenessGap), NonSensitivity and InputInvariance: Quantus 0.6's numbers
on the digits CNN (tests/data/quantus/simple.npz), replays of Quantus's own model outputs, hand
cases on linear models, tabular and token layouts, batching (Scores.calls) and the errors.

Tolerances: Keras and Quantus's PyTorch twin compute the same float32 network in a different
order, so their logits (~20 here) agree to ~1e-5 and their probabilities to float32 rounding
(~1e-7 near 1); the comparisons say which they use and why.
"""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.metrics.axiomatic import (
    Completeness,
    CompletenessGap,
    InputInvariance,
    NonSensitivity,
    shifted_model,
)
from keras_lrp.metrics.base import Scores

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "quantus")
L = keras.layers


@pytest.fixture(scope="module")
def data():
    with np.load(os.path.join(DATA, "inputs.npz")) as inputs, \
            np.load(os.path.join(DATA, "simple.npz")) as quantus:
        return {k: inputs[k] for k in inputs.files}, {k: quantus[k] for k in quantus.files}


@pytest.fixture(scope="module")
def digits():
    return keras.models.load_model("keras_lrp/demos/models/digits_cnn.keras")


class Replay:
    """A model that returns, call after call, the target outputs Quantus's model returned."""

    def __init__(self, outputs, targets, k=10):
        self.outputs, self.targets, self.k, self.i = outputs, targets, k, 0

    def __call__(self, x):
        out = np.zeros((len(x), self.k))
        out[np.arange(len(x)), self.targets] = self.outputs[:, self.i]
        self.i += 1
        return out


# -- Completeness ------------------------------------------------------------------------------
def test_completeness_equals_quantus_on_the_digits(data, digits):
    """Quantus tests Σa == Δ exactly: no float explanation passes (normalised or not)."""
    inputs, quantus = data
    scores = Scores(digits)
    ours = Completeness()(scores, inputs["x"], inputs["y"], a=inputs["a_epsilon"])
    assert ours.dtype == bool and scores.calls == 2  # x and the baseline, whole batch each
    np.testing.assert_array_equal(ours, quantus["completeness"].astype(bool))
    raw = Completeness(normalise=False)(digits, inputs["x"], inputs["y"], a=inputs["a_epsilon"])
    np.testing.assert_array_equal(raw, quantus["completeness_raw"].astype(bool))


def test_completeness_gap_is_the_relative_leak(data, digits):
    """The gap from Quantus's own output change Δ; Keras' Δ differs from the twin's by float32
    rounding of logits ~20 (≤ ~1e-5), i.e. ≤ ~1e-6 of the relative gap."""
    inputs, quantus = data
    a = inputs["a_epsilon"]
    delta = quantus["completeness_delta"]
    expected = (a.reshape(16, -1).astype(np.float64).sum(axis=1) - delta) / delta
    signed = CompletenessGap(signed=True)(digits, inputs["x"], inputs["y"], a=a)
    np.testing.assert_allclose(signed, expected, rtol=0, atol=1e-5)
    gap = CompletenessGap()(digits, inputs["x"], inputs["y"], a=a)
    np.testing.assert_allclose(gap, np.abs(signed))
    assert CompletenessGap().higher_is_better is False


def _linear(weights):
    """x (F) → Dense(K) linear, with the given kernel and zero bias."""
    i = keras.Input((weights.shape[0],))
    model = keras.Model(i, L.Dense(weights.shape[1])(i))
    model.set_weights([weights, np.zeros(weights.shape[1])])
    return model


def test_conserving_relevance_is_complete_on_a_linear_model():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 3)).astype("float32")
    x = rng.uniform(0.5, 1.0, size=(4, 6)).astype("float32")
    y = np.array([0, 1, 2, 0])
    a = x * w[:, y].T  # x ⊙ ∂f_y/∂x: Σa = f_y(x) − f_y(0)
    model = _linear(w)
    assert Completeness(normalise=False, perturb_baseline=0.0, rtol=1e-5)(model, x, y, a=a).all()
    np.testing.assert_allclose(CompletenessGap(perturb_baseline=0.0)(model, x, y, a=a), 0,
                               atol=1e-5)
    np.testing.assert_allclose(CompletenessGap(signed=True, perturb_baseline=0.0)(
        model, x, y, a=0.8 * a), -0.2, atol=1e-5)


# -- NonSensitivity ------------------------------------------------------------------------------
def test_non_sensitivity_equals_quantus_on_quantus_outputs(data):
    """With the model outputs Quantus saw (replayed call by call: x, then feature 0, 1, … at the
    sample's min), the counts are Quantus's exactly; one model call per step for the batch."""
    inputs, quantus = data
    replay = Replay(quantus["ns_out"], inputs["y"])
    scores = Scores(replay)
    ours = NonSensitivity(softmax=False)(scores, inputs["x"], inputs["y"],
                                         a=inputs["a_epsilon"])
    assert scores.calls == 65
    np.testing.assert_array_equal(ours, quantus["ns"])


def test_non_sensitivity_on_the_keras_model_differs_only_at_eps(data, digits):
    """On Keras' own model the probabilities differ from the twin's by float32 rounding
    (≤ 1e-6 here); a count can then differ only by features whose effect lies that close to
    eps = 1e-5."""
    inputs, quantus = data
    x, y = inputs["x"], inputs["y"]
    scores = Scores(digits, softmax=True)
    ours = NonSensitivity()(scores, x, y, a=inputs["a_epsilon"])
    effect = np.abs(quantus["ns_out"][:, 1:] - quantus["ns_out"][:, :1])
    near = (np.abs(effect - 1e-5) < 1e-6).sum(axis=1)
    assert np.all(np.abs(ours - quantus["ns"]) <= near)
    assert scores.calls == 65


def test_non_sensitivity_counts_both_violations_by_hand():
    """f linear with zero weights on features 1 and 4 of the explained output."""
    w = np.array([[1.0, 0.0, 2.0, -1.0, 0.0, 0.5], [1.0] * 6]).T.astype("float32")
    model = _linear(w)
    x = np.linspace(1, 2, 12).reshape(2, 6).astype("float32")
    y = np.array([0, 0])
    exact = x * w[:, 0]
    metric = NonSensitivity(perturb_baseline=0.0, softmax=False)
    scores = Scores(model)
    np.testing.assert_array_equal(metric(scores, x, y, a=exact), [0, 0])
    assert scores.calls == 7
    # relevance everywhere: features 1 and 4 have relevance yet no effect
    np.testing.assert_array_equal(metric(model, x, y, a=np.ones_like(x)), [2, 2])
    # in pairs (Quantus 0.6 raises here): 1 and 4 share their pair's effect, yet have none
    scores = Scores(model)
    paired = NonSensitivity(features_in_step=2, perturb_baseline=0.0, softmax=False)
    np.testing.assert_array_equal(paired(scores, x, y, a=exact), [2, 2])
    assert scores.calls == 4


def test_quantus_non_sensitivity_fails_in_steps(data):
    assert data[1]["ns_fis4_raises"]


def _token_model(vocab=30, length=7):
    i = keras.Input((length,), dtype="int32")
    h = L.GlobalAveragePooling1D()(L.Embedding(vocab, 4)(i))
    model = keras.Model(i, L.Dense(3)(h))
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model


def test_token_case():
    """A model of token ids: perturbed tokens become token_baseline. (The model is given as a
    callable: Scores wraps a Keras model in the gradient analyzer, which refuses int inputs.)"""
    keras_model = _token_model()
    model = lambda v: keras_model(v)  # noqa: E731
    rng = np.random.default_rng(8)
    x = rng.integers(1, 30, size=(3, 7)).astype("int32")
    y = np.array([0, 2, 1])
    a = rng.normal(size=(3, 7))
    f = lambda v: np.asarray(model(v))[np.arange(3), y]  # noqa: E731
    delta = f(x) - f(np.zeros_like(x))
    np.testing.assert_allclose(CompletenessGap(signed=True, token_baseline=0)(model, x, y, a=a),
                               (a.sum(1) - delta) / delta, rtol=1e-4, atol=1e-5)
    effects = []
    for t in range(7):
        masked = x.copy()
        masked[:, t] = 0
        effects.append(np.abs(f(masked) - f(x)) < 1e-5)
    silent = np.abs(a) / np.abs(a).max(axis=1, keepdims=True) < 1e-5
    expected = (np.stack(effects, axis=1) ^ silent).sum(axis=1)
    scores = Scores(model)
    ours = NonSensitivity(softmax=False, token_baseline=0)(scores, x, y, a=a)
    np.testing.assert_array_equal(ours, expected)
    assert scores.calls == 8
    with pytest.raises(ValueError, match="token_baseline"):
        NonSensitivity()(model, x, y, a=a)


# -- InputInvariance -------------------------------------------------------------------------------
def _valid_cnn(quantus):
    i = keras.Input((8, 8, 1))
    h = L.Flatten()(L.Conv2D(4, 3, activation="relu")(i))
    model = keras.Model(i, L.Dense(10)(h))
    model.set_weights([quantus[f"valid_w{k}"] for k in range(4)])
    return model


def test_input_invariance_of_gradient_but_not_input_times_gradient(data):
    """A first conv without padding absorbs the shift exactly: the gradient is unchanged on
    every digit, input × gradient on none, as Quantus finds once it shifts every value. Its
    own shift leaves the first value unshifted, and then even the gradient fails."""
    inputs, quantus = data
    model = _valid_cnn(quantus)
    x, y = inputs["x"], inputs["y"]
    np.testing.assert_allclose(np.asarray(model(x)), quantus["valid_logits"], rtol=1e-4,
                               atol=1e-5)
    for name, key in (("gradient", "gradient"), ("input_t_gradient", "input_x_gradient")):
        metric, scores = InputInvariance(), Scores(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ours = metric(scores, x, y, explain=keras_lrp.create_analyzer(name, model))
        assert not [w for w in caught if "shifted model" in str(w.message)]
        assert scores.calls == 1  # the targets' call; the shifted model is explained once
        assert ours.dtype == bool and metric.model_gap < 1e-4
        np.testing.assert_array_equal(ours, quantus[f"valid_ii_fixed_{key}"].astype(bool))
    assert ours.sum() == 0 and quantus["valid_ii_fixed_gradient"].all()
    assert quantus["valid_ii_gradient"].sum() < 16  # Quantus's unshifted first value


def test_input_invariance_on_a_padded_first_conv_warns(data, digits):
    """The digits CNN's conv1 pads ('same'): no bias absorbs the shift at the border, so the
    shifted model is another function (logits off by ~16) and even the gradient changes; we
    warn. Quantus finds the same (all False) silently, from a bias shift of its own: the
    conv's response at the border position where it is largest, not the kernel's sum."""
    inputs, quantus = data
    before = [w.copy() for w in digits.get_weights()]
    with pytest.warns(UserWarning, match="pads its input"):
        ours = InputInvariance()(digits, inputs["x"], inputs["y"], a=inputs["a_gradient"],
                                 explain=keras_lrp.create_analyzer("gradient", digits))
    np.testing.assert_array_equal(ours, quantus["ii_gradient"].astype(bool))
    for w, b in zip(digits.get_weights(), before):
        np.testing.assert_array_equal(w, b)  # the user's model is untouched
    clone, layer = shifted_model(digits, -1.0)
    shift = np.asarray(layer.bias) - inputs["w1"]
    np.testing.assert_allclose(shift, inputs["w0"].sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    assert np.all(quantus["ii_bias_shift"] >= shift - 1e-5)
    assert not np.allclose(quantus["ii_bias_shift"], shift, atol=1e-3)


def test_input_invariance_on_tabular_data():
    rng = np.random.default_rng(9)
    i = keras.Input((5,))
    model = keras.Model(i, L.Dense(3)(L.Dense(8, activation="relu")(i)))
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(6, 5)).astype("float32")
    for name, kwargs, invariant in (("gradient", {}, True), ("input_t_gradient", {}, False),
                                    ("lrp.epsilon", {"epsilon": 0.5}, False)):
        # the analyzer is rebuilt on the shifted clone from its configuration (ε included)
        out = InputInvariance(input_shift=2.5)(
            model, x, explain=keras_lrp.create_analyzer(name, model, **kwargs))
        assert out.shape == (6,) and out.all() == invariant and out.any() == invariant


def test_input_invariance_refuses_what_it_cannot_shift(digits):
    x = np.zeros((2, 5), dtype="float32")
    i = keras.Input((5,))
    no_bias = keras.Model(i, L.Dense(2, use_bias=False)(i))
    with pytest.raises(ValueError, match="use_bias=True"):
        InputInvariance()(no_bias, x, explain=keras_lrp.create_analyzer("gradient", no_bias))
    with pytest.raises(ValueError, match="keras-lrp analyzer"):
        InputInvariance()(no_bias, x, a=np.zeros_like(x), explain=lambda v, t: v)
    with pytest.raises(ValueError, match="give explain"):
        InputInvariance()(no_bias, x, a=np.zeros_like(x))
    tokens = _token_model()
    with pytest.raises(ValueError, match="cannot be shifted"):
        InputInvariance()(lambda v: tokens(v), np.ones((2, 7), dtype="int32"),
                          a=np.zeros((2, 7)), explain=keras_lrp.create_analyzer("lrp.epsilon",
                                                                                tokens))


def test_categories():
    for metric in (Completeness(), CompletenessGap(), NonSensitivity(), InputInvariance()):
        assert metric.category == "axiomatic"
    assert NonSensitivity().softmax and not Completeness().softmax
