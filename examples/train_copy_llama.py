"""Train the LLM demo's model: a keras-hub Llama (2 layers, hidden 64, 4 query and 2 key-value
heads, SwiGLU MLP of 128, vocabulary 32, random init) on copying the marked word
(:mod:`keras_lrp.demos.copy_task`), with the loss on the answer (the logits at the last
position), new random prompts for every batch. Writes
``keras_lrp/demos/models/copy_llama.keras`` (the ``LlamaCausalLM``, inputs of any length) and
``copy_test.npz`` (1,000 test prompts with answers and source positions).

    pip install "keras-lrp[tensorflow,hub]"
    python examples/train_copy_llama.py
"""

import os
import sys

import keras
import keras_hub
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from keras_lrp.demos.copy_task import LENGTH, VOCAB, copy_data  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "keras_lrp", "demos",
                   "models")


class FreshPrompts(keras.utils.PyDataset):
    """New random prompts for every batch."""

    def __init__(self, batches: int, batch_size: int, seed: int):
        super().__init__()
        self.batches, self.batch_size, self.seed, self.epoch = batches, batch_size, seed, 0

    def __len__(self):
        return self.batches

    def __getitem__(self, i):
        x, y, _ = copy_data(self.batch_size, seed=self.seed + 1_000_003 * self.epoch + i)
        return {"token_ids": x, "padding_mask": np.ones_like(x)}, y

    def on_epoch_end(self):
        self.epoch += 1


class StopAt(keras.callbacks.Callback):
    """Stop once the validation accuracy reaches ``target``."""

    def __init__(self, target: float):
        super().__init__()
        self.target = target

    def on_epoch_end(self, epoch, logs=None):
        if (logs or {}).get("val_accuracy", 0.0) >= self.target:
            self.model.stop_training = True


def main(epochs: int = 30):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCAB, num_layers=2, hidden_dim=64, intermediate_dim=128,
        num_query_heads=4, num_key_value_heads=2, layer_norm_epsilon=1e-6)
    lm = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
    ins = {"token_ids": keras.Input((LENGTH,), dtype="int32", name="token_ids"),
           "padding_mask": keras.Input((LENGTH,), dtype="int32", name="padding_mask")}
    train = keras.Model(ins, lm(ins)[:, -1, :])
    train.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    xv, yv, _ = copy_data(2000, seed=2)
    mask = lambda a: {"token_ids": a, "padding_mask": np.ones_like(a)}  # noqa: E731
    train.fit(FreshPrompts(300, 64, seed=10), validation_data=(mask(xv), yv), epochs=epochs,
              callbacks=[StopAt(0.999)], verbose=2)
    xt, yt, st = copy_data(1000, seed=3)
    accuracy = float(np.mean(np.argmax(np.asarray(lm(mask(xt)))[:, -1], -1) == yt))
    print(f"test accuracy {accuracy:.4f} on 1000 prompts; {lm.count_params()} parameters")
    lm.save(os.path.join(OUT, "copy_llama.keras"))
    np.savez_compressed(os.path.join(OUT, "copy_test.npz"), x=xt, y=yt, source=st)


if __name__ == "__main__":
    main()
