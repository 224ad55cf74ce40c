"""Seed 003's walk-through: one point, every LRP variant, keras-lrp beside the hand computation.

The model is seed 003's two-feature classifier (keras_lrp/demos/models/seed003_two_feature.keras;
retrain it with examples/train_seed003.py): logits z = x·W + b, one Dense layer, softmax stripped.
For the point
x = [0.15601864, 0.15599452] the script prints, for every variant, keras-lrp's relevances, the
value computed by hand from W, b and x (the formula is printed beside it), and how much relevance
the bias absorbed (explained logit − Σ R). It also writes a bar chart comparing the IB variants
with the bias-included ones (seed003_ib_comparison.png).

    python examples/seed003_walkthrough.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lrp  # noqa: E402
from keras_lrp.plots import heatmap

ROOT = Path(__file__).resolve().parents[1]
X = np.array([[0.15601864, 0.15599452]])


def hand_values(W: np.ndarray, b: np.ndarray, x: np.ndarray, c: int, R: float) -> dict:
    """Each variant computed by hand for the single output c (x, w are 2-vectors here)."""
    w, bc = W[:, c].astype("float64"), float(b[c])
    x = x[0].astype("float64")
    wp, wn = np.maximum(w, 0), np.minimum(w, 0)
    share = lambda num, den: R * num / den  # noqa: E731
    low, high = -1.0, 1.0
    bounded = x * w - low * wp - high * wn
    return {
        "lrp.z": ("x·w / (Σ x·w + b)", share(x * w, (x * w).sum() + bc)),
        "lrp.z_IB": ("x·w / Σ x·w", share(x * w, (x * w).sum())),
        "lrp.epsilon": ("x·w / (Σ x·w + b + 1e-7)", share(x * w, (x * w).sum() + bc + 1e-7)),
        "lrp.epsilon_IB": ("x·w / (Σ x·w + 1e-7)", share(x * w, (x * w).sum() + 1e-7)),
        "lrp.alpha_1_beta_0": ("x·w⁺ / (Σ x·w⁺ + b⁺)",
                               share(x * wp, (x * wp).sum() + max(bc, 0.0))),
        "lrp.alpha_1_beta_0_IB": ("x·w⁺ / Σ x·w⁺", share(x * wp, (x * wp).sum())),
        "lrp.alpha_1_beta_0_IB + WSquare": ("w² / Σ w²", share(w ** 2, (w ** 2).sum())),
        "lrp.alpha_1_beta_0_IB + Bounded": ("(x·w − l·w⁺ − h·w⁻) / Σ(…), l=−1, h=1",
                                            share(bounded, bounded.sum())),
    }


ANALYZERS = {
    "lrp.z": ("lrp.z", {}),
    "lrp.z_IB": ("lrp.z_IB", {}),
    "lrp.epsilon": ("lrp.epsilon", {}),
    "lrp.epsilon_IB": ("lrp.epsilon_IB", {}),
    "lrp.alpha_1_beta_0": ("lrp.alpha_1_beta_0", {}),
    "lrp.alpha_1_beta_0_IB": ("lrp.alpha_1_beta_0_IB", {}),
    "lrp.alpha_1_beta_0_IB + WSquare": ("lrp.alpha_1_beta_0_IB", {"input_layer_rule": "WSquare"}),
    "lrp.alpha_1_beta_0_IB + Bounded": ("lrp.alpha_1_beta_0_IB", {"input_layer_rule": "Bounded"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="folder for seed003_ib_comparison.png")
    args = parser.parse_args()
    model = keras.models.load_model(
        ROOT / "keras_lrp" / "demos" / "models" / "seed003_two_feature.keras")
    W, b = (np.asarray(v) for v in model.layers[-1].get_weights())
    logits = X @ W + b
    c = int(logits.argmax())
    R = float(logits[0, c])
    print(f"x = {X[0]}, logits = {logits[0]}, explained class {c}, R = {R:.7f}, b[c] = {b[c]:.7f}")
    print(f"\n{'variant':<34} {'keras-lrp':>24} {'by hand':>24} {'absorbed':>9}  formula")
    hand = hand_values(W, b, X, c, R)
    results = {}
    for label, (name, kwargs) in ANALYZERS.items():
        relevance = keras_lrp.create_analyzer(name, model, **kwargs).analyze(X)
        results[label] = relevance
        formula, expected = hand[label]
        ours = np.array2string(relevance[0], precision=7)
        theirs = np.array2string(np.asarray(expected), precision=7)
        print(f"{label:<34} {ours:>24} {theirs:>24} {R - relevance.sum():>9.5f}  {formula}")
    print("\nThe bias-included Z, epsilon and alpha_1_beta_0 rules give most of the relevance to "
          "the bias (absorbed ≈ b[c]); the IB variants pass all of it to the two features.")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    heatmap.plot_comparison(
        np.concatenate([results["lrp.z"], results["lrp.alpha_1_beta_0"]]),
        np.concatenate([results["lrp.z_IB"], results["lrp.alpha_1_beta_0_IB"]]),
        names=("with bias", "ignore bias (IB)"), feature_names=["x1", "x2"],
        path=out / "seed003_ib_comparison.png")
    print(f"wrote {out / 'seed003_ib_comparison.png'} (rows: Z, alpha_1_beta_0)")


if __name__ == "__main__":
    main()
