"""Axiomatic: properties an explanation should have by construction (Quantus's "Axiomatic"
category): completeness (conservation), non-sensitivity and input invariance.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Optional, Union

import numpy as np

from keras_lrp.metrics.base import Explainer, Layout, Metric, normalise_by_max, prepare_relevance


class _Completeness(Metric):
    """Σ a and f(x) − f(x̄) per sample, x̄ being x with every feature set to the baseline."""

    category = "axiomatic"

    def _sum_and_delta(self, scores, x, targets, a, first):
        layout = Layout(x, token_baseline=self.token_baseline)
        total = prepare_relevance(a, layout, self.normalise, self.abs).reshape(len(x), -1)
        xb = layout.baseline(self.perturb_baseline, np.random.default_rng(self.seed),
                             **self.baseline_kwargs)
        first = scores(x) if first is None else first
        rows = np.arange(len(x))
        delta = first[rows, targets] - scores(xb)[rows, targets]
        return total.sum(axis=1), np.asarray(self.output_func(delta), dtype=np.float64)


def _identity(v):
    return v


class Completeness(_Completeness):
    """Whether the relevance sums to the change of the explained output when every feature
    goes to the baseline (Sundararajan et al.'s completeness, LRP's conservation)::

        Σ_i a_i == output_func(f_y(x) − f_y(x̄))

    one boolean per sample (Quantus's output: exact float equality unless ``rtol`` / ``atol``
    are given). For how far off it is, see :class:`CompletenessGap`.

    Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.

    Args:
        abs, normalise: Quantus's (abs off, normalise **on** by default, as in Quantus; a
            normalised map sums to Σa / max|a|, so give ``normalise=False`` to test
            conservation).
        output_func: applied to the output difference (default: none).
        perturb_baseline: the baseline x̄ (Quantus's names: "black" = each sample's min, …, or a
            number); token ids take ``token_baseline``.
        softmax: compare softmax probabilities instead of logits.
        rtol, atol: tolerances of the equality (0: exact, Quantus's test).
        seed: for random baselines ("uniform").
        token_baseline: the id every token takes in x̄ (token inputs only).
    """

    higher_is_better = True

    def __init__(self, abs: bool = False, normalise: bool = True,
                 output_func: Optional[Callable] = None,
                 perturb_baseline: Union[str, float] = "black", softmax: bool = False,
                 rtol: float = 0.0, atol: float = 0.0, seed: int = 0,
                 token_baseline: Optional[int] = None, **baseline_kwargs):
        self.abs, self.normalise = bool(abs), bool(normalise)
        self.output_func = output_func or _identity
        self.perturb_baseline, self.softmax = perturb_baseline, bool(softmax)
        self.rtol, self.atol, self.seed = float(rtol), float(atol), seed
        self.token_baseline, self.baseline_kwargs = token_baseline, baseline_kwargs

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        total, delta = self._sum_and_delta(scores, x, targets, a, first)
        return np.isclose(total, delta, rtol=self.rtol, atol=self.atol)


class CompletenessGap(_Completeness):
    """How much relevance conservation leaks: the relative gap between the relevance's sum and
    the output change it explains (lower is better)::

        gap = |Σ_i a_i − Δ| / |Δ|,    Δ = output_func(f_y(x) − f_y(x̄))

    0 for a complete (conserving) explanation; 0.2 when a fifth of the output change is lost
    to (or invented by) the explanation, e.g. absorbed by biases or LRP-ε's stabiliser. With
    ``signed=True``, (Σa − Δ) / Δ = Σa / Δ − 1: negative where relevance was lost (|Σa| < |Δ|
    with the sign of Δ), positive where it was amplified. Not in Quantus (its
    :class:`Completeness` is a boolean); the relevance is used as given (``normalise`` off by
    default), since normalising breaks conservation. Infinite (or NaN) where Δ = 0.

    Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017; Bach,
    Binder, Montavon, Klauschen, Müller and Samek, "On Pixel-Wise Explanations for Non-Linear
    Classifier Decisions by Layer-Wise Relevance Propagation", PLOS ONE 10(7), 2015.

    Args:
        signed: return (Σa − Δ) / Δ instead of its magnitude.
        others: as :class:`Completeness`.
    """

    higher_is_better = False

    def __init__(self, signed: bool = False, abs: bool = False, normalise: bool = False,
                 output_func: Optional[Callable] = None,
                 perturb_baseline: Union[str, float] = "black", softmax: bool = False,
                 seed: int = 0, token_baseline: Optional[int] = None, **baseline_kwargs):
        self.signed = bool(signed)
        self.abs, self.normalise = bool(abs), bool(normalise)
        self.output_func = output_func or _identity
        self.perturb_baseline, self.softmax, self.seed = perturb_baseline, bool(softmax), seed
        self.token_baseline, self.baseline_kwargs = token_baseline, baseline_kwargs

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        total, delta = self._sum_and_delta(scores, x, targets, a, first)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = (total - delta) / delta
        return gap if self.signed else np.abs(gap)


class NonSensitivity(Metric):
    """How many features violate "zero relevance ⇔ no effect" (lower is better)::

        NS = #{i : (|a_i| < eps) XOR (|f_y(x) − f_y(x with feature i at the baseline)| < eps)}

    counting features that have relevance yet do not move the output, and features that move
    it yet have none. Each step sets ``features_in_step`` consecutive features to the baseline
    for the whole batch (one model call per step); each feature takes its step's effect.

    Nguyen and Martínez, "On Quantitative Aspects of Model Interpretability",
    arXiv:2007.07584, 2020.

    Args:
        eps: the threshold for both "no relevance" (after abs and normalise) and "no effect".
        features_in_step: features perturbed together per step.
        abs, normalise: Quantus's (both on by default).
        perturb_baseline: the value a perturbed feature takes ("black": the sample's min, …).
        softmax: compare probabilities (on by default, as in Quantus).
        seed: for random baselines; token_baseline: the id a perturbed token takes.

    Differs from Quantus 0.6, which fails for ``features_in_step`` > 1 (it XORs (N, P /
    features_in_step) against (N, P)), perturbs single channel values of a pixel where ours
    perturbs the pixel, and normalises by the batch's max |a| (ours: each sample's).
    """

    higher_is_better = False
    category = "axiomatic"

    def __init__(self, eps: float = 1e-5, features_in_step: int = 1, abs: bool = True,
                 normalise: bool = True, perturb_baseline: Union[str, float] = "black",
                 softmax: bool = True, seed: int = 0, token_baseline: Optional[int] = None,
                 **baseline_kwargs):
        if int(features_in_step) < 1:
            raise ValueError(f"features_in_step must be ≥ 1; got {features_in_step}.")
        self.eps, self.features_in_step = float(eps), int(features_in_step)
        self.abs, self.normalise = bool(abs), bool(normalise)
        self.perturb_baseline, self.softmax, self.seed = perturb_baseline, bool(softmax), seed
        self.token_baseline, self.baseline_kwargs = token_baseline, baseline_kwargs

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        layout = Layout(x, token_baseline=self.token_baseline)
        n, p, step = len(x), layout.features, self.features_in_step
        silent = prepare_relevance(a, layout, self.normalise, self.abs).reshape(n, -1) < self.eps
        baseline = layout.baseline(self.perturb_baseline, np.random.default_rng(self.seed),
                                   **self.baseline_kwargs)
        rows = np.arange(n)
        y0 = (scores(x) if first is None else first)[rows, targets]
        still = np.empty((n, math.ceil(p / step)), dtype=bool)
        for i in range(still.shape[1]):
            mask = np.zeros((n, p), dtype=bool)
            mask[:, i * step:(i + 1) * step] = True
            out = scores(layout.replace(mask, baseline))[rows, targets]
            still[:, i] = np.abs(out - y0) < self.eps
        still = np.repeat(still, step, axis=1)[:, :p]
        return (still ^ silent).sum(axis=1)


class InputInvariance(Metric):
    """Whether the explanation is unchanged when the input is shifted by a constant and the
    model absorbs the shift (Kindermans et al.'s input invariance)::

        x' = x + m,    f'(x') = f(x)  (the first layer's bias b' = b − W·m)
        II = all_i isclose(a_i(f, x), a_i(f', x'), atol, rtol)

    one boolean per sample. f' is a clone of the model (the user's is not touched) whose first
    layer, a Dense or a Conv with bias (after input, reshaping or dropout layers only), has its
    bias lowered by the kernel's response to the shift; the explainer's analyzer is rebuilt
    on f' and explains x' (one more analysis of the whole batch). The gradient is input
    invariant; input × gradient and LRP-ε are not.

    A convolution that pads its input (``padding="same"``) sees the shift everywhere but at
    the padded border, where no bias can absorb it: f' then differs from f near the border
    (and downstream of it). A warning gives how far f'(x') is from f(x) whenever it exceeds
    float rounding; Quantus builds such a model silently (and picks its bias shift from the
    border's response).

    Kindermans, Hooker, Adebayo, Alber, Schütt, Dähne, Erhan and Kim, "The (Un)reliability of
    Saliency Methods", in Explainable AI: Interpreting, Explaining and Visualizing Deep
    Learning, Springer LNCS 11700, 2019 (arXiv:1711.00867, 2017).

    Args:
        abs, normalise: applied to both explanations before comparing (off, as in Quantus).
        input_shift: m, the constant added to every input value (Quantus's default −1).
        atol, rtol: the comparison's tolerances (Quantus's np.isclose(…, atol=1e-4)).

    Needs ``explain``: a keras-lrp analyzer (a plain callable cannot be rebuilt on f').
    Refuses token ids (a shifted id is another token).
    """

    higher_is_better = True
    category = "axiomatic"
    needs_explain = True

    def __init__(self, abs: bool = False, normalise: bool = False,
                 input_shift: float = -1, atol: float = 1e-4, rtol: float = 1e-5):
        self.abs, self.normalise = bool(abs), bool(normalise)
        self.input_shift, self.atol, self.rtol = float(input_shift), float(atol), float(rtol)
        #: max |f'(x') − f(x)| over the last batch (0 up to rounding when f' absorbs the shift).
        self.model_gap = None

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, **kwargs):
        from keras_lrp.analyzers.names import from_config

        if np.issubdtype(x.dtype, np.integer):
            raise ValueError("InputInvariance shifts the input values; token ids of shape "
                             f"{x.shape} cannot be shifted. Explain the embeddings instead.")
        layout = Layout(x)
        analyzer = getattr(explainer, "analyzer", None)
        if analyzer is None:
            raise ValueError("InputInvariance explains a shifted copy of the model again: give "
                             "explain as a keras-lrp analyzer, not a plain callable.")
        shifted, layer = shifted_model(analyzer.model, self.input_shift)
        twin = from_config(analyzer.get_config(), shifted)
        xs = (x + np.asarray(self.input_shift, dtype=x.dtype)).astype(x.dtype)
        self._check_absorbed(scores(x) if first is None else first, twin, xs, layer)
        a2 = Explainer(twin)(xs, targets)
        a1 = np.asarray(a, dtype=np.float64)
        if a1.shape != a2.shape:
            a1, a2 = layout.relevance(a1), layout.relevance(a2)
        a1, a2 = (_prepared(v, self.abs, self.normalise) for v in (a1, a2))
        same = np.isclose(a1, a2, rtol=self.rtol, atol=self.atol)
        return same.reshape(len(x), -1).all(axis=1)

    def _check_absorbed(self, first, twin, xs, layer) -> None:
        from keras_lrp import backend

        out = np.asarray(backend.to_numpy(twin.forward_model(xs)), dtype=np.float64)
        self.model_gap = float(np.max(np.abs(out - first)))
        if self.model_gap > 1e-4 * (1.0 + float(np.max(np.abs(first)))):
            why = (f" {layer.name!r} pads its input (padding={layer.padding!r}): no bias absorbs "
                   "the shift at the border" if getattr(layer, "padding", "valid") != "valid"
                   else "")
            warnings.warn(f"The shifted model's logits differ from the model's by up to "
                          f"{self.model_gap:.3g}:{why}. InputInvariance then compares "
                          "explanations of two different functions.", stacklevel=4)


def _prepared(a: np.ndarray, absolute: bool, normalise: bool) -> np.ndarray:
    a = np.abs(a) if absolute else a
    return normalise_by_max(a) if normalise else a


#: Layers that pass a constant shift of their input on unchanged (up to arrangement).
_PASS = ("InputLayer", "Flatten", "Reshape", "Permute", "Dropout")


def shifted_model(model, shift: float):
    """A clone of ``model`` (same weights) whose first layer's bias absorbs ``shift`` added to
    every input value: b' = b − shift · Σ (the kernel over all but its output axis). Returns
    (clone, that layer of the clone)."""
    import keras

    try:
        clone = keras.models.clone_model(model)
    except Exception as err:  # a subclassed model
        raise ValueError(f"InputInvariance needs a copy of the model to shift, and "
                         f"keras.models.clone_model cannot copy {model.name!r} ({err}). Use a "
                         "Sequential or functional model.") from err
    clone.set_weights(model.get_weights())
    layers = [layer for layer in clone.layers if type(layer).__name__ not in _PASS]
    first = layers[0] if layers else None
    kinds = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    if not isinstance(first, kinds) or not getattr(first, "use_bias", False):
        raise ValueError(f"InputInvariance absorbs the input shift in the first layer's bias: "
                         f"that layer must be a Dense or Conv with use_bias=True; "
                         f"{model.name!r} starts with "
                         f"{type(first).__name__ if first else 'nothing'}"
                         f"{'' if first is None else ' ' + repr(first.name)}.")
    kernel = np.asarray(keras.ops.convert_to_numpy(first.kernel), dtype=np.float64)
    bias = np.asarray(keras.ops.convert_to_numpy(first.bias), dtype=np.float64)
    response = kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
    first.bias.assign((bias - shift * response).astype(first.bias.dtype))
    return clone, first
