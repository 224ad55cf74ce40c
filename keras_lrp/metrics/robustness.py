"""Robustness: how far the explanation moves when the input moves a little.

Each metric explains perturbed copies of the inputs again (``explain``: an analyzer or a
callable ``(x, targets) → relevance``) and compares the new relevance ``a(x')`` with ``a(x)``.
The copies are *stacked*: every sample of the batch and as many perturbation rounds as fit
(``batch_size``; by default all rounds up to 2**24 input values) go to ONE explain call, and,
only where ``return_nan_when_prediction_changes`` needs the predictions, one model call.

Quantus 0.6 draws its noise from NumPy's global generator; ours comes from
``np.random.default_rng(seed)``, or is given (``noise=``, shaped ``(nr_samples, *x.shape)``:
the perturbed inputs are ``x + noise`` in float64, cast back to x's dtype, as in Quantus), which
replays Quantus' own draws exactly. ``return_rounds=True`` returns the per-round values
``(N, nr_samples)`` (``(N, nr_steps)`` for Continuity) before the max / mean.

Token ids are refused: noise on integer ids has no meaning (evaluate an embedding model on the
embedded floats instead, if the explainer can explain from the embeddings).
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from keras_lrp.analyzers.inputs import is_batch_stream
from keras_lrp.metrics.base import Layout, Metric, Scores, normalise_by_max

#: Without ``batch_size``, whole rounds are stacked until the stack would exceed these many
#: input values (64 MiB of float32): all 200 rounds of 256 MNIST digits, one of 64 ImageNet
#: images.
STACK_VALUES = 2 ** 24


def _prepare(a, n: int, normalise: bool, absolute: bool) -> np.ndarray:
    """Relevance flattened per sample (N, F), in Quantus' order: normalised (each sample by its
    own max |a|), then the absolute value."""
    a = np.asarray(a, dtype=np.float64).reshape(n, -1)
    if normalise:
        a = normalise_by_max(a)
    return np.abs(a) if absolute else a


def _norm(v: np.ndarray, ord: int = 2) -> np.ndarray:
    """Per-row norm over the last axis."""
    return np.linalg.norm(v, ord=ord, axis=-1)


class _Reexplaining(Metric):
    """Shared by the robustness metrics: explain stacked perturbed copies, reduce the rounds."""

    category = "robustness"
    higher_is_better = False
    needs_explain = True
    reduce = "max"

    def __init__(self, abs: bool, normalise: bool, return_nan_when_prediction_changes: bool,
                 batch_size: Optional[int], seed: Optional[int]):
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive int or None; got {batch_size!r}.")
        self.abs, self.normalise = bool(abs), bool(normalise)
        self.return_nan_when_prediction_changes = bool(return_nan_when_prediction_changes)
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, model, x, y=None, a=None, s=None, explain=None, **kwargs) -> np.ndarray:
        if is_batch_stream(x):
            return self.stream(model, x, y, a=a, s=s, explain=explain, **kwargs)
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(
                f"{type(self).__name__} perturbs x continuously, but x holds {x.dtype} values "
                f"(shape {x.shape}), e.g. token ids: noise on integer ids has no meaning. Give "
                "float inputs (for a token model: the embedded tokens, with a model and explain "
                "that take them).")
        return super().__call__(model, x, y, a=a, s=s, explain=explain, **kwargs)

    def _start(self, x, a, explainer) -> np.ndarray:
        if explainer is None:
            raise ValueError(f"{type(self).__name__} needs explain.")
        a0 = _prepare(a, len(x), self.normalise, self.abs)
        if not np.all(np.isfinite(a0)):
            raise ValueError(f"The relevance a holds {np.sum(~np.isfinite(a0))} NaN or infinite "
                             "values.")
        return a0

    def _chunks(self, rounds: int, x: np.ndarray):
        """(first, stop) round ranges, one explain call each."""
        n = len(x)
        per = (self.batch_size // n if self.batch_size else STACK_VALUES // max(x.size, 1))
        per = max(1, per)
        return [(i, min(i + per, rounds)) for i in range(0, rounds, per)]

    def _explained(self, scores: Scores, explainer, a0: np.ndarray, xs: np.ndarray,
                   targets: np.ndarray, first: np.ndarray):
        """The prepared relevance (k, N, F) of the stacked copies xs (k, N, …): one explain
        call; and which copies change the prediction (k, N): one model call, if asked."""
        k, n = xs.shape[:2]
        flat = xs.reshape((k * n,) + xs.shape[2:])
        ap = explainer(flat, np.tile(targets, k))
        if ap.size != flat.shape[0] * a0.shape[1]:
            raise ValueError(f"The explainer returned shape {ap.shape} for inputs of shape "
                             f"{flat.shape}; the relevance a has {a0.shape[1]} values per sample.")
        ap = _prepare(ap, k * n, self.normalise, self.abs).reshape(k, n, -1)
        changed = np.zeros((k, n), dtype=bool)
        if self.return_nan_when_prediction_changes:
            changed = scores(flat).argmax(axis=1).reshape(k, n) != first.argmax(axis=1)
        return ap, changed

    def _reduce(self, values: np.ndarray, return_rounds: bool) -> np.ndarray:
        """(N, rounds) → (N,): max or mean; NaN (a changed prediction) propagates where
        ``return_nan_when_prediction_changes``, else is skipped (Quantus' np.nanmax)."""
        if return_rounds:
            return values
        strict = self.return_nan_when_prediction_changes
        if self.reduce == "mean":
            return (np.mean if strict else np.nanmean)(values, axis=1)
        return (np.max if strict else np.nanmax)(values, axis=1)


class _Noise(_Reexplaining):
    """Metrics on nr_samples rounds of additive noise."""

    def __init__(self, nr_samples: int, abs: bool, normalise: bool,
                 return_nan_when_prediction_changes: bool, batch_size: Optional[int],
                 seed: Optional[int]):
        super().__init__(abs, normalise, return_nan_when_prediction_changes, batch_size, seed)
        if isinstance(nr_samples, bool) or int(nr_samples) < 1:
            raise ValueError(f"nr_samples must be a positive int; got {nr_samples!r}.")
        self.nr_samples = int(nr_samples)

    def _draw(self, rng: np.random.Generator, shape) -> np.ndarray:
        raise NotImplementedError

    def _similarity(self, a0, ap, x, xp) -> np.ndarray:
        raise NotImplementedError

    def _given(self, noise, x: np.ndarray) -> np.ndarray:
        noise = np.asarray(noise, dtype=np.float64)
        want = (self.nr_samples,) + x.shape
        if noise.shape != want and noise.shape != (self.nr_samples, len(x), x[0].size):
            raise ValueError(f"noise must have shape {want} (nr_samples, *x.shape) or "
                             f"{want[:2] + (x[0].size,)}; got {noise.shape}.")
        return noise.reshape(want)

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, noise=None,
                 return_rounds: bool = False, **kwargs) -> np.ndarray:
        a0 = self._start(x, a, explainer)
        noise = None if noise is None else self._given(noise, x)
        rng = np.random.default_rng(self.seed)
        values = np.empty((len(x), self.nr_samples))
        flat_x = x.reshape(len(x), -1).astype(np.float64)
        for lo, hi in self._chunks(self.nr_samples, x):
            d = noise[lo:hi] if noise is not None else self._draw(rng, (hi - lo,) + x.shape)
            xp = (x.astype(np.float64) + d).astype(x.dtype)
            ap, changed = self._explained(scores, explainer, a0, xp, targets, first)
            flat_xp = xp.reshape(hi - lo, len(x), -1).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                v = self._similarity(a0, ap, flat_x, flat_xp)
            v[changed] = np.nan
            values[:, lo:hi] = v.T
        return self._reduce(values, return_rounds)


