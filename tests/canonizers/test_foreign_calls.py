"""Layers whose ``call`` uses the framework's own functions (:mod:`keras_lrp.canonizers.
foreign_calls`): an align-corners bilinear resize written with the backend's resize
(``tf.compat.v1.image.resize``, ``jax.image.scale_and_translate``,
``torch.nn.functional.interpolate``, as keras-hub's Depth Anything writes it) and
``tf.gather(…, batch_dims=3)`` (keras-hub's DeBERTaV3 attention on TensorFlow). Before, such a
layer could not be traced and every LRP analysis was refused.

Checked against NumPy float64 references written from the formulas (the align-corners
interpolation matrices, the gather's routing), in float32 (the resizes compute in float32):
rtol 1e-4 is a few hundred float32 roundings of sums of at most a hundred terms."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_lrp
from keras_lrp.backend import forms
from keras_lrp.canonizers import foreign_calls, forward_layers

L = keras.layers
BACKEND = keras.backend.backend()
H, W, C, OUT = 3, 4, 2, (5, 7)


def _backend_resize(x, size):
    """Bilinear with align_corners, in the backend's own words (keras-hub's interpolate)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.compat.v1.image.resize(x, size=size, method="bilinear", align_corners=True)
    if BACKEND == "jax":
        import jax

        scale = ops.convert_to_tensor([(size[0] - 1.0) / (x.shape[1] - 1.0),
                                       (size[1] - 1.0) / (x.shape[2] - 1.0)])
        return jax.image.scale_and_translate(x, (x.shape[0], *size, x.shape[-1]), (1, 2),
                                             scale, -(scale / 2.0 - 0.5), method="bilinear",
                                             antialias=False)
    import torch.nn.functional as F

    y = F.interpolate(ops.transpose(x, (0, 3, 1, 2)), size=size, mode="bilinear",
                      align_corners=True)
    return ops.transpose(y, (0, 2, 3, 1))


class AlignCorners(L.Layer):
    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)

    def call(self, x):
        return _backend_resize(x, self.size)


