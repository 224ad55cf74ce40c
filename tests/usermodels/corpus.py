"""A corpus of small Keras models written the way keras.io's example scripts and users write them.

Each builder returns a built ``keras.Model`` with random (seeded) weights, tiny enough that an LRP
analyzer builds in about a second. The code follows the named keras.io example as closely as a
tiny model allows: custom layers without ``get_config`` or ``**kwargs`` where the example has
none, ``keras.ops`` inside ``call``, ``keras.Sequential`` sub-blocks, ``layers.add`` and so on.
Outputs are logits (the examples' output softmax or sigmoid is left off).

As untrained layers have zero biases, unit scales and zero BatchNormalization statistics, every
builder ends with :func:`_trained_like`, which perturbs those the way training would, so that a
bias or a statistic that an analyzer drops or mishandles shows.

``MODELS``: name -> builder (no arguments). ``INPUTS``: name -> ``f(n, rng)`` giving a batch of
``n`` inputs (a dict keyed by input name for a model with several inputs; int32 token ids for a
token model). Every model carries two attributes:

* ``corpus_conserves``: an analyzer name for which the sum of the input relevances equals the
  explained logit (linear maps, ReLU-type activations, pooling, adds, concatenation, reshapes;
  biases are ignored by the ``_IB`` rule), or ``None`` (attention, normalisation, gates,
  products, smooth activations);
* ``corpus_tokens``: whether the model is fed token ids (explained per token; no gradient).
"""

from __future__ import annotations

from typing import Callable, Dict

import keras
import numpy as np
from keras import layers, ops

CONSERVES = "lrp.z_IB"


# -- helpers ----------------------------------------------------------------------------------
def _trained_like(model: keras.Model, seed: int = 0) -> None:
    """Stand in for training: perturb every bias, scale, BatchNormalization statistic and
    all-zero or all-one weight (untrained, they would hide what an analyzer does with them)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "float" not in str(variable.dtype):
            continue
        value = np.asarray(ops.convert_to_numpy(variable))
        name = variable.name.split("/")[-1]
        if name == "moving_mean":
            new = rng.normal(0.0, 0.1, value.shape)
        elif name == "moving_variance":
            new = rng.uniform(0.5, 1.5, value.shape)
        elif not variable.trainable or value.size == 0:
            continue
        elif name in ("bias", "beta", "b"):
            new = value + rng.normal(0.0, 0.1, value.shape)
        elif name == "gamma" or np.all(value == 1.0):
            new = value * rng.uniform(0.8, 1.2, value.shape)
        elif np.all(value == 0.0):
            new = rng.normal(0.0, 0.1, value.shape)
        else:
            continue
        variable.assign(new.astype(value.dtype))


def _described(model: keras.Model, conserves=None, tokens: bool = False) -> keras.Model:
    """Perturb the weights as training would and attach the corpus attributes."""
    _trained_like(model)
    model.corpus_conserves = conserves
    model.corpus_tokens = tokens
    return model


def _images(shape, scale=1.0, offset=0.0):
    return lambda n, rng: (offset + scale * rng.random((n,) + shape)).astype("float32")


def _normal(shape, mean=0.0, std=1.0):
    return lambda n, rng: rng.normal(mean, std, (n,) + shape).astype("float32")


def _tokens(length, vocab, pad_from=None):
    def make(n, rng):
        ids = rng.integers(1, vocab, size=(n, length)).astype("int32")
        if pad_from is not None:
            ids[:, pad_from:] = 0
        return ids
    return make


def _mlp(x, hidden_units, dropout_rate):
    """keras.io ViT's ``mlp``: Dense(gelu) + Dropout per width."""
    for units in hidden_units:
        x = layers.Dense(units, activation=keras.activations.gelu)(x)
        x = layers.Dropout(dropout_rate)(x)
    return x


# -- custom layers, as the examples write them ------------------------------------------------
class ViTPatches(layers.Layer):
    """keras.io ViT's ``Patches``: only ``patch_size``, no ``**kwargs``, no ``get_config``."""

    def __init__(self, patch_size):
        super().__init__()
        self.patch_size = patch_size

    def call(self, images):
        input_shape = ops.shape(images)
        batch_size = input_shape[0]
        height = input_shape[1]
        width = input_shape[2]
        channels = input_shape[3]
        num_patches_h = height // self.patch_size
        num_patches_w = width // self.patch_size
        patches = keras.ops.image.extract_patches(images, size=self.patch_size)
        patches = ops.reshape(
            patches,
            (batch_size, num_patches_h * num_patches_w,
             self.patch_size * self.patch_size * channels),
        )
        return patches


