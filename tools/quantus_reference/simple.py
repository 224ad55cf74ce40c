"""Quantus 0.6's numbers for the complexity, localisation and axiomatic metrics.

Run it in Quantus' own environment (see twin.py), from the checkout's root:

    /tmp/quantus/bin/python tools/quantus_reference/simple.py [--time]

It evaluates the twin of the digits CNN on the 16 digits of tests/data/quantus/inputs.npz, with
their relevance maps (``a_<name>``, NCHW) and ink masks, and writes
tests/data/quantus/simple.npz, read by tests/metrics/test_{complexity,localisation,axiomatic}.py:

- ``<metric>__<attribution>``: Quantus's scores (float64, NaN kept) with default parameters
  (TopKIntersection: k=10; ``tki_ci``: with concept_influence);
- quirks of Quantus 0.6 the tests show: ``al_weighted`` (AttributionLocalisation(weighted=True),
  divided by the wrong size), ``pg_empty`` (PointingGame with sample 0's mask emptied),
  ``pg_weighted_raises``, ``ec_mixed`` (EffectiveComplexity of a batch whose sample 1 is scaled
  by 1e-6: Quantus normalises by the batch's max), ``ns_fis4_raises``;
- ``completeness`` / ``completeness_raw`` (normalise=False) and ``completeness_delta`` (the
  output change f(x) − f(x̄) Quantus computed), ``ns`` (NonSensitivity counts) and ``ns_out``
  (N, 65): the target probabilities of each of its 65 model calls (the first unperturbed), so
  that the tests replay Quantus's own model outputs;
- input invariance: ``ii_<explain>`` on the digits CNN, ``ii_bias_shift`` (the shift of conv1's
  bias Quantus applied), and ``valid_w0``… the weights of a small CNN whose first conv does not
  pad (Conv 3×3 valid, 4 filters, ReLU, Flatten, Dense 10), with its logits
  ``valid_logits`` and ``valid_ii_<explain>``;
  ``*_fixed_*``: the same with every input value shifted (Quantus's own shift leaves the first
  value of each sample unshifted).

With ``--time`` it prints Quantus's wall time per metric on the 16 digits and on 256 copies.
"""

import os
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore")

import quantus  # noqa: E402
from quantus.helpers.model.pytorch_model import PyTorchModel  # noqa: E402
from twin import _ToLast, explain_gradient, explain_input_x_gradient, load_inputs, nchw, twin  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data",
                   "quantus", "simple.npz")
ATTRIBUTIONS = ("epsilon", "alpha2beta1", "gradient", "input_x_gradient")
KW = dict(disable_warnings=True)
COMPLEXITY = {"sparseness": quantus.Sparseness, "complexity": quantus.Complexity,
              "effective_complexity": quantus.EffectiveComplexity}
LOCALISATION = {"pointing_game": quantus.PointingGame,
                "attribution_localisation": quantus.AttributionLocalisation,
                "relevance_rank_accuracy": quantus.RelevanceRankAccuracy,
                "relevance_mass_accuracy": quantus.RelevanceMassAccuracy,
                "auc": quantus.AUC, "top_k_intersection": lambda **kw: quantus.TopKIntersection(
                    k=10, **kw)}
EXPLAIN = {"gradient": explain_gradient, "input_x_gradient": explain_input_x_gradient}


def floats(values) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def raises(fn) -> bool:
    try:
        fn()
    except Exception:  # noqa: BLE001 - what Quantus raises is the point
        return True
    return False


class Recorder:
    """Records the outputs of PyTorchModel.predict (Quantus's every model call)."""

    def __init__(self):
        self.outputs, self._predict = [], PyTorchModel.predict

    def __enter__(self):
        recorder = self

        def predict(model, x, **kwargs):
            out = recorder._predict(model, x, **kwargs)
            recorder.outputs.append(np.asarray(out, dtype=np.float64))
            return out

        PyTorchModel.predict = predict
        return self

    def __exit__(self, *exc):
        PyTorchModel.predict = self._predict


def shift_all(arr, input_shift, **kwargs):
    """Quantus's baseline_replacement_by_shift as meant: every value shifted. (Quantus's
    perturb_batch passes ``indices[i][1:]``, so its own leaves the first value unshifted.)"""
    return arr + input_shift


def valid_cnn(w: dict) -> nn.Module:
    """Conv 3×3 valid (4) – ReLU – Flatten (Keras order) – Dense 10, from Keras-layout weights."""
    conv = nn.Conv2d(1, 4, 3)
    conv.weight.data = torch.tensor(np.transpose(w["valid_w0"], (3, 2, 0, 1)).copy())
    conv.bias.data = torch.tensor(w["valid_w1"])
    dense = nn.Linear(144, 10)
    dense.weight.data = torch.tensor(w["valid_w2"].T.copy())
    dense.bias.data = torch.tensor(w["valid_w3"])
    return nn.Sequential(conv, nn.ReLU(), _ToLast(), nn.Flatten(), dense).eval()


