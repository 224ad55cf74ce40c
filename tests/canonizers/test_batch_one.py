"""Layers of yours whose ``call`` reads the batch size, and activation functions of yours.

A class token tiled to the batch (``ops.tile(token, (ops.shape(x)[0], 1, 1))``, as DeiT, CLIP
and DINOv2 write it) and a reshape to ``(batch_size, -1, d)`` cannot be traced symbolically;
they are traced on a batch of 1 and made batch-free (:mod:`keras_lrp.canonizers.batch_one`).
Before, every such layer was refused. Checked against the Z rule written out in NumPy float64
on a batch of 3, and a layer whose result really depends on the batch size is still refused.

An activation given as a function of yours (CLIP's ``quick_gelu``) is element-wise when a probe
shows it (:func:`keras_lrp.core.types.is_elementwise_function`): the identity rule, as for
GELU; before, it was refused. A function that mixes entries is still refused.
"""

import keras
import numpy as np
import pytest
from helpers import assert_close
from keras import ops

import keras_lrp
from keras_lrp.core.types import is_elementwise_function

L = keras.layers
T, D, F = 4, 5, 3


class TiledClassToken(L.Layer):
    """keras.io style: a learned token tiled to the batch, then a reshape that reads it."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), name="token")

    def call(self, x):
        batch = ops.shape(x)[0]
        token = ops.tile(self.token, (batch, 1, 1))
        return ops.reshape(ops.concatenate([token, x], axis=1), (batch, -1, x.shape[-1]))


class BatchScaled(L.Layer):
    """Scales by the batch size: its trace on a batch of 1 is another function."""

    def call(self, x):
        return x * ops.cast(ops.shape(x)[0], x.dtype)


def _assert_lrp_z(model, x, expected):
    """LRP-0 (``lrp.z``) of output 1 equals ``expected`` (float64: 1e-9), and the analysis'
    forward pass is the model's (1e-12)."""
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    assert_close(np.asarray(a.forward_model(x)), model.predict(x, verbose=0), rtol=1e-12)
    assert_close(a.analyze(x, neuron_selection=1), expected, rtol=1e-9, atol=1e-12)


def _randomised(model, seed):
    """Normal weights, then three (T, F) inputs, from ``seed``: the inputs."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape) for w in model.weights])
    return rng.normal(size=(3, T, F))


def _token_model(layer):
    x = keras.Input((T, F))
    h = L.Dense(D, use_bias=False, name="embed")(x)
    h = layer(h)
    p = L.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(x, L.Dense(2, use_bias=False, name="head")(p))


def test_a_class_token_tiled_to_the_batch_is_traced_and_takes_the_z_rule(float64):
    model = _token_model(TiledClassToken(name="cls"))
    x = _randomised(model, seed=0)
    W, token, V = (np.asarray(w) for w in (model.get_layer("embed").kernel,
                                          model.get_layer("cls").token,
                                          model.get_layer("head").kernel))
    assert np.abs(token).max() > 0
    # LRP-0 without biases: the head gives p_j V_jk; the mean gives each row seq_ij V_jk/(T+1)
    # (the token's row is absorbed); the embedding gives x_ia W_aj V_jk / (T+1) summed over j
    expected = x * (W @ V[:, 1])[None, None, :] / (T + 1)
    _assert_lrp_z(model, x, expected)


def test_a_layer_whose_result_depends_on_the_batch_is_refused():
    model = _token_model(BatchScaled(name="scaled"))
    with pytest.raises(ValueError, match="'scaled' .*reads the batch size.*rule_map"):
        keras_lrp.create_analyzer("lrp.epsilon", model)


def quick_gelu(x):
    return x * ops.sigmoid(1.702 * x)


def test_an_element_wise_function_of_yours_takes_the_identity_rule(float64):
    keras.utils.set_random_seed(2)
    x_in = keras.Input((F,))
    h = L.Dense(D, use_bias=False, activation=quick_gelu, name="hidden")(x_in)
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(h))
    x = np.random.default_rng(1).normal(size=(3, F))
    W, V = (np.asarray(w) for w in model.get_weights())
    z = x @ W
    a = z / (1.0 + np.exp(-1.702 * z))  # quick_gelu in NumPy
    # LRP-0: R_a = a_j V_j1; identity through the activation; R_x = Σ_j x_i W_ij / z_j R_j
    r_z = a * V[:, 1]
    expected = x * ((r_z / z) @ W.T)
    got = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index").analyze(
        x, neuron_selection=1)
    assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_a_function_that_mixes_entries_is_refused():
    def centred(x):
        return x - ops.mean(x, axis=-1, keepdims=True)

    x_in = keras.Input((F,))
    model = keras.Model(x_in, L.Dense(2)(L.Activation(centred, name="centred")(x_in)))
    with pytest.raises(ValueError, match="centred"):
        keras_lrp.create_analyzer("lrp.epsilon", model)


@pytest.mark.parametrize("fn,expected", [
    (quick_gelu, True), (lambda x: ops.tanh(x) * 2.0, True),
    (lambda x: ops.softmax(x, axis=-1), False), (lambda x: ops.cumsum(x, axis=-1), False),
    (lambda x: x - ops.mean(x, axis=0, keepdims=True), False),
    (lambda x: x[..., :1] * x, False)])
def test_the_element_wise_probe(fn, expected):
    assert is_elementwise_function(fn) is expected


class ScoresToo(L.Layer):
    """keras-hub style: returns ``(y, None)`` when no attention scores are asked for."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], D), name="kernel")

    def call(self, x):
        return ops.matmul(x, self.kernel), None


