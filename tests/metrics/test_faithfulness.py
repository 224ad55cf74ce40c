"""keras_lrp.metrics.faithfulness: Quantus 0.6's numbers on the digits CNN, the formulas by hand
on linear models, the batching, token inputs, errors, and the Quantus bugs left out.

Quantus's numbers come from tools/quantus_reference/faithfulness.py (the PyTorch twin of the
digits CNN, the same 16 digits and LRP-ε relevance). Tolerance: the twin's logits equal Keras'
to ~1e-5 (both float32; twin.py checks rtol 1e-4, atol 1e-5), so scores and softmax
probabilities agree to ~1e-5, a curve point to ATOL = 2e-5 and a sum of m points to m·ATOL;
the orders of features agree exactly (else the curves would differ by far more).
"""

import pathlib

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.metrics.base import Scores
from keras_lrp.metrics.faithfulness import (
    IROF,
    FaithfulnessEstimate,
    Monotonicity,
    PixelFlipping,
    RegionPerturbation,
    Selectivity,
    pearson,
)
from keras_lrp.metrics.perturbation import patch_labels, segment_labels

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "keras_lrp" / "demos" / "models"
ATOL = 2e-5


@pytest.fixture(scope="module")
def digits():
    inputs = dict(np.load(ROOT / "tests" / "data" / "quantus" / "inputs.npz"))
    quantus = dict(np.load(ROOT / "tests" / "data" / "quantus" / "faithfulness.npz"))
    model = keras.models.load_model(MODELS / "digits_cnn.keras")
    return model, inputs["x"], inputs["y"], inputs, quantus


def check(actual, desired, terms=1):
    np.testing.assert_allclose(actual, desired, rtol=0, atol=terms * ATOL)


# --- Quantus's numbers ------------------------------------------------------------------------

CURVES = [  # (Quantus key, metric, relevance)
    ("pixel_flipping", PixelFlipping(), "a_epsilon"),
    ("pixel_flipping_fis4", PixelFlipping(features_in_step=4), "a_epsilon"),
    ("pixel_flipping_gradient", PixelFlipping(features_in_step=4), "a_gradient"),
    ("region_perturbation_morf", RegionPerturbation(patch_size=2), "a_epsilon"),
    ("region_perturbation_lerf", RegionPerturbation(patch_size=2, order="lerf"), "a_epsilon"),
    ("region_perturbation_p3", RegionPerturbation(patch_size=3, regions_evaluation=5),
     "a_epsilon"),
    ("selectivity_p2", Selectivity(patch_size=2), "a_epsilon"),
    ("selectivity_p3", Selectivity(patch_size=3), "a_epsilon"),
    ("faithfulness_estimate", FaithfulnessEstimate(), "a_epsilon"),
    ("faithfulness_estimate_fis4", FaithfulnessEstimate(features_in_step=4), "a_epsilon"),
]


@pytest.mark.parametrize("key, metric, relevance", CURVES, ids=[c[0] for c in CURVES])
def test_equals_quantus(digits, key, metric, relevance):
    model, x, y, inputs, quantus = digits
    values = metric(model, x, y, a=inputs[relevance])
    assert values.shape == quantus[key].shape
    check(values, quantus[key])


def test_pixel_flipping_area_is_quantus_auc_per_sample(digits):
    """per_sample of Quantus's curves is its return_auc_per_sample (NumPy only); ours returns
    the area of the curves it equals when asked (features_in_step=4: 16 steps, fewer calls)."""
    model, x, y, inputs, quantus = digits
    metric = PixelFlipping(features_in_step=4, return_auc_per_sample=True)
    np.testing.assert_allclose(metric.per_sample(quantus["pixel_flipping"]),
                               quantus["pixel_flipping_auc"], rtol=1e-6)  # Quantus's float32
    auc = metric(model, x, y, a=inputs["a_epsilon"])
    assert auc.shape == (len(x),)
    check(auc, metric.per_sample(quantus["pixel_flipping_fis4"]), terms=16)
    np.testing.assert_array_equal(metric.per_sample(auc), auc)


def test_monotonicity_equals_quantus_with_the_papers_step(digits):
    """Quantus's Monotonicity with a perturb function that restores x (see the generator)."""
    model, x, y, inputs, quantus = digits
    for fis, name in ((1, ""), (16, "_fis16")):
        metric = Monotonicity(features_in_step=fis)
        values = metric(model, x, y, a=inputs["a_epsilon"])
        check(metric.curves, quantus["monotonicity_fixed_curves" + name])
        np.testing.assert_array_equal(values, quantus["monotonicity_fixed" + name])
    assert 0 < values.sum() < len(values)  # the fis=16 case has both outcomes


