"""Faithfulness: does the model's score move where the relevance says it should?

Quantus 0.6's perturbation metrics (``quantus.metrics.faithfulness``) with its parameter names,
defaults and numbers, batched (one model call per perturbation step for the whole batch) and on
images, tabular inputs and token ids (see :mod:`keras_lrp.metrics.perturbation`).

What differs from Quantus everywhere: a feature is a pixel with all its channels (Quantus flips
each channel entry on its own; the same for one channel); the baseline ("black", "mean", …) is
computed once from the original x, where Quantus recomputes it from the partly perturbed input
at every step ("black" and "white" do not move, so they agree; "mean" drifts in Quantus) and
"uniform" draws one value per feature (Quantus: one per sample and step); ``softmax`` is a
constructor argument (Quantus: of the call), with Quantus's call default.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np

from keras_lrp.metrics.perturbation import (
    PerturbationMetric,
    area,
    check_order,
    check_positive_int,
    patch_labels,
    perturb_steps,
    positions,
    ranking,
    region_sums,
    segment_labels,
)
from keras_lrp.metrics.similarity import pearson


class PixelFlipping(PerturbationMetric):
    """Pixel flipping: remove features in order of relevance, ``features_in_step`` at a time,
    and record the explained score after each step.

    With s = features_in_step, P features, K = ⌈P/s⌉ steps and x⁽ᵏ⁾ = x with the first k·s
    features of the order replaced by the baseline:

    Formula:
        curve[k−1] = f_y(x⁽ᵏ⁾), k = 1..K                       (evaluate: (N, K))
        per_sample = Σ_{k=1}^{K−1} (curve[k−1] + curve[k]) / 2   (area, Quantus's
                     ``return_auc_per_sample``; most relevant first: lower is better)
        aopc = 1/(K+1) Σ_{k=0}^{K} (f_y(x) − f_y(x⁽ᵏ⁾))           (Samek et al. 2017)

    Paper: S. Bach, A. Binder, G. Montavon, F. Klauschen, K.-R. Müller, W. Samek, "On
    pixel-wise explanations for non-linear classifier decisions by layer-wise relevance
    propagation", PLoS ONE 10(7): e0130140, 2015.

    Beyond Quantus: ``order`` "lerf" (least relevant first; then higher area is better) and
    "random"; a ``features_in_step`` that does not divide P (the last step is smaller; Quantus
    refuses it); token ids. :meth:`aopc` needs f_y(x), kept from the last call.

    Args (besides :class:`~keras_lrp.metrics.perturbation.PerturbationMetric`'s):
        features_in_step: features removed per step (Quantus's, default 1).
        order: "morf" (Quantus's only order), "lerf" or "random".
        return_auc_per_sample: evaluate returns the (N,) areas instead of the curves.
    """


    def __init__(self, features_in_step: int = 1, order: str = "morf", abs: bool = False,
                 normalise: bool = True, perturb_baseline: Union[str, float] = "black",
                 perturb_func_kwargs=None, return_auc_per_sample: bool = False,
                 softmax: bool = True, token_baseline: Optional[int] = None, seed: int = 0):
        super().__init__(abs, normalise, perturb_baseline, perturb_func_kwargs, softmax,
                         token_baseline, seed)
        self.features_in_step = check_positive_int("features_in_step", features_in_step)
        self.order = check_order(order)
        self.return_auc_per_sample = bool(return_auc_per_sample)
        self.higher_is_better = order == "lerf"
        self.initial_scores = None

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        layout, r, baseline, rng = self._prepare(x, a)
        step_of = positions(ranking(r, self.order, rng)) // self.features_in_step
        steps = math.ceil(r.shape[1] / self.features_in_step)
        self.initial_scores = self._initial(scores, x, targets, first)
        curves = perturb_steps(scores, layout, targets, step_of, steps, baseline)
        return area(curves) if self.return_auc_per_sample else curves

    def per_sample(self, values) -> np.ndarray:
        """(N,) the area under each curve (values that are already areas pass through)."""
        values = np.asarray(values, dtype=np.float64)
        return values if values.ndim == 1 else area(values)

    def aopc(self, curves, initial=None) -> np.ndarray:
        """(N,) area over the perturbation curve, 1/(K+1) Σ_{k=0}^{K} (f_y(x) − f_y(x⁽ᵏ⁾)),
        with f_y(x) = ``initial`` (default: the unperturbed scores of the last call)."""
        initial = self.initial_scores if initial is None else np.asarray(initial, np.float64)
        if initial is None:
            raise ValueError("aopc needs the unperturbed scores: call the metric first, or "
                             "pass initial=f_y(x).")
        curves = np.asarray(curves, dtype=np.float64)
        return (initial[:, None] - curves).sum(axis=1) / (curves.shape[1] + 1)


class _PatchMetric(PerturbationMetric):
    """Regions are ``patch_size`` patches of the feature grid (see ``patch_labels``)."""

    def _patches(self, layout, r, order, rng):
        """(step_of (N, P) the place of each feature's patch in the order, patches)."""
        labels, count = patch_labels(layout.shape[1:], self.patch_size)
        labels = labels.reshape(-1)
        sums = region_sums(r, labels, count)
        place = positions(ranking(sums, order, rng))
        return place[:, labels], count


class RegionPerturbation(_PatchMetric):
    """Region perturbation: remove ``patch_size`` patches in order of their summed relevance
    and record the drop of the explained score.

    With x⁽ᵏ⁾ = x with the first k patches of the order replaced by the baseline and
    K = min(regions_evaluation, patches):

    Formula:
        curve[k−1] = f_y(x) − f_y(x⁽ᵏ⁾), k = 1..K             (evaluate: (N, K), Quantus's)
        per_sample = AOPC = 1/(K+1) Σ_{k=0}^{K} (f_y(x) − f_y(x⁽ᵏ⁾))

    Most relevant first ("morf"): higher is better; least relevant first ("lerf"): lower.

    Paper: W. Samek, A. Binder, G. Montavon, S. Lapuschkin, K.-R. Müller, "Evaluating the
    visualization of what a deep neural network has learned", IEEE TNNLS 28(11), 2017.

    Differs from Quantus: Quantus labels the metric lower-is-better whatever the order; "random"
    order draws from ``seed``; token and tabular inputs get windows of ``patch_size``
    consecutive features.

    Args (besides :class:`~keras_lrp.metrics.perturbation.PerturbationMetric`'s):
        patch_size: the patch side (an int, or one per axis of the feature grid).
        order: "morf", "lerf" or "random".
        regions_evaluation: at most this many steps (Quantus's default 100).
    """


    def __init__(self, patch_size: Union[int, Sequence[int]] = 8, order: str = "morf",
                 regions_evaluation: int = 100, abs: bool = False, normalise: bool = True,
                 perturb_baseline: Union[str, float] = "black", perturb_func_kwargs=None,
                 softmax: bool = True, token_baseline: Optional[int] = None, seed: int = 0):
        super().__init__(abs, normalise, perturb_baseline, perturb_func_kwargs, softmax,
                         token_baseline, seed)
        self.patch_size = patch_size
        self.order = check_order(order)
        self.regions_evaluation = check_positive_int("regions_evaluation", regions_evaluation)
        self.higher_is_better = order != "lerf"

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        layout, r, baseline, rng = self._prepare(x, a)
        step_of, count = self._patches(layout, r, self.order, rng)
        initial = self._initial(scores, x, targets, first)
        steps = min(self.regions_evaluation, count)
        return initial[:, None] - perturb_steps(scores, layout, targets, step_of, steps, baseline)

    def per_sample(self, values) -> np.ndarray:
        """(N,) AOPC: the drops summed over the K steps, over K + 1 (the k = 0 drop is 0)."""
        values = np.asarray(values, dtype=np.float64)
        return values.sum(axis=1) / (values.shape[1] + 1)


class Selectivity(_PatchMetric):
    """Selectivity: remove ``patch_size`` patches most relevant first and record the explained
    score; a fast fall (small area) is good.

    Formula: curve[k−1] = f_y(x⁽ᵏ⁾), k = 1..K (all K patches; evaluate: (N, K));
    per_sample = Σ_{k=1}^{K−1} (curve[k−1] + curve[k]) / 2 (Quantus's ``get_auc_score``,
    lower is better).

    Paper: G. Montavon, W. Samek, K.-R. Müller, "Methods for interpreting and understanding
    deep neural networks", Digital Signal Processing 73, 2018.

    Beyond Quantus: token and tabular inputs (windows of ``patch_size`` features).

    Args (besides :class:`~keras_lrp.metrics.perturbation.PerturbationMetric`'s):
        patch_size: the patch side (an int, or one per axis of the feature grid).
    """

    higher_is_better = False

    def __init__(self, patch_size: Union[int, Sequence[int]] = 8, abs: bool = False,
                 normalise: bool = True, perturb_baseline: Union[str, float] = "black",
                 perturb_func_kwargs=None, softmax: bool = True,
                 token_baseline: Optional[int] = None, seed: int = 0):
        super().__init__(abs, normalise, perturb_baseline, perturb_func_kwargs, softmax,
                         token_baseline, seed)
        self.patch_size = patch_size

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        layout, r, baseline, rng = self._prepare(x, a)
        step_of, count = self._patches(layout, r, "morf", rng)
        return perturb_steps(scores, layout, targets, step_of, count, baseline)

    def per_sample(self, values) -> np.ndarray:
        """(N,) the area under each curve."""
        return area(values)


class Monotonicity(PerturbationMetric):
    """Monotonicity: start from the baseline, put x's features back least relevant first,
    ``features_in_step`` at a time; the explanation passes (1.0) when the explained score never
    falls, else fails (0.0).

    Formula (x̃⁽ᵏ⁾ = the baseline with the first k·s features of the ascending order taken
    from x, K = ⌈P/s⌉): value = 1[f_y(x̃⁽ᵏ⁺¹⁾) − f_y(x̃⁽ᵏ⁾) ≥ 0 for k = 1..K−1]; the curve
    f_y(x̃⁽ᵏ⁾) of the last call is kept in ``curves``.

    Paper: V. Arya et al., "One Explanation Does Not Fit All: A Toolkit and Taxonomy of AI
    Explainability Techniques", arXiv:1909.03012, 2019 (AIX360's ``monotonicity_metric``).

    Differs from Quantus: Quantus 0.6 "restores" each feature with its perturb function, i.e.
    sets it to the baseline again, so its input never leaves the baseline, its curve is flat
    and every explanation passes (True). This class restores x's values, as the paper does.

    ``abs`` defaults to True, as in Quantus.

    Args (besides :class:`~keras_lrp.metrics.perturbation.PerturbationMetric`'s):
        features_in_step: features restored per step.
    """

    higher_is_better = True

    def __init__(self, features_in_step: int = 1, abs: bool = True, normalise: bool = True,
                 perturb_baseline: Union[str, float] = "black", perturb_func_kwargs=None,
                 softmax: bool = True, token_baseline: Optional[int] = None, seed: int = 0):
        super().__init__(abs, normalise, perturb_baseline, perturb_func_kwargs, softmax,
                         token_baseline, seed)
        self.features_in_step = check_positive_int("features_in_step", features_in_step)
        self.curves = None

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        layout, r, baseline, rng = self._prepare(x, a)
        step_of = positions(ranking(r, "lerf", rng)) // self.features_in_step
        steps = math.ceil(r.shape[1] / self.features_in_step)
        self.curves = perturb_steps(scores, layout, targets, step_of, steps, baseline,
                                    mode="insert")
        return np.all(np.diff(self.curves, axis=1) >= 0, axis=1).astype(np.float64)


class FaithfulnessEstimate(PerturbationMetric):
    """Faithfulness estimate: remove each group of ``features_in_step`` features (in order of
    relevance, one group at a time, from the original x) and correlate the groups' relevance
    with the score drops they cause.

    Formula (G_k the k-th group of the descending order, x_{∖G_k} = x with G_k replaced by the
    baseline): value = Pearson( (Σ_{i∈G_k} a_i)_k , (f_y(x) − f_y(x_{∖G_k}))_k ), in [−1, 1],
    higher is better; NaN where either sequence is constant.

    Paper: D. Alvarez-Melis, T. S. Jaakkola, "Towards robust interpretability with
    self-explaining neural networks", NeurIPS 2018.

    Differs from Quantus: the correlation is Pearson's (Quantus's default ``similarity_func``)
    written in NumPy; other similarity functions are not taken.

    ``softmax`` defaults to False, as in Quantus.

    Args (besides :class:`~keras_lrp.metrics.perturbation.PerturbationMetric`'s):
        features_in_step: features per group.
    """

    higher_is_better = True

    def __init__(self, features_in_step: int = 1, abs: bool = False, normalise: bool = True,
                 perturb_baseline: Union[str, float] = "black", perturb_func_kwargs=None,
                 softmax: bool = False, token_baseline: Optional[int] = None, seed: int = 0):
        super().__init__(abs, normalise, perturb_baseline, perturb_func_kwargs, softmax,
                         token_baseline, seed)
        self.features_in_step = check_positive_int("features_in_step", features_in_step)

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        layout, r, baseline, rng = self._prepare(x, a)
        step_of = positions(ranking(r, "morf", rng)) // self.features_in_step
        steps = math.ceil(r.shape[1] / self.features_in_step)
        initial = self._initial(scores, x, targets, first)
        drops = initial[:, None] - perturb_steps(scores, layout, targets, step_of, steps,
                                                 baseline, mode="single")
        return pearson(region_sums(r, step_of, steps), drops)


class IROF(PerturbationMetric):
    """Iterative removal of features: remove segments in order of their mean relevance and
    take the area over the curve of the explained score relative to the unperturbed one.

    With n segments in a sample, x⁽ᵏ⁾ = x with the first k segments of the descending order of
    mean relevance replaced by the baseline and p_k = f_y(x⁽ᵏ⁾) / f_y(x):

    Formula:
        value = n − Σ_{k=1}^{n−1} (p_k + p_{k+1}) / 2       (Quantus's AOC; higher is better)

    The curves p (N, max n; 0 past a sample's n) of the last call are kept in ``curves``.

    Paper: L. Rieger, L. K. Hansen, "IROF: a low resource evaluation metric for explanation
    methods", ICLR 2020 workshop (arXiv:2003.08747).

    Segments: ``segments=`` at call, integer labels shaped like the feature grid ((N, H, W),
    (N, F), (N, T), or one grid for all), e.g. a superpixel segmentation; without them, a grid
    of ``patch_size`` patches (default: the side that gives about ``n_segments`` patches, as
    SLIC's ``n_segments`` aims at).

    Differs from Quantus: Quantus segments with skimage's SLIC (keras-lrp does not depend on
    skimage: pass its segments); its "mean" baseline is the mean of the whole batch's partly
    perturbed inputs (so a sample's value depends on the other samples), here the sample's own
    mean; and where samples have different numbers of segments Quantus pads the shorter curves
    with zeros and its area then counts a last half step p_n / 2 (again depending on the batch),
    which is left out here.

    ``perturb_baseline`` defaults to "mean", as in Quantus.

    Args (besides :class:`~keras_lrp.metrics.perturbation.PerturbationMetric`'s):
        n_segments: about how many grid patches the default segmentation makes.
        patch_size: the grid's patch side instead (an int, or one per axis).
    """

    higher_is_better = True

    def __init__(self, n_segments: int = 100, patch_size: Optional[Union[int, Sequence[int]]]
                 = None, abs: bool = False, normalise: bool = True,
                 perturb_baseline: Union[str, float] = "mean", perturb_func_kwargs=None,
                 softmax: bool = True, token_baseline: Optional[int] = None, seed: int = 0):
        super().__init__(abs, normalise, perturb_baseline, perturb_func_kwargs, softmax,
                         token_baseline, seed)
        self.n_segments = check_positive_int("n_segments", n_segments)
        self.patch_size = patch_size
        self.curves = None

    def _segments(self, layout, segments):
        if segments is not None:
            return segment_labels(segments, layout)
        grid = layout.shape[1:]
        side = self.patch_size or max(1, int(round((np.prod(grid) / self.n_segments)
                                                   ** (1.0 / len(grid)))))
        labels, count = patch_labels(grid, side)
        return np.broadcast_to(labels.reshape(-1), (len(layout.x), labels.size)), \
            np.full(len(layout.x), count)

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None,
                 segments=None, **kwargs):
        layout, r, baseline, rng = self._prepare(x, a)
        labels, counts = self._segments(layout, segments)
        if counts.min() < 2:
            raise ValueError(f"IROF needs at least 2 segments per sample; sample "
                             f"{int(counts.argmin())} has {int(counts.min())}. Give finer "
                             "segments or a smaller patch_size.")
        steps = int(counts.max())
        means = region_sums(r, labels, steps) / np.maximum(
            region_sums(np.ones_like(r), labels, steps), 1)
        step_of = np.empty_like(labels)
        for i, n in enumerate(counts):  # sorting only, no model call in this loop
            place = np.empty(steps, dtype=np.int64)
            place[np.argsort(-means[i, :n])] = np.arange(n)
            step_of[i] = place[labels[i]]
        initial = self._initial(scores, x, targets, first)
        curves = perturb_steps(scores, layout, targets, step_of, steps, baseline)
        inside = np.arange(steps)[None, :] < counts[:, None]
        self.curves = np.where(inside, curves / initial[:, None], 0.0)
        halves = (self.curves[:, 1:] + self.curves[:, :-1]) / 2
        return counts - np.where(inside[:, 1:], halves, 0.0).sum(axis=1)
