"""LRP through LSTM, GRU, SimpleRNN, Bidirectional, TimeDistributed and Embedding, against the
independent NumPy float64 oracle of ``reference.py`` (Arras et al. 2017/2019).

Every model is checked twice: with random biases everywhere (the bias absorbs its share of the
linear maps' relevance) and without biases. Float64, so the two implementations agree to
rounding: rtol 1e-7 with an absolute floor of 1e-9 of the largest value (summation order only).
"""
import keras
import numpy as np
import pytest
import reference as ref
from helpers import BACKEND, assert_close, autodiff
from keras import ops

import keras_lrp

T, D, U, K = 6, 3, 4, 3
L = keras.layers
EPS = 1e-7  # lrp.epsilon's default


def eps_rule(epsilon=EPS):
    return lambda x, W, b, R: ref.epsilon_rule(x, W, b, R, epsilon)


def _skip_keras_simple_rnn_float64_on_jax(model):
    if BACKEND == "jax" and keras.config.floatx() == "float64" and any(
            isinstance(layer, L.SimpleRNN) for layer in _all_layers(model)):
        pytest.skip("Keras' own SimpleRNN fails in float64 on JAX (its scan carry turns "
                    "float32: 'scan body function carry input and carry output must have "
                    "equal types'); the float32 cases run")


def _all_layers(model):
    for layer in model.layers:
        yield layer
        for attr in ("layer", "forward_layer", "backward_layer"):
            if isinstance(getattr(layer, attr, None), L.Layer):
                yield getattr(layer, attr)


def _randomize(model, seed, bias):
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.weights:
        if "embeddings" in w.path:
            weights.append(rng.normal(0, 1.0, w.shape))
        elif w.path.endswith("bias"):
            weights.append(rng.uniform(-0.5, 0.5, w.shape) if bias else np.zeros(w.shape))
        else:
            weights.append(rng.normal(0, 0.6, w.shape))
    model.set_weights(weights)


def _dense_back(layer, h, R, rule):
    w = layer.get_weights()
    b = w[1] if len(w) > 1 else np.zeros(w[0].shape[1])
    return rule(h, w[0], b, R), h @ w[0] + b


def _start(logits):
    R = np.zeros_like(logits)
    R[np.argmax(logits)] = logits[np.argmax(logits)]
    return R


# ------------------------------------------------------------------ models
# Each case: build(bias) -> model; its oracle is reference.recurrent_net, one sample at a time.


def _single(layer_fn):
    def build(bias):
        i = keras.Input((T, D))
        return keras.Model(i, L.Dense(K, use_bias=bias)(layer_fn(bias)(i)))
    return build


def _seq_flatten_build(bias):
    i = keras.Input((T, D))
    h = L.LSTM(U, return_sequences=True, use_bias=bias, go_backwards=True)(i)
    return keras.Model(i, L.Dense(K, use_bias=bias)(L.Flatten()(h)))


def _stacked_build(bias):
    i = keras.Input((T, D))
    h = L.LSTM(U, return_sequences=True, use_bias=bias)(i)
    h = L.GRU(U, use_bias=bias)(h)
    return keras.Model(i, L.Dense(K, use_bias=bias)(h))


def _bi_build(merge, seq=False):
    def build(bias):
        i = keras.Input((T, D))
        h = L.Bidirectional(L.LSTM(U, use_bias=bias, return_sequences=seq),
                            merge_mode=merge)(i)
        h = L.Flatten()(h) if seq else h
        return keras.Model(i, L.Dense(K, use_bias=bias)(h))
    return build


VOCAB, DIM = 11, 3


def _embedding_build(mask_zero):
    def build(bias):
        i = keras.Input((T,), dtype="int32")
        h = L.Embedding(VOCAB, DIM, mask_zero=mask_zero)(i)
        return keras.Model(i, L.Dense(K, use_bias=bias)(L.LSTM(U, use_bias=bias)(h)))
    return build


def _masking_build(bias):
    i = keras.Input((T, D))
    h = L.GRU(U, use_bias=bias)(L.Masking(0.0)(i))
    return keras.Model(i, L.Dense(K, use_bias=bias)(h))


