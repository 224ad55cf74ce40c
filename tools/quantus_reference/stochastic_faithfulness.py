"""Quantus 0.6's ROAD, FaithfulnessCorrelation and Infidelity on the digits twin, with the
draws needed to replay them, → ``tests/data/quantus/stochastic_faithfulness.npz``.

Run from the repository root, in Quantus's own environment (see twin.py):

    /tmp/quantus/bin/python tools/quantus_reference/stochastic_faithfulness.py [--time]

The random draws: Quantus draws ROAD's imputation noise with ``np.random.randn`` and
FaithfulnessCorrelation's subsets with ``np.random.choice``, from NumPy's legacy global
stream. Each run here seeds it (``np.random.seed``) and records every draw Quantus makes; the
script checks that a fresh ``np.random.RandomState(seed)`` making the same calls in the same
order (per percentage or run, per sample) returns the same numbers, so the npz stores only
the seeds and the tests replay the draws (the legacy stream is frozen by NumPy's policy).
ROAD's order of the relevance is recorded too: Quantus sorts with an unstable sort and the
epsilon-LRP relevances hold ties (every zero-ink pixel has relevance 0). Infidelity draws
nothing (see the keras-lrp docstring). ``--time`` prints Quantus's wall times for ROAD on the
16 digits and on 256 (the 16 tiled), one run each.
"""

import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore")

import quantus  # noqa: E402
from twin import load_inputs, nchw, twin  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data",
                   "quantus", "stochastic_faithfulness.npz")
ATTRIBUTIONS = ("a_epsilon", "a_gradient")
SEED_ROAD, SEED_FC = 333, 2020
FC = dict(nr_runs=100, subset_size=16)
CHECK_PERCENTAGES = [10, 30, 50, 70]


class Record:
    """Wraps functions of np.random, logging each call (name, args, kwargs, result) in order."""

    def __init__(self, *names):
        self.names, self.calls = names, []
        self.originals = {name: getattr(np.random, name) for name in names}

    def __enter__(self):
        for name, original in self.originals.items():
            setattr(np.random, name, self._spy(name, original))
        return self

    def _spy(self, name, original):
        def spy(*args, **kwargs):
            out = original(*args, **kwargs)
            self.calls.append((name, args, kwargs, out))
            return out

        return spy

    def __exit__(self, *exc):
        for name, original in self.originals.items():
            setattr(np.random, name, original)


def replays(calls, seed):
    """True where RandomState(seed) making the same calls returns the same draws."""
    rs = np.random.RandomState(seed)
    return all(np.array_equal(getattr(rs, name)(*args, **kw), out)
               for name, args, kw, out in calls)


def road(model, x, y, a, seed=None, **kwargs):
    """ROAD's per-sample 0/1 curves (N, P), its dict as an array (P,), the order it sorted."""
    seen = {}
    original = quantus.ROAD.evaluate_batch

    def spy(self, model, x_batch, y_batch, a_batch, **kw):
        flat = np.broadcast_to(a_batch, x_batch.shape).reshape(len(x_batch), -1)
        seen.setdefault("order", []).append(np.argsort(-flat, axis=1))
        out = original(self, model, x_batch, y_batch, a_batch, **kw)
        seen.setdefault("per_sample", []).append(out[0])
        return out

    quantus.ROAD.evaluate_batch = spy
    try:
        if seed is not None:
            np.random.seed(seed)
        metric = quantus.ROAD(disable_warnings=True, **{k: v for k, v in kwargs.items()
                                                        if k != "batch_size"})
        curve = metric(model, x, y, a, batch_size=kwargs.get("batch_size", 64))
    finally:
        quantus.ROAD.evaluate_batch = original
    return (np.concatenate(seen["per_sample"]).astype(np.uint8),
            np.array(list(curve.values())), np.concatenate(seen["order"]).astype(np.uint8))


