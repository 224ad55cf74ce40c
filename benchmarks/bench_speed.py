"""Issue-12 speed table: LRP analyzers against a plain input gradient on keras.applications
networks, with and without XLA, the build times, and where the time goes per layer type.

For each network (random weights; nothing is downloaded) and batch: the median time of each
analyzer and of a compiled tf.GradientTape input gradient, timed round-robin in one run, their
ratio, the same with ``jit_compile=True`` (against an XLA-compiled gradient), and the build time.
``--profile NAME`` adds a breakdown for analyzer NAME: every relevance layer is timed alone on
its recorded inputs, and the times are summed by (forward layer type, relevance layer).

    python benchmarks/bench_speed.py [--net VGG16 --size 64 --batch 8] [--repeats 7]
        [--no-jit] [--profile lrp.alpha_2_beta_1] [--build-only InceptionResNetV2]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_engine import interleaved_medians  # noqa: E402

import keras_lrp  # noqa: E402
from keras_lrp.layers.base import RelevanceLayer  # noqa: E402

METHODS = ["lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.epsilon_gamma_box", "lrp.z_plus",
           "deep_taylor"]


def network(name: str, size: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))


def gradient_fn(model, shape, jit: bool):
    forward = keras_lrp.create_analyzer("gradient", model).forward_model

    @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(shape), tf.float32)],
                 jit_compile=jit)
    def gradient(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            target = tf.reduce_sum(tf.reduce_max(forward(inputs, training=False), axis=-1))
        return tape.gradient(target, inputs)
    return gradient


def profile(analyzer, x, repeats: int = 5):
    """{(forward layer type, relevance layer): seconds per batch}, each layer timed alone."""
    model = analyzer.relevance_model
    layers = [layer for layer in model.layers if isinstance(layer, RelevanceLayer)]
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    inputs = probe(x if len(model.inputs) == 1 else [x], training=False)
    totals = collections.defaultdict(float)
    for layer, args in zip(layers, inputs):
        fn = tf.function(lambda a, layer=layer: layer(a))
        fn(args)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn(args)
            np.asarray(out[0] if isinstance(out, (list, tuple)) else out)
            times.append(time.perf_counter() - start)
        target = type(getattr(layer, "layer", None)).__name__
        totals[(target, repr(layer).split("(")[0])] += statistics.median(times)
    return totals


@contextlib.contextmanager
def build_phases():
    """Seconds spent in each phase of building an analyzer: canonize (extract and clone),
    replay (the forward graph), reverse (the relevance layers, symbolically), trace (the
    TensorFlow graph of the analysis, made at build time so that shape errors surface there)."""
    from keras_lrp.analyzers import LRP, Analyzer

    phases = collections.OrderedDict()
    originals = {}

    def timed(cls, attr, label):
        original = getattr(cls, attr)
        originals[(cls, attr)] = original

        def wrapper(self, *a, **k):
            start = time.perf_counter()
            try:
                return original(self, *a, **k)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - start
        setattr(cls, attr, wrapper)

    timed(Analyzer, "prepare_graph", "canonize")
    timed(Analyzer, "trace_forward", "replay")
    timed(LRP, "build", "reverse")
    timed(Analyzer, "_make_models", "models")
    original_function = Analyzer._function

    def function(self, layerwise):
        fn = original_function(self, layerwise)
        return _TracedTimer(fn, phases)
    Analyzer._function = function
    try:
        yield phases
    finally:
        Analyzer._function = original_function
        for (cls, attr), original in originals.items():
            setattr(cls, attr, original)


class _TracedTimer:
    def __init__(self, fn, phases):
        self.fn, self.phases = fn, phases

    def get_concrete_function(self, *a, **k):
        start = time.perf_counter()
        try:
            return self.fn.get_concrete_function(*a, **k)
        finally:
            self.phases["trace"] = self.phases.get("trace", 0.0) + time.perf_counter() - start

    def __call__(self, *a, **k):
        return self.fn(*a, **k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="VGG16")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-jit", action="store_true")
    parser.add_argument("--profile", default=None, metavar="NAME")
    parser.add_argument("--build-only", default=None, metavar="NET")
    args = parser.parse_args()
    if args.build_only:
        model = network(args.build_only, max(args.size, 75))
        keras_lrp.create_analyzer("gradient", model)  # warm-up: TensorFlow's first tracing
        for name in METHODS:
            with build_phases() as phases:
                start = time.perf_counter()
                keras_lrp.create_analyzer(name, model)
                total = time.perf_counter() - start
            parts = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
            print(f"{args.build_only} build {name:<24} {total:.2f} s ({parts})")
        return
    model = network(args.net, args.size)
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(
        "float32")
    fns, builds, analyzers = {}, {}, {}
    for jit in ([False] if args.no_jit else [False, True]):
        tag = " (XLA)" if jit else ""
        grad = gradient_fn(model, x.shape[1:], jit)
        fns["gradient" + tag] = lambda g=grad: g(x).numpy()
        for name in METHODS:
            start = time.perf_counter()
            analyzers[name + tag] = keras_lrp.create_analyzer(name, model, jit_compile=jit)
            builds[name + tag] = time.perf_counter() - start
            fns[name + tag] = lambda a=analyzers[name + tag]: a.analyze(x)
    medians = interleaved_medians(fns, args.repeats)
    print(f"{args.net} {args.size}x{args.size}, batch {args.batch}, {os.cpu_count()} CPUs, "
          f"median of {args.repeats} interleaved runs")
    print(f"{'method':<30} {'build s':>8} {'median ms':>10} {'÷ gradient':>11}")
    for name, t in medians.items():
        ref = medians["gradient (XLA)" if name.endswith("(XLA)") else "gradient"]
        build = f"{builds[name]:.2f}" if name in builds else ""
        print(f"{name:<30} {build:>8} {t * 1e3:>10.1f} {t / ref:>11.2f}")
    if args.profile:
        totals = profile(analyzers[args.profile], x)
        whole = sum(totals.values())
        print(f"\n{args.profile}: relevance layers timed alone, by (layer type, relevance layer); "
              f"sum {whole * 1e3:.1f} ms (the forward pass and the start relevance excluded)")
        for key, t in sorted(totals.items(), key=lambda kv: -kv[1]):
            if t / whole >= 0.005:
                print(f"  {key[0]:<26} {key[1]:<26} {t * 1e3:8.1f} ms {100 * t / whole:5.1f} %")


if __name__ == "__main__":
    main()
