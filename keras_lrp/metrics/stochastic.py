"""Faithfulness by random or patch-wise perturbation: FaithfulnessCorrelation and Infidelity.

Both compare what the relevance predicts a perturbation costs with what it costs the model:
the sum of relevance over a random feature subset against the score drop when the subset
takes the baseline (Bhatt et al.), and the relevance-weighted input change against the score
drop, as a squared error (Yeh et al.). Every model call takes the whole batch; several runs
(steps) are stacked into one call (see :func:`perturbed_scores`).
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np

from keras_lrp.metrics.base import Layout, Metric, Scores, prepare_relevance
from keras_lrp.metrics.similarity import pearson  # noqa: F401

#: Auto stacking: at most this many inputs per model call, and this many input values.
MAX_STACK_INPUTS = 4096
MAX_STACK_VALUES = 2 ** 24


def perturbed_scores(scores: Scores, build: Callable[[int, int], np.ndarray], steps: int,
                     x: np.ndarray, inputs_per_call: Optional[int] = None) -> np.ndarray:
    """The model's scores on ``steps`` perturbed copies of the batch x: (steps, N, K).

    ``build(lo, hi)`` returns the inputs of steps lo..hi-1, (hi - lo, N, …x). Steps are
    stacked into one model call up to ``inputs_per_call`` inputs (None: as many as fit in
    :data:`MAX_STACK_INPUTS` inputs and :data:`MAX_STACK_VALUES` input values); every call
    holds at least one whole step, i.e. the whole batch."""
    n = len(x)
    if inputs_per_call is None:
        size = max(int(np.prod(x.shape[1:])), 1)
        inputs_per_call = max(1, min(MAX_STACK_INPUTS, MAX_STACK_VALUES // size))
    per_call = max(1, int(inputs_per_call) // max(n, 1))

    def steps_of_each_call():
        for lo in range(0, steps, per_call):
            yield from build(lo, min(steps, lo + per_call))

    return scores.stacked(steps_of_each_call(), per_call=per_call)


def grid_mask(layout: Layout, mask: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A per-feature mask (…, N, P) shaped to broadcast against x's layout (…, N, …x)."""
    m = mask.reshape(mask.shape[:-1] + tuple(layout.shape[1:]))
    return m[..., None] if layout.kind == "image" and x.ndim == 4 else m


class FaithfulnessCorrelation(Metric):
    """Faithfulness correlation (Bhatt, Weller and Moura, "Evaluating and Aggregating
    Feature-based Model Explanations", IJCAI 2020):

        μ_F = corr_{S ⊂ features, |S| = subset_size} ( Σ_{i∈S} a_i ,  f_y(x) − f_y(x_[x_S = b]) )

    Pearson's r over ``nr_runs`` random subsets S (drawn uniformly, without replacement, per
    sample and run) of Σ relevance on S and the drop of the target score when S takes the
    baseline b (``perturb_baseline``). One value per sample in [-1, 1] (NaN where either side
    is constant); higher is better.

    Quantus 0.6 computes the same on ``x`` flattened channels first, so its subsets are of
    channel values; here a feature is a pixel (all its channels together), relevance summed
    over channels; for one channel they agree. Quantus draws S with ``np.random.choice``; here
    they come from ``np.random.default_rng(seed)``, or are given: ``indices`` (nr_runs, N,
    subset_size) in the call replays given draws (e.g. Quantus's). ``perturb_baseline``
    "uniform" draws uniform noise per feature (Quantus: one value per sample and run).
    Token ids (N, T) work: a token of S becomes ``token_baseline``.

    Args:
        nr_runs: the number of random subsets per sample (Quantus's default 100).
        subset_size: |S|, fewer than the features (Quantus's default 224).
        abs, normalise: Quantus's attribution preprocessing (Pearson's r does not see a
            positive scale, so ``normalise`` changes nothing).
        perturb_baseline: what S becomes (see :meth:`Layout.baseline`).
        softmax: score probabilities instead of logits (Quantus's default False).
        token_baseline: the id a removed token takes (token inputs).
        seed: seeds the subset draws.
        inputs_per_call: at most this many perturbed inputs per model call (None: auto; see
            :func:`perturbed_scores`): runs are stacked, the whole batch in every call.
    """

    higher_is_better = True
    category = "faithfulness"

    def __init__(self, nr_runs: int = 100, subset_size: int = 224, abs: bool = False,
                 normalise: bool = True, perturb_baseline: Union[str, float] = "black",
                 softmax: bool = False, token_baseline: Optional[int] = None,
                 seed: Optional[int] = None, inputs_per_call: Optional[int] = None, **kwargs):
        if int(nr_runs) < 2 or int(subset_size) < 1:
            raise ValueError(f"nr_runs must be at least 2 (a correlation needs two runs) and "
                             f"subset_size at least 1; got {nr_runs}, {subset_size}.")
        self.nr_runs, self.subset_size = int(nr_runs), int(subset_size)
        self.abs, self.normalise, self.softmax = abs, normalise, softmax
        self.perturb_baseline, self.token_baseline = perturb_baseline, token_baseline
        self.seed, self.inputs_per_call, self.kwargs = seed, inputs_per_call, kwargs

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None,
                 indices=None, **kwargs) -> np.ndarray:
        layout = Layout(x, self.token_baseline)
        n, features = len(x), layout.features
        if self.subset_size >= features:
            raise ValueError(f"subset_size ({self.subset_size}) must be smaller than the "
                             f"{features} features of each sample of x {x.shape}.")
        r = prepare_relevance(a, layout, self.normalise, self.abs).reshape(n, -1)
        rng = np.random.default_rng(self.seed)
        idx = self._indices(indices, rng, n, features)
        base = layout.baseline(self.perturb_baseline, rng, **self.kwargs)
        first = scores(x) if first is None else first
        rows = np.arange(n)

        def build(lo, hi):
            mask = np.zeros((hi - lo, n, features), dtype=bool)
            np.put_along_axis(mask, idx[lo:hi], True, axis=2)
            return np.where(grid_mask(layout, mask, x), base, x).astype(x.dtype, copy=False)

        out = perturbed_scores(scores, build, self.nr_runs, x, self.inputs_per_call)
        deltas = first[rows, targets][None] - out[:, rows, targets]      # (R, N)
        sums = np.take_along_axis(r[None], idx, axis=2).sum(axis=2)      # (R, N)
        return pearson(sums.T, deltas.T)

    def _indices(self, indices, rng, n, features) -> np.ndarray:
        shape = (self.nr_runs, n, self.subset_size)
        if indices is None:      # a uniform subset per run and sample: the s smallest keys
            return np.stack([np.argpartition(rng.random((n, features)), self.subset_size - 1,
                                             axis=1)[:, :self.subset_size]
                             for _ in range(self.nr_runs)])
        idx = np.asarray(indices)
        if idx.shape != shape or not np.issubdtype(idx.dtype, np.integer) or \
                idx.min() < 0 or idx.max() >= features:
            raise ValueError(f"indices must be {shape} feature indices in [0, {features}) "
                             f"(nr_runs, N, subset_size); got shape {idx.shape}.")
        if any(len(np.unique(row)) != self.subset_size for row in idx.reshape(-1, shape[2])):
            raise ValueError("indices must draw each subset without replacement.")
        return idx.astype(np.int64)


