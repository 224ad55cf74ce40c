"""Properties over random networks (hypothesis): no NaN or inf, and exact conservation.

1. **No NaN, no inf**: random small Dense and Conv2D ReLU networks, with and without bias,
   weights with exact zeros, all-zero units, dead units and all-zero layers, inputs with exact
   zeros, all-zero samples, ±1e6 and ±1e-6, analysed with *every* LRP analyzer name (plus
   ``lrp.gamma`` without bias); every relevance must be finite.
2. **Conservation**: on bias-free float64 networks, the conserving rules (``lrp.z_IB``,
   ``lrp.alpha_1_beta_0_IB``, ``lrp.w_square``, ``lrp.flat``, ``lrp.gamma`` with ``bias=False``)
   conserve exactly the relevance that the NumPy oracle (``tests/reference.py``) says they must
   -- see :func:`_reference_lrp` for when relevance is lost.

Hypothesis profiles (``HYPOTHESIS_PROFILE`` environment variable, default ``ci``):

* ``ci``: 25 examples per property, deterministic (``derandomize``), no deadline, over a fixed
  pool of 7 architectures;
* ``dev``: 400 examples per property, random, over that pool plus 30 random architectures
  (about 2 minutes on 2 cores). Run locally with::

      HYPOTHESIS_PROFILE=dev python -m pytest tests/test_properties.py -s

``-s`` shows how many networks, inputs and analyses each property tried.

Why a pool of architectures: building the 28 analyzers of one architecture and tracing their
functions takes 2-3 s, while one more set of weights costs ~1 ms per analyzer. So models and
analyzers are cached per architecture and every example only *sets the weights* of the cached
model and of each analyzer's clone (``helpers.set_weights``; that this equals a fresh build is
checked by ``test_weight_swap_equals_fresh_build``). Weights, dead units and inputs are drawn
freely by hypothesis for every example.
"""
import os

import numpy as np
import pytest
import reference as ref
from helpers import BACKEND, assert_close, build, keras_dtype, set_weights
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import keras_lrp

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "ci")
PROFILE = settings.get_profile(PROFILE_NAME)



# =================================================================== 2. no NaN / no inf
#: (kind, input, layers, [n_out], bias): Dense nets have 1-3 layers (the last gives the
#: logits); conv nets have 1-3 Conv2D(relu) then Flatten and a Dense head.
CURATED_ARCHS = [
    ("dense", 3, (2,), True),                  # a linear model
    ("dense", 4, (1, 3), False),               # a width-1 bottleneck
    ("dense", 5, (4, 3, 2), True),
    ("dense", 2, (3, 4, 1), False),            # a single logit
    ("conv", (4, 4, 1), ((2, 2, "valid"),), 2, True),
    ("conv", (5, 5, 2), ((1, 3, "same"), (3, 2, "valid")), 3, False),
    ("conv", (4, 4, 2), ((2, 2, "same"), (2, 2, "valid"), (1, 2, "valid")), 2, True),
]


def _random_archs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bias = bool(rng.integers(2))
        depth = int(rng.integers(1, 4))
        if i % 2:
            widths = tuple(int(w) for w in rng.integers(1, 6, depth))
            out.append(("dense", int(rng.integers(1, 7)), widths, bias))
        else:
            shape = (int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(1, 3)))
            paddings = [str(rng.choice(["valid", "same"])) for _ in range(depth)]
            while min(shape[:2]) - paddings.count("valid") < 1:  # keep the output non-empty
                paddings[paddings.index("valid")] = "same"
            convs = tuple((int(rng.integers(1, 4)), 2, p) for p in paddings)
            out.append(("conv", shape, convs, int(rng.integers(1, 4)), bias))
    return out


ARCHS = CURATED_ARCHS + (_random_archs(30, seed=0) if PROFILE_NAME == "dev" else [])

#: Every LRP analyzer name (``gradient`` and ``input_t_gradient`` are not LRP), with keywords
#: where the name needs some, plus lrp.gamma without bias.
LRP_ANALYZERS = [(n, {"lrp": {"rule": "Bounded"}, "lrp.alpha_beta": {"alpha": 3},
                      "lrp.sequential_preset_b_flat_until_idx": {"until_layer_idx": 1}}.get(n, {}))
                 for n, e in keras_lrp.ANALYZERS.items() if e.family == "lrp"]
