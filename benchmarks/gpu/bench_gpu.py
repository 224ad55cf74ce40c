"""LRP against a jitted input gradient on a GPU, with JAX (no TensorFlow needed).

Prepared for the lent device machine (JAX with CUDA, PyTorch, no TensorFlow): ``run.sh`` beside
this file installs the carried keras wheel and runs it. Reports, per model (random weights, no
download): the median seconds per batch of a jitted input gradient and of each analyzer, their
ratio, images per second, and JAX's peak device memory after each method (JAX cannot reset its
peak counter, so methods run in increasing expected memory and each figure is the peak so far).

    KERAS_BACKEND=jax python benchmarks/gpu/bench_gpu.py [--batch 64] [--size 224] [--repeats 10]
    KERAS_BACKEND=jax python benchmarks/gpu/bench_gpu.py --smoke    # tiny sizes, on a CPU

Aims (issue 19): ε ≤ 1.1×, αβ and γ ≤ 2.6× (their two-pass floor is 2.5×), memory ≤ 2×.
A Llama-architecture model is not in the table: keras-hub's LLMs are not supported yet (issue 20).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import keras
import numpy as np

import keras_lrp

CNN_METHODS = ["lrp.epsilon", "lrp.z_plus", "lrp.alpha_2_beta_1", "lrp.epsilon_gamma_box"]
VIT_METHODS = {"AttnLRP (lrp.epsilon)": ("lrp.epsilon", {}),
               "CP-LRP (lrp.epsilon)": ("lrp.epsilon", {"attention": "cp"})}


def vit(size: int, patch: int, dim: int, depth: int, heads: int, classes: int = 1000):
    """A ViT-B/16-shaped classifier from Keras layers (ViT-B/16: 224, 16, 768, 12, 12)."""
    x = inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(dim, patch, strides=patch)(x)
    x = keras.layers.Reshape(((size // patch) ** 2, dim))(x)
    for _ in range(depth):
        h = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        x = x + keras.layers.MultiHeadAttention(heads, dim // heads)(h, h)
        h = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        h = keras.layers.Dense(4 * dim, activation="gelu")(h)
        x = x + keras.layers.Dense(dim)(h)
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(inputs, keras.layers.Dense(classes)(x), name="vit_b16_like")


def jitted_gradient(analyzer):
    forward = analyzer.forward_model
    trainable = [v.value for v in forward.trainable_variables]
    fixed = [v.value for v in forward.non_trainable_variables]

    def target(x, trainable, fixed):
        logits, _ = forward.stateless_call(trainable, fixed, x, training=False)
        return jax.numpy.sum(jax.numpy.max(logits, axis=-1))

    grad = jax.jit(jax.grad(target))
    return lambda x: np.asarray(grad(x, trainable, fixed))


def peak_bytes() -> int:
    """JAX's peak device memory so far (0 where the device keeps no statistics: the CPU)."""
    stats = jax.devices()[0].memory_stats() or {}
    return int(stats.get("peak_bytes_in_use", 0))


def _mib(m: int, m_grad: int) -> str:
    if not m_grad:
        return f"{'–':>9} {'–':>7}"
    return f"{m / 2**20:>9.0f} {m / m_grad:>7.2f}"


def median_time(fn, x, repeats: int) -> float:
    fn(x)  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(label, model, methods, batch, repeats):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch,) + tuple(model.input_shape[1:])).astype("float32")
    first = keras_lrp.create_analyzer(next(iter(methods.values()))[0], model)
    t_grad = median_time(jitted_gradient(first), x, repeats)
    m_grad = peak_bytes()
    print(f"\n{label}, batch {batch}, {jax.devices()[0].device_kind}")
    print(f"{'method':<26} {'ms':>9} {'÷ grad':>7} {'img/s':>8} {'peak MiB':>9} {'÷ grad':>7}")
    print(f"{'input gradient (jit)':<26} {t_grad * 1e3:>9.1f} {1:>7.2f} {batch / t_grad:>8.1f}"
          f" {_mib(m_grad, m_grad)}")
    for name, (method, kwargs) in methods.items():
        analyzer = keras_lrp.create_analyzer(method, model, **kwargs)
        t = median_time(lambda v, a=analyzer: a.analyze(v, batch_size=batch), x, repeats)
        m = peak_bytes()
        print(f"{name:<26} {t * 1e3:>9.1f} {t / t_grad:>7.2f} {batch / t:>8.1f}"
              f" {_mib(m, m_grad)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check on a CPU")
    args = parser.parse_args()
    assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"
    keras.utils.set_random_seed(0)
    size, batch = (32, 2) if args.smoke else (args.size, args.batch)
    cnn = {m: (m, {}) for m in CNN_METHODS}
    bench("VGG16", keras.applications.VGG16(weights=None, input_shape=(size, size, 3)), cnn,
          batch, args.repeats)
    bench("ResNet50", keras.applications.ResNet50(weights=None, input_shape=(size, size, 3)),
          cnn, batch, args.repeats)
    shape = (32, 16, 64, 2, 4) if args.smoke else (size, 16, 768, 12, 12)
    bench("ViT-B/16-sized (Keras layers)", vit(*shape), VIT_METHODS, batch, args.repeats)


if __name__ == "__main__":
    main()
