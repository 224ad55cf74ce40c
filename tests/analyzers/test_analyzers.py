"""keras_lrp analyzers end to end: every name in ANALYZERS, keywords, rule placement, neuron
selection, layerwise relevance, conservation and compilation.

Every number is checked against an independent computation:

* LRP analyzers against ``reference.Net``, the NumPy float64 copy of the network (Dense kernels as
  matrices, Conv2D through ``reference.conv_matrix``, ReLU, max-pool routing by argmax) through
  which relevance is propagated with the rules of ``tests/reference.py``;
* ``gradient`` / ``input_t_gradient`` against ``tf.GradientTape`` on a separate pre-softmax
  Keras model built from the same weights.

Tolerances. float64 tests: rtol 1e-8 against the reference (the two compute the same sums in a
different order; every denominator is kept >= 1e-3 by the data preconditions below, so the
discrepancy is ~1e-16 * 1e3 << 1e-8), atol 1e-10 x the largest expected magnitude for entries
that cancel to ~0. float32 conservation: 1e-5 relative (the issue's bound).

Data preconditions (checked in the fixtures, by seed search): every pre-activation has
|z| >= 1e-3 and every max-pool window has a unique winner by >= 1e-3 that is > 0. Without them,
max-pool ties (relu zeros) make the routed winner an implementation detail, and tiny
denominators would amplify round-off.
"""
import functools

import keras
import numpy as np
import pytest
import reference as ref
from helpers import BACKEND, assert_close, autodiff, keras_dtype
from keras import ops

import keras_lrp
from keras_lrp import rules

RTOL = 1e-8
L = keras.layers


def _close(actual, expected, rtol=RTOL):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    atol = 1e-10 * max(float(np.max(np.abs(expected))), 1e-300)
    assert_close(actual, expected, rtol=rtol, atol=atol)


def per_sample(a):
    a = np.asarray(a, np.float64)
    return a.reshape(a.shape[0], -1).sum(axis=1)


# ============================================================================ NumPy reference
def Z(bias=True):
    return ("Z", {"bias": bias})


def EPS(epsilon, bias=True):
    return ("Epsilon", {"epsilon": epsilon, "bias": bias})


def AB(alpha, beta, bias=True):
    return ("AlphaBeta", {"alpha": alpha, "beta": beta, "bias": bias})


def BND(low=-1.0, high=1.0):
    return ("Bounded", {"low": low, "high": high})


def GAM(gamma, bias=True):
    return ("Gamma", {"gamma": gamma, "bias": bias})


ZP, ZPF, WSQ, FLAT = ("ZPlus", {"bias": False}), ("ZPlusFast", {}), ("WSquare", {}), ("Flat", {})
ZPB = ("ZPlus", {"bias": True})  # Zennit's ZPlus: b⁺ in the denominator


def apply_rule(spec, x, W, b, R, S):
    """One kernel layer of the reference, for one sample (flat vectors)."""
    name, p = spec
    if name == "Z":
        return ref.z_rule(x, W, b, R, bias=p["bias"])
    if name == "Epsilon":
        return ref.epsilon_rule(x, W, b, R, epsilon=p["epsilon"], bias=p["bias"])
    if name == "AlphaBeta":
        return ref.alphabeta_rule(x, W, b, R, alpha=p["alpha"], beta=p["beta"], bias=p["bias"])
    if name == "ZPlus":
        return ref.zplus_rule(x, W, b, R, bias=p["bias"])
    if name == "ZPlusFast":
        return ref.zplusfast_rule(x, W, b, R)
    if name == "WSquare":
        return ref.wsquare_rule(x, W, b, R)
    if name == "Flat":
        return ref.flat_rule(x, W, b, R, structure=S)
    if name == "Bounded":
        low = np.broadcast_to(np.asarray(p["low"], float), x.shape)  # bounds are per sample
        high = np.broadcast_to(np.asarray(p["high"], float), x.shape)
        return ref.bounded_rule(x, W, b, R, low=low, high=high)
    if name == "Gamma":
        return ref.gamma_rule(x, W, b, R, gamma=p["gamma"], bias=p["bias"])
    raise AssertionError(name)


def assert_rule(layer, spec):
    """The relevance layer is exactly the rule class of ``spec``, with its parameters."""
    name, params = spec
    assert type(layer) is getattr(rules, name), (layer.name, type(layer).__name__, name)
    for key, value in params.items():
        got = getattr(layer, key)
        if isinstance(value, bool):
            assert got is value or got == value, (layer.name, key, got, value)
        else:
            np.testing.assert_allclose(np.asarray(got, float), np.asarray(value, float),
                                       rtol=1e-12, err_msg=f"{layer.name}.{key}")


def oracle(model):
    """The shared NumPy float64 oracle of ``model`` (``tests/reference.py``)."""
    return ref.Net.from_keras(model)


def kernel_names(net):
    return [name for name, _, _ in net.kernels()]


def rules_of(specs):
    """``{kernel name: spec}`` → ``{kernel name: rule(x, W, b, R, S)}`` for the oracle."""
    return {name: functools.partial(apply_rule, spec) for name, spec in specs.items()}


def onehot_start(logits, idx):
    out = np.zeros_like(logits)
    out[np.arange(len(logits)), idx] = logits[np.arange(len(logits)), idx]
    return out


def max_start(logits):
    return onehot_start(logits, np.argmax(logits, axis=1))


def _seeded(build, init, make_x, seed0, min_margin=1e-3, check_pool=True, accept=None,
            tries=300):
    """Build the model and find the first seed whose weights and data meet the preconditions
    (|pre-activations| and pool margins > min_margin, a clear argmax, ``accept(logits)``)."""
    model = build()
    for seed in range(seed0, seed0 + tries):
        g = np.random.default_rng(seed)
        model.set_weights(init(g, model))
        x = make_x(g)
        net = oracle(model)
        logits = net.logits(x)
        min_z, min_gap = net.margins(x)
        top2 = np.sort(logits, axis=1)[:, -2:]
        if (min_z > min_margin and (min_gap > min_margin or not check_pool)
                and np.all(top2[:, 1] - top2[:, 0] > 1e-3)
                and (accept is None or accept(net, x, logits))):
            return model, x, net
    raise AssertionError("no seed met the data preconditions")


