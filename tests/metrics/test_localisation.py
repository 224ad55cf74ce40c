"""PointingGame, AttributionLocalisation, TopKIntersection, RelevanceRankAccuracy,
RelevanceMassAccuracy and AUC: Quantus 0.6's numbers on the digits CNN's relevance and ink
masks (tests/data/quantus/simple.npz), the formulas on hand cases, Quantus's bugs, masks of
every layout (a token case), and the errors.

NumPy on the relevance and the mask alone: the backend plays no part. Rank metrics (pointing
game, top-k, rank accuracy, AUC) equal Quantus exactly; the mass ratios differ by Quantus's
float32 sums only (64 terms: ≲ 4e-6 relative; rtol=1e-5).
"""

import os

import numpy as np
import pytest

from keras_lrp.metrics.localisation import (
    AUC,
    AttributionLocalisation,
    PointingGame,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    TopKIntersection,
)
from keras_lrp.metrics.similarity import rankdata

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "quantus")
ATTRIBUTIONS = ("epsilon", "alpha2beta1", "gradient", "input_x_gradient")
METRICS = [("pointing_game", PointingGame(), 0),
           ("attribution_localisation", AttributionLocalisation(), 1e-5),
           ("relevance_rank_accuracy", RelevanceRankAccuracy(), 0),
           ("relevance_mass_accuracy", RelevanceMassAccuracy(), 1e-5),
           ("auc", AUC(), 1e-12),
           ("top_k_intersection", TopKIntersection(k=10), 0),
           ("tki_ci", TopKIntersection(k=10, concept_influence=True), 1e-12)]


@pytest.fixture(scope="module")
def data():
    with np.load(os.path.join(DATA, "inputs.npz")) as inputs, \
            np.load(os.path.join(DATA, "simple.npz")) as quantus:
        return {k: inputs[k] for k in inputs.files}, {k: quantus[k] for k in quantus.files}


@pytest.mark.parametrize("key", ATTRIBUTIONS)
@pytest.mark.parametrize("name,metric,rtol", METRICS, ids=[m[0] for m in METRICS])
def test_equals_quantus_on_the_digits(data, name, metric, rtol, key):
    inputs, quantus = data
    ours = metric(None, inputs["x"], inputs["y"], a=inputs[f"a_{key}"], s=inputs["s"])
    assert ours.shape == (16,) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, quantus[f"{name}__{key}"], rtol=rtol, atol=0)


def test_quantus_pointing_game_keeps_booleans(data):
    """Quantus 0.6 stores the hits in a boolean array: NaN for an empty mask becomes True, and
    weighted=True raises (it assigns a column into it). Ours: NaN, and 1 − |s|/P per hit."""
    inputs, quantus = data
    x, a, s = inputs["x"], inputs["a_epsilon"], inputs["s"].copy()
    s[0] = False
    assert quantus["pg_empty"][0] == 1.0 and quantus["pg_weighted_raises"]
    ours = PointingGame()(None, x, a=a, s=s)
    assert np.isnan(ours[0]) and np.all(ours[1:] == quantus["pg_empty"][1:])
    weighted = PointingGame(weighted=True)(None, x, a=a, s=inputs["s"])
    np.testing.assert_allclose(weighted, 1 - inputs["s"].sum(axis=(1, 2)) / 64)


def test_quantus_weighted_attribution_localisation_divides_by_the_batch(data):
    """Quantus 0.6 weighs by |s| / x_batch[2:].size, i.e. by (N − 2) · 64 values for 16
    digits, not 64 features: its weighted scores are 14× too small here (and change with the
    batch size). Ours weighs by |s| / P, as Quantus's per-sample code before 0.6 did."""
    inputs, quantus = data
    ours = AttributionLocalisation(weighted=True)(None, inputs["x"], a=inputs["a_epsilon"],
                                                  s=inputs["s"])
    share = inputs["s"].sum(axis=(1, 2)) / 64
    np.testing.assert_allclose(ours, quantus["attribution_localisation__epsilon"] * share,
                               rtol=1e-5)
    np.testing.assert_allclose(ours, 14 * quantus["al_weighted"], rtol=1e-5)


R = np.array([[0.1, 0.9, 0.4, -0.2, 0.9, 0.0],
              [0.5, 0.5, 0.5, 0.1, -0.3, 0.2]])
S = np.array([[0, 1, 1, 0, 0, 0],
              [0, 0, 1, 1, 0, 0]], dtype=bool)
X = np.zeros((2, 6))


def _brute_auc(r, s):
    """Pairs (in, out): 1 when the feature in the mask ranks higher, ½ on a tie."""
    pos, neg = r[s][:, None], r[~s][None, :]
    return np.mean((pos > neg) + 0.5 * (pos == neg))


