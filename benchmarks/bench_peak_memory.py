"""Peak memory of one analysis against the input gradient (issue 12): VGG16, 224×224, batch 16.

Each method runs in a fresh subprocess: build the model and the analyzer (or the compiled
gradient), run it once on one sample (tracing, allocator warm-up), then reset the peak counters
and run the batch. Two measures of the extra memory of the analysis:

* **live tensors** (the one to read): the subprocess runs with TensorFlow's BFC allocator on the
  CPU (``TF_CPU_ALLOCATOR_USE_BFC=true``), which counts the bytes of live tensors; the measure
  is its peak during the batch minus what was held before it;
* **resident size**: the new peak of the process' resident set (``/proc/self/clear_refs``,
  Linux) minus the resident size before the batch. It depends on which pages the allocator
  had touched already, and moves 10–15 % from run to run.

On a GPU the same script also reads TensorFlow's device memory peak.

    python benchmarks/bench_peak_memory.py [--net VGG16] [--size 224] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

METHODS = ["gradient", "lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.epsilon_gamma_box",
           "lrp.z_plus"]


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(net: str, size: int, batch: int, method: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf
    from bench_speed import gradient_fn, network

    import keras_lrp

    model = network(net, size)
    x = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    if method == "gradient":
        grad = gradient_fn(model, x.shape[1:], False)
        run = lambda data: grad(data).numpy()  # noqa: E731
    else:
        analyzer = keras_lrp.create_analyzer(method, model)
        run = analyzer.analyze
    run(x[:1])
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    bfc = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") == "true"
    if bfc:
        tf.config.experimental.reset_memory_stats("CPU:0")
        held = tf.config.experimental.get_memory_info("CPU:0")["current"]
    before = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    run(x)
    peak = _status_mib("VmHWM")
    out = {"method": method, "extra_mib": peak - before, "rss_before_mib": before}
    if bfc:  # TensorFlow's own count: the peak of live tensors above those held before
        out["bfc_extra_mib"] = (tf.config.experimental.get_memory_info("CPU:0")["peak"]
                                - held) / 2 ** 20
    if gpu:
        out["gpu_peak_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    del keras
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="VGG16")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.net, args.size, args.batch, args.one)))
        return
    rows = []
    for method in METHODS:
        proc = subprocess.run([sys.executable, __file__, "--net", args.net, "--size",
                               str(args.size), "--batch", str(args.batch), "--one", method],
                              capture_output=True, text=True, cwd=os.path.dirname(__file__),
                              env={**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true"})
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    live, rss = rows[0]["bfc_extra_mib"], rows[0]["extra_mib"]
    print(f"{args.net} {args.size}x{args.size}, batch {args.batch}: peak memory of one batch "
          "above what was held before it (MiB)")
    print(f"  {'method':<24} {'live tensors':>12} {'÷ gradient':>10} {'resident':>9} "
          f"{'÷ gradient':>10}")
    for row in rows:
        print(f"  {row['method']:<24} {row['bfc_extra_mib']:12.0f} "
              f"{row['bfc_extra_mib'] / live:10.2f} {row['extra_mib']:9.0f} "
              f"{row['extra_mib'] / rss:10.2f}"
              + (f"   GPU peak {row['gpu_peak_mib']:.0f}" if "gpu_peak_mib" in row else ""))


if __name__ == "__main__":
    main()
