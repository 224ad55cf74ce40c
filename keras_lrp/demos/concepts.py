"""The concepts demo: Concept Relevance Propagation on a CNN whose concepts are known.

The task (:func:`concepts_data`): 16×16 RGB images of grey noise holding small shapes. Three
*parts* count: a red square (3×3), a green plus (3×3) and a blue bar (1×4); each is present
with probability 1/2. Up to two *distractors* (the same shapes in another colour: a green or
blue square, a red or blue plus, a red or green bar) are sprinkled in and do not count. The
label, one of 8 classes, says which parts are present: Σ_p 2^p [part p present]. So the model
must detect each part as a conjunction of shape and colour, and the ground truth is known:
each part's pixels.

:func:`run_concepts_demo` explains output 1 of the shipped
``keras_lrp/demos/models/concepts_cnn.keras`` (trained by ``examples/train_concepts_cnn.py``)
on its test set (``concepts_test.npz``: images, labels, part masks), explaining each image's
predicted class y, with the test set split in two halves. On the first it picks for each part
p the channel k of :data:`LAYER` that detects it: the largest positive conditional relevance
Σ_n Σ_{i ∈ M_p} R_i(x_n | y, k)⁺ inside the part's region M_p (its pixels dilated by one)
over the samples holding the part. On the second it measures

* **share**: the mean over samples holding the part of Σ_{i ∈ M_p} R_i⁺ / Σ_i R_i⁺ for the
  conditional heatmap R(x | y, k), against the same for the plain heatmap R(x | y) and the
  region's share of the image (chance);
* **precision@k**: ranking the samples by channel k's relevance R_k = Σ_q R^{layer}_{q,k}(x | y)
  (relevance maximisation) or by its summed activation (activation maximisation), the share
  of the top :data:`TOP` holding the part, against the share of all samples holding it.

It writes ``concepts_summary.txt`` (the table it prints), ``concepts_heatmaps.png`` (per
part: an image, its plain and conditional heatmaps with their colour bar) and
``concepts_graph.png`` (the attribution graph of the first part's channel on its image: the
``conv1`` channels it is built from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from keras_lrp.demos.common import format_cell

SIZE = 16
#: The parts that count: (name, shape, colour index).
PARTS: List[Tuple[str, str, int]] = [("red square", "square", 0), ("green plus", "plus", 1),
                                     ("blue bar", "bar", 2)]
SHAPES = {"square": np.ones((3, 3), bool),
          "plus": np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool),
          "bar": np.ones((1, 4), bool)}
#: The layer whose channels are searched for part detectors; explained output; top-k.
LAYER, TOP = "conv2", 50
ANALYZER = "lrp.epsilon_plus_flat"


def _place(rng, taken: np.ndarray, shape: np.ndarray):
    """A random free spot for ``shape`` (one pixel of gap to what is taken), or None."""
    h, w = shape.shape
    for _ in range(50):
        r, c = rng.integers(0, SIZE - h + 1), rng.integers(0, SIZE - w + 1)
        if not taken[max(r - 1, 0):r + h + 1, max(c - 1, 0):c + w + 1].any():
            return r, c
    return None


def concepts_data(n: int, seed: int = 0):
    """(images (n, 16, 16, 3) float32, labels (n,) int32, part masks (n, 3, 16, 16) bool) of
    the task in the module docstring."""
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(0.25, 0.08, (n, SIZE, SIZE, 3)), 0, 1).astype("float32")
    masks = np.zeros((n, len(PARTS), SIZE, SIZE), bool)
    for i in range(n):
        taken = np.zeros((SIZE, SIZE), bool)
        objects = [(p, shape, colour) for p, (_, shape, colour) in enumerate(PARTS)
                   if rng.random() < 0.5]
        for _ in range(rng.integers(0, 3)):
            shape = ("square", "plus", "bar")[rng.integers(0, 3)]
            colour = [c for _, s, c in PARTS if s == shape][0]
            objects.append((None, shape, (colour + rng.integers(1, 3)) % 3))
        for p, shape, colour in objects:
            spot = _place(rng, taken, SHAPES[shape])
            if spot is None:
                continue
            (r, c), (h, w) = spot, SHAPES[shape].shape
            pix = np.zeros((SIZE, SIZE), bool)
            pix[r:r + h, c:c + w] = SHAPES[shape]
            taken |= pix
            value = np.full(3, 0.1, "float32")
            value[colour] = 0.95
            x[i][pix] = value + rng.normal(0, 0.03, (pix.sum(), 3))
            if p is not None:
                masks[i, p] = pix
    y = (masks.any(axis=(2, 3)) @ (2 ** np.arange(len(PARTS)))).astype("int32")
    pixels = np.round(np.clip(x, 0, 1) * 255).astype("uint8")  # what concepts_test.npz holds
    return pixels.astype("float32") / 255, y, masks


def load_test(models: Path):
    """(images float32, labels, part masks) of ``concepts_test.npz`` (images stored as uint8:
    the float images are those bytes / 255, as :func:`concepts_data` makes them)."""
    with np.load(Path(models) / "concepts_test.npz") as data:
        return data["x"].astype("float32") / 255, data["y"], data["masks"]


def regions(masks: np.ndarray) -> np.ndarray:
    """Each mask dilated by one pixel (3×3): the region a part's relevance is counted in."""
    m = np.pad(masks, [(0, 0)] * (masks.ndim - 2) + [(1, 1), (1, 1)])
    out = np.zeros_like(masks)
    for dr in range(3):
        for dc in range(3):
            out |= m[..., dr:dr + SIZE, dc:dc + SIZE]
    return out


