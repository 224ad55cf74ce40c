"""Time the gradient family against one input gradient: SmoothGrad with n samples and
IntegratedGradients with s steps should cost about n and s gradients (one batched graph, no
Python loop), and deconvnet / guided backprop about one.

    python benchmarks/bench_gradients.py [--batch 8] [--size 32] [--repeats 7]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_engine import GRADIENT, time_against_gradient, vgg_setup  # noqa: E402

METHODS = {"gradient": {}, "deconvnet": {}, "guided_backprop": {},
           "smoothgrad": {"augment_by_n": 16}, "integrated_gradients": {"steps": 16}}


def main() -> None:
    args, model, x = vgg_setup(__doc__.splitlines()[0], batch=8, size=32, repeats=7)
    medians, builds = time_against_gradient(model, x, METHODS, args.repeats)
    t_grad = medians[GRADIENT]
    print(f"vgg_like {args.size}x{args.size}x3, batch {args.batch}, {os.cpu_count()} CPUs, "
          f"median of {args.repeats} interleaved runs")
    print(f"{'method':<26} {'samples':>7} {'median ms':>10} "
          f"{'÷ gradient':>11} {'÷ per sample':>13}")
    for name, t in medians.items():
        n = next(iter(METHODS.get(name, {}).values()), 1)
        print(f"{name:<26} {n:>7} {t * 1e3:>10.1f} {t / t_grad:>11.2f} {t / t_grad / n:>13.2f}")


if __name__ == "__main__":
    main()
