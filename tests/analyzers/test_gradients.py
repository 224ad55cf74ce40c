"""The gradient family as analyzers (keras_lrp/gradients.py): Gradient, and the wrappers
SmoothGrad and IntegratedGradients over any analyzer, LRP included.

Deterministic results are compared with NumPy float64 computations from the formulas (rtol
1e-9); noisy ones with their expectation, at tolerances of several standard errors (given at
each test).
"""
import keras
import numpy as np
import pytest
from helpers import assert_close, tanh_mlp

import keras_lrp
from keras_lrp import IntegratedGradients, SmoothGrad

L = keras.layers


def _tanh_grad(model, x, k):
    """∂y_k/∂x of the tanh MLP, by hand: W1 diag(1 − tanh²(x W1 + b1)) W2[:, k]."""
    W1, b1, W2, _ = [np.asarray(w, np.float64) for w in model.get_weights()]
    s = 1 - np.tanh(x @ W1 + b1) ** 2
    return (s * W2[:, k]) @ W1.T


def _logits(model, x):
    W1, b1, W2, b2 = [np.asarray(w, np.float64) for w in model.get_weights()]
    return np.tanh(x @ W1 + b1) @ W2 + b2


def test_integrated_gradients_is_the_riemann_sum(float64):
    """R = (x − x̄) ⊙ 1/s Σ_k ∇y(x̄ + α_k (x − x̄)), α_k = k/s, k = 0 … s−1: iNNvestigate's left
    Riemann sum, with the neuron chosen on the clean input."""
    model = tanh_mlp()[0]
    g = np.random.default_rng(1)
    x, ref = g.normal(size=(3, 4)), g.normal(size=(4,)) * 0.3
    ig = IntegratedGradients(keras_lrp.create_analyzer("gradient", model), steps=7,
                             reference_inputs=ref)
    got = ig.analyze(x)
    for n in range(3):
        k = int(np.argmax(_logits(model, x[n])))
        path = [ref + a * (x[n] - ref) for a in np.arange(7) / 7]
        want = (x[n] - ref) * np.mean([_tanh_grad(model, p, k) for p in path], axis=0)
        assert_close(got[n], want, rtol=1e-9, atol=1e-12)


def test_integrated_gradients_completeness_with_many_steps(float64):
    """With s → ∞ the sum of IG is y(x) − y(x̄): at s = 2000 the Riemann error is O(1/s)."""
    model = tanh_mlp(2)[0]
    x = np.random.default_rng(2).normal(size=(2, 4))
    ig = IntegratedGradients(keras_lrp.create_analyzer(
        "gradient", model, neuron_selection_mode="index"), steps=2000)
    got = ig.analyze(x, neuron_selection=[0, 2])
    for n, k in enumerate([0, 2]):
        delta = _logits(model, x[n])[k] - _logits(model, np.zeros(4))[k]
        np.testing.assert_allclose(got[n].sum(), delta, rtol=5e-3, atol=1e-3)


def test_smoothgrad_of_a_linear_model_is_its_weights(float64):
    """The gradient of a linear model is constant, so SmoothGrad equals it whatever the noise."""
    i = keras.Input((4,), name="x")
    model = keras.Model(i, L.Dense(3, name="out")(i))
    W = np.asarray(model.get_weights()[0])
    x = np.random.default_rng(3).normal(size=(2, 4))
    k = np.argmax(np.asarray(model(x)), axis=1)
    got = SmoothGrad(keras_lrp.create_analyzer("gradient", model), augment_by_n=8,
                     noise_scale=2.0, seed=0).analyze(x)
    assert_close(got, W[:, k].T, rtol=1e-12)


def _near_tie(seed=4):
    """A bias-free linear model whose two logits nearly tie: noise flips the argmax often."""
    i = keras.Input((3,), name="x")
    model = keras.Model(i, L.Dense(2, use_bias=False, name="out")(i))
    W = np.array([[1.0, 0.9], [0.5, 0.7], [-0.3, -0.2]])
    model.set_weights([W])
    x = np.array([[1.0, 1.0, 1.0]])  # logits 1.2 and 1.4: neuron 1 wins on the clean input
    return model, W, x


