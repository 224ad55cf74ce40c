"""keras-lrp against iNNvestigate 2.1.2's own numbers, on the same weights and inputs.

``tests/data/innvestigate/*.npz`` were made by ``tools/make_innvestigate_reference.py`` (run in
its own environment with TensorFlow 2.14; CI never installs iNNvestigate) on the networks of
``tests/anchor_nets.py``, with and without biases, for every analyzer name both libraries share
and both neuron selection modes. iNNvestigate computes in float32 in graph mode, so the
tolerance is rtol 1e-2 with an absolute floor of 2e-3 of the largest value (entries far below
the scale are dominated by float32 cancellation in either library).

Where keras-lrp differs on purpose, the test asserts that the difference is exactly the
documented one. AlphaBeta with bias (``lrp.alpha_2_beta_1``, ``lrp.alpha_1_beta_0`` and the
presets' convolutions): iNNvestigate puts the whole bias into both denominators, keras-lrp b⁺
into the activator's and b⁻ into the inhibitor's (README, "AlphaBeta and the bias"). There,
iNNvestigate's numbers must equal the NumPy oracle run with iNNvestigate's formula
(``reference.alphabeta_innvestigate_rule``), and keras-lrp's the oracle with keras-lrp's.

BatchNormalization (``cnn_bn``, LRP names): iNNvestigate does not fold the layer into the
convolution. It applies the analyzer's rule to a surrogate diagonal layer whose kernel is
γ/√(var² + ε) and whose bias is β − μ/√(var² + ε): the variance is squared and γ is missing from
the mean term (``backend.graph.apply_mapping_to_fused_bn_layer``), and the sequential presets use
``AlphaBetaX2m100Rule`` there. keras-lrp folds the true affine map into the convolution. Both are
asserted: iNNvestigate's numbers equal the oracle with iNNvestigate's surrogate, keras-lrp's the
oracle with the layer folded (README, "BatchNormalization").
"""
import functools
import pathlib

import anchor_nets
import keras
import numpy as np
import pytest
import reference as ref

import keras_lrp

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "innvestigate"
KWARGS = {"deep_taylor.bounded": {"low": -1.0, "high": 1.0}, "integrated_gradients": {"steps": 16},
          "smoothgrad": {"augment_by_n": 256}}
EPS01 = functools.partial(lambda x, W, b, R, S: ref.epsilon_rule(x, W, b, R, 0.1))
FLAT = functools.partial(lambda x, W, b, R, S: ref.flat_rule(x, W, b, R, structure=S))


def _ab(rule, alpha, beta):
    return lambda x, W, b, R, S: rule(x, W, b, R, alpha, beta)


#: analyzer → (alpha, beta, dense rule or None (AlphaBeta too), first-layer rule or None): the
#: analyzers with AlphaBeta *with* bias on some layer, where the documented difference applies.
ALPHA_BETA = {
    "lrp.alpha_2_beta_1": (2.0, 1.0, None, None), "lrp.alpha_1_beta_0": (1.0, 0.0, None, None),
    "lrp.sequential_preset_a": (1.0, 0.0, EPS01, None),
    "lrp.sequential_preset_b": (2.0, 1.0, EPS01, None),
    "lrp.sequential_preset_a_flat": (1.0, 0.0, EPS01, FLAT),
    "lrp.sequential_preset_b_flat": (2.0, 1.0, EPS01, FLAT),
}


def _rule(fn, *args, **kwargs):
    return lambda x, W, b, R, S: fn(x, W, b, R, *args, **kwargs)


