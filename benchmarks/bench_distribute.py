"""Throughput of one analyzer with 1 and 2 replicas (tf.distribute.MirroredStrategy).

Without GPUs the replicas are logical CPU devices sharing the machine's cores, so this checks
the overhead of splitting and gathering more than it shows a speed-up; with two GPUs it is the
real thing.

    python benchmarks/bench_distribute.py [--images 256] [--batch 32] [--size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_GPUS = tf.config.list_physical_devices("GPU")
if len(_GPUS) < 2:  # before TensorFlow starts: two logical CPU devices
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_engine import vgg_like  # noqa: E402

import keras_lrp  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--method", default="lrp.epsilon")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = vgg_like(args.size)
    x = np.random.default_rng(0).uniform(-1, 1, (args.images, args.size, args.size, 3)).astype(
        "float32")
    kind = "GPU" if len(_GPUS) >= 2 else "logical CPU"
    devices = [f"/{'gpu' if kind == 'GPU' else 'cpu'}:{i}" for i in range(2)]
    analyzers = {1: keras_lrp.create_analyzer(args.method, model)}
    with tf.distribute.MirroredStrategy(devices).scope():
        analyzers[2] = keras_lrp.create_analyzer(args.method, model)
    times = {n: [] for n in analyzers}
    for a in analyzers.values():  # warm-up: traces every batch shape once
        a.analyze(x, batch_size=args.batch)
    for _ in range(args.repeats):
        for n, a in analyzers.items():
            start = time.perf_counter()
            a.analyze(x, batch_size=args.batch)
            times[n].append(time.perf_counter() - start)
    same = np.allclose(analyzers[1].analyze(x[:args.batch]), analyzers[2].analyze(x[:args.batch]),
                       rtol=1e-5, atol=1e-6)
    print(f"{args.method} on vgg_like {args.size}x{args.size}, {args.images} images in batches "
          f"of {args.batch}, {kind} devices, {os.cpu_count()} CPUs, median of {args.repeats}")
    for n, t in times.items():
        print(f"  {n} replica(s): {args.images / np.median(t):8.1f} images/s")
    print(f"  same relevances: {same}")


if __name__ == "__main__":
    main()
