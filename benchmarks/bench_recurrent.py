"""Time LRP through an LSTM against one input gradient, and the build time against T.

An LSTM(128) over T steps (batch 32, 16 features) → Dense(10). The backward recurrence is one
compiled scan, so ``lrp.epsilon`` should cost a small multiple of a gradient (which also runs the
recurrence backwards) and the build time should not grow with T.

    python benchmarks/bench_recurrent.py [--batch 32] [--steps 200] [--units 128] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_engine import print_ratios, time_against_gradient  # noqa: E402

import keras_lrp  # noqa: E402


def lstm_model(steps: int, units: int, features: int = 16) -> keras.Model:
    keras.utils.set_random_seed(0)
    i = keras.Input((steps, features))
    return keras.Model(i, keras.layers.Dense(10)(keras.layers.LSTM(units)(i)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    model = lstm_model(args.steps, args.units)
    x = np.random.default_rng(0).normal(size=(args.batch, args.steps, 16)).astype("float32")
    methods = {"lrp.epsilon": {}, "lrp.alpha_2_beta_1": {}, "gradient": {}}
    medians, builds = time_against_gradient(model, x, methods, args.repeats)
    print_ratios(f"LSTM({args.units}) over T={args.steps}, batch {args.batch}", medians, builds,
                 args.repeats)
    print("\nbuild time of lrp.epsilon against the sequence length (a compiled loop: flat)")
    for steps in (10, 50, 200, 1000):
        m = lstm_model(steps, args.units)
        start = time.perf_counter()
        keras_lrp.create_analyzer("lrp.epsilon", m)
        print(f"  T={steps:<5} build {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
