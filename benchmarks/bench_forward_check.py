"""What the build-time forward check costs: an analyzer's build with and without it, on
keras.applications' ResNet50 (random weights, 224×224) on the Keras backend in use.

The check (``keras_lrp.analyzers.verify``) runs the user's layers and the analysis' forward
model on a probe batch of two rows; only on a mismatch does it replay both graphs layer by
layer. Reports, from one run, the median build time with ``forward_check=True`` and ``False``
(interleaved, so load on the shared machine hits both alike), the median time of the check
alone on the built analyzer, and the check's share of the build; and the floor of any check
that runs the user's layers: one eager pass of the user's own layers on the same probe (the
reference alone), and its share of the build.

    python benchmarks/bench_forward_check.py [--repeats 3] [--analyzer lrp.epsilon]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_lrp  # noqa: E402
from keras_lrp.analyzers import verify  # noqa: E402
from keras_lrp.core import graph as graph_mod  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--analyzer", default="lrp.epsilon")
    args = parser.parse_args()
    model = keras.applications.ResNet50(weights=None)
    builds = {True: [], False: []}
    checks, floors = [], []
    for _ in range(args.repeats):
        for flag in (False, True):
            start = time.perf_counter()
            analyzer = keras_lrp.create_analyzer(args.analyzer, model, forward_check=flag)
            builds[flag].append(time.perf_counter() - start)
        start = time.perf_counter()
        analyzer.check_forward()
        checks.append(time.perf_counter() - start)
        probe = [keras.ops.convert_to_tensor(a)
                 for a in verify.probe_batch(analyzer.inputs, small=True)]
        start = time.perf_counter()
        graph_mod.replay_at_inference(analyzer.reference_graph, probe)
        floors.append(time.perf_counter() - start)
    on, off = statistics.median(builds[True]), statistics.median(builds[False])
    check, floor = statistics.median(checks), statistics.median(floors)
    print(f"backend {keras.backend.backend()}, ResNet50, {args.analyzer}, "
          f"{args.repeats} builds each")
    print("| build without the check | build with it | the check alone | its share of the build "
          "| the user's layers once (floor) | its share |")
    print("|---|---|---|---|---|---|")
    print(f"| {off:.2f} s | {on:.2f} s | {check:.3f} s | {100 * check / on:.1f} % "
          f"| {floor:.3f} s | {100 * floor / on:.1f} % |")


if __name__ == "__main__":
    main()
