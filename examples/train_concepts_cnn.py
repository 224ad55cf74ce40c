"""Train the shipped concepts CNN (keras_lrp/demos/models/concepts_cnn.keras) on the synthetic
shapes × colours task of keras_lrp.demos.concepts, and write its test set with the part masks
(keras_lrp/demos/models/concepts_test.npz).

The task (:func:`keras_lrp.demos.concepts.concepts_data`): 16×16 RGB noise with a red square, a
green plus and a blue bar each present with probability 1/2, and up to two distractors (the
same shapes in other colours); label 1 when at least two of the three parts are present.

The model: Conv(8)–Conv(16)–MaxPool–Conv(16)–GlobalAveragePooling–Dense(2, softmax), 3×3
kernels, ReLU. Fixed seeds; under a minute on a CPU.

    python examples/train_concepts_cnn.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from train_digits import save_inference_copy  # noqa: E402

from keras_lrp.demos.concepts import concepts_data  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "keras_lrp" / "demos" / "models"
L = keras.layers


def build_model() -> keras.Model:
    inputs = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.GlobalAveragePooling2D(name="mean")(x)
    outputs = L.Dense(8, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="concepts_cnn")


def main() -> None:
    keras.utils.set_random_seed(0)
    x_train, y_train, _ = concepts_data(8000, seed=1)
    x_test, y_test, masks = concepts_data(400, seed=2)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=8, verbose=2,
              validation_data=(x_test, y_test))
    accuracy = float(np.mean(model.predict(x_test, verbose=0).argmax(axis=1) == y_test))
    print(f"concepts_cnn test accuracy {accuracy:.4f} on {len(y_test)} images")
    save_inference_copy(model, MODELS / "concepts_cnn.keras")
    tmp = MODELS / "concepts_test.tmp.npz"
    np.savez_compressed(tmp, x=np.round(x_test * 255).astype(np.uint8), y=y_test, masks=masks)
    os.replace(tmp, MODELS / "concepts_test.npz")


if __name__ == "__main__":
    main()