def test_monotonicity_quantus_default_never_leaves_the_baseline(digits):
    """Quantus 0.6 bug: its step sets the 'restored' features to the baseline again, so the
    input stays the baseline and every explanation passes; restoring x, 14 of 16 fail."""
    model, x, y, inputs, quantus = digits
    assert np.all(quantus["monotonicity_default"] == 1)
    assert np.all(quantus["monotonicity_default_fis16"] == 1)
    ours = Monotonicity(features_in_step=16)(model, x, y, a=inputs["a_epsilon"])
    assert ours.sum() == 2


def irof_atol(model, x, y, counts):
    """|Δ AOC| ≤ n · ATOL / f_y(x): each p_k = f_y(x⁽ᵏ⁾)/f_y(x) divides a softmax ~ATOL off by
    the unperturbed one (digit 15 is misclassified: f_y(x) ≈ 1e-3)."""
    first = Scores(model, softmax=True)(x)[np.arange(len(y)), y]
    return counts * ATOL / first


def test_irof_equals_quantus_on_its_slic_segments(digits):
    model, x, y, inputs, quantus = digits
    segments = quantus["irof_segments"]
    values = IROF(perturb_baseline="black")(model, x, y, a=inputs["a_epsilon"],
                                            segments=segments)
    assert np.all(np.abs(values - quantus["irof_black"]) <= irof_atol(model, x, y, 64))
    # SLIC splits an 8×8 digit into its 64 pixels, numbered row by row: the default grid
    np.testing.assert_array_equal(segments, np.broadcast_to(np.arange(64).reshape(8, 8),
                                                            segments.shape))
    labels, counts = IROF()._segments(_layout(x), None)
    np.testing.assert_array_equal(labels, segments.reshape(len(x), -1))
    assert np.all(counts == 64)


def test_irof_quantus_pads_short_curves_with_a_half_step(digits):
    """Quantus 0.6 bug: with segments of different counts per sample, the shorter curves are
    padded with zeros and the area counts a last half step p_n/2 (so a sample's value depends
    on the batch): Quantus on the batch = Quantus one by one − p_n/2; ours = one by one."""
    model, x, y, inputs, quantus = digits
    segments = quantus["irof_coarse_segments"]
    metric = IROF(perturb_baseline=0.5)
    values = metric(model, x, y, a=inputs["a_epsilon"], segments=segments)
    counts = segment_labels(segments, _layout(x))[1]
    assert len(set(counts)) > 1
    atol = irof_atol(model, x, y, counts)
    assert np.all(np.abs(values - quantus["irof_coarse_half_batch1"]) <= atol)
    last = metric.curves[np.arange(len(y)), counts - 1]
    half = np.where(counts < counts.max(), last / 2, 0.0)
    assert np.all(np.abs(quantus["irof_coarse_half"] - (values - half)) <= atol)
    assert np.abs(half).max() > 0.1


def test_irof_quantus_mean_baseline_depends_on_the_batch(digits):
    """Quantus 0.6 bug: its "mean" is the mean of the whole batch's partly perturbed inputs; the
    same digits give other values one by one. Ours is each sample's own mean: batch-free."""
    model, x, y, inputs, quantus = digits
    assert np.abs(quantus["irof_mean"] - quantus["irof_mean_batch1"]).max() > 1
    a = inputs["a_epsilon"]
    whole = IROF(patch_size=2)(model, x, y, a=a)
    np.testing.assert_allclose(IROF(patch_size=2)(model, x[:3], y[:3], a=a[:3]), whole[:3],
                               rtol=1e-4, atol=ATOL)


def _layout(x):
    from keras_lrp.metrics.base import Layout

    return Layout(x)


# --- the formulas by hand (NumPy float64, linear models) --------------------------------------

W = np.array([[0.5, -1.0], [2.0, 0.0], [1.0, 1.0], [3.0, 0.5]])  # f(x) = x @ W, 4 → 2
X = np.array([[2.0, 3.0, 4.0, 1.0],    # class 0 contributions x·w = [1, 6, 4, 3]
              [4.0, 1.0, 1.0, 2.0]])   # class 0 contributions x·w = [2, 2, 1, 6]


