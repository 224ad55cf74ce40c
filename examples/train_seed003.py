"""Train seed 003's two-feature classifier (keras_lrp/demos/models/seed003_two_feature.keras).

Data: x uniform in [0, 1]², y = x₁ + 2x₂; class 0 where y ≥ 3, class 1 otherwise, exactly as in
the seed notebook. (Since x₁ + 2x₂ ≤ 3 on the unit square, class 0 is essentially empty, so the
model learns to predict class 1; that is the seed's setup and it is kept for the hand checks.)
Model: Input(2) → Dense(2, softmax) with a non-negative bias constraint, SGD with Nesterov
momentum and the seed's step-decay schedule, 100 epochs, batch 128, seed 42.

    python examples/train_seed003.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "keras_lrp" / "demos" / "models"


def make_data(n: int = 10000, seed: int = 42):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2)).astype("float32")
    y = x @ np.array([1.0, 2.0], dtype="float32")
    return x, np.where(y >= 3, 0, 1)


def build_model() -> keras.Model:
    inputs = keras.Input((2,), name="features")
    outputs = keras.layers.Dense(2, activation="softmax",
                                 bias_constraint=keras.constraints.NonNeg(),
                                 name="classifier")(inputs)
    return keras.Model(inputs, outputs, name="seed003_two_feature")


def step_decay(epoch: int, lr: float = 0.0) -> float:
    return 0.01 * 0.5 ** np.floor((1 + epoch) / 25)


def save_inference_copy(model: keras.Model, path: Path) -> None:
    """Save weights and architecture only (no optimizer state), to keep the file small."""
    clean = keras.models.clone_model(model)
    clean.set_weights(model.get_weights())
    clean.save(path)


def main() -> None:
    keras.utils.set_random_seed(42)
    x, y = make_data()
    model = build_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:8000], y[:8000], epochs=100, batch_size=128, verbose=0,
              callbacks=[keras.callbacks.LearningRateScheduler(step_decay)])
    _, accuracy = model.evaluate(x[8000:], y[8000:], verbose=0)
    print(f"seed003_two_feature test accuracy: {accuracy:.4f} on 2000 held-out points")
    MODELS.mkdir(exist_ok=True)
    save_inference_copy(model, MODELS / "seed003_two_feature.keras")


if __name__ == "__main__":
    main()
