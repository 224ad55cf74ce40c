"""MPRT and RandomLogit (keras_lrp.metrics.randomisation) against Quantus 0.6 and by hand.

The Quantus numbers come from tools/quantus_reference/randomisation.py (the PyTorch twin of the
digits CNN, Quantus' own MPRT and RandomLogit, ``twin.explain_gradient``), saved in
tests/data/quantus/randomisation.npz with what Quantus drew: the weights PyTorch's
``reset_parameters()`` gave each layer (replayed here through ``randomise=``) and the other
classes RandomLogit explained (replayed through ``y_off=``). With the same draws both are
deterministic, so the values must agree to the arithmetic's precision.
"""

import os

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.metrics.base import Scores
from keras_lrp.metrics.randomisation import (
    MPRT,
    RandomLogit,
    randomisable_layers,
    rankdata,
    reinitialise,
    spearman,
    ssim,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "quantus")


@pytest.fixture(scope="module")
def digits():
    inputs = dict(np.load(os.path.join(DATA, "inputs.npz")))
    quantus = dict(np.load(os.path.join(DATA, "randomisation.npz")))
    model = keras.models.load_model(os.path.join(ROOT, "keras_lrp", "demos", "models",
                                                 "digits_cnn.keras"))
    gradient = keras_lrp.create_analyzer("gradient", model, neuron_selection_mode="index")
    return inputs, quantus, model, gradient


def replay(quantus):
    """``randomise=``: the weights Quantus' reset_parameters() gave each layer."""
    return lambda layer, rng: [quantus[f"rw_{layer.name}_0"], quantus[f"rw_{layer.name}_1"]]


# -- the similarity functions, by hand ---------------------------------------------------------
def ranks_by_hand(v):
    """Average ranks by counting: #smaller + (#equal + 1) / 2."""
    return np.array([np.sum(v < t) + (np.sum(v == t) + 1) / 2.0 for t in v])


def spearman_by_hand(a, b):
    ra, rb = ranks_by_hand(a), ranks_by_hand(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


def test_rankdata_averages_ties():
    np.testing.assert_array_equal(rankdata([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0]),
                                  [4, 1.5, 5, 1.5, 6.5, 9, 3, 8, 6.5])
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (5, 12)).astype(float)  # many ties
    np.testing.assert_array_equal(rankdata(a), [ranks_by_hand(row) for row in a])


def test_spearman_by_hand():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, (4, 20)).astype(float), rng.normal(size=(4, 20))
    np.testing.assert_allclose(spearman(a, b), [spearman_by_hand(p, q) for p, q in zip(a, b)],
                               rtol=1e-13)
    np.testing.assert_allclose(spearman(b, np.exp(b)), 1.0)  # monotone: the same ranks
    np.testing.assert_allclose(spearman(b, -b), -1.0)
    assert np.isnan(spearman(np.ones((1, 5)), b[:1, :5]))[0]  # constant (as scipy: NaN)


def ssim_by_hand(a, b, w=7):
    """skimage's structural_similarity on 1-D maps, one window at a time."""
    r = max(a.max(), b.max()) - min(a.min(), b.min())
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    values = []
    for i in range(len(a) - w + 1):
        p, q = a[i:i + w], b[i:i + w]
        vp, vq = p.var(ddof=1), q.var(ddof=1)
        cov = ((p - p.mean()) * (q - q.mean())).sum() / (w - 1)
        values.append((2 * p.mean() * q.mean() + c1) * (2 * cov + c2)
                      / ((p.mean() ** 2 + q.mean() ** 2 + c1) * (vp + vq + c2)))
    return float(np.mean(values))


def test_ssim_by_hand():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 30)), rng.normal(size=(3, 30))
    np.testing.assert_allclose(ssim(a, b), [ssim_by_hand(p, q) for p, q in zip(a, b)],
                               rtol=1e-12)
    np.testing.assert_allclose(ssim(a[:, :5], b[:, :5], win_size=5),
                               [ssim_by_hand(p, q, 5) for p, q in zip(a[:, :5], b[:, :5])],
                               rtol=1e-12)
    np.testing.assert_allclose(ssim(a, a), 1.0)
    with pytest.raises(ValueError, match="window of 7 does not fit maps of 4"):
        ssim(a[:, :4], b[:, :4])
    with pytest.raises(ValueError, match="odd"):
        ssim(a, b, win_size=4)