class PatchEncoder(layers.Layer):
    """keras.io ViT's ``PatchEncoder``: Dense projection + Embedding of ``arange(num_patches)``."""

    def __init__(self, num_patches, projection_dim):
        super().__init__()
        self.num_patches = num_patches
        self.projection = layers.Dense(units=projection_dim)
        self.position_embedding = layers.Embedding(input_dim=num_patches,
                                                   output_dim=projection_dim)

    def call(self, patch):
        positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
        projected_patches = self.projection(patch)
        encoded = projected_patches + self.position_embedding(positions)
        return encoded


class MixerPatches(layers.Layer):
    """keras.io MLP-Mixer/gMLP's ``Patches`` (with ``**kwargs``, no ``get_config``)."""

    def __init__(self, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, x):
        patches = keras.ops.image.extract_patches(x, self.patch_size)
        batch_size = keras.ops.shape(patches)[0]
        num_patches = keras.ops.shape(patches)[1] * keras.ops.shape(patches)[2]
        patch_dim = keras.ops.shape(patches)[3]
        out = keras.ops.reshape(patches, (batch_size, num_patches, patch_dim))
        return out


class TokenAndPositionEmbedding(layers.Layer):
    """keras.io "Text classification with Transformer"'s embedding (no ``get_config``)."""

    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


class TransformerBlock(layers.Layer):
    """keras.io "Text classification with Transformer"'s block, here with ``get_config``."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.rate = embed_dim, num_heads, ff_dim, rate
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)

    def get_config(self):
        config = super().get_config()
        config.update({"embed_dim": self.embed_dim, "num_heads": self.num_heads,
                       "ff_dim": self.ff_dim, "rate": self.rate})
        return config


class Linear(layers.Layer):
    """keras.io "Making new layers and models via subclassing"'s ``Linear`` (no ``get_config``)."""

    def __init__(self, units=32):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel) + self.b


class SequencePooling(layers.Layer):
    """keras.io CCT's ``SequencePooling``: softmax(Dense(1)(x)) over time, then matmul."""

    def __init__(self):
        super().__init__()
        self.attention = layers.Dense(1)

    def call(self, x):
        attention_weights = ops.softmax(self.attention(x), axis=1)
        attention_weights = ops.transpose(attention_weights, axes=(0, 2, 1))
        weighted_representation = ops.matmul(attention_weights, x)
        return ops.squeeze(weighted_representation, -2)


class PlainConv2D(layers.Conv2D):
    """The Conv2D docs' ``call`` override pattern: convolution_op + bias, the activation never
    applied (though the layer is built with ``activation="relu"``)."""

    def call(self, inputs):
        return self.convolution_op(inputs, self.kernel) + self.bias


class OrthogonalRegularizer(keras.regularizers.Regularizer):
    """keras.io PointNet's regularizer (no ``get_config``)."""

    def __init__(self, num_features, l2reg=0.001):
        self.num_features = num_features
        self.l2reg = l2reg
        self.eye = ops.eye(num_features)

    def __call__(self, x):
        x = ops.reshape(x, (-1, self.num_features, self.num_features))
        xxt = ops.tensordot(x, x, axes=(2, 2))
        xxt = ops.reshape(xxt, (-1, self.num_features, self.num_features))
        return ops.sum(self.l2reg * ops.square(xxt - self.eye))


class CCTTokenizer(layers.Layer):
    """keras.io CCT's tokenizer: a Sequential of Conv2D/ZeroPadding2D/MaxPooling2D, reshaped."""

    def __init__(self, kernel_size=3, stride=1, padding=1, pooling_kernel_size=3,
                 pooling_stride=2, num_conv_layers=2, num_output_channels=(8, 16), **kwargs):
        super().__init__(**kwargs)
        self.conv_model = keras.Sequential()
        for i in range(num_conv_layers):
            self.conv_model.add(layers.Conv2D(num_output_channels[i], kernel_size, stride,
                                              padding="valid", use_bias=False,
                                              activation="relu", kernel_initializer="he_normal"))
            self.conv_model.add(layers.ZeroPadding2D(padding))
            self.conv_model.add(layers.MaxPooling2D(pooling_kernel_size, pooling_stride, "same"))

    def call(self, images):
        outputs = self.conv_model(images)
        reshaped = keras.ops.reshape(
            outputs,
            (-1, keras.ops.shape(outputs)[1] * keras.ops.shape(outputs)[2],
             keras.ops.shape(outputs)[-1]),
        )
        return reshaped


