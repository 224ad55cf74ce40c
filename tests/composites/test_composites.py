"""Composites: one ordered map decides every node's relevance layer (keras_lrp/composites.py).

Numbers are checked against the NumPy oracle (``tests/reference.py``) in float64, rtol 1e-9
(the same sums in another order); structure (which relevance layer a node got) only where the
structure is the behaviour.
"""

import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close

import keras_lrp
from keras_lrp import composites, rules
from keras_lrp.canonizers import (
    FoldBatchNorm,
    InlineNested,
    SplitActivations,
    StripSoftmax,
    has_fused_activation,
)
from keras_lrp.composites.registry import REGISTRY

L = keras.layers
RTOL = 1e-9


def _cnn(seed=0):
    """Conv2D(relu) → MaxPool → Flatten → Dense(relu) → Dense, float64, with biases."""
    i = keras.Input((6, 6, 2), name="x")
    h = L.Conv2D(3, 3, activation="relu", name="conv")(i)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Dense(4, activation="relu", name="hidden")(L.Flatten(name="flat")(h))
    model = keras.Model(i, L.Dense(3, name="out")(h))
    g = np.random.default_rng(seed)
    model.set_weights([g.normal(scale=0.7, size=w.shape) for w in model.get_weights()])
    return model, g.normal(size=(3, 6, 6, 2))


def _oracle(model, x, rule_by_layer):
    return ref.Net.from_keras(model).batch_relevance(x, rule_by_layer)[0]


EPS = lambda x, W, b, R, S: ref.epsilon_rule(x, W, b, R, 1e-3)  # noqa: E731
ZPLUS = lambda x, W, b, R, S: ref.zplus_rule(x, W, b, R, bias=True)  # noqa: E731  Zennit's
Z = lambda x, W, b, R, S: ref.z_rule(x, W, b, R)  # noqa: E731
FLAT = lambda x, W, b, R, S: ref.flat_rule(x, W, b, R, structure=S)  # noqa: E731


def test_named_composite_equals_its_analyzer_and_the_oracle(float64):
    model, x = _cnn()
    by_composite = keras_lrp.create_analyzer(
        "lrp", model, composite=composites.EpsilonPlus(epsilon=1e-3)).analyze(x)
    by_name = keras_lrp.create_analyzer("lrp.epsilon_plus", model, epsilon=1e-3).analyze(x)
    np.testing.assert_array_equal(by_composite, by_name)
    expected = _oracle(model, x, {"conv": ZPLUS, "hidden": EPS, "out": EPS})
    assert_close(by_composite, expected, rtol=RTOL, atol=1e-12)


def test_first_match_wins_and_user_entries_go_in_front(float64):
    model, x = _cnn(1)
    composite = composites.Composite([(L.Dense, rules.Z()), (L.Dense, rules.Flat()),
                                      (L.Conv2D, rules.Z())])
    got = keras_lrp.create_analyzer("lrp", model, composite=composite).analyze(x)
    assert_close(got, _oracle(model, x, {"conv": Z, "hidden": Z, "out": Z}), rtol=RTOL, atol=1e-12)
    front = keras_lrp.create_analyzer("lrp", model, composite=composite,
                                      rule_map=[("out", "Flat")]).analyze(x)
    assert_close(front, _oracle(model, x, {"conv": Z, "hidden": Z, "out": FLAT}),
                 rtol=RTOL, atol=1e-12)


def test_first_layer_rule_and_fixed_first_layer(float64):
    model, x = _cnn(2)
    composite = composites.Composite([(L.Layer, rules.Z())], first_layer=rules.Flat())
    got = keras_lrp.create_analyzer("lrp", model, composite=composite).analyze(x)
    assert_close(got, _oracle(model, x, {"conv": FLAT, "hidden": Z, "out": Z}),
                 rtol=RTOL, atol=1e-12)
    with pytest.raises(ValueError, match="fixes input_layer_rule='Flat'"):
        composites.EpsilonPlusFlat().customized(first_layer="WSquare")


def _layernorm_model():
    i = keras.Input((5,), name="x")
    h = L.Dense(4, name="d")(i)
    h = L.LayerNormalization(name="ln")(h)
    model = keras.Model(i, L.Dense(2, name="out")(h))
    g = np.random.default_rng(3)
    model.set_weights([g.normal(size=w.shape) for w in model.get_weights()])
    return model, g.normal(size=(4, 5))


def test_structural_entry_overridden_for_one_analyzer(float64):
    """rule_map=[(LayerNormalization, IdentityRelevance)]: R at the input of 'ln' equals R at its
    output for that analyzer; the base map's LayerNormRelevance serves the next one."""
    model, x = _layernorm_model()
    override = keras_lrp.create_analyzer("lrp.z", model, rule_map=[
        (L.LayerNormalization, keras_lrp.layers.IdentityRelevance)]).analyze(x, layerwise=True)
    np.testing.assert_array_equal(override["d"], override["ln"])
    default = keras_lrp.create_analyzer("lrp.z", model).analyze(x, layerwise=True)
    np.testing.assert_array_equal(default["ln"], override["ln"])  # same relevance enters 'ln'
    assert np.abs(default["d"] - default["ln"]).max() > 1e-3  # but σ-held LN redistributes it


