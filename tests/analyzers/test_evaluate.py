"""keras_lrp.analyzers.evaluate: pixel flipping on models whose perturbation curves are known
by hand."""

import numpy as np
import pytest

from keras_lrp.analyzers.evaluate import PerturbationCurve, pixel_flipping

W = np.array([0.5, 2.0, 1.0, 3.0])


def linear(x):
    """f(x) = w·x as an (N, 1) score."""
    return (np.asarray(x) @ W)[:, None]


class Counting:
    def __init__(self, fn):
        self.fn, self.calls, self.sizes = fn, 0, []

    def __call__(self, x):
        self.calls += 1
        self.sizes.append(len(x))
        return self.fn(x)


def test_linear_model_exact_curve_and_aopc():
    x = np.array([[2.0, 3.0, 4.0, 1.0],    # w*x = [1, 6, 4, 3]; f = 14
                  [4.0, 0.0, 1.0, 2.0]])   # w*x = [2, 0, 1, 6]; f = 9
    fn = Counting(linear)
    curve = pixel_flipping(fn, x, x * W, steps=4)
    # removed most relevant first: sample 0 drops 6, 4, 3, 1; sample 1 drops 6, 2, 1, 0
    np.testing.assert_allclose(curve.scores, [[14, 8, 4, 1, 0], [9, 3, 1, 0, 0]])
    np.testing.assert_allclose(curve.fractions, [0, .25, .5, .75, 1])
    np.testing.assert_array_equal(curve.targets, [0, 0])
    # AOPC = mean_k (f(x0) - f(xk)): (0 + 6 + 10 + 13 + 14) / 5 and (0 + 6 + 8 + 9 + 9) / 5
    np.testing.assert_allclose(curve.aopc(), [43 / 5, 32 / 5])
    assert curve.mean_aopc() == pytest.approx((43 + 32) / 10)
    assert fn.calls == 5 and fn.sizes == [2] * 5  # steps + 1 batched calls


def test_two_steps_take_half_the_features_each():
    x = np.array([[2.0, 3.0, 4.0, 1.0]])
    curve = pixel_flipping(linear, x, x * W, steps=2)
    np.testing.assert_allclose(curve.scores, [[14, 4, 0]])  # drops {6, 4} then {3, 1}
    np.testing.assert_allclose(curve.aopc(), [(0 + 10 + 14) / 3])


def test_random_relevance_scores_below_true_relevance():
    """On f = w·x with w, x ≥ 0 and zero-filling, true relevance w*x has the largest AOPC.

    Removing the largest contributions first maximises every prefix sum, so for each sample
    AOPC(true) ≥ AOPC(any order). Here the contributions of each sample are a permutation of
    1..20, so AOPC(true) = (1/21) Σ_k (20k − k(k−1)/2) = 2870/21 ≈ 136.7, while a random order
    removes k/20 of the total 210 in expectation: E[AOPC] = 105. The mean over 16 samples of a
    random order has a standard deviation of about 1.8 (7.3 per sample, simulated), so a margin
    of 15 (half the gap) is > 8σ.
    """
    rng = np.random.default_rng(0)
    w = np.ones(20)
    x = np.stack([rng.permutation(20) + 1.0 for _ in range(16)])
    model = lambda b: (np.asarray(b) @ w)[:, None]  # noqa: E731
    true = pixel_flipping(model, x, x * w, steps=20)
    rand = pixel_flipping(model, x, rng.normal(size=x.shape), steps=20)
    np.testing.assert_allclose(true.aopc(), 2870 / 21)
    assert np.all(rand.aopc() <= true.aopc() + 1e-9)
    assert rand.mean_aopc() < true.mean_aopc() - 15
    assert abs(rand.mean_aopc() - 105) < 15  # and near its expectation


def _mask_model(mask):
    """f(x) = Σ x·mask over pixels and channels, one output."""
    return lambda b: np.sum(np.asarray(b) * mask[None, :, :, None], axis=(1, 2, 3))[:, None]