# -- MPRT against Quantus ----------------------------------------------------------------------
@pytest.mark.parametrize("order", ["top_down", "independent"])
def test_mprt_equals_quantus(digits, order):
    # Quantus' similarities (float64 Spearman on the float32 explanations) come out equal:
    # both sides rank the same float32 maps (the twin's gradient equals keras-lrp's to
    # rounding, and no near-tie swaps), so 1e-12; JAX and PyTorch explain in float32 too
    inputs, quantus, model, gradient = digits
    metric = MPRT(layer_order=order, randomise=replay(quantus))
    values = metric(model, inputs["x"], inputs["y"], a=inputs["a_gradient"], explain=gradient)
    assert metric.layer_names == quantus[f"mprt_{order}_keras_layers"].tolist()
    assert values.shape == (16, 5)
    np.testing.assert_allclose(values, quantus[f"mprt_{order}"].T, atol=1e-12)
    np.testing.assert_allclose(metric.original_similarity, quantus[f"mprt_{order}_original"],
                               atol=1e-12)
    np.testing.assert_allclose(metric.per_sample(values), quantus[f"mprt_{order}"].mean(0),
                               atol=1e-12)


def test_mprt_quantus_average_counts_the_original_model(digits):
    # Quantus' return_average_correlation skips a key "orig" but the key is "original": its
    # average takes the original model's similarity (1 here) in with the 5 layers'
    _, quantus, _, _ = digits
    layers = quantus["mprt_top_down"]
    with_original = np.vstack([quantus["mprt_top_down_original"], layers]).mean(0)
    np.testing.assert_allclose(quantus["mprt_average"], with_original, atol=1e-12)
    assert np.all(quantus["mprt_average"] > layers.mean(0) + 0.1)  # what per_sample gives


def test_mprt_leaves_the_users_model_alone_and_draws_by_seed(digits):
    inputs, _, model, gradient = digits
    before = [w.tobytes() for w in model.get_weights()]
    x, y, a = inputs["x"][:4], inputs["y"][:4], inputs["a_gradient"][:4]
    drawn = {}

    def recording(layer, rng):
        return drawn.setdefault(layer.name, reinitialise(layer, rng))

    top = MPRT(randomise=recording)(model, x, y, a=a, explain=gradient)
    assert [w.tobytes() for w in model.get_weights()] == before
    # layer i draws from default_rng((seed, i)) in every order: the same weights again
    layers = randomisable_layers(model)
    assert [layer.name for layer in layers] == ["conv1", "conv2", "conv3", "dense", "logits"]
    for i, layer in enumerate(layers):
        again = reinitialise(layer, np.random.default_rng((42, i)))
        for p, q in zip(again, drawn[layer.name]):
            np.testing.assert_array_equal(p, q)
    # independent, skip_layers: the logits alone randomised, as top_down's first step
    alone = MPRT(layer_order="independent", skip_layers=True)(model, x, y, a=a, explain=gradient)
    np.testing.assert_array_equal(alone[:, 0], top[:, 0])
    # the draws are the layers' Keras initializers: Glorot uniform kernels, zero biases
    kernel, bias = drawn["dense"]
    limit = np.sqrt(6.0 / (256 + 32))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit
    assert abs(kernel.std() - limit / np.sqrt(3)) < 0.05 * limit and not bias.any()
    other = reinitialise(model.get_layer("dense"), np.random.default_rng((7, 3)))
    assert not np.allclose(other[0], kernel)


def prepared(r):
    r = np.abs(np.asarray(r, dtype=np.float64)).reshape(len(r), -1)
    return r / r.max(axis=1, keepdims=True)


def test_mprt_with_lrp_epsilon(digits):
    # MPRT rebuilds lrp.epsilon on each randomised clone; its first (logits) and last (all
    # randomised) values equal Spearman by hand of two analyze() calls of our own: one on the
    # model, one on a fresh clone given the weights MPRT drew
    inputs, _, model, _ = digits
    x, y = inputs["x"][:6], inputs["y"][:6]
    lrp = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=0.1)
    drawn = {}

    def recording(layer, rng):
        return drawn.setdefault(layer.name, reinitialise(layer, rng))

    metric = MPRT(randomise=recording)
    values = metric(model, x, y, explain=lrp)
    np.testing.assert_allclose(metric.original_similarity, 1.0, atol=1e-12)
    original = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=0.1,
                                         neuron_selection_mode="index").analyze(
        x, neuron_selection=y)
    for column, randomised in ((0, ["logits"]), (-1, list(drawn))):
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        for name in randomised:
            clone.get_layer(name).set_weights(drawn[name])
        other = keras_lrp.create_analyzer("lrp.epsilon", clone, epsilon=0.1,
                                          neuron_selection_mode="index").analyze(
            x, neuron_selection=y)
        by_hand = [spearman_by_hand(p, q) for p, q in zip(prepared(original), prepared(other))]
        np.testing.assert_allclose(values[:, column], by_hand, atol=1e-12)
    # it changes, though little: LRP-ε here is close to input × gradient, whose map keeps the
    # digit's ink after any randomisation (Adebayo et al. see the same); Spearman ≈ 0.9
    assert np.all(values < 0.999) and np.all(values > 0.8)