def _state_build(bias):
    i = keras.Input((T, D))
    out, _, c = L.LSTM(U, return_state=True, use_bias=bias)(i)
    return keras.Model(i, L.Dense(K, use_bias=bias)(L.Concatenate()([out, c])))


def _td_build(bias):
    i = keras.Input((T, D))
    h = L.TimeDistributed(L.Dense(5, use_bias=bias))(i)
    return keras.Model(i, L.Dense(K, use_bias=bias)(L.SimpleRNN(U, use_bias=bias)(h)))


def _init_state_build(bias):
    x = keras.Input((T, D))
    v = keras.Input((2,))
    h0, c0 = L.Dense(U, use_bias=bias)(v), L.Dense(U, use_bias=bias)(v)
    h = L.LSTM(U, use_bias=bias)(x, initial_state=[h0, c0])
    return keras.Model([x, v], L.Dense(K, use_bias=bias)(h))


def _bi_masked_build(bias):
    i = keras.Input((T,), dtype="int32")
    h = L.Embedding(VOCAB, DIM, mask_zero=True)(i)
    h = L.Bidirectional(L.GRU(U, use_bias=bias), merge_mode="concat")(h)
    return keras.Model(i, L.Dense(K, use_bias=bias)(h))


CASES = {
    "lstm": _single(lambda bias: L.LSTM(U, use_bias=bias)),
    "gru": _single(lambda bias: L.GRU(U, use_bias=bias)),
    "gru_reset_before": _single(lambda bias: L.GRU(U, use_bias=bias, reset_after=False)),
    "simple_rnn": _single(lambda bias: L.SimpleRNN(U, use_bias=bias)),
    "lstm_backwards": _single(lambda bias: L.LSTM(U, use_bias=bias, go_backwards=True)),
    "gru_backwards": _single(lambda bias: L.GRU(U, use_bias=bias, go_backwards=True)),
    "lstm_sequences_backwards": _seq_flatten_build,
    "stacked_lstm_gru": _stacked_build,
    "bidirectional_concat": _bi_build("concat"),
    "bidirectional_sum": _bi_build("sum"),
    "bidirectional_ave_sequences": _bi_build("ave", seq=True),
    "embedding_lstm": _embedding_build(False),
    "embedding_mask_zero": _embedding_build(True),
    "masking_gru": _masking_build,
    "lstm_return_state": _state_build,
    "time_distributed": _td_build,
    "lstm_initial_state_from_input": _init_state_build,
    "embedding_bidirectional_gru_masked": _bi_masked_build,
}


def _inputs(name, seed, n=5):
    rng = np.random.default_rng(100 + seed)
    if name.startswith("embedding"):
        tokens = rng.integers(1, VOCAB, size=(n, T))
        if "mask" in name:  # padding at the end and at the start
            tokens[0, 4:] = 0
            tokens[1, :2] = 0
            tokens[2, 1] = 0
        return tokens.astype("int32")
    x = rng.normal(0, 1, size=(n, T, D))
    if name == "lstm_initial_state_from_input":
        return [x, rng.normal(0, 1, size=(n, 2))]
    if name.startswith("masking"):
        x[0, 4:] = 0
        x[1, :3] = 0
    return x


