"""keras-lrp's metrics against Quantus 0.6's, in wall time, on the same model, data and relevance.

The model is the shipped digits CNN (Quantus gets its PyTorch twin, tools/quantus_reference/
twin.py, with the same weights); the data are the 16 digits of tests/data/quantus/inputs.npz
tiled to N samples; the relevance is LRP-ε's (``a_epsilon``); the explainer of the metrics that
explain again is the gradient (keras-lrp's ``gradient`` analyzer, the twin's autograd gradient:
the same numbers). Each side runs each metric once to warm up, then ``--repeats`` times; the
table gives the median wall times and their ratio (Quantus ÷ keras-lrp).

Quantus runs in its own environment, as a subprocess of this script, never in keras-lrp's:

    python3 -m venv /tmp/quantus && /tmp/quantus/bin/pip install torch==2.13.0 "quantus==0.6.*"
    .venv/bin/python benchmarks/bench_metrics.py --quantus-python /tmp/quantus/bin/python

Both sides run on ``--threads`` CPU threads (default 1: OMP/MKL, TensorFlow's op pools and
torch's, set through the environment of each side's process), so that neither wins by taking
more of a shared machine; compare ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUTS = os.path.join(ROOT, "tests", "data", "quantus", "inputs.npz")

#: metric class name (the same in both libraries) → (shared keyword arguments, explains again)
CASES = {
    "PixelFlipping": ({"features_in_step": 1, "perturb_baseline": "black"}, False),
    "ROAD": ({"noise": 0.01}, False),
    "MaxSensitivity": ({"nr_samples": 20, "lower_bound": 0.2}, True),
}


def _median_time(fn, repeats: int) -> float:
    fn()  # warm up: builds, traces, compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _data(n: int) -> dict:
    with np.load(INPUTS) as d:
        data = {k: d[k] for k in d.files}
    reps = -(-n // len(data["x"]))
    for key in ("x", "y", "a_epsilon"):
        data[key] = np.concatenate([data[key]] * reps)[:n]
    return data


def keras_side(n: int, repeats: int) -> dict:
    """Median seconds per metric for keras-lrp."""
    sys.path.insert(0, ROOT)
    import keras

    import keras_lrp
    from keras_lrp import metrics

    d = _data(n)
    model = keras.models.load_model(os.path.join(ROOT, "keras_lrp", "demos", "models",
                                                 "digits_cnn.keras"))
    explain = keras_lrp.create_analyzer("gradient", model, neuron_selection_mode="index")
    out = {}
    for name, (kwargs, again) in CASES.items():
        metric = getattr(metrics, name)(**kwargs)
        extra = {"explain": explain} if again else {}
        out[name] = _median_time(functools.partial(metric, model, d["x"], d["y"],
                                                   a=d["a_epsilon"], **extra), repeats)
    return out


def quantus_side(n: int, repeats: int) -> dict:
    """Median seconds per metric for Quantus (run in Quantus' environment)."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "quantus_reference"))
    import quantus
    import torch
    import twin

    torch.set_num_threads(int(os.environ.get("TORCH_NUM_THREADS", "1")))

    d = _data(n)
    model = twin.twin(d)
    x, a = twin.nchw(d["x"]), twin.nchw(d["a_epsilon"])
    out = {}
    for name, (kwargs, again) in CASES.items():
        metric = getattr(quantus, name)(**kwargs, disable_warnings=True)
        extra = {"explain_func": twin.explain_gradient} if again else {}
        out[name] = _median_time(functools.partial(metric, model, x, d["y"], a_batch=a,
                                                   channel_first=True, device="cpu", **extra),
                                 repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantus-python", default="/tmp/quantus/bin/python")
    parser.add_argument("--n", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per side")
    parser.add_argument("--side", choices=("keras", "quantus"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # one side, as a subprocess: prints JSON
        side = keras_side if args.side == "keras" else quantus_side
        print(json.dumps({str(n): side(n, args.repeats) for n in args.n}))
        return
    results = {}
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads,
           "TORCH_NUM_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for side, python in (("keras", sys.executable), ("quantus", args.quantus_python)):
        with tempfile.TemporaryFile("w+") as log:
            proc = subprocess.run([python, os.path.abspath(__file__), "--side", side, "--n",
                                   *map(str, args.n), "--repeats", str(args.repeats)],
                                  stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, env=env)
            if proc.returncode:
                log.seek(0)
                sys.exit(f"the {side} side failed:\n{log.read()[-3000:]}")
        results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'metric':<16} {'N':>5} {'keras-lrp s':>12} {'Quantus s':>10} {'ratio':>7}")
    for n in map(str, args.n):
        for name in CASES:
            ours, theirs = results["keras"][n][name], results["quantus"][n][name]
            print(f"{name:<16} {n:>5} {ours:>12.3f} {theirs:>10.3f} {theirs / ours:>7.1f}")


if __name__ == "__main__":
    main()