#: LRP analyzer → its rule on (the first convolution, BatchNormalization, Dense), in iNNvestigate;
#: ``"AB"`` is AlphaBeta with bias, iNNvestigate's or keras-lrp's formula (see above).
BN_RULES = {
    "lrp.z": (_rule(ref.z_rule),) * 3,
    "lrp.epsilon": (_rule(ref.epsilon_rule),) * 3,
    "lrp.w_square": (_rule(ref.wsquare_rule),) * 3,
    "lrp.flat": (FLAT,) * 3,
    "lrp.alpha_2_beta_1": (("AB", 2.0, 1.0),) * 3,
    "lrp.alpha_1_beta_0": (("AB", 1.0, 0.0),) * 3,
    "lrp.alpha_2_beta_1_IB": (_rule(ref.alphabeta_rule, 2.0, 1.0, bias=False),) * 3,
    "lrp.alpha_1_beta_0_IB": (_rule(ref.alphabeta_rule, 1.0, 0.0, bias=False),) * 3,
    "lrp.z_plus": (_rule(ref.zplus_rule),) * 3,
    "lrp.z_plus_fast": (_rule(ref.zplusfast_rule),) * 3,
    "lrp.sequential_preset_a": (("AB", 1.0, 0.0), _rule(ref.alphabeta_x_innvestigate_rule), EPS01),
    "lrp.sequential_preset_b": (("AB", 2.0, 1.0), _rule(ref.alphabeta_x_innvestigate_rule), EPS01),
    "lrp.sequential_preset_a_flat": (FLAT, _rule(ref.alphabeta_x_innvestigate_rule), EPS01),
    "lrp.sequential_preset_b_flat": (FLAT, _rule(ref.alphabeta_x_innvestigate_rule), EPS01),
}


def _bn_oracle(model, x, data, mode, analyzer, innvestigate):
    """The oracle on ``cnn_bn``: iNNvestigate's way (BatchNormalization a layer of its own, seen
    through the surrogate) or keras-lrp's (folded into the convolution)."""
    net = ref.Net.from_keras(model, fold_bn=not innvestigate, innvestigate_bn=innvestigate)
    ab = ref.alphabeta_innvestigate_rule if innvestigate else ref.alphabeta_rule
    rules = {}
    for layer, rule in zip(("c1", "bn", "out"), BN_RULES[analyzer]):
        rules[layer] = _rule(ab, *rule[1:]) if isinstance(rule, tuple) else rule
    return net.batch_relevance(x, rules, _start(model, x, data, mode))[0]


def _oracle_rules(model, analyzer, ab_rule):
    """{kernel layer: rule} of ``analyzer`` on ``model``, AlphaBeta by ``ab_rule``."""
    alpha, beta, dense, first = ALPHA_BETA[analyzer]
    kernels = [layer for layer in model.layers if layer.get_weights()]
    rules = {}
    for k, layer in enumerate(kernels):
        conv = isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D))
        if k == 0 and first is not None and conv:
            rules[layer.name] = first
        elif conv or dense is None:
            rules[layer.name] = _ab(ab_rule, alpha, beta)
        else:
            rules[layer.name] = dense
    return rules


#: The default (fast) selection: every analyzer on the networks whose cases exercise a
#: documented difference or a structure (BatchNormalization, a residual sum, a dense chain with
#: the noisy analyzers), every network with one analyzer per rule family, and the ``index``
#: mode on one network. The full product (1,030 cases) runs with ``-m slow``.
FAST_STEMS = ("cnn_bn", "residual_nobias", "mlp")
FAST_ANALYZERS = ("lrp.epsilon", "lrp.alpha_2_beta_1", "gradient")


def _fast(stem: str, analyzer: str, mode: str) -> bool:
    if mode == "index":
        return stem == "conv2d"
    return stem in FAST_STEMS or analyzer in FAST_ANALYZERS


def _cases():
    return anchor_nets.anchor_cases(DATA, _fast)


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(stem):
        if stem not in cache:
            data = dict(np.load(DATA / f"{stem}.npz"))
            name, bias = stem.removesuffix("_nobias"), not stem.endswith("_nobias")
            model = anchor_nets.build(name, keras, bias)
            model.set_weights([data[f"w{k}"] for k in range(len(model.get_weights()))])
            cache[stem] = (model, data)
        return cache[stem]
    return get


