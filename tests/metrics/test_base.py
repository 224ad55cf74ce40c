"""The metrics' shared base and registry: scores, stacking, layouts, targets, names."""

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp import metrics
from keras_lrp.demos.common import MODELS_DIR
from keras_lrp.metrics.base import Layout, Scores, normalise_by_max, targets_for
from keras_lrp.metrics.registry import snake


@pytest.fixture(scope="module")
def digits():
    model = keras.models.load_model(MODELS_DIR / "digits_cnn.keras")
    return model, np.load(MODELS_DIR / "digits_test.npz")["x"][:6]


def _logits(model, x):
    """The model's logits in NumPy float64: its own softmax inverted (log of the output, up to a
    per-sample constant, which the test removes)."""
    p = np.asarray(model.predict_on_batch(x), dtype=np.float64)
    return np.log(p)


def test_scores_are_the_logits_and_softmax_gives_the_models_output(digits):
    model, x = digits
    logits = Scores(model)(x)
    # softmax(logits) = the user's model's output; logits differ from log p by a constant
    np.testing.assert_allclose(Scores(model, softmax=True)(x), model.predict_on_batch(x),
                               rtol=1e-4, atol=1e-6)
    shift = logits - _logits(model, x)
    np.testing.assert_allclose(shift, shift[:, :1] * np.ones_like(shift), rtol=1e-3, atol=1e-3)


def test_one_build_per_model_and_weight_changes_are_seen(digits):
    model, x = digits
    model = keras.models.clone_model(model)
    model.set_weights(digits[0].get_weights())
    before = Scores(model)(x)
    layer = model.get_layer("logits")  # fused softmax: the logits model holds a copy of it
    kernel, bias = layer.get_weights()
    layer.set_weights([2 * kernel, 2 * bias])
    np.testing.assert_allclose(Scores(model)(x), 2 * before, rtol=1e-5, atol=1e-5)
    assert len([m for m in metrics.scores._COMPILED if m is model]) == 1


def test_stacked_equals_one_call_per_batch_and_bounds_each_call(digits):
    model, x = digits
    batches = [x * (k + 1) / 4 for k in range(5)]
    one_each = np.stack([Scores(model)(b) for b in batches])
    scores = Scores(model, max_stack=2 * len(x))
    np.testing.assert_allclose(scores.stacked(iter(batches)), one_each, rtol=1e-5, atol=1e-5)
    assert scores.calls == 3  # 2 + 2 + 1 batches
    fixed = Scores(model)
    np.testing.assert_allclose(fixed.stacked(iter(batches), per_call=2), one_each, rtol=1e-5,
                               atol=1e-5)
    assert fixed.calls == 3  # per_call batches per call, whatever max_stack allows
    with pytest.raises(ValueError, match="at least one batch"):
        scores.stacked([])


def test_scores_of_a_token_model():
    model = keras.models.load_model(MODELS_DIR / "sentiment_transformer.keras")
    x = np.load(MODELS_DIR / "sentiment_test.npz")["x"][:4]
    np.testing.assert_allclose(Scores(model, softmax=True)(x), model.predict_on_batch(x),
                               rtol=1e-4, atol=1e-6)


def test_scores_refuse_a_wrong_batch_axis_and_a_non_model():
    with pytest.raises(ValueError, match="batch axis first"):
        Scores(lambda b: np.zeros((len(b) + 1, 3)))(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="Keras model, a keras-lrp analyzer or a callable"):
        Scores(3)


