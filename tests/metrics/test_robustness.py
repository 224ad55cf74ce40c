"""MaxSensitivity, AvgSensitivity, LocalLipschitzEstimate and Continuity
(keras_lrp.metrics.robustness) against Quantus 0.6 and by hand.

The Quantus numbers come from tools/quantus_reference/robustness.py: Quantus' own metrics on the
PyTorch twin of the digits CNN with ``explain_func`` = ``twin.explain_gradient`` /
``twin.explain_input_x_gradient``, which compute what keras-lrp's ``gradient`` /
``input_t_gradient`` analyzers compute. Quantus draws its noise from NumPy's global generator,
seeded before each run, one (16, 64) draw per round: ``np.random.RandomState(seed)``'s draws,
which these tests replay through ``noise=`` (the generator checks that by recording what Quantus
perturbed). With the same draws every metric is deterministic, so keras-lrp must equal Quantus
to float32 precision; with its own seed it must lie within the estimator's sampling error.
"""

import os

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.metrics.base import Scores
from keras_lrp.metrics.robustness import (
    AvgSensitivity,
    Continuity,
    LocalLipschitzEstimate,
    MaxSensitivity,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "quantus")
#: Quantus computes in float32 (the twin's gradients, x + noise cast to float32, its norms of
#: float32 arrays); PyTorch's and each Keras backend's float32 gradients differ in the last bits
#: (~1e-7 relative; measured ≤ 1e-6 on TensorFlow): 1e-5 relative is float32 arithmetic with
#: margin, far below any difference in the definition (the metrics move by ~1e-1 per round).
RTOL = 1e-5
NOISE = {"maxsens": MaxSensitivity, "avgsens": AvgSensitivity, "lle": LocalLipschitzEstimate}


@pytest.fixture(scope="module")
def digits():
    inputs = dict(np.load(os.path.join(DATA, "inputs.npz")))
    quantus = dict(np.load(os.path.join(DATA, "robustness.npz")))
    model = keras.models.load_model(os.path.join(ROOT, "keras_lrp", "demos", "models",
                                                 "digits_cnn.keras"))
    explain = {key: keras_lrp.create_analyzer(name, model, neuron_selection_mode="index")
               for key, name in (("g", "gradient"), ("ixg", "input_t_gradient"))}
    relevance = {"g": inputs["a_gradient"], "ixg": inputs["a_input_x_gradient"]}
    return inputs, quantus, model, explain, relevance


def quantus_noise(quantus, metric, n=16, features=64, rounds=None):
    """The draws Quantus made: np.random.RandomState(seed), one (n, features) array per round."""
    seed = int(quantus["seeds"][list(NOISE).index(metric)])
    rounds = int(quantus["nr_samples"]) if rounds is None else rounds
    rs = np.random.RandomState(seed)
    draw = (lambda: rs.normal(0.0, 0.1, (n, features))) if metric == "lle" else \
        (lambda: rs.uniform(-0.2, 0.2, (n, features)))
    return np.stack([draw() for _ in range(rounds)])


class Counting:
    """An explain callable counting its calls and the inputs it was given."""

    def __init__(self, analyzer):
        self.analyzer, self.calls, self.sizes = analyzer, 0, []

    def __call__(self, x, targets):
        self.calls += 1
        self.sizes.append(len(x))
        return self.analyzer.analyze(x, neuron_selection=targets)


# -- Quantus' numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["g", "ixg"])
@pytest.mark.parametrize("metric", list(NOISE))
def test_noise_metrics_equal_quantus_with_its_draws(digits, metric, key):
    inputs, quantus, model, explain, relevance = digits
    values = NOISE[metric]()(model, inputs["x"], inputs["y"], a=relevance[key],
                             explain=explain[key], noise=quantus_noise(quantus, metric))
    np.testing.assert_allclose(values, quantus[f"{metric}_{key}"], rtol=RTOL)