LRP_ANALYZERS.append(("lrp.gamma", {"bias": False}))
#: The rules that conserve relevance on bias-free networks (NumPy reference, contributions).
CONSERVING = {
    "lrp.z_IB": (lambda x, W, b, R, S: ref.z_rule(x, W, b, R, bias=False),
                 lambda x, W, S: ref._contrib(x, W)),
    "lrp.alpha_1_beta_0_IB": (
        lambda x, W, b, R, S: ref.alphabeta_rule(x, W, b, R, 1.0, 0.0, bias=False),
        lambda x, W, S: ref._pos(x)[:, None] * ref._pos(W) + ref._neg(x)[:, None] * ref._neg(W)),
    "lrp.w_square": (lambda x, W, b, R, S: ref.wsquare_rule(x, W, b, R),
                     lambda x, W, S: W ** 2),
    "lrp.flat": (lambda x, W, b, R, S: ref.flat_rule(x, W, b, R, S),
                 lambda x, W, S: np.ones_like(W) if S is None else (S != 0).astype(float)),
    "lrp.gamma": (lambda x, W, b, R, S: ref.gamma_rule(x, W, b, R, 0.25, bias=False),
                  lambda x, W, S: _gamma_contrib(x, W, 0.25)),
}


def _gamma_contrib(x, W, g):
    up = (x @ W) >= 0
    xp, xn = ref._pos(x)[:, None], ref._neg(x)[:, None]
    wp, wn = ref._pos(W), ref._neg(W)
    return np.where(up, xp * (W + g * wp) + xn * (W + g * wn),
                    xp * (W + g * wn) + xn * (W + g * wp))


_MODELS, _ANALYZERS = {}, {}


def cached_model(arch, dtype):
    key = (arch, dtype)
    if key not in _MODELS:
        with keras_dtype(dtype):
            _MODELS[key] = build(arch)
    return _MODELS[key]


def cached_analyzers(arch, dtype, conserving=False):
    """{label: analyzer} for the cached model of ``arch`` (built once per architecture)."""
    key = (arch, dtype, conserving)
    if key not in _ANALYZERS:
        model = cached_model(arch, dtype)
        with keras_dtype(dtype):
            if conserving:
                made = {n: keras_lrp.create_analyzer(n, model, neuron_selection_mode="index",
                                                     **({"bias": False} if n == "lrp.gamma"
                                                        else {}))
                        for n in CONSERVING}
            else:
                made = {f"{n}{kw or ''}": keras_lrp.create_analyzer(n, model, **kw)
                        for n, kw in LRP_ANALYZERS}
        shapes = [w.shape for w in model.get_weights()]
        for analyzer in made.values():
            assert [tuple(w.shape) for w in analyzer.forward_model.weights] == shapes
        _ANALYZERS[key] = made
    return _ANALYZERS[key]


def layer_shapes(arch):
    """(input shape, [weight shapes per kernel layer], number of logits) of an architecture,
    computed without building it (strategies must not build Keras models)."""
    if arch[0] == "dense":
        _, prev, widths, bias = arch
        layers, in_shape = [], (prev,)
        for w in widths:
            layers.append([(prev, w)] + ([(w,)] if bias else []))
            prev = w
        return in_shape, layers, widths[-1]
    _, in_shape, convs, n_out, bias = arch
    (h, w, c), layers = in_shape, []
    for filters, k, padding in convs:
        layers.append([(k, k, c, filters)] + ([(filters,)] if bias else []))
        if padding == "valid":
            h, w = h - k + 1, w - k + 1
        c = filters
    layers.append([(h * w * c, n_out)] + ([(n_out,)] if bias else []))
    return in_shape, layers, n_out


def _mostly(general, special):
    """Three draws in four from ``general``, one from ``special``."""
    return st.one_of(general, general, general, st.sampled_from(special))


def _signed(low, high):
    """±[low, high] (hypothesis's simplest float is 0; exact zeros come from the specials)."""
    return st.builds(lambda m, s: s * m, st.floats(low, high, width=32), st.sampled_from([1, -1]))


#: Input values: ±[1/64, 1], or exactly 0, ±1e6, ±1e-6, ±1.
FINITE_ELEMENTS = _mostly(_signed(0.015625, 1), [0.0, 1e6, -1e6, 1e-6, -1e-6, 1.0, -1.0])
#: Weights: ±[1/64, 2], or exactly 0, ±1, ±1e-6.
WEIGHT_ELEMENTS = _mostly(_signed(0.015625, 2), [0.0, 1.0, -1.0, 1e-6, -1e-6])
#: What to do to each kernel layer's drawn weights, and to the drawn batch (as_drawn first:
#: hypothesis shrinks towards it; it is also drawn more often, so that not too many networks
#: are dead from the start).
LAYER_MODES = ["as_drawn", "zero_unit", "dead_unit", "zero_kernel"]
INPUT_MODES = ["as_drawn", "zero_sample", "huge", "tiny", "all_zero"]
BATCH = 3


