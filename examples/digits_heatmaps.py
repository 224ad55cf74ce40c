"""Make the README's figure: digits heatmaps for five analyzers (examples/digits_heatmaps.png).

Loads the shipped digits CNN and its test digits, explains one digit of each of five classes
with five analyzers, and writes a grid (rows: digits, columns: input and analyzers; red:
positive relevance, blue: negative, white: none; each heatmap normalised to its own max |R|).

    python examples/digits_heatmaps.py [--out examples/digits_heatmaps.png]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lrp  # noqa: E402
from keras_lrp.demos.common import one_per_class  # noqa: E402
from keras_lrp.plots import heatmap

ROOT = Path(__file__).resolve().parents[1]
ANALYZERS = {
    "lrp.z": ("lrp.z", {}),
    "lrp.epsilon (0.1)": ("lrp.epsilon", {"epsilon": 0.1}),
    "lrp.alpha_1_beta_0_IB": ("lrp.alpha_1_beta_0_IB", {}),
    "lrp.alpha_2_beta_1": ("lrp.alpha_2_beta_1", {}),
    "lrp.epsilon_gamma_box": ("lrp.epsilon_gamma_box", {"low": 0.0, "high": 1.0}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "examples" / "digits_heatmaps.png"))
    args = parser.parse_args()
    model = keras.models.load_model(ROOT / "keras_lrp" / "demos" / "models" / "digits_cnn.keras")
    data = np.load(ROOT / "keras_lrp" / "demos" / "models" / "digits_test.npz")
    picked = one_per_class(data["y"])[[0, 2, 4, 7, 9]]
    x = data["x"][picked]
    columns = {label: keras_lrp.create_analyzer(name, model, **kw).analyze(x)
               for label, (name, kw) in ANALYZERS.items()}
    heatmap.plot_grid(columns, inputs=x, row_titles=[f"digit {d}" for d in data["y"][picked]],
                      path=args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