@pytest.mark.parametrize("run", ["g_5", "g_8", "ixg_6"])
def test_continuity_equals_quantus_step_by_step(digits, run):
    """Each shift's ‖a − a'‖₁ / ‖x − x'‖₂ equals Quantus'; at the shift 0 (nr_steps 8 and 6:
    x' = x) Quantus divides its explainer's float noise by 1e-9, we count 0."""
    inputs, quantus, model, explain, relevance = digits
    key, steps = run.split("_")
    metric = Continuity(nr_steps=int(steps))
    per_step = metric(model, inputs["x"], inputs["y"], a=relevance[key], explain=explain[key],
                      return_rounds=True)
    num, den = quantus[f"cont_{run}_num"], quantus[f"cont_{run}_den"]
    moved = den > 0
    np.testing.assert_allclose(per_step[moved], (num / (den + 1e-9))[moved], rtol=RTOL)
    np.testing.assert_array_equal(per_step[~moved], 0.0)
    if moved.all():  # no shift 0: the values themselves agree
        np.testing.assert_allclose(per_step.max(axis=1), quantus[f"cont_{run}"], rtol=RTOL)
    else:
        np.testing.assert_array_equal(metric.shifts(8)[~moved[0]], [0])
        assert np.all(quantus[f"cont_{run}"] > 100)  # float noise / 1e-9
        assert np.all(per_step.max(axis=1) < 10)


def test_quantus_continuity_default_steps_do_not_move_on_narrow_images(digits):
    """Quantus' dx = (2W + 1) // nr_steps is 17 // 28 = 0 on the 8-pixel digits: all 28 steps
    shift by −8, the all-black image; that is our single shift past the edge (nr_steps=1). Ours
    steps one pixel at a time instead (−7, −6, …), that black image among them."""
    inputs, quantus, model, explain, relevance = digits
    den = quantus["cont_g_default28_den"]
    np.testing.assert_array_equal(den, den[:, :1] + 0 * den)  # one shift, 28 times
    x, y, a = inputs["x"], inputs["y"], relevance["g"]
    black = Continuity(nr_steps=1)
    assert black.shifts(8).tolist() == [9]
    np.testing.assert_allclose(black(model, x, y, a=a, explain=explain["g"]),
                               quantus["cont_g_default28"], rtol=RTOL)
    ours = Continuity()
    assert ours.shifts(8)[:3].tolist() == [-7, -6, -5]
    assert np.all(ours(model, x, y, a=a, explain=explain["g"]) >=
                  quantus["cont_g_default28"] * (1 - RTOL))


def test_quantus_normalisation_depends_on_the_batch(digits):
    """Quantus' normalise_by_max divides by the max over the whole batch (its default axes hold
    the batch axis): LocalLipschitzEstimate's default gives the first 8 digits other values when
    run on 8 than on 16, with the same noise. Our per-sample normalisation does not; and our
    formula with the batch max instead reproduces Quantus' default."""
    inputs, quantus, model, explain, relevance = digits
    assert np.abs(quantus["lle_g_default16"][:8] - quantus["lle_g_default8"]).max() > 0.1
    x, y, a = inputs["x"], inputs["y"], relevance["g"]
    noise = quantus_noise(quantus, "lle", rounds=8)
    metric = LocalLipschitzEstimate(nr_samples=8)
    ours16 = metric(model, x, y, a=a, explain=explain["g"], noise=noise)
    ours8 = metric(model, x[:8], y[:8], a=a[:8], explain=explain["g"], noise=noise[:, :8])
    np.testing.assert_allclose(ours8, ours16[:8], rtol=RTOL)
    for n in (16, 8):
        flat_x, a0 = x[:n].reshape(n, -1), a[:n].reshape(n, -1).astype(np.float64)
        a0 = a0 / np.abs(a0).max()
        best = np.zeros(n)
        for d in noise[:, :n]:
            xp = (flat_x + d).astype(np.float32)
            ap = explain["g"].analyze(xp.reshape(x[:n].shape), neuron_selection=y[:n])
            ap = ap.reshape(n, -1).astype(np.float64)
            ap = ap / np.abs(ap).max()
            ratio = np.linalg.norm(a0 - ap, axis=1) / (np.linalg.norm(
                flat_x.astype(np.float64) - xp, axis=1) + 1e-10)
            best = np.maximum(best, ratio)
        np.testing.assert_allclose(best, quantus[f"lle_g_default{n}"], rtol=RTOL)


