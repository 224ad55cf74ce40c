"""iNNvestigate's remaining analyzer names: input, random, gradient.baseline, deconvnet,
guided_backprop, integrated_gradients, smoothgrad (with iNNvestigate's keywords and defaults),
and seed 004's zbab and wwab. Compared with NumPy float64 computations from the formulas
(rtol 1e-9), and with the oracle of ``tests/reference.py`` for the LRP composites."""
import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close, tanh_mlp

import keras_lrp

L = keras.layers


def _relu_mlp(seed=0):
    """x (5) → Dense(6, relu) → Dense(4, relu) → Dense(3), float64."""
    i = keras.Input((5,), name="x")
    h = L.Dense(4, activation="relu", name="h2")(L.Dense(6, activation="relu", name="h1")(i))
    model = keras.Model(i, L.Dense(3, name="out")(h))
    g = np.random.default_rng(seed)
    model.set_weights([g.normal(size=w.shape) for w in model.get_weights()])
    return model, g.normal(size=(4, 5))


def _backward(model, x, relu_rule):
    """The modified backward pass by hand: start from the max logit (iNNvestigate's head for
    reverse analyzers is the output value), Wᵀ at each Dense, ``relu_rule(g, pre)`` at each
    ReLU."""
    (W1, b1), (W2, b2), (W3, b3) = [(np.asarray(k), np.asarray(b)) for k, b in zip(
        model.get_weights()[::2], model.get_weights()[1::2])]
    out = []
    for xn in x:
        z1 = xn @ W1 + b1
        z2 = np.maximum(z1, 0) @ W2 + b2
        y = np.maximum(z2, 0) @ W3 + b3
        g = np.zeros_like(y)
        g[np.argmax(y)] = y.max()
        g = relu_rule(W3 @ g, z2)
        g = relu_rule(W2 @ g, z1)
        out.append(W1 @ g)
    return np.stack(out)


@pytest.mark.parametrize("name, rule", [
    ("deconvnet", lambda g, z: np.maximum(g, 0)),
    ("guided_backprop", lambda g, z: np.maximum(g, 0) * (z > 0)),
])
def test_deconvnet_and_guided_backprop(name, rule, float64):
    model, x = _relu_mlp()
    got = keras_lrp.create_analyzer(name, model).analyze(x)
    assert_close(got, _backward(model, x, rule), rtol=1e-9, atol=1e-12)
    gradient = _backward(model, x, lambda g, z: g * (z > 0))  # the plain gradient × logit
    assert np.abs(got - gradient).max() > 1e-3  # the modification changes something here


def test_input_and_random(float64):
    model, x = _relu_mlp(1)
    np.testing.assert_array_equal(keras_lrp.create_analyzer("input", model).analyze(x), x)
    big = np.zeros((2000, 5))
    noise = keras_lrp.create_analyzer("random", model, stddev=0.5, seed=3).analyze(big)
    # 10 000 draws of N(0, 0.25): the mean's standard error is 0.005, the std's about 0.0035
    assert abs(noise.mean()) < 0.025 and abs(noise.std() - 0.5) < 0.02
    again = keras_lrp.create_analyzer("random", model, stddev=0.5, seed=3).analyze(big)
    np.testing.assert_array_equal(noise, again)
    with pytest.raises(ValueError, match="stddev >= 0, got stddev=-1"):
        keras_lrp.create_analyzer("random", model, stddev=-1)


def _grad(model, x):
    W1, b1, W2, b2 = [np.asarray(w) for w in model.get_weights()]
    out = []
    for xn in x:
        h = np.tanh(xn @ W1 + b1)
        k = np.argmax(h @ W2 + b2)
        out.append(((1 - h ** 2) * W2[:, k]) @ W1.T)
    return np.stack(out)


@pytest.mark.parametrize("name", ["gradient", "gradient.baseline", "input_t_gradient"])
@pytest.mark.parametrize("postprocess, fn", [(None, lambda a: a), ("abs", np.abs),
                                             ("square", np.square)])
def test_gradient_names_and_postprocess(name, postprocess, fn, float64):
    model, x = tanh_mlp(2)
    got = keras_lrp.create_analyzer(name, model, postprocess=postprocess).analyze(x)
    raw = _grad(model, x) * (x if name == "input_t_gradient" else 1)
    assert_close(got, fn(raw), rtol=1e-9, atol=1e-13)