def positive_share(heatmaps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Σ_{i ∈ region} R_i⁺ / Σ_i R_i⁺ per heatmap (0 where a heatmap has no positive R)."""
    pos = np.maximum(heatmaps, 0)
    total = pos.sum(axis=(-2, -1))
    inside = np.where(region, pos, 0).sum(axis=(-2, -1))
    return inside / np.where(total > 0, total, 1)


def precision_at(scores: np.ndarray, present: np.ndarray, k: int) -> float:
    """The share of the ``k`` samples of largest score whose part is present (stable ties)."""
    return float(present[np.argsort(-scores, kind="stable")[:k]].mean())


def measure(crp, x, y, masks, layer: str = LAYER, top: int = TOP):
    """{part name: the row of the demo's table} (see the module docstring), and the conditional
    heatmaps ``(heatmaps (N, 1 + channels, 16, 16), chosen channels)`` for the figure."""
    from keras_lrp.concepts import channel_relevance

    channels = crp.channels(layer)
    conditions = [{"y": y}] + [{"y": y, layer: [k]} for k in range(channels)]
    result = crp.attribute(x, conditions, record=[layer])
    heat = result.heatmap.sum(axis=-1)  # (N, 1 + channels, 16, 16): colours summed
    rel = channel_relevance(result.relevances[layer][:, 0], lead=1)  # (N, channels)
    act = channel_relevance(crp.activation(x, layer), lead=1)
    region, present = regions(masks), masks.any(axis=(2, 3))
    half = len(x) // 2
    rows, chosen = {}, []
    for p, (name, _, _) in enumerate(PARTS):
        pick = present[:half, p]
        mass = np.where(region[:half][pick, p][:, None], np.maximum(heat[:half][pick, 1:], 0), 0)
        k = int(np.argmax(mass.sum(axis=(0, 2, 3))))
        chosen.append(k)
        held = present[half:, p]
        rows[name] = {
            "channel": k,
            "share (conditional)": float(positive_share(heat[half:][held, 1 + k],
                                                        region[half:][held, p]).mean()),
            "share (plain)": float(positive_share(heat[half:][held, 0],
                                                  region[half:][held, p]).mean()),
            "share (chance)": float(region[half:][held, p].mean()),
            f"RelMax p@{top}": precision_at(rel[half:, k], present[half:, p], top),
            f"ActMax p@{top}": precision_at(act[half:, k], present[half:, p], top),
            "p (chance)": float(present[half:, p].mean()),
        }
    return rows, (heat, chosen)


def format_table(rows: Dict[str, Dict[str, float]], n: int, accuracy: float,
                 layer: str = LAYER) -> str:
    """The demo's table as text."""
    keys = list(next(iter(rows.values())))
    lines = [f"concepts_cnn on {n} test images (accuracy {accuracy:.3f}); channel of {layer} "
             f"chosen on the first {n // 2}, measured on the other {n - n // 2}",
             f"{'part':<12} " + " ".join(f"{k:>19}" for k in keys)]
    for name, row in rows.items():
        lines.append(f"{name:<12} " + " ".join(
            f"{row[k]:>19d}" if k == "channel" else format_cell(row[k], ".3f", 19)
            for k in keys))
    lines.append("share: mean share of the positive relevance inside the part (pixels dilated by "
                 "1) for R(x | y, channel), for R(x | y), and the region's share of the image; "
                 "p@k: share of the k samples of largest channel relevance (RelMax) or "
                 "activation (ActMax) holding the part, and of all samples (chance).")
    return "\n".join(lines)


def run_concepts_demo(out_dir="lrp-demo-concepts", models_dir=None,
                      verbose: bool = True) -> Dict[str, Dict[str, float]]:
    """Run the demo (module docstring) on the shipped model; write its three files into
    ``out_dir``; returns the table's rows."""
    import keras

    import keras_lrp
    from keras_lrp.concepts import Conditional
    from keras_lrp.demos.common import find_models_dir
    from keras_lrp.io.atomic import write_atomically
    from keras_lrp.plots.heatmap import plot_grid

    models = Path(models_dir) if models_dir is not None else find_models_dir()
    for name in ("concepts_cnn.keras", "concepts_test.npz"):
        if not (models / name).is_file():
            raise FileNotFoundError(f"The concepts demo needs {models / name}; write it with "
                                    "examples/train_concepts_cnn.py.")
    model = keras.models.load_model(models / "concepts_cnn.keras")
    x, labels, masks = load_test(models)
    y = np.asarray(model.predict(x, verbose=0)).argmax(axis=1)
    crp = Conditional(keras_lrp.create_analyzer(ANALYZER, model))
    rows, (heat, chosen) = measure(crp, x, y, masks)
    table = format_table(rows, len(x), float(np.mean(y == labels)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(str(out / "concepts_summary.txt"),
                     lambda handle: handle.write((table + "\n").encode()))
    half, present = len(x) // 2, masks.any(axis=(2, 3))
    picks = [half + int(np.flatnonzero(present[half:, p] & (present[half:].sum(1) >= 2))[0])
             for p in range(len(PARTS))]
    plot_grid({"R(x | y)": heat[picks, 0],
               f"R(x | y, {LAYER}: the part's channel)": heat[picks, [1 + k for k in chosen]]},
              inputs=x[picks], path=str(out / "concepts_heatmaps.png"),
              row_titles=[f"{name} (ch {k})" for (name, _, _), k in zip(PARTS, chosen)])
    from keras_lrp.concepts.graph import attribution_graph

    i, k = picks[0], chosen[0]  # what the first part's channel is built from in conv1
    attribution_graph(crp, x[i:i + 1], LAYER, k, y=int(y[i]), width=[4]).save(
        str(out / "concepts_graph.png"), title=f"{PARTS[0][0]}: {LAYER} channel {k}, "
        f"class {int(y[i])}")
    if verbose:
        print(table)
    return rows


__all__ = ["LAYER", "PARTS", "TOP", "concepts_data", "format_table", "load_test", "measure",
           "positive_share", "precision_at", "regions", "run_concepts_demo"]