class _Sensitivity(_Noise):
    """Yeh et al.'s sensitivity, reduced by :attr:`reduce`."""

    def __init__(self, nr_samples: int = 200, lower_bound: float = 0.2,
                 upper_bound: Optional[float] = None, abs: bool = False, normalise: bool = False,
                 return_nan_when_prediction_changes: bool = False,
                 batch_size: Optional[int] = None, seed: Optional[int] = None):
        super().__init__(nr_samples, abs, normalise, return_nan_when_prediction_changes,
                         batch_size, seed)
        if upper_bound is not None and upper_bound <= lower_bound:
            raise ValueError(f"upper_bound ({upper_bound}) must exceed lower_bound "
                             f"({lower_bound}).")
        self.lower_bound, self.upper_bound = float(lower_bound), upper_bound

    def _draw(self, rng, shape):
        if self.upper_bound is None:
            return rng.uniform(-self.lower_bound, self.lower_bound, shape)
        return rng.uniform(self.lower_bound, self.upper_bound, shape)

    def _similarity(self, a0, ap, x, xp):
        return _norm(a0 - ap) / _norm(a0)


class MaxSensitivity(_Sensitivity):
    """Max-Sensitivity: the largest relative change of the explanation under small uniform noise.

        SENS_max(x) = max_{k=1..nr_samples} ‖a(x) − a(x + δ_k)‖₂ / ‖a(x)‖₂,
        δ_k ~ U[−lower_bound, lower_bound] per input value (U[lower_bound, upper_bound] where
        upper_bound is given), a(x + δ_k) explaining the same target.

    Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and Sensitivity of
    Explanations", NeurIPS 2019 (the ‖a(x)‖ denominator is Quantus' relative form, after
    Bhatt et al., IJCAI 2020). Lower is better.

    Quantus 0.6's parameters and defaults (nr_samples=200, lower_bound=0.2, abs and normalise
    off; normalise divides each sample by its own max |a|, where Quantus' normalise_by_max
    divides by the max over the whole batch); its similarity and norm functions are fixed to
    its defaults (difference, Frobenius norms). ``return_nan_when_prediction_changes``: a round
    whose argmax differs from the unperturbed one is NaN (and then so is the max). Extra:
    ``seed`` (default_rng), ``batch_size`` (the most inputs per explain call) and, at call
    time, ``noise=`` (replay given draws) and ``return_rounds=True``.
    """

    reduce = "max"