def _init_normal(g, model, scale=0.8, bias_low=-0.5, bias_high=0.5):
    return [g.normal(scale=scale, size=w.shape) if w.ndim > 1
            else g.uniform(bias_low, bias_high, size=w.shape) for w in model.get_weights()]


# ============================================================================ models
def _cnn(final_activation="softmax", use_bias=True):
    inp = keras.Input((6, 6, 1), name="x")
    h = L.Conv2D(2, 3, activation="relu", use_bias=use_bias, name="conv")(inp)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    out = L.Dense(3, activation=final_activation, use_bias=use_bias, name="dense")(h)
    return keras.Model(inp, out, name="cnn")


def _seeded_image_model(build, seed0):
    """float64, biases in [0.05, 0.4), three 6×6×1 inputs in [-1, 1)."""
    with keras_dtype("float64"):
        return _seeded(build, lambda g, m: _init_normal(g, m, bias_low=0.05, bias_high=0.4),
                       lambda g: g.uniform(-1, 1, size=(3, 6, 6, 1)), seed0=seed0)


@pytest.fixture(scope="module")
def cnn():
    """Conv2D relu → MaxPool → Flatten → Dense softmax, with biases, float64."""
    return _seeded_image_model(_cnn, seed0=100)


def _pcnn():
    inp = keras.Input((6, 6, 1), name="x")
    h = L.Conv2D(2, 3, activation="relu", name="c1")(inp)
    h = L.Conv2D(3, 3, padding="same", activation="relu", name="c2")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    h = L.Dense(5, activation="relu", name="d1")(h)
    out = L.Dense(3, activation="softmax", name="d2")(h)
    return keras.Model(inp, out, name="pcnn")


@pytest.fixture(scope="module")
def pcnn():
    """Placement CNN: model.layers = [x, c1, c2, pool, flat, d1, d2] (indices 0..6)."""
    return _seeded_image_model(_pcnn, seed0=200)


def _mlp(use_bias=True):
    inp = keras.Input((5,), name="x")
    h = L.Dense(6, activation="relu", use_bias=use_bias, name="h1")(inp)
    h = L.Dense(4, activation="relu", use_bias=use_bias, name="h2")(h)
    out = L.Dense(3, activation="softmax", use_bias=use_bias, name="out")(h)
    return keras.Model(inp, out, name="mlp")


@pytest.fixture(scope="module")
def mlp():
    """Input(5) → Dense 6 relu → Dense 4 relu → Dense 3 softmax, with biases, float64."""
    with keras_dtype("float64"):
        return _seeded(_mlp, _init_normal, lambda g: g.uniform(-1, 1, size=(3, 5)), seed0=300)


@pytest.fixture(scope="module")
def mlp_nobias():
    """The same MLP without biases; the argmax differs between samples, max logits > 0."""
    with keras_dtype("float64"):
        return _seeded(lambda: _mlp(use_bias=False), lambda g, m: _init_normal(g, m, scale=1.2),
                       lambda g: g.uniform(-1, 1, size=(3, 5)), seed0=400,
                       accept=lambda net, x, lg: len(set(np.argmax(lg, 1))) == 3
                       and lg.max(1).min() > 0)


def relevance_layers(analyzer):
    return {la.name: la for la in analyzer.relevance_model.layers}


# ============================================================================ 1. every analyzer
# name -> (kwargs, {layer: rule spec} or "gradient"/"input_t_gradient", conserves the logit)
CNN_CASES = {
    "lrp": ({"rule": "Epsilon"}, {"conv": EPS(1e-7), "dense": EPS(1e-7)}, False),
    "lrp.z": ({}, {"conv": Z(), "dense": Z()}, False),
    "lrp.z_IB": ({}, {"conv": Z(False), "dense": Z(False)}, True),
    "lrp.epsilon": ({}, {"conv": EPS(1e-7), "dense": EPS(1e-7)}, False),
    "lrp.epsilon_IB": ({}, {"conv": EPS(1e-7, False), "dense": EPS(1e-7, False)}, True),
    "lrp.w_square": ({}, {"conv": WSQ, "dense": WSQ}, True),
    "lrp.flat": ({}, {"conv": FLAT, "dense": FLAT}, True),
    "lrp.alpha_beta": ({"alpha": 2}, {"conv": AB(2, 1), "dense": AB(2, 1)}, False),
    "lrp.alpha_2_beta_1": ({}, {"conv": AB(2, 1), "dense": AB(2, 1)}, False),
    "lrp.alpha_2_beta_1_IB": ({}, {"conv": AB(2, 1, False), "dense": AB(2, 1, False)}, True),
    "lrp.alpha_1_beta_0": ({}, {"conv": AB(1, 0), "dense": AB(1, 0)}, False),
    "lrp.alpha_1_beta_0_IB": ({}, {"conv": AB(1, 0, False), "dense": AB(1, 0, False)}, True),
    "lrp.z_plus": ({}, {"conv": ZP, "dense": ZP}, True),
    "lrp.z_plus_fast": ({}, {"conv": ZPF, "dense": ZPF}, True),
    "lrp.gamma": ({}, {"conv": GAM(0.25), "dense": GAM(0.25)}, False),
    "lrp.sequential_preset_a": ({}, {"conv": AB(1, 0), "dense": EPS(0.1)}, False),
    "lrp.sequential_preset_b": ({}, {"conv": AB(2, 1), "dense": EPS(0.1)}, False),
    "lrp.sequential_preset_a_flat": ({}, {"conv": FLAT, "dense": EPS(0.1)}, False),
    "lrp.sequential_preset_b_flat": ({}, {"conv": FLAT, "dense": EPS(0.1)}, False),
    "lrp.sequential_preset_b_flat_until_idx": ({}, {"conv": FLAT, "dense": EPS(0.1)}, False),
    "deep_taylor": ({}, {"conv": ZP, "dense": ZP}, True),
    "deep_taylor.bounded": ({}, {"conv": BND(), "dense": ZP}, True),
    "lrp.epsilon_plus": ({}, {"conv": ZPB, "dense": EPS(1e-6)}, False),
    "lrp.epsilon_plus_flat": ({}, {"conv": FLAT, "dense": EPS(1e-6)}, False),
    "lrp.epsilon_alpha_2_beta_1": ({}, {"conv": AB(2, 1), "dense": EPS(1e-6)}, False),
    "lrp.epsilon_alpha_2_beta_1_flat": ({}, {"conv": FLAT, "dense": EPS(1e-6)}, False),
    "lrp.epsilon_gamma_box": ({}, {"conv": BND(), "dense": EPS(1e-6)}, False),
    "zbab": ({}, {"conv": BND(), "dense": AB(2, 1)}, False),
    "wwab": ({}, {"conv": WSQ, "dense": AB(2, 1)}, False),
    "gradient": ({}, "gradient", False),
    "input_t_gradient": ({}, "input_t_gradient", False),
}


