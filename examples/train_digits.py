"""Train the shipped digits CNN (keras_lrp/demos/models/digits_cnn.keras) on scikit-learn's
handwritten digits.

The 8×8 digits ship inside scikit-learn, so nothing is downloaded. Pixels are scaled to [0, 1].
The split (stratified, 20 % test, seed 0) and the training seed are fixed, so rerunning this
script reproduces the model up to TensorFlow's run-to-run float nondeterminism. It also writes
the test split to keras_lrp/demos/models/digits_test.npz, which the demo explains without needing
scikit-learn.

    pip install scikit-learn && python examples/train_digits.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "keras_lrp" / "demos" / "models"


def load_digits_split(seed: int = 0):
    """(x_train, y_train, x_test, y_test) with x of shape (n, 8, 8, 1) in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    return train_test_split(x, digits.target, test_size=0.2, random_state=seed,
                            stratify=digits.target)


def build_model() -> keras.Model:
    inputs = keras.Input((8, 8, 1), name="digit")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def save_inference_copy(model: keras.Model, path: Path) -> None:
    """Save weights and architecture only (no optimizer state), to keep the file small."""
    clean = keras.models.clone_model(model)
    clean.set_weights(model.get_weights())
    clean.save(path)


def main() -> None:
    keras.utils.set_random_seed(0)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=60, batch_size=32, validation_split=0.1, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"digits_cnn test accuracy: {accuracy:.4f} on {len(y_test)} test digits")
    MODELS.mkdir(exist_ok=True)
    save_inference_copy(model, MODELS / "digits_cnn.keras")
    np.savez_compressed(MODELS / "digits_test.npz", x=x_test, y=y_test)


if __name__ == "__main__":
    main()
