"""``jit_compile=True`` (XLA) works for every analyzer, on a CNN with BatchNorm and on a
Bidirectional LSTM, and gives the numbers of the default graph (float32: rtol 1e-4 of the
largest value). The noise of ``random`` and ``smoothgrad`` comes from XLA's own random-number
generator under jit, so for those only the shape and finiteness are compared."""

import keras
import numpy as np
import pytest

import keras_lrp

PARAMS = {"lrp": {"rule": "Epsilon"}, "lrp.alpha_beta": {"alpha": 2, "beta": 1},
          "smoothgrad": {"seed": 0, "augment_by_n": 4}, "random": {"seed": 0},
          "integrated_gradients": {"steps": 4}}
NOISY = {"random", "smoothgrad"}


@pytest.fixture(scope="module")
def nets():
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(i)
    h = keras.layers.BatchNormalization()(keras.layers.MaxPooling2D()(h))
    cnn = keras.Model(i, keras.layers.Dense(3)(keras.layers.Flatten()(h)))
    cnn.layers[3].set_weights([np.full(4, v) for v in (1.5, 0.1, 0.2, 2.0)])
    j = keras.Input((6, 3))
    lstm = keras.Model(j, keras.layers.Dense(3)(keras.layers.Bidirectional(
        keras.layers.LSTM(4))(j)))
    rng = np.random.default_rng(0)
    return {"cnn": (cnn, rng.uniform(0, 1, (4, 8, 8, 1)).astype("float32")),
            "lstm": (lstm, rng.normal(size=(4, 6, 3)).astype("float32"))}


#: The default (fast) selection: one analyzer per rule family on the CNN, and the LSTM with one
#: LRP rule and the gradient; the full product (every analyzer on both) runs with ``-m slow``.
FAST = {"cnn": {"lrp.z", "lrp.epsilon_IB", "lrp.alpha_2_beta_1", "lrp.z_plus", "lrp.gamma",
                "lrp.w_square", "lrp.flat", "lrp.epsilon_gamma_box", "lrp.sequential_preset_a",
                "deep_taylor", "gradient", "guided_backprop", "integrated_gradients",
                "smoothgrad", "input", "random"},
        "lstm": {"lrp.epsilon", "gradient"}}


def _cases():
    for name in keras_lrp.ANALYZERS:
        for net in ("cnn", "lstm"):
            marks = () if name in FAST[net] else (pytest.mark.slow,)
            yield pytest.param(net, name, id=f"{name}-{net}", marks=marks)


@pytest.mark.parametrize("net, name", list(_cases()))
def test_jit_compile_matches(nets, net, name):
    if name.startswith("deep_taylor") and net == "lstm":
        pytest.skip("deep_taylor is iNNvestigate's, for ReLU networks")
    model, x = nets[net]
    kwargs = PARAMS.get(name, {})
    plain = keras_lrp.create_analyzer(name, model, **kwargs).analyze(x)
    jit = keras_lrp.create_analyzer(name, model, jit_compile=True, **kwargs).analyze(x)
    assert jit.shape == plain.shape and np.isfinite(jit).all()
    if name not in NOISY:
        np.testing.assert_allclose(jit, plain, rtol=1e-4, atol=1e-4 * np.abs(plain).max())