def test_cnn_cases_cover_every_analyzer():
    """Every LRP name, and the two gradients; the rest of the gradient family and the baselines
    are tested in test_baselines.py."""
    others = {n for n, e in keras_lrp.ANALYZERS.items() if e.family != "lrp"}
    assert set(CNN_CASES) | others == set(keras_lrp.ANALYZERS)


def _tape_gradient(model, x):
    """d(max logit)/dx of a separate pre-softmax copy of ``model`` (same weights)."""
    with keras_dtype("float64"):
        pre = _cnn(final_activation=None)
    pre.set_weights(model.get_weights())
    return autodiff(lambda xt: ops.sum(ops.max(pre(xt), axis=1)), x)[0]


@pytest.mark.parametrize("name", list(CNN_CASES))
def test_every_analyzer_on_cnn(name, cnn, float64):
    model, x, net = cnn
    kwargs, specs, conserves = CNN_CASES[name]
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    out = analyzer.analyze(x)
    assert isinstance(out, np.ndarray) and out.shape == x.shape and out.dtype == np.float64
    assert np.all(np.isfinite(out))
    logits = net.logits(x)
    if specs in ("gradient", "input_t_gradient"):
        grad = _tape_gradient(model, x)
        expected = grad if specs == "gradient" else x * grad
        _close(per_sample(out), per_sample(expected), rtol=1e-10)
        _close(out, expected, rtol=1e-10)
        assert np.max(np.abs(expected)) > 1e-2  # a real gradient, not zeros
        return
    for layer, spec in specs.items():
        assert_rule(relevance_layers(analyzer)[f"{layer}_relevance"], spec)
    start = max_start(logits)
    if name.startswith("deep_taylor"):  # iNNvestigate's Deep Taylor explains max(y, 0)
        start = np.maximum(start, 0)
    expected, _ = net.batch_relevance(x, rules_of(specs), start)
    explained = start.sum(axis=1)
    if conserves:
        # the bias-free (IB) and input-independent rules pass on exactly the explained logit
        tol = 1e-5 if name == "lrp.epsilon_IB" else 1e-9
        _close(per_sample(out), explained, rtol=tol)
    else:
        # the bias (or ε) absorbs a share: the sum is the reference's, and differs from the logit
        _close(per_sample(out), per_sample(expected))
        assert np.max(np.abs(per_sample(out) - explained) / np.abs(explained)) > 1e-4
    _close(out, expected)


# ============================================================================ 2. keywords
def test_unknown_analyzer_lists_valid_names(cnn):
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer("lrp.epsilom", cnn[0])
    msg = str(err.value)
    assert "lrp.epsilom" in msg
    for valid in ("lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1_IB", "deep_taylor.bounded",
                  "lrp.epsilon_gamma_box", "lrp.sequential_preset_b_flat_until_idx", "gradient",
                  "input_t_gradient"):
        assert valid in msg


@pytest.mark.parametrize("name,bad,valid", [
    ("lrp.epsilon", {"epsilom": 0.1}, ["epsilon", "bias", "neuron_selection_mode",
                                        "input_layer_rule", "rule_map"]),
    ("lrp.z", {"epsilon": 0.1}, ["bias", "neuron_selection_mode", "output_relevance"]),
    ("gradient", {"rule": "Z"}, ["neuron_selection_mode"]),
    ("lrp.epsilon_gamma_box", {"gama": 0.5}, ["gamma", "epsilon", "low", "high"]),
])
def test_unknown_keyword_is_named_with_valid_ones(name, bad, valid, cnn):
    with pytest.raises(ValueError) as err:
        keras_lrp.create_analyzer(name, cnn[0], **bad)
    msg = str(err.value)
    assert next(iter(bad)) in msg and "unknown keyword" in msg
    for v in valid:
        assert v in msg


def test_lrp_needs_a_rule(cnn):
    with pytest.raises(ValueError, match=r"rule=.*Epsilon.*AlphaBeta"):
        keras_lrp.create_analyzer("lrp", cnn[0])
    with pytest.raises(ValueError, match="Unknown LRP rule 'Epsilom'"):
        keras_lrp.create_analyzer("lrp", cnn[0], rule="Epsilom")


def test_alpha_beta_must_differ_by_one(cnn):
    with pytest.raises(ValueError, match=r"alpha=3.*beta=1"):
        keras_lrp.create_analyzer("lrp.alpha_beta", cnn[0], alpha=3, beta=1)
    with pytest.raises(ValueError, match="alpha or beta"):
        keras_lrp.create_analyzer("lrp.alpha_beta", cnn[0])


@pytest.mark.parametrize("kwargs", [{"beta": 1}, {"alpha": 2}, {"alpha": 2, "beta": 1}])
def test_alpha_beta_derives_the_missing_parameter(kwargs, cnn, float64):
    model, x, _ = cnn
    a = keras_lrp.create_analyzer("lrp.alpha_beta", model, **kwargs)
    b = keras_lrp.create_analyzer("lrp.alpha_2_beta_1", model)
    for layer in ("conv_relevance", "dense_relevance"):
        rule = relevance_layers(a)[layer]
        assert (rule.alpha, rule.beta, rule.bias) == (2, 1, True)
    _close(a.analyze(x), b.analyze(x), rtol=1e-12)


def test_alpha_beta_with_beta_zero_is_alpha_1_beta_0(cnn, float64):
    model, x, net = cnn
    out = keras_lrp.create_analyzer("lrp.alpha_beta", model, beta=0).analyze(x)
    expected, _ = net.batch_relevance(x, rules_of({"conv": AB(1, 0), "dense": AB(1, 0)}),
                                max_start(net.logits(x)))
    _close(out, expected)