def linear(x):
    return np.asarray(x, dtype=np.float64) @ W


def test_pixel_flipping_by_hand():
    a = X * W[:, 0]                         # exact contributions
    curves = PixelFlipping(perturb_baseline="zero", softmax=False)(linear, X, 0, a=a)
    # most relevant first: sample 0 removes 6, 4, 3, 1; sample 1 removes 6, then a tie 2, 2, 1
    np.testing.assert_allclose(curves, [[8, 4, 1, 0], [5, 3, 1, 0]])
    metric = PixelFlipping(perturb_baseline="zero", softmax=False, order="lerf")
    lerf = metric(linear, X, 0, a=a)
    np.testing.assert_allclose(lerf, [[13, 10, 6, 0], [10, 8, 6, 0]])
    assert metric.higher_is_better and not PixelFlipping().higher_is_better
    np.testing.assert_allclose(metric.per_sample(lerf), [(13 + 10) / 2 + (10 + 6) / 2 + 3,
                                                         9 + 7 + 3])
    np.testing.assert_allclose(metric.aopc(lerf), [(0 + 1 + 4 + 8 + 14) / 5,
                                                   (0 + 1 + 3 + 5 + 11) / 5])
    steps = PixelFlipping(features_in_step=3, perturb_baseline="zero", softmax=False)
    np.testing.assert_allclose(steps(linear, X, 0, a=a), [[1, 0], [1, 0]])  # 4 = 3 + 1


def test_black_baseline_is_the_sample_minimum():
    a = X * W[:, 0]
    curves = PixelFlipping(softmax=False)(linear, X, 0, a=a)  # black: min 1 and 1
    expected = [linear(np.where(np.isin(np.arange(4), order[:k + 1]), 1.0, X[i:i + 1]))[0, 0]
                for i, order in enumerate(([1, 2, 3, 0], [3, 0, 1, 2])) for k in range(4)]
    np.testing.assert_allclose(curves.reshape(-1), expected)


def image_model(weights):
    """f(x) = Σ x·weights (N, H, W, 1) → (N, 1)."""
    return lambda x: (np.asarray(x, np.float64)[..., 0] * weights).reshape(len(x), -1).sum(
        axis=1, keepdims=True)


def test_region_perturbation_and_selectivity_by_hand():
    w = np.arange(16.0).reshape(4, 4)
    x = np.ones((1, 4, 4, 1))
    a = w[None]                  # patch sums: [[10, 18], [42, 50]] row by row
    f = image_model(w)
    drops = RegionPerturbation(patch_size=2, perturb_baseline="zero", softmax=False)(f, x, 0,
                                                                                    a=a)
    np.testing.assert_allclose(drops, [[50, 92, 110, 120]])
    metric = RegionPerturbation(patch_size=2, perturb_baseline="zero", softmax=False)
    np.testing.assert_allclose(metric.per_sample(drops), [(50 + 92 + 110 + 120) / 5])
    lerf = RegionPerturbation(patch_size=2, order="lerf", regions_evaluation=2,
                              perturb_baseline="zero", softmax=False)
    np.testing.assert_allclose(lerf(f, x, 0, a=a), [[10, 28]])
    assert not lerf.higher_is_better
    sel = Selectivity(patch_size=2, perturb_baseline="zero", softmax=False)
    curve = sel(f, x, 0, a=a)
    np.testing.assert_allclose(curve, [[70, 28, 10, 0]])
    np.testing.assert_allclose(sel.per_sample(curve), [(70 + 28) / 2 + (28 + 10) / 2 + 5])


def test_patches_pad_like_quantus():
    labels, count = patch_labels((8, 8), 3)      # padding 1: (0, 1)
    assert count == 9 and labels[0, 0] == 0 and labels[2, 2] == 0 and labels[3, 3] == 4
    labels, count = patch_labels((8,), 5)        # padding 2: (1, 1) → patches [-1, 4), [4, 9)
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 1, 1, 1])
    labels, count = patch_labels((4, 6), (2, 3))
    assert count == 4 and labels[1, 4] == 1 and labels[3, 0] == 2