class Encoder(L.Layer):
    """Calls a block that returns ``(y, None)``, and returns empty hidden states it keeps none
    of (DeiT's encoder)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = ScoresToo(name="block")

    def call(self, x):
        y, _ = self.block(x)
        return y, ops.zeros((0, T, D))


class PositionTable(L.Layer):
    """A table computed from the input's shape only (DINOv3's rotary tables)."""

    def call(self, x):
        steps = ops.cast(ops.arange(1, ops.shape(x)[1] + 1), x.dtype)
        return ops.reshape(steps, (1, -1, 1)) * ops.ones((1, 1, x.shape[-1]), x.dtype)


def test_a_block_returning_none_and_a_table_from_the_shape_are_traced(float64):
    x_in = keras.Input((T, F))
    h, _ = Encoder(name="encoder")(x_in)
    h = ops.multiply(h, PositionTable(name="table")(h))
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(
        L.GlobalAveragePooling1D()(h)))
    x = _randomised(model, seed=4)
    W, V = (np.asarray(w) for w in model.get_weights())
    table = np.arange(1, T + 1, dtype="float64")[:, None]
    # LRP-0: the table is a constant factor (all relevance to the signal), so each step's share
    # is x_ta Σ_j W_aj c_t V_j1 / T (half of it, were the table taken for a second signal)
    expected = x * (table * (W @ V[:, 1]))[None] / T
    _assert_lrp_z(model, x, expected)


class RepeatedTable(L.Layer):
    """A learned table repeated to the batch, whatever the input's values (DeBERTa's relative
    embeddings)."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=tuple(input_shape[1:]), name="table")

    def call(self, x):
        return ops.repeat(ops.expand_dims(self.table, 0), ops.shape(x)[0], axis=0)


def test_a_table_repeated_to_the_batch_absorbs_like_a_bias(float64):
    x_in = keras.Input((T, F))
    h = L.Dense(D, use_bias=False, name="embed")(x_in)
    z = h + RepeatedTable(name="table")(h)
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(
        L.GlobalAveragePooling1D()(z)))
    x = _randomised(model, seed=5)
    W, V = (np.asarray(w) for w in (model.get_layer("embed").kernel,
                                    model.get_layer("head").kernel))
    # LRP-0: the mean gives z_tj V_j1 / T, the sum h + table gives h its share h_tj V_j1 / T,
    # the embedding x_ta W_aj V_j1 / T summed over j
    expected = x * (W @ V[:, 1])[None, None, :] / T
    _assert_lrp_z(model, x, expected)


