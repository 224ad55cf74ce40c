"""Quantus 0.6's faithfulness numbers on the digits twin: tests/data/quantus/faithfulness.npz.

Run it in Quantus' own environment (see twin.py), from the checkout's root:

    /tmp/quantus/bin/python tools/quantus_reference/faithfulness.py          # writes the npz
    /tmp/quantus/bin/python tools/quantus_reference/faithfulness.py --time   # + PixelFlipping
                                                                             #   wall times

Every metric runs on the twin with the shared 16 digits (NCHW), their labels and the LRP-ε
relevance ``a_epsilon`` of inputs.npz; keys are ``<metric>_<setting>``. What it captures
besides Quantus's outputs:

* ``irof_segments``: the SLIC segments Quantus computes (recorded by wrapping Quantus's
  ``get_superpixel_segments``), which keras-lrp's IROF takes as ``segments=``;
  ``irof_coarse_segments``: coarser SLIC segments (``n_segments`` 4 + i for digit i, so the
  digits have different numbers of segments), substituted for Quantus's own by the same wrap.
* ``monotonicity_fixed[_fis16]`` / ``monotonicity_fixed_curves[_fis16]``: Quantus's
  Monotonicity (features_in_step 1 and 16) with a perturb function that puts x's values back
  (what the paper does; Quantus's default sets the baseline again, see
  ``monotonicity_default[_fis16]``), and the target's softmax after each step, read from the
  twin's outputs by a forward hook.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if not hasattr(np, "trapz"):  # Quantus 0.6's calculate_auc calls np.trapz, gone in NumPy 2.4
    np.trapz = np.trapezoid

import quantus  # noqa: E402
import twin  # noqa: E402
from quantus.helpers import utils as qutils  # noqa: E402
from skimage.segmentation import slic  # noqa: E402

OUT = os.path.join(twin.HERE, "..", "..", "tests", "data", "quantus", "faithfulness.npz")
COMMON = dict(disable_warnings=True, display_progressbar=False)


def call(metric, model, x, y, a, **kwargs):
    """Quantus's values as float64 (lists of curves or of numbers)."""
    out = metric(model=model, x_batch=x, y_batch=y, a_batch=a, channel_first=True,
                 device="cpu", **kwargs)
    return np.asarray(out, dtype=np.float64)


class Segmenter:
    """Stands in for Quantus's get_superpixel_segments: records SLIC's segments, or returns the
    segments given per image (keyed by the image's bytes)."""

    def __init__(self, given=None):
        self.original = qutils.get_superpixel_segments
        self.given, self.seen = given, []

    def __call__(self, img, segmentation_method):
        if self.given is not None:
            return self.given[img.tobytes()]
        out = self.original(img, segmentation_method)
        self.seen.append(out)
        return out

    def __enter__(self):
        qutils.get_superpixel_segments = self
        return self

    def __exit__(self, *exc):
        qutils.get_superpixel_segments = self.original


def irof(model, x, y, a, out):
    with Segmenter() as seg:
        out["irof_mean"] = call(quantus.IROF(return_aggregate=False, **COMMON), model, x, y, a)
    out["irof_segments"] = np.stack(seg.seen).astype(np.int16)
    given = {np.moveaxis(xi, 0, -1).astype("double").tobytes(): s
             for xi, s in zip(x, out["irof_segments"])}
    with Segmenter(given):
        out["irof_mean_batch1"] = call(quantus.IROF(return_aggregate=False, **COMMON),
                                       model, x, y, a, batch_size=1)
        out["irof_black"] = call(quantus.IROF(return_aggregate=False, perturb_baseline="black",
                                              **COMMON), model, x, y, a)
    coarse = [slic(np.moveaxis(xi, 0, -1).astype("double"), n_segments=4 + i, start_label=0)
              for i, xi in enumerate(x)]
    out["irof_coarse_segments"] = np.stack(coarse).astype(np.int16)
    given = {np.moveaxis(xi, 0, -1).astype("double").tobytes(): s for xi, s in zip(x, coarse)}
    with Segmenter(given):
        for name, size in (("", 64), ("_batch1", 1)):
            out["irof_coarse_half" + name] = call(quantus.IROF(
                return_aggregate=False, perturb_baseline=0.5, **COMMON), model, x, y, a,
                batch_size=size)


