"""Run by test_jax_distribution.py in a fresh process with two forced CPU devices: analyzers made
under ``keras.distribution.DataParallel`` against the same analyzers made without it.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax python THIS OUT.npz
"""
import sys

import jax
import keras
import numpy as np

import keras_lrp
from keras_lrp import backend

NAMES = ["lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.z_plus", "gradient", "smoothgrad"]

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.Flatten(),
                          keras.layers.Dense(10)])
x = np.random.default_rng(0).standard_normal((11, 8, 8, 1)).astype("float32")
out = {"devices": len(jax.devices())}
for name in NAMES:
    kwargs = {"seed": 3} if name == "smoothgrad" else {}
    out[f"{name}|single"] = keras_lrp.create_analyzer(name, model, **kwargs).analyze(
        x, batch_size=4)  # batches of 4, 4 and 3: the last is padded to 4 on two devices
keras.distribution.set_distribution(keras.distribution.DataParallel())
for name in NAMES:
    kwargs = {"seed": 3} if name == "smoothgrad" else {}
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    out["replicas"] = analyzer.num_replicas
    out[f"{name}|spread"] = analyzer.analyze(x, batch_size=4)
_, values = backend.distributed(analyzer.strategy, lambda *a: a, [x[:3]])
out["shard_devices"] = len(values[0].sharding.device_set)
out["shard_rows"] = [s.data.shape[0] for s in values[0].addressable_shards]
np.savez(sys.argv[1], **out)