def test_monotonicity_by_hand():
    a = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])  # ascending: 0123 and 3210
    x = np.ones((2, 4))
    metric = Monotonicity(perturb_baseline="zero", softmax=False)
    # class 0: weights [.5, 2, 1, 3] all ≥ 0 → rises; class 1: [-1, 0, 1, .5] → feature 0,
    # restored last, makes it fall
    np.testing.assert_array_equal(metric(linear, x, np.array([0, 1]), a=a), [1.0, 0.0])
    np.testing.assert_allclose(metric.curves, [[0.5, 2.5, 3.5, 6.5], [0.5, 1.5, 1.5, 0.5]])


def test_faithfulness_estimate_by_hand():
    a = X * W[:, 0]
    metric = FaithfulnessEstimate(perturb_baseline="zero")
    np.testing.assert_allclose(metric(linear, X, 0, a=a), [1.0, 1.0])
    np.testing.assert_allclose(metric(linear, X, 0, a=-a), [-1.0, -1.0])
    pairs = FaithfulnessEstimate(features_in_step=2, perturb_baseline="zero", abs=True)
    np.testing.assert_allclose(pairs(linear, X, 0, a=a), [1.0, 1.0])  # two points
    # a drop that does not follow the relevance: numpy's own correlation
    a2 = np.array([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    drops = np.array([[1, 6, 4, 3], [6, 1, 2, 2]], dtype=float)  # x·w in the order of a2
    expected = [np.corrcoef([4, 3, 2, 1], drops[0])[0, 1], np.corrcoef([4, 3, 2, 1],
                                                                       drops[1])[0, 1]]
    np.testing.assert_allclose(metric(linear, X, 0, a=a2), expected)
    assert np.isnan(pearson(np.ones((1, 3)), np.arange(3.0)[None]))[0]


def test_irof_by_hand():
    x = np.array([[2.0, 3.0, 4.0, 1.0]])
    a = x * W[:, 0]                              # [1, 6, 4, 3]
    segments = np.array([[0, 1, 1, 2]])          # means 1, 5, 3 → order 1, 2, 0
    metric = IROF(perturb_baseline="zero", softmax=False)
    value = metric(linear, x, 0, a=a, segments=segments)
    p = np.array([4, 1, 0]) / 14                 # 14 − 10, then − 3, then − 1
    np.testing.assert_allclose(metric.curves, [p])
    np.testing.assert_allclose(value, [3 - ((p[0] + p[1]) / 2 + (p[1] + p[2]) / 2)])
    # two samples with 3 and 2 segments: each its own area, no half step past its end
    two = np.repeat(x, 2, axis=0)
    seg = np.array([[0, 1, 1, 2], [0, 0, 1, 1]])  # second: means 3.5, 3.5: a tie, 0 first
    values = metric(linear, two, 0, a=np.repeat(a, 2, axis=0), segments=seg)
    q = np.array([7, 0]) / 14
    np.testing.assert_allclose(values, [value[0], 2 - (q[0] + q[1]) / 2])


# --- batching ---------------------------------------------------------------------------------

@pytest.mark.parametrize("metric, steps", [
    (PixelFlipping(features_in_step=4), 16), (RegionPerturbation(patch_size=4), 4),
    (Selectivity(patch_size=4), 4), (Monotonicity(features_in_step=8), 8),
    (FaithfulnessEstimate(features_in_step=8), 8), (IROF(patch_size=4), 4)])
def test_steps_are_stacked_into_few_calls_for_the_whole_batch(digits, metric, steps):
    """The unperturbed batch is one call and every step together another; with room for one
    batch per call, one call per step; with a batch_size, each call splits."""
    model, x, y, inputs, _ = digits
    scores = Scores(model, softmax=metric.softmax)
    stacked = metric(scores, x, y, a=inputs["a_epsilon"])
    assert scores.calls == 2
    per_step = Scores(model, softmax=metric.softmax, max_stack=len(x))
    np.testing.assert_allclose(metric(per_step, x, y, a=inputs["a_epsilon"]), stacked,
                               rtol=1e-5, atol=1e-6)
    assert per_step.calls == 1 + steps
    split = Scores(model, softmax=metric.softmax, batch_size=8, max_stack=len(x))
    metric(split, x, y, a=inputs["a_epsilon"])
    assert split.calls == 2 * (1 + steps)


def test_random_order_is_seeded_and_a_permutation(digits):
    model, x, y, inputs, _ = digits
    a = inputs["a_epsilon"]
    first = RegionPerturbation(patch_size=4, order="random", seed=3)(model, x, y, a=a)
    again = RegionPerturbation(patch_size=4, order="random", seed=3)(model, x, y, a=a)
    other = RegionPerturbation(patch_size=4, order="random", seed=4)(model, x, y, a=a)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    np.testing.assert_allclose(first[:, -1], other[:, -1], atol=1e-5)  # all removed: same x


# --- token ids --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokens():
    """(the model as an LRP analyzer, whose forward_model the metrics call, the Keras model, 6
    sentences, a random relevance per token). Scores builds a "gradient" analyzer from a bare
    Keras model, which refuses token ids: an analyzer is passed instead."""
    keras_model = keras.models.load_model(MODELS / "sentiment_transformer.keras")
    x = np.load(MODELS / "sentiment_test.npz")["x"][:6]
    a = np.random.default_rng(0).normal(size=x.shape)
    return keras_lrp.create_analyzer("lrp.z", keras_model), keras_model, x, a


def probabilities(model, x):
    """The model's own softmax output, float64: independent of keras-lrp's Scores."""
    return np.asarray(model.predict(x, verbose=0), dtype=np.float64)


def test_token_pixel_flipping_curve_ends(tokens):
    model, keras_model, x, a = tokens
    y = probabilities(keras_model, x).argmax(axis=1)
    curves = PixelFlipping(token_baseline=0)(model, x, y, a=a)
    assert curves.shape == (len(x), x.shape[1])
    top = np.argmax(a, axis=1)
    first = x.copy()
    first[np.arange(len(x)), top] = 0
    rows = np.arange(len(x))
    np.testing.assert_allclose(curves[:, 0], probabilities(keras_model, first)[rows, y],
                               atol=1e-5)
    np.testing.assert_allclose(curves[:, -1],
                               probabilities(keras_model, np.zeros_like(x))[rows, y], atol=1e-5)


def test_token_region_monotonicity_estimate(tokens):
    model, keras_model, x, a = tokens
    p = probabilities(keras_model, x)
    y, rows = p.argmax(axis=1), np.arange(len(x))
    drops = RegionPerturbation(patch_size=4, token_baseline=0)(model, x, y, a=a)
    window = np.argmax(a.reshape(len(x), -1, 4).sum(axis=2), axis=1)
    first = x.copy()
    for i, w in enumerate(window):
        first[i, 4 * w:4 * w + 4] = 0
    np.testing.assert_allclose(drops[:, 0], p[rows, y] - probabilities(keras_model, first)[rows, y],
                               atol=1e-5)
    metric = Monotonicity(features_in_step=6, token_baseline=0)
    metric(model, x, y, a=a)
    np.testing.assert_allclose(metric.curves[:, -1], p[rows, y], atol=1e-5)  # all restored
    estimate = FaithfulnessEstimate(features_in_step=4, token_baseline=0)(model, x, y, a=a)
    assert estimate.shape == (len(x),) and np.all(np.abs(estimate[~np.isnan(estimate)]) <= 1)
    assert Selectivity(patch_size=6, token_baseline=0)(model, x, y, a=a).shape == (len(x), 4)
    assert IROF(patch_size=4, token_baseline=0)(model, x, y, a=a).shape == (len(x),)


# --- errors -----------------------------------------------------------------------------------

def test_errors_name_the_value(tokens):
    model, _, x, a = tokens
    with pytest.raises(ValueError, match="order must be one of"):
        PixelFlipping(order="best")
    with pytest.raises(ValueError, match="features_in_step must be a positive int"):
        Monotonicity(features_in_step=0)
    with pytest.raises(ValueError, match="regions_evaluation"):
        RegionPerturbation(regions_evaluation=-1)
    with pytest.raises(ValueError, match="token_baseline"):
        PixelFlipping()(model, x, 0, a=a)
    with pytest.raises(ValueError, match="does not fit the feature grid"):
        RegionPerturbation(patch_size=(2, 2), token_baseline=0)(model, x, 0, a=a)
    with pytest.raises(ValueError, match="segments must be integer labels"):
        IROF(token_baseline=0)(model, x, 0, a=a, segments=np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="at least 2 segments"):
        IROF(token_baseline=0)(model, x, 0, a=a, segments=np.zeros(x.shape[1], int))
    with pytest.raises(ValueError, match="does not fit x"):
        PixelFlipping(token_baseline=0)(model, x, 0, a=a[:, :3])
    with pytest.raises(ValueError, match="aopc needs"):
        PixelFlipping().aopc(np.zeros((1, 3)))