class StochasticDepth(layers.Layer):
    """keras.io CCT's ``StochasticDepth``: the identity at inference."""

    def __init__(self, drop_prop, **kwargs):
        super().__init__(**kwargs)
        self.drop_prob = drop_prop
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, x, training=None):
        if training:
            keep_prob = 1 - self.drop_prob
            shape = (keras.ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
            random_tensor = keep_prob + keras.random.uniform(shape, 0, 1,
                                                             seed=self.seed_generator)
            random_tensor = keras.ops.floor(random_tensor)
            return (x / keep_prob) * random_tensor
        return x


class GMLPLayer(layers.Layer):
    """keras.io gMLP's ``gMLPLayer`` with its spatial gating unit (ops.split, u * v)."""

    def __init__(self, num_patches, embedding_dim, dropout_rate, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channel_projection1 = keras.Sequential(
            [layers.Dense(units=embedding_dim * 2, activation="gelu"),
             layers.Dropout(rate=dropout_rate)]
        )
        self.channel_projection2 = layers.Dense(units=embedding_dim)
        self.spatial_projection = layers.Dense(units=num_patches, bias_initializer="Ones")
        self.normalize1 = layers.LayerNormalization(epsilon=1e-6)
        self.normalize2 = layers.LayerNormalization(epsilon=1e-6)

    def spatial_gating_unit(self, x):
        u, v = keras.ops.split(x, indices_or_sections=2, axis=2)
        v = self.normalize2(v)
        v_channels = keras.ops.transpose(v, axes=(0, 2, 1))
        v_projected = self.spatial_projection(v_channels)
        v_projected = keras.ops.transpose(v_projected, axes=(0, 2, 1))
        return u * v_projected

    def call(self, inputs):
        x = self.normalize1(inputs)
        x_projected = self.channel_projection1(x)
        x_spatial = self.spatial_gating_unit(x_projected)
        x_projected = self.channel_projection2(x_spatial)
        return x + x_projected


class LearnedScale(layers.Layer):
    """A user's element-wise layer: ``x * alpha``, one learned scale per channel."""

    def build(self, input_shape):
        self.alpha = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                     trainable=True)

    def call(self, x):
        return x * self.alpha


class MyModel(keras.Model):
    """keras.io "The Sequential model / subclassing" recipe: layers in __init__, call()."""

    def __init__(self):
        super().__init__()
        self.dense1 = layers.Dense(16, activation="relu")
        self.dropout = layers.Dropout(0.2)
        self.dense2 = layers.Dense(4)

    def call(self, inputs, training=False):
        x = self.dense1(inputs)
        x = self.dropout(x, training=training)
        return self.dense2(x)


# -- builders ---------------------------------------------------------------------------------
def vit_patches():
    """keras.io "Image classification with Vision Transformer" (ViT), one block, 8x8 images."""
    keras.utils.set_random_seed(0)
    patch_size, projection_dim, num_heads = 4, 16, 2
    num_patches = (8 // patch_size) ** 2
    inputs = keras.Input(shape=(8, 8, 3))
    patches = ViTPatches(patch_size)(inputs)
    encoded_patches = PatchEncoder(num_patches, projection_dim)(patches)
    x1 = layers.LayerNormalization(epsilon=1e-6)(encoded_patches)
    attention_output = layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim,
                                                 dropout=0.1)(x1, x1)
    x2 = layers.Add()([attention_output, encoded_patches])
    x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
    x3 = _mlp(x3, hidden_units=[projection_dim * 2, projection_dim], dropout_rate=0.1)
    encoded_patches = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-6)(encoded_patches)
    representation = layers.GlobalAveragePooling1D()(representation)
    representation = layers.Dropout(0.5)(representation)
    logits = layers.Dense(5)(representation)
    return _described(keras.Model(inputs=inputs, outputs=logits))