@st.composite
def examples(draw, dtype, bias_free=False):
    """(arch, weights, x, neuron, modes): one network and one batch of inputs."""
    arch = draw(st.sampled_from([a for a in ARCHS if not (bias_free and a[-1])]))
    in_shape, layers, n_out = layer_shapes(arch)
    weights, modes = [], []
    for shapes in layers:
        w = [draw(hnp.arrays(dtype, shape, elements=WEIGHT_ELEMENTS, fill=st.nothing()))
             for shape in shapes]
        mode = draw(st.one_of(st.just("as_drawn"), st.just("as_drawn"),
                              st.sampled_from(LAYER_MODES)))  # 3/4 as drawn
        unit = draw(st.integers(0, w[0].shape[-1] - 1))
        if mode == "zero_unit":  # z_j = 0 exactly (0/0 for Z; zero denominators elsewhere)
            w[0][..., unit] = 0
            if len(w) > 1:
                w[1][unit] = 0
        elif mode == "dead_unit":  # z_j < 0 for every input >= 0: a dead ReLU
            w[0][..., unit] = -np.abs(w[0][..., unit])
            if len(w) > 1:
                w[1][unit] = -np.abs(w[1][unit]) - 1
        elif mode == "zero_kernel":
            w[0][...] = 0
        weights += w
        modes.append(mode)
    x = draw(hnp.arrays(dtype, (BATCH,) + in_shape, elements=FINITE_ELEMENTS, fill=st.nothing()))
    x_mode = draw(st.one_of(st.just("as_drawn"), st.sampled_from(INPUT_MODES)))
    if x_mode == "zero_sample":
        x[0] = 0
    elif x_mode == "huge":
        x = np.clip(x * np.asarray(1e6, dtype), -1e6, 1e6).astype(dtype)
    elif x_mode == "tiny":
        x = (x * np.asarray(1e-6, dtype)).astype(dtype)
    elif x_mode == "all_zero":
        x[...] = 0
    neuron = draw(st.integers(0, n_out - 1))
    return arch, weights, x, neuron, modes + [x_mode]


COUNTS = {}


def _count(key, **amounts):
    row = COUNTS.setdefault(key, {})
    for k, v in amounts.items():
        row[k] = row.get(k, 0) + v


def test_weight_swap_equals_fresh_build():
    """The property tests' shortcut (new weights into a cached analyzer) equals a fresh build."""
    arch = CURATED_ARCHS[-1]
    model = cached_model(arch, "float32")
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    x = rng.normal(size=(4,) + model.input_shape[1:]).astype("float32")
    fresh_model = build(arch)
    fresh_model.set_weights(weights)
    for label, analyzer in list(cached_analyzers(arch, "float32").items())[:6]:
        set_weights(analyzer, weights)
        config = analyzer.get_config()
        fresh = keras_lrp.create_analyzer(config["name"], fresh_model, **config["kwargs"])
        np.testing.assert_array_equal(analyzer.analyze(x), fresh.analyze(x), err_msg=label)


@settings(PROFILE)
@given(examples("float32"))
def _finite_property(example):
    arch, weights, x, _, modes = example
    cached_model(arch, "float32").set_weights(weights)
    analyzers = cached_analyzers(arch, "float32")
    for label, analyzer in analyzers.items():
        set_weights(analyzer, weights)
        relevance = analyzer.analyze(x)
        assert relevance.shape == x.shape and relevance.dtype == np.float32
        bad = ~np.isfinite(relevance)
        assert not bad.any(), (f"{label} on {arch} (modes {modes}): {int(bad.sum())} non-finite "
                               f"relevances, first at {np.argwhere(bad)[0].tolist()}")
    _count("float32, every LRP analyzer", networks=1, inputs=len(x), analyses=len(analyzers),
           **{f"arch {ARCHS.index(arch)}": 1})


def test_property_relevance_is_always_finite():
    _finite_property()
    row = COUNTS.get("float32, every LRP analyzer", {})
    print(f"\n[hypothesis/{PROFILE_NAME}] finite: {row.get('networks', 0)} networks, "
          f"{row.get('inputs', 0)} inputs, {row.get('analyses', 0)} analyses over "
          f"{len(LRP_ANALYZERS)} analyzers; architectures used: "
          f"{sum(1 for k in row if k.startswith('arch'))} of {len(ARCHS)}")
    assert row.get("networks", 0) >= min(PROFILE.max_examples, 10)