@pytest.mark.parametrize("metric", list(NOISE))
def test_own_seed_within_sampling_error(digits, metric):
    """With its own draws (seed) the estimate lies within sampling error of Quantus'. The error
    bar: 2000 rounds split into R = 10 runs of 200 (Quantus' nr_samples) give 10 independent
    estimates per digit (max or mean of their 200 rounds); their standard deviation s is the
    estimator's own spread, and the difference of two independent estimates (ours: the first
    run; Quantus') has standard deviation √2·s. Each digit must lie within 4·√2·s, and the mean
    over the 16 digits within 4·√2 times the spread of the 10 runs' means."""
    inputs, quantus, model, explain, relevance = digits
    r, n = 10, int(quantus["nr_samples"])
    rounds = NOISE[metric](nr_samples=r * n, seed=11)(
        model, inputs["x"], inputs["y"], a=relevance["g"], explain=explain["g"],
        return_rounds=True).reshape(16, r, n)
    runs = rounds.mean(axis=2) if metric == "avgsens" else rounds.max(axis=2)
    ours, theirs = runs[:, 0], quantus[f"{metric}_g"]
    assert np.all(np.abs(ours - theirs) <= 4 * np.sqrt(2) * runs.std(axis=1, ddof=1))
    assert abs(ours.mean() - theirs.mean()) <= 4 * np.sqrt(2) * runs.mean(axis=0).std(ddof=1)
    if metric == "avgsens":  # the textbook standard error of a mean agrees with the spread
        se = rounds[:, 0].std(axis=1, ddof=1) / np.sqrt(n)
        np.testing.assert_allclose(se, runs.std(axis=1, ddof=1), rtol=0.6)


# -- LRP, batching ------------------------------------------------------------------------------
def test_max_sensitivity_of_lrp_epsilon_is_batched_and_equals_a_loop(digits):
    """lrp.epsilon, explained on all perturbed copies in one call, equals the formula computed
    one sample and one round at a time with the same analyzer."""
    inputs, _, model, _, _ = digits
    x, y = inputs["x"][:4], inputs["y"][:4]
    lrp = keras_lrp.create_analyzer("lrp.epsilon", model, neuron_selection_mode="index",
                                    epsilon=0.1)
    noise = np.random.default_rng(0).uniform(-0.2, 0.2, (3,) + x.shape)
    values = MaxSensitivity(nr_samples=3)(model, x, y, explain=lrp, noise=noise)
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    counting = Counting(lrp)
    np.testing.assert_array_equal(
        MaxSensitivity(nr_samples=3)(model, x, y, explain=counting, noise=noise), values)
    assert counting.sizes == [4, 12]  # a(x), then the 3 rounds of 4 in one call
    loop = []
    for i in range(len(x)):
        a = lrp.analyze(x[i:i + 1], neuron_selection=y[i:i + 1]).astype(np.float64).ravel()
        worst = 0.0
        for d in noise[:, i]:
            xp = (x[i:i + 1].astype(np.float64) + d).astype(np.float32)
            ap = lrp.analyze(xp, neuron_selection=y[i:i + 1]).astype(np.float64).ravel()
            worst = max(worst, np.linalg.norm(a - ap) / np.linalg.norm(a))
        loop.append(worst)
    np.testing.assert_allclose(values, loop, rtol=1e-4)


