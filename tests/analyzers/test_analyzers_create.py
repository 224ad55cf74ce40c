"""Errors when creating an analyzer (``keras_lrp/analyzers.py``, rules, graph, composites):
every message names the problem and the remedy, and comes before graph extraction (or cloning),
which is replaced by a function that fails the test.
"""

import keras
import numpy as np
import pytest
from helpers import L, no_build, plain, unsupported_net

import keras_lrp
from keras_lrp import rules


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
    assert ("Valid: epsilon, bias, bias_factor, neuron_selection_mode" in msg
            and "rule_map" in msg), msg


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
    ("keras_lrp/demos/models/digits_cnn.keras", "Expected a keras.Model"),
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

    unbuilt = Sub()
    with pytest.raises(TypeError, match="subclassed model.*input shape.*Call the model once"):
        keras_lrp.create_analyzer("lrp.z", unbuilt)
    # built by a call: traced from its call(), LRP-0 of a bias-free linear map is x_i W_ik
    sub = Sub()
    sub(np.ones((1, 3)))
    sub.d.bias.assign(np.zeros(2))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    r = keras_lrp.create_analyzer("lrp.z", sub, neuron_selection_mode="index").analyze(
        x, neuron_selection=1)
    np.testing.assert_allclose(r, x * np.asarray(sub.d.kernel)[:, 1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="has not been built.*keras.Input"):
        keras_lrp.create_analyzer("lrp.z", keras.Sequential([L.Dense(2)]))


def test_unsupported_layer_named_before_cloning(monkeypatch):
    model = unsupported_net()
    no_build(monkeypatch, "clone")
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.epsilon", model)
    msg = str(err.value)
    assert "no relevance mapping for layer 'cube'" in msg and "Cube" in msg, msg
    assert "keras_lrp.register_layer(Cube, keras_lrp.layers.IdentityRelevance)" in msg, msg


