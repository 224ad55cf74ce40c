"""keras_lrp.metrics.comparison and .statistics: the comparison's numbers, each checked
against a computation written here (bootstrap intervals, moved shares on maps worked by hand,
metric values, best per metric), the IB pairs, the metric names and the errors."""

import numpy as np
import pytest
from report_metrics import FlipCurve, Gini, gini_by_pairs, register

import keras_lrp
from keras_lrp.analyzers.evaluate import pixel_flipping
from keras_lrp.core.statistics import bootstrap_ci, feature_map, moved_share
from keras_lrp.metrics import registry
from keras_lrp.metrics.base import Metric
from keras_lrp.metrics.comparison import (
    Comparison,
    MetricResult,
    compare_methods,
    find_ib_pairs,
)
from keras_lrp.metrics.registry import UnknownMetric, available, get

METHODS = ["lrp.epsilon", "lrp.epsilon_IB", ("a2b1", "lrp.alpha_2_beta_1", {}), "gradient"]


@pytest.fixture(scope="module")
def compared(digits):
    model, _, x, y = digits
    x, y = x[:40], y[:40]
    comparison = compare_methods(model, x, METHODS, metrics=[Gini(), FlipCurve(steps=4)],
                                 labels=y, bootstrap=200, seed=3)
    return comparison, model, x, y


# ------------------------------------------------------------------------------- statistics
def test_bootstrap_ci_is_the_percentile_bootstrap_of_the_mean():
    v = np.random.default_rng(7).standard_normal(37) ** 2
    mean, low, high = bootstrap_ci(v, bootstrap=500, seed=11, confidence=0.9)
    rng = np.random.default_rng(11)  # the computation, written out
    means = np.array([v[rng.integers(0, 37, 37)].mean() for _ in range(500)])
    assert mean == pytest.approx(v.mean())
    expected = np.sort(means)
    # the 5th and 95th percentiles by linear interpolation between order statistics
    q = lambda p: np.interp(p * 499, np.arange(500), expected)
    assert (low, high) == pytest.approx((q(0.05), q(0.95)), rel=1e-12)
    assert low < mean < high


def test_bootstrap_ci_leaves_nan_out_and_degenerate_cases():
    v = np.array([1.0, np.nan, 3.0, 5.0])
    assert bootstrap_ci(v, 100, seed=0) == bootstrap_ci(v[[0, 2, 3]], 100, seed=0)
    assert bootstrap_ci([2.0, 2.0, 2.0], 50) == (2.0, 2.0, 2.0)
    mean, low, high = bootstrap_ci([1.0, 2.0], bootstrap=0)
    assert mean == 1.5 and np.isnan(low) and np.isnan(high)
    assert all(np.isnan(bootstrap_ci([np.nan, np.nan])))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.0)


def test_moved_share_on_maps_worked_by_hand():
    a = np.array([[1.0, 0.0, 0.0, 0.0],     # all mass on feature 0 ...
                  [1.0, 1.0, 0.0, 0.0],     # two halves
                  [2.0, -2.0, 0.0, 0.0],
                  [3.0, 1.0, 0.0, 0.0],
                  [1.0, 0.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0]])
    b = np.array([[5.0, 0.0, 0.0, 0.0],     # ... the same map, scaled: nothing moved
                  [1.0, 0.0, 0.0, 1.0],     # one half stays, one moves to feature 3
                  [2.0, 2.0, 0.0, 0.0],     # the negative half flips sign
                  [1.0, 1.0, 1.0, 1.0],     # 3/4, 1/4 against four quarters
                  [0.0, 0.0, 0.0, 7.0],     # disjoint
                  [1.0, 0.0, 0.0, 0.0]])    # an all-zero map: undefined
    # ½ Σ |p − q|: 0; ½(0 + ½ + 0 + ½) = ½; ½(0 + 1) = ½; ½(½ + 0 + ¼ + ¼) = ½; ½(1 + 1) = 1
    expected = [0.0, 0.5, 0.5, 0.5, 1.0, np.nan]
    np.testing.assert_allclose(moved_share(a, b), expected)
    np.testing.assert_allclose(moved_share(b, a), expected)  # symmetric
    with pytest.raises(ValueError, match="same shape"):
        moved_share(a, b[:, :3])


def test_feature_map_sums_channels_and_embeddings():
    r = np.arange(24.0).reshape(2, 2, 3, 2)
    np.testing.assert_array_equal(feature_map(r, np.zeros((2, 2, 3, 2))), r.sum(-1))
    ids = np.zeros((2, 3), np.int32)
    np.testing.assert_array_equal(feature_map(r.reshape(2, 3, 4), ids), r.reshape(2, 3, 4).sum(-1))
    np.testing.assert_array_equal(feature_map(r.reshape(2, 12), np.zeros((2, 12))),
                                  r.reshape(2, 12))


