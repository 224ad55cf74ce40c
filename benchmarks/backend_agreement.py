"""How closely the three Keras backends agree: every analyzer name on the shipped models (the
same weights everywhere: package data), in float32, one process per backend.

    python benchmarks/backend_agreement.py --python tensorflow=.venv/bin/python \\
        --python jax=/path/venv-jax/bin/python --python torch=/path/venv-torch/bin/python

Each backend writes its relevances to a temporary .npz (``--worker``), then the table gives, per
model and backend, the largest ``max |R_backend − R_tensorflow| / max |R_tensorflow|`` over the
analyzers, its median, and the analyzer where it is largest; "tensorflow+XLA" (TensorFlow against
itself with ``jit_compile=True``) shows the spread float32 rounding alone gives, largest where a
rule divides by a nearly cancelling sum (``lrp.z``, ``_IB``, ``flat`` without ε). The
noise-drawing analyzers (``random``, ``smoothgrad``) are left out: each backend has its own
random number generator.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NOISY = {"random", "smoothgrad"}
N = 16  # samples per model


def _cases():
    """(label, model file, inputs, extra kwargs per analyzer) for the shipped models."""
    from keras_lrp.demos.common import MODELS_DIR

    digits = np.load(MODELS_DIR / "digits_test.npz")["x"][:N]
    addition = np.load(MODELS_DIR / "addition_test.npz")["x"][:N]
    tokens = np.load(MODELS_DIR / "sentiment_test.npz")["x"][:N]
    return [("digits CNN", "digits_cnn.keras", digits, {}),
            ("digits ViT", "digits_vit.keras", digits, {}),
            ("digits ViT, CP-LRP", "digits_vit.keras", digits, {"attention": "cp"}),
            ("addition LSTM", "addition_lstm.keras", addition, {}),
            ("text transformer", "sentiment_transformer.keras", tokens, {})]


def worker(out: str) -> None:
    import keras

    import keras_lrp
    from keras_lrp.demos.common import MODELS_DIR

    results = {}
    for label, file, x, extra in _cases():
        model = keras.models.load_model(MODELS_DIR / file)
        for name in keras_lrp.ANALYZERS:
            if name in NOISY:
                continue
            try:
                jit = {"jit_compile": True} if os.environ.get("AGREEMENT_XLA") else {}
                analyzer = keras_lrp.create_analyzer(name, model, **extra, **jit)
                results[f"{label}|{name}"] = analyzer.analyze(x)
            except (ValueError, TypeError) as e:  # not applicable to this model
                results[f"{label}|{name}|skipped"] = np.array(str(e)[:200])
    np.savez(out, **results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], metavar="BACKEND=PYTHON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    pairs = dict(p.split("=", 1) for p in args.python) or {
        b: sys.executable for b in ("tensorflow", "jax", "torch")}
    # the spread float32 rounding alone makes: TensorFlow against itself compiled by XLA (other
    # kernels, other summation orders; the same rules)
    pairs["tensorflow+XLA"] = pairs["tensorflow"]
    path = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend, python in pairs.items():
            out = os.path.join(tmp, f"{backend}.npz")
            env = dict(os.environ, KERAS_BACKEND=backend.split("+")[0], PYTHONPATH=path,
                       TF_CPP_MIN_LOG_LEVEL="3", AGREEMENT_XLA="1" if "XLA" in backend else "")
            subprocess.run([python, __file__, "--worker", out], env=env, check=True)
            got[backend] = dict(np.load(out))
    ref = got.pop("tensorflow")
    print(f"agreement with TensorFlow, float32, {N} samples per model: max |ΔR| / max |R|")
    print(f"{'model':<20} {'backend':<14} {'analyzers':>9} {'≤ 1e-5':>7} {'median':>10} "
          f"{'max':>10}  worst")
    for label, *_ in _cases():
        keys = [k for k in ref if k.startswith(f"{label}|") and not k.endswith("|skipped")]
        for backend, res in got.items():
            errs = {k.split("|")[1]: float(np.abs(res[k] - ref[k]).max()
                                           / max(np.abs(ref[k]).max(), 1e-30))
                    for k in keys if k in res}
            if not errs:
                continue
            worst, median = max(errs, key=errs.get), statistics.median(errs.values())
            within = sum(e <= 1e-5 for e in errs.values())
            print(f"{label:<20} {backend:<14} {len(errs):>9} {within:>7} {median:>10.1e}"
                  f" {errs[worst]:>10.1e}  {worst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