@pytest.mark.parametrize("name", ["lrp.epsilon", "lrp.epsilon_IB", "lrp.sequential_preset_a",
                                  "lrp.epsilon_gamma_box"])
def test_negative_epsilon_rejected(name, cnn):
    with pytest.raises(ValueError, match=r"epsilon >= 0.*-0\.1"):
        keras_lrp.create_analyzer(name, cnn[0], epsilon=-0.1)


def test_negative_gamma_and_inverted_box_rejected(cnn):
    with pytest.raises(ValueError, match=r"gamma >= 0.*-1"):
        keras_lrp.create_analyzer("lrp.gamma", cnn[0], gamma=-1)
    with pytest.raises(ValueError, match=r"low <= high.*2.*1"):
        keras_lrp.create_analyzer("lrp.epsilon_gamma_box", cnn[0], low=2.0, high=1.0)


@pytest.mark.parametrize("name", sorted(n for n in keras_lrp.ANALYZERS if n.endswith(("_flat",
                                                                                      "_idx"))))
@pytest.mark.parametrize("rule", ["WSquare", "Bounded", (-1.0, 1.0)])
def test_flat_presets_fix_the_input_rule(name, rule, cnn):
    with pytest.raises(ValueError, match="input_layer_rule='Flat'") as err:
        keras_lrp.create_analyzer(name, cnn[0], input_layer_rule=rule)
    assert name in str(err.value)


def test_flat_presets_accept_flat_by_name(cnn):
    analyzer = keras_lrp.create_analyzer("lrp.sequential_preset_a_flat", cnn[0],
                                         input_layer_rule="Flat")
    assert type(relevance_layers(analyzer)["conv_relevance"]) is rules.Flat


@pytest.mark.parametrize("rule", [rules.Flat(), rules.Flat])
def test_flat_presets_accept_flat_instance_or_class(rule, cnn):
    """Regression: the check once compared with the string 'Flat' only."""
    analyzer = keras_lrp.create_analyzer("lrp.sequential_preset_a_flat", cnn[0],
                                         input_layer_rule=rule)
    assert type(relevance_layers(analyzer)["conv_relevance"]) is rules.Flat


@pytest.mark.parametrize("kwargs,match", [
    ({"neuron_selection_mode": "argmax"}, r"max_activation.*index.*all.*'argmax'"),
    ({"output_relevance": "ones"}, r"logit.*one.*'ones'"),
])
def test_invalid_modes_rejected(kwargs, match, cnn):
    with pytest.raises(ValueError, match=match):
        keras_lrp.create_analyzer("lrp.z", cnn[0], **kwargs)


# ============================================================================ 3. rule placement
A10, A21, E01, E6 = AB(1, 0), AB(2, 1), EPS(0.1), EPS(1e-6)
PLACEMENT = [
    # id, analyzer, kwargs, {c1, c2, d1, d2}
    ("preset_a", "lrp.sequential_preset_a", {}, (A10, A10, E01, E01)),
    ("preset_a_eps", "lrp.sequential_preset_a", {"epsilon": 0.05},
     (A10, A10, EPS(0.05), EPS(0.05))),
    ("preset_b", "lrp.sequential_preset_b", {}, (A21, A21, E01, E01)),
    ("preset_a_flat", "lrp.sequential_preset_a_flat", {}, (FLAT, A10, E01, E01)),
    ("preset_b_flat", "lrp.sequential_preset_b_flat", {}, (FLAT, A21, E01, E01)),
    ("until_idx_1", "lrp.sequential_preset_b_flat_until_idx", {"until_layer_idx": 1},
     (FLAT, A21, E01, E01)),
    ("until_idx_2", "lrp.sequential_preset_b_flat_until_idx", {"until_layer_idx": 2},
     (FLAT, FLAT, E01, E01)),
    ("until_idx_5", "lrp.sequential_preset_b_flat_until_idx", {"until_layer_idx": 5},
     (FLAT, FLAT, FLAT, E01)),
    ("until_idx_5_wsquare", "lrp.sequential_preset_b_flat_until_idx",
     {"until_layer_idx": 5, "until_layer_rule": "WSquare"}, (FLAT, WSQ, WSQ, E01)),
    ("until_on_epsilon", "lrp.epsilon", {"until_layer_idx": 2, "until_layer_rule": "ZPlus"},
     (ZP, ZP, EPS(1e-7), EPS(1e-7))),
    ("deep_taylor", "deep_taylor", {}, (ZP, ZP, ZP, ZP)),
    ("deep_taylor_input_flat", "deep_taylor", {"input_layer_rule": "Flat"}, (FLAT, ZP, ZP, ZP)),
    ("deep_taylor_bounded", "deep_taylor.bounded", {"low": -2.0, "high": 3.0},
     (BND(-2.0, 3.0), ZP, ZP, ZP)),
    ("epsilon_plus", "lrp.epsilon_plus", {}, (ZPB, ZPB, E6, E6)),
    ("epsilon_plus_eps", "lrp.epsilon_plus", {"epsilon": 0.01},
     (ZPB, ZPB, EPS(0.01), EPS(0.01))),
    ("epsilon_plus_flat", "lrp.epsilon_plus_flat", {}, (FLAT, ZPB, E6, E6)),
    ("epsilon_a2b1", "lrp.epsilon_alpha_2_beta_1", {}, (A21, A21, E6, E6)),
    ("epsilon_a2b1_flat", "lrp.epsilon_alpha_2_beta_1_flat", {}, (FLAT, A21, E6, E6)),
    ("gamma_box", "lrp.epsilon_gamma_box", {}, (BND(), GAM(0.25), E6, E6)),
    ("gamma_box_params", "lrp.epsilon_gamma_box",
     {"gamma": 0.5, "epsilon": 0.01, "low": -2.0, "high": 2.0},
     (BND(-2.0, 2.0), GAM(0.5), EPS(0.01), EPS(0.01))),
    ("input_wsquare", "lrp.epsilon", {"input_layer_rule": "WSquare"},
     (WSQ, EPS(1e-7), EPS(1e-7), EPS(1e-7))),
    ("input_flat", "lrp.epsilon", {"input_layer_rule": "Flat"},
     (FLAT, EPS(1e-7), EPS(1e-7), EPS(1e-7))),
    ("input_bounded", "lrp.epsilon", {"input_layer_rule": "Bounded"},
     (BND(), EPS(1e-7), EPS(1e-7), EPS(1e-7))),
    ("input_tuple", "lrp.epsilon", {"input_layer_rule": (-3.0, 2.0)},
     (BND(-3.0, 2.0), EPS(1e-7), EPS(1e-7), EPS(1e-7))),
    ("input_instance", "lrp.epsilon", {"input_layer_rule": rules.Gamma(gamma=0.7, bias=False)},
     (GAM(0.7, False), EPS(1e-7), EPS(1e-7), EPS(1e-7))),
    ("input_over_until", "lrp.z", {"input_layer_rule": "WSquare", "until_layer_idx": 2,
                                   "until_layer_rule": "Flat"}, (WSQ, FLAT, Z(), Z())),
    ("rule_map_class", "lrp.epsilon", {"rule_map": [(L.Dense, "WSquare")]},
     (EPS(1e-7), EPS(1e-7), WSQ, WSQ)),
    ("rule_map_name", "lrp.epsilon", {"rule_map": [("c2", rules.Flat())]},
     (EPS(1e-7), FLAT, EPS(1e-7), EPS(1e-7))),
    ("rule_map_tuple_key", "lrp.z", {"rule_map": [((L.Conv2D, "d2"), "Alpha1Beta0")]},
     (A10, A10, Z(), A10)),
    ("rule_map_first_match", "lrp.epsilon",
     {"rule_map": [("d1", "Flat"), (L.Dense, "WSquare"), ("d1", "Z")]},
     (EPS(1e-7), EPS(1e-7), FLAT, WSQ)),
    ("rule_map_over_input", "lrp.epsilon",
     {"rule_map": [("c1", "Flat")], "input_layer_rule": "WSquare"},
     (FLAT, EPS(1e-7), EPS(1e-7), EPS(1e-7))),
    ("rule_map_over_preset", "lrp.sequential_preset_a",
     {"rule_map": [(L.Conv2D, rules.Z(bias=False))]},
     (Z(False), Z(False), E01, E01)),
    ("lrp_rule_list", "lrp", {"rule": [("c1", "Flat"), ("d2", rules.Epsilon(epsilon=0.2,
                                                                            bias=False))]},
     (FLAT, Z(), Z(), EPS(0.2, False))),
]