def _align_corners(n_in: int, n_out: int) -> np.ndarray:
    """The n_out × n_in matrix of 1-D linear interpolation with aligned corners: output i
    samples s = i (n_in − 1)/(n_out − 1) with weights 1 − (s − ⌊s⌋) and s − ⌊s⌋."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        s = i * (n_in - 1) / (n_out - 1)
        lo = min(int(np.floor(s)), n_in - 2)
        m[i, lo], m[i, lo + 1] = 1 - (s - lo), s - lo
    return m


def _resize_model():
    x = keras.Input((H, W, C))
    y = AlignCorners(OUT, name="interp")(x)
    return keras.Model(x, L.Dense(3, use_bias=False, name="head")(L.Flatten()(y)))


def _lrp_z(model, shape, seed):
    """Random weights and inputs of ``shape``; LRP-0 (``lrp.z``, by index) of ``model``, whose
    forward pass is checked to be the model's; (the analyzer, the inputs)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.weights])
    x = rng.normal(size=shape).astype("float32")
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    np.testing.assert_allclose(np.asarray(a.forward_model(x)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    return a, x


def test_an_align_corners_resize_in_the_backends_words_takes_the_z_rule():
    model = _resize_model()
    a, x = _lrp_z(model, (2, H, W, C), seed=0)
    # NumPy float64: y = A_h x A_wᵀ per channel; LRP-0 at the head R_y = y · V[:, 1]; through
    # the resize R_x[i] = Σ_j x_i A_ji / y_j · R_y[j]
    ah, aw = _align_corners(H, OUT[0]), _align_corners(W, OUT[1])
    x64 = x.astype("float64")
    y = np.einsum("ph,bhwc,qw->bpqc", ah, x64, aw)
    v = np.asarray(model.get_layer("head").kernel, "float64")[:, 1].reshape(OUT + (C,))
    ratio = v[None]  # R_y / y
    expected = x64 * np.einsum("ph,bpqc,qw->bhwc", ah, ratio, aw)
    assert np.abs(y).min() > 1e-3  # no near-zero denominators in the reference
    np.testing.assert_allclose(a.analyze(x, neuron_selection=1), expected, rtol=1e-4,
                               atol=1e-5)
    assert any(isinstance(layer, forward_layers.LinearResample)
               for layer in a.forward_model.layers)


def test_the_backends_resize_is_put_back_after_the_trace():
    model = _resize_model()
    keras_lrp.create_analyzer("lrp.epsilon", model)
    x = np.ones((1, H, W, C), "float32")
    assert np.allclose(np.asarray(ops.convert_to_numpy(_backend_resize(x, OUT))), 1.0)
    from keras_lrp import backend

    for owner, attribute, _ in backend.foreign_functions():  # the framework's own again
        assert not hasattr(getattr(owner, attribute), "_lrp_original")


def test_a_read_off_that_is_not_a_separable_linear_map_has_no_form():
    x = keras.Input((H, W, C))
    squared = forms.Resample(x, lambda a: np.square(a), (1, 2))
    with pytest.raises(forms.NoForm):
        foreign_calls.resample(squared)
    mixed = forms.Resample(x, lambda a: a + a.sum(axis=(1, 2), keepdims=True) * a[:, :1, :1],
                           (1, 2))
    with pytest.raises(forms.NoForm):
        foreign_calls.resample(mixed)


class GatherAlongLast(L.Layer):
    """DeBERTaV3's c2p scores: ``tf.gather(scores, index broadcast to the batch,
    batch_dims=3)`` with a constant index computed from the positions."""

    def call(self, scores):
        import tensorflow as tf

        t = scores.shape[-1]
        index = np.clip(np.arange(t)[:, None] - np.arange(t)[None, :] + 1, 0, t - 1)
        index = ops.broadcast_to(ops.convert_to_tensor(index.astype("int32")),
                                 (ops.shape(scores)[0], scores.shape[1], t, t))
        return tf.gather(scores, indices=index, batch_dims=3)


class GatherRows(L.Layer):
    """``tf.gather(x, index, batch_dims=1)`` on a rank-3 tensor with a rank-2 index: no
    keras.ops form keras-lrp knows (not ``take`` nor ``take_along_axis``)."""

    def call(self, x):
        import tensorflow as tf

        index = ops.zeros((ops.shape(x)[0], 2), "int32")
        return tf.gather(x, index, batch_dims=1)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.gather is TensorFlow's")
def test_tf_gather_with_batch_dims_is_take_along_axis_and_routes_relevance():
    t, heads = 4, 2
    x = keras.Input((heads, t, t))
    y = GatherAlongLast(name="c2p")(x)
    model = keras.Model(x, L.Dense(3, use_bias=False, name="head")(L.Flatten()(y)))
    a, xs = _lrp_z(model, (3, heads, t, t), seed=1)
    # routing: y[b,h,i,j] = x[b,h,i,k(i,j)]; R_y = y · V[:, 1]; each x entry gets the sum of
    # its copies' relevance
    index = np.clip(np.arange(t)[:, None] - np.arange(t)[None, :] + 1, 0, t - 1)
    x64 = xs.astype("float64")
    y = np.take_along_axis(x64, np.broadcast_to(index, x64.shape), axis=3)
    r_y = y * np.asarray(model.get_layer("head").kernel, "float64")[:, 1].reshape(y.shape[1:])
    expected = np.zeros_like(x64)
    for i in range(t):
        for j in range(t):
            expected[:, :, i, index[i, j]] += r_y[:, :, i, j]
    np.testing.assert_allclose(a.analyze(xs, neuron_selection=1), expected, rtol=1e-4,
                               atol=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.gather is TensorFlow's")
def test_a_gather_without_a_keras_form_is_refused_by_name():
    x = keras.Input((3, 4))
    y = GatherRows(name="rows")(x)
    model = keras.Model(x, L.Dense(2, name="head")(L.Flatten()(y)))
    with pytest.raises(ValueError, match="'rows' .*backend's own functions"):
        keras_lrp.create_analyzer("lrp.epsilon", model)
