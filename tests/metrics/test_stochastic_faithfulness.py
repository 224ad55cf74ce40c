"""ROAD, FaithfulnessCorrelation and Infidelity: Quantus 0.6's numbers on the digits CNN, the
formulas by hand in NumPy float64, the batching, tabular and token inputs, and what Quantus
gets wrong.

The Quantus numbers (tests/data/quantus/stochastic_faithfulness.npz) come from
tools/quantus_reference/stochastic_faithfulness.py, run on the PyTorch twin of
keras_lrp/demos/models/digits_cnn.keras with the relevances of tests/data/quantus/inputs.npz.
The random draws are Quantus's own, replayed: it seeds NumPy's legacy stream, and the
generator checked that ``np.random.RandomState(seed)`` making the same calls gives the same
draws; the tests make those calls and hand them to keras-lrp (``noise_draws=``, ``indices=``).

Tolerances: the Keras model and its twin both compute in float32, so their logits, and the
score drops built from them, agree to ~1e-6 relative; ROAD's 0/1 decisions agree exactly.
"""

import os

import numpy as np
import pytest

from keras_lrp.metrics.base import Scores
from keras_lrp.metrics.road import ROAD, STENCIL_2D, noisy_linear_imputation
from keras_lrp.metrics.stochastic import FaithfulnessCorrelation, Infidelity, patch_blocks, pearson

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "quantus")
MODELS = os.path.join(ROOT, "keras_lrp", "demos", "models")


