"""Time LRP analyzers against a plain compiled input gradient on a VGG-style CNN, on the Keras
backend in use (KERAS_BACKEND: tensorflow, jax or torch).

Reports, from one run on one machine, the median time per batch of each analyzer, the median of a
compiled input gradient on the same model and batch, their ratio, and each analyzer's build time.
The gradient is the backend's own: ``tf.function`` over ``tf.GradientTape``; ``jax.jit`` over
``jax.grad`` of ``stateless_call`` (weights as arguments); eager ``torch.autograd.grad``.

    KERAS_BACKEND=jax python benchmarks/bench_engine.py [--batch 32] [--size 64] [--repeats 15]

``benchmarks/bench_backends.py`` runs it on the three backends in one go.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lrp  # noqa: E402

GRADIENT = "input gradient"

ANALYZERS = ["lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.epsilon_gamma_box", "lrp.z_plus"]


def vgg_like(size: int, classes: int = 10) -> keras.Model:
    """A small VGG: 3 blocks of two 3×3 convolutions + max pooling, then two Dense layers."""
    x = inputs = keras.Input((size, size, 3))
    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, x, name="vgg_like")


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds per call of each function, timed round-robin so that load on the shared
    machine affects every method alike."""
    for fn in fns.values():
        fn()  # warm-up: tracing and first run
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def input_gradient(model: keras.Model, sample_shape):
    """The reference: the backend's compiled gradient of the max logit w.r.t. the input, on the
    same softmax-free model the analyzers explain; returns ``x -> NumPy gradient``."""
    forward = keras_lrp.create_analyzer("gradient", model).forward_model
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(sample_shape), tf.float32)])
        def gradient(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                logits = forward(inputs, training=False)
                target = tf.reduce_sum(tf.reduce_max(logits, axis=-1))
            return tape.gradient(target, inputs)

        return lambda x: gradient(x).numpy()
    if backend == "jax":
        import jax

        trainable = [v.value for v in forward.trainable_variables]
        fixed = [v.value for v in forward.non_trainable_variables]

        def target(inputs, trainable, fixed):
            logits, _ = forward.stateless_call(trainable, fixed, inputs, training=False)
            return jax.numpy.sum(jax.numpy.max(logits, axis=-1))

        gradient = jax.jit(jax.grad(target))
        return lambda x: np.asarray(gradient(x, trainable, fixed))
    import torch

    def torch_gradient(x):
        inputs = torch.tensor(x, requires_grad=True, device=keras.ops.zeros(()).device)
        target = forward(inputs, training=False).max(dim=-1).values.sum()
        return torch.autograd.grad(target, inputs)[0].cpu().numpy()

    return torch_gradient


def time_against_gradient(model: keras.Model, x: np.ndarray, methods, repeats: int):
    """Build an analyzer per method (timed; ``methods`` may map names to keyword arguments), then
    time each analysis and the reference gradient round-robin. Returns ({method or
    GRADIENT: median s}, {method: build s})."""
    gradient = input_gradient(model, x.shape[1:])
    fns = {GRADIENT: lambda: gradient(x)}
    builds = {}
    for name in methods:
        start = time.perf_counter()
        kwargs = methods[name] if isinstance(methods, dict) else {}
        analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
        builds[name] = time.perf_counter() - start
        fns[name] = lambda a=analyzer: a.analyze(x)
    return interleaved_medians(fns, repeats), builds


def vgg_setup(description: str, batch: int, size: int, repeats: int):
    """Parse ``--batch``, ``--size`` and ``--repeats`` (with these defaults); return the
    arguments, the VGG-like model and a batch of inputs in [-1, 1]."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--size", type=int, default=size)
    parser.add_argument("--repeats", type=int, default=repeats)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = vgg_like(args.size)
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(
        "float32")
    return args, model, x


def main() -> None:
    args, model, x = vgg_setup(__doc__.splitlines()[0], batch=32, size=64, repeats=15)
    medians, builds = time_against_gradient(model, x, ANALYZERS, args.repeats)
    print_ratios(f"model vgg_like {args.size}x{args.size}x3, batch {args.batch}", medians,
                 builds, args.repeats)


def print_ratios(title: str, medians: dict, builds: dict, repeats: int) -> None:
    """The table of :func:`time_against_gradient`'s results: build time, median, ÷ gradient."""
    t_grad = medians[GRADIENT]
    print(f"{title}, Keras backend {keras.backend.backend()}, {os.cpu_count()} CPUs, median of "
          f"{repeats} interleaved runs")
    print(f"{'method':<26} {'build s':>8} {'median ms':>10} {'÷ gradient':>11}")
    for name, t in medians.items():
        build = f"{builds[name]:.2f}" if name in builds else ""
        print(f"{name:<26} {build:>8} {t * 1e3:>10.1f} {t / t_grad:>11.2f}")


if __name__ == "__main__":
    main()