def _model(name, bias, seed):
    keras.utils.set_random_seed(seed)
    model = CASES[name](bias)
    _skip_keras_simple_rnn_float64_on_jax(model)
    _randomize(model, seed, bias)
    return model


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy_oracle(float64, name, bias):
    seed = list(CASES).index(name)
    model, x = _model(name, bias, seed), _inputs(name, seed)
    got = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
    samples = list(zip(*x)) if isinstance(x, list) else x
    rows = [ref.recurrent_net(model, xn, eps_rule(), EPS) for xn in samples]
    assert_close(np.stack([r[1] for r in rows]), model.predict(x, verbose=0),
                 rtol=1e-10, atol=1e-12)  # the oracle's forward pass is Keras'
    if isinstance(x, list):  # several inputs: one relevance each
        for k, part in enumerate(got):
            expected = np.stack([r[0][k] for r in rows])
            assert part.shape == x[k].shape
            assert_close(part, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
        return
    expected = np.stack([r[0] for r in rows])
    assert got.shape == x.shape
    assert_close(got, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
    if "mask" in name and name.startswith("embedding"):
        assert np.all(got[x == 0] == 0.0)
    if name == "masking_gru":
        assert np.all(got[0, 4:] == 0.0) and np.all(got[1, :3] == 0.0)


@pytest.mark.parametrize("name", ["lstm", "gru", "gru_reset_before", "simple_rnn",
                                  "stacked_lstm_gru", "bidirectional_concat",
                                  "bidirectional_sum", "embedding_mask_zero",
                                  "lstm_return_state", "time_distributed"])
def test_conserves_without_bias(float64, name):
    """Every bias zero and ε = 1e-12: the input relevance sums to the explained logit."""
    seed = list(CASES).index(name)
    model, x = _model(name, False, seed), _inputs(name, seed)
    got = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-12).analyze(x)
    logits = model.predict(x, verbose=0).max(axis=1)
    assert_close(got.reshape(len(x), -1).sum(axis=1), logits, rtol=1e-8)


AB21 = lambda x, W, b, R: ref.alphabeta_rule(x, W, b, R, 2.0, 1.0)  # noqa: E731
Z = lambda x, W, b, R: ref.z_rule(x, W, b, R)  # noqa: E731


#: αβ with the tiny float64 stabiliser (1e-300) divides by exact zeros of z⁺ unless the
#: products are float64; Keras computes them in float32 off TensorFlow (helpers.PRECISION).
_TINY_STABILISER = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="needs float64 matmuls, which Keras has on TensorFlow only")


@pytest.mark.parametrize("analyzer, rule", [("lrp.z", Z),
                                            pytest.param("lrp.alpha_2_beta_1", AB21,
                                                         marks=_TINY_STABILISER),
                                            ("lrp.epsilon_IB", lambda x, W, b, R:
                                             ref.epsilon_rule(x, W, b, R, EPS, bias=False))])
@pytest.mark.parametrize("name", ["lstm", "gru", "bidirectional_concat"])
def test_other_rules(float64, name, analyzer, rule):
    """The composite's rule reaches the linear maps inside the cell (the sums keep the tiny
    default stabiliser of a rule without ε)."""
    seed = list(CASES).index(name)
    model, x = _model(name, True, seed), _inputs(name, seed)
    got = keras_lrp.create_analyzer(analyzer, model).analyze(x)
    eps = EPS if "epsilon" in analyzer else ref.STAB
    expected = np.stack([ref.recurrent_net(model, xn, rule, eps)[0] for xn in x])
    assert_close(got, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("gate_rule", ["half", "proportional"])
@pytest.mark.parametrize("name", ["lstm", "lstm_backwards"])
def test_gate_rules(float64, name, gate_rule):
    """Arras et al. 2019's alternatives: the gates' share crosses their own linear maps."""
    seed = list(CASES).index(name)
    model, x = _model(name, True, seed), _inputs(name, seed)
    got = keras_lrp.create_analyzer("lrp.epsilon", model, gate_rule=gate_rule).analyze(x)
    expected = np.stack([ref.recurrent_net(model, xn, eps_rule(), EPS, gate_rule)[0]
                         for xn in x])
    # off TensorFlow, Keras' recurrence runs in float32 (helpers.PRECISION): 7 steps of it
    rtol = 1e-7 if BACKEND == "tensorflow" else 1e-4
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * np.abs(expected).max())
    signal = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
    assert np.abs(got - signal).max() > 1e-3 * np.abs(signal).max()  # the option does something


def test_gate_rule_errors():
    model = _model("gru", True, 0)
    with pytest.raises(ValueError, match="gate_rule='half' is implemented for LSTM only"):
        keras_lrp.create_analyzer("lrp.epsilon", model, gate_rule="half")
    with pytest.raises(ValueError, match="gate_rule must be one of"):
        keras_lrp.create_analyzer("lrp.epsilon", _model("lstm", True, 0), gate_rule="all")


