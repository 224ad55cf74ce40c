"""Explain the shipped addition-task LSTM and write the README's table and token heatmap.

Runs the sequence demo (keras_lrp.demos.sequence) into examples/addition/: summary.txt (the
ground-truth recovery table), tokens.png and tokens.html (three test sequences, each step
coloured by its relevance under lrp.epsilon and input × gradient; * marks the two summed steps).

    python examples/sequence_addition.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_lrp.demos.sequence import run_sequence_demo  # noqa: E402

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    run_sequence_demo(out_dir=HERE / "addition",
                      models_dir=HERE.parent / "keras_lrp" / "demos" / "models")
