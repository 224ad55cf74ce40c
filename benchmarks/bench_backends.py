"""``bench_engine.py`` on TensorFlow, JAX and PyTorch in one run, one process per backend (a
Keras backend is chosen once per process), each with its own Python environment.

    python benchmarks/bench_backends.py --python tensorflow=.venv/bin/python \\
        --python jax=/path/venv-jax/bin/python --python torch=/path/venv-torch/bin/python \\
        [-- --batch 32 --size 64 --repeats 15]

Each environment needs keras-lrp importable (installed, or this checkout on PYTHONPATH). The
backends run one after the other, so they do not compete for the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], metavar="BACKEND=PYTHON",
                        help="a backend and the Python that has it (repeatable; default: this "
                        "Python on each of tensorflow, jax and torch)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for bench_engine.py")
    args = parser.parse_args()
    pairs = [p.split("=", 1) for p in args.python] or [
        [b, sys.executable] for b in ("tensorflow", "jax", "torch")]
    rest = [a for a in args.rest if a != "--"]
    path = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    failed = 0
    for backend, python in pairs:
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run([python, str(HERE / "bench_engine.py"), *rest], env=env)
        failed |= proc.returncode != 0
        print(flush=True)
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
