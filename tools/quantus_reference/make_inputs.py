"""Write tests/data/quantus/inputs.npz: what keras-lrp and Quantus both evaluate.

Run it in keras-lrp's own environment (TensorFlow backend), from the checkout's root:

    .venv/bin/python tools/quantus_reference/make_inputs.py

It holds the first 16 test digits of ``keras_lrp/demos/models/digits_test.npz`` (``x``, channels
last, and their labels ``y``), the weights of the shipped digits CNN in Keras' layout (``w0``…,
``get_weights()`` order), its logits (float64, the softmax stripped), one relevance map per
analyzer for the label (``a_<name>``, float32, shaped like ``x``) and a localisation mask per
digit (``s``: the ink, pixels > 0.5). The Quantus generators in this folder (run in Quantus'
own environment, see twin.py) read it, and so do the tests.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.getcwd())
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_lrp  # noqa: E402

N = 16
ANALYZERS = {"epsilon": ("lrp.epsilon", {"epsilon": 0.1}),
             "alpha2beta1": ("lrp.alpha_2_beta_1", {}),
             "alpha2beta1_ib": ("lrp.alpha_2_beta_1_IB", {}),
             "gradient": ("gradient", {}),
             "input_x_gradient": ("input_t_gradient", {})}


def main(out: str = "tests/data/quantus/inputs.npz") -> None:
    models = "keras_lrp/demos/models"
    model = keras.models.load_model(f"{models}/digits_cnn.keras")
    data = np.load(f"{models}/digits_test.npz")
    x, y = data["x"][:N].astype("float32"), data["y"][:N].astype("int64")
    arrays = {"x": x, "y": y, "s": x[..., 0] > 0.5}
    arrays.update({f"w{i}": w for i, w in enumerate(model.get_weights())})
    for key, (name, kwargs) in ANALYZERS.items():
        analyzer = keras_lrp.create_analyzer(name, model, neuron_selection_mode="index", **kwargs)
        arrays[f"a_{key}"] = analyzer.analyze(x, neuron_selection=y).astype("float32")
        arrays["logits"] = np.asarray(analyzer.forward_model(x), dtype="float64")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main(*sys.argv[1:])