class FourierMixing(L.Layer):
    """F-Net's token mixing: the real part of the 2-D FFT over (tokens, features)."""

    def call(self, x):
        real, _ = ops.fft2((ops.cast(x, "float32"), ops.zeros_like(ops.cast(x, "float32"))))
        return ops.cast(real, x.dtype)


def test_fourier_mixing_takes_the_z_rule():
    # float32: Keras' FFT runs in float32, as F-Net casts to it
    x_in = keras.Input((T, F))
    h = L.Dense(D, use_bias=False, name="embed")(x_in)
    mixed = FourierMixing(name="fourier")(h)
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(
        L.GlobalAveragePooling1D()(mixed)))
    x = _randomised(model, seed=6).astype("float32")
    W, V = (np.asarray(w, "float64") for w in (model.get_layer("embed").kernel,
                                               model.get_layer("head").kernel))
    # a linear network without bias: LRP-0 is gradient x input; Re(FFT2) is its own adjoint on
    # real arrays (the DFT's cosine and sine parts are symmetric), so the gradient at the
    # embedding is Re(FFT2(G)) with G_tj = V_j1 / T, and at the input that times Wᵀ
    g = np.fft.fft2(np.broadcast_to(V[:, 1] / T, (T, D))).real @ W.T
    expected = x.astype("float64") * g[None]
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    got = a.analyze(x, neuron_selection=1)
    # float32 FFT sums of T·D terms: 1e-4 relative to the largest relevance
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(got.sum(axis=(1, 2)), model.predict(x, verbose=0)[:, 1],
                               rtol=1e-4)


class MaskedScores(L.Layer):
    """T5's attention bias: a (B, 1, 1, T) padding mask added to a (1, H, T, T) table."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=(1, 2, T, T), name="table")

    def call(self, x):
        mask = ops.reshape(ops.sum(x, axis=-1), (-1, 1, 1, T))
        return ops.sum(mask + self.table, axis=(1, 2))


def test_an_input_broadcast_by_an_element_wise_op_gets_its_copies_relevance(float64):
    x_in = keras.Input((T, F))
    s = MaskedScores(name="scores")(L.Dense(D, use_bias=False, name="embed")(x_in))
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(s))
    x = _randomised(model, seed=7)
    W, table, V = (np.asarray(w) for w in (model.get_layer("embed").kernel,
                                          model.get_layer("scores").table,
                                          model.get_layer("head").kernel))
    # NumPy, the rules written out: the head's Z rule; the sums' (proportional); mask + table
    # is an element-wise affine map of the mask (the identity rule: the table takes nothing),
    # so the mask gets the sum over its copies (2 heads x T rows); the feature sum and the
    # embedding take the Z rule
    m = (x @ W).sum(-1)                                   # (B, T)
    z = m[:, None, None, :] + table                       # (B, 2, T, T)
    s_ = z.sum(axis=(1, 2))                               # (B, T)
    r_s = s_ * V[:, 1]                                    # head: s_t V_t1
    r_m = (z / s_[:, None, None, :] * r_s[:, None, None, :]).sum(axis=(1, 2))
    expected = x * W.sum(axis=1)[None, None, :] * (r_m / m)[:, :, None]
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    assert_close(a.analyze(x, neuron_selection=1), expected, rtol=1e-9, atol=1e-12)


class TwoOutputs(L.Layer):
    """Returns two tensors, though its compute_output_shape (inherited, as ESM's rotary layer
    inherits one) says one: Keras never asks it when the layer runs inside another's call."""

    def call(self, q, k):
        return q * 2.0, k * 3.0

    def compute_output_shape(self, q_shape, k_shape=None):
        return q_shape


