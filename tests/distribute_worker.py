"""Run by tests/test_distribute.py in a fresh process (logical devices must be set before
TensorFlow starts): analyze with and without a tf.distribute strategy, save both to an .npz.

    python tests/distribute_worker.py OUT.npz mirrored
    TF_CONFIG=... python tests/distribute_worker.py OUT.npz multiworker
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

if sys.argv[2] == "mirrored":
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lrp  # noqa: E402


def models():
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(i)
    cnn = keras.Model(i, keras.layers.Dense(3)(keras.layers.Flatten()(
        keras.layers.MaxPooling2D()(h))))
    j = keras.Input((5, 2))
    lstm = keras.Model(j, keras.layers.Dense(3)(keras.layers.LSTM(4)(j)))
    return cnn, lstm


def main(out, kind):
    strategy = (tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]) if kind == "mirrored"
                else tf.distribute.MultiWorkerMirroredStrategy())
    cnn, lstm = models()
    rng = np.random.default_rng(0)
    data = {"cnn": rng.uniform(0, 1, (7, 8, 8, 1)).astype("float32"),
            "lstm": rng.normal(size=(7, 5, 2)).astype("float32")}
    results = {}
    for net, model in (("cnn", cnn), ("lstm", lstm)):
        x = data[net]
        for name in ("lrp.epsilon", "lrp.alpha_2_beta_1", "gradient"):
            single = keras_lrp.create_analyzer(name, model)
            with strategy.scope():
                spread = keras_lrp.create_analyzer(name, model)
            results["replicas"] = spread.num_replicas
            for batch in (None, 4, 1):  # whole, a final partial batch, shards of 1 and 0 samples
                key = f"{net}|{name}|{batch}"
                results[key + "|single"] = single.analyze(x, batch_size=batch)
                results[key + "|spread"] = spread.analyze(x, batch_size=batch)
        idx = np.arange(7) % 3
        for tag, analyzer in (("single", keras_lrp.create_analyzer(
                "lrp.epsilon", model, neuron_selection_mode="index")), ("spread", None)):
            if analyzer is None:
                with strategy.scope():
                    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model,
                                                         neuron_selection_mode="index")
            results[f"{net}|index|{tag}"] = analyzer.analyze(x, neuron_selection=idx,
                                                             batch_size=3)
            lw = analyzer.analyze(x, neuron_selection=idx, layerwise=True)
            for layer, r in lw.items():
                results[f"{net}|layerwise {layer}|{tag}"] = r
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