def test_canonizers_are_the_composites_list(float64):
    """Without FoldBatchNorm the BatchNormalization stays a layer of its own (and gets the
    rule); with it, it is folded. The explained function is the same either way."""
    i = keras.Input((4,), name="x")
    h = L.BatchNormalization(name="bn")(L.Dense(3, name="d")(i))
    model = keras.Model(i, L.Dense(2, name="out")(h))
    g = np.random.default_rng(4)
    model.set_weights([g.normal(size=w.shape) if k != 5 else g.uniform(0.5, 2, size=w.shape)
                       for k, w in enumerate(model.get_weights())])
    x = g.normal(size=(3, 4))
    kept = composites.Composite([(L.Layer, rules.Z())],
                                canonizers=[InlineNested(), SplitActivations(), StripSoftmax()])
    folded = composites.Composite([(L.Layer, rules.Z())])
    a = keras_lrp.create_analyzer("lrp", model, composite=kept)
    b = keras_lrp.create_analyzer("lrp", model, composite=folded)
    assert [type(n.layer).__name__ for n in a.graph.nodes].count("BatchNormalization") == 1
    assert not any(isinstance(n.layer, L.BatchNormalization) for n in b.graph.nodes)
    np.testing.assert_allclose(np.asarray(a.forward_model(x)), np.asarray(model(x)), rtol=1e-12)
    assert_close(np.asarray(b.forward_model(x)), np.asarray(model(x)), rtol=1e-12)
    assert isinstance(FoldBatchNorm(), type(b.composite.canonizers[-1]))


def test_recurrent_layers_keep_their_activation():
    assert has_fused_activation(L.Dense(3, activation="relu"))
    assert has_fused_activation(L.Conv1D(3, 2, activation="tanh"))
    assert not has_fused_activation(L.Dense(3))
    for layer in (L.LSTM(5), L.GRU(5), L.SimpleRNN(5), L.Bidirectional(L.LSTM(5))):
        assert not has_fused_activation(layer), layer


def test_wrong_relevance_shape_is_an_error_at_build_not_a_wrong_array():
    """The trap of issue 8: an LSTM registered with IdentityRelevance once returned (4, 5) for
    inputs (4, 7, 3). Now the shape contract names the layer, the rule and both shapes."""
    i = keras.Input((7, 3), name="x")
    model = keras.Model(i, L.Dense(2, name="out")(L.LSTM(5, name="lstm")(i)))
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.epsilon", model,
                                  rule_map=[(L.LSTM, keras_lrp.layers.IdentityRelevance)])
    msg = str(err.value)
    assert "'lstm_relevance'" in msg and "IdentityRelevance" in msg and "'lstm'" in msg, msg
    assert "(None, 5)" in msg and "(None, 7, 3)" in msg, msg


class _OutputShaped(rules.Rule):
    """A broken rule: returns the relevance at the output, not at the input."""

    def relevance(self, op, x, z, relevance):
        return relevance


def test_user_rule_of_wrong_shape_is_named():
    i = keras.Input((4,), name="x")
    model = keras.Model(i, L.Dense(3, name="out")(L.Dense(6, name="d")(i)))
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.z", model, rule_map=[("d", _OutputShaped())])
    msg = str(err.value)
    assert "_OutputShaped" in msg and "'d'" in msg and "(None, 6)" in msg and "(None, 4)" in msg


class _Cube(L.Layer):
    def call(self, x):
        return x ** 3


class _Square(L.Layer):
    def call(self, x):
        return x ** 2


def test_unknown_layer_error_lists_the_registry():
    i = keras.Input((4,), name="x")
    model = keras.Model(i, L.Dense(2)(_Cube(name="cube")(i)))
    with REGISTRY.scoped():
        keras_lrp.register_layer(_Square, keras_lrp.layers.IdentityRelevance)
        with pytest.raises(ValueError) as err:
            keras_lrp.create_analyzer("lrp.z", model)
    msg = str(err.value)
    assert "'cube'" in msg and "test_composites._Square" in msg, msg
    assert "MaxPooling2D" in msg and "LayerNormalization" in msg, msg
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.z", model)
    assert "_Square" not in str(err.value)  # the scoped registration is gone


def test_named_composites_validate_their_parameters():
    with pytest.raises(TypeError, match=r"EpsilonPlus got unknown parameter\(s\) gamma; its "
                                        r"parameters are epsilon"):
        composites.EpsilonPlus(gamma=0.3)
    with pytest.raises(ValueError, match="Gamma needs gamma >= 0"):
        composites.EpsilonGammaBox(gamma=-1)
    assert repr(composites.EpsilonGammaBox(gamma=0.5)) == (
        "EpsilonGammaBox(epsilon=1e-06, gamma=0.5, low=-1.0, high=1.0)")


def test_every_named_analyzer_is_a_composite_or_an_attributor():
    for name, entry in keras_lrp.ANALYZERS.items():
        assert (entry.composite is None) != (entry.analyzer is None), name
        if entry.composite is not None and name != "lrp":
            params = {k: v for k, v in entry.params.items()}
            if name == "lrp.alpha_beta":
                params["alpha"] = 2
            assert isinstance(entry.composite(**params), composites.Composite), name
