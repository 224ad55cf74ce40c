"""Models of open length made of Keras' own layers (an LSTM text classifier, a GRU tagger, a 1D
convolution over sequences of any length): one analyzer, built once on the symbolic length,
explains every length. On TensorFlow that is one trace for all lengths; JAX compiles one
program per new length (XLA needs static shapes), PyTorch compiles nothing. At each length the
relevance equals, in float64, that of the analyzer of the model called on that fixed length.
(Models with a traced layer get PerLength's buckets: tests/llm/test_buckets.py.)"""
import keras
import numpy as np
import pytest
from keras import layers as L

import keras_lrp
from keras_lrp.analyzers.lengths import PerLength

BACKEND = keras.backend.backend()


def _programs(function) -> int:
    if BACKEND == "tensorflow":
        return function.experimental_get_tracing_count()
    if BACKEND == "jax":
        return function.jitted._cache_size()
    return 1


def _lstm():
    ids = keras.Input((None,), dtype="int32", name="ids")
    return keras.Model(ids, L.Dense(3)(L.LSTM(6)(L.Embedding(20, 8)(ids))))


def _gru_tagger():
    x = keras.Input((None, 3), name="x")
    return keras.Model(x, L.Dense(2)(L.GRU(5, return_sequences=True)(x)))


def _conv():
    x = keras.Input((None, 3), name="x")
    h = L.Conv1D(4, 3, padding="same", activation="relu")(x)
    return keras.Model(x, L.Dense(2)(L.GlobalAveragePooling1D()(h)))


def _fixed(model, t):
    spec = model.inputs[0]
    x = keras.Input((t,) + tuple(spec.shape[2:]), dtype=spec.dtype, name=spec.name)
    return keras.Model(x, model(x))


@pytest.mark.parametrize("make", [_lstm, _gru_tagger, _conv], ids=["lstm", "gru", "conv1d"])
def test_one_analysis_for_every_length(float64, make):
    keras.utils.set_random_seed(0)
    model = make()
    a = keras_lrp.create_analyzer("lrp.epsilon", model)
    assert not isinstance(a, PerLength)
    rng = np.random.default_rng(1)
    for t in (5, 9, 13):
        shape = (2, t) + tuple(model.inputs[0].shape[2:])
        x = rng.integers(0, 20, shape).astype("int32") if make is _lstm else \
            rng.normal(size=shape)
        want = keras_lrp.create_analyzer("lrp.epsilon", _fixed(model, t)).analyze(x)
        got = a.analyze(x)
        assert got.shape == x.shape
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
    assert _programs(a._functions[False]) == {"jax": 3}.get(BACKEND, 1)


def test_a_tagger_explains_a_chosen_position_at_any_length(float64):
    """A GRU tagger's output has an open length too: an index into it is read at the input's
    length (position · 2 + class), and an index beyond the output is refused."""
    keras.utils.set_random_seed(1)
    model = _gru_tagger()
    a = keras_lrp.create_analyzer("lrp.epsilon", model, neuron_selection_mode="index")
    rng = np.random.default_rng(2)
    for t in (4, 7):
        x = rng.normal(size=(2, t, 3))
        sel = [(t - 1) * 2 + 1, 0]
        want = keras_lrp.create_analyzer("lrp.epsilon", _fixed(model, t),
                                         neuron_selection_mode="index").analyze(x, sel)
        np.testing.assert_allclose(a.analyze(x, sel), want, rtol=1e-9,
                                   atol=1e-12 * np.abs(want).max())
    with pytest.raises(ValueError, match=r"indices in \[0, 14\)"):
        a.analyze(rng.normal(size=(1, 7, 3)), neuron_selection=14)


@pytest.mark.parametrize("wrapper", ["smoothgrad", "integrated_gradients"])
def test_wrappers_at_any_length(float64, wrapper):
    """SmoothGrad and integrated gradients over an LRP analyzer of a Conv1D model on
    Input((None, 3)) (their reshapes read the open length at run time; they raised TensorFlow's
    TypeError), equal to the same wrapper over the model at that fixed length."""
    from keras_lrp.analyzers.wrappers import IntegratedGradients, SmoothGrad

    keras.utils.set_random_seed(4)
    model = _conv()

    def wrap(m):
        inner = keras_lrp.create_analyzer("lrp.epsilon", m)
        # noise 0: the mean of four copies run through the reshapes (whether a backend draws
        # at build, which moves a seed's noise, does not enter)
        return SmoothGrad(inner, augment_by_n=4, noise_scale=0.0) \
            if wrapper == "smoothgrad" else IntegratedGradients(inner, steps=4)

    a = wrap(model)
    rng = np.random.default_rng(5)
    for t in (6, 10):
        x = rng.normal(size=(2, t, 3))
        want = wrap(_fixed(model, t)).analyze(x)
        np.testing.assert_allclose(a.analyze(x), want, rtol=1e-9,
                                   atol=1e-12 * np.abs(want).max())
