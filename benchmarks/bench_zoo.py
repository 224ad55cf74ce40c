"""Time keras-lrp on every keras.applications network: build time and LRP ÷ gradient ratios.

For each network (weights=None, classes=10, its smallest input size) it reports the time to
build an analyzer for lrp.epsilon and lrp.epsilon_gamma_box, and the median time per batch of
each analysis divided by the median time of a compiled tf.GradientTape input gradient on the
same model and batch (interleaved runs, one process, one machine).

    python benchmarks/bench_zoo.py [--batch 8] [--repeats 7] [--only ResNet50 VGG16 ...]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_engine import time_against_gradient  # noqa: E402

A = keras.applications
ZOO = {"VGG16": (A.VGG16, 32), "VGG19": (A.VGG19, 32), "ResNet50": (A.ResNet50, 32),
       "ResNet50V2": (A.ResNet50V2, 32), "ResNet101": (A.ResNet101, 32),
       "MobileNet": (A.MobileNet, 32), "MobileNetV2": (A.MobileNetV2, 32),
       "MobileNetV3Small": (A.MobileNetV3Small, 32), "DenseNet121": (A.DenseNet121, 32),
       "InceptionV3": (A.InceptionV3, 75), "InceptionResNetV2": (A.InceptionResNetV2, 75),
       "Xception": (A.Xception, 71), "EfficientNetB0": (A.EfficientNetB0, 32),
       "EfficientNetV2B0": (A.EfficientNetV2B0, 32), "ConvNeXtTiny": (A.ConvNeXtTiny, 32),
       "NASNetMobile": (A.NASNetMobile, 32)}
METHODS = ("lrp.epsilon", "lrp.epsilon_gamma_box")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=None, help="network names")
    args = parser.parse_args()
    names = args.only or list(ZOO)
    print(f"batch {args.batch}, {os.cpu_count()} CPUs, median of {args.repeats} interleaved "
          "runs; build in s, ratio = LRP time / gradient time")
    header = f"{'network':<18} {'input':>5} {'grad ms':>8}"
    for m in METHODS:
        header += f" {m + ' build':>27} {'ratio':>6}"
    print(header)
    for name in names:
        fn, size = ZOO[name]
        keras.utils.set_random_seed(0)
        model = fn(weights=None, input_shape=(size, size, 3), classes=10)
        x = np.random.default_rng(0).uniform(0, 255, (args.batch, size, size, 3)).astype(
            "float32")
        medians, builds = time_against_gradient(model, x, METHODS, args.repeats)
        t_grad = medians["tf.GradientTape gradient"]
        row = f"{name:<18} {size:>5} {t_grad * 1e3:>8.1f}"
        for method in METHODS:
            row += f" {builds[method]:>27.2f} {medians[method] / t_grad:>6.2f}"
        print(row, flush=True)
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
