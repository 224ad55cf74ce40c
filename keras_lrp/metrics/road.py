"""ROAD: remove the most relevant features, impute them from their neighbours, re-classify.

The imputation (Rong et al.'s noisy linear imputation) sets every removed pixel to the weighted
mean of its 8 neighbours, removed or not, which is a sparse linear system over the removed
pixels; it is solved here in NumPy by conjugate gradients, all samples and percentages of a
model call at once (:func:`noisy_linear_imputation`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from keras_lrp.metrics.base import Layout, Metric, prepare_relevance
from keras_lrp.metrics.stochastic import perturbed_scores

#: Neighbour offsets and weights of a pixel (Rong et al.; Quantus): sides 1/6, corners 1/12.
STENCIL_2D = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
              ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))
#: The same for a feature of a 1-D signal (tabular rows): its two neighbours, 1/2 each.
STENCIL_1D = (((-1,), 1 / 2), ((1,), 1 / 2))


class _Stencil:
    """v ↦ Σ_o w_o · v shifted by o (zero outside the grid) for v of shape ``(*grid, K)``, the
    systems last (contiguous), with :data:`STENCIL_2D` (as (K ⊛ v − 4 v) / 12, K = [1 2 1]ᵀ
    [1 2 1], two 1-D passes) or :data:`STENCIL_1D`; one padded buffer reused."""

    def __init__(self, shape):
        self.pad = np.zeros(tuple(g + 2 for g in shape[:-1]) + shape[-1:])
        self.two_d = len(shape) == 3

    def __call__(self, v: np.ndarray) -> np.ndarray:
        p = self.pad
        if not self.two_d:
            p[1:-1] = v
            return 0.5 * (p[:-2] + p[2:])
        p[1:-1, 1:-1] = v
        t = p[:-2] + p[2:]
        t += 2 * p[1:-1]
        s = t[:, :-2] + t[:, 2:]
        s += 2 * t[:, 1:-1]
        s -= 4 * v
        s *= 1 / 12
        return s


def noisy_linear_imputation(x: np.ndarray, mask: np.ndarray, noise: float = 0.01,
                            draws: Optional[np.ndarray] = None, tol: float = 1e-10,
                            max_iter: Optional[int] = None) -> np.ndarray:
    """Rong et al.'s noisy linear imputation, batched: x ``(B, *grid, C)``, mask ``(B, *grid)`` True
    where removed → x with each removed value u_i solving

        D_i u_i − Σ_{j removed} w_ij u_j = Σ_{j kept} w_ij x_j,   D_i = Σ_{j in the grid} w_ij

    (u_i the w-weighted mean of its neighbours; :data:`STENCIL_2D` on images (B, H, W, C),
    :data:`STENCIL_1D` on rows (B, F, C)), plus ``noise`` · ``draws`` (standard normal, shaped
    like x; None: no noise). The matrix D − W restricted to the removed features is symmetric
    positive definite whenever some feature is kept (a component of removed pixels borders a
    kept one), so conjugate gradients solve it, matrix-free with the stencil, every sample and
    channel a system of its own, all at once; they stop at a relative residual ``tol`` (or
    after ``max_iter``, default 2 · removed features + 10). Where every feature is removed
    there is nothing to impute from: 0 (plus noise)."""
    x = np.asarray(x, dtype=np.float64)
    batch, grid, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    if len(grid) not in (1, 2) or np.shape(mask) != x.shape[:-1]:
        raise ValueError(f"x must be (B, H, W, C) or (B, F, C) and mask x's shape without C; "
                         f"got {x.shape} and {np.shape(mask)}.")
    last = tuple(range(1, len(grid) + 1)) + (0,)
    v = np.transpose(x, last + (len(grid) + 1,)).reshape(grid + (-1,))    # (*grid, B·C)
    m = np.repeat(np.transpose(np.asarray(mask, dtype=np.float64), last), channels, axis=-1)
    axes = tuple(range(len(grid)))
    degree = _Stencil(grid + (1,))(np.ones(grid + (1,)))
    stencil = _Stencil(v.shape)
    r = m * stencil(v * (1 - m))
    u = np.zeros_like(v)
    p = r.copy()
    rr = (r * r).sum(axis=axes)
    stop = (tol ** 2) * rr
    limit = max_iter if max_iter is not None else 2 * int(m.sum(axis=axes).max(initial=0)) + 10
    for _ in range(limit):
        if np.all(rr <= stop):
            break
        ap = m * (degree * p - stencil(p))
        pap = (p * ap).sum(axis=axes)
        alpha = np.divide(rr, pap, out=np.zeros_like(rr), where=pap > 0)
        u += alpha * p
        r -= alpha * ap
        new = (r * r).sum(axis=axes)
        p = r + np.divide(new, rr, out=np.zeros_like(rr), where=rr > 0) * p
        rr = new
    u = np.moveaxis((v * (1 - m) + m * u).reshape(grid + (batch, channels)), -2, 0)
    if draws is not None and noise:
        u = u + np.asarray(mask, dtype=bool)[..., None] * noise * np.asarray(draws, np.float64)
    return u


class ROAD(Metric):
    """ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and
    Efficient Evaluation Strategy for Attribution Methods", ICML 2022):

        ROAD(p) = 1[ argmax f(x̃_p) = y ],   x̃_p = NLI(x, top p % of the features by a)

    for each percentage p: the ⌊P · p / 100⌋ most relevant features (MoRF; ``order="lerf"``
    the least relevant) are removed and imputed by noisy linear imputation (NLI: each the
    weighted mean of its neighbours, solved jointly, plus N(0, noise²)), see
    :func:`noisy_linear_imputation`. ``evaluate`` returns the (N, len(percentages)) 0/1
    curves; :meth:`curve` the accuracy per percentage (what Quantus returns, as a dict);
    :meth:`per_sample` the mean over percentages. MoRF: lower is better; LeRF: higher.

    What differs from Quantus 0.6: its curve averages only the first batch of ``batch_size``
    (64) samples; it fails on images of more than one channel (it sorts C·H·W values but
    imputes on the H·W grid); it has no LeRF order; ties in the relevance are broken here by
    position (a stable sort; Quantus's sort is not stable). Its noise comes from
    ``np.random.randn``; here from ``np.random.default_rng(seed)``, or replayed: the call
    takes ``noise_draws``, standard normal draws shaped ``(len(percentages), *x.shape)``, of which
    the removed features' are used. Tabular rows (N, F) are imputed as 1-D signals (each
    feature from its two neighbours, weight 1/2 each): meaningful where adjacent features are
    related. Token ids are refused: there is no neighbour mean of a token.

    Args:
        percentages: percentages of the features removed (Quantus's default 1, 3, …, 99).
        noise: the standard deviation of the imputation noise (Quantus's default 0.01).
        abs, normalise: Quantus's attribution preprocessing (the order alone matters).
        order: "morf" (most relevant first, Quantus's and the default) or "lerf".
        seed: seeds the noise.
        inputs_per_call: at most this many imputed inputs per model call (see
            :func:`~keras_lrp.metrics.stochastic.perturbed_scores`): percentages are stacked,
            the whole batch in every call.
    """

    category = "faithfulness"

    def __init__(self, percentages: Optional[Sequence[float]] = None, noise: float = 0.01,
                 abs: bool = False, normalise: bool = True, order: str = "morf",
                 seed: Optional[int] = None, inputs_per_call: Optional[int] = None, **kwargs):
        self.percentages = list(range(1, 100, 2)) if percentages is None else list(percentages)
        if not self.percentages or min(self.percentages) < 0 or max(self.percentages) > 100:
            raise ValueError(f"percentages must be numbers in [0, 100]; got {percentages}.")
        if order not in ("morf", "lerf"):
            raise ValueError(f"order must be 'morf' or 'lerf'; got {order!r}.")
        self.noise, self.abs, self.normalise, self.order = float(noise), abs, normalise, order
        self.higher_is_better = order == "lerf"
        self.seed, self.inputs_per_call, self.softmax = seed, inputs_per_call, False

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None,
                 noise_draws=None, **kwargs) -> np.ndarray:
        if np.issubdtype(np.asarray(x).dtype, np.integer):
            raise ValueError(f"ROAD imputes a removed feature from its neighbours' values, which "
                             f"token ids (x of shape {np.shape(x)}, {np.asarray(x).dtype}) do "
                             "not have; use FaithfulnessCorrelation, Infidelity or a pixel-"
                             "flipping metric with token_baseline for tokens.")
        layout = Layout(x)
        n, features = len(x), layout.features
        r = prepare_relevance(a, layout, self.normalise, self.abs).reshape(n, -1)
        ranked = np.argsort(-r if self.order == "morf" else r, axis=1, kind="stable")
        counts = [int(features * p / 100) for p in self.percentages]
        steps = len(counts)
        grid = x.reshape((n,) + tuple(layout.shape[1:]) + (-1,))        # (N, *grid, C)
        if noise_draws is not None and np.shape(noise_draws) != (steps,) + x.shape:
            raise ValueError(f"noise_draws must be shaped (len(percentages), *x.shape) = "
                             f"{(steps,) + x.shape}; got {np.shape(noise_draws)}.")
        rng = np.random.default_rng(self.seed)

        def build(lo, hi):
            mask = np.zeros((hi - lo, n, features), dtype=bool)
            for i, k in enumerate(counts[lo:hi]):
                np.put_along_axis(mask[i], ranked[:, :k], True, axis=1)
            draws = (np.asarray(noise_draws[lo:hi]) if noise_draws is not None else
                     rng.standard_normal((hi - lo,) + x.shape) if self.noise else None)
            flat = (-1,) + grid.shape[1:]
            out = noisy_linear_imputation(
                np.broadcast_to(grid, (hi - lo,) + grid.shape).reshape(flat),
                mask.reshape(flat[:-1]), self.noise,
                None if draws is None else draws.reshape(flat))
            return out.reshape((hi - lo,) + x.shape).astype(x.dtype)

        out = perturbed_scores(scores, build, steps, x, self.inputs_per_call)
        return (out.argmax(axis=2) == targets[None]).T.astype(np.float64)

    def per_sample(self, values: np.ndarray) -> np.ndarray:
        """The mean of each sample's 0/1 curve over the percentages."""
        return np.asarray(values, dtype=np.float64).mean(axis=1)

    @staticmethod
    def curve(values: np.ndarray) -> np.ndarray:
        """The accuracy at each percentage, (len(percentages),): Quantus's ROAD result."""
        return np.asarray(values, dtype=np.float64).mean(axis=0)