@pytest.mark.parametrize("name,kwargs,expected", [p[1:] for p in PLACEMENT],
                         ids=[p[0] for p in PLACEMENT])
def test_rule_placement(name, kwargs, expected, pcnn, float64):
    model, x, net = pcnn
    specs = dict(zip(["c1", "c2", "d1", "d2"], expected))
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    rel = relevance_layers(analyzer)
    for layer, spec in specs.items():
        assert_rule(rel[f"{layer}_relevance"], spec)
    expected_r, _ = net.batch_relevance(x, rules_of(specs), max_start(net.logits(x)))
    _close(analyzer.analyze(x), expected_r)


def test_until_layer_idx_counts_input_layer_only_in_functional_models(float64):
    """Sequential.layers has no InputLayer, so index 1 is its second Dense."""
    seq = keras.Sequential([keras.Input((4,)), L.Dense(3, name="a"), L.Dense(3, name="b"),
                            L.Dense(2, name="c")])
    fun = keras.Model(seq.inputs, seq.outputs)
    assert [la.name for la in fun.layers][1:] == ["a", "b", "c"]
    kw = {"until_layer_idx": 1}
    s = relevance_layers(keras_lrp.create_analyzer("lrp.sequential_preset_b_flat_until_idx", seq,
                                                   **kw))
    f = relevance_layers(keras_lrp.create_analyzer("lrp.sequential_preset_b_flat_until_idx", fun,
                                                   **kw))
    assert [type(s[f"{n}_relevance"]).__name__ for n in "abc"] == ["Flat", "Flat", "Epsilon"]
    assert [type(f[f"{n}_relevance"]).__name__ for n in "abc"] == ["Flat", "Epsilon", "Epsilon"]


MLP_CASES = [
    # id, analyzer, kwargs, {h1, h2, out}
    ("preset_a", "lrp.sequential_preset_a", {}, {"h1": E01, "h2": E01, "out": E01}),
    ("preset_b_flat", "lrp.sequential_preset_b_flat", {}, {"h1": FLAT, "h2": E01, "out": E01}),
    # Zennit's EpsilonGammaBox boxes a first convolution only: a first Dense keeps Epsilon
    ("gamma_box", "lrp.epsilon_gamma_box", {}, {"h1": E6, "h2": E6, "out": E6}),
    ("gamma_box_arrays", "lrp.epsilon_gamma_box",
     {"input_layer_rule": (-np.linspace(1.0, 2.0, 5), np.full(5, 1.5)), "epsilon": 0.3},
     {"h1": BND(-np.linspace(1.0, 2.0, 5), np.full(5, 1.5)), "h2": EPS(0.3), "out": EPS(0.3)}),
    ("deep_taylor", "deep_taylor", {}, {"h1": ZP, "h2": ZP, "out": ZP}),
    ("epsilon_plus", "lrp.epsilon_plus", {}, {"h1": E6, "h2": E6, "out": E6}),
    ("alpha_2_beta_1", "lrp.alpha_2_beta_1", {}, {"h1": A21, "h2": A21, "out": A21}),
]


@pytest.mark.parametrize("name,kwargs,specs", [c[1:] for c in MLP_CASES],
                         ids=[c[0] for c in MLP_CASES])
def test_mlp_end_to_end_against_numpy(name, kwargs, specs, mlp, float64):
    model, x, net = mlp
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    rel = relevance_layers(analyzer)
    for layer, spec in specs.items():
        assert_rule(rel[f"{layer}_relevance"], spec)
    start = max_start(net.logits(x))
    if name.startswith("deep_taylor"):  # iNNvestigate's Deep Taylor explains max(y, 0)
        start = np.maximum(start, 0)
    expected, _ = net.batch_relevance(x, rules_of(specs), start)
    _close(analyzer.analyze(x), expected)


