"""The failure classes of models users write, each on a few-line model (issue 27): before this
release each one was refused, crashed, or silently explained another network.

Each test checks numbers from an independent source: the user's own model (its forward pass,
its autodiff gradient), the same network written with Keras' own layers, or conservation.
"""

import keras
import numpy as np
import pytest
from helpers import assert_close, autodiff
from keras import ops

import keras_lrp
from keras_lrp.analyzers.verify import ForwardMismatch, tolerance

L = keras.layers
RNG = np.random.default_rng(0)


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t), dtype="float64")


def _grad(model, x, unit):
    return np.asarray(autodiff(lambda t: ops.sum(model(t, training=False)[:, unit]),
                               ops.convert_to_tensor(x))[0])


class OwnConv(L.Conv2D):
    """keras.io style: call() never applies the ``activation`` the layer was given."""

    def call(self, inputs):
        return self.convolution_op(inputs, self.kernel) + self.bias


def _own_conv_model():
    keras.utils.set_random_seed(3)
    x = keras.Input((6, 6, 2))
    h = OwnConv(3, 3, activation="relu", name="own_conv")(x)
    return keras.Model(x, L.Dense(2, name="head")(L.Flatten()(h)))


def test_a_subclass_overriding_call_is_explained_as_written():
    model = _own_conv_model()
    x = RNG.normal(size=(3, 6, 6, 2)).astype("float32")
    assert (np.asarray(model.layers[1](x)) < 0).any()  # no ReLU inside: negative outputs
    for name in ("lrp.z", "lrp.epsilon", "gradient"):
        a = keras_lrp.create_analyzer(name, model, neuron_selection_mode="index")
        np.testing.assert_allclose(_np(a.forward_model(x)), _np(model(x)), rtol=1e-5,
                                   atol=1e-6)
    # a linear network: LRP-0 is gradient × input exactly, and the gradient is the model's
    z = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    g = keras_lrp.create_analyzer("gradient", model, neuron_selection_mode="index")
    expected = _grad(model, x, 1)
    np.testing.assert_allclose(g.analyze(x, neuron_selection=1), expected, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(z.analyze(x, neuron_selection=1), x * expected, rtol=1e-4,
                               atol=1e-5 * np.abs(x * expected).max())


def test_the_forward_check_names_the_layer_a_rewrite_got_wrong():
    """Kept whole by the user's own entry, the subclass is read from its attributes (its
    ``activation="relu"``): the check refuses it, naming the layer and both values."""
    model = _own_conv_model()
    with pytest.raises(ForwardMismatch, match=r"'own_conv' \(OwnConv\): the model gives .* "
                                              r"the analysis .*register_block"):
        keras_lrp.create_analyzer("lrp.epsilon", model,
                                  rule_map=[(OwnConv, keras_lrp.rules.Epsilon())])
    unchecked = keras_lrp.create_analyzer("lrp.epsilon", model, forward_check=False,
                                          rule_map=[(OwnConv, keras_lrp.rules.Epsilon())])
    assert not unchecked.forward_checked


def test_tolerance_is_the_square_root_of_the_dtypes_epsilon():
    assert tolerance("float32") == pytest.approx(np.sqrt(np.finfo("float32").eps))
    assert tolerance("float64", "tensorflow") == pytest.approx(np.sqrt(np.finfo("float64").eps))
    # Keras computes float64 partly in float32 on JAX and PyTorch
    assert tolerance("float64", "jax") == pytest.approx(np.sqrt(np.finfo("float32").eps))
    assert tolerance("float16") == pytest.approx(np.sqrt(np.finfo("float16").eps))


def test_an_adapted_normalization_keeps_its_statistics():
    """The issue's numbers: Normalization adapted on mean 5, std 3 → Dense(8, relu) → Dense(2)."""
    keras.utils.set_random_seed(0)
    norm = L.Normalization()
    norm.adapt(RNG.normal(5.0, 3.0, size=(256, 4)).astype("float32"))
    x = keras.Input((4,))
    model = keras.Model(x, L.Dense(2)(L.Dense(8, activation="relu")(norm(x))))
    data = RNG.normal(5.0, 3.0, size=(4, 4)).astype("float32")
    for name in ("lrp.epsilon", "lrp.z_IB", "gradient"):
        a = keras_lrp.create_analyzer(name, model)
        np.testing.assert_allclose(_np(a.forward_model(data)), _np(model(data)), rtol=1e-5,
                                   atol=1e-6)
    # Normalization is affine per feature: the IB rule passes relevance through it unchanged,
    # so Σ R is the logit (no bias on the Dense layers absorbs under _IB)
    a = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode="index")
    r = a.analyze(data, neuron_selection=0)
    np.testing.assert_allclose(r.sum(axis=1), _np(model(data))[:, 0], rtol=1e-4, atol=1e-5)