def _oracle(arch, weights):
    """The NumPy oracle (``reference.Net``) of the architecture with these weights."""
    model = cached_model(arch, "float64")
    model.set_weights(weights)
    return ref.Net.from_keras(model)


def _reference_lrp(net, x, neuron, rule):
    """NumPy float64 LRP of one sample through a bias-free ReLU net (the oracle ``net``) with
    one rule everywhere.

    Returns ``(R_input, logit, lost, flow)``:

    * ``lost``: relevance that the rule must drop: at every kernel layer, the sum of R_j over
      the output units j whose *unstabilised* denominator d_j = Σ_i C_ij is exactly 0. For the
      five conserving rules all C_ij are then 0 as well (they are ≥ 0 for alpha_1_beta_0, w²,
      flat; for Z, the ratio is defined as 0; for γ without bias d_j = 0 forces every x_i w_ij
      to 0), so R_j reaches no input. Every other unit passes exactly R_j down
      (Σ_i C_ij / d_j · R_j = R_j). On bias-free ReLU nets this can only happen for
      ``lrp.alpha_1_beta_0_IB`` when the explained logit is < 0 with no positive contribution,
      and for ``lrp.w_square`` at a unit whose incoming weights are all 0 (w² gives relevance
      to dead units too); Z, flat and γ always conserve (a unit with z_j = 0 is dead, so
      R_j = 0 for Z and γ; flat's denominators are counts ≥ 1).
    * ``flow``: Σ over layers of Σ_ij |C_ij / d_j · R_j|, the scale of the round-off in the
      sums (ill-conditioned denominators make it large, and the tolerance with it).
    """
    propagate, contrib = CONSERVING[rule]
    logits = net.logits(np.asarray(x)[None])[0]
    start = np.zeros_like(logits)
    start[neuron] = logit = logits[neuron]
    totals = {"lost": 0.0, "flow": 0.0}

    def observe(name, a, W, S, R):
        C = contrib(a, W, S)
        d = C.sum(axis=0)
        totals["lost"] += float(R[d == 0].sum())
        live = d != 0
        totals["flow"] += float(np.abs(C[:, live] / d[live] * R[live]).sum())

    _, R = net.relevance(x, propagate, start=start, on_kernel=observe)
    return R[net.input_name], logit, totals["lost"], totals["flow"]


@settings(PROFILE)
@given(examples("float64", bias_free=True))
def _conservation_property(example):
    arch, weights, x, neuron, modes = example
    analyzers = cached_analyzers(arch, "float64", conserving=True)
    net = _oracle(arch, weights)
    for rule, analyzer in analyzers.items():
        set_weights(analyzer, weights)
        relevance = analyzer.analyze(x, neuron_selection=neuron)
        assert relevance.dtype == np.float64 and np.isfinite(relevance).all(), (rule, arch)
        for i in range(len(x)):
            expected, logit, lost, flow = _reference_lrp(net, x[i], neuron, rule)
            size = flow + abs(logit)
            tol = 1e-9 * size + 1e-280
            label = f"{rule} on {arch}, sample {i} (modes {modes}): "
            # the reference itself conserves all but the lost relevance ...
            assert abs(expected.sum() - (logit - lost)) <= tol, label + "reference"
            # ... and so does keras-lrp, value by value
            got = relevance[i].reshape(-1)
            assert_close(got.sum(), logit - lost, rtol=0.0, atol=tol, scale=size,
                         err_msg=label + f"sum != logit {logit!r} - lost {lost!r}")
            assert_close(got, expected, rtol=1e-7, atol=tol, scale=size, err_msg=label)
            _count("float64 conservation", checks=1, exact=int(lost == 0),
                   lost=int(lost != 0), zero_logit=int(logit == 0))
    _count("float64 conservation", networks=1, inputs=len(x))


@pytest.mark.skipif(BACKEND == "torch", reason="Keras computes float64 matmul in float32 on "
                    "PyTorch (its result dtype is float32), so no float64 conservation exists")
def test_property_conserving_rules_conserve_in_float64():
    _conservation_property()
    row = COUNTS.get("float64 conservation", {})
    print(f"\n[hypothesis/{PROFILE_NAME}] conservation (float64, bias-free): "
          f"{row.get('networks', 0)} networks, {row.get('inputs', 0)} inputs, "
          f"{row.get('checks', 0)} checks over {len(CONSERVING)} rules: "
          f"{row.get('exact', 0)} with nothing to lose, {row.get('lost', 0)} where the reference "
          f"drops relevance at a zero denominator, {row.get('zero_logit', 0)} with logit 0")
    assert row.get("networks", 0) >= min(PROFILE.max_examples, 10)

