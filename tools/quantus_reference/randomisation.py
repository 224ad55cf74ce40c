"""Write tests/data/quantus/randomisation.npz: Quantus 0.6's MPRT and RandomLogit on the twin.

Run it in Quantus' own environment (see twin.py), from the checkout's root:

    /tmp/quantus/bin/python tools/quantus_reference/randomisation.py

Both metrics explain with ``twin.explain_gradient`` (keras-lrp's ``gradient`` analyzer) and
compare with ``a_gradient``. What Quantus draws is captured so that the tests replay it:

* MPRT re-initialises each layer with PyTorch's ``reset_parameters()`` after
  ``torch.manual_seed(seed + 1)``. A wrapper around ``PyTorchModel.get_random_layer_generator``
  records, at each step, the randomised module's new parameters; they are saved in Keras' layout
  (``rw_<keras layer>_0`` the kernel, ``_1`` the bias). Quantus randomises the modules that have
  ``reset_parameters`` (here the 3 Conv2d and 2 Linear, none of ReLU / MaxPool / Flatten /
  Dropout), last first for ``top_down``; saved as ``mprt_<order>_layers`` (Quantus' module
  names, the rows of ``mprt_<order>``) and ``mprt_<order>_keras_layers`` (the Keras layers).
* RandomLogit draws the other class with ``np.random.seed(seed)`` then ``randint``, once per
  batch; a wrapper around the explain function records the targets it is called with.

Saved (per-sample values, float64): ``mprt_<order>_original`` (similarity with the original
model's explanation) and ``mprt_<order>`` (L, N), one row per randomised layer, for ``top_down``
and ``independent``; ``mprt_average`` (``return_average_correlation=True``, top_down);
``rl_batch`` / ``rl_y_off_batch`` (RandomLogit with the default batch_size=64: relevance
normalised by the max over the whole batch) and ``rl_single`` / ``rl_y_off_single``
(batch_size=1 and ``a_batch`` normalised per sample: every map normalised by its own max);
``quantus_seconds`` the wall times of [MPRT top_down, MPRT independent, RandomLogit] on the
16 digits and on 256 copies (one thread).
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import quantus  # noqa: E402
import torch  # noqa: E402
from quantus.helpers.model.pytorch_model import PyTorchModel  # noqa: E402
from twin import explain_gradient, load_inputs, nchw, twin  # noqa: E402

#: Quantus' module names in the twin (nn.Sequential indices) → the Keras layers they are.
KERAS_NAMES = {"0": "conv1", "2": "conv2", "5": "conv3", "9": "dense", "12": "logits"}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data",
                   "quantus", "randomisation.npz")

_generator = PyTorchModel.get_random_layer_generator
RECORDED = {}


def _recording_generator(self, order="top_down", seed=42):
    """Quantus' generator, recording each randomised module's new parameters."""
    for name, model in _generator(self, order=order, seed=seed):
        module = dict(model.named_modules())[name]
        weights = [module.weight.detach().numpy().copy(), module.bias.detach().numpy().copy()]
        RECORDED.setdefault(order, []).append((name, weights))
        yield name, model


PyTorchModel.get_random_layer_generator = _recording_generator


def keras_layout(weights):
    """PyTorch (out, in, kh, kw) / (out, in) parameters → Keras (kh, kw, in, out) / (in, out)."""
    kernel, bias = weights
    kernel = np.transpose(kernel, (2, 3, 1, 0)) if kernel.ndim == 4 else kernel.T
    return [np.ascontiguousarray(kernel), bias]


def mprt(w, order, x, y, a, **kwargs):
    metric = quantus.MPRT(layer_order=order, disable_warnings=True, **kwargs)
    return metric(model=twin(w), x_batch=x, y_batch=y, a_batch=a, explain_func=explain_gradient,
                  channel_first=True)


TARGETS = []


def recording_explain(model, inputs, targets, **kwargs):
    TARGETS.append(np.asarray(targets).copy())
    return explain_gradient(model, inputs, targets, **kwargs)


def random_logit(w, x, y, a, batch_size):
    TARGETS.clear()
    metric = quantus.RandomLogit(num_classes=10, disable_warnings=True)
    scores = metric(model=twin(w), x_batch=x, y_batch=y, a_batch=a, batch_size=batch_size,
                    explain_func=recording_explain, channel_first=True)
    return np.asarray(scores, dtype=np.float64), np.concatenate(TARGETS).astype(np.int64)


def timings(w, copies):
    x, y, a = (np.concatenate([v] * copies) for v in (nchw(w["x"]), w["y"], nchw(w["a_gradient"])))
    out = []
    for run in (lambda: mprt(w, "top_down", x, y, a), lambda: mprt(w, "independent", x, y, a),
                lambda: random_logit(w, x, y, a, 64)):
        start = time.perf_counter()
        run()
        out.append(time.perf_counter() - start)
    return out


def main(out: str = OUT) -> None:
    torch.set_num_threads(1)
    w = load_inputs()
    x, y, a = nchw(w["x"]), w["y"], nchw(w["a_gradient"])
    arrays = {}
    for order in ("top_down", "independent"):
        scores = mprt(w, order, x, y, a)
        names = [k for k in scores if k != "original"]
        arrays[f"mprt_{order}_original"] = np.asarray(scores["original"], dtype=np.float64)
        arrays[f"mprt_{order}"] = np.asarray([scores[k] for k in names], dtype=np.float64)
        assert names == [n for n, _ in RECORDED[order]], (names, RECORDED[order])
        arrays[f"mprt_{order}_layers"] = np.asarray(names)
        arrays[f"mprt_{order}_keras_layers"] = np.asarray([KERAS_NAMES[n] for n in names])
    # top_down and independent reset each module after the same manual_seed: the same weights
    for (name, w1), (_, w2) in zip(RECORDED["top_down"], RECORDED["independent"][::-1]):
        assert all(np.array_equal(p, q) for p, q in zip(w1, w2)), name
        for i, p in enumerate(keras_layout(w1)):
            arrays[f"rw_{KERAS_NAMES[name]}_{i}"] = p
    arrays["mprt_average"] = np.asarray(
        mprt(w, "top_down", x, y, a, return_average_correlation=True), dtype=np.float64)
    arrays["rl_batch"], arrays["rl_y_off_batch"] = random_logit(w, x, y, a, 64)
    # batch_size=1 normalises each explanation by its own max; the given a_batch is normalised
    # by the max over all of it: give it normalised per sample (its max is then 1)
    a_own = a / np.abs(a).max(axis=(1, 2, 3), keepdims=True)
    arrays["rl_single"], arrays["rl_y_off_single"] = random_logit(w, x, y, a_own, 1)
    arrays["quantus_seconds"] = np.asarray([timings(w, 1), timings(w, 16)])
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}:")
    for k, v in arrays.items():
        if k.startswith("rw_"):
            continue
        mean = k[:2] in ("mp", "rl") and v.dtype.kind == "f"
        print(f"  {k} {v.shape}" + (f" mean {v.mean(axis=-1)}" if mean else f" {v.tolist()}"))


if __name__ == "__main__":
    main(*sys.argv[1:])