def test_the_gradient_family_explains_an_augmenting_model_at_inference():
    """RandomFlip/RandomRotation/RandomZoom augment unless told training=False; Resizing and an
    adapted Normalization follow. The gradient is the user's model's, at inference."""
    keras.utils.set_random_seed(1)
    norm = L.Normalization()
    norm.adapt(RNG.random((32, 6, 6, 1)).astype("float32"))
    aug = keras.Sequential([L.RandomFlip(), L.RandomRotation(0.1), L.RandomZoom(0.2)])
    x = keras.Input((8, 8, 1))
    h = norm(L.Rescaling(1 / 255)(L.Resizing(6, 6)(aug(x))))
    model = keras.Model(x, L.Dense(3)(L.Flatten()(L.Conv2D(2, 3, activation="relu")(h))))
    data = (255 * RNG.random((2, 8, 8, 1))).astype("float32")
    g = keras_lrp.create_analyzer("gradient", model, neuron_selection_mode="index")
    expected = _grad(model, data, 2)
    for _ in range(2):  # the same numbers every call: nothing random is applied
        np.testing.assert_allclose(g.analyze(data, neuron_selection=2), expected, rtol=1e-5,
                                   atol=1e-6 * np.abs(expected).max())
    z = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode="index")
    r = z.analyze(data, neuron_selection=2)  # identity, interpolation (Z rule), affine, ReLU
    np.testing.assert_allclose(r.reshape(2, -1).sum(axis=1),
                               _np(model(data, training=False))[:, 2], rtol=1e-4, atol=1e-5)


def test_a_layer_named_output():
    keras.utils.set_random_seed(2)
    x = keras.Input((5,))
    model = keras.Model(x, L.Dense(3, name="output")(L.Dense(4, activation="relu")(x)))
    data = RNG.normal(size=(3, 5)).astype("float32")
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    np.testing.assert_allclose(a.analyze(data, neuron_selection=0),
                               data * _grad(model, data, 0), rtol=1e-4, atol=1e-6)
    names = [layer.name for layer in a.relevance_model.layers]
    assert len(names) == len(set(names))


class Patches(L.Layer):
    """keras.io's ViT: no **kwargs, no get_config."""

    def __init__(self, patch_size):
        super().__init__()
        self.patch_size = patch_size

    def call(self, images):
        patches = ops.image.extract_patches(images, size=self.patch_size)
        shape = ops.shape(patches)
        return ops.reshape(patches, (shape[0], shape[1] * shape[2], shape[3]))


class Linear(L.Layer):
    """keras.io's subclassing guide: its own weights, ops.matmul."""

    def __init__(self, units):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b


def test_a_custom_layer_without_kwargs_or_config_is_traced_and_left_alone():
    keras.utils.set_random_seed(4)
    x = keras.Input((4, 4, 1))
    patches = Patches(2)
    h = L.Dense(3, activation="relu")(patches(x))
    model = keras.Model(x, L.Dense(2)(L.Flatten()(h)))
    nodes = (len(patches._inbound_nodes), len(patches._outbound_nodes))
    data = RNG.normal(size=(2, 4, 4, 1)).astype("float32")
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    # patches are a fixed 0/1 linear map, so the network is piecewise linear: LRP-0 = x · grad
    np.testing.assert_allclose(a.analyze(data, neuron_selection=1),
                               data * _grad(model, data, 1), rtol=1e-4, atol=1e-6)
    assert (len(patches._inbound_nodes), len(patches._outbound_nodes)) == nodes


def test_a_weight_in_ops_matmul_is_a_dense_layer():
    """Linear (ops.matmul + bias) takes every rule exactly as a Dense with its weights does,
    the bias included (``_IB`` drops it, ε absorbs it)."""
    keras.utils.set_random_seed(5)
    x = keras.Input((6,))
    own = Linear(4)
    model = keras.Model(x, L.Dense(2)(L.Activation("relu")(own(x))))
    y = keras.Input((6,))
    dense = L.Dense(4)
    twin = keras.Model(y, L.Dense(2)(L.Activation("relu")(dense(y))))
    twin.set_weights(model.get_weights())
    data = RNG.normal(size=(3, 6)).astype("float32")
    for name in ("lrp.epsilon", "lrp.epsilon_IB", "lrp.alpha_2_beta_1", "lrp.z"):
        ours = keras_lrp.create_analyzer(name, model).analyze(data)
        theirs = keras_lrp.create_analyzer(name, twin).analyze(data)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7, err_msg=name)


class OrthogonalRegularizer(keras.regularizers.Regularizer):
    """keras.io's PointNet: no get_config."""

    def __call__(self, x):
        return 1e-3 * ops.sum(ops.square(ops.matmul(ops.transpose(x), x) - ops.eye(x.shape[1])))