def test_formulas_on_a_hand_case():
    # pointing game: sample 0's max 0.9 is tied at features 1 (in) and 4 (out): a hit; sample
    # 1's max 0.5 at 0, 1, 2 (2 in the mask): a hit
    np.testing.assert_array_equal(PointingGame()(None, X, a=R, s=S), [1.0, 1.0])
    # normalise divides by max |r|, which cancels in the ratios
    inside = [(0.9 + 0.4) / 2.1, 0.6 / 1.5]
    np.testing.assert_allclose(RelevanceMassAccuracy()(None, X, a=R, s=S), inside)
    np.testing.assert_allclose(AttributionLocalisation(positive_attributions=True, abs=False)(
        None, X, a=R, s=S), [1.3 / 2.3, 0.6 / 1.8], rtol=1e-8)
    np.testing.assert_allclose(AttributionLocalisation()(None, X, a=R, s=S),
                               [1.3 / 2.5, 0.6 / 2.1], rtol=1e-8)
    # ranks (stable: on ties the first feature first): sample 0 → 1, 4, 2, …; sample 1 → 0, 1,
    # 2, 5, 3, 4
    np.testing.assert_allclose(RelevanceRankAccuracy()(None, X, a=R, s=S), [0.5, 0.0])
    np.testing.assert_allclose(TopKIntersection(k=3)(None, X, a=R, s=S), [2 / 3, 1 / 3])
    np.testing.assert_allclose(TopKIntersection(k=3, concept_influence=True)(
        None, X, a=R, s=S), [2 / 3 * 3, 1 / 3 * 3])
    np.testing.assert_allclose(AUC()(None, X, a=R, s=S),
                               [_brute_auc(r, s) for r, s in zip(R, S)], rtol=1e-12)


def test_auc_ties_count_one_half_on_random_ties():
    rng = np.random.default_rng(0)
    r = rng.integers(0, 4, size=(20, 30)).astype(float)  # many ties
    s = rng.random((20, 30)) < 0.3
    np.testing.assert_allclose(AUC(normalise=False)(None, np.zeros_like(r), a=r, s=s),
                               [_brute_auc(a, m) for a, m in zip(r, s)], rtol=1e-12)
    np.testing.assert_allclose(rankdata(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])


@pytest.mark.parametrize("metric", [m[1] for m in METRICS], ids=[m[0] for m in METRICS])
def test_an_empty_mask_scores_nan(metric):
    s = S.copy()
    s[1] = False
    out = metric(None, X, a=R, s=s) if not isinstance(metric, TopKIntersection) else \
        TopKIntersection(k=3, concept_influence=metric.concept_influence)(None, X, a=R, s=s)
    assert np.isnan(out[1]) and not np.isnan(out[0])


def test_auc_of_a_full_mask_is_nan():
    with np.errstate(invalid="ignore"):
        assert np.isnan(AUC()(None, X, a=R, s=np.ones_like(S))).all()


def test_masks_shaped_like_x_or_as_01():
    rng = np.random.default_rng(3)
    x, a = rng.random((3, 5, 4, 3)), rng.normal(size=(3, 5, 4, 3))
    grid = rng.random((3, 5, 4)) < 0.4
    expected = AUC()(None, x, a=a, s=grid)
    like_x = np.repeat(grid[..., None], 3, axis=-1)
    like_x[..., 1:] = False  # a pixel is in the mask when any channel is
    np.testing.assert_allclose(AUC()(None, x, a=a, s=like_x), expected)
    np.testing.assert_allclose(AUC()(None, x, a=a, s=grid[..., None].astype(int)), expected)


def test_a_token_case():
    """Token ids (N, T) with a mask per token (here: the real, non-padding tokens) and
    relevance per token."""
    x = np.load("keras_lrp/demos/models/sentiment_test.npz")["x"][:6]
    rng = np.random.default_rng(4)
    a = rng.normal(size=x.shape)
    s = x != 0
    assert s.any(axis=1).all() and not s.all()
    ours = RelevanceMassAccuracy()(None, x, a=a, s=s)
    np.testing.assert_allclose(ours, (a * s).sum(1) / a.sum(1))
    np.testing.assert_allclose(AUC()(None, x, a=a, s=s),
                               [_brute_auc(r, m) if 0 < m.sum() < m.size else np.nan
                                for r, m in zip(a, s)])
    hits = s[np.arange(6), a.argmax(axis=1)]
    np.testing.assert_array_equal(PointingGame()(None, x, a=a, s=s), hits)


def test_tabular_case():
    rng = np.random.default_rng(5)
    x, a = rng.random((4, 9)), rng.normal(size=(4, 9))
    s = np.zeros((4, 9), dtype=bool)
    s[:, :3] = True
    top3 = np.argsort(-a, axis=1)[:, :3]
    np.testing.assert_allclose(RelevanceRankAccuracy()(None, x, a=a, s=s),
                               (top3 < 3).mean(axis=1))


def test_warnings_and_nan_of_attribution_localisation():
    with pytest.warns(UserWarning, match="max_size"):
        AttributionLocalisation(max_size=0.2)(None, X, a=R, s=S)
    a = np.array([[1.0, 1.0, -1.5, 0.0]])
    with pytest.warns(UserWarning, match="more relevance inside"):
        out = AttributionLocalisation(abs=False)(None, np.zeros((1, 4)), a=a,
                                                 s=np.array([[1, 1, 0, 0]]))
    assert np.isnan(out[0])


def test_errors_say_what_to_give():
    with pytest.raises(ValueError, match="need s"):
        PointingGame()(None, X, a=R)
    with pytest.raises(ValueError, match="does not fit x"):
        AUC()(None, np.zeros((2, 4, 4, 1)), a=np.zeros((2, 4, 4)), s=np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="booleans or 0/1"):
        AUC()(None, X, a=R, s=S * 2.0)
    with pytest.raises(ValueError, match="k=1000"):
        TopKIntersection()(None, X, a=R, s=S)


def test_no_model_call_and_categories():
    from keras_lrp.metrics.base import Scores

    calls = Scores(lambda x: np.zeros((len(x), 2)))
    RelevanceRankAccuracy()(calls, X, a=R, s=S)
    assert calls.calls == 0
    for _, metric, _ in METRICS:
        assert metric.category == "localisation" and metric.higher_is_better