def test_unsupported_recurrent_layers_are_named():
    i = keras.Input((T, D), batch_size=2)
    stateful = keras.Model(i, L.Dense(K)(L.LSTM(U, stateful=True, name="memory")(i)))
    with pytest.raises(ValueError, match="Layer 'memory' is stateful"):
        keras_lrp.create_analyzer("lrp.epsilon", stateful)
    i = keras.Input((T, D))
    mul = keras.Model(i, L.Dense(K)(L.Bidirectional(L.LSTM(U), merge_mode="mul",
                                                    name="both")(i)))
    with pytest.raises(ValueError, match="Layer 'both' merges its directions with "
                                         "merge_mode='mul'"):
        keras_lrp.create_analyzer("lrp.epsilon", mul)
    i = keras.Input((T, 4, 4, 1))
    conv = keras.Model(i, L.Dense(K)(L.Flatten()(L.ConvLSTM2D(2, 3, name="clstm")(i))))
    with pytest.raises(ValueError, match="Layer 'clstm' has a cell of type ConvLSTMCell"):
        keras_lrp.create_analyzer("lrp.epsilon", conv)


def test_layerwise_embedding_relevance(float64):
    """``layerwise=True`` also gives the (batch, T, d) relevance of the embedding vectors, whose
    sum over d is the token relevance."""
    model, x = _model("embedding_lstm", True, 3), _inputs("embedding_lstm", 3)
    a = keras_lrp.create_analyzer("lrp.epsilon", model)
    lw = a.analyze(x, layerwise=True)
    emb = model.layers[1].name
    assert lw[emb].shape == (len(x), T, DIM)
    np.testing.assert_allclose(lw[emb].sum(axis=-1), a.analyze(x), rtol=1e-12)


def test_gradient_family_runs_through_recurrent_layers(float64):
    """input × gradient on an LSTM is the NumPy finite-difference gradient times the input."""
    model, x = _model("lstm", True, 0), _inputs("lstm", 0, n=2)
    got = keras_lrp.create_analyzer("input_t_gradient", model).analyze(x)
    k = model.predict(x, verbose=0).argmax(axis=1)
    if BACKEND != "tensorflow":  # Keras computes float32 there: a central difference is noise
        expected = autodiff(lambda xt: ops.sum(ops.take_along_axis(
            model(xt), ops.convert_to_tensor(k[:, None]), axis=1)), x)[0]
        np.testing.assert_allclose(got, x * expected, rtol=1e-6, atol=1e-9)
        return
    h = 1e-6
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape[1:]):
        for n in range(len(x)):
            xp, xm = x.copy(), x.copy()
            xp[(n,) + idx] += h
            xm[(n,) + idx] -= h
            grad[(n,) + idx] = (model.predict(xp[n:n + 1], verbose=0)[0, k[n]]
                                - model.predict(xm[n:n + 1], verbose=0)[0, k[n]]) / (2 * h)
    np.testing.assert_allclose(got, x * grad, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------- seed 001: Arras's lrp_linear
@pytest.mark.parametrize("bias_factor", [0.0, 1.0])
def test_seed001_lrp_linear(float64, bias_factor):
    """Epsilon(bias_factor=β) on a Dense layer is seed 001's ``lrp_linear`` with
    ``bias_nb_units`` = D, to 1e-12 (float64); with β = 1 relevance is conserved exactly."""
    rng = np.random.default_rng(1)
    Din, M, eps = 7, 5, 0.001
    layer = L.Dense(M)
    i = keras.Input((Din,))
    model = keras.Model(i, layer(i))
    w, b = rng.normal(size=(Din, M)), rng.normal(size=M)
    layer.set_weights([w, b])
    x = rng.normal(size=(4, Din))
    got = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=eps, bias_factor=bias_factor,
                                    neuron_selection_mode="all").analyze(x)
    z = x @ w + b
    expected = np.stack([ref.lrp_linear(xn, w, b, zn, zn, Din, eps, bias_factor)
                         for xn, zn in zip(x, z)])
    assert_close(got, expected, rtol=1e-12, atol=1e-12)
    if bias_factor == 1.0:
        assert_close(got.sum(axis=1), z.sum(axis=1), rtol=1e-12)
    else:
        assert np.abs(got.sum(axis=1) - z.sum(axis=1)).max() > 0.1  # the bias absorbed some


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_bias_factor_inside_cells(float64, name):
    """bias_factor=1 reaches the linear maps inside the cells: each is seed 001's lrp_linear
    with bias_nb_units = D + units (the shares of h_0 = 0 are relevance of the initial state)."""
    seed = list(CASES).index(name)
    model, x = _model(name, True, seed), _inputs(name, seed)
    eps = 0.01
    got = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=eps,
                                    bias_factor=1.0).analyze(x)

    def rule(xh, W, b, R):
        return ref.lrp_linear(xh, W, b, xh @ W + b, R, len(xh), eps, 1.0)

    expected = np.stack([ref.recurrent_net(model, xn, rule, eps)[0] for xn in x])
    assert_close(got, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())