def main():
    w = load_inputs()
    model = twin(w)
    x, y = nchw(w["x"]), w["y"]
    out = {"fc_seed": SEED_FC, "road_seed": SEED_ROAD, "fc_nr_runs": FC["nr_runs"],
           "fc_subset_size": FC["subset_size"], "road_check_percentages": CHECK_PERCENTAGES}

    for name in ATTRIBUTIONS:
        a = nchw(w[name])
        tag = name[2:]
        # ROAD, noise off, default percentages.
        per, curve, order = road(model, x, y, a, noise=0.0)
        out[f"road_{tag}_clean"], out[f"road_{tag}_clean_curve"] = per, curve
        out[f"road_{tag}_order"] = order
        # ROAD with Quantus's noise (0.01), seeded; the randn draws recorded and replayed.
        with Record("randn", "uniform", "choice") as rec:
            per, curve, _ = road(model, x, y, a, seed=SEED_ROAD)
        assert replays(rec.calls, SEED_ROAD), "ROAD's noise does not replay"
        assert {c[0] for c in rec.calls} == {"randn"}
        out[f"road_{tag}_noisy"], out[f"road_{tag}_noisy_curve"] = per, curve
        # FaithfulnessCorrelation, seeded; its choice draws recorded and replayed.
        np.random.seed(SEED_FC)
        with Record("randn", "uniform", "choice") as rec:
            fc = quantus.FaithfulnessCorrelation(disable_warnings=True, return_aggregate=False,
                                                 **FC)(model, x, y, a)
        assert replays(rec.calls, SEED_FC), "the subsets do not replay"
        # per run: one choice per sample, then the baseline's uniform(size=N), drawn (unused
        # for "black") whenever Quantus builds its dict of baselines
        assert [c[0] for c in rec.calls] == (["choice"] * len(x) + ["uniform"]) * FC["nr_runs"]
        out[f"fc_{tag}"] = np.array(fc)
        # Infidelity: default (patch 4, 10 repeats, black), patches [2, 4], one repeat.
        for key, kw in (("", {}), ("_patches24", {"perturb_patch_sizes": [2, 4]}),
                        ("_once", {"n_perturb_samples": 1})):
            out[f"infidelity_{tag}{key}"] = np.array(
                quantus.Infidelity(disable_warnings=True, **kw)(model, x, y, a))

    a = nchw(w["a_epsilon"])
    # Infidelity normalises by the max |a| over the whole a_batch given, not per sample.
    out["infidelity_epsilon_normalised"] = np.array(
        quantus.Infidelity(disable_warnings=True, normalise=True)(model, x, y, a))
    out["infidelity_global_max"] = np.abs(a).max()
    # ROAD's curve averages the first batch only: batch_size 8 of the 16 digits.
    _, out["road_epsilon_batch8_curve"], _ = road(model, x, y, a, noise=0.0, batch_size=8,
                                                  percentages=CHECK_PERCENTAGES)
    out["road_rgb_error"] = road_rgb_error(model, x, y, a)
    try:
        quantus.Infidelity(disable_warnings=True, perturb_patch_sizes=[3])(model, x, y, a)
        out["infidelity_patch3_error"] = "none"
    except Exception as error:  # noqa: BLE001 (recorded, whatever it is)
        out["infidelity_patch3_error"] = f"{type(error).__name__}: {error}"
    np.savez_compressed(OUT, **out)
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")
    for k in sorted(out):
        v = np.asarray(out[k])
        print(f"  {k}: {v.shape} {v.dtype}" + (f" {v}" if v.size < 5 else f" mean {v.mean():.6g}"
                                               if v.dtype.kind in "fiu" else ""))
    if "--time" in sys.argv:
        timing(model, x, y, a)


def road_rgb_error(model, x, y, a) -> str:
    """What Quantus's ROAD does with a three-channel image (the digit in every channel, a
    model averaging the channels): it sorts C·H·W positions and imputes on the H·W grid."""
    import torch

    class Grey(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, v):
            return self.inner(v.mean(1, keepdim=True))

    try:
        quantus.ROAD(disable_warnings=True, percentages=[10, 50])(
            Grey(model).eval(), np.repeat(x, 3, axis=1), y, a[:, 0])
        return "none"
    except Exception as error:  # noqa: BLE001 (recorded, whatever it is)
        return f"{type(error).__name__}: {error}"


def timing(model, x, y, a):
    for copies in (1, 16):
        xs, ys, as_ = (np.tile(v, (copies,) + (1,) * (v.ndim - 1)) for v in (x, y, a))
        start = time.perf_counter()
        quantus.ROAD(disable_warnings=True)(model, xs, ys, as_, batch_size=len(xs))
        print(f"Quantus ROAD, {len(xs)} digits, 50 percentages: "
              f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