def test_smoothgrad_over_lrp_holds_the_clean_argmax(float64):
    """SmoothGrad over lrp.z_IB of y = x W: R(x + ε) = (x + ε) ⊙ W[:, k], so the mean is
    x ⊙ W[:, k] with k the clean argmax (noise σ = 1 flips the argmax in ~45 % of the copies,
    which would pull the mean towards W[:, 0] if the neuron were chosen per copy).
    Statistical: n = 4000, the mean's standard error is |W| σ / √n ≤ 0.016; atol 0.08 is 5 of
    them, while choosing per copy would be off by ~0.05–0.2 in some entry."""
    model, W, x = _near_tie()
    smooth = SmoothGrad(keras_lrp.create_analyzer("lrp.z_IB", model), augment_by_n=4000,
                        noise_scale=1.0, seed=1)
    got = smooth.analyze(x)
    np.testing.assert_allclose(got[0], x[0] * W[:, 1], atol=0.08)
    exact = SmoothGrad(keras_lrp.create_analyzer("lrp.z_IB", model), augment_by_n=3,
                       noise_scale=0.0).analyze(x)
    assert_close(exact, keras_lrp.create_analyzer("lrp.z_IB", model).analyze(x), rtol=1e-12)


def test_smoothgrad_index_and_all_modes(float64):
    model, W, x = _near_tie()
    for mode, sel, want in [("index", 0, x[0] * W[:, 0]), ("all", None, x[0] * W.sum(axis=1))]:
        inner = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode=mode)
        got = SmoothGrad(inner, augment_by_n=5, noise_scale=0.0).analyze(x, neuron_selection=sel)
        assert_close(got[0], want, rtol=1e-12)


def test_smoothgrad_seed_reproduces_and_differs(float64):
    model = tanh_mlp(5)[0]
    x = np.random.default_rng(5).normal(size=(2, 4))
    make = lambda seed: SmoothGrad(keras_lrp.create_analyzer("gradient", model),  # noqa: E731
                                   augment_by_n=16, noise_scale=0.5, seed=seed)
    a, b, c = make(7).analyze(x), make(7).analyze(x), make(8).analyze(x)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6


def test_wrapper_saves_and_loads(tmp_path, float64):
    model = tanh_mlp(6)[0]
    x = np.random.default_rng(6).normal(size=(2, 4))
    ig = IntegratedGradients(keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=0.01),
                             steps=5, reference_inputs=np.full(4, 0.1))
    ig.save(tmp_path / "ig.lrp")
    again = keras_lrp.load_analyzer(tmp_path / "ig.lrp")
    assert isinstance(again, IntegratedGradients) and again.n == 5
    np.testing.assert_array_equal(again.reference, ig.reference)
    assert again.analyzer.get_config() == {"name": "lrp.epsilon", "kwargs": {"epsilon": 0.01}}
    np.testing.assert_allclose(again.analyze(x), ig.analyze(x), rtol=1e-12)


@pytest.mark.parametrize("postprocess, fn", [("abs", np.abs), ("square", np.square)])
def test_gradient_postprocess(postprocess, fn, float64):
    model = tanh_mlp(7)[0]
    x = np.random.default_rng(7).normal(size=(2, 4))
    got = keras_lrp.Gradient(model, postprocess=postprocess).analyze(x)
    k = np.argmax(_logits(model, x), axis=1)
    want = np.stack([fn(_tanh_grad(model, x[n], k[n])) for n in range(2)])
    assert_close(got, want, rtol=1e-9)
    with pytest.raises(ValueError, match=r"postprocess must be one of .*'cube'"):
        keras_lrp.Gradient(model, postprocess="cube")


def test_wrapper_arguments_are_checked():
    model = tanh_mlp(8)[0]
    inner = keras_lrp.create_analyzer("gradient", model)
    with pytest.raises(ValueError, match="positive number of samples or steps, got 0"):
        SmoothGrad(inner, augment_by_n=0)
    with pytest.raises(ValueError, match="noise_scale >= 0, got -1"):
        SmoothGrad(inner, noise_scale=-1)
    with pytest.raises(ValueError, match="steps >= 1, got 0"):
        IntegratedGradients(inner, steps=0)
    with pytest.raises(ValueError, match=r"reference_inputs of shape \(3,\).*\(4,\)"):
        IntegratedGradients(inner, reference_inputs=np.zeros(3))
    with pytest.raises(TypeError, match="wraps a keras_lrp analyzer"):
        SmoothGrad(model)
    with pytest.raises(ValueError, match="no layer-wise relevances"):
        SmoothGrad(inner, augment_by_n=2).analyze(np.zeros((1, 4)), layerwise=True)