def test_bias_factor_conserves_on_padded_convolutions(float64):
    """With bias_factor=1 every layer gives back what its bias and stabiliser absorb, so a
    biased network conserves exactly; with padding="same" the fan-in n_j is smaller at the
    border, which the count handles."""
    i = keras.Input((5, 5, 2))
    conv = keras.Model(i, L.Dense(3)(L.Flatten()(L.Conv2D(3, 3, padding="same")(i))))
    _randomize(conv, 0, True)
    xc = np.random.default_rng(0).normal(size=(3, 5, 5, 2))
    for name in ("lrp.z", "lrp.epsilon"):
        got = keras_lrp.create_analyzer(name, conv, bias_factor=1.0).analyze(xc)
        assert_close(got.reshape(3, -1).sum(axis=1),
                     conv.predict(xc, verbose=0).max(axis=1), rtol=1e-9)


def test_bias_factor_out_of_range():
    with pytest.raises(ValueError, match="needs 0 <= bias_factor <= 1, got bias_factor=2"):
        keras_lrp.rules.Epsilon(bias_factor=2)


def test_time_distributed_around_layers_without_a_kernel(float64):
    """TimeDistributed(MaxPooling1D) and TimeDistributed(Flatten) route relevance like the inner
    layers would on each step: the winner of each window, then the flattening."""
    i = keras.Input((T, 4, 2))
    h = L.TimeDistributed(L.MaxPooling1D(2))(i)
    h = L.TimeDistributed(L.Flatten())(h)
    model = keras.Model(i, L.Dense(K, use_bias=False)(L.SimpleRNN(U, use_bias=False)(h)))
    _skip_keras_simple_rnn_float64_on_jax(model)
    _randomize(model, 4, False)
    x = np.random.default_rng(4).normal(size=(3, T, 4, 2))
    got = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
    rnn_layer, dense = model.layers[3], model.layers[4]
    for n in range(3):
        pooled = x[n].reshape(T, 2, 2, 2).max(axis=2)  # windows of 2 along the 4-axis
        h0 = pooled.reshape(T, -1)
        _, hs, _ = ref.rnn(rnn_layer, h0, rule=eps_rule(), eps=EPS)
        logits = _dense_back(dense, hs[-1], np.zeros(K), eps_rule())[1]
        R_h = _dense_back(dense, hs[-1], _start(logits), eps_rule())[0]
        R_h0 = ref.rnn(rnn_layer, h0, R_last=R_h, rule=eps_rule(), eps=EPS)[0].reshape(T, 2, 2)
        expected = np.zeros((T, 4, 2))
        win = x[n].reshape(T, 2, 2, 2).argmax(axis=2)  # (T, 2 windows, 2 channels)
        for t, w, c in np.ndindex(T, 2, 2):
            expected[t, 2 * w + win[t, w, c], c] = R_h0[t, w, c]
        assert_close(got[n], expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("name", ["gradient", "input_t_gradient", "gradient.baseline",
                                  "deconvnet", "guided_backprop", "integrated_gradients",
                                  "smoothgrad"])
def test_gradient_family_refuses_token_ids(name):
    """Token ids have no gradient: the gradient family returned int zeros silently before; now
    it says so and points at LRP."""
    model = _model("embedding_lstm", True, 0)
    with pytest.raises(ValueError, match="int32 values \\(token ids\\), which have no"):
        keras_lrp.create_analyzer(name, model)
