#!/usr/bin/env bash
# On the lent device machine (JAX + CUDA, no TensorFlow), from the repository root:
#   run: bash benchmarks/gpu/run.sh        (carry: shared/wheels, holding keras' wheel and the
#   pure-Python dependencies JAX lacks: pip download keras namex optree rich --dest shared/wheels)
# Installs keras from the carried wheels into a throw-away venv that sees the machine's JAX,
# then runs bench_gpu.py on keras-lrp from this checkout. Budget: under 8 minutes.
set -euo pipefail
venv=/tmp/keras-lrp-gpu
python3 -m venv --system-site-packages "$venv"
"$venv/bin/pip" install -q --no-index --find-links shared/wheels keras
KERAS_BACKEND=jax PYTHONPATH="$PWD" timeout 480 "$venv/bin/python" benchmarks/gpu/bench_gpu.py "$@"