@pytest.fixture(scope="module")
def inputs():
    with np.load(os.path.join(DATA, "inputs.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def quantus():
    with np.load(os.path.join(DATA, "stochastic_faithfulness.npz")) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def model():
    import keras

    return keras.models.load_model(os.path.join(MODELS, "digits_cnn.keras"))


def ranking(order: np.ndarray, shape) -> np.ndarray:
    """A tie-free relevance whose descending order is ``order`` (N, P): Quantus's sort of the
    relevance, which breaks ties its own (unstable) way."""
    n, p = order.shape
    r = np.empty((n, p))
    np.put_along_axis(r, order.astype(np.int64), np.arange(p, 0, -1.0)[None].repeat(n, 0), 1)
    return r.reshape(shape)


def road_draws(seed: int, order: np.ndarray, percentages, x_shape) -> np.ndarray:
    """Quantus's imputation noise, replayed: per percentage, per sample, randn(C, k) for the
    k removed pixels in its order of relevance."""
    rs = np.random.RandomState(seed)
    n, h, w, c = x_shape
    draws = np.zeros((len(percentages), n, h * w, c))
    for i, p in enumerate(percentages):
        k = int(h * w * p / 100)
        for j in range(n):
            draws[i, j, order[j, :k]] = rs.randn(c, k).T
    return draws.reshape((len(percentages),) + tuple(x_shape))


def fc_indices(seed: int, runs: int, n: int, features: int, size: int) -> np.ndarray:
    """Quantus's subsets, replayed: per run, choice(F, size) per sample, then the uniform(N)
    its baseline dict draws (for any baseline)."""
    rs = np.random.RandomState(seed)
    idx = np.empty((runs, n, size), dtype=np.int64)
    for r in range(runs):
        for j in range(n):
            idx[r, j] = rs.choice(features, size, replace=False)
        rs.uniform(0.0, 1.0, n)
    return idx


# ROAD: Quantus's numbers -------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["epsilon", "gradient"])
def test_road_equals_quantus_without_noise(model, inputs, quantus, tag):
    x, y = inputs["x"], inputs["y"]
    ours = ROAD(noise=0.0)(model, x, y, a=ranking(quantus[f"road_{tag}_order"], x.shape))
    np.testing.assert_array_equal(ours, quantus[f"road_{tag}_clean"])
    np.testing.assert_array_equal(ROAD.curve(ours), quantus[f"road_{tag}_clean_curve"])


def test_road_tie_free_relevance_needs_no_order(model, inputs, quantus):
    """The gradient has no ties: its own order is Quantus's, and the numbers agree as given."""
    x, y, a = inputs["x"], inputs["y"], inputs["a_gradient"]
    np.testing.assert_array_equal(ROAD(noise=0.0)(model, x, y, a=a), quantus["road_gradient_clean"])


def test_road_ties_are_only_order(model, inputs, quantus):
    """Epsilon-LRP gives every blank pixel relevance 0: Quantus's unstable sort and our stable
    one order the same values, and part of the curve depends on which blank goes first."""
    a = inputs["a_epsilon"].reshape(16, -1)
    ours = np.argsort(-a, axis=1, kind="stable")
    theirs = quantus["road_epsilon_order"].astype(np.int64)
    np.testing.assert_array_equal(np.take_along_axis(a, ours, 1),
                                  np.take_along_axis(a, theirs, 1))
    assert not np.array_equal(ours, theirs)


@pytest.mark.parametrize("tag", ["epsilon", "gradient"])
def test_road_equals_quantus_with_its_noise(model, inputs, quantus, tag):
    x, y = inputs["x"], inputs["y"]
    order = quantus[f"road_{tag}_order"].astype(np.int64)
    metric = ROAD()
    draws = road_draws(int(quantus["road_seed"]), order, metric.percentages, x.shape)
    ours = metric(model, x, y, a=ranking(order, x.shape), noise_draws=draws)
    np.testing.assert_array_equal(ours, quantus[f"road_{tag}_noisy"])


# ROAD: Quantus's bugs (issue #333 and more) ------------------------------------------------


def test_quantus_road_is_not_always_zero_here(model, inputs, quantus):
    """Quantus issue #333 reports ROAD returning 0 at every percentage. 0.6 does not on the
    twin: the curve starts at the model's accuracy (1 % of 64 pixels removes none) and is 0
    only where every digit is misclassified, as ours."""
    curve = quantus["road_epsilon_clean_curve"]
    assert curve[0] == np.mean(inputs["logits"].argmax(1) == inputs["y"]) == 15 / 16
    assert np.count_nonzero(curve) >= 40
    per = quantus["road_epsilon_clean"]
    np.testing.assert_array_equal(curve == 0, per.max(axis=0) == 0)


def test_quantus_road_averages_the_first_batch_only(model, inputs, quantus):
    """Quantus 0.6 keeps the curves of every batch but averages evaluation_scores[0]: with
    batch_size 8 its curve is that of the first 8 digits."""
    x, y = inputs["x"], inputs["y"]
    ps = list(quantus["road_check_percentages"])
    ours = ROAD(percentages=ps, noise=0.0)(model, x, y,
                                          a=ranking(quantus["road_epsilon_order"], x.shape))
    np.testing.assert_array_equal(quantus["road_epsilon_batch8_curve"], ours[:8].mean(0))
    assert not np.array_equal(quantus["road_epsilon_batch8_curve"], ours.mean(0))


def test_quantus_road_fails_on_colour_images_ours_does_not(model, inputs, quantus):
    """Quantus 0.6 sorts C·H·W relevance positions but imputes on the H·W grid (IndexError).
    Ours imputes every channel of the chosen pixels: three copies of a digit, read by a model
    that averages them, give the grey result."""
    assert str(quantus["road_rgb_error"]).startswith("IndexError")
    x, y, a = inputs["x"], inputs["y"], inputs["a_gradient"]
    grey = Scores(model)
    metric = ROAD(percentages=[10, 30, 50], noise=0.0)
    rgb = metric(lambda v: grey(np.mean(v, axis=-1, keepdims=True)), np.repeat(x, 3, -1), y, a=a)
    np.testing.assert_array_equal(rgb, metric(model, x, y, a=a))


# ROAD: the formula by hand -----------------------------------------------------------------


def dense_imputation(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Each removed pixel the weighted mean of its in-frame neighbours: the linear system
    assembled pixel by pixel and solved densely, float64."""
    h, w, _ = img.shape
    unknown = list(zip(*np.nonzero(removed)))
    at = {pix: i for i, pix in enumerate(unknown)}
    a, b = np.zeros((len(unknown),) * 2), np.zeros((len(unknown), img.shape[2]))
    for i, (r, c) in enumerate(unknown):
        for (dr, dc), weight in STENCIL_2D:
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w:
                a[i, i] += weight
                if (rr, cc) in at:
                    a[i, at[rr, cc]] -= weight
                else:
                    b[i] += weight * img[rr, cc]
    out = img.astype(np.float64).copy()
    if unknown:
        out[removed] = np.linalg.solve(a, b)
    return out


def test_imputation_is_the_neighbour_mean_system():
    rng = np.random.default_rng(0)
    x = rng.random((4, 5, 7, 2))
    mask = rng.random((4, 5, 7)) < np.array([0.0, 0.2, 0.6, 0.97])[:, None, None]
    ours = noisy_linear_imputation(x, mask, noise=0.0)
    for j in range(4):
        np.testing.assert_allclose(ours[j], dense_imputation(x[j], mask[j]), atol=1e-9)
    draws = rng.standard_normal(x.shape)
    noisy = noisy_linear_imputation(x, mask, noise=0.5, draws=draws)
    np.testing.assert_allclose(noisy - ours, 0.5 * draws * mask[..., None], atol=1e-12)


def test_imputation_of_rows_is_linear_and_of_nothing_is_zero():
    x = np.array([[0.0, 9.0, 9.0, 3.0, 9.0], [1.0, 2.0, 3.0, 4.0, 5.0]])[..., None]
    mask = np.array([[False, True, True, False, True], [True] * 5])
    out = noisy_linear_imputation(x, mask, noise=0.0)[..., 0]
    # inside: the straight line between the kept ends; at the edge: the one neighbour
    np.testing.assert_allclose(out, [[0.0, 1.0, 2.0, 3.0, 3.0], [0.0] * 5], atol=1e-12)


def test_road_removes_the_top_features_by_imputation(inputs):
    """What the model sees at each percentage: the ⌊64 p / 100⌋ most (or least) relevant pixels
    imputed, the rest unchanged."""
    x, a = inputs["x"][:3].astype(np.float64), inputs["a_gradient"][:3]
    seen = []

    def model(v):
        seen.append(np.array(v, dtype=np.float64))
        return np.stack([v.sum(axis=(1, 2, 3)), np.full(len(v), 10.0)], 1)

    ps = [0, 10, 50, 99]
    for order, sign in (("morf", -1), ("lerf", 1)):
        seen.clear()
        values = ROAD(percentages=ps, noise=0.0, order=order)(model, x, 0, a=a)
        steps = seen[1].reshape(len(ps), 3, 8, 8, 1)
        ranked = np.argsort(sign * a.reshape(3, -1), axis=1, kind="stable")
        for i, p in enumerate(ps):
            for j in range(3):
                removed = np.zeros(64, bool)
                removed[ranked[j, :int(64 * p / 100)]] = True
                expected = dense_imputation(x[j], removed.reshape(8, 8))
                np.testing.assert_allclose(steps[i, j], expected, atol=1e-6)
        np.testing.assert_array_equal(values, (steps.sum(axis=(2, 3, 4)) > 10).T)


def test_road_tabular_rows():
    rng = np.random.default_rng(1)
    x = rng.random((5, 6)).astype(np.float32)
    seen = []

    def model(v):
        seen.append(np.asarray(v, dtype=np.float64))
        return np.stack([v[:, 0], v[:, 5]], axis=1)

    a = np.tile(np.arange(6.0), (5, 1))                 # feature 5 most relevant, then 4, …
    values = ROAD(percentages=[50], noise=0.0)(model, x, 1, a=a)
    imputed = seen[1]
    np.testing.assert_allclose(imputed[:, :3], x[:, :3], atol=0)
    np.testing.assert_allclose(imputed[:, 3:], np.repeat(x[:, 2:3], 3, 1), atol=1e-6)
    np.testing.assert_array_equal(values[:, 0], imputed[:, 5] > imputed[:, 0])


def test_road_batching_and_seeded_noise(model, inputs):
    x, y, a = inputs["x"], inputs["y"], inputs["a_gradient"]
    ps = [5, 20, 35, 50, 65, 80]
    grey = Scores(model)

    def run(seed, **kwargs):
        seen = []

        def spy(v):
            seen.append(np.asarray(v))
            return grey(v)

        scores = Scores(spy)
        values = ROAD(percentages=ps, seed=seed, **kwargs)(scores, x, y, a=a)
        return values, np.concatenate(seen[1:]), scores.calls

    first, inputs_a, calls = run(3)
    assert calls == 2                              # the clean batch, then all 6 steps stacked
    again, inputs_b, calls = run(3, inputs_per_call=16)
    assert calls == 1 + 6                          # one step, the whole batch, per call
    np.testing.assert_array_equal(first, again)
    # the same noise however stacked; the solves agree to their tolerance (one float32 ulp)
    np.testing.assert_allclose(inputs_a, inputs_b, atol=1e-7)
    assert not np.array_equal(inputs_a, run(4)[1])
    metric = ROAD()
    assert metric.per_sample(first).shape == (16,) and metric.higher_is_better is False
    assert ROAD(order="lerf").higher_is_better is True


def test_road_errors(model, inputs):
    x, y, a = inputs["x"], inputs["y"], inputs["a_gradient"]
    with pytest.raises(ValueError, match="token ids"):
        ROAD()(lambda v: np.zeros((len(v), 2)), np.ones((2, 5), np.int32), 0,
               a=np.ones((2, 5)))
    with pytest.raises(ValueError, match="percentages"):
        ROAD(percentages=[10, 120])
    with pytest.raises(ValueError, match="order"):
        ROAD(order="random")
    with pytest.raises(ValueError, match="noise_draws"):
        ROAD(percentages=[10])(model, x, y, a=a, noise_draws=np.zeros((2,) + x.shape))


# FaithfulnessCorrelation -------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["epsilon", "gradient"])
def test_faithfulness_correlation_equals_quantus_with_its_subsets(model, inputs, quantus, tag):
    x, y = inputs["x"], inputs["y"]
    runs, size = int(quantus["fc_nr_runs"]), int(quantus["fc_subset_size"])
    idx = fc_indices(int(quantus["fc_seed"]), runs, len(x), 64, size)
    scores = Scores(model)
    ours = FaithfulnessCorrelation(nr_runs=runs, subset_size=size)(
        scores, x, y, a=inputs[f"a_{tag}"], indices=idx)
    np.testing.assert_allclose(ours, quantus[f"fc_{tag}"], atol=1e-5)
    assert scores.calls == 2                       # the clean batch, then all runs stacked


@pytest.mark.parametrize("tag", ["epsilon", "gradient"])
def test_faithfulness_correlation_own_draws_within_sampling_error(model, inputs, quantus, tag):
    """Our own subsets (default_rng) against Quantus's: each sample's r over R runs has a
    standard error of about (1 − r²) / √(R − 1); two independent estimates differ by √2 times
    that; the mean over the 16 digits by the root sum of squares / 16. Within 4 of those."""
    x, y = inputs["x"], inputs["y"]
    runs, size = int(quantus["fc_nr_runs"]), int(quantus["fc_subset_size"])
    ours = FaithfulnessCorrelation(nr_runs=runs, subset_size=size, seed=7)(
        model, x, y, a=inputs[f"a_{tag}"])
    theirs = quantus[f"fc_{tag}"]
    se = np.sqrt(2) * (1 - theirs ** 2) / np.sqrt(runs - 1)
    assert abs(ours.mean() - theirs.mean()) <= 4 * np.sqrt(np.sum(se ** 2)) / len(x)


def test_faithfulness_correlation_by_hand():
    """r of Σ_S a against f(x) − f(x with S at the baseline), loop by loop, float64; and 1 for
    the exact attribution of a linear model."""
    rng = np.random.default_rng(2)
    x, w = rng.random((3, 7)), rng.normal(size=(7, 2))
    a = rng.normal(size=(3, 7))
    idx = np.stack([[rng.choice(7, 3, replace=False) for _ in range(3)] for _ in range(6)])

    def f(v):
        return np.tanh(v) @ w

    ours = FaithfulnessCorrelation(nr_runs=6, subset_size=3, normalise=False)(
        f, x, 1, a=a, indices=idx)
    for j in range(3):
        sums, drops = [], []
        for r in range(6):
            v = x[j].copy()
            v[idx[r, j]] = x[j].min()                            # "black": the sample's min
            sums.append(a[j, idx[r, j]].sum())
            drops.append(f(x[j:j + 1])[0, 1] - f(v[None])[0, 1])
        np.testing.assert_allclose(ours[j], np.corrcoef(sums, drops)[0, 1], rtol=1e-12)
    exact = w[:, 0] * (x - x.min(axis=1, keepdims=True))
    linear = FaithfulnessCorrelation(nr_runs=20, subset_size=3, seed=0)(lambda v: v @ w, x, 0,
                                                                         a=exact)
    np.testing.assert_allclose(linear, 1.0, atol=1e-12)
    np.testing.assert_allclose(pearson(np.ones((1, 4)), np.arange(4.0)[None]), np.nan)


def test_faithfulness_correlation_errors(model, inputs):
    x, y, a = inputs["x"], inputs["y"], inputs["a_gradient"]
    with pytest.raises(ValueError, match="smaller than the 64 features"):
        FaithfulnessCorrelation()(model, x, y, a=a)                   # Quantus's 224 > 64
    with pytest.raises(ValueError, match="nr_runs"):
        FaithfulnessCorrelation(nr_runs=1)
    with pytest.raises(ValueError, match="indices must be"):
        FaithfulnessCorrelation(nr_runs=2, subset_size=4)(
            model, x, y, a=a, indices=np.zeros((2, 16, 3), int))
    with pytest.raises(ValueError, match="without replacement"):
        FaithfulnessCorrelation(nr_runs=2, subset_size=2)(
            model, x, y, a=a, indices=np.zeros((2, 16, 2), int))


# Infidelity --------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["epsilon", "gradient"])
@pytest.mark.parametrize("key,kwargs", [("", {}), ("_patches24", {"perturb_patch_sizes": [2, 4]})])
def test_infidelity_equals_quantus(model, inputs, quantus, tag, key, kwargs):
    """Quantus computes in float32 (values ~50): 1e-5 relative."""
    x, y = inputs["x"], inputs["y"]
    scores = Scores(model)
    ours = Infidelity(**kwargs)(scores, x, y, a=inputs[f"a_{tag}"])
    np.testing.assert_allclose(ours, quantus[f"infidelity_{tag}{key}"], rtol=1e-5)
    assert scores.calls == 2                       # the clean batch, then every patch step


def test_quantus_infidelity_draws_nothing(quantus):
    """Quantus's n_perturb_samples repeats one deterministic computation (black baseline): 10
    repeats give one's value (up to its float32 mean of ten equal numbers)."""
    for tag in ("epsilon", "gradient"):
        np.testing.assert_allclose(quantus[f"infidelity_{tag}_once"],
                                   quantus[f"infidelity_{tag}"], rtol=1e-6)


def test_quantus_infidelity_normalises_by_the_batch_max(model, inputs, quantus):
    """With normalise=True Quantus divides a by max |a| over the whole a_batch given; ours
    divides each sample by its own max."""
    x, y, a = inputs["x"], inputs["y"], inputs["a_epsilon"]
    batch = Infidelity()(model, x, y, a=a / quantus["infidelity_global_max"])
    np.testing.assert_allclose(batch, quantus["infidelity_epsilon_normalised"], rtol=1e-5)
    assert not np.allclose(Infidelity(normalise=True)(model, x, y, a=a), batch, rtol=1e-2)


def test_infidelity_patches_that_do_not_divide_the_image(model, inputs, quantus):
    """Quantus fails on patch 3 of an 8 × 8 digit; ours crops the grid Quantus pads."""
    assert str(quantus["infidelity_patch3_error"]).startswith("ValueError")
    layout = type("L", (), {"shape": (1, 8, 8)})()
    rows = np.repeat(np.arange(8) // 3, 8).reshape(8, 8)
    np.testing.assert_array_equal(patch_blocks(layout, 3).reshape(8, 8), 3 * rows + rows.T)
    rows = np.repeat((np.arange(6) + 1) // 4, 6).reshape(6, 6)  # 6 of 4: one padded each side
    layout = type("L", (), {"shape": (1, 6, 6)})()
    np.testing.assert_array_equal(patch_blocks(layout, 4).reshape(6, 6), 2 * rows + rows.T)
    values = Infidelity(perturb_patch_sizes=[3])(model, inputs["x"], inputs["y"],
                                                 a=inputs["a_gradient"])
    assert values.shape == (16,) and np.all(np.isfinite(values))


def test_infidelity_by_hand():
    """Tabular rows, windows of 2: step k puts windows 0..k at the baseline; the loss is the
    mean over steps of (Σ a (x − x̃) − (f(x) − f(x̃)))². The gradient of a linear model is
    exact (0); twice it is off by the change itself."""
    rng = np.random.default_rng(3)
    x, w = rng.random((4, 6)), rng.normal(size=(6, 3))

    def f(v):
        return v @ w

    assert np.allclose(Infidelity(perturb_patch_sizes=[2])(f, x, 2, a=np.tile(w[:, 2], (4, 1))),
                       0.0, atol=1e-24)
    twice = Infidelity(perturb_patch_sizes=[2, 3])(f, x, 2, a=np.tile(2 * w[:, 2], (4, 1)))
    for j in range(4):
        losses = []
        for p in (2, 3):
            steps = []
            for k in range(6 // p):
                v = x[j].copy()
                v[:(k + 1) * p] = x[j].min()
                steps.append((w[:, 2] @ (x[j] - v)) ** 2)        # (2 w·I − w·I)²
            losses.append(np.mean(steps))
        np.testing.assert_allclose(twice[j], np.mean(losses), rtol=1e-12)


def test_infidelity_random_baseline_repeats_and_errors(model, inputs):
    x, y, a = inputs["x"][:4], inputs["y"][:4], inputs["a_gradient"][:4]
    scores = Scores(model)
    values = Infidelity(perturb_baseline="uniform", n_perturb_samples=3, seed=0)(scores, x, y,
                                                                                  a=a)
    assert values.shape == (4,) and scores.calls == 2          # 3 × 4 steps in one call
    with pytest.raises(ValueError, match="loss_func"):
        Infidelity(loss_func="mae")
    with pytest.raises(ValueError, match="does not fit"):
        Infidelity(perturb_patch_sizes=[9])(model, x, y, a=a)


# Token ids ---------------------------------------------------------------------------------


def test_tokens_with_an_additive_model():
    """A model that adds a score per token: removing S costs Σ_S (V[x_t] − V[0]), so that
    relevance correlates perfectly and has infidelity 0."""
    rng = np.random.default_rng(4)
    table = rng.normal(size=(12, 2))
    x = rng.integers(1, 12, size=(5, 9)).astype(np.int32)
    seen = []

    def model(v):
        seen.append(np.asarray(v))
        return table[np.asarray(v)].sum(axis=1)

    a = table[x, 1] - table[0, 1]
    fc = FaithfulnessCorrelation(nr_runs=30, subset_size=3, token_baseline=0, seed=0)(
        model, x, 1, a=a)
    np.testing.assert_allclose(fc, 1.0, atol=1e-12)
    assert seen[1].dtype == np.int32 and np.all(np.sum(seen[1] != np.tile(x, (30, 1)), 1) == 3)
    infid = Infidelity(perturb_patch_sizes=[2, 4], token_baseline=0)(model, x, 1, a=a)
    np.testing.assert_allclose(infid, 0.0, atol=1e-20)
    with pytest.raises(ValueError, match="token_baseline"):
        FaithfulnessCorrelation(nr_runs=3, subset_size=2)(model, x, 1, a=a)


def test_tokens_with_the_sentiment_transformer():
    """The shipped token model (ids, 0 = padding) with a leave-one-out relevance: each token's
    score drop when it alone becomes padding."""
    import keras

    model = keras.models.load_model(os.path.join(MODELS, "sentiment_transformer.keras"))
    with np.load(os.path.join(MODELS, "sentiment_test.npz")) as data:
        x, y = data["x"][:6], data["y"][:6].astype(np.int64)
    scores = Scores(lambda v: model(v, training=False))
    t = x.shape[1]
    out = scores(np.where(np.eye(t, dtype=bool)[:, None], 0, x[None]).reshape(-1, t))
    a = scores(x)[np.arange(6), y][None] - out.reshape(t, 6, -1)[:, np.arange(6), y]
    scores.calls = 0
    fc = FaithfulnessCorrelation(nr_runs=20, subset_size=4, token_baseline=0, seed=0)(
        scores, x, y, a=a.T)
    assert fc.shape == (6,) and np.all(np.abs(fc) <= 1) and scores.calls == 2
    assert np.mean(fc) > 0.5                       # leave-one-out predicts subset removal
    infid = Infidelity(token_baseline=0)(scores, x, y, a=a.T)
    assert infid.shape == (6,) and np.all(infid >= 0) and scores.calls == 4
