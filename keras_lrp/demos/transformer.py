"""The transformer part of the demo: the shipped Vision Transformer beside the shipped CNN.

``keras-lrp demo --task transformer`` (or :func:`run_transformer_demo`) explains the 360 test
digits with the ViT of ``keras_lrp/demos/models/digits_vit.keras`` (AttnLRP, CP-LRP, input ×
gradient, gradient) and, for comparison, the CNN of ``keras_lrp/demos/models/digits_cnn.keras``
(``lrp.epsilon``), and writes:

* ``vit_heatmaps.png`` — one digit of each class (rows, labelled true → the ViT's prediction) ×
  the input, the CNN's heatmap and the ViT's four (columns), each heatmap scaled by its own
  max |R| (its caption), with a colour bar;
* ``summary.txt`` — the table also printed: the ViT's accuracy and, per method, the
  pixel-flipping AOPC on the ViT (higher: the heatmap found the pixels the model relies on
  sooner), with a random ordering as the baseline;
* ``text_summary.txt``, ``text_tokens.png`` and ``text_tokens.html`` — the text transformer of
  ``keras_lrp/demos/models/sentiment_transformer.keras`` on its synthetic task with a known answer
  (:mod:`keras_lrp.demos.text`).
"""

from __future__ import annotations

import time
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

#: (label, analyzer name, keyword arguments) on the ViT.
VIT_ANALYZERS: List[Tuple[str, str, Dict]] = [
    ("AttnLRP (lrp.z)", "lrp.z", {}),
    ("CP-LRP (lrp.z, attention='cp')", "lrp.z", {"attention": "cp"}),
    ("input_t_gradient", "input_t_gradient", {}),
    ("gradient", "gradient", {}),
]


def run_transformer_demo(out_dir: str = "lrp-demo-transformer",
                         models_dir: Optional[str] = None, steps: int = 16,
                         verbose: bool = True) -> Dict[str, float]:
    """Run the transformer demo; returns {label: AOPC on the ViT}."""
    import keras

    import keras_lrp
    from keras_lrp.plots import heatmap

    start = time.perf_counter()
    models = Path(models_dir) if models_dir else find_models_dir()
    if not (models / "digits_vit.keras").is_file():
        raise FileNotFoundError(f"Cannot find {models / 'digits_vit.keras'}; retrain it with "
                                "examples/train_digits_vit.py or pass --models-dir.")
    vit = keras.models.load_model(models / "digits_vit.keras")
    cnn = keras.models.load_model(models / "digits_cnn.keras")
    data = np.load(models / "digits_test.npz")
    x, labels = data["x"], data["y"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    relevances, forward = {}, None
    for label, name, kwargs in VIT_ANALYZERS:
        analyzer = keras_lrp.create_analyzer(name, vit, **kwargs)
        forward = forward or analyzer.forward_model
        relevances[label] = analyzer.analyze(x)
    from keras_lrp import backend
    logits = backend.to_numpy(forward(x))
    predictions = logits.argmax(axis=1)
    aopc = aopc_table(forward, x, relevances, predictions, steps)
    cnn_relevance = keras_lrp.create_analyzer("lrp.epsilon", cnn).analyze(x)
    picked = one_per_class(labels)
    columns = {"CNN lrp.epsilon": cnn_relevance[picked],
               **{f"ViT {k.split(' (')[0]}": v[picked] for k, v in relevances.items()}}
    heatmap.plot_grid(columns, inputs=x[picked],
                      row_titles=row_labels(labels[picked], predictions[picked]),
                      path=out / "vit_heatmaps.png")
    table = format_table(aopc, n=len(x), accuracy=float(np.mean(predictions == labels)),
                         steps=steps)
    (out / "summary.txt").write_text(table + "\n")
    if verbose:
        print(table + "\n")
    written = "vit_heatmaps.png and summary.txt"
    if (models / "sentiment_transformer.keras").is_file():
        from keras_lrp.demos.text import run_text_demo
        run_text_demo(out, models, verbose=verbose)
        written = "vit_heatmaps.png, summary.txt and text_summary.txt, text_tokens.png/.html"
    if verbose:
        print(f"\nWrote {written} to {out} in {time.perf_counter() - start:.1f} s.")
    return aopc


def format_table(aopc: Dict[str, Optional[float]], n: int, accuracy: float, steps: int) -> str:
    """The transformer demo's table as text; a missing (None) or non-finite AOPC prints "–"."""
    lines = [f"digits_vit on {n} test digits (accuracy {accuracy:.3f}); explained: the winning "
             "logit", f"{'method':<34} {'AOPC':>7}"]
    lines += [f"{label:<34} {format_cell(value, '.3f', 7)}" for label, value in aopc.items()]
    lines.append(f"AOPC: mean logit drop over {steps} steps of flipping the most relevant pixels "
                 "first to 0 (higher is better).")
    return "\n".join(lines)