def monotonicity(model, x, y, a, out):
    flat = x.reshape(len(x), -1)

    def restore(arr, indices, **kwargs):  # x's values back at the indices (the paper's step)
        arr = arr.copy()
        rows = np.arange(len(arr))[:, None]
        arr[rows, indices] = flat[rows, indices]
        return arr

    for fis, name in ((1, ""), (16, "_fis16")):
        out["monotonicity_default" + name] = call(quantus.Monotonicity(
            features_in_step=fis, **COMMON), model, x, y, a)
        logits = []
        hook = model.register_forward_hook(
            lambda m, i, o, seen=logits: seen.append(o.detach().numpy()))
        try:
            out["monotonicity_fixed" + name] = call(quantus.Monotonicity(
                features_in_step=fis, perturb_func=restore, **COMMON), model, x, y, a)
        finally:
            hook.remove()
        steps = flat.shape[1] // fis
        z = np.stack(logits[-steps:], axis=1).astype(np.float64)  # (N, steps, 10)
        p = np.exp(z - z.max(axis=2, keepdims=True))
        p /= p.sum(axis=2, keepdims=True)
        out["monotonicity_fixed_curves" + name] = p[np.arange(len(y)), :, y]


def main() -> None:
    inputs = twin.load_inputs()
    model = twin.twin(inputs)
    x, y, a = twin.nchw(inputs["x"]), inputs["y"], twin.nchw(inputs["a_epsilon"])
    out = {}
    out["pixel_flipping"] = call(quantus.PixelFlipping(**COMMON), model, x, y, a)
    out["pixel_flipping_auc"] = call(quantus.PixelFlipping(return_auc_per_sample=True,
                                                           **COMMON), model, x, y, a)
    out["pixel_flipping_fis4"] = call(quantus.PixelFlipping(features_in_step=4, **COMMON),
                                      model, x, y, a)
    out["pixel_flipping_gradient"] = call(quantus.PixelFlipping(features_in_step=4, **COMMON),
                                          model, x, y, twin.nchw(inputs["a_gradient"]))
    for order in ("morf", "lerf"):
        out[f"region_perturbation_{order}"] = call(quantus.RegionPerturbation(
            patch_size=2, order=order, **COMMON), model, x, y, a)
    out["region_perturbation_p3"] = call(quantus.RegionPerturbation(
        patch_size=3, regions_evaluation=5, **COMMON), model, x, y, a)
    for size in (2, 3):
        out[f"selectivity_p{size}"] = call(quantus.Selectivity(patch_size=size, **COMMON),
                                           model, x, y, a)
    out["faithfulness_estimate"] = call(quantus.FaithfulnessEstimate(**COMMON), model, x, y, a)
    out["faithfulness_estimate_fis4"] = call(quantus.FaithfulnessEstimate(
        features_in_step=4, **COMMON), model, x, y, a)
    monotonicity(model, x, y, a, out)
    irof(model, x, y, a, out)
    np.savez_compressed(OUT, **out)
    print(f"wrote {os.path.normpath(OUT)}: " + ", ".join(f"{k} {v.shape}" for k, v in
                                                         out.items()))
    if "--time" in sys.argv:
        timings(model, x, y, a)


def timings(model, x, y, a) -> None:
    """Wall time of Quantus's PixelFlipping on the 16 digits and on 16 tiled to 256, one run
    each (after one warm-up call)."""
    call(quantus.PixelFlipping(**COMMON), model, x[:2], y[:2], a[:2])
    for fis in (1, 4):
        for reps in (1, 16):
            xs, ys, as_ = (np.concatenate([v] * reps) for v in (x, y, a))
            start = time.perf_counter()
            call(quantus.PixelFlipping(features_in_step=fis, **COMMON), model, xs, ys, as_)
            print(f"Quantus PixelFlipping features_in_step={fis} on {len(xs)} digits: "
                  f"{time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