def test_one_explain_call_and_model_calls_only_where_needed(digits):
    inputs, _, model, explain, relevance = digits
    x, y, a = inputs["x"], inputs["y"], relevance["g"]
    for metric, rounds in ((MaxSensitivity(nr_samples=8, seed=0), 8),
                           (LocalLipschitzEstimate(nr_samples=8, seed=0), 8),
                           (Continuity(nr_steps=8), 8)):
        scores, counting = Scores(explain["g"]), Counting(explain["g"])  # its forward model
        metric(scores, x, y, a=a, explain=counting)
        assert (scores.calls, counting.sizes) == (1, [16 * rounds])  # y's check, one stack
        metric.return_nan_when_prediction_changes = True
        scores, counting = Scores(explain["g"]), Counting(explain["g"])  # its forward model
        metric(scores, x, y, a=a, explain=counting)
        assert (scores.calls, counting.sizes) == (2, [16 * rounds])


def test_batch_size_splits_whole_rounds_and_keeps_the_draws(digits):
    inputs, _, model, explain, relevance = digits
    x, y, a = inputs["x"], inputs["y"], relevance["g"]
    for cls in (AvgSensitivity, LocalLipschitzEstimate):
        whole = cls(nr_samples=8, seed=3)(model, x, y, a=a, explain=explain["g"])
        counting = Counting(explain["g"])
        split = cls(nr_samples=8, seed=3, batch_size=50)(model, x, y, a=a, explain=counting)
        assert counting.sizes == [48, 48, 32]  # whole rounds: 3 of 16 per call
        np.testing.assert_allclose(split, whole, rtol=1e-6)


# -- by hand, float64 ---------------------------------------------------------------------------
def table(x):
    """A tabular 'model': the scores are the first three features."""
    return np.asarray(x, dtype=np.float64)[:, :3]


def squares(x, targets):
    """A NumPy explainer: a(x) = (t + 1)·x² (the target scales it)."""
    return (np.asarray(targets)[:, None] + 1.0) * np.asarray(x, dtype=np.float64) ** 2


def test_sensitivity_by_hand_on_a_table():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0.5, 1.5, (4, 5)), np.array([0, 1, 2, 1])
    noise = rng.uniform(-0.2, 0.2, (3, 4, 5))
    a = squares(x, y)
    ratios = np.array([[np.linalg.norm(a[i] - squares(x[i:i + 1] + d[i], y[i:i + 1])[0]) /
                        np.linalg.norm(a[i]) for d in noise] for i in range(4)])
    for cls, want in ((MaxSensitivity, ratios.max(1)), (AvgSensitivity, ratios.mean(1))):
        got = cls(nr_samples=3)(table, x, y, explain=squares, noise=noise)
        np.testing.assert_allclose(got, want, rtol=1e-13)
        rounds = cls(nr_samples=3)(table, x, y, explain=squares, noise=noise,
                                   return_rounds=True)
        np.testing.assert_allclose(rounds, ratios, rtol=1e-13)


def test_local_lipschitz_by_hand():
    """A linear explainer 3·x has Lipschitz constant 3 (no normalisation); normalised by each
    sample's max, the ratio follows by hand."""
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0.5, 1.5, (3, 4)), np.array([0, 1, 2])
    noise = rng.normal(0.0, 0.1, (4, 3, 4))

    def triple(v, t):
        return 3.0 * np.asarray(v, dtype=np.float64)

    got = LocalLipschitzEstimate(nr_samples=4, normalise=False)(
        table, x, y, explain=triple, noise=noise)
    dist = np.linalg.norm(noise, axis=2).T
    np.testing.assert_allclose(got, (3 * dist / (dist + 1e-10)).max(1), rtol=1e-13)
    got = LocalLipschitzEstimate(nr_samples=4)(table, x, y, explain=triple, noise=noise)
    xp = x + noise
    unit = lambda v: v / np.abs(v).max(axis=-1, keepdims=True)  # noqa: E731
    want = (np.linalg.norm(unit(x) - unit(xp), axis=2) / (np.linalg.norm(noise, axis=2) + 1e-10))
    np.testing.assert_allclose(got, want.max(0), rtol=1e-13)