# ------------------------------------------------------------------------------- the data step
def test_relevances_predictions_and_labels(compared):
    comparison, model, x, y = compared
    assert comparison.methods == ["lrp.epsilon", "lrp.epsilon_IB", "a2b1", "gradient"]
    for label, name, kwargs in [("lrp.epsilon", "lrp.epsilon", {}), ("a2b1",
                                                                     "lrp.alpha_2_beta_1", {})]:
        expected = keras_lrp.create_analyzer(name, model, **kwargs).analyze(x)
        np.testing.assert_allclose(comparison.relevances[label], expected, rtol=1e-5, atol=1e-6)
    logits = np.asarray(keras_lrp.create_analyzer("lrp.z", model).forward_model(x))
    np.testing.assert_array_equal(comparison.predictions, logits.argmax(1))
    np.testing.assert_array_equal(comparison.targets, comparison.predictions)
    np.testing.assert_array_equal(comparison.labels, y)
    assert comparison.model_name == model.name
    assert isinstance(comparison, keras_lrp.Comparison)


def test_metric_values_means_and_intervals(compared):
    comparison, model, x, _ = compared
    gini, flip = comparison.metrics["gini"], comparison.metrics["flip_curve"]
    forward = keras_lrp.create_analyzer("lrp.z", model).forward_model
    for m in comparison.methods:
        r = comparison.relevances[m]
        np.testing.assert_allclose(gini.values[m], gini_by_pairs(r), rtol=1e-10)
        curve = pixel_flipping(forward, x, r, target=comparison.predictions, steps=4)
        np.testing.assert_allclose(flip.values[m], curve.aopc(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(flip.curves[m], curve.scores.mean(0), rtol=1e-5, atol=1e-5)
        for result in (gini, flip):
            mean, low, high = bootstrap_ci(result.values[m], 200, seed=3)
            assert result.mean[m] == pytest.approx(mean)
            assert result.ci[m] == pytest.approx((low, high))
    assert gini.curves == {} and gini.higher_is_better
    assert gini.best() == [max(gini.mean, key=gini.mean.get)]


def test_best_respects_the_direction_and_ties():
    r = MetricResult("m", True, {}, {}, {"a": 1.0, "b": 3.0, "c": 3.0, "d": np.nan}, {})
    assert r.best() == ["b", "c"]
    r.higher_is_better = False
    assert r.best() == ["a"]
    assert MetricResult("m", True, {}, {}, {"a": np.nan}, {}).best() == []


def test_ib_pairs_found_by_name_and_their_moved_share(compared):
    comparison = compared[0]
    pair, = comparison.pairs
    assert (pair.method, pair.ib) == ("lrp.epsilon", "lrp.epsilon_IB")
    a = comparison.relevances["lrp.epsilon"].astype(np.float64).sum(-1)
    b = comparison.relevances["lrp.epsilon_IB"].astype(np.float64).sum(-1)
    np.testing.assert_allclose(pair.difference, a - b)
    p = a.reshape(len(a), -1) / np.abs(a).reshape(len(a), -1).sum(1, keepdims=True)
    q = b.reshape(len(b), -1) / np.abs(b).reshape(len(b), -1).sum(1, keepdims=True)
    np.testing.assert_allclose(pair.moved, 0.5 * np.abs(p - q).sum(1))
    assert (pair.mean, *pair.ci) == pytest.approx(bootstrap_ci(pair.moved, 200, seed=3))
    assert "lrp.epsilon vs lrp.epsilon_IB: moved share" in str(comparison)


def test_find_ib_pairs_rules():
    class A:
        def __init__(self, name, **kwargs):
            self.config = {"name": name, "kwargs": kwargs}

        def get_config(self):
            return self.config

    found = find_ib_pairs({"eps": A("lrp.epsilon", epsilon=0.1),
                           "eps_IB": A("lrp.epsilon_IB", epsilon=0.1),   # by label
                           "z": A("lrp.z"), "zib": A("lrp.z_IB"),        # by analyzer name
                           "w": A("lrp.alpha_1_beta_0_IB", input_layer_rule="WSquare"),
                           "g": A("lrp.gamma", gamma=0.25),
                           "g-nobias": A("lrp.gamma", gamma=0.25, bias=False),  # bias=False
                           "e2": A("lrp.epsilon", epsilon=0.2)})         # other kwargs: none
    assert found == [("eps", "eps_IB"), ("z", "zib"), ("g", "g-nobias")]


def test_given_ib_pairs_and_given_relevances(digits):
    model, _, x, _ = digits
    x = x[:6]
    ra, rb = np.ones(x.shape), np.zeros(x.shape)
    rb[:, 0] = 1.0  # the first row of pixels
    comparison = compare_methods(model, x, [("one", "lrp.z", {}), ("two", "lrp.z", {})],
                                 relevances={"one": ra, "two": rb}, ib_pairs=[("one", "two")],
                                 bootstrap=0)
    np.testing.assert_array_equal(comparison.relevances["one"], ra)
    pair, = comparison.pairs
    # one map spreads over 64 pixels, the other sits on 8: moved = ½(56/64 + 8·|1/64 − 1/8|)
    np.testing.assert_allclose(pair.moved, 0.5 * (56 / 64 + 8 * (1 / 8 - 1 / 64)))
    assert np.isnan(pair.ci[0])


def test_y_explains_the_given_output(digits):
    model, _, x, _ = digits
    x = x[:5]
    comparison = compare_methods(model, x, ["lrp.epsilon"], y=3, bootstrap=0)
    expected = keras_lrp.create_analyzer("lrp.epsilon", model, neuron_selection_mode="index")
    np.testing.assert_allclose(comparison.relevances["lrp.epsilon"],
                               expected.analyze(x, neuron_selection=3), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(comparison.targets, [3] * 5)


# ------------------------------------------------------------------------------- metric names
def test_metric_names_go_through_the_registry(monkeypatch):
    register(monkeypatch, Gini=Gini, PixelFlipping=FlipCurve)
    assert isinstance(get("Gini"), Gini)
    assert isinstance(get("pixel_flipping"), FlipCurve)  # case, _ and - ignored
    assert get(("PixelFlipping", {"steps": 7})).steps == 7
    assert get((FlipCurve, {"steps": 2})).steps == 2
    instance = Gini()
    assert get(instance) is instance
    with pytest.raises(ValueError, match=r"Unknown metric 'Sparse'. Known metrics: Gini, "
                                         r"PixelFlipping"):
        get("Sparse")
    with pytest.raises(ValueError, match="built metric"):
        get((instance, {"steps": 2}))
    with pytest.raises(ValueError, match="Metric instance or class"):
        get(42)


def test_the_package_registry_resolves_every_spelling():
    import keras_lrp.metrics as metrics

    flipping = get(("PixelFlipping", {"features_in_step": 4}))
    assert type(flipping) is metrics.PixelFlipping and flipping.features_in_step == 4
    for name in ("pixel_flipping", "pixel-flipping", "Pixel Flipping"):
        assert type(get(name)) is metrics.PixelFlipping
    assert "sparseness" in registry.METRICS
    with pytest.raises(UnknownMetric, match="Known metrics: .*pixel_flipping"):
        get("PixelFlopping")


def test_available_leaves_unknown_names_out(monkeypatch):
    register(monkeypatch, Gini=Gini)
    found = available(["PixelFlipping", "gini", ("Sparseness", {"x": 1})])
    assert [type(m) for m in found] == [Gini]
    with pytest.raises(UnknownMetric):
        get("PixelFlipping")
    with pytest.raises(TypeError):  # a known name with a wrong argument is still an error
        available([("Gini", {"nonsense": 1})])


# ------------------------------------------------------------------------------- errors
def test_errors_name_what_does_not_fit(digits, monkeypatch):
    model, _, x, y = digits
    x = x[:4]
    register(monkeypatch, Gini=Gini)
    with pytest.raises(ValueError, match="Unknown metric 'Nope'. Known metrics: Gini"):
        compare_methods(model, x, ["lrp.z"], metrics=["Nope"])
    with pytest.raises(ValueError, match="labels has 5 entries for 4 samples"):
        compare_methods(model, x, ["lrp.z"], labels=y[:5])
    with pytest.raises(ValueError, match=r"relevance of 'lrp.z' has shape \(4, 8, 8\)"):
        compare_methods(model, x, ["lrp.z"], relevances={"lrp.z": np.zeros((4, 8, 8))})
    with pytest.raises(ValueError, match="token_names is for token id inputs"):
        compare_methods(model, x, ["lrp.z"], token_names=["a"])
    with pytest.raises(ValueError, match="given twice"):
        compare_methods(model, x, ["lrp.z", "lrp.z"])
    with pytest.raises(ValueError, match="Unknown analyzer 'lrp.nope'"):
        compare_methods(model, x, ["lrp.nope"])
    with pytest.raises(ValueError, match="IB pair"):
        compare_methods(model, x, ["lrp.z"], ib_pairs=[("lrp.z", "other")])

    class Bad(Metric):
        def evaluate(self, scores, x, targets, a, **kwargs):
            return np.zeros((len(x), 2, 2))

    with pytest.raises(ValueError, match=r"metric 'bad' returned shape \(4, 2, 2\)"):
        compare_methods(model, x, ["lrp.z"], metrics=[Bad()])


def test_token_ids_need_enough_token_names():
    x = np.array([[1, 2, 5]], np.int32)
    from keras_lrp.metrics.comparison import _check_tokens

    assert _check_tokens(["a"] * 6, x) == ["a"] * 6
    with pytest.raises(ValueError, match="token id 5, but token_names has only 3"):
        _check_tokens(["a", "b", "c"], x)


def test_comparison_table_without_metrics():
    c = Comparison(["a"], {"a": np.zeros((1, 2))}, np.zeros((1, 2)), None, np.zeros(1, int),
                   np.zeros(1, int), {}, [])
    assert c.table() == "1 methods, no metrics."
