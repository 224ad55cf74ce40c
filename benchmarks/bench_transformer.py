"""Time AttnLRP and CP-LRP through a small Vision-Transformer-like network against one input
gradient (issue 11's speed check; core Keras layers only, no keras-hub).

Patches of an image (a strided Conv2D) → ``--layers`` post-LN blocks of MultiHeadAttention and a
GELU MLP → mean over tokens → Dense.

    python benchmarks/bench_transformer.py [--layers 4] [--batch 32] [--size 32] [--patch 4]
        [--dim 64] [--heads 4] [--repeats 7] [--shipped | --hub]

``--shipped`` times the shipped ViT (keras_lrp/demos/models/digits_vit.keras) on the first test
digits instead;
``--hub`` times keras-hub's ``ViTBackbone`` (the same sizes, random weights; keras-hub is a test
extra) with a Dense head on the class token.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from bench_engine import time_against_gradient  # noqa: E402

L = keras.layers


def vit_like(size, patch, dim, heads, layers, classes=10):
    keras.utils.set_random_seed(0)
    i = keras.Input((size, size, 3))
    x = L.Conv2D(dim, patch, strides=patch)(i)
    x = L.Reshape(((size // patch) ** 2, dim))(x)
    for _ in range(layers):
        a = L.MultiHeadAttention(heads, dim // heads)(x, x)
        x = L.LayerNormalization()(L.Add()([x, a]))
        f = L.Dense(2 * dim)(L.Dense(2 * dim, activation="gelu")(x))
        x = L.LayerNormalization()(L.Add()([x, L.Dense(dim)(f)]))
    return keras.Model(i, L.Dense(classes)(L.GlobalAveragePooling1D()(x)))


def hub_vit(size, patch, dim, heads, layers, classes=10):
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(image_shape=(size, size, 3), patch_size=patch,
                                            num_layers=layers, num_heads=heads, hidden_dim=dim,
                                            mlp_dim=2 * dim)
    i = keras.Input((size, size, 3))
    return keras.Model(i, L.Dense(classes)(backbone(i)[:, 0, :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("layers", 4), ("batch", 32), ("size", 32), ("patch", 4), ("dim", 64),
                          ("heads", 4), ("repeats", 7)):
        parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--shipped", action="store_true")
    parser.add_argument("--hub", action="store_true")
    args = parser.parse_args()
    if args.shipped:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "keras_lrp", "demos",
                            "models")
        model = keras.models.load_model(os.path.join(root, "digits_vit.keras"))
        x = np.load(os.path.join(root, "digits_test.npz"))["x"][:args.batch]
        title = f"the shipped digits_vit, batch {len(x)}"
    else:
        build = hub_vit if args.hub else vit_like
        model = build(args.size, args.patch, args.dim, args.heads, args.layers)
        x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype(
            "float32")
        kind = "keras-hub ViTBackbone" if args.hub else "ViT-like"
        title = (f"{kind}: {args.layers} blocks, {(args.size // args.patch) ** 2} tokens of "
                 f"{args.dim}, {args.heads} heads, batch {args.batch}")
    methods = {"lrp.z": {}, "lrp.epsilon": {}, "input_t_gradient": {}}
    medians, builds = time_against_gradient(model, x, methods, args.repeats)
    cp, cp_builds = time_against_gradient(model, x, {"lrp.z": {"attention": "cp"}}, args.repeats)
    t_grad = medians["tf.GradientTape gradient"]
    print(f"{title}, {os.cpu_count()} CPUs, median of {args.repeats} interleaved runs")
    print(f"{'method':<32} {'build s':>8} {'median ms':>10} {'÷ gradient':>11}")
    rows = [(n + (" (AttnLRP)" if n.startswith("lrp") else ""), t, builds.get(n))
            for n, t in medians.items()]
    rows.append(("lrp.z (CP-LRP)", cp["lrp.z"] * t_grad / cp["tf.GradientTape gradient"],
                 cp_builds["lrp.z"]))
    for name, t, build in rows:
        b = f"{build:.2f}" if build else ""
        print(f"{name:<32} {b:>8} {t * 1e3:>10.1f} {t / t_grad:>11.2f}")


if __name__ == "__main__":
    main()