def test_continuity_by_hand():
    """Identity relevance, no normalisation: the max over shifts of ‖x − x_t‖₁ / ‖x − x_t‖₂,
    x_t built with np.roll and the sample's min filled in."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, (2, 3, 4, 2))

    def identity(v, t):
        return np.asarray(v, dtype=np.float64)

    metric = Continuity(nr_steps=3, abs=False, normalise=False)
    assert metric.shifts(4).tolist() == [-1, 2, 5]  # dx = 9 // 3
    got = metric(lambda v: np.asarray(v).reshape(len(v), -1)[:, :2], x, [0, 0],
                 explain=identity, return_rounds=True)
    want = np.zeros((2, 3))
    for k, t in enumerate([-1, 2, 5]):
        xt = np.roll(x, t, axis=2)
        cols = np.arange(4)
        gone = (cols >= 4 + t) if t < 0 else (cols < min(t, 4))
        xt[:, :, gone] = x.min(axis=(1, 2, 3))[:, None, None, None]
        diff = (x - xt).reshape(2, -1)
        want[:, k] = np.abs(diff).sum(1) / (np.linalg.norm(diff, axis=1) + 1e-9)
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_nan_where_the_prediction_changes():
    """return_nan_when_prediction_changes: a round that changes the argmax is NaN, and so is
    that sample's max and mean; without it the round counts."""
    x, y = np.array([[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.5]]), np.array([0, 1])
    noise = np.zeros((2, 2, 4))
    noise[1, 0, :2] = [-0.6, 0.6]  # round 1 moves sample 0 to class 1
    noise[:, :, 3] = 0.1
    for cls in (MaxSensitivity, AvgSensitivity, LocalLipschitzEstimate):
        rounds = cls(nr_samples=2, return_nan_when_prediction_changes=True)(
            table, x, y, explain=squares, noise=noise, return_rounds=True)
        assert np.isnan(rounds[0, 1]) and np.isfinite(np.delete(rounds.ravel(), 1)).all()
        strict = cls(nr_samples=2, return_nan_when_prediction_changes=True)(
            table, x, y, explain=squares, noise=noise)
        assert np.isnan(strict[0]) and np.isfinite(strict[1])
        assert np.isfinite(cls(nr_samples=2)(table, x, y, explain=squares, noise=noise)).all()


# -- errors -------------------------------------------------------------------------------------
def test_token_ids_are_refused():
    ids = np.array([[3, 7, 0], [5, 2, 9]], dtype=np.int32)
    for metric in (MaxSensitivity(), AvgSensitivity(), LocalLipschitzEstimate(), Continuity()):
        with pytest.raises(ValueError, match="token ids: noise on integer ids"):
            metric(table, ids, explain=squares)


def test_errors():
    x = np.random.default_rng(0).uniform(size=(2, 4))
    with pytest.raises(ValueError, match="images"):
        Continuity()(table, x, explain=squares)
    with pytest.raises(ValueError, match="needs explain|explains perturbed inputs again"):
        MaxSensitivity()(table, x, a=x)
    with pytest.raises(ValueError, match=r"noise must have shape \(3, 2, 4\)"):
        MaxSensitivity(nr_samples=3)(table, x, explain=squares, noise=np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="values per sample"):
        MaxSensitivity(nr_samples=1)(table, x, a=np.ones((2, 3)), explain=squares)
    with pytest.raises(ValueError, match="nr_samples"):
        AvgSensitivity(nr_samples=0)
    with pytest.raises(ValueError, match="nr_steps"):
        Continuity(nr_steps=0)
    with pytest.raises(ValueError, match="upper_bound"):
        MaxSensitivity(lower_bound=0.2, upper_bound=0.1)
    with pytest.raises(ValueError, match="batch_size"):
        LocalLipschitzEstimate(batch_size=0)


def test_description():
    for cls in (MaxSensitivity, AvgSensitivity, LocalLipschitzEstimate, Continuity):
        d = cls().describe()
        assert d["category"] == "robustness" and d["higher_is_better"] is False