class Infidelity(Metric):
    """Infidelity (Yeh, Hsieh, Suggala, Inouye and Ravikumar, "On the (In)fidelity and
    Sensitivity of Explanations", NeurIPS 2019):

        INFD(a, f, x) = E_I [ ( Iᵀ a − (f_y(x) − f_y(x − I)) )² ]

    with Quantus 0.6's perturbations I: for each patch size p, the image is cut into p × p
    patches (in raster order, the grid centred as Quantus pads it) and step k replaces patches
    1..k with the baseline, cumulatively, so I_k = x − x̃_k; the expectation is the mean over
    the steps (``loss_func`` "mse"), then over patch sizes. Lower is better.

    As in Quantus these perturbations are deterministic: with a fixed baseline ("black",
    "white", "mean", "zero", a number) every one of Quantus's ``n_perturb_samples`` repeats
    gives the same value, so it is computed once; with "uniform" each repeat draws a new
    baseline. What differs from Quantus: patch grids that do not divide the image are cropped
    at the border (Quantus fails there); "mean" is the mean of the original x (Quantus takes
    that of the partly perturbed one); ``normalise=True`` divides each sample by its own
    max |a| (Quantus: by the max over the whole a_batch given). Tabular (N, F) and token
    (N, T) inputs use windows of p consecutive features; for tokens Iᵀa is the relevance of
    the replaced tokens (an id difference means nothing).

    Args:
        loss_func: "mse", or a callable ``(a=score_drops, b=Iᵀa, batched=True)`` of (N, steps)
            arrays → (N,) (Quantus's signature).
        perturb_patch_sizes: patch sizes p (Quantus's default [4]).
        n_perturb_samples: repeats (draws of a random baseline).
        abs, normalise: Quantus's attribution preprocessing (defaults False, False).
        perturb_baseline: what a patch becomes (see :meth:`Layout.baseline`).
        softmax: score probabilities instead of logits (Quantus's default False).
        token_baseline: the id a replaced token takes (token inputs).
        seed: seeds random baselines.
        inputs_per_call: at most this many perturbed inputs per model call (see
            :func:`perturbed_scores`): all steps of all patch sizes and repeats are stacked.
    """

    higher_is_better = False
    category = "faithfulness"

    def __init__(self, loss_func: Union[str, Callable] = "mse", perturb_patch_sizes=None,
                 n_perturb_samples: int = 10, abs: bool = False, normalise: bool = False,
                 perturb_baseline: Union[str, float] = "black", softmax: bool = False,
                 token_baseline: Optional[int] = None, seed: Optional[int] = None,
                 inputs_per_call: Optional[int] = None, **kwargs):
        if loss_func == "mse":
            loss_func = _mse
        if not callable(loss_func):
            raise ValueError(f"loss_func must be 'mse' or a callable; got {loss_func!r}.")
        sizes = [4] if perturb_patch_sizes is None else [int(p) for p in perturb_patch_sizes]
        if not sizes or min(sizes) < 1 or int(n_perturb_samples) < 1:
            raise ValueError(f"perturb_patch_sizes must hold sizes ≥ 1 and n_perturb_samples "
                             f"be ≥ 1; got {perturb_patch_sizes}, {n_perturb_samples}.")
        self.loss_func, self.perturb_patch_sizes = loss_func, sizes
        self.n_perturb_samples = int(n_perturb_samples)
        self.abs, self.normalise, self.softmax = abs, normalise, softmax
        self.perturb_baseline, self.token_baseline = perturb_baseline, token_baseline
        self.seed, self.inputs_per_call, self.kwargs = seed, inputs_per_call, kwargs

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None,
                 **kwargs) -> np.ndarray:
        layout = Layout(x, self.token_baseline)
        n = len(x)
        r = self._relevance(a, layout, x)
        rng = np.random.default_rng(self.seed)
        random = self.perturb_baseline in ("uniform", "random") and layout.kind != "tokens"
        repeats = self.n_perturb_samples if random else 1
        bases = [layout.baseline(self.perturb_baseline, rng, **self.kwargs)
                 for _ in range(repeats)]
        blocks = [patch_blocks(layout, p) for p in self.perturb_patch_sizes]
        sizes = [int(b.max()) + 1 for b in blocks]
        plan = [(i, k) for i, size in enumerate(sizes) for k in range(size)]  # steps
        steps = len(plan)

        def build(lo, hi):
            out = []
            for j in range(lo, hi):
                i, k = plan[j % steps]
                mask = grid_mask(layout, (blocks[i] <= k)[None], x)
                out.append(np.where(mask, bases[j // steps], x))
            return np.stack(out).astype(x.dtype, copy=False)

        first = scores(x) if first is None else first
        rows = np.arange(n)
        out = perturbed_scores(scores, build, steps * repeats, x, self.inputs_per_call)
        drops = first[rows, targets][None] - out[:, rows, targets]       # (steps·repeats, N)
        values = []
        for j, base in enumerate(bases):
            # Iᵀa per feature: relevance times the change, summed over a pixel's channels
            change = r if layout.kind == "tokens" else r * (x.astype(np.float64) - base)
            change = change.reshape(n, layout.features, -1).sum(axis=2)
            losses, lo = [], j * steps
            for block, size in zip(blocks, sizes):
                per_block = np.stack([np.bincount(block, c, size) for c in change])
                ia = np.cumsum(per_block, axis=1)                        # (N, blocks)
                losses.append(self.loss_func(a=drops[lo:lo + size].T, b=ia, batched=True))
                lo += size
            values.append(np.mean(losses, axis=0))
        return np.mean(values, axis=0)

    def _relevance(self, a, layout: Layout, x: np.ndarray) -> np.ndarray:
        """Relevance shaped like x (per channel where given so, else broadcast over channels),
        with abs / normalise applied per sample."""
        a = np.asarray(a, dtype=np.float64)
        if layout.kind == "image" and x.ndim == 4 and a.shape == x.shape:
            r = np.abs(a) if self.abs else a
            if self.normalise:
                top = np.abs(r).reshape(len(r), -1).max(axis=1).reshape(-1, 1, 1, 1)
                r = np.divide(r, top, out=np.zeros_like(r), where=top != 0)
            return r
        r = prepare_relevance(a, layout, self.normalise, self.abs)
        return r[..., None] if layout.kind == "image" and x.ndim == 4 else r


def _mse(a: np.ndarray, b: np.ndarray, **kwargs) -> np.ndarray:
    return np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=-1)


def patch_blocks(layout: Layout, size: int) -> np.ndarray:
    """Quantus's patches: the patch of each feature, (P,) ints in raster order of the patch
    grid, the grid padded as Quantus pads it (floor / ceil of the missing size on either side)
    and cropped to the input. Step k of Infidelity perturbs the features of patches 0..k."""
    grid = tuple(layout.shape[1:])
    if any(size > g for g in grid):
        raise ValueError(f"A patch of {size} does not fit inputs of {grid} features per axis.")
    index = [(np.arange(g) + (size - g % size) % size // 2) // size for g in grid]
    counts = [int(i[-1]) + 1 for i in index]
    return np.ravel_multi_index(np.meshgrid(*index, indexing="ij"), counts).reshape(-1)
