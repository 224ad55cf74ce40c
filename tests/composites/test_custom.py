"""Teaching keras-lrp new layers and rules: register_linear, register_rule, custom Rule classes.

The worked example in examples/custom_layer_and_rule.py is run here against its NumPy hand
computation in float64 (rtol 1e-9: the same arithmetic in a different order).
"""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import assert_close

import keras_lrp
from keras_lrp.composites.registry import REGISTRY
from keras_lrp.core import linear

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_layer_and_rule.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("custom_layer_and_rule", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers PositiveDense's linear map
    return module


def test_example_custom_layer_and_rule_match_hand_computation(example, float64):
    model = example.build_model(seed=3)
    x = np.random.default_rng(4).normal(size=(5, 4))
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=0.01,
                                         rule_map=[("out", example.AbsZ())])
    assert_close(analyzer.analyze(x), example.by_hand(model, x, 0.01), rtol=1e-9, atol=1e-12)


def test_abs_z_rule_conserves(example, float64):
    """|z|-rule: Σ_i |x_i w_ij| / Σ_i' |x_i' w_i'j| sums to 1 over i, so Σ R_in = Σ R_out."""
    layer = keras.layers.Dense(3, use_bias=False)
    x = np.random.default_rng(5).normal(size=(2, 4))
    z = layer(x)
    relevance = np.random.default_rng(6).normal(size=(2, 3))
    out = np.asarray(example.AbsZ().bind(layer)([x, z, relevance]))
    assert_close(out.sum(axis=1), relevance.sum(axis=1), rtol=1e-12)
    assert np.isfinite(out).all()


def test_registered_layer_takes_every_rule(example, float64):
    """With its linear map registered, PositiveDense gets e.g. AlphaBeta: all weights are
    positive, so z⁻ only has x⁻ w⁺ terms; check against the formula in NumPy."""
    model = example.build_model(seed=7)
    x = np.random.default_rng(8).normal(size=(3, 4))
    lw = keras_lrp.create_analyzer("lrp.alpha_2_beta_1", model, bias=False).analyze(
        x, layerwise=True)
    v, _ = model.get_layer("positive").get_weights()
    w = np.log1p(np.exp(v))
    R = lw["positive"]
    xp, xn = np.maximum(x, 0), np.minimum(x, 0)
    zp, zn = xp @ w, xn @ w  # w > 0: activator x⁺w, inhibitor x⁻w (0 when no x_i < 0)
    sp = np.divide(R, zp, out=np.zeros_like(R), where=zp != 0)
    sn = np.divide(R, zn, out=np.zeros_like(R), where=zn != 0)
    expected = 2 * xp[:, :, None] * w * sp[:, None] - 1 * xn[:, :, None] * w * sn[:, None]
    assert_close(lw["x"], expected.sum(axis=2), rtol=1e-9, atol=1e-12)


def test_register_rule_applies_everywhere_and_rule_map_wins(example, float64):
    with REGISTRY.scoped():
        _register_rule_applies_everywhere_and_rule_map_wins(example)
    assert REGISTRY.rules == []


def _register_rule_applies_everywhere_and_rule_map_wins(example):
    model = example.build_model(seed=9)
    x = np.random.default_rng(10).normal(size=(2, 4))
    plain = keras_lrp.create_analyzer("lrp.z", model).analyze(x)
    explicit = keras_lrp.create_analyzer("lrp.z", model,
                                         rule_map=[("out", example.AbsZ())]).analyze(x)
    keras_lrp.register_rule(keras.layers.Dense, example.AbsZ())
    registered = keras_lrp.create_analyzer("lrp.z", model).analyze(x)
    np.testing.assert_allclose(registered, explicit, rtol=1e-12)
    assert not np.allclose(registered, plain)  # the registration changed the Dense layer's rule
    overridden = keras_lrp.create_analyzer("lrp.z", model, rule_map=[(keras.layers.Dense, "Z")])
    np.testing.assert_allclose(overridden.analyze(x), plain, rtol=1e-12)  # rule_map wins


def test_custom_rule_params_are_validated_and_shown():
    class Scaled(keras_lrp.rules.Rule):
        """R_i = c · Z rule (for the test)."""

        PARAMS = {"c": 1.0}

        def validate(self, c):
            if c <= 0:
                raise ValueError(f"Scaled needs c > 0, got c={c!r}.")

    assert repr(Scaled(c=2.0)) == "Scaled(c=2.0)"
    with pytest.raises(ValueError, match=r"c > 0, got c=-1"):
        Scaled(c=-1)


@pytest.mark.parametrize("args, match", [
    ((object, lambda layer, x, k: x), "Layer subclass"),
    ((keras.layers.Layer, "not callable"), "apply"),
])
def test_register_linear_rejects_bad_arguments(args, match):
    before = list(linear.LINEAR_OPS)
    with pytest.raises(TypeError, match=match):
        keras_lrp.register_linear(*args)
    assert linear.LINEAR_OPS == before


def test_register_rule_rejects_bad_key_and_rule():
    before = list(REGISTRY.rules)
    with pytest.raises(TypeError, match="rule_map key"):
        keras_lrp.register_rule(3.5, "Z")
    with pytest.raises(ValueError, match="Unknown LRP rule 'Nope'"):
        keras_lrp.register_rule(keras.layers.Dense, "Nope")
    assert REGISTRY.rules == before


def test_example_layer_without_kernel_mapped_for_one_analyzer(example, float64):
    """Halve (x ↦ x/2) with rule_map=[(Halve, ProportionalRelevance)]: the Z rule by hand."""
    model = example.halve_model(seed=11)
    x = np.random.default_rng(12).normal(size=(4, 4))
    ours = keras_lrp.create_analyzer("lrp.z", model, rule_map=[
        (example.Halve, keras_lrp.layers.ProportionalRelevance)]).analyze(x)
    assert_close(ours, example.halve_by_hand(model, x), rtol=1e-9, atol=1e-12)
    # without the mapping, Halve is traced into its part x / 2 (the identity, which the Z rule
    # through x ↦ x/2 equals in float64): the same relevance
    traced = keras_lrp.create_analyzer("lrp.z", model)
    assert not any(isinstance(layer, example.Halve) for layer in traced.forward_model.layers)
    np.testing.assert_allclose(traced.analyze(x), ours, rtol=1e-9, atol=1e-12)


def test_example_gradient_family_method_is_one_class(example, float64):
    """VarGrad over input × gradient of a linear model: Var[(x + ε) w] = σ² w² per input.

    Statistical: with n = 4000 samples the sample variance has relative standard error
    √(2/n) ≈ 2.2 %; rtol 0.12 is over 5 standard errors."""
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(inputs))
    w = model.get_layer("out").get_weights()[0][:, 0]
    vargrad = example.VarGrad(keras_lrp.create_analyzer("input_t_gradient", model), n=4000,
                              noise_scale=0.5, seed=3)
    x = np.random.default_rng(13).normal(size=(2, 4))
    got = vargrad.analyze(x)
    np.testing.assert_allclose(got, np.broadcast_to(0.25 * w ** 2, got.shape), rtol=0.12)
    again = example.VarGrad(keras_lrp.create_analyzer("input_t_gradient", model), n=4000,
                            noise_scale=0.5, seed=3).analyze(x)
    np.testing.assert_array_equal(got, again)  # the seed makes it reproducible