def _start(model, x, data, mode):
    logits = ref.Net.from_keras(model).logits(x)
    k = data["index"] if mode == "index" else logits.argmax(axis=1)
    start = np.zeros_like(logits)
    start[np.arange(len(x)), k] = logits[np.arange(len(x)), k]
    return start


def _noisy(model, data, analyzer, mode, expected):
    """``random``: x + N(0, 1) in both (mean and standard deviation of R − x agree within 5
    standard errors). ``smoothgrad`` (256 noisy copies, noise of standard deviation 1, which is
    what iNNvestigate uses whatever its noise_scale): the means agree within 5 standard errors
    of their difference, estimated from 8 seeds of keras-lrp's."""
    x = data["x"]
    sel = data["index"] if mode == "index" else None
    if analyzer == "random":
        n = x.size
        for r in (expected, keras_lrp.create_analyzer("random", model, seed=0,
                                                      neuron_selection_mode=mode).analyze(
                x, neuron_selection=sel)):
            noise = r - x
            assert abs(noise.mean()) < 5 / np.sqrt(n) and abs(noise.std() - 1) < 5 / np.sqrt(2 * n)
        return
    runs = np.stack([keras_lrp.create_analyzer(
        "smoothgrad", model, augment_by_n=256, seed=seed, neuron_selection_mode=mode).analyze(
        x, neuron_selection=sel) for seed in range(8)])
    ours, spread = runs.mean(axis=0), runs.std(axis=0, ddof=1)
    tol = 5 * np.sqrt(2) * spread + 2e-3 * float(np.abs(expected).max())
    assert np.all(np.abs(ours - expected) <= tol), np.abs(ours - expected).max()


@pytest.mark.parametrize("stem, analyzer, mode", list(_cases()))
def test_matches_innvestigate(loaded, stem, analyzer, mode):
    model, data = loaded(stem)
    x, expected = data["x"], data[f"{analyzer}|{mode}"]
    if analyzer == "random" or (analyzer == "smoothgrad" and stem.startswith("mlp")):
        _noisy(model, data, analyzer, mode, expected)
        return
    a = keras_lrp.create_analyzer(analyzer, model, neuron_selection_mode=mode,
                                  **KWARGS.get(analyzer, {}))
    got = a.analyze(x, neuron_selection=data["index"] if mode == "index" else None)
    atol = 2e-3 * float(np.abs(expected).max())
    if stem.startswith("cnn_bn") and analyzer in BN_RULES:
        theirs = _bn_oracle(model, x, data, mode, analyzer, innvestigate=True)
        ours = _bn_oracle(model, x, data, mode, analyzer, innvestigate=False)
        np.testing.assert_allclose(expected, theirs, rtol=1e-2, atol=atol)
        np.testing.assert_allclose(got, ours, rtol=1e-4, atol=1e-5 * float(np.abs(ours).max()))
        return
    biased = not stem.endswith("_nobias") and analyzer in ALPHA_BETA
    if biased and any(r not in (EPS01, FLAT) for r in _oracle_rules(
            model, analyzer, ref.alphabeta_rule).values()):  # some layer gets AlphaBeta
        net = ref.Net.from_keras(model)
        start = _start(model, x, data, mode)
        theirs = net.batch_relevance(x, _oracle_rules(model, analyzer,
                                                      ref.alphabeta_innvestigate_rule), start)[0]
        ours = net.batch_relevance(x, _oracle_rules(model, analyzer, ref.alphabeta_rule),
                                   start)[0]
        np.testing.assert_allclose(expected, theirs, rtol=1e-2, atol=atol)  # iNNvestigate's rule
        np.testing.assert_allclose(got, ours, rtol=1e-5, atol=1e-6 * float(np.abs(ours).max()))
        return
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=atol)