def text_transformer():
    """keras.io "Text classification with Transformer": token+position embedding, one block."""
    keras.utils.set_random_seed(0)
    maxlen, vocab_size, embed_dim, num_heads, ff_dim = 16, 100, 16, 2, 16
    inputs = keras.Input(shape=(maxlen,), dtype="int32")
    embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
    x = embedding_layer(inputs)
    transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
    x = transformer_block(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2)(x)
    return _described(keras.Model(inputs=inputs, outputs=outputs), tokens=True)


def matmul_layer():
    """keras.io "Making new layers and models via subclassing": ``Linear`` (matmul + b)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12,))
    x = Linear(16)(inputs)
    x = layers.Activation("relu")(x)
    outputs = Linear(3)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def sequence_pooling():
    """keras.io CCT's ``SequencePooling`` (softmax-weighted pooling over time) on a sequence."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12, 8))
    x = layers.Dense(16, activation="relu")(inputs)
    x = SequencePooling()(x)
    outputs = layers.Dense(3)(x)
    return _described(keras.Model(inputs, outputs))


def conv_override():
    """Conv2D docs' ``call`` override (StandardizedConv2DWithCall pattern), built with
    activation="relu" that its call() never applies."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(8, 8, 3))
    x = PlainConv2D(8, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def tabular_normalization():
    """keras.io "Regression with a Normalization layer" style: adapted Normalization, an MLP."""
    keras.utils.set_random_seed(0)
    data = np.random.default_rng(0).normal(5.0, 3.0, (256, 6)).astype("float32")
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(data)
    inputs = keras.Input(shape=(6,))
    x = normalizer(inputs)
    x = layers.Dense(8, activation="relu")(x)
    outputs = layers.Dense(2)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


TABULAR_FEATURES = {"age": (54.0, 9.0), "trestbps": (131.0, 17.0), "chol": (246.0, 51.0),
                    "thalach": (150.0, 23.0)}


def tabular_dict_inputs():
    """keras.io "Structured data classification from scratch": one Input per numeric feature,
    each Normalization-ed, concatenated, Dense(relu), Dropout, Dense(1) (a dict of inputs)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs, encoded = [], []
    for name, (mean, std) in TABULAR_FEATURES.items():
        feature = keras.Input(shape=(1,), name=name)
        normalizer = layers.Normalization()
        normalizer.adapt(rng.normal(mean, std, (256, 1)).astype("float32"))
        inputs.append(feature)
        encoded.append(normalizer(feature))
    all_features = layers.concatenate(encoded)
    x = layers.Dense(16, activation="relu")(all_features)
    x = layers.Dropout(0.5)(x)
    output = layers.Dense(1)(x)
    return _described(keras.Model(inputs, output), CONSERVES)


def _tabular_inputs(n, rng):
    return {name: rng.normal(mean, std, (n, 1)).astype("float32")
            for name, (mean, std) in TABULAR_FEATURES.items()}


