"""Precision: mixed_float16 / mixed_bfloat16 models analyse like their float32 twin, float64
models like the float64 NumPy oracle, and the result is never below float32.
"""

import keras
import numpy as np
import pytest
import reference as ref
from helpers import L, assert_close, dense_net, keras_dtype, precision_net

import keras_lrp

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


FLOAT64_RULES = {  # the oracle's kernel rules: rule(x, W, b, R, S)
    "lrp.epsilon": (dict(epsilon=1e-3), lambda a, W, b, R, S: ref.epsilon_rule(a, W, b, R, 1e-3)),
    "lrp.alpha_2_beta_1": ({}, lambda a, W, b, R, S: ref.alphabeta_rule(a, W, b, R, 2.0, 1.0)),
    "lrp.gamma": ({}, lambda a, W, b, R, S: ref.gamma_rule(a, W, b, R, 0.25)),
    "lrp.z_plus_fast": ({}, lambda a, W, b, R, S: ref.zplusfast_rule(a, W, b, R)),
    "lrp.w_square": ({}, lambda a, W, b, R, S: ref.wsquare_rule(a, W, b, R)),
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
    net, neurons = ref.Net.from_keras(model), [0, 1, 2, 0]
    starts = np.eye(3)[neurons] * net.logits(x)  # the chosen logit of each sample, one-hot
    for name, (kwargs, rule) in FLOAT64_RULES.items():
        analyzer = keras_lrp.create_analyzer(name, model, neuron_selection_mode="index",
                                             **kwargs)
        got = analyzer.analyze(x, neuron_selection=neurons)
        assert got.dtype == np.float64, (name, got.dtype)
        want = net.batch_relevance(x, rule, starts)[0]
        assert_close(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max(), err_msg=name)


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


