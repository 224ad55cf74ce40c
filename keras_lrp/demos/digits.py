"""The main job: explain the shipped digits CNN with a representative set of analyzers.

``keras-lrp demo`` loads ``keras_lrp/demos/models/digits_cnn.keras`` and its test digits,
explains every test digit with each analyzer of :data:`DEMO_ANALYZERS`, and writes to the
output folder:

* ``heatmaps.png`` — one digit of each class (rows, labelled true → predicted) × the input and
  each analyzer (columns), each heatmap scaled by its own max |R| (its caption), with a colour
  bar;
* ``ib_comparison.png`` — AlphaBeta(2, 1) with and without the bias, side by side, the same
  rows; both variants of a digit share one scale (the captions), so the weaker looks weaker;
  a third column shows the difference R − R_IB on its own colour scale, each row captioned
  with the share of relevance that moved, the title with their mean;
* ``report.html`` — one self-contained page (:func:`keras_lrp.report`): the metrics of
  :data:`DEMO_METRICS` that this version registers, per analyzer, with bootstrap intervals
  (a sortable table) and their perturbation curves; the heatmaps; and each analyzer against its
  ``_IB`` twin (AlphaBeta(1, 0) and AlphaBeta(2, 1)) with the difference map and moved share;
* ``relevances.h5`` — all relevances with their metadata (see :mod:`keras_lrp.io.results`);
* ``summary.txt`` — the table also printed: per analyzer, Σ R against the explained logit (how
  much the biases and stabilisers absorbed) and the pixel-flipping AOPC (higher: the heatmap
  found the pixels the model relies on sooner).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from keras_lrp.demos.common import (
    aopc_table,
    find_models_dir,
    format_cell,
    one_per_class,
    row_labels,
)

#: (label, analyzer name, keyword arguments). Digits are scaled to [0, 1], hence the bounds.
DEMO_ANALYZERS: List[Tuple[str, str, Dict]] = [
    ("lrp.z", "lrp.z", {}),
    ("lrp.epsilon (eps=0.1)", "lrp.epsilon", {"epsilon": 0.1}),
    ("lrp.alpha_1_beta_0", "lrp.alpha_1_beta_0", {}),
    ("lrp.alpha_1_beta_0_IB", "lrp.alpha_1_beta_0_IB", {}),
    ("lrp.alpha_2_beta_1", "lrp.alpha_2_beta_1", {}),
    ("lrp.alpha_2_beta_1_IB", "lrp.alpha_2_beta_1_IB", {}),
    ("a1b0_IB + WSquare input", "lrp.alpha_1_beta_0_IB", {"input_layer_rule": "WSquare"}),
    ("a1b0_IB + Bounded(0,1) input", "lrp.alpha_1_beta_0_IB", {"input_layer_rule": (0.0, 1.0)}),
    ("lrp.epsilon_gamma_box", "lrp.epsilon_gamma_box", {"low": 0.0, "high": 1.0}),
]

#: The metrics of report.html, by their names in :mod:`keras_lrp.metrics`, with their defaults
#: (pixel flipping one pixel per step; the completeness gap |ΣR − Δf| / |Δf|, which the biases
#: and stabilisers open): the ones this version registers are used, the others left out
#: (:func:`keras_lrp.metrics.registry.available`). All three are cheap here.
DEMO_METRICS: List[str] = ["PixelFlipping", "Sparseness", "CompletenessGap"]


def run_demo(out_dir: str = "lrp-demo", models_dir: Optional[str] = None,
             steps: int = 16, verbose: bool = True) -> Dict[str, Dict[str, float]]:
    """Run the demo; returns the summary table as {label: {column: value}}."""
    import keras

    import keras_lrp
    from keras_lrp.io import results as io
    from keras_lrp.metrics.comparison import compare_methods
    from keras_lrp.metrics.registry import available
    from keras_lrp.plots import heatmap
    from keras_lrp.plots.html import write_html

    start = time.perf_counter()
    models = Path(models_dir) if models_dir else find_models_dir()
    model = keras.models.load_model(models / "digits_cnn.keras")
    data = np.load(models / "digits_test.npz")
    x, labels = data["x"], data["y"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    relevances, rows, analyzers = {}, {}, {}
    forward = None
    for label, name, kwargs in DEMO_ANALYZERS:
        analyzer = analyzers[label] = keras_lrp.create_analyzer(name, model, **kwargs)
        forward = forward or analyzer.forward_model
        relevances[label] = analyzer.analyze(x)
        report = analyzer.conservation(x)
        rows[label] = {"sum_R / logit": float(np.mean(report.input_sum / report.explained)),
                       "absorbed": float(np.mean(report.absorbed))}
    from keras_lrp import backend
    logits = backend.to_numpy(forward(x))
    predictions = logits.argmax(axis=1)
    for label, value in aopc_table(forward, x, relevances, predictions, steps).items():
        rows.setdefault(label, {})["AOPC"] = value

    picked = one_per_class(labels)
    heatmap.plot_grid({k: v[picked] for k, v in relevances.items()}, inputs=x[picked],
                      row_titles=row_labels(labels[picked], predictions[picked]),
                      path=out / "heatmaps.png")
    heatmap.plot_comparison(relevances["lrp.alpha_2_beta_1"][picked],
                            relevances["lrp.alpha_2_beta_1_IB"][picked], inputs=x[picked],
                            names=("alpha_2_beta_1", "alpha_2_beta_1_IB"),
                            row_titles=row_labels(labels[picked], predictions[picked]),
                            path=out / "ib_comparison.png", difference=True)
    comparison = compare_methods(model, x, list(analyzers.items()), relevances=relevances,
                                 metrics=available(DEMO_METRICS), labels=labels)
    write_html(comparison, out / "report.html", samples=picked,
               title=f"keras-lrp demo: {model.name} on {len(x)} test digits")
    metadata = io.metadata_for([(label, name, kwargs) for label, name, kwargs in
                                DEMO_ANALYZERS], model)
    io.save_relevances(out / "relevances.h5", relevances, inputs=x, predictions=logits,
                       neurons=predictions, metadata=metadata)
    table = format_table(rows, n=len(x), accuracy=float(np.mean(predictions == labels)))
    (out / "summary.txt").write_text(table + "\n")
    if verbose:
        print(table)
        print(f"\nWrote heatmaps.png, ib_comparison.png, report.html, relevances.h5 and "
              f"summary.txt to {out} in {time.perf_counter() - start:.1f} s.")
    return rows


def format_table(rows: Dict[str, Dict[str, float]], n: int, accuracy: float) -> str:
    """The demo's summary table as text; a missing or non-finite value prints as "–" (the
    random baseline has no ΣR / logit or absorbed)."""
    lines = [f"digits_cnn on {n} test digits (accuracy {accuracy:.3f}); explained: the winning "
             "logit",
             f"{'analyzer':<30} {'ΣR / logit':>10} {'absorbed':>9} {'AOPC':>7}"]
    for label, row in rows.items():
        lines.append(f"{label:<30} {format_cell(row.get('sum_R / logit'), '.4f', 10)} "
                     f"{format_cell(row.get('absorbed'), '.4f', 9)} "
                     f"{format_cell(row.get('AOPC'), '.3f', 7)}")
    lines.append("ΣR / logit: 1 means conserved; absorbed = logit − ΣR (mean, by biases and "
                 "stabilisers). AOPC: mean logit drop while flipping the most relevant pixels "
                 "first to 0 (higher is better).")
    return "\n".join(lines)


def __getattr__(name: str):
    """``MODELS_DIR``, which moved to :mod:`keras_lrp.demos.common`: it warns (one release)."""
    if name == "MODELS_DIR":
        from keras_lrp.demos import common

        warnings.warn("keras_lrp.demos.digits.MODELS_DIR moved to "
                      "keras_lrp.demos.common.MODELS_DIR; the old name goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        return common.MODELS_DIR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    run_demo()