@pytest.mark.parametrize("front", ["flatten", "permute_reshape"])
def test_input_layer_rule_sees_through_reshaping_not_dense(front, float64):
    inp = keras.Input((4, 4), name="x")
    if front == "flatten":
        h = L.Flatten(name="flat")(inp)
    else:
        h = L.Reshape((16,), name="reshape")(L.Permute((2, 1), name="permute")(inp))
    h = L.Dense(3, name="a")(h)  # linear, so b is one affine map away from the input
    model = keras.Model(inp, L.Dense(2, name="b")(h))
    g = np.random.default_rng(7)
    model.set_weights(_init_normal(g, model))
    x = g.uniform(-1, 1, size=(2, 4, 4))
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model, input_layer_rule="WSquare")
    rel = relevance_layers(analyzer)
    assert type(rel["a_relevance"]) is rules.WSquare
    assert_rule(rel["b_relevance"], EPS(1e-7))
    if front == "flatten":
        net = oracle(model)
        expected, _ = net.batch_relevance(x, rules_of({"a": WSQ, "b": EPS(1e-7)}),
                                          max_start(net.logits(x)))
        _close(analyzer.analyze(x), expected)


# ============================================================================ 4. neuron selection
def test_max_activation_explains_the_argmax_logit(mlp_nobias, float64):
    model, x, net = mlp_nobias
    logits = net.logits(x)
    out = keras_lrp.create_analyzer("lrp.z_IB", model).analyze(x)
    _close(per_sample(out), logits.max(axis=1), rtol=1e-10)
    expected, _ = net.batch_relevance(x, rules_of({n: Z(False) for n in kernel_names(net)}),
                                      max_start(logits))
    _close(out, expected)


@pytest.mark.parametrize("selection", [1, np.int64(2), "shifted", np.array([[0], [0], [2]])])
def test_index_selection(selection, mlp_nobias, float64):
    model, x, net = mlp_nobias
    logits = net.logits(x)
    if isinstance(selection, str):  # one index per sample, never the sample's argmax
        selection = [int(i) for i in (np.argmax(logits, axis=1) + 1) % 3]
    idx = np.broadcast_to(np.asarray(selection).reshape(-1), (len(x),))
    analyzer = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode="index")
    out = analyzer.analyze(x, neuron_selection=selection)
    specs = {n: Z(False) for n in kernel_names(net)}
    for n in range(len(x)):  # each sample's chosen logit, explained on its own
        one = np.zeros((1, logits.shape[1]))
        one[0, idx[n]] = logits[n, idx[n]]
        expected, _ = net.batch_relevance(x[n:n + 1], rules_of(specs), one)
        _close(out[n:n + 1], expected)
        assert_close(out[n].sum(), logits[n, idx[n]], rtol=1e-10)
    assert np.any(np.argmax(logits, axis=1) != idx)  # not just the argmax


def test_all_selection_explains_the_sum_of_logits(mlp_nobias, float64):
    model, x, net = mlp_nobias
    logits = net.logits(x)
    out = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode="all").analyze(x)
    _close(per_sample(out), logits.sum(axis=1), rtol=1e-10)
    expected, _ = net.batch_relevance(x, rules_of({n: Z(False) for n in kernel_names(net)}), logits)
    _close(out, expected)


@pytest.mark.parametrize("mode,selection", [("max_activation", None), ("index", [1, 2, 0])])
def test_output_relevance_one_is_logit_result_over_logit(mode, selection, mlp, float64):
    model, x, net = mlp
    logits = net.logits(x)
    kw = {"neuron_selection_mode": mode}
    by_logit = keras_lrp.create_analyzer("lrp.z", model, **kw).analyze(x, selection)
    by_one = keras_lrp.create_analyzer("lrp.z", model, output_relevance="one",
                                       **kw).analyze(x, selection)
    idx = np.argmax(logits, axis=1) if selection is None else np.array(selection)
    explained = logits[np.arange(len(x)), idx]
    _close(by_one, by_logit / explained[:, None])
    start = np.zeros_like(logits)
    start[np.arange(len(x)), idx] = 1.0
    expected, _ = net.batch_relevance(x, rules_of({n: Z() for n in kernel_names(net)}), start)
    _close(by_one, expected)


@pytest.mark.parametrize("selection,match", [
    (None, r"needs analyze\(x, neuron_selection=i\)"),
    (3, r"integer indices in \[0, 3\); got \[3, 3, 3\]"),
    ([0, -1, 2], r"integer indices in \[0, 3\); got \[0, -1, 2\]"),
    ([0, 1], r"2 entries for a batch of 3"),
    ([0, 1, 2, 0], r"4 entries for a batch of 3"),
    ([0.0, 1.0, 2.0], r"integer indices"),
    (1.5, r"integer indices"),
    (True, r"integer indices"),
])
def test_index_selection_errors(selection, match, mlp_nobias):
    model, x, _ = mlp_nobias
    analyzer = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode="index")
    with pytest.raises(ValueError, match=match):
        analyzer.analyze(x, neuron_selection=selection)


@pytest.mark.parametrize("mode", ["max_activation", "all"])
def test_neuron_selection_outside_index_mode_rejected(mode, mlp_nobias):
    model, x, _ = mlp_nobias
    analyzer = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode=mode)
    with pytest.raises(ValueError, match=f"only used with neuron_selection_mode='index'.*{mode}"):
        analyzer.analyze(x, neuron_selection=0)


@pytest.mark.parametrize("which,bad", [("mlp", (3, 6)), ("mlp", (5,)), ("mlp", (3, 5, 1)),
                                       ("cnn", (3, 6, 6)), ("cnn", (3, 6, 5, 1))])
def test_wrong_input_shape_names_the_expected_shape(which, bad, mlp_nobias, cnn):
    model = {"mlp": mlp_nobias, "cnn": cnn}[which][0]
    expected = "('batch', 5)" if which == "mlp" else "('batch', 6, 6, 1)"
    analyzer = keras_lrp.create_analyzer("lrp.z_IB", model)
    with pytest.raises(ValueError) as err:
        analyzer.analyze(np.zeros(bad))
    assert expected in str(err.value) and str(bad) in str(err.value)
    with pytest.raises(ValueError, match=r"has 1 inputs \(x\); got 2 arrays"):
        analyzer.analyze([np.zeros(bad), np.zeros(bad)])


