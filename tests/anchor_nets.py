"""The small networks the anchors' reference numbers are made on (tests/data/), for any Keras.

``build(name, keras, bias)`` builds the same architecture with whichever ``keras`` module it is
given: Keras 2 (``tensorflow.keras`` of TensorFlow 2.14, where iNNvestigate 2.1.2 runs) or
Keras 3 (keras-lrp). Layer names and weight order are the same in both, so weights saved from
one load into the other. ``weights(name, model, seed)`` draws them reproducibly.
"""

import numpy as np

SHAPES = {"image": (10, 10, 3), "vector": (12,), "sequence": (16, 3)}


def _mlp(K, i, bias):
    h = K.layers.Dense(8, activation="relu", use_bias=bias, name="d1")(i)
    h = K.layers.Dense(6, activation="relu", use_bias=bias, name="d2")(h)
    return K.layers.Dense(4, use_bias=bias, name="out")(h)


def _cnn_pools(K, i, bias):
    h = K.layers.Conv2D(4, 3, activation="relu", use_bias=bias, name="c1")(i)
    h = K.layers.MaxPooling2D(2, name="mp")(h)
    h = K.layers.Conv2D(6, 2, activation="relu", use_bias=bias, name="c2")(h)
    h = K.layers.AveragePooling2D(2, name="ap")(h)
    h = K.layers.Flatten(name="flat")(h)
    return K.layers.Dense(4, use_bias=bias, name="out")(h)


def _cnn_bn(K, i, bias):
    h = K.layers.Conv2D(4, 3, use_bias=bias, name="c1")(i)
    h = K.layers.BatchNormalization(center=bias, name="bn")(h)
    h = K.layers.Activation("relu", name="relu")(h)
    h = K.layers.MaxPooling2D(2, name="mp")(h)
    return K.layers.Dense(4, use_bias=bias, name="out")(K.layers.Flatten(name="flat")(h))


def _residual(K, i, bias):
    h = K.layers.Dense(6, activation="relu", use_bias=bias, name="a1")(i)
    h = K.layers.Dense(6, use_bias=bias, name="a2")(h)
    p = K.layers.Dense(6, use_bias=bias, name="proj")(i)
    # Activation("relu"), not ReLU(): iNNvestigate 2.1.2 fails to copy a ReLU layer
    h = K.layers.Activation("relu", name="relu")(K.layers.Add(name="add")([h, p]))
    return K.layers.Dense(4, use_bias=bias, name="out")(h)


def _concat(K, i, bias):
    a = K.layers.Dense(5, activation="relu", use_bias=bias, name="b1")(i)
    b = K.layers.Dense(3, activation="relu", use_bias=bias, name="b2")(i)
    h = K.layers.Concatenate(name="cat")([a, b])
    return K.layers.Dense(4, use_bias=bias, name="out")(h)


def _conv1d(K, i, bias):
    h = K.layers.Conv1D(4, 3, activation="relu", use_bias=bias, name="c1")(i)
    h = K.layers.Flatten(name="flat")(h)
    return K.layers.Dense(4, use_bias=bias, name="out")(h)


def _single(layer_fn):
    def build(K, i, bias):
        h = layer_fn(K, bias)(i)
        return K.layers.Flatten(name="flat")(h) if len(h.shape) > 2 else h
    return build


#: name → (input kind, builder(keras, input, bias)).
NETS = {
    "mlp": ("vector", _mlp),
    "cnn_pools": ("image", _cnn_pools),
    "residual": ("vector", _residual),
    "concat": ("vector", _concat),
    "conv1d": ("sequence", _conv1d),
    "dense": ("image", lambda K, i, bias: K.layers.Dense(4, use_bias=bias, name="out")(
        K.layers.Flatten(name="flat")(i))),
    "dense_relu": ("image", lambda K, i, bias: K.layers.Dense(
        4, activation="relu", use_bias=bias, name="out")(K.layers.Flatten(name="flat")(i))),
    "conv2d": ("image", _single(lambda K, bias: K.layers.Conv2D(2, 3, use_bias=bias,
                                                                name="out"))),
    "conv2d_relu": ("image", _single(lambda K, bias: K.layers.Conv2D(
        2, 3, activation="relu", use_bias=bias, name="out"))),
    "avgpool": ("image", _single(lambda K, bias: K.layers.AveragePooling2D(2, name="pool"))),
    "maxpool": ("image", _single(lambda K, bias: K.layers.MaxPooling2D(2, name="pool"))),
    "cnn_bn": ("image", _cnn_bn),  # last: the seeds follow the order
}


def build(name, K, bias=True):
    kind, builder = NETS[name]
    i = K.Input(SHAPES[kind], name="x")
    return K.Model(i, builder(K, i, bias), name=name)


def weights(model, seed):
    """Reproducible weights, in the model's order: kernels N(0, 0.5²), biases U(-0.3, 0.3);
    BatchNormalization's scale and variance U(0.5, 1.5), its offset and mean U(-0.3, 0.3)."""
    g = np.random.default_rng(seed)
    out = []
    for layer in model.layers:
        for w, v in zip(layer.weights, layer.get_weights()):
            positive = "gamma" in w.name or "variance" in w.name
            value = (g.uniform(0.5, 1.5, size=v.shape) if positive
                     else g.normal(scale=0.5, size=v.shape) if v.ndim > 1
                     else g.uniform(-0.3, 0.3, size=v.shape))
            out.append(value.astype("float32"))
    return out


def inputs(name, seed, n=3):
    """Inputs in [-1, 1] (inside deep_taylor.bounded's default box)."""
    kind, _ = NETS[name]
    return np.random.default_rng(seed + 1000).uniform(-1, 1, (n,) + SHAPES[kind]).astype(
        "float32")


def anchor_cases(folder, fast):
    """pytest params ``(stem, name, mode)`` for every ``"name|mode"`` array of the reference
    files ``folder/*.npz``, with the id ``stem-name|mode``; the cases ``fast(stem, name, mode)``
    rejects are marked slow."""
    import pytest

    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            for key in data.files:
                if "|" in key:
                    name, mode = key.split("|")
                    marks = () if fast(path.stem, name, mode) else (pytest.mark.slow,)
                    yield pytest.param(path.stem, name, mode, id=f"{path.stem}-{key}",
                                       marks=marks)