def test_mprt_explains_the_batch_once_per_layer(digits):
    inputs, quantus, model, _ = digits
    calls = []

    def explain(m, x, targets):
        calls.append((m, len(x)))
        return np.asarray(keras_lrp.create_analyzer(
            "gradient", m, neuron_selection_mode="index").analyze(x, neuron_selection=targets))

    x, y = inputs["x"], inputs["y"]
    metric = MPRT(randomise=replay(quantus))
    values = metric(model, x, y, explain=explain)  # a: explained first, on the model
    assert [n for _, n in calls] == [16] * 7  # a, the original model, the 5 layers
    assert calls[0][0] is model and calls[1][0] is model
    assert all(m is not model for m, _ in calls[2:])
    np.testing.assert_allclose(values, quantus["mprt_top_down"].T, atol=1e-12)
    # skip_layers: one explanation, the fully randomised model's
    calls.clear()
    last = MPRT(randomise=replay(quantus), skip_layers=True)(
        model, x, y, a=inputs["a_gradient"], explain=explain)
    assert len(calls) == 2 and last.shape == (16, 1)
    np.testing.assert_allclose(last[:, 0], values[:, -1], atol=1e-12)


def test_mprt_tabular_and_tokens():
    dense = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(3).normal(size=(6, 5)).astype("float32")
    grad = keras_lrp.create_analyzer("gradient", dense)
    metric = MPRT(return_last_correlation=True)
    values = metric(dense, x, explain=grad)
    assert values.shape == (6, 2) and metric.layer_names == [dense.layers[1].name,
                                                             dense.layers[0].name]
    np.testing.assert_array_equal(metric.per_sample(values), values[:, -1])
    assert np.all(np.abs(values[np.isfinite(values)]) <= 1)

    tokens = keras.Input((7,), dtype="int32")
    h = keras.layers.Embedding(20, 4, name="embed")(tokens)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(tokens, keras.layers.Dense(2, name="head")(h))
    ids = np.random.default_rng(4).integers(1, 20, (5, 7)).astype("int32")
    lrp = keras_lrp.create_analyzer("lrp.epsilon", model)
    metric = MPRT()
    values = metric(model, ids, np.zeros(5, "int64"), explain=lrp)
    assert values.shape == (5, 2) and metric.layer_names == ["head", "embed"]


def test_mprt_errors(digits):
    inputs, _, model, gradient = digits
    x, y, a = inputs["x"][:2], inputs["y"][:2], inputs["a_gradient"][:2]
    with pytest.raises(ValueError, match="layer_order must be one of"):
        MPRT(layer_order="random")
    with pytest.raises(ValueError, match="exclude each other"):
        MPRT(return_average_correlation=True, return_last_correlation=True)
    with pytest.raises(ValueError, match="skip_layers"):
        MPRT(return_average_correlation=True, skip_layers=True)
    with pytest.raises(ValueError, match="give explain"):
        MPRT()(model, x, y, a=a)
    with pytest.raises(TypeError, match="give a Keras model"):
        MPRT()(lambda v: np.zeros((len(v), 10)), x, y, a=a, explain=gradient)
    with pytest.raises(ValueError, match="randomise returned weights of shapes"):
        MPRT(randomise=lambda layer, rng: [np.zeros(3)])(model, x, y, a=a, explain=gradient)
    weightless = keras.Sequential([keras.Input((3,)), keras.layers.ReLU()])
    with pytest.raises(ValueError, match="no layer with weights"):
        MPRT()(weightless, np.ones((2, 3), "float32"), 0, a=np.ones((2, 3)),
               explain=lambda m, v, t: np.ones(v.shape))


# -- RandomLogit -------------------------------------------------------------------------------
def test_random_logit_equals_quantus(digits):
    # Quantus' ssim runs skimage in float32 (the maps' dtype): 1e-6 covers float32 rounding
    # of window means and variances of O(1) values
    inputs, quantus, model, gradient = digits
    metric = RandomLogit(num_classes=10)
    values = metric(model, inputs["x"], inputs["y"], a=inputs["a_gradient"], explain=gradient,
                    y_off=quantus["rl_y_off_single"])
    np.testing.assert_allclose(values, quantus["rl_single"], atol=1e-6)


