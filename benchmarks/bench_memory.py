"""Memory of streaming analyses and of building many analyzers, on the shipped digits CNN.

(a) Peak resident memory (VmHWM from /proc/self/status, Linux) of a streaming analysis:
    ``iter_analyze(x, batch_size=100)`` written batch by batch to HDF5 with
    :class:`keras_lrp.io.RelevanceWriter`, for 100 and for 10,000 samples (the 360 test digits of
    ``keras_lrp/demos/models/digits_test.npz`` tiled). Each measurement runs in a fresh
    subprocess, so one measurement's peak cannot hide another's. For contrast, the same 10,000
    samples analysed in one shot (``analyze(x)``, no ``batch_size``) are measured too.
(b) Building 200 analyzers in one process, each used once (one batch of 32) and then dropped,
    as a user rebuilding analyzers in a loop would: resident memory (VmRSS after gc.collect())
    and the median build and first-analysis times of every block of 20. keras.backend.clear_session
    is *not* called: that is what a user does not do.

    python benchmarks/bench_memory.py [--analyzer lrp.alpha_2_beta_1] [--builds 200]

Prints two tables; the numbers depend on the machine (TensorFlow's own allocations dominate).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "keras_lrp", "demos", "models", "digits_cnn.keras")
DATA = os.path.join(ROOT, "keras_lrp", "demos", "models", "digits_test.npz")


def status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM: peak resident, VmRSS: resident), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _setup(analyzer_name: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import keras
    import numpy as np

    import keras_lrp

    model = keras.models.load_model(MODEL)
    x = np.load(DATA)["x"]
    return keras_lrp, model, x, keras_lrp.create_analyzer(analyzer_name, model)


def child_stream(samples: int, analyzer_name: str, mode: str) -> dict:
    """One measurement (run in a subprocess): peak memory of one analysis of ``samples``."""
    import numpy as np

    keras_lrp, model, digits, analyzer = _setup(analyzer_name)
    from keras_lrp.io import RelevanceWriter, metadata_for

    x = np.resize(digits, (samples,) + digits.shape[1:])  # the test digits, tiled
    analyzer.analyze(x[:100])  # trace once, so that the baseline includes the compiled function
    baseline = status_mb("VmHWM")
    start = time.perf_counter()
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "relevance.h5")
        with RelevanceWriter(path, metadata_for([analyzer], model)) as out:
            if mode == "stream":
                for inputs, relevance in analyzer.iter_analyze(x, batch_size=100):
                    out.append(analyzer.name, relevance, inputs=inputs)
                    rows += len(relevance)
            else:  # one shot: every sample through the model at once, then written
                relevance = analyzer.analyze(x)
                out.append(analyzer.name, relevance, inputs=x)
                rows = len(relevance)
        size = os.path.getsize(path)
    return {"samples": samples, "mode": mode, "rows": rows, "baseline_mb": baseline,
            "peak_mb": status_mb("VmHWM"), "seconds": time.perf_counter() - start,
            "file_mb": size / 2 ** 20}


def child_builds(builds: int, analyzer_name: str) -> dict:
    """Build ``builds`` analyzers in this process; RSS and times after every 20."""
    keras_lrp, model, digits, _ = _setup(analyzer_name)
    batch = digits[:32]
    rows, build_t, first_t = [], [], []
    gc.collect()
    rows.append({"built": 0, "rss_mb": status_mb("VmRSS"), "build_ms": None, "first_ms": None})
    for i in range(1, builds + 1):
        start = time.perf_counter()
        analyzer = keras_lrp.create_analyzer(analyzer_name, model)
        middle = time.perf_counter()
        analyzer.analyze(batch)
        build_t.append(middle - start)
        first_t.append(time.perf_counter() - middle)
        del analyzer  # dropped, as a loop rebinding the name would
        if i % 20 == 0:
            gc.collect()
            rows.append({"built": i, "rss_mb": status_mb("VmRSS"),
                         "build_ms": 1e3 * statistics.median(build_t[-20:]),
                         "first_ms": 1e3 * statistics.median(first_t[-20:])})
    return {"rows": rows, "peak_mb": status_mb("VmHWM")}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--analyzer", default="lrp.alpha_2_beta_1")
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind = args.child[0]
        result = (child_stream(int(args.child[1]), args.analyzer, args.child[2])
                  if kind == "stream" else child_builds(int(args.child[1]), args.analyzer))
        print(json.dumps(result))
        return

    print(f"(a) streaming {args.analyzer} on digits_cnn, batch_size 100, HDF5 via "
          "RelevanceWriter; one subprocess per row")
    print(f"{'samples':>8} {'how':>9} {'baseline MiB':>13} {'peak MiB':>9} {'peak - base':>12} "
          f"{'seconds':>8} {'file MiB':>9}")
    results = {}
    for samples, mode in ((100, "stream"), (10_000, "stream"), (10_000, "one-shot")):
        r = run_child("stream", str(samples), mode, "--analyzer", args.analyzer)
        assert r["rows"] == samples, r
        results[(samples, mode)] = r
        print(f"{samples:>8} {mode:>9} {r['baseline_mb']:>13.1f} {r['peak_mb']:>9.1f} "
              f"{r['peak_mb'] - r['baseline_mb']:>12.1f} {r['seconds']:>8.2f} "
              f"{r['file_mb']:>9.2f}")
    small, large = results[(100, "stream")], results[(10_000, "stream")]
    print(f"peak ratio, streaming 10,000 / 100 samples: {large['peak_mb'] / small['peak_mb']:.3f} "
          f"(input data alone: {10_000 * 64 * 4 / 2 ** 20:.2f} MiB for 10,000 samples)")

    print(f"\n(b) {args.builds} x create_analyzer({args.analyzer!r}) + one analysis of 32 "
          "digits, each dropped; no clear_session; one process")
    b = run_child("builds", str(args.builds), "--analyzer", args.analyzer)
    print(f"{'built':>6} {'RSS MiB':>8} {'build ms':>9} {'1st analysis ms':>16}   (medians of "
          "the last 20)")
    for row in b["rows"]:
        build = "-" if row["build_ms"] is None else f"{row['build_ms']:.1f}"
        first = "-" if row["first_ms"] is None else f"{row['first_ms']:.1f}"
        print(f"{row['built']:>6} {row['rss_mb']:>8.1f} {build:>9} {first:>16}")
    rows = b["rows"]
    grow = rows[-1]["rss_mb"] - rows[1]["rss_mb"]
    print(f"RSS from {rows[1]['built']} to {rows[-1]['built']} analyzers: {grow:+.1f} MiB "
          f"({grow / (rows[-1]['built'] - rows[1]['built']) * 1024:+.0f} KiB per analyzer); "
          f"build time {rows[1]['build_ms']:.1f} -> {rows[-1]['build_ms']:.1f} ms; "
          f"peak {b['peak_mb']:.1f} MiB")


if __name__ == "__main__":
    main()