class AvgSensitivity(_Sensitivity):
    """Avg-Sensitivity: the mean relative change of the explanation under small uniform noise.

        SENS_avg(x) = 1/nr_samples Σ_k ‖a(x) − a(x + δ_k)‖₂ / ‖a(x)‖₂,   δ_k as in
        :class:`MaxSensitivity`.

    Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019 (Quantus'
    relative form after Bhatt et al., IJCAI 2020). Lower is better. Parameters and departures
    from Quantus as :class:`MaxSensitivity`'s.
    """

    reduce = "mean"


class LocalLipschitzEstimate(_Noise):
    """Local Lipschitz estimate of the explanation under Gaussian noise.

        L(x) = max_{k=1..nr_samples} ‖a(x) − a(x'_k)‖₂ / (‖x − x'_k‖₂ + 1e-10),
        x'_k = x + ε_k,  ε_k ~ N(perturb_mean, perturb_std²) per input value.

    Alvarez-Melis and Jaakkola, "On the Robustness of Interpretability Methods", ICML Workshop
    on Human Interpretability in Machine Learning (WHI) 2018: the max over a neighbourhood,
    estimated by sampling. Lower is better.

    Quantus 0.6's parameters and defaults (nr_samples=200, perturb_std=0.1, normalise=True,
    abs=False; its lipschitz_constant with Euclidean distances). normalise divides each sample
    by its own max |a|: Quantus' normalise_by_max divides by the max over the whole batch
    (every axis), so there a sample's value depends on the others in its batch; ours equals
    Quantus with ``normalise_func_kwargs={"normalise_axes": (1, 2, 3)}``. Extras as
    :class:`MaxSensitivity`'s.
    """

    reduce = "max"

    def __init__(self, nr_samples: int = 200, perturb_mean: float = 0.0,
                 perturb_std: float = 0.1, abs: bool = False, normalise: bool = True,
                 return_nan_when_prediction_changes: bool = False,
                 batch_size: Optional[int] = None, seed: Optional[int] = None):
        super().__init__(nr_samples, abs, normalise, return_nan_when_prediction_changes,
                         batch_size, seed)
        self.perturb_mean, self.perturb_std = float(perturb_mean), float(perturb_std)

    def _draw(self, rng, shape):
        return rng.normal(self.perturb_mean, self.perturb_std, shape)

    def _similarity(self, a0, ap, x, xp):
        return _norm(a0 - ap) / (_norm(x - xp) + 1e-10)