class RankScaled(L.Layer):
    """Reads its input's rank with ``ops.ndim`` (RoFormer's rotary layer does)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pair = TwoOutputs(name="pair")

    def call(self, x):
        a, b = self.pair(x, x)
        return (a + b) * float(ops.ndim(x))


def test_a_sublayer_spec_from_its_call_and_a_static_rank(float64):
    x_in = keras.Input((T, F))
    h = RankScaled(name="scaled")(L.Dense(D, use_bias=False, name="embed")(x_in))
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(
        L.GlobalAveragePooling1D()(h)))
    x = _randomised(model, seed=8)
    W, V = (np.asarray(w) for w in model.get_weights())
    # a linear network without bias: LRP-0 is gradient x input, (2 + 3) * rank 3 = 15 times
    # the embedding's
    expected = x * 15.0 * (W @ V[:, 1])[None, None, :] / T
    _assert_lrp_z(model, x, expected)


class BackendCall(L.Layer):
    """Calls TensorFlow's own function on its input (keras-hub's DeBERTa calls tf.gather)."""

    def call(self, x):
        import tensorflow as tf

        return tf.abs(x)


@pytest.mark.skipif(keras.config.backend() != "tensorflow",
                    reason="a TensorFlow function in the layer's call")
def test_a_call_to_the_backends_own_function_is_refused_by_name():
    x_in = keras.Input((T, F))
    model = keras.Model(x_in, L.Dense(2)(L.Flatten()(BackendCall(name="raw")(x_in))))
    with pytest.raises(ValueError, match="'raw' .*the backend's own functions, not keras.ops"):
        keras_lrp.create_analyzer("lrp.epsilon", model)


# ----------------------------------------- slices and broadcasts to sizes holding the batch


def _linear_lrp_z(layer, x, numpy_layer, rows=T):
    """LRP-0 of output 1 of embed → ``layer`` → mean over axis 1 → head, all bias-free and
    linear: gradient × input, the gradient read off ``numpy_layer`` (the layer in NumPy) on
    each basis input."""
    x_in = keras.Input((T, F))
    h = layer(L.Dense(D, use_bias=False, name="embed")(x_in))
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(
        L.GlobalAveragePooling1D()(h)))
    rng = np.random.default_rng(9)
    model.set_weights([rng.normal(size=w.shape) for w in model.weights])
    W, V = (np.asarray(w) for w in model.get_weights())

    def forward(x):  # output 1 of the model, in NumPy
        return (numpy_layer(x @ W).mean(axis=1) @ V)[:, 1]

    basis = np.eye(T * F).reshape(T * F, T, F)
    grad = np.stack([forward(e[None])[0] for e in basis]).reshape(T, F)
    _assert_lrp_z(model, x, x * grad[None])
    return model


class RelativeShift(L.Layer):
    """XLNet's relative shift in small: the batch moved inside, a reshape and a slice to sizes
    read off ``ops.shape`` (batch included), then a term broadcast to ``ops.shape``."""

    def call(self, x):                                          # (B, T, D)
        y = ops.transpose(x, (1, 2, 0))                         # (T, D, B)
        s = ops.shape(y)
        y = ops.reshape(y, (s[1], s[0], s[2]))                  # (D, T, B)
        y = ops.slice(y, (1, 0, 0), (s[1] - 1, s[0], s[2]))     # (D-1, T, B)
        y = ops.transpose(y, (2, 1, 0))                         # (B, T, D-1)
        return y + ops.broadcast_to(y[:, :1, :], ops.shape(y))


def _relative_shift(h):
    y = np.stack([row.reshape(D, T)[1:].T for row in h])       # (B, T, D-1)
    return y + y[:, :1, :]


def test_a_slice_and_a_broadcast_to_sizes_read_off_a_symbolic_batch_take_the_z_rule(float64):
    x = np.random.default_rng(10).normal(size=(3, T, F))
    model = _linear_lrp_z(RelativeShift(name="shift"), x, _relative_shift)
    kinds = {type(n.layer).__name__ for n in
             keras_lrp.create_analyzer("lrp.z", model).graph.nodes}
    assert {"SliceKeeping", "BroadcastKeeping"} <= kinds


class FlatRows(L.Layer):
    """Every sample's steps in one axis (``batch * T``: its trace needs a batch), the whole
    axis sliced, then a step broadcast to ``(batch, T, d)``."""

    def call(self, x):                                          # (B, T, D)
        b = ops.shape(x)[0]
        flat = ops.slice(ops.reshape(x, (b * T, D)), (0, 1), (b * T, D - 1))
        y = ops.reshape(flat, (b, T, D - 1))
        return y + ops.broadcast_to(y[:, -1:, :], (b, T, D - 1))


def _flat_rows(h):
    y = h[:, :, 1:]
    return y + y[:, -1:, :]


def test_a_slice_and_a_broadcast_to_the_batch_of_a_batch_one_trace_take_the_z_rule(float64):
    x = np.random.default_rng(11).normal(size=(3, T, F))
    _linear_lrp_z(FlatRows(name="flat"), x, _flat_rows)


class StepsPerSample(L.Layer):
    """Keeps as many steps as the batch has samples: a size read off the batch on an axis that
    is not the batch's."""

    def call(self, x):
        s = ops.shape(x)
        return ops.slice(x, (0, 0, 0), (s[0], s[0], s[2]))

    def compute_output_spec(self, x):  # JAX cannot infer it: the size is the unknown batch
        return keras.KerasTensor((x.shape[0], x.shape[0], x.shape[2]), dtype=x.dtype)