def test_image_regions_of_two_exact_values():
    mask = np.array([[1, 0, 0, 0],
                     [0, 0, 0, 0],
                     [0, 0, 1, 1],
                     [0, 0, 1, 1]], float)
    x = np.zeros((1, 4, 4, 2))
    x[0, ..., 0] = np.arange(16).reshape(4, 4)   # channel 0: 0..15
    x[0, ..., 1] = 1.0                          # channel 1: ones
    # f(x) = (0 + 1) + (10 + 11 + 14 + 15 + 4) = 55
    rel = np.zeros((1, 4, 4, 2))
    rel[0, 0, 2, 0], rel[0, 0, 3, 1] = 3.0, 2.0  # patch (0, 1): 5, split across channels
    rel[0, 2, 2, 0] = 4.0                       # patch (1, 1): 4
    rel[0, 1, 1, 0] = 1.0                       # patch (0, 0): 1
    rel[0, 3, 0, 1] = -1.0                      # patch (1, 0): -1
    curve = pixel_flipping(_mask_model(mask), x, rel, region=2, steps=4)
    # order: (0,1) [mask 0 → no change], (1,1) [drops 54], (0,0) [drops 1], (1,0) [no change]
    np.testing.assert_allclose(curve.scores, [[55, 55, 1, 0, 0]])
    assert curve.regions == 4
    np.testing.assert_allclose(curve.aopc(), [(0 + 0 + 54 + 55 + 55) / 5])
    # the same with relevance given per pixel (N, H, W) and with channels first
    np.testing.assert_allclose(
        pixel_flipping(_mask_model(mask), x, rel.sum(-1), region=2, steps=4).scores,
        curve.scores)
    chw = lambda b: _mask_model(mask)(np.moveaxis(np.asarray(b), 1, -1))  # noqa: E731
    np.testing.assert_allclose(pixel_flipping(chw, np.moveaxis(x, -1, 1), np.moveaxis(rel, -1, 1),
                                              region=2, steps=4, reduce_axis=1).scores,
                               curve.scores)


def test_ragged_patches_and_grey_images():
    x = np.ones((1, 3, 3))             # 3x3 with region 2: patches of 4, 2, 2 and 1 pixels
    rel = np.zeros((1, 3, 3))
    rel[0, 2, 2] = 9.0                 # the 1-pixel corner patch first
    rel[0, 0, 2] = 5.0                 # then the right column patch (2 pixels)
    model = lambda b: np.asarray(b).reshape(len(b), -1).sum(1)  # noqa: E731  (N,) output
    curve = pixel_flipping(model, x, rel, region=2, steps=4)
    np.testing.assert_allclose(curve.scores, [[9, 8, 6, 2, 0]])


def test_perturbation_modes():
    x = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 9.0]])   # feature means over the batch: 2, 3, 6
    ident = lambda b: np.asarray(b)  # noqa: E731  scores = the features themselves
    rel = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # feature 2 goes first
    mean = pixel_flipping(ident, x, rel, target=2, steps=3, perturbation="mean")
    np.testing.assert_allclose(mean.scores, [[3, 6, 6, 6], [9, 6, 6, 6]])
    uni = [pixel_flipping(ident, x, rel, target=2, steps=1, perturbation="uniform", seed=s)
           for s in (0, 0, 1)]
    assert np.all((uni[0].scores[:, 1] >= 1) & (uni[0].scores[:, 1] <= 9))
    np.testing.assert_array_equal(uni[0].scores, uni[1].scores)
    assert not np.array_equal(uni[0].scores, uni[2].scores)
    custom = pixel_flipping(ident, x, rel, target=[2, 2], steps=1, perturbation=lambda v: -v)
    np.testing.assert_allclose(custom.scores, [[3, -3], [9, -9]])


def test_default_target_is_argmax_of_unperturbed_output():
    x = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]])
    curve = pixel_flipping(lambda b: np.asarray(b), x, x, steps=3)
    np.testing.assert_array_equal(curve.targets, [1, 0])
    np.testing.assert_allclose(curve.scores, [[5, 0, 0, 0], [7, 0, 0, 0]])


def test_aopc_formula_on_a_given_curve():
    curve = PerturbationCurve(np.linspace(0, 1, 3), np.array([[4.0, 1.0, 3.0]]),
                              np.array([0]), 2)
    np.testing.assert_allclose(curve.aopc(), [(0 + 3 + 1) / 3])


def test_errors_name_the_problem():
    x = np.ones((2, 4))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        pixel_flipping(linear, x, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 4\]"):
        pixel_flipping(linear, x, x, steps=5)
    with pytest.raises(ValueError, match="region"):
        pixel_flipping(linear, x, x, region=2, steps=2)
    with pytest.raises(ValueError, match="perturbation"):
        pixel_flipping(linear, x, x, steps=2, perturbation="blur")
    with pytest.raises(ValueError, match=r"target must be an int or 2 ints in \[0, 1\)"):
        pixel_flipping(linear, x, x, steps=2, target=3)
    with pytest.raises(ValueError, match=r"returned shape \(3,\)"):
        pixel_flipping(lambda b: np.ones(3), x, x, steps=2)
    with pytest.raises(ValueError, match="NaN"):
        pixel_flipping(linear, x, np.full((2, 4), np.nan), steps=2)
    with pytest.raises(ValueError, match=r"reduce_axis=0.*\(1, 2, 2, 3\)"):
        pixel_flipping(linear, np.ones((1, 2, 2, 3)), np.ones((1, 2, 2)), reduce_axis=0)
    with pytest.raises(ValueError, match=r"returned shape \(2, 3\) for x of shape \(2, 4\)"):
        pixel_flipping(linear, x, x, steps=2, perturbation=lambda v: v[:, :3])
