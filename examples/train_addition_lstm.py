"""Train the addition-task LSTM (keras_lrp/demos/models/addition_lstm.keras) and its test set.

Task (Arras et al. 2019, "Evaluating recurrent neural network explanations"): sequences of 20
steps of (a number in [−1, 1], a marker); exactly two steps are marked, one in each half; the
target is the sum of the two marked numbers (keras_lrp.demos.sequence.addition_data).
Model: Input(20, 2) → LSTM(32) → Dense(1), mean squared error, Adam, 30 epochs on 20,000
sequences, seed 0. Writes keras_lrp/demos/models/addition_lstm.keras and
keras_lrp/demos/models/addition_test.npz (500 test sequences: x, y, marks).

    python examples/train_addition_lstm.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lrp.demos.sequence import STEPS, addition_data  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "keras_lrp" / "demos" / "models"


def build_model() -> keras.Model:
    inputs = keras.Input((STEPS, 2), name="sequence")
    h = keras.layers.LSTM(32, name="lstm")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="sum")(h), name="addition_lstm")


def main() -> None:
    keras.utils.set_random_seed(0)
    x, y, _ = addition_data(20000, seed=0)
    x_test, y_test, marks = addition_data(500, seed=1)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(x, y, batch_size=64, epochs=30, validation_data=(x_test, y_test), verbose=2)
    mse = float(np.mean((model.predict(x_test, verbose=0).reshape(-1) - y_test) ** 2))
    print(f"test MSE {mse:.5f} (the target's variance is {np.var(y_test):.3f})")
    model.save(MODELS / "addition_lstm.keras")
    np.savez_compressed(MODELS / "addition_test.npz", x=x_test, y=y_test, marks=marks)


if __name__ == "__main__":
    main()