def test_integrated_gradients_name_uses_innvestigates_defaults(float64):
    """steps=64 and reference_inputs=0 by default; α_k = k/64 (the input itself is not on the
    path: iNNvestigate's left Riemann sum)."""
    model, x = tanh_mlp(3)
    analyzer = keras_lrp.create_analyzer("integrated_gradients", model)
    assert analyzer.n == 64 and float(analyzer.reference) == 0.0
    alphas = np.arange(64) / 64
    W1, b1, W2, b2 = [np.asarray(w) for w in model.get_weights()]
    for n, xn in enumerate(x):
        k = np.argmax(np.tanh(xn @ W1 + b1) @ W2 + b2)
        grads = [((1 - np.tanh(a * xn @ W1 + b1) ** 2) * W2[:, k]) @ W1.T for a in alphas]
        assert_close(analyzer.analyze(x[n:n + 1])[0], xn * np.mean(grads, 0), rtol=1e-9, atol=1e-13)


def test_smoothgrad_name_with_postprocess_on_a_linear_model(float64):
    """|∂y/∂x| of a linear model is |W[:, k]| for every noisy copy: exact."""
    i = keras.Input((4,), name="x")
    model = keras.Model(i, L.Dense(3, name="out")(i))
    W = np.asarray(model.get_weights()[0])
    x = np.random.default_rng(4).normal(size=(2, 4))
    got = keras_lrp.create_analyzer("smoothgrad", model, augment_by_n=8, noise_scale=0.3,
                                    postprocess="abs", neuron_selection_mode="index",
                                    seed=1).analyze(x, neuron_selection=[2, 0])
    assert_close(got, np.abs(W[:, [2, 0]].T), rtol=1e-12)


def test_wrapped_names_save_and_load(tmp_path, float64):
    model, x = tanh_mlp(5)
    sg = keras_lrp.create_analyzer("smoothgrad", model, augment_by_n=6, noise_scale=0.2,
                                   seed=9, neuron_selection_mode="index", postprocess="square")
    sg.save(tmp_path / "sg.lrp")
    again = keras_lrp.load_analyzer(tmp_path / "sg.lrp")
    assert again.name == "smoothgrad" and again.neuron_selection_mode == "index"
    np.testing.assert_allclose(again.analyze(x, neuron_selection=1),
                               sg.analyze(x, neuron_selection=1), rtol=1e-12)


@pytest.mark.parametrize("name, first", [  # the oracle's kernel rules: rule(x, W, b, R, S)
    ("zbab", lambda x, W, b, R, S: ref.bounded_rule(x, W, b, R, low=-1.0, high=1.0)),
    ("wwab", lambda x, W, b, R, S: ref.wsquare_rule(x, W, b, R)),
])
def test_seed004_codes(name, first, float64):
    model, x = _relu_mlp(6)
    ab = lambda x, W, b, R, S: ref.alphabeta_rule(x, W, b, R, 2.0, 1.0)  # noqa: E731
    rules = {"h1": first, "h2": ab, "out": ab}
    expected = ref.Net.from_keras(model).batch_relevance(x, rules)[0]
    got = keras_lrp.create_analyzer(name, model).analyze(x)
    assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_every_innvestigate_name_is_accepted():
    """iNNvestigate 2.1.2's create_analyzer names (its analyzer/__init__.py)."""
    names = set("deconvnet deep_taylor deep_taylor.bounded gradient gradient.baseline "
                "guided_backprop input input_t_gradient integrated_gradients lrp "
                "lrp.alpha_1_beta_0 lrp.alpha_1_beta_0_IB lrp.alpha_2_beta_1 "
                "lrp.alpha_2_beta_1_IB lrp.alpha_beta lrp.epsilon lrp.flat "
                "lrp.sequential_preset_a lrp.sequential_preset_a_flat lrp.sequential_preset_b "
                "lrp.sequential_preset_b_flat lrp.sequential_preset_b_flat_until_idx "
                "lrp.w_square lrp.z lrp.z_plus lrp.z_plus_fast random smoothgrad".split())
    assert names - set(keras_lrp.ANALYZERS) == set()
