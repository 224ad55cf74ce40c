"""Train the shipped text transformer (keras_lrp/demos/models/sentiment_transformer.keras) on a
synthetic token task with a known answer, and write its test set
(keras_lrp/demos/models/sentiment_test.npz).

The task (:func:`keras_lrp.demos.text.sentiment_data`): sequences of 8–24 word tokens, padded
with 0 to 24. Tokens 2–5 are "positive" words, 6–9 "negative", 10–31 neutral filler. A sequence
holds 0–3 positive and 0–3 negative words (never as many of each); its label is 1 when it has
more positive words. Only the sentiment words decide the label, and each pushes it one way, so
a faithful explanation puts its relevance on them, with their sign.

The model: a token Embedding (``mask_zero``: the padding is masked in attention and in the mean)
plus a learned position embedding; two post-LN blocks of MultiHeadAttention (4 heads) and a GELU
MLP; the masked mean over tokens; a softmax classifier. Core Keras layers only.

    python examples/train_sentiment_transformer.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402
from train_digits import save_inference_copy  # noqa: E402
from train_digits_vit import encoder_blocks, fit_classifier  # noqa: E402

from keras_lrp.demos.text import LENGTH, VOCAB, sentiment_data  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "keras_lrp" / "demos" / "models"
L = keras.layers


def build_model(dim=32, heads=4, blocks=2) -> keras.Model:
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, dim, mask_zero=True, name="words")(tokens)
    positions = ops.zeros_like(tokens) + ops.arange(LENGTH, dtype="int32")
    x = L.Add(name="add_positions")([x, L.Embedding(LENGTH, dim, name="position")(positions)])
    x = L.GlobalAveragePooling1D(name="mean_token")(encoder_blocks(x, dim, heads, blocks))
    outputs = L.Dense(2, activation="softmax", name="logits")(x)
    return keras.Model(tokens, outputs, name="sentiment_transformer")


def main() -> None:
    keras.utils.set_random_seed(0)
    x_train, y_train = sentiment_data(20000, seed=1)
    x_test, y_test = sentiment_data(1000, seed=2)
    model = build_model()
    accuracy = fit_classifier(model, (x_train, y_train), (x_test, y_test), 64, 12)
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} sequences")
    save_inference_copy(model, MODELS / "sentiment_transformer.keras")
    tmp = MODELS / "sentiment_test.tmp.npz"
    np.savez_compressed(tmp, x=x_test, y=y_test)
    os.replace(tmp, MODELS / "sentiment_test.npz")


if __name__ == "__main__":
    main()