class Continuity(_Reexplaining):
    """Continuity: the largest change of the explanation per change of the input, over
    horizontal translations of each image.

        C(x) = max_{t ∈ shifts, x_t ≠ x} ‖a(x) − a(x_t)‖₁ / (‖x − x_t‖₂ + 1e-9),

    x_t the image shifted by t pixels along its width (axis 2), the uncovered columns set to
    ``perturb_baseline`` (default "black": the sample's min); shifts t_k = −W + k·dx for
    k = 1..nr_steps, dx = max(1, (2W + 1) // nr_steps); a shift of W or more leaves only the
    baseline. Relevance as Quantus' defaults: normalised (each sample by its max |a|), then
    absolute.

    Montavon, Samek and Müller, "Methods for interpreting and understanding deep neural
    networks", Digital Signal Processing 73, 2018 (explanation continuity:
    max_{x ≠ x'} ‖R(x) − R(x')‖₁ / ‖x − x'‖₂, shown on a translated image). Lower is better.
    Returns (N,) as Quantus 0.6 does (whose Continuity is this max, no longer the patch
    correlations of earlier Quantus releases).

    Differs from Quantus 0.6: (1) Quantus' dx = (2W + 1) // nr_steps is 0 where
    nr_steps > 2W + 1 (the default 28 on images narrower than 14 pixels), every step then the
    same shift by −W (the baseline image); ours steps by at least one pixel. (2) A shift of 0
    (x_t = x) counts 0: Quantus divides the explainer's float noise ‖a(x) − a(x)‖₁ by 1e-9
    there (values in the thousands on the digits CNN). (3) Quantus raises IndexError for a
    shift of W + 1 (e.g. nr_steps = 2W + 1); ours treats it as W. (4) Quantus re-explains x
    and ignores a; ours uses a (the same when a = explain(x)). (5) Quantus ignores
    perturb_baseline ("black" always); ours applies it. (6) normalise: per sample, where
    Quantus' divides by the batch's max. (7) ``return_nan_when_prediction_changes`` compares
    with the unperturbed prediction (Quantus: with y). ``seed`` serves the "uniform" baseline;
    ``batch_size`` and ``return_rounds`` as :class:`MaxSensitivity`'s.
    """

    reduce = "max"

    def __init__(self, nr_steps: int = 28, abs: bool = True, normalise: bool = True,
                 perturb_baseline: Union[str, float] = "black",
                 return_nan_when_prediction_changes: bool = False,
                 batch_size: Optional[int] = None, seed: Optional[int] = None):
        super().__init__(abs, normalise, return_nan_when_prediction_changes, batch_size, seed)
        if isinstance(nr_steps, bool) or int(nr_steps) < 1:
            raise ValueError(f"nr_steps must be a positive int; got {nr_steps!r}.")
        self.nr_steps, self.perturb_baseline = int(nr_steps), perturb_baseline

    def shifts(self, width: int) -> np.ndarray:
        """The translations (pixels along the width) for images ``width`` pixels wide."""
        dx = max(1, (2 * width + 1) // self.nr_steps)
        return -width + dx * np.arange(1, self.nr_steps + 1)

    @staticmethod
    def translate(x: np.ndarray, baseline: np.ndarray, t: int) -> np.ndarray:
        """x shifted by t pixels along axis 2, the uncovered columns taken from baseline."""
        out = baseline.copy()
        w = x.shape[2]
        if 0 <= t < w:
            out[:, :, t:] = x[:, :, :w - t]
        elif -w < t < 0:
            out[:, :, :w + t] = x[:, :, -t:]
        return out

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None,
                 return_rounds: bool = False, **kwargs) -> np.ndarray:
        if x.ndim not in (3, 4):
            raise ValueError(f"Continuity translates images (N, H, W) or (N, H, W, C) along "
                             f"their width; got x of shape {x.shape}.")
        a0 = self._start(x, a, explainer)
        baseline = Layout(x).baseline(self.perturb_baseline, np.random.default_rng(self.seed))
        shifts = self.shifts(x.shape[2])
        values = np.empty((len(x), self.nr_steps))
        flat_x = x.reshape(len(x), -1).astype(np.float64)
        for lo, hi in self._chunks(self.nr_steps, x):
            xs = np.stack([self.translate(x, baseline, t) for t in shifts[lo:hi]])
            ap, changed = self._explained(scores, explainer, a0, xs, targets, first)
            dist = _norm(flat_x - xs.reshape(hi - lo, len(x), -1).astype(np.float64))
            num = _norm(a0 - ap, ord=1)
            v = np.where(dist > 0, num / (dist + 1e-9), 0.0)
            v[changed] = np.nan
            values[:, lo:hi] = v.T
        return self._reduce(values, return_rounds)
