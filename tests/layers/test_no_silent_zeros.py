"""No silent zeros: where relevance (or a gradient) has no path back to a floating-point input,
the analyzer raises an error naming the layer (or the input), on every backend, when it is
built, instead of returning zeros there. Integer and boolean inputs (ids, masks) have no
derivative by nature and get zero relevance, as before."""
import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import keras_lrp


class TakeFirst(L.Layer):
    """Returns its first input and ignores the second (a float tensor)."""

    def call(self, inputs):
        return inputs[0] * 1.0

    def compute_output_shape(self, shapes):
        return shapes[0]


class MaskedCopy(L.Layer):
    """x where the boolean mask holds, else 0: the mask has no derivative (and gets none)."""

    def call(self, inputs):
        x, mask = inputs
        return ops.where(mask, x, ops.zeros_like(x))

    def compute_output_shape(self, shapes):
        return shapes[0]


def _two_branch_model():
    a = keras.Input((3,), name="a")
    h1, h2 = L.Dense(4, name="d1")(a), L.Dense(4, name="d2")(a)
    return keras.Model(a, L.Dense(2, name="out")(TakeFirst(name="take_first")([h1, h2])))


@pytest.mark.parametrize("relevance", [keras_lrp.layers.RouteRelevance,
                                       keras_lrp.layers.ProportionalRelevance])
def test_unconnected_float_input_is_an_error_naming_the_layer(relevance):
    model = _two_branch_model()
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.epsilon", model, rule_map=[(TakeFirst, relevance)])
    msg = str(err.value)
    assert "Layer 'take_first'" in msg and relevance.__name__ in msg, msg
    assert "does not depend on its input 1" in msg and "(None, 4)" in msg, msg


def test_boolean_mask_input_gets_zero_relevance_not_an_error():
    x = keras.Input((4,), name="x")
    m = keras.Input((4,), dtype="bool", name="m")
    model = keras.Model([x, m], L.Dense(2, name="out")(MaskedCopy(name="masked")([x, m])))
    analyzer = keras_lrp.create_analyzer("lrp.z", model, bias=False,
                                         rule_map=[(MaskedCopy, keras_lrp.layers.RouteRelevance)])
    xs = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    ms = np.array([[True, False, True, True]] * 3)
    rx, rm = analyzer.analyze([xs, ms])
    assert np.all(rm == 0) and np.all(rx[:, 1] == 0)
    logits = keras.ops.convert_to_numpy(model([xs, ms]))
    np.testing.assert_allclose(rx.sum(axis=1), logits.max(axis=1), rtol=1e-5)  # Z, no bias


def test_gradient_of_an_unused_input_is_an_error_naming_it():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    model = keras.Model([a, b], L.Dense(2, name="out")(a))
    with pytest.raises(ValueError, match=r"does not depend on its input 'b' \(shape \(None, 2\)\)"):
        keras_lrp.create_analyzer("gradient", model)