def test_a_regularizer_without_get_config_is_dropped_from_the_copy_only():
    keras.utils.set_random_seed(6)
    x = keras.Input((4,))
    dense = L.Dense(4, activation="relu", kernel_regularizer=OrthogonalRegularizer())
    model = keras.Model(x, L.Dense(2)(dense(x)))
    data = RNG.normal(size=(3, 4)).astype("float32")
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    np.testing.assert_allclose(a.analyze(data, neuron_selection=0),
                               data * _grad(model, data, 0), rtol=1e-4, atol=1e-6)
    assert isinstance(dense.kernel_regularizer, OrthogonalRegularizer)


def test_nested_models_with_equal_layer_names_and_a_layer_called_twice():
    keras.utils.set_random_seed(7)
    i = keras.Input((4,))
    inner = keras.Model(i, L.Dense(4, activation="relu", name="head")(i), name="inner")
    x = keras.Input((4,))
    shared = Linear(4)  # one custom layer object called at two places
    h = L.Activation("relu")(shared(inner(x)))
    h = L.Activation("relu")(shared(h))
    model = keras.Model(x, L.Dense(2, name="head")(h))
    data = RNG.normal(size=(3, 4)).astype("float32")
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    np.testing.assert_allclose(a.analyze(data, neuron_selection=1),
                               data * _grad(model, data, 1), rtol=1e-4, atol=1e-6)
    names = {layer.name for layer in a.forward_model.layers}
    assert {"head", "inner_head"} <= names


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resizing_and_center_crop_conserve(interpolation, float64):
    keras.utils.set_random_seed(8)
    x = keras.Input((7, 7, 1))
    h = L.CenterCrop(6, 6)(L.Resizing(8, 8, interpolation=interpolation)(x))
    h = L.Conv2D(2, 3, activation="relu", use_bias=False)(h)
    model = keras.Model(x, L.Dense(2, use_bias=False)(L.Flatten()(h)))
    data = RNG.random((2, 7, 7, 1))
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    r = a.analyze(data, neuron_selection=0)
    # TensorFlow resizes in float32 whatever the input's dtype (tf.image.resize), so the
    # bilinear model is float64 only up to float32's rounding there
    tol = 1e-9 if interpolation == "nearest" else 1e-6
    assert_close(r.reshape(2, -1).sum(axis=1), _np(model(data))[:, 0], rtol=tol)
    np.testing.assert_allclose(r, data * _grad(model, data, 0), rtol=tol,
                               atol=tol * np.abs(r).max())


class TokenAndPosition(L.Layer):
    """keras.io's text transformer: positions from ops.arange(ops.shape(x)[-1])."""

    def __init__(self, maxlen, vocab, dim):
        super().__init__()
        self.tokens, self.positions = L.Embedding(vocab, dim), L.Embedding(maxlen, dim)

    def call(self, x):
        return self.tokens(x) + self.positions(ops.arange(0, ops.shape(x)[-1]))


def test_a_position_embedding_of_any_length_is_traced_per_length():
    """On keras.Input((None,)), each length gets its traced analysis; the positions are a
    constant (no relevance), so under the IB rule Σ R over the tokens is the logit."""
    keras.utils.set_random_seed(9)
    x = keras.Input((None,), dtype="int32")
    h = L.GlobalAveragePooling1D()(TokenAndPosition(32, 50, 8)(x))
    model = keras.Model(x, L.Dense(2, use_bias=False)(h))
    a = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode="index")
    for length in (5, 9):
        ids = RNG.integers(1, 50, size=(2, length)).astype("int32")
        r = a.analyze(ids, neuron_selection=1)
        assert r.shape == (2, length)
        np.testing.assert_allclose(r.sum(axis=1), _np(model(ids))[:, 1], rtol=1e-4, atol=1e-6)


class Projection(L.Layer):
    """keras-hub's SpatialPyramidPooling pattern: a call without ``training`` around a
    Sequential with a BatchNormalization (called eagerly outside a model, it trains)."""

    def __init__(self):
        super().__init__()
        self.block = keras.Sequential([L.Conv2D(3, 1), L.BatchNormalization(), L.ReLU()])

    def call(self, inputs):
        return self.block(inputs)


def test_a_layer_without_training_argument_runs_at_inference_and_keeps_its_statistics():
    keras.utils.set_random_seed(10)
    x = keras.Input((5, 5, 2))
    projection = Projection()
    model = keras.Model(x, L.Dense(2)(L.GlobalAveragePooling2D()(projection(x))))
    bn = projection.block.layers[1]
    bn.set_weights([RNG.uniform(0.5, 2, 3), RNG.normal(size=3), RNG.normal(size=3),
                    RNG.uniform(0.5, 2, 3)])
    before = [np.array(w) for w in model.get_weights()]
    data = RNG.normal(size=(2, 5, 5, 2)).astype("float32")
    for name in ("lrp.epsilon", "lrp.z", "gradient"):
        a = keras_lrp.create_analyzer(name, model, neuron_selection_mode="index")
        a.analyze(data, neuron_selection=0)
        np.testing.assert_allclose(_np(a.forward_model(data)), _np(model(data, training=False)),
                                   rtol=1e-5, atol=1e-6)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
