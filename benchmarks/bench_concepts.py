"""Concept Relevance Propagation's cost: C conditional heatmaps in one batched pass against C
separate analyses, in wall time on the CPU (issue 31's aim: C conditions cost at most
1 + 0.1·C analyses' worth).

On the shipped digits CNN with ``lrp.epsilon_plus_flat`` and the first N digits of its test set,
each condition c explains output c mod 10 through channel c mod 16 of ``conv2``. Timed, as
medians of ``--repeats`` runs after one warm-up run (which builds and compiles):

* **one analysis**: ``analyzer.analyze(x)``, the plain LRP heatmaps of the N digits;
* **one pass**: ``Conditional.attribute(x, conditions)`` with the C conditions at once;
* **C calls**: C calls ``Conditional.attribute(x, [condition])``, one condition (its own mask)
  each, on the same compiled program.

The table gives the times and the ratios time(one pass) / time(one analysis) (the aim:
≤ 1 + 0.1·C) and time(C calls) / time(one pass). Relevance maximisation
(``relevance_maximization`` on ``conv2`` and ``conv3``, RelMax and ActMax with their per-class
tables, batches of 64) over ``--relmax-samples`` digits is timed against the N analyses it
replaces (``analyzer.analyze`` of the same digits in the same batches).

    .venv/bin/python benchmarks/bench_concepts.py [--samples 16] [--conditions 4 16 64]

Measured (one run each, a shared 2-core CPU, 16 samples; pass/analysis for C = 4, 16, 64):
TensorFlow 1.37, 2.22, 6.21 (the aim met; C calls 2.9–8.2× one pass); PyTorch 0.81, 1.39,
2.00 (met; C calls 3.5–12×); JAX 2.99, 10.3, 72 (not met; C calls 1.4, 1.3, 0.8× one pass).
A conditional heatmap needs its own reverse pass, so one pass of C conditions does C reverse
passes' arithmetic: it costs about 1 + 0.1·C analyses only where an analysis is dominated by
per-call overhead (TensorFlow's and PyTorch's dispatch on this small CNN), not where it is
compute bound (JAX's compiled 0.8 ms analysis, whose cost grows with the rows).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    fn()  # warm up: builds, traces, compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(samples: int = 16, counts=(4, 16, 64), repeats: int = 5, layer: str = "conv2"):
    """{C: {"analysis", "one pass", "C calls"} seconds} (module docstring)."""
    import keras

    import keras_lrp
    from keras_lrp.concepts import Conditional
    from keras_lrp.demos.common import MODELS_DIR

    model = keras.models.load_model(MODELS_DIR / "digits_cnn.keras")
    x = np.load(MODELS_DIR / "digits_test.npz")["x"][:samples]
    analyzer = keras_lrp.create_analyzer("lrp.epsilon_plus_flat", model)
    crp = Conditional(analyzer)
    channels = crp.channels(layer)
    analysis = _median_time(lambda: analyzer.analyze(x), repeats)
    out = {}
    for c in counts:
        conds = [{"y": k % 10, layer: [k % channels]} for k in range(c)]
        one = _median_time(lambda conds=conds: crp.attribute(x, conds), repeats)
        calls = _median_time(lambda conds=conds: [crp.attribute(x, [cond]) for cond in conds],
                             max(1, repeats // 2))
        out[c] = {"analysis": analysis, "one pass": one, "C calls": calls}
    return out


def run_relmax(samples: int = 360, repeats: int = 3, layers=("conv2", "conv3")):
    """(seconds of relevance maximisation, seconds of the N plain analyses)."""
    import keras

    import keras_lrp
    from keras_lrp.concepts import Conditional, relevance_maximization
    from keras_lrp.demos.common import MODELS_DIR

    model = keras.models.load_model(MODELS_DIR / "digits_cnn.keras")
    x = np.load(MODELS_DIR / "digits_test.npz")["x"][:samples]
    analyzer = keras_lrp.create_analyzer("lrp.epsilon_plus_flat", model)
    crp = Conditional(analyzer)
    relmax = _median_time(lambda: relevance_maximization(crp, x, list(layers), batch_size=64),
                          repeats)
    analyses = _median_time(lambda: analyzer.analyze(x, batch_size=64), repeats)
    return relmax, analyses


def table(results, samples: int) -> str:
    lines = [f"digits CNN, lrp.epsilon_plus_flat, {samples} samples, conditions on conv2 "
             f"(keras {__import__('keras').__version__}, backend "
             f"{__import__('keras').backend.backend()})",
             f"{'C':>4} {'analysis ms':>12} {'one pass ms':>12} {'C calls ms':>12} "
             f"{'pass/analysis':>14} {'aim 1+0.1C':>11} {'calls/pass':>11}"]
    for c, r in results.items():
        lines.append(f"{c:>4} {1e3 * r['analysis']:>12.1f} {1e3 * r['one pass']:>12.1f} "
                     f"{1e3 * r['C calls']:>12.1f} {r['one pass'] / r['analysis']:>14.2f} "
                     f"{1 + 0.1 * c:>11.1f} {r['C calls'] / r['one pass']:>11.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--conditions", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--relmax-samples", type=int, default=360)
    args = parser.parse_args()
    print(table(run(args.samples, args.conditions, args.repeats), args.samples))
    relmax, analyses = run_relmax(args.relmax_samples)
    print(f"relevance maximisation over {args.relmax_samples} digits (conv2, conv3): "
          f"{1e3 * relmax:.1f} ms; their {args.relmax_samples} analyses: {1e3 * analyses:.1f} ms;"
          f" ratio {relmax / analyses:.2f}")


if __name__ == "__main__":
    main()
