"""Model shapes users have: several inputs (relevance per input, in order), several outputs
(chosen by index or name), checked against NumPy (float64) and tf.GradientTape."""


import keras
import numpy as np
import pytest
import reference as ref  # noqa: E402
from helpers import assert_close, autodiff
from keras import ops

import keras_lrp


def _two_in_two_out():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    ha = keras.layers.Dense(4, activation="relu", name="da")(a)
    hb = keras.layers.Dense(4, activation="relu", name="db")(b)
    h = keras.layers.Concatenate(name="cat")([ha, hb])
    o1 = keras.layers.Dense(3, name="head1")(h)
    o2 = keras.layers.Dense(2, activation="softmax", name="head2")(h)
    model = keras.Model([a, b], [o1, o2])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model


def _numpy_z(model, xa, xb, head):
    """LRP-z for the max logit of `head`, per sample, in NumPy."""
    get = lambda n: [np.asarray(w, "float64") for w in model.get_layer(n).get_weights()]  # noqa
    (wa, ba), (wb, bb), (wo, bo) = get("da"), get("db"), get(head)
    h = np.concatenate([np.maximum(xa @ wa + ba, 0), np.maximum(xb @ wb + bb, 0)], axis=1)
    logits = h @ wo + bo
    r_h = ref.z_rule(h, wo, bo, np.eye(logits.shape[1])[logits.argmax(1)] * logits)
    return ref.z_rule(xa, wa, ba, r_h[:, :4]), ref.z_rule(xb, wb, bb, r_h[:, 4:])


@pytest.mark.parametrize("output, head", [(0, "head1"), ("head1", "head1"), (1, "head2"),
                                          ("head2", "head2"), (-1, "head2")])
def test_multi_input_multi_output_relevance(float64, output, head):
    model = _two_in_two_out()
    rng = np.random.default_rng(1)
    xa, xb = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    ra, rb = keras_lrp.create_analyzer("lrp.z", model, output=output).analyze([xa, xb])
    ea, eb = _numpy_z(model, xa, xb, head)
    assert_close(ra, ea, rtol=1e-9, atol=1e-12)
    assert_close(rb, eb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["gradient", "input_t_gradient"])
def test_multi_input_gradient_matches_tape(float64, name):
    model = _two_in_two_out()
    rng = np.random.default_rng(2)
    xa, xb = rng.normal(size=(3, 3)), rng.normal(size=(3, 2))
    ga, gb = keras_lrp.create_analyzer(name, model, output="head1").analyze([xa, xb])
    ea, eb = autodiff(lambda ta, tb: ops.sum(ops.max(model([ta, tb])[0], axis=1)), xa, xb)
    if name == "input_t_gradient":
        ea, eb = ea * xa, eb * xb
    np.testing.assert_allclose(ga, ea, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gb, eb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("output, match", [
    (None, r"has 2 outputs \(head1, head2\); choose one with output="),
    ("nope", r"no output named 'nope'; its outputs are head1, head2"),
    (2, r"output must be an index in \[0, 2\) or one of head1, head2; got 2"),
    (True, r"got True"),
])
def test_output_selection_errors(output, match):
    model = _two_in_two_out()
    with pytest.raises(ValueError, match=match):
        keras_lrp.create_analyzer("lrp.z", model, output=output)


def test_wrong_number_of_inputs_is_reported():
    model = _two_in_two_out()
    analyzer = keras_lrp.create_analyzer("lrp.z", model, output=0)
    with pytest.raises(ValueError, match=r"has 2 inputs \(a, b\); got 1 arrays"):
        analyzer.analyze(np.zeros((1, 3)))