# ============================================================================ 5. layerwise
PCNN_KEYS = ["x", "c1", "c1_activation", "c2", "c2_activation", "pool", "flat", "d1",
             "d1_activation", "d2"]
PCNN_SHAPES = [(6, 6, 1), (4, 4, 2), (4, 4, 2), (4, 4, 3), (4, 4, 3), (2, 2, 3), (12,), (5,),
               (5,), (3,)]


def test_layerwise_keys_shapes_and_values(pcnn, float64):
    model, x, net = pcnn
    specs = {"c1": A10, "c2": A10, "d1": E01, "d2": E01}
    analyzer = keras_lrp.create_analyzer("lrp.sequential_preset_a", model)
    lw = analyzer.analyze(x, layerwise=True)
    assert list(lw) == PCNN_KEYS == analyzer.layer_names
    assert [v.shape for v in lw.values()] == [(len(x),) + s for s in PCNN_SHAPES]
    logits = net.logits(x)
    _close(lw["d2"], max_start(logits), rtol=1e-12)  # the starting relevance
    assert np.count_nonzero(lw["d2"]) == len(x)
    _close(lw["x"], analyzer.analyze(x), rtol=1e-12)
    _, expected = net.batch_relevance(x, rules_of(specs), max_start(logits))
    for key in PCNN_KEYS:
        _close(lw[key], expected[key].reshape(lw[key].shape))


def test_conservation_report(pcnn, float64):
    model, x, net = pcnn
    analyzer = keras_lrp.create_analyzer("lrp.sequential_preset_a", model)
    lw = analyzer.analyze(x, layerwise=True)
    report = analyzer.conservation(x)
    assert list(report.sums) == PCNN_KEYS
    for key in PCNN_KEYS:
        _close(report.sums[key], per_sample(lw[key]), rtol=1e-12)
    explained = net.logits(x).max(axis=1)
    _close(report.explained, explained)
    _close(report.absorbed, explained - per_sample(lw["x"]))
    _close(report.relative_error(), np.abs(report.absorbed) / np.abs(explained))
    text = str(report)
    assert "lrp.sequential_preset_a" in text
    for key in PCNN_KEYS:
        assert key in text


def test_epsilon_absorption_matches_reference(mlp, float64):
    model, x, net = mlp
    logits = net.logits(x)
    specs = {n: EPS(1.0) for n in kernel_names(net)}
    expected, ref_lw = net.batch_relevance(x, rules_of(specs), max_start(logits))
    report = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1.0).conservation(x)
    explained = logits.max(axis=1)
    absorbed = explained - per_sample(expected)
    assert np.all(np.abs(absorbed) > 1e-2 * np.abs(explained))  # ε = 1 absorbs a lot
    _close(report.absorbed, absorbed)
    assert np.array_equal(np.sign(report.absorbed), np.sign(absorbed))
    for key in ["x", "h1", "h1_activation", "h2", "h2_activation", "out"]:
        _close(report.sums[key], per_sample(ref_lw[key]))


def test_layerwise_with_index_selection(mlp, float64):
    model, x, net = mlp
    logits = net.logits(x)
    analyzer = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    lw = analyzer.analyze(x, neuron_selection=[2, 1, 0], layerwise=True)
    assert list(lw) == ["x", "h1", "h1_activation", "h2", "h2_activation", "out"]
    _close(lw["out"], onehot_start(logits, [2, 1, 0]), rtol=1e-12)
    report = analyzer.conservation(x, neuron_selection=[2, 1, 0])
    _close(report.explained, logits[np.arange(3), [2, 1, 0]])


# ============================================================================ 6. IB conservation
def _mlp32():
    inp = keras.Input((8,), name="x")
    h = L.Dense(16, activation="relu", use_bias=False, name="h1")(inp)
    h = L.Dense(12, activation="relu", use_bias=False, name="h2")(h)
    return keras.Model(inp, L.Dense(4, use_bias=False, name="out")(h), name="mlp32")


def _cnn32():
    inp = keras.Input((8, 8, 2), name="x")
    h = L.Conv2D(4, 3, padding="same", activation="relu", use_bias=False, name="c1")(inp)
    h = L.MaxPooling2D(2, name="p1")(h)
    h = L.Conv2D(6, 3, padding="same", activation="relu", use_bias=False, name="c2")(h)
    h = L.MaxPooling2D(2, name="p2")(h)
    h = L.Flatten(name="flat")(h)
    h = L.Dense(8, activation="relu", use_bias=False, name="d1")(h)
    return keras.Model(inp, L.Dense(4, use_bias=False, name="out")(h), name="cnn32")


def _sign_parts_nonempty(net, x, logits, m=1e-4):
    """Precondition for exact conservation (checked in float64 on the float32 weights).

    A rule that splits contributions by sign loses relevance where the part it divides by is
    empty: AlphaBeta(2, 1) where z⁻_j = 0 (β·R_j vanishes), ZPlus where z⁺_j = 0 (e.g. a dead
    ReLU unit that the final WSquare still sends relevance to), ZPlusFast where Σ x w⁺ = 0.
    That is the rules' mathematics, not the engine, so the data avoids it: for every sample, at
    every kernel layer, z⁺_j > m for every unit, z⁻_j < -m and |Σ_i x_i w⁺_ij| > m for every
    unit that can receive relevance from an x-proportional rule (the explained logit, active
    hidden units).
    """
    kernels = net.kernels()
    for n, xn in enumerate(np.asarray(x, np.float64)):
        values = net.forward(xn)
        for name, inp, p in kernels:
            a, W = values[inp], p["W"]
            ap, an, wp, wn = np.maximum(a, 0), np.minimum(a, 0), np.maximum(W, 0), np.minimum(W, 0)
            zp, zn, zf = ap @ wp + an @ wn, ap @ wn + an @ wp, a @ wp
            live = (a @ W > 0) if name != kernels[-1][0] else (np.arange(W.shape[1])
                                                                == np.argmax(logits[n]))
            if zp.min() <= m or np.any(zn[live] >= -m) or np.any(np.abs(zf[live]) <= m):
                return False
    return logits.max(axis=1).min() > 0.1