def augmented_cnn():
    """keras.io ViT/"Image classification from scratch" preprocessing: a data-augmentation
    Sequential, then Resizing, Rescaling(1/255), an adapted Normalization and a small CNN."""
    keras.utils.set_random_seed(0)
    data_augmentation = keras.Sequential(
        [layers.RandomFlip("horizontal"), layers.RandomRotation(factor=0.02),
         layers.RandomZoom(height_factor=0.2, width_factor=0.2)],
        name="data_augmentation",
    )
    normalization = layers.Normalization()
    normalization.adapt(np.random.default_rng(0).random((64, 12, 12, 3)).astype("float32"))
    inputs = keras.Input(shape=(16, 16, 3))
    x = data_augmentation(inputs)
    x = layers.Resizing(12, 12)(x)
    x = layers.Rescaling(1.0 / 255)(x)
    x = normalization(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(5)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def output_named_layer():
    """A plain MLP whose last layer is named "output" (keras.io's speaker recognition does)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(10,))
    x = layers.Dense(16, activation="relu", name="hidden")(inputs)
    outputs = layers.Dense(3, name="output")(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def nested_model():
    """keras.io "The Functional API": a functional model used as a layer; both the inner and
    the outer model have a layer named "head"."""
    keras.utils.set_random_seed(0)
    inner_in = keras.Input(shape=(8,))
    h = layers.Dense(16, activation="relu", name="dense")(inner_in)
    inner = keras.Model(inner_in, layers.Dense(8, name="head")(h), name="backbone")
    inputs = keras.Input(shape=(8,))
    x = inner(inputs)
    x = layers.ReLU()(x)
    outputs = layers.Dense(3, name="head")(x)
    return _described(keras.Model(inputs, outputs, name="outer"), CONSERVES)


def kernel_regularizer():
    """keras.io PointNet's ``OrthogonalRegularizer`` (no get_config) as a Dense
    kernel_regularizer."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(16,))
    x = layers.Dense(16, activation="relu",
                     kernel_regularizer=OrthogonalRegularizer(4))(inputs)
    outputs = layers.Dense(3)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def _conv_bn(x, filters):
    x = layers.Conv1D(filters, kernel_size=1, padding="valid")(x)
    x = layers.BatchNormalization(momentum=0.0)(x)
    return layers.Activation("relu")(x)


def _dense_bn(x, filters):
    x = layers.Dense(filters)(x)
    x = layers.BatchNormalization(momentum=0.0)(x)
    return layers.Activation("relu")(x)


def _tnet(inputs, num_features):
    bias = keras.initializers.Constant(np.eye(num_features).flatten())
    reg = OrthogonalRegularizer(num_features)
    x = _conv_bn(inputs, 8)
    x = _conv_bn(x, 16)
    x = _conv_bn(x, 32)
    x = layers.GlobalMaxPooling1D()(x)
    x = _dense_bn(x, 16)
    x = _dense_bn(x, 16)
    x = layers.Dense(num_features * num_features, kernel_initializer="zeros",
                     bias_initializer=bias, activity_regularizer=reg)(x)
    feat_t = layers.Reshape((num_features, num_features))(x)
    return layers.Dot(axes=(2, 1))([inputs, feat_t])


def pointnet():
    """keras.io "Point cloud classification with PointNet": two T-nets (Reshape(Dense) and
    layers.Dot of the points with it), conv_bn/dense_bn blocks, 16 points x 3."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(16, 3))
    x = _tnet(inputs, 3)
    x = _conv_bn(x, 8)
    x = _conv_bn(x, 8)
    x = _tnet(x, 8)
    x = _conv_bn(x, 8)
    x = _conv_bn(x, 16)
    x = _conv_bn(x, 32)
    x = layers.GlobalMaxPooling1D()(x)
    x = _dense_bn(x, 16)
    x = layers.Dropout(0.3)(x)
    x = _dense_bn(x, 16)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(4)(x)
    return _described(keras.Model(inputs=inputs, outputs=outputs, name="pointnet"))


def unet():
    """A classic small U-Net (Conv2D, MaxPooling2D, Conv2DTranspose and UpSampling2D,
    Concatenate skips) on 16x16x1, its per-pixel logits flattened (keras.io segmentation
    examples' layout)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(16, 16, 1))
    c1 = layers.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    p1 = layers.MaxPooling2D((2, 2))(c1)
    c2 = layers.Conv2D(16, 3, activation="relu", padding="same")(p1)
    p2 = layers.MaxPooling2D((2, 2))(c2)
    b = layers.Conv2D(16, 3, activation="relu", padding="same")(p2)
    u2 = layers.Conv2DTranspose(16, 2, strides=2, padding="same")(b)
    u2 = layers.Concatenate()([u2, c2])
    c3 = layers.Conv2D(16, 3, activation="relu", padding="same")(u2)
    u1 = layers.UpSampling2D(2)(c3)
    u1 = layers.Concatenate()([u1, c1])
    c4 = layers.Conv2D(8, 3, activation="relu", padding="same")(u1)
    pixels = layers.Conv2D(1, 1)(c4)
    outputs = layers.Flatten()(pixels)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def separable_resnet():
    """keras.io "Image classification from scratch": Rescaling, Conv2D/BN/relu stem,
    SeparableConv2D blocks with a 1x1 strided Conv2D residual and layers.add."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(16, 16, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for size in [16, 32]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(32, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(1, activation=None)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def _activation_block(x):
    x = layers.Activation("gelu")(x)
    return layers.BatchNormalization()(x)


def convmixer():
    """keras.io "Image classification with ConvMixer": patch stem, DepthwiseConv2D with a
    residual, gelu + BatchNormalization, 1x1 Conv2D."""
    keras.utils.set_random_seed(0)
    filters, depth, kernel_size, patch_size = 16, 2, 3, 2
    inputs = keras.Input((8, 8, 3))
    x = layers.Rescaling(scale=1.0 / 255)(inputs)
    x = layers.Conv2D(filters, kernel_size=patch_size, strides=patch_size)(x)
    x = _activation_block(x)
    for _ in range(depth):
        x0 = x
        x = layers.DepthwiseConv2D(kernel_size=kernel_size, padding="same")(x)
        x = layers.Add()([_activation_block(x), x0])
        x = layers.Conv2D(filters, kernel_size=1)(x)
        x = _activation_block(x)
    x = layers.GlobalAvgPool2D()(x)
    outputs = layers.Dense(5)(x)
    return _described(keras.Model(inputs, outputs))


def mlp_mixer():
    """keras.io "MLP-Mixer": Conv2D patch embedding, token mixing through Permute + Dense,
    channel mixing, LayerNormalization, residual Adds."""
    keras.utils.set_random_seed(0)
    num_patches, hidden_units = 16, 16
    inputs = keras.Input(shape=(8, 8, 3))
    x = layers.Conv2D(hidden_units, 2, strides=2)(inputs)
    x = layers.Reshape((num_patches, hidden_units))(x)
    for _ in range(2):
        y = layers.LayerNormalization(epsilon=1e-6)(x)
        y = layers.Permute((2, 1))(y)
        y = layers.Dense(num_patches, activation="gelu")(y)
        y = layers.Dense(num_patches)(y)
        y = layers.Permute((2, 1))(y)
        x = layers.Add()([x, y])
        y = layers.LayerNormalization(epsilon=1e-6)(x)
        y = layers.Dense(num_patches, activation="gelu")(y)
        y = layers.Dense(hidden_units)(y)
        y = layers.Dropout(0.2)(y)
        x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(5)(x)
    return _described(keras.Model(inputs, outputs))


def gmlp():
    """keras.io "gMLP" (in "Image classification with modern MLP models"): Patches, Dense
    embedding, gMLPLayer with the spatial gating unit (ops.split, u * v)."""
    keras.utils.set_random_seed(0)
    num_patches, embedding_dim = 16, 16
    inputs = keras.Input(shape=(8, 8, 3))
    patches = MixerPatches(2)(inputs)
    x = layers.Dense(units=embedding_dim)(patches)
    x = keras.Sequential([GMLPLayer(num_patches, embedding_dim, 0.2)])(x)
    representation = layers.GlobalAveragePooling1D()(x)
    representation = layers.Dropout(rate=0.2)(representation)
    logits = layers.Dense(5)(representation)
    return _described(keras.Model(inputs=inputs, outputs=logits))


def cct():
    """keras.io "Image classification with Compact Convolutional Transformers": CCTTokenizer,
    a transformer block with StochasticDepth, and SequencePooling."""
    keras.utils.set_random_seed(0)
    projection_dim, num_heads = 16, 2
    inputs = keras.Input((16, 16, 3))
    encoded_patches = CCTTokenizer()(inputs)
    x1 = layers.LayerNormalization(epsilon=1e-5)(encoded_patches)
    attention_output = layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim,
                                                 dropout=0.1)(x1, x1)
    attention_output = StochasticDepth(0.1)(attention_output)
    x2 = layers.Add()([attention_output, encoded_patches])
    x3 = layers.LayerNormalization(epsilon=1e-5)(x2)
    x3 = _mlp(x3, hidden_units=[projection_dim, projection_dim], dropout_rate=0.1)
    x3 = StochasticDepth(0.1)(x3)
    encoded_patches = layers.Add()([x3, x2])
    representation = layers.LayerNormalization(epsilon=1e-5)(encoded_patches)
    weighted_representation = SequencePooling()(representation)
    logits = layers.Dense(5)(weighted_representation)
    return _described(keras.Model(inputs=inputs, outputs=logits))


def timeseries_conv1d():
    """keras.io "Timeseries classification from scratch": three Conv1D/BN/ReLU blocks,
    GlobalAveragePooling1D, Dense."""
    keras.utils.set_random_seed(0)
    input_layer = keras.layers.Input((16, 1))
    x = input_layer
    for _ in range(3):
        x = keras.layers.Conv1D(filters=16, kernel_size=3, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    gap = keras.layers.GlobalAveragePooling1D()(x)
    output_layer = keras.layers.Dense(2)(gap)
    return _described(keras.models.Model(inputs=input_layer, outputs=output_layer), CONSERVES)


def volume_conv3d():
    """keras.io "3D image classification from CT scans": Conv3D/MaxPool3D/BN, GAP3D, Dense.

    Not conserving: each BatchNormalization follows ReLU + pooling (nothing to fold it into),
    and where its input is 0 its output is its bias alone, whose relevance no rule can pass on.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 8, 1))
    x = layers.Conv3D(filters=4, kernel_size=3, padding="same", activation="relu")(inputs)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Conv3D(filters=8, kernel_size=3, padding="same", activation="relu")(x)
    x = layers.MaxPool3D(pool_size=2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Dense(units=16, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(units=1)(x)
    return _described(keras.Model(inputs, outputs, name="3dcnn"))


def _residual_block(x, filters, conv_num=3, activation="relu"):
    s = keras.layers.Conv1D(filters, 1, padding="same")(x)
    for _ in range(conv_num - 1):
        x = keras.layers.Conv1D(filters, 3, padding="same")(x)
        x = keras.layers.Activation(activation)(x)
    x = keras.layers.Conv1D(filters, 3, padding="same")(x)
    x = keras.layers.Add()([x, s])
    x = keras.layers.Activation(activation)(x)
    return keras.layers.MaxPool1D(pool_size=2, strides=2)(x)


def audio_waveform():
    """keras.io "Speaker Recognition": Conv1D residual blocks with MaxPool1D on a raw waveform
    of 64 samples, AveragePooling1D, Flatten, Dense, a Dense named "output"."""
    keras.utils.set_random_seed(0)
    inputs = keras.layers.Input(shape=(64, 1), name="input")
    x = _residual_block(inputs, 8, 2)
    x = _residual_block(x, 8, 3)
    x = keras.layers.AveragePooling1D(pool_size=3, strides=3)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    outputs = keras.layers.Dense(3, name="output")(x)
    return _described(keras.models.Model(inputs=inputs, outputs=outputs), CONSERVES)


def audio_melspectrogram():
    """keras.layers.MelSpectrogram's documented use: raw audio -> log-mel spectrogram layer ->
    a small Conv2D classifier."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(256,))
    x = layers.MelSpectrogram(fft_length=64, sequence_stride=16, num_mel_bins=16,
                              sampling_rate=8000)(inputs)
    x = layers.Reshape((16, 17, 1))(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3)(x)
    return _described(keras.Model(inputs, outputs))


def subclassed_model():
    """keras.io "Making new layers and models via subclassing": a keras.Model subclass with
    its own call(), built by calling it on data once."""
    keras.utils.set_random_seed(0)
    model = MyModel()
    model(np.zeros((1, 10), "float32"))
    return _described(model, CONSERVES)


def bidirectional_lstm():
    """keras.io "Bidirectional LSTM on IMDB": Input((None,), int32), Embedding, two
    Bidirectional LSTMs, Dense(1)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(8))(x)
    outputs = layers.Dense(1)(x)
    return _described(keras.Model(inputs, outputs), tokens=True)


def gru_masked():
    """keras.io "Working with RNNs": Embedding(mask_zero=True) with padded ids, a GRU, Dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(16,), dtype="int32")
    x = layers.Embedding(input_dim=50, output_dim=8, mask_zero=True)(inputs)
    x = layers.GRU(16)(x)
    outputs = layers.Dense(2)(x)
    return _described(keras.Model(inputs, outputs), tokens=True)


def shared_layer():
    """keras.io "The Functional API" shared layers / Siamese networks: one Dense object called
    on two inputs, the two codes concatenated."""
    keras.utils.set_random_seed(0)
    left = keras.Input(shape=(10,), name="left")
    right = keras.Input(shape=(10,), name="right")
    shared_tower = layers.Dense(16, activation="relu", name="shared_tower")
    merged = layers.concatenate([shared_tower(left), shared_tower(right)])
    outputs = layers.Dense(2)(merged)
    return _described(keras.Model([left, right], outputs), CONSERVES)


def _pair_inputs(n, rng):
    return {"left": rng.normal(size=(n, 10)).astype("float32"),
            "right": rng.normal(size=(n, 10)).astype("float32")}


def learned_scale():
    """A user's element-wise layer without get_config: a learned per-channel scale x * alpha."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(10,))
    x = layers.Dense(16)(inputs)
    x = LearnedScale()(x)
    x = layers.ReLU()(x)
    outputs = layers.Dense(3)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def resize_and_crop():
    """keras.io preprocessing-layers guide: CenterCrop, bilinear Resizing, then a small CNN."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12, 12, 3))
    x = layers.CenterCrop(10, 10)(inputs)
    x = layers.Resizing(8, 8, interpolation="bilinear")(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def resize_bilinear():
    """keras.io preprocessing-layers guide: a bilinear Resizing alone in front of a small CNN
    (the Resizing of ``resize_and_crop`` without the CenterCrop)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12, 12, 3))
    x = layers.Resizing(8, 8, interpolation="bilinear")(inputs)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4)(x)
    return _described(keras.Model(inputs, outputs), CONSERVES)


