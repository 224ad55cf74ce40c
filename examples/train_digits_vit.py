"""Train the shipped Vision Transformer (keras_lrp/demos/models/digits_vit.keras) on scikit-learn's
8×8 digits, with the CNN's split (stratified, 20 % test, seed 0; examples/train_digits.py).

The 8×8 image is cut into 16 patches of 2×2 (a strided Conv2D), each a token of 32 values; a
learned position embedding is added (an Embedding of the positions 0..15, which are computed
from the tokens' shape, so the model has one input); two post-LN blocks of MultiHeadAttention
(4 heads) and a GELU MLP; the mean over the tokens; a softmax classifier. Core Keras layers only.

    pip install scikit-learn && python examples/train_digits_vit.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from train_digits import load_digits_split, save_inference_copy  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "keras_lrp" / "demos" / "models"
L = keras.layers


def encoder_blocks(x, dim: int, heads: int, blocks: int):
    """``blocks`` post-LN transformer blocks: self-attention and a GELU MLP, each with a residual
    Add and a LayerNormalization (the layer names the shipped models use)."""
    for b in range(1, blocks + 1):
        a = L.MultiHeadAttention(heads, dim // heads, name=f"attention{b}")(x, x)
        x = L.LayerNormalization(name=f"norm{b}a")(L.Add(name=f"residual{b}a")([x, a]))
        f = L.Dense(2 * dim, activation="gelu", name=f"mlp{b}a")(x)
        f = L.Dense(dim, name=f"mlp{b}b")(f)
        x = L.LayerNormalization(name=f"norm{b}b")(L.Add(name=f"residual{b}b")([x, f]))
    return x


def build_model(patch=2, dim=32, heads=4, blocks=2) -> keras.Model:
    inputs = keras.Input((8, 8, 1), name="digit")
    x = L.Conv2D(dim, patch, strides=patch, name="patches")(inputs)
    n = (8 // patch) ** 2
    x = L.Reshape((n, dim), name="tokens")(x)
    positions = ops.cast(ops.zeros_like(x[..., 0]), "int32") + ops.arange(n, dtype="int32")
    x = L.Add(name="add_positions")([x, L.Embedding(n, dim, name="position")(positions)])
    x = L.GlobalAveragePooling1D(name="mean_token")(encoder_blocks(x, dim, heads, blocks))
    outputs = L.Dense(10, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_vit")


def fit_classifier(model, train, test, batch_size: int, epochs: int) -> float:
    """Adam(2e-3) on sparse cross-entropy, the test split shown as validation; returns the test
    accuracy. Both shipped transformers are trained this way."""
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, batch_size=batch_size, epochs=epochs, verbose=2, validation_data=test)
    x_test, y_test = test
    return float(np.mean(model.predict(x_test, verbose=0).argmax(axis=1) == y_test))


def main() -> None:
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = build_model()
    accuracy = fit_classifier(model, (x_train, y_train), (x_test, y_test), 32, 120)
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} digits")
    save_inference_copy(model, MODELS / "digits_vit.keras")


if __name__ == "__main__":
    main()