def main(timing: bool = False) -> None:
    d = load_inputs()
    model, x, y = twin(d), nchw(d["x"]), d["y"]
    s = d["s"][:, None].astype(np.float32)
    out = {}
    for key in ATTRIBUTIONS:
        a = nchw(d[f"a_{key}"])
        for name, metric in COMPLEXITY.items():
            out[f"{name}__{key}"] = floats(metric(**KW)(model, x, y, a.copy(), device="cpu"))
        for name, metric in LOCALISATION.items():
            out[f"{name}__{key}"] = floats(metric(**KW)(model, x, y, a.copy(), s.copy(),
                                                        device="cpu"))
        out[f"tki_ci__{key}"] = floats(quantus.TopKIntersection(k=10, concept_influence=True,
                                                                **KW)(model, x, y, a.copy(),
                                                                      s.copy(), device="cpu"))
    a = nchw(d["a_epsilon"])
    out["al_weighted"] = floats(quantus.AttributionLocalisation(weighted=True, **KW)(
        model, x, y, a.copy(), s.copy(), device="cpu"))
    empty = s.copy()
    empty[0] = 0
    out["pg_empty"] = floats(quantus.PointingGame(**KW)(model, x, y, a.copy(), empty,
                                                        device="cpu"))
    out["pg_weighted_raises"] = raises(lambda: quantus.PointingGame(weighted=True, **KW)(
        model, x, y, a.copy(), s.copy(), device="cpu"))
    mixed = a.copy()
    mixed[1] *= 1e-6
    out["ec_mixed"] = floats(quantus.EffectiveComplexity(**KW)(model, x, y, mixed,
                                                               device="cpu"))
    with Recorder() as rec:
        out["completeness"] = floats(quantus.Completeness(**KW)(model, x, y, a.copy(),
                                                                device="cpu"))
    rows = np.arange(len(y))
    out["completeness_delta"] = rec.outputs[0][rows, y] - rec.outputs[1][rows, y]
    out["completeness_raw"] = floats(quantus.Completeness(normalise=False, **KW)(
        model, x, y, a.copy(), device="cpu"))
    with Recorder() as rec:
        out["ns"] = floats(quantus.NonSensitivity(**KW)(model, x, y, a.copy(), device="cpu"))
    out["ns_out"] = np.stack([o[rows, y] for o in rec.outputs], axis=1)
    out["ns_fis4_raises"] = raises(lambda: quantus.NonSensitivity(features_in_step=4, **KW)(
        model, x, y, a.copy(), device="cpu"))
    wrapped = PyTorchModel(model, channel_first=True, softmax=False, device="cpu")
    shifted = wrapped.add_mean_shift_to_first_layer(-1, x[:1].shape)
    out["ii_bias_shift"] = (shifted[0].bias - model[0].bias).detach().numpy().astype(np.float64)
    g = np.random.default_rng(30)
    w = {"valid_w0": g.normal(0, 0.5, (3, 3, 1, 4)), "valid_w1": g.normal(0, 0.1, 4),
         "valid_w2": g.normal(0, 0.2, (144, 10)), "valid_w3": g.normal(0, 0.1, 10)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    out.update(w)
    small = valid_cnn(w)
    with torch.no_grad():
        out["valid_logits"] = small(torch.tensor(x)).numpy().astype(np.float64)
    for key, fn in EXPLAIN.items():
        for prefix, net in (("ii", model), ("valid_ii", small)):
            out[f"{prefix}_{key}"] = floats(quantus.InputInvariance(**KW)(
                net, x, y, fn(net, x, y), explain_func=fn, device="cpu"))
            out[f"{prefix}_fixed_{key}"] = floats(quantus.InputInvariance(
                perturb_func=shift_all, **KW)(net, x, y, fn(net, x, y), explain_func=fn,
                                              device="cpu"))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {os.path.normpath(OUT)}: {len(out)} arrays")
    if timing:
        time_quantus(model, d)


def time_quantus(model, d) -> None:
    """Wall time of each Quantus metric (one run) on the 16 digits and on 256 copies."""
    s = d["s"][:, None].astype(np.float32)
    metrics = {**{k: v(**KW) for k, v in COMPLEXITY.items()},
               **{k: v(**KW) for k, v in LOCALISATION.items()},
               "completeness": quantus.Completeness(**KW),
               "non_sensitivity": quantus.NonSensitivity(**KW),
               "input_invariance": quantus.InputInvariance(**KW)}
    for copies in (1, 16):
        x, y = np.tile(nchw(d["x"]), (copies, 1, 1, 1)), np.tile(d["y"], copies)
        a = np.tile(nchw(d["a_gradient"]), (copies, 1, 1, 1))
        sc = np.tile(s, (copies, 1, 1, 1))
        for name, metric in metrics.items():
            extra = {"explain_func": explain_gradient} if name == "input_invariance" else {}
            start = time.perf_counter()
            metric(model, x, y, a.copy(), sc.copy(), device="cpu", batch_size=256, **extra)
            print(f"quantus {name:26s} N={len(x):4d} {time.perf_counter() - start:8.3f} s")


if __name__ == "__main__":
    main(timing="--time" in sys.argv[1:])
