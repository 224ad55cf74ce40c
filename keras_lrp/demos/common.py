"""What the demos share: where their models are (:data:`MODELS_DIR`), one input per class
with ``"true → predicted"`` row labels, the pixel-flipping AOPC column and the table cells
that print a missing value as "–"."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

#: The folder of the shipped demo models and their test data (package data).
MODELS_DIR = Path(__file__).resolve().parent / "models"


def find_models_dir() -> Path:
    """The shipped models: package data in ``keras_lrp/demos/models/``."""
    return MODELS_DIR


def one_per_class(labels: np.ndarray) -> np.ndarray:
    """Index of the first sample of each class, in class order."""
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)])


def row_labels(labels, predictions) -> List[str]:
    """The figures' row labels, ``"true → predicted"`` (e.g. ``"3 → 5"``)."""
    return [f"{t} → {p}" for t, p in zip(labels, predictions)]


def format_cell(value: Optional[float], spec: str = ".3f", width: int = 0) -> str:
    """A table cell: ``value`` formatted with ``spec``, right-aligned in ``width`` characters;
    "–" when the value is missing (None) or not finite, so a table never prints nan or inf."""
    text = format(value, spec) if value is not None and np.isfinite(value) else "–"
    return f"{text:>{width}}"


def aopc_table(forward, x, relevances: Dict[str, np.ndarray], predictions, steps: int):
    """{label: pixel-flipping AOPC} of each relevance on ``forward`` (pixels set to 0, most
    relevant first), with a seeded random ordering added as ``"random (baseline)"``."""
    from keras_lrp.analyzers import evaluate

    model_fn = lambda batch: forward(batch)  # noqa: E731
    rng = np.random.default_rng(0)
    baselines = {"random (baseline)": rng.standard_normal(x.shape).astype("float32")}
    out = {}
    for label, relevance in {**relevances, **baselines}.items():
        curve = evaluate.pixel_flipping(model_fn, x, relevance, target=predictions, steps=steps,
                                        perturbation="zero")
        out[label] = float(curve.mean_aopc())
    return out


__all__ = ["MODELS_DIR", "aopc_table", "find_models_dir", "format_cell", "one_per_class",
           "row_labels"]
