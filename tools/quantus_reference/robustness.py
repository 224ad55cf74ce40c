"""Write tests/data/quantus/robustness.npz: Quantus 0.6's robustness metrics on the digits twin.

Run it in Quantus' own environment (see twin.py), from the checkout's root:

    /tmp/quantus/bin/python tools/quantus_reference/robustness.py          # writes the .npz
    /tmp/quantus/bin/python tools/quantus_reference/robustness.py --time   # Quantus wall times

MaxSensitivity, AvgSensitivity, LocalLipschitzEstimate and Continuity run on the 16 digits of
inputs.npz with ``explain_func`` = twin.explain_gradient (``g``) and
twin.explain_input_x_gradient (``ixg``), and ``a_batch`` = keras-lrp's relevance for the same
analyzer (inputs.npz ``a_gradient`` / ``a_input_x_gradient``, NCHW).

The noise: Quantus draws it from NumPy's global generator, one ``np.random.uniform`` /
``np.random.normal`` call of shape (N, features) per round and nothing else in between; each
run seeds it with ``np.random.seed(SEED)`` first. The draws are therefore
``np.random.RandomState(SEED)``'s, which the test replays (keras-lrp's ``noise=`` argument);
this script checks that by recording the perturbed inputs Quantus explains.

Normalisation: Quantus' ``normalise_by_max`` divides by the max over *all* axes of the array it
gets, the batch axis included, so with ``normalise=True`` (LocalLipschitzEstimate's and
Continuity's default) a sample's value depends on the other samples of its batch. The runs we
match pass ``normalise_func_kwargs={"normalise_axes": (1, 2, 3)}`` (each sample by its own max,
keras-lrp's definition); ``lle_g_default16`` / ``lle_g_default8`` are Quantus' default on all 16
digits and on the first 8 with the same noise, which differ on those 8.

Continuity (Quantus 0.6) translates the images along x by ``-W + k·dx``, ``k = 1..nr_steps``,
``dx = (2W + 1) // nr_steps``: on 8-pixel-wide digits the default ``nr_steps=28`` gives dx = 0,
every step a shift by -8, i.e. the all-black image (``cont_g_default28``). Where a shift is 0
(nr_steps 8 and 6 here) x' = x and the step's value is ‖a − a'‖₁ / (0 + 1e-9): PyTorch's
gradients of the same digits in another memory layout differ in the last bits, which that turns
into values in the thousands. So the Continuity runs also keep each step's numerator
‖a − a'‖₁ and denominator ‖x − x'‖₂ (``<run>_num``, ``<run>_den``, (16, nr_steps)).
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import quantus  # noqa: E402
import twin  # noqa: E402
from quantus.functions import perturb_func  # noqa: E402
from quantus.metrics.robustness import continuity  # noqa: E402

OUT = os.path.join(twin.HERE, "..", "..", "tests", "data", "quantus", "robustness.npz")
EXPLAIN = {"g": (twin.explain_gradient, "a_gradient"),
           "ixg": (twin.explain_input_x_gradient, "a_input_x_gradient")}
PER_SAMPLE = {"normalise_axes": (1, 2, 3)}
SEED = {"maxsens": 1, "avgsens": 2, "lle": 3}
NR_SAMPLES = 200
LLE_DEFAULT_ROUNDS = 8


def _run(metric, model, x, y, a, explain, seed=None):
    if seed is not None:
        np.random.seed(seed)
    return np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, explain_func=explain,
                             channel_first=True, softmax=False), dtype=np.float64)


class _Recorder:
    """Wraps a Quantus perturb function and keeps what it returns."""

    def __init__(self, fn):
        self.fn, self.out = fn, []

    def __call__(self, arr, **kwargs):
        out = self.fn(arr, **kwargs)
        self.out.append(np.array(out))
        return out


class _Steps:
    """Records Continuity's per-step numerators ‖a − a'‖₁ and denominators ‖x − x'‖₂ (it
    calls distance_manhattan and distance_euclidean once per step)."""

    def __init__(self):
        self.num, self.den = [], []

    def __enter__(self):
        self.saved = continuity.distance_manhattan, continuity.distance_euclidean
        manhattan, euclidean = self.saved
        continuity.distance_manhattan = lambda a, b, **k: self._keep(self.num, manhattan(a, b))
        continuity.distance_euclidean = lambda a, b, **k: self._keep(self.den, euclidean(a, b))
        return self

    @staticmethod
    def _keep(where, value):
        where.append(np.array(value, dtype=np.float64))
        return value

    def __exit__(self, *exc):
        continuity.distance_manhattan, continuity.distance_euclidean = self.saved

    def arrays(self, name):
        return {f"{name}_num": np.stack(self.num, 1), f"{name}_den": np.stack(self.den, 1)}


def _continuity(res, name, model, x, y, a, explain, **kwargs):
    """Quantus' Continuity, its value and its per-step numerators and denominators."""
    with _Steps() as steps:
        res[name] = _run(quantus.Continuity(disable_warnings=True, normalise_func_kwargs=PER_SAMPLE,
                                            **kwargs), model, x, y, a, explain)
    res.update(steps.arrays(name))