def test_random_logit_quantus_normalises_over_the_batch(digits):
    # with its default batch_size=64, Quantus divides all 16 maps by one max (over the batch),
    # so a sample's value depends on the others; per-sample maxima (ours) give other values
    inputs, quantus, model, gradient = digits
    x, y, y_off = inputs["x"], inputs["y"], quantus["rl_y_off_batch"]
    a = inputs["a_gradient"].reshape(16, -1).astype(np.float64)
    b = gradient.analyze(x, neuron_selection=y_off).reshape(16, -1).astype(np.float64)
    np.testing.assert_allclose(ssim(a / np.abs(a).max(), b / np.abs(b).max()),
                               quantus["rl_batch"], atol=1e-6)
    ours = RandomLogit()(model, x, y, a=inputs["a_gradient"], explain=gradient, y_off=y_off)
    np.testing.assert_allclose(ours, ssim(prepared_signed(a), prepared_signed(b)), atol=1e-6)
    assert np.abs(ours - quantus["rl_batch"]).max() > 0.05


def prepared_signed(r):
    return r / np.abs(r).max(axis=1, keepdims=True)


def test_random_logit_draws_and_batching(digits):
    inputs, _, model, gradient = digits
    x, y = inputs["x"], inputs["y"]
    scores = Scores(model)
    calls = []

    def explain(v, targets):
        calls.append(len(v))
        return gradient.analyze(v, neuron_selection=targets)

    metric = RandomLogit(seed=5)
    values = metric(scores, x, y, explain=explain)
    assert scores.calls == 1 and calls == [16, 16]  # a, then the other classes: one call each
    assert values.shape == (16,) and np.all(metric.y_off != y)
    first = metric.y_off
    metric(scores, x, y, explain=explain)
    np.testing.assert_array_equal(metric.y_off, first)  # seeded


def test_random_logit_draws_uniformly_among_the_other_classes():
    n = 9000
    maps = np.random.default_rng(8).normal(size=(n, 8))
    metric = RandomLogit(seed=0)
    values = metric.evaluate(None, np.zeros((n, 8)), np.full(n, 3), maps,
                             explainer=lambda v, t: maps, first=np.zeros((1, 10)))
    np.testing.assert_allclose(values, 1.0)  # equal maps: SSIM 1
    counts = np.bincount(metric.y_off, minlength=10)
    # each of the 9 other classes 1000 times in expectation, binomial sd sqrt(9000·1/9·8/9)
    assert counts[3] == 0 and np.all(np.abs(np.delete(counts, 3) - 1000) < 4 * 30)


def test_random_logit_tabular_tokens_and_errors(digits):
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.default_rng(6).normal(size=(5, 4)).astype("float32")
    grad = keras_lrp.create_analyzer("gradient", dense)
    with pytest.raises(ValueError, match="window of 7 does not fit maps of 4"):
        RandomLogit()(dense, x, explain=grad)
    metric = RandomLogit(similarity_func=lambda p, q: ssim(p, q, win_size=3))
    values = metric(dense, x, explain=grad)
    index = keras_lrp.create_analyzer("gradient", dense, neuron_selection_mode="index")
    a = index.analyze(x, neuron_selection=dense.predict(x, verbose=0).argmax(1))
    b = index.analyze(x, neuron_selection=metric.y_off)
    np.testing.assert_allclose(values, ssim(prepared_signed(a), prepared_signed(b), 3),
                               atol=1e-6)

    tokens = keras.Input((9,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 4)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(3)(h))
    ids = np.random.default_rng(7).integers(1, 20, (4, 9)).astype("int32")
    values = RandomLogit()(model, ids, 0, explain=keras_lrp.create_analyzer("lrp.epsilon", model))
    assert values.shape == (4,)

    inputs, _, model, gradient = digits
    x, y, a = inputs["x"][:2], inputs["y"][:2], inputs["a_gradient"][:2]
    with pytest.raises(ValueError, match="other than the sample's label"):
        RandomLogit()(model, x, y, a=a, explain=gradient, y_off=y)
    with pytest.raises(ValueError, match="more than the largest label"):
        RandomLogit(num_classes=3)(model, x, y, a=a, explain=gradient)
    with pytest.raises(ValueError, match="explains perturbed inputs again"):
        RandomLogit()(model, x, y, a=a)
    with pytest.raises(ValueError, match="similarity_func returned shape"):
        RandomLogit(similarity_func=lambda p, q: 0.5)(model, x, y, a=a, explain=gradient)
