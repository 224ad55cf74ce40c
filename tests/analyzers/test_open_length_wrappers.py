"""PerLength (the analyzer of a model of open length with a traced layer) is an Analyzer: the
wrappers (every one of keras_lrp.analyzers.names.WRAPPERS) take it and explain each input at its
exact length, equal to the same wrapper over the analyzer of the model called on that length.
Token inputs are refused by every wrapper with the same error as at a fixed length (ids have no
noise and no path)."""
import keras
import numpy as np
import pytest
from helpers import assert_close  # Keras computes float64 in float32 off TensorFlow
from keras import layers as L

import keras_lrp
from keras_lrp.analyzers.lengths import PerLength
from keras_lrp.analyzers.names import WRAPPERS
from keras_lrp.analyzers.wrappers import IntegratedGradients, SmoothGrad, Wrapper


@keras.saving.register_keras_serializable(package="test_open_length_wrappers")
class Gain(keras.layers.Layer):
    """A layer of the user's (traced into its parts, so the model gets PerLength)."""

    def build(self, shape):
        self.gain = self.add_weight(shape=(shape[-1],), initializer="ones", name="gain")

    def call(self, x):
        return x * self.gain


def _conv():
    keras.utils.set_random_seed(4)
    x = keras.Input((None, 3), name="x")
    h = L.Conv1D(4, 3, padding="same", activation="relu")(Gain()(x))
    return keras.Model(x, L.Dense(2)(L.GlobalAveragePooling1D()(h)))


def _tokens():
    keras.utils.set_random_seed(5)
    ids = keras.Input((None,), dtype="int32", name="ids")
    h = Gain()(L.Embedding(20, 4)(ids))
    return keras.Model(ids, L.Dense(3)(L.GlobalAveragePooling1D()(h)))


def _fixed(model, t):
    spec = model.inputs[0]
    x = keras.Input((t,) + tuple(spec.shape[2:]), dtype=spec.dtype, name=spec.name)
    return keras.Model(x, model(x))


def _wrap(kind, analyzer, n=4, noise_scale=0.0):
    if kind == "SmoothGrad":
        # noise 0: the mean of n copies run through the reshapes (whether a backend draws at
        # build, which moves a seed's noise, does not enter)
        return SmoothGrad(analyzer, augment_by_n=n, noise_scale=noise_scale, seed=3)
    return IntegratedGradients(analyzer, steps=n)


def test_per_length_is_an_analyzer():
    a = keras_lrp.create_analyzer("lrp.epsilon", _conv())
    assert isinstance(a, PerLength) and isinstance(a, keras_lrp.Analyzer)
    assert a.built and a.builds == 0  # nothing built before a length is met


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_wrappers_over_per_length_equal_the_fixed_length_wrapper(float64, kind):
    """The wrapper over create_analyzer's PerLength, at lengths 6 and 10, equals the wrapper
    over the analyzer of the model at that length; SmoothGrad with noise 0 equals the inner
    analysis itself."""
    model = _conv()
    wrapped = _wrap(kind, keras_lrp.create_analyzer("lrp.epsilon", model))
    assert isinstance(wrapped, Wrapper) and wrapped.per_length is not None
    rng = np.random.default_rng(5)
    for t in (6, 10):
        x = rng.normal(size=(2, t, 3))
        fixed = keras_lrp.create_analyzer("lrp.epsilon", _fixed(model, t))
        want = _wrap(kind, fixed).analyze(x)
        got = wrapped.analyze(x)
        assert got.shape == x.shape
        assert_close(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())
        if kind == "SmoothGrad":
            inner = fixed.analyze(x)
            assert_close(got, inner, rtol=1e-9, atol=1e-12 * np.abs(inner).max())
    assert sorted(wrapped.per_length.analyzers) == [6, 10]  # one wrapper per exact length


def test_smoothgrad_with_noise_over_per_length(float64):
    """The default noise through the open-length reshapes (it raised TensorFlow's TypeError
    from AugmentReduce): with one seed, the same numbers as over the fixed-length analyzer."""
    model = _conv()
    x = np.random.default_rng(6).normal(size=(2, 7, 3))
    got = SmoothGrad(keras_lrp.create_analyzer("lrp.epsilon", model), augment_by_n=4,
                     seed=1).analyze(x)
    want = SmoothGrad(keras_lrp.create_analyzer("lrp.epsilon", _fixed(model, 7)),
                      augment_by_n=4, seed=1).analyze(x)
    assert got.shape == x.shape and np.isfinite(got).all()
    assert_close(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def test_a_wrapper_over_per_length_selects_by_index(float64):
    model = _conv()
    wrapped = _wrap("SmoothGrad", keras_lrp.create_analyzer(
        "lrp.epsilon", model, neuron_selection_mode="index"))
    x = np.random.default_rng(7).normal(size=(2, 5, 3))
    want = keras_lrp.create_analyzer("lrp.epsilon", _fixed(model, 5),
                                     neuron_selection_mode="index").analyze(x, [1, 0])
    got = wrapped.analyze(x, neuron_selection=[1, 0])
    assert_close(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_wrappers_refuse_token_ids_at_any_length(kind):
    """Token ids have no noise and no path: the wrapper over PerLength is made (it is an
    Analyzer) and refuses them at its first analysis with the fixed-length wrapper's error."""
    model = _tokens()
    x = np.random.default_rng(8).integers(0, 20, (2, 6)).astype("int32")
    wrapped = _wrap(kind, keras_lrp.create_analyzer("lrp.epsilon", model))
    with pytest.raises(ValueError, match="holds int32 values \\(token ids\\)"):
        wrapped.analyze(x)
    with pytest.raises(ValueError, match="holds int32 values \\(token ids\\)"):
        _wrap(kind, keras_lrp.create_analyzer("lrp.epsilon", _fixed(model, 6))).analyze(x)
    # the LRP analysis itself explains the tokens at any length
    got = keras_lrp.create_analyzer("lrp.epsilon", model, buckets="exact").analyze(x)
    want = keras_lrp.create_analyzer("lrp.epsilon", _fixed(model, 6)).analyze(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_wrapper_over_per_length_saves_and_loads(tmp_path, float64):
    model = _conv()
    wrapped = _wrap("IntegratedGradients", keras_lrp.create_analyzer("lrp.epsilon", model))
    x = np.random.default_rng(9).normal(size=(1, 8, 3))
    want = wrapped.analyze(x)
    wrapped.save(str(tmp_path / "ig.keras-lrp"))
    loaded = keras_lrp.load_analyzer(str(tmp_path / "ig.keras-lrp"))
    assert isinstance(loaded, IntegratedGradients) and loaded.per_length is not None
    assert_close(loaded.analyze(x), want, rtol=1e-9, atol=1e-12)