@pytest.fixture(scope="module")
def nets32():
    """Bias-free ReLU networks in float32 (max pooling only: no Add / average pooling)."""
    out = {}
    with keras_dtype("float32"):
        for key, build, shape, seed in [("mlp", _mlp32, (4, 8), 500),
                                        ("cnn", _cnn32, (4, 8, 8, 2), 600)]:
            model, x, net = _seeded(build, lambda g, m: [g.normal(scale=0.6, size=w.shape)
                                                         for w in m.get_weights()],
                                    lambda g, s=shape: g.uniform(-1, 1, size=s).astype("float32"),
                                    seed0=seed, min_margin=1e-4, check_pool=False,
                                    accept=_sign_parts_nonempty)
            out[key] = (model, x, net.logits(x))  # float64 logits of the float32 weights
    return out


CONSERVING = [
    ("lrp.z_IB", {}), ("lrp.epsilon_IB", {"epsilon": 1e-9}), ("lrp.alpha_1_beta_0_IB", {}),
    ("lrp.alpha_2_beta_1_IB", {}), ("lrp.z_plus", {}), ("lrp.z_plus_fast", {}),
    ("lrp.w_square", {}), ("lrp.flat", {}), ("lrp.gamma", {"bias": False}), ("deep_taylor", {}),
    ("deep_taylor.bounded", {}), ("lrp.epsilon_gamma_box", {"epsilon": 1e-9}),
    ("lrp.z", {}), ("lrp.sequential_preset_a_flat", {"epsilon": 1e-9}),
]


@pytest.mark.parametrize("which", ["mlp", "cnn"])
@pytest.mark.parametrize("name,kwargs", CONSERVING, ids=[c[0] for c in CONSERVING])
def test_ib_rules_conserve_in_float32(name, kwargs, which, nets32):
    model, x, logits = nets32[which]
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    out = analyzer.analyze(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    explained = logits.max(axis=1)
    rel_err = np.abs(per_sample(out) - explained) / np.abs(explained)
    assert np.all(rel_err < 1e-5), rel_err
    report = analyzer.conservation(x)
    assert np.all(report.relative_error() < 1e-5)
    for key, total in report.sums.items():  # every layer, not just the input
        assert np.all(np.abs(total - explained) < 1e-5 * np.abs(explained)), key


# ============================================================================ 7. compiled once
def test_compiled_once_across_batch_sizes(mlp, float64):
    model, _, net = mlp
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=0.01)
    specs = {n: EPS(0.01) for n in kernel_names(net)}
    g = np.random.default_rng(11)
    for batch in (2, 5, 7):
        x = g.uniform(-1, 1, size=(batch, 5))
        expected, lw_ref = net.batch_relevance(x, rules_of(specs), max_start(net.logits(x)))
        _close(analyzer.analyze(x), expected)
        lw = analyzer.analyze(x, layerwise=True)
        assert lw["x"].shape == (batch, 5)
        _close(lw["h2"], lw_ref["h2"])
    assert set(analyzer._functions) == {False, True}
    for flag in (False, True):
        assert _programs(analyzer._functions[flag]) == {"tensorflow": 1, "jax": 2}.get(
            BACKEND, 1), flag  # JAX: one program per bucket, 2 → 2, 5 and 7 → 8


def _programs(function) -> int:
    """How many programs a compiled analysis made: TensorFlow's traces (one, whatever the batch
    size), JAX's compiled buckets, PyTorch's 1 (eager: nothing is compiled)."""
    if BACKEND == "tensorflow":
        return function.experimental_get_tracing_count()
    if BACKEND == "jax":
        return function.jitted._cache_size()
    return 1


def test_gradient_compiled_once(cnn, float64):
    model, x, _ = cnn
    analyzer = keras_lrp.create_analyzer("input_t_gradient", model)
    for batch in (1, 2, 3):
        out = analyzer.analyze(x[:batch])
        _close(out, x[:batch] * _tape_gradient(model, x[:batch]), rtol=1e-10)
    assert list(analyzer._functions) == [False]
    assert _programs(analyzer._functions[False]) == {"jax": 3}.get(BACKEND, 1)  # 1, 2 and 4


# ============================================================================ dtype of the model
def _mlp_explicit_float64():
    """A float64 model built by per-layer dtype while the global policy stays float32."""
    inp = keras.Input((5,), name="x", dtype="float64")
    h = L.Dense(4, activation="relu", name="h", dtype="float64")(inp)
    model = keras.Model(inp, L.Dense(3, name="o", dtype="float64")(h))
    g = np.random.default_rng(21)
    model.set_weights(_init_normal(g, model))
    return model, g.uniform(-1, 1, size=(3, 5))


def test_float64_layers_under_float32_policy_keep_float64():
    """Regression: OutputRelevance took the global dtype policy, so a float64 model under a
    float32 policy started from a float32-rounded logit (1e-7 relative error)."""
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    model, x = _mlp_explicit_float64()
    net = oracle(model)
    analyzer = keras_lrp.create_analyzer("lrp.z_IB", model)
    lw = analyzer.analyze(x, layerwise=True)
    assert lw["o"].dtype == np.float64
    _close(per_sample(lw["x"]), net.logits(x).max(axis=1), rtol=1e-12)


def test_gradient_on_float64_layers_under_float32_policy():
    """Regression: InputGradient / OutputRelevance took the global dtype policy, so the gradient
    analyzer raised a float32/float64 TypeError on this model."""
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    model, x = _mlp_explicit_float64()
    out = keras_lrp.create_analyzer("gradient", model).analyze(x)
    expected = autodiff(lambda xt: ops.sum(ops.max(model(xt), axis=1)), x)[0]
    _close(out, expected, rtol=1e-10)


@pytest.mark.parametrize("kwargs", [{"until_layer_idx": 1}, {"until_layer_rule": "Flat"}])
def test_until_layer_idx_and_rule_go_together(kwargs, cnn):
    with pytest.raises(ValueError, match="until_layer_idx and until_layer_rule go together"):
        keras_lrp.create_analyzer("lrp.z", cnn[0], **kwargs)