def test_a_slice_whose_batch_size_is_not_its_axis_is_refused_by_name():
    x_in = keras.Input((T, F))
    model = keras.Model(x_in, L.Dense(2)(L.GlobalAveragePooling1D()(
        StepsPerSample(name="steps")(x_in))))
    with pytest.raises(ValueError, match="'steps' .*batch size to ops.slice .*'slice"):
        keras_lrp.create_analyzer("lrp.epsilon", model)


class BatchLaidTable(L.Layer):
    """Returns its input and a table computed from the shape only, laid out by batch (XLNet's
    relative positions): sample b's rows depend on b, so on the batch size."""

    def call(self, x):
        b = ops.shape(x)[0]
        steps = ops.cast(ops.arange(b * T), x.dtype)
        return x, ops.reshape(steps, (b, T, 1))


def test_a_table_laid_out_by_batch_is_computed_at_run_time(float64):
    x_in = keras.Input((T, F))
    h, table = BatchLaidTable(name="table")(L.Dense(D, use_bias=False, name="embed")(x_in))
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="head")(
        L.GlobalAveragePooling1D()(h * table)))
    x = _randomised(model, seed=12)
    W, V = (np.asarray(w) for w in model.get_weights())
    # LRP-0: the table is a constant factor (all relevance to the signal): sample b's step t
    # gets x_ta Σ_j W_aj V_j1 (b·T + t) / T
    table = np.arange(3 * T, dtype="float64").reshape(3, T, 1)
    _assert_lrp_z(model, x, x * table * (W @ V[:, 1])[None, None, :] / T)


def test_a_shape_constant_keeps_the_shape_of_an_empty_output():
    """DeiT's encoder returns (0, T, d) arrays for the hidden states it keeps none of: their
    list form ([]) forgets the shape, which the constant must keep (through its config too)."""
    from keras_lrp.canonizers.forward_layers import ShapeConstant

    table = np.arange(6.0).reshape(2, 3)
    const = ShapeConstant([np.zeros((0, T, D)), table], name="consts")
    again = ShapeConstant.from_config(const.get_config())
    for layer in (const, again):
        empty, full = (np.asarray(ops.convert_to_numpy(v)) for v in layer(np.ones((2, T))))
        assert empty.shape == (0, T, D) and np.array_equal(full, table)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="PyTorch's grad mode")
def test_the_batch_check_runs_with_torch_grad_enabled():
    """Outside the tests (which run PyTorch without grad), a layer's call returns tensors that
    require grad: the batch check compares them as NumPy arrays all the same."""
    import torch

    model = _token_model(TiledClassToken(name="cls"))
    x = np.random.default_rng(0).normal(size=(3, T, F)).astype("float32")
    with torch.enable_grad():
        a = keras_lrp.create_analyzer("lrp.epsilon", model)
    assert_close(np.asarray(a.forward_model(x)), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