class _Replay:
    """A perturb function adding given noise rows (for the batch-dependence check)."""

    def __init__(self, noise):
        self.noise, self.k = noise, 0

    def __call__(self, arr, **kwargs):
        out = (arr + self.noise[self.k][:len(arr)]).astype(arr.dtype)
        self.k += 1
        return out


def _check_draws(recorded, x, seed, draw):
    """The recorded perturbed inputs are x + RandomState(seed)'s draws, round by round."""
    rs = np.random.RandomState(seed)
    flat = x.reshape(len(x), -1)
    for out in recorded:
        want = (flat + draw(rs, flat.shape)).astype(x.dtype)
        np.testing.assert_array_equal(out, want)


def _uniform(lb):
    return lambda rs, shape: rs.uniform(-lb, lb, shape)


def _normal(std):
    return lambda rs, shape: rs.normal(0.0, std, shape)


def main(out: str = OUT) -> None:
    w = twin.load_inputs()
    model, x, y = twin.twin(w), twin.nchw(w["x"]), w["y"]
    res = {"seeds": np.array([SEED["maxsens"], SEED["avgsens"], SEED["lle"]]),
           "nr_samples": np.array(NR_SAMPLES)}
    q = dict(disable_warnings=True, nr_samples=NR_SAMPLES)
    for key, (explain, a_key) in EXPLAIN.items():
        a = twin.nchw(w[a_key])
        rec = _Recorder(perturb_func.batch_uniform_noise)
        res[f"maxsens_{key}"] = _run(quantus.MaxSensitivity(perturb_func=rec, **q),
                                     model, x, y, a, explain, SEED["maxsens"])
        _check_draws(rec.out, x, SEED["maxsens"], _uniform(0.2))
        rec = _Recorder(perturb_func.batch_uniform_noise)
        res[f"avgsens_{key}"] = _run(quantus.AvgSensitivity(perturb_func=rec, **q),
                                     model, x, y, a, explain, SEED["avgsens"])
        _check_draws(rec.out, x, SEED["avgsens"], _uniform(0.2))
        rec = _Recorder(perturb_func.batch_gaussian_noise)
        res[f"lle_{key}"] = _run(quantus.LocalLipschitzEstimate(
            perturb_func=rec, normalise_func_kwargs=PER_SAMPLE, **q),
            model, x, y, a, explain, SEED["lle"])
        _check_draws(rec.out, x, SEED["lle"], _normal(0.1))
        assert len(rec.out) == NR_SAMPLES
        # Continuity: nr_steps 8 (dx 2: shifts -6 … 8, the 0 and the all-black shift among
        # them) and 5 (dx 3: -5, -2, 1, 4, 7), each sample normalised by its own max. ixg runs
        # nr_steps 6 (dx 2: -6 … 4): shifted by 7 or 8 most digits have no input-times-gradient
        # relevance left, which Quantus divides by 0 (NaN) or refuses (all of the batch).
        for steps in ((8, 5) if key == "g" else (6,)):
            _continuity(res, f"cont_{key}_{steps}", model, x, y, a, explain, nr_steps=steps)
    a = twin.nchw(w["a_gradient"])
    # Continuity's default nr_steps=28 on 8-pixel-wide images: dx = 17 // 28 = 0.
    _continuity(res, "cont_g_default28", model, x, y, a, twin.explain_gradient)
    # Quantus' default normalisation (the batch's max): all 16 digits, then the first 8 with
    # the same noise rows.
    rs = np.random.RandomState(SEED["lle"])
    noise = np.stack([rs.normal(0.0, 0.1, (len(x), x[0].size)) for _ in range(LLE_DEFAULT_ROUNDS)])
    for n in (16, 8):
        res[f"lle_g_default{n}"] = _run(quantus.LocalLipschitzEstimate(
            perturb_func=_Replay(noise), disable_warnings=True, nr_samples=LLE_DEFAULT_ROUNDS),
            model, x[:n], y[:n], a[:n], twin.explain_gradient)
    res["lle_default_noise_seed"] = np.array(SEED["lle"])
    np.savez_compressed(out, **res)
    print(f"wrote {out}:")
    for k, v in res.items():
        print(f"  {k}: {np.round(v, 4) if v.ndim == 1 else v.shape if v.ndim else v}")


def timing() -> None:
    """Quantus' MaxSensitivity (nr_samples=200, its default) on 16 and 256 digits, one run."""
    w = twin.load_inputs()
    model = twin.twin(w)
    for reps in (1, 16):
        x = np.tile(twin.nchw(w["x"]), (reps, 1, 1, 1))
        y, a = np.tile(w["y"], reps), np.tile(twin.nchw(w["a_gradient"]), (reps, 1, 1, 1))
        metric = quantus.MaxSensitivity(disable_warnings=True)
        start = time.perf_counter()
        _run(metric, model, x, y, a, twin.explain_gradient, 0)
        print(f"Quantus MaxSensitivity, {len(x)} digits: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    timing() if "--time" in sys.argv else main()
