"""The sequence part of the demo: an LSTM trained on Arras et al. 2019's addition task.

Each input is a sequence of T steps with two features: a random number in [−1, 1] and a marker,
1 at exactly two steps and 0 elsewhere. The target is the sum of the two marked numbers, so the
ground truth of every explanation is known: all of the evidence sits at the two marked steps,
and a conserving explanation gives each marked step about its own value.

``keras-lrp demo --task sequence`` (or :func:`run_sequence_demo`) explains the shipped
``keras_lrp/demos/models/addition_lstm.keras`` on its 500 test sequences and writes to the output
folder:

* ``summary.txt`` — the recovery table also printed: for each analyzer, the share of |R| on the
  two marked steps, the correlation of the marked steps' relevance with their values, and
  Σ R against the prediction;
* ``tokens.png`` and ``tokens.html`` — three sequences as rows of steps coloured by relevance.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from keras_lrp.demos.common import find_models_dir, format_cell

STEPS = 20

#: (label, analyzer name, keyword arguments).
SEQUENCE_ANALYZERS: List[Tuple[str, str, Dict]] = [
    ("lrp.epsilon", "lrp.epsilon", {}),
    ("lrp.epsilon gate_rule=half", "lrp.epsilon", {"gate_rule": "half"}),
    ("lrp.epsilon gate_rule=proportional", "lrp.epsilon", {"gate_rule": "proportional"}),
    ("lrp.z", "lrp.z", {}),
    ("lrp.epsilon bias_factor=1", "lrp.epsilon", {"bias_factor": 1.0}),
    ("gradient", "gradient", {}),
    ("input_t_gradient", "input_t_gradient", {}),
    ("integrated_gradients", "integrated_gradients", {"steps": 32}),
]


def addition_data(n: int, steps: int = STEPS, seed: int = 0):
    """``(x, y, marks)``: x (n, steps, 2) float32 (value, marker), y (n,) the sum of the two
    marked values, marks (n, 2) the marked steps (the first in the first half, the second in
    the second half, as in Arras et al. 2019)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, steps, 2), dtype="float32")
    x[..., 0] = rng.uniform(-1, 1, (n, steps))
    half = steps // 2
    marks = np.stack([rng.integers(0, half, n), rng.integers(half, steps, n)], axis=1)
    rows = np.arange(n)[:, None]
    x[rows, marks, 1] = 1.0
    y = x[rows, marks, 0].sum(axis=1)
    return x, y.astype("float32"), marks


def per_step(relevance: np.ndarray) -> np.ndarray:
    """(n, T): the relevance of each step, summed over its features."""
    return relevance.reshape(relevance.shape[0], relevance.shape[1], -1).sum(axis=-1)


def recovery(relevance, x, marks, predictions) -> Dict[str, float]:
    """How well one explanation recovers the ground truth of the addition task."""
    r = per_step(relevance)
    rows = np.arange(len(r))[:, None]
    marked = r[rows, marks]
    share = np.abs(marked).sum(axis=1) / np.maximum(np.abs(r).sum(axis=1), 1e-30)
    values = x[rows, marks, 0]
    corr = float(np.corrcoef(marked.reshape(-1), values.reshape(-1))[0, 1])
    total = r.sum(axis=1) / np.where(predictions == 0, 1.0, predictions)
    return {"marked share": float(share.mean()), "corr(R, value)": corr,
            "ΣR / prediction": float(np.median(total))}


def find_model(models_dir: Optional[str]) -> Path:
    folder = Path(models_dir) if models_dir else find_models_dir()
    path = folder / "addition_lstm.keras"
    if not path.is_file():
        raise FileNotFoundError(f"Cannot find {path}; retrain it with "
                                "examples/train_addition_lstm.py or pass --models-dir.")
    return path


def run_sequence_demo(out_dir: str = "lrp-demo-sequence", models_dir: Optional[str] = None,
                      verbose: bool = True) -> Dict[str, Dict[str, float]]:
    """Run the sequence demo; returns the recovery table as {label: {column: value}}."""
    import keras

    import keras_lrp
    from keras_lrp.plots import tokens as tokens_mod

    start = time.perf_counter()
    path = find_model(models_dir)
    model = keras.models.load_model(path)
    data = np.load(path.parent / "addition_test.npz")
    x, y, marks = data["x"], data["y"], data["marks"]
    predictions = np.asarray(model.predict(x, verbose=0)).reshape(-1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, maps = {}, {}
    for label, name, kwargs in SEQUENCE_ANALYZERS:
        relevance = keras_lrp.create_analyzer(name, model, **kwargs).analyze(x)
        maps[label] = per_step(relevance)
        rows[label] = recovery(relevance, x, marks, predictions)
    table = format_table(rows, n=len(x), mse=float(np.mean((predictions - y) ** 2)))
    (out / "summary.txt").write_text(table + "\n")
    picked = [0, 1, 2]
    token_rows, titles = [], []
    for i in picked:
        tokens = [f"{v:+.2f}{'*' if m else ''}" for v, m in zip(x[i, :, 0], x[i, :, 1])]
        for label in ("lrp.epsilon", "input_t_gradient"):
            token_rows.append((tokens, maps[label][i]))
            titles.append(f"#{i} {label}: target {y[i]:+.2f}, predicted {predictions[i]:+.2f}")
    tokens_mod.plot_tokens(token_rows, titles=titles, path=out / "tokens.png")
    tokens_mod.tokens_html(token_rows, titles=titles, path=out / "tokens.html")
    if verbose:
        print(table)
        print(f"\nWrote summary.txt, tokens.png and tokens.html to {out} in "
              f"{time.perf_counter() - start:.1f} s.")
    return rows


def format_table(rows: Dict[str, Dict[str, float]], n: int, mse: float) -> str:
    """The recovery table as text; a missing or non-finite value (e.g. the correlation of an
    explanation that is constant on the marked steps) prints as "–"."""
    lines = [f"addition_lstm on {n} test sequences of {STEPS} steps (MSE {mse:.4f}); ground "
             "truth: the two marked steps (*)",
             f"{'analyzer':<36} {'marked share':>12} {'corr(R, value)':>14} {'ΣR / pred':>10}"]
    for label, row in rows.items():
        lines.append(f"{label:<36} {format_cell(row.get('marked share'), '.3f', 12)} "
                     f"{format_cell(row.get('corr(R, value)'), '.3f', 14)} "
                     f"{format_cell(row.get('ΣR / prediction'), '.3f', 10)}")
    lines.append("marked share: mean of (|R| on the two marked steps) / (|R| on all steps); "
                 "corr(R, value): Pearson correlation of a marked step's relevance with its "
                 "number (1: each marked step gets its own contribution to the sum); "
                 "ΣR / pred: median.")
    return "\n".join(lines)