def test_layout_kinds_relevance_and_errors():
    img = Layout(np.zeros((2, 4, 4, 3), "float32"))
    assert (img.kind, img.shape, img.features) == ("image", (2, 4, 4), 16)
    a = np.arange(2 * 4 * 4 * 3, dtype=float).reshape(2, 4, 4, 3)
    np.testing.assert_array_equal(img.relevance(a), a.sum(-1))
    assert Layout(np.zeros((2, 5), "float32")).kind == "tabular"
    assert Layout(np.zeros((2, 5), "int32"), token_baseline=0).kind == "tokens"
    with pytest.raises(ValueError, match="token_baseline"):
        Layout(np.zeros((2, 5), "int32"))
    with pytest.raises(ValueError, match=r"does not fit x of shape \(2, 4, 4, 3\)"):
        img.relevance(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        img.relevance(np.full((2, 4, 4), np.nan))
    with pytest.raises(ValueError, match="perturb_baseline must be one of"):
        img.baseline("grey", np.random.default_rng(0))


def test_baselines_are_per_sample():
    x = np.array([[0.0, 2.0], [1.0, 5.0]], "float32")
    layout = Layout(x)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(layout.baseline("black", rng), [[0, 0], [1, 1]])
    np.testing.assert_array_equal(layout.baseline("white", rng), [[2, 2], [5, 5]])
    np.testing.assert_array_equal(layout.baseline("mean", rng), [[1, 1], [3, 3]])
    np.testing.assert_array_equal(layout.baseline(0.5, rng), np.full((2, 2), 0.5))


def test_targets_and_normalisation():
    scores = np.array([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    np.testing.assert_array_equal(targets_for(None, scores), [1, 0])
    np.testing.assert_array_equal(targets_for(2, scores), [2, 2])
    with pytest.raises(ValueError, match=r"2 ints in \[0, 3\)"):
        targets_for([0, 3], scores)
    a = np.array([[1.0, -4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(normalise_by_max(a), [[0.25, -1.0], [0.0, 0.0]])


def test_registry_names_and_lookup():
    assert snake("PixelFlipping") == "pixel_flipping"
    assert snake("ROAD") == "road" and snake("MPRT") == "mprt"
    assert snake("TopKIntersection") == "top_k_intersection"
    assert set(metrics.METRICS) == {snake(c.__name__) for c in metrics.METRICS.values()}
    assert len(metrics.METRICS) == 28
    assert isinstance(metrics.get("ROAD"), metrics.ROAD)
    assert isinstance(metrics.get("max_sensitivity", nr_samples=3), metrics.MaxSensitivity)
    assert metrics.get("MaxSensitivity", nr_samples=3).nr_samples == 3
    built = metrics.PixelFlipping()
    assert metrics.get(built) is built
    with pytest.raises(ValueError, match="Known metrics: attribution_localisation, auc"):
        metrics.get("pixel_flip")
    with pytest.raises(ValueError, match="one or the other"):
        metrics.get(built, features_in_step=2)
    with pytest.raises(ValueError, match="Two metrics are named"):
        metrics.register(type("ROAD", (metrics.Metric,), {}))


def test_metric_without_relevance_or_explainer_says_what_it_needs(digits):
    model, x = digits
    with pytest.raises(ValueError, match="needs the relevance a, or explain"):
        metrics.Sparseness()(model, x)
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    values = metrics.Sparseness()(model, x, explain=analyzer)
    direct = metrics.Sparseness()(model, x, a=analyzer.clone(neuron_selection_mode="index")
                                  .analyze(x, neuron_selection=Scores(model)(x).argmax(1)))
    np.testing.assert_allclose(values, direct, rtol=1e-6)


def _batches(x, y, size, with_labels=True):
    for i in range(0, len(x), size):
        yield (x[i:i + size], y[i:i + size]) if with_labels else x[i:i + size]


@pytest.mark.parametrize("metric", [metrics.PixelFlipping(features_in_step=16),
                                    metrics.Sparseness(),
                                    metrics.RelevanceMassAccuracy()])
def test_a_stream_of_batches_equals_one_call(digits, metric):
    """A generator of (x, y) batches, with a and s for the whole data sliced to each batch."""
    model, x = digits
    y = Scores(model)(x).argmax(1)
    a = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
    s = x[..., 0] > 0.5
    whole = metric(model, x, y, a=a, s=s)
    np.testing.assert_allclose(metric(model, _batches(x, y, 4), a=a, s=s), whole, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(metric(model, _batches(x, y, 4, False), y, a=a, s=s), whole,
                               rtol=1e-5, atol=1e-6)


def test_a_stream_explains_each_batch(digits):
    model, x = digits
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    metric = metrics.MaxSensitivity(nr_samples=3, seed=0)
    y = Scores(model)(x).argmax(1)
    streamed = metric(model, _batches(x, y, 3), explain=analyzer)
    assert streamed.shape == (len(x),)
    np.testing.assert_allclose(streamed[:3], metric(model, x[:3], y[:3], explain=analyzer),
                               rtol=1e-5)


def test_a_stream_with_too_few_relevances_is_refused(digits):
    model, x = digits
    y = Scores(model)(x).argmax(1)
    with pytest.raises(ValueError, match="fewer samples than the data: the batch at sample 4"):
        metrics.Sparseness()(model, _batches(x, y, 4), a=np.zeros((5, 8, 8, 1)))
    with pytest.raises(ValueError, match="no batches"):
        metrics.Sparseness()(model, iter([]))