def mnist_convnet():
    """keras.io "Simple MNIST convnet": a keras.Sequential CNN with Flatten and Dropout."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(16, kernel_size=(2, 2), activation="relu"),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10),
        ]
    )
    return _described(model, CONSERVES)


MODELS: Dict[str, Callable[[], keras.Model]] = {
    "vit_patches": vit_patches,                      # a
    "text_transformer": text_transformer,            # b
    "matmul_layer": matmul_layer,                    # c
    "sequence_pooling": sequence_pooling,            # d
    "conv_override": conv_override,                  # e
    "tabular_normalization": tabular_normalization,  # f
    "tabular_dict_inputs": tabular_dict_inputs,      # f
    "augmented_cnn": augmented_cnn,                  # g
    "output_named_layer": output_named_layer,        # h
    "nested_model": nested_model,                    # i
    "kernel_regularizer": kernel_regularizer,        # j
    "pointnet": pointnet,                            # k
    "unet": unet,                                    # l
    "separable_resnet": separable_resnet,            # m
    "convmixer": convmixer,                          # n
    "mlp_mixer": mlp_mixer,                          # o
    "gmlp": gmlp,                                    # p
    "cct": cct,                                      # q
    "timeseries_conv1d": timeseries_conv1d,          # r
    "volume_conv3d": volume_conv3d,                  # s
    "audio_waveform": audio_waveform,                # t
    "audio_melspectrogram": audio_melspectrogram,    # t
    "subclassed_model": subclassed_model,            # u
    "bidirectional_lstm": bidirectional_lstm,        # v
    "gru_masked": gru_masked,                        # v
    "shared_layer": shared_layer,                    # w
    "learned_scale": learned_scale,                  # x
    "resize_and_crop": resize_and_crop,              # y
    "resize_bilinear": resize_bilinear,              # y
    "mnist_convnet": mnist_convnet,
}

INPUTS: Dict[str, Callable[[int, np.random.Generator], object]] = {
    "vit_patches": _images((8, 8, 3)),
    "text_transformer": _tokens(16, 100),
    "matmul_layer": _normal((12,)),
    "sequence_pooling": _normal((12, 8)),
    "conv_override": _images((8, 8, 3)),
    "tabular_normalization": _normal((6,), 5.0, 3.0),
    "tabular_dict_inputs": _tabular_inputs,
    "augmented_cnn": _images((16, 16, 3), scale=255.0),
    "output_named_layer": _normal((10,)),
    "nested_model": _normal((8,)),
    "kernel_regularizer": _normal((16,)),
    "pointnet": _normal((16, 3)),
    "unet": _images((16, 16, 1)),
    "separable_resnet": _images((16, 16, 3), scale=255.0),
    "convmixer": _images((8, 8, 3), scale=255.0),
    "mlp_mixer": _images((8, 8, 3)),
    "gmlp": _images((8, 8, 3)),
    "cct": _images((16, 16, 3)),
    "timeseries_conv1d": _normal((16, 1)),
    "volume_conv3d": _images((8, 8, 8, 1)),
    "audio_waveform": _normal((64, 1), std=0.3),
    "audio_melspectrogram": _normal((256,), std=0.3),
    "subclassed_model": _normal((10,)),
    "bidirectional_lstm": _tokens(12, 50),
    "gru_masked": _tokens(16, 50, pad_from=11),
    "shared_layer": _pair_inputs,
    "learned_scale": _normal((10,)),
    "resize_and_crop": _images((12, 12, 3)),
    "resize_bilinear": _images((12, 12, 3)),
    "mnist_convnet": _images((8, 8, 1)),
}

assert set(MODELS) == set(INPUTS)
