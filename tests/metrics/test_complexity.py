"""Sparseness, Complexity and EffectiveComplexity: Quantus 0.6's numbers on the digits CNN's
relevance (tests/data/quantus/simple.npz, from tools/quantus_reference/simple.py), the formulas
on small hand cases, every layout, and no model call.

These metrics are NumPy on the relevance alone, so the backend plays no part. Quantus computes
in float32 (its relevance arrays are float32: a sum of 64 terms is good to ~64 · 2⁻²⁴ ≈ 4e-6
relative), keras-lrp in float64: hence rtol=1e-5 where a sum enters, exact where only counts do.
"""

import os

import numpy as np
import pytest

from keras_lrp.metrics.base import Scores
from keras_lrp.metrics.complexity import Complexity, EffectiveComplexity, Sparseness

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "quantus")
ATTRIBUTIONS = ("epsilon", "alpha2beta1", "gradient", "input_x_gradient")
FLOAT32_SUMS = 1e-5


@pytest.fixture(scope="module")
def data():
    with np.load(os.path.join(DATA, "inputs.npz")) as inputs, \
            np.load(os.path.join(DATA, "simple.npz")) as quantus:
        return {k: inputs[k] for k in inputs.files}, {k: quantus[k] for k in quantus.files}


@pytest.mark.parametrize("key", ATTRIBUTIONS)
@pytest.mark.parametrize("name,metric,rtol", [("sparseness", Sparseness(), FLOAT32_SUMS),
                                              ("complexity", Complexity(), FLOAT32_SUMS),
                                              ("effective_complexity", EffectiveComplexity(), 0)])
def test_equals_quantus_on_the_digits(data, name, metric, rtol, key):
    inputs, quantus = data
    ours = metric(None, inputs["x"], inputs["y"], a=inputs[f"a_{key}"])
    assert ours.shape == (16,)
    np.testing.assert_allclose(ours, quantus[f"{name}__{key}"], rtol=rtol, atol=0)


def test_effective_complexity_normalises_each_sample_where_quantus_normalises_the_batch(data):
    """Quantus 0.6 divides the whole batch by one max |a|: a sample of small relevance (here
    sample 1 scaled by 1e-6) next to larger ones falls under eps everywhere and counts 0; its
    score depends on its batch. Ours divides each sample by its own max, as the paper's
    per-explanation definition reads."""
    inputs, quantus = data
    a = inputs["a_epsilon"].copy()
    a[1] *= 1e-6
    ours = EffectiveComplexity()(None, inputs["x"], a=a)
    assert quantus["ec_mixed"][1] == 0
    assert ours[1] == quantus["effective_complexity__epsilon"][1] == 31
    np.testing.assert_array_equal(np.delete(ours, 1), np.delete(quantus["ec_mixed"], 1))


def _gini(r):
    """The Gini index as the mean absolute difference over twice the mean (independent of the
    sorted-sum formula Sparseness uses)."""
    r = np.asarray(r, dtype=np.float64) + 1e-7
    return np.abs(r[:, None] - r[None, :]).sum() / (2 * len(r) ** 2 * r.mean())


def test_sparseness_is_the_gini_index():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 12))
    ours = Sparseness()(None, np.zeros((5, 12)), a=a)
    expected = [_gini(np.abs(row) / np.abs(row).max()) for row in a]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    one_hot, even = np.eye(1, 10), np.ones((1, 10))
    np.testing.assert_allclose(Sparseness()(None, one_hot, a=one_hot), 0.9, rtol=1e-6)
    np.testing.assert_allclose(Sparseness()(None, even, a=even), 0.0, atol=1e-12)


def test_complexity_is_the_entropy_of_the_shares():
    a = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]])
    ours = Complexity()(None, np.zeros_like(a), a=-a)  # abs=True: the sign plays no part
    p = np.array([0.75, 0.25])
    np.testing.assert_allclose(ours, [np.log(4), -(p * np.log(p)).sum(), 0.0], atol=1e-11)
    with np.errstate(invalid="ignore"):
        assert np.isnan(Complexity()(None, np.zeros((1, 3)), a=np.zeros((1, 3))))[0]


def test_effective_complexity_counts_relevance_above_eps():
    a = np.array([[1.0, -0.5, 1e-6, 0.0], [2.0, 2e-4, -1e-4, 0.0]])
    x = np.zeros_like(a)
    np.testing.assert_array_equal(EffectiveComplexity()(None, x, a=a), [2, 3])
    np.testing.assert_array_equal(EffectiveComplexity(eps=1e-3)(None, x, a=a), [2, 1])
    np.testing.assert_array_equal(EffectiveComplexity(abs=False, normalise=False)(
        None, x, a=a), [1, 2])


def test_images_sum_channels_into_pixels():
    rng = np.random.default_rng(1)
    x, a = rng.random((3, 4, 5, 3)), rng.random((3, 4, 5, 3))
    for metric in (Sparseness(), Complexity(), EffectiveComplexity(eps=0.5)):
        np.testing.assert_allclose(metric(None, x, a=a), metric(None, x[..., 0],
                                                                  a=a.sum(axis=-1)))


def test_tabular_and_token_layouts():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 24))
    tokens = np.load("keras_lrp/demos/models/sentiment_test.npz")["x"][:4]
    for metric in (Sparseness(), Complexity(), EffectiveComplexity(eps=0.2)):
        tabular = metric(None, rng.random((4, 24)), a=a)
        np.testing.assert_allclose(metric(None, tokens, a=a), tabular)
        assert tabular.shape == (4,)


def test_no_model_call_when_the_relevance_is_given():
    calls = Scores(lambda x: np.zeros((len(x), 3)))
    x = np.ones((2, 6))
    Sparseness()(calls, x, a=np.ones((2, 6)))
    assert calls.calls == 0
    explained = Complexity()(calls, x, y=[0, 1], explain=lambda x, t: x * (1 + t[:, None]))
    assert calls.calls == 1  # the targets' one call; the explainer ran once for the batch
    np.testing.assert_allclose(explained, np.log(6))


def test_errors_say_what_to_give():
    with pytest.raises(ValueError, match="negative"):
        Complexity(abs=False)(None, np.zeros((1, 3)), a=np.array([[1.0, -1.0, 0.0]]))
    with pytest.raises(ValueError, match="does not fit x"):
        Sparseness()(None, np.zeros((2, 4, 4, 1)), a=np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="needs the inputs x"):
        Sparseness()(None, a=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        EffectiveComplexity()(None, np.zeros((1, 2)), a=np.array([[np.nan, 1.0]]))


def test_described_as_quantus_names_them():
    assert Sparseness().describe() == {"name": "sparseness", "category": "complexity",
                                       "higher_is_better": True}
    assert not Complexity().higher_is_better and not EffectiveComplexity().higher_is_better
