"""Canonicalisation: the user's model is never touched, and every rewrite (softmax stripped,
fused activations split, BatchNorm folded, separable convolutions split, nested models inlined,
shared layers kept shared) leaves the function and the relevance what they should be.

References are composed in NumPy with the oracle ``reference.Net`` (explicit matrices from
tests/reference.py); see test_networks.py for the tolerance argument (float64, rtol 1e-8,
atol 1e-10, data checked for well-conditioned denominators and tie-free max pooling). Two
canonicalised forms of the same network (fused vs. split activation, nested vs. flat, the three
softmax forms) run the same arithmetic, so they are compared at rtol 1e-12. Folding BatchNorm
changes the rounding of the forward pass by a few ulps only: allclose(rtol=1e-12) in float64.
"""

import keras
import numpy as np
import pytest
import reference as ref
from helpers import assert_close
from test_networks import RULES

import keras_lrp

L = keras.layers
RTOL, ATOL = 1e-8, 1e-10
SAME = dict(rtol=1e-12, atol=1e-14)  # two forms of one network: same arithmetic


def _rng(seed):
    return np.random.default_rng(seed)


def _signed(g, n, low=0.1, high=0.5):
    return g.uniform(low, high, size=n) * g.choice([-1.0, 1.0], size=n)


def _randomize(model, g):
    """Normal kernels, non-zero signed biases, hand-set BatchNorm statistics (in place)."""
    for layer in _all_layers(model):
        if isinstance(layer, L.BatchNormalization):
            shapes = [tuple(w.shape) for w in layer.get_weights()]
            n = shapes[0][0]
            weights = []
            if layer.scale:
                weights.append(_signed(g, n, 0.5, 1.5))
            if layer.center:
                weights.append(g.normal(size=n) * 0.5)
            weights += [g.normal(size=n) * 0.5, g.uniform(0.5, 2.0, size=n)]
            layer.set_weights(weights)
        elif layer.weights and not isinstance(layer, keras.Model):
            layer.set_weights([g.normal(size=tuple(w.shape)) if "bias" not in w.path
                               else _signed(g, int(np.prod(w.shape))).reshape(tuple(w.shape))
                               for w in layer.weights])


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _np(a):
    return np.asarray(keras.ops.convert_to_numpy(a), np.float64)


# ============================================================== (a) the model is never changed
def _snapshot(model, x):
    return dict(
        weights=[np.array(w.numpy(), copy=True) for w in model.weights],
        paths=[w.path for w in model.weights],
        preds=np.array(model(x, training=False), copy=True),
        layer_ids=[id(layer) for layer in model.layers],
        activations=[getattr(layer, "activation", None) for layer in model.layers],
        activation_names=[getattr(getattr(layer, "activation", None), "__name__", None)
                          for layer in model.layers],
        configs=[layer.get_config() for layer in model.layers],
        outputs=[tuple(t.shape) for t in model.outputs],
    )


def _assert_unchanged(model, x, before):
    after = _snapshot(model, x)
    assert after["paths"] == before["paths"]
    assert len(after["weights"]) == len(before["weights"])
    for path, a, b in zip(before["paths"], before["weights"], after["weights"]):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"weight {path} changed"
    assert np.array_equal(after["preds"], before["preds"]), "predictions changed"
    assert after["layer_ids"] == before["layer_ids"], "layer count or layer objects changed"
    assert all(a is b for a, b in zip(after["activations"], before["activations"]))
    assert after["activation_names"] == before["activation_names"]
    assert after["configs"] == before["configs"]
    assert after["outputs"] == before["outputs"]


def _busy_model():
    """Fused activations, a foldable BatchNorm, a separable conv and a final softmax."""
    i = keras.Input((6, 6, 2), name="x")
    h = L.Conv2D(3, 3, padding="same", activation="relu", name="c1")(i)
    h = L.BatchNormalization(name="bn")(h)
    h = L.MaxPooling2D(2, name="mp")(h)
    h = L.SeparableConv2D(4, 2, activation="relu", name="sep")(h)
    h = L.Flatten(name="flat")(h)
    o = L.Dense(3, activation="softmax", name="out")(h)
    return keras.Model(i, o)


def test_user_model_never_changed(float64):
    model = _busy_model()
    _randomize(model, _rng(0))
    x = _rng(1).normal(size=(2, 6, 6, 2))
    before = _snapshot(model, x)
    for name, kwargs in [("lrp.z", {}), ("lrp.epsilon", {"epsilon": 0.01}),
                         ("lrp.alpha_2_beta_1", {}), ("lrp.gamma", {}), ("gradient", {})]:
        analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
        analyzer.analyze(x)
        analyzer.analyze(x, layerwise=True)
        if name != "gradient":
            analyzer.conservation(x)
        _assert_unchanged(model, x, before)
    # the analyzer runs on its own clones
    assert not {id(layer) for layer in analyzer.relevance_model.layers} & set(
        before["layer_ids"])
    # a failed analyze call leaves the model alone too
    analyzer = keras_lrp.create_analyzer("lrp.z", model)
    with pytest.raises(ValueError, match="expects arrays of shape"):
        analyzer.analyze(np.zeros((2, 5, 6, 2)))
    with pytest.raises(ValueError, match="inputs"):
        analyzer.analyze([x, x])
    _assert_unchanged(model, x, before)
    # ... and the analyzer still works after the failure
    np.testing.assert_array_equal(analyzer.analyze(x), keras_lrp.create_analyzer(
        "lrp.z", model).analyze(x))


# ============================================================== (b) softmax stripped
def _softmax_model(form, weights):
    i = keras.Input((4,), name="x")
    h = L.Dense(5, activation="relu", name="h")(i)
    if form == "fused":
        o = L.Dense(3, activation="softmax", name="logits")(h)
    else:
        z = L.Dense(3, name="logits")(h)
        o = (L.Softmax(name="sm") if form == "layer" else L.Activation("softmax", name="sm"))(z)
    model = keras.Model(i, o)
    for name, w in weights.items():
        model.get_layer(name).set_weights(w)
    return model


def test_softmax_stripped_in_all_three_forms(float64):
    g = _rng(2)
    weights = {"h": [g.normal(size=(4, 5)), _signed(g, 5)],
               "logits": [g.normal(size=(5, 3)), _signed(g, 3)]}
    x = g.normal(size=(3, 4))
    (W1, b1), (W2, b2) = weights["h"], weights["logits"]
    logits = np.maximum(x @ W1 + b1, 0) @ W2 + b2  # by hand
    results = {}
    for form in ("fused", "layer", "activation"):
        model = _softmax_model(form, weights)
        probs = _np(model(x))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)  # really a softmax
        for name, kwargs in [("lrp.z", {}), ("lrp.epsilon", {"epsilon": 0.01})]:
            analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
            assert_close(_np(analyzer.forward_model(x)), logits, rtol=1e-12, atol=1e-13)
            layerwise = analyzer.analyze(x, layerwise=True)
            assert set(layerwise) == {"x", "h", "h_activation", "logits"}, form
            # the relevance entering the network is the max pre-softmax logit
            assert_close(layerwise["logits"].sum(axis=1), logits.max(axis=1), rtol=1e-12)
            results[form, name] = analyzer.analyze(x)
    for name in ("lrp.z", "lrp.epsilon"):
        np.testing.assert_allclose(results["layer", name], results["fused", name], **SAME)
        np.testing.assert_allclose(results["activation", name], results["fused", name], **SAME)


@pytest.mark.parametrize("form", ["fused", "layer", "activation"])
def test_softmax_inside_the_network_takes_attnlrps_rule(float64, form):
    """A softmax inside the network is not element-wise, and not passed through: it takes
    AttnLRP's softmax rule, R_z = z ⊙ (R_A − A Σ R_A) (input × gradient with upstream R/A),
    checked here against NumPy with the Z rule on both Dense layers."""
    i = keras.Input((4,), name="x")
    if form == "fused":
        h = L.Dense(3, activation="softmax", name="inner")(i)
    else:
        h = L.Dense(3, name="inner")(i)
        h = (L.Softmax(name="sm") if form == "layer" else L.Activation("softmax", name="sm"))(h)
    model = keras.Model(i, L.Dense(2, name="out")(h))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape) for w in model.weights])
    x = rng.normal(size=(3, 4))
    got = keras_lrp.create_analyzer("lrp.z", model).analyze(x)
    W1, b1 = model.get_layer("inner").get_weights()
    W2, b2 = model.get_layer("out").get_weights()
    for n in range(3):
        z = x[n] @ W1 + b1
        A = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        logits = A @ W2 + b2
        R = np.zeros(2)
        R[logits.argmax()] = logits.max()
        R_A = ref.z_rule(A, W2, b2, R)
        R_z = z * (R_A - A * R_A.sum())
        assert_close(got[n], ref.z_rule(x[n], W1, b1, R_z), rtol=1e-9)


# ============================================================== (c) fused activations split
def _conv_model(form, weights):
    i = keras.Input((5, 5, 2), name="x")
    if form == "fused":
        h = L.Conv2D(3, 3, activation="relu", name="c")(i)
    else:
        h = L.Conv2D(3, 3, name="c")(i)
        h = (L.ReLU(name="act") if form == "relu_layer" else L.Activation("relu", name="act"))(h)
    model = keras.Model(i, L.Dense(2, name="out")(L.Flatten(name="flat")(h)))
    for name, w in weights.items():
        model.get_layer(name).set_weights(w)
    return model


@pytest.mark.parametrize("rule_name", ["lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.gamma"])
def test_fused_activation_equals_separate_layer(float64, rule_name):
    g = _rng(3)
    weights = {"c": [g.normal(size=(3, 3, 2, 3)), _signed(g, 3)],
               "out": [g.normal(size=(27, 2)), _signed(g, 2)]}
    x = g.normal(size=(2, 5, 5, 2))
    kwargs = RULES[rule_name][0]
    got = {}
    for form in ("fused", "relu_layer", "activation_layer"):
        analyzer = keras_lrp.create_analyzer(rule_name, _conv_model(form, weights), **kwargs)
        got[form] = analyzer.analyze(x, layerwise=True)
    assert "c_activation" in got["fused"] and "act" in got["relu_layer"]
    for form in ("relu_layer", "activation_layer"):
        np.testing.assert_allclose(got[form]["x"], got["fused"]["x"], **SAME)
        np.testing.assert_allclose(got[form]["act"], got["fused"]["c_activation"], **SAME)
        np.testing.assert_allclose(got[form]["c"], got["fused"]["c"], **SAME)
    # and the conv's relevance is that of the pre-activation output: check against NumPy
    model = _conv_model("fused", weights)
    net = ref.Net("x")
    h, _ = net.conv(model.get_layer("c"), "x", (5, 5, 2), relu=True)
    net.dense(model.get_layer("out"), net.add("flat", "flatten", [h]))
    for n in range(len(x)):
        _, expected = net.relevance(x[n], RULES[rule_name][1], check=True)
        assert_close(got["fused"]["x"][n].reshape(-1), expected["x"], rtol=RTOL, atol=ATOL)


# ============================================================== (d) BatchNorm folding
def _bn_model(kind):
    """(model, input shape): kernel layer 'k' → BatchNorm 'bn' → ReLU → (Flatten) → Dense."""
    shape = (4,) if kind.startswith("dense") else (5, 5, 2)
    i = keras.Input(shape, name="x")
    if kind == "dense":
        h = L.Dense(5, name="k")(i)
    elif kind == "dense_no_bias":
        h = L.Dense(5, use_bias=False, name="k")(i)
    elif kind == "dense_bn_no_center_scale":
        h = L.Dense(5, name="k")(i)
    elif kind == "conv2d":
        h = L.Conv2D(3, 3, padding="same", name="k")(i)
    elif kind == "depthwise":
        h = L.DepthwiseConv2D(3, depth_multiplier=2, name="k")(i)
    bn = (L.BatchNormalization(center=False, scale=False, name="bn")
          if kind == "dense_bn_no_center_scale" else L.BatchNormalization(name="bn"))
    h = L.ReLU(name="relu")(bn(h))
    if len(shape) > 1:
        h = L.Flatten(name="flat")(h)
    return keras.Model(i, L.Dense(2, name="out")(h)), shape


def _bn_scale_shift(bn):
    weights = bn.get_weights()
    gamma = weights.pop(0) if bn.scale else 1.0
    beta = weights.pop(0) if bn.center else 0.0
    mean, var = weights
    s = gamma / np.sqrt(var + bn.epsilon)
    return s, beta - mean * s


BN_KINDS = ["dense", "dense_no_bias", "dense_bn_no_center_scale", "conv2d", "depthwise"]


@pytest.mark.parametrize("kind", BN_KINDS)
def test_batchnorm_folded(float64, kind):
    model, shape = _bn_model(kind)
    _randomize(model, _rng(4))
    x = _rng(5).normal(size=(2,) + shape)
    analyzer = keras_lrp.create_analyzer("lrp.z", model)
    assert_close(_np(analyzer.forward_model(x)), _np(model(x)), rtol=1e-12, atol=1e-13)
    for m in (analyzer.relevance_model, analyzer.forward_model):
        names = [layer.name for layer in m.layers]
        assert not [n for n in names if n.startswith("bn")], names
    assert "bn" not in analyzer.layer_names
    # the relevance is LRP on the explicitly folded layer: W' = W·s, b' = (b − μ)·s + β
    k, bn = model.get_layer("k"), model.get_layer("bn")
    s, t = _bn_scale_shift(bn)
    weights = k.get_weights()
    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else 0.0
    net = ref.Net("x")
    if kind.startswith("dense"):
        net.add("k", "kernel", ["x"], W=kernel * s, b=bias * s + t, S=np.ones_like(kernel))
        h = net.add("relu", "relu", ["k"])
    else:
        if kind == "depthwise":  # output channel c·mult + m gets s[c·mult + m]
            cin, mult = kernel.shape[-2:]
            W, out_shape = ref.depthwise_conv2d_matrix(kernel * s.reshape(cin, mult), shape)
        else:
            W, out_shape = ref.conv_matrix(kernel * s, shape, 1, "same")
        net.add("k", "kernel", ["x"], W=W, b=ref.expand_bias(bias * s + t, out_shape), S=W)
        h = net.add("flat", "flatten", [net.add("relu", "relu", ["k"])])
    net.dense(model.get_layer("out"), h)
    got = analyzer.analyze(x, layerwise=True)
    assert set(got) == net.names()
    for rule_name in ("lrp.z", "lrp.gamma"):
        if rule_name != "lrp.z":
            got = keras_lrp.create_analyzer(rule_name, model, **RULES[rule_name][0]).analyze(
                x, layerwise=True)
        for n in range(len(x)):
            _, expected = net.relevance(x[n], RULES[rule_name][1], check=True)
            for key in got:
                assert_close(got[key][n].reshape(-1), expected[key], rtol=RTOL,
                             atol=ATOL, err_msg=f"{rule_name} {kind} {key}")


def test_batchnorm_after_relu_is_kept_as_diagonal_layer(float64):
    i = keras.Input((4,), name="x")
    h = L.ReLU(name="relu")(L.Dense(5, name="d1")(i))
    h = L.BatchNormalization(name="bn")(h)
    model = keras.Model(i, L.Dense(3, name="out")(h))
    _randomize(model, _rng(6))
    x = _rng(7).normal(size=(3, 4))
    analyzer = keras_lrp.create_analyzer("lrp.z", model)
    assert "bn" in [layer.name for layer in analyzer.relevance_model.layers]
    assert_close(_np(analyzer.forward_model(x)), _np(model(x)), rtol=1e-12, atol=1e-13)
    got = analyzer.analyze(x, layerwise=True)
    assert list(got) == ["x", "d1", "relu", "bn", "out"]
    s, t = _bn_scale_shift(model.get_layer("bn"))
    # element-wise Z rule: R_i = x_i s_i / (x_i s_i + t_i) · R_i
    a = np.maximum(x @ model.get_layer("d1").get_weights()[0]
                   + model.get_layer("d1").get_weights()[1], 0)
    expected_relu = a * s / (a * s + t) * got["bn"]
    assert_close(got["relu"], expected_relu, rtol=RTOL, atol=ATOL)
    assert np.all(got["relu"][a == 0] == 0)
    # the whole network against NumPy, BatchNorm as the diagonal matrix diag(s) with bias t
    net = ref.Net("x")
    h = net.dense(model.get_layer("d1"), "x")
    h = net.add("relu", "relu", [h])
    h = net.add("bn", "kernel", [h], W=np.diag(s), b=t, S=np.eye(5))
    net.dense(model.get_layer("out"), h)
    for n in range(len(x)):
        _, expected = net.relevance(x[n], RULES["lrp.z"][1], check=True)
        for key in got:
            assert_close(got[key][n], expected[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_batchnorm_not_folded_when_kernel_output_is_shared(float64):
    """Dense output read by the BatchNorm and by an Add: folding would change the Add's input."""
    i = keras.Input((4,), name="x")
    h = L.Dense(5, name="d1")(i)
    s = L.Add(name="add")([L.BatchNormalization(name="bn")(h), h])
    model = keras.Model(i, L.Dense(3, name="out")(L.ReLU(name="relu")(s)))
    _randomize(model, _rng(8))
    x = _rng(9).normal(size=(3, 4))
    analyzer = keras_lrp.create_analyzer("lrp.z", model)
    assert_close(_np(analyzer.forward_model(x)), _np(model(x)), rtol=1e-12, atol=1e-13)
    assert "bn" in analyzer.layer_names


# ============================================================== (e) separable convolutions
def _separable(rank):
    if rank == 2:
        shape = (5, 5, 2)
        layer = L.SeparableConv2D(3, 3, depth_multiplier=2, padding="same", activation="relu",
                                  name="sep")
    else:
        shape = (9, 2)
        layer = L.SeparableConv1D(3, 3, strides=2, depth_multiplier=2, padding="valid",
                                  activation="relu", name="sep")
    i = keras.Input(shape, name="x")
    model = keras.Model(i, L.Dense(2, name="out")(L.Flatten(name="flat")(layer(i))))
    return model, shape


@pytest.mark.parametrize("rank", [1, 2])
def test_separable_split(float64, rank):
    model, shape = _separable(rank)
    _randomize(model, _rng(10 + rank))
    x = _rng(20 + rank).normal(size=(2,) + shape)
    analyzer = keras_lrp.create_analyzer("lrp.z_IB", model)
    np.testing.assert_allclose(_np(analyzer.forward_model(x)), _np(model(x)), rtol=1e-12,
                               atol=1e-13)
    got = analyzer.analyze(x, layerwise=True)
    assert list(got) == ["x", "sep_depthwise", "sep_pointwise", "sep_activation", "flat", "out"]
    # NumPy: the depthwise matrix (no bias) chained with the 1x1 pointwise matrix
    sep = model.get_layer("sep")
    dk, pk, bias = sep.get_weights()
    if rank == 1:  # a 1-D depthwise conv is a 2-D one on a height-1 image
        Wd, mid = ref.depthwise_conv2d_matrix(dk[None], (1,) + shape, (1, 2), "valid")
        mid = mid[1:]
    else:
        Wd, mid = ref.depthwise_conv2d_matrix(dk, shape, 1, "same")
    Wp, out_shape = ref.conv_matrix(pk, mid)
    net = ref.Net("x")
    net.add("sep_depthwise", "kernel", ["x"], W=Wd, b=np.zeros(Wd.shape[1]), S=Wd)
    net.add("sep_pointwise", "kernel", ["sep_depthwise"], W=Wp,
            b=ref.expand_bias(bias, out_shape), S=Wp)
    h = net.add("flat", "flatten", [net.add("sep_activation", "relu", ["sep_pointwise"])])
    net.dense(model.get_layer("out"), h)
    assert_close(np.stack([net.forward(xn)["out"] for xn in x]), _np(model(x)),
                 rtol=1e-12, atol=1e-13)
    rule = lambda x_, W, b, R, S: ref.z_rule(x_, W, b, R, bias=False)  # noqa: E731
    for n in range(len(x)):
        values, expected = net.relevance(x[n], rule, check=True)
        for key in got:
            assert_close(got[key][n].reshape(-1), expected[key], rtol=RTOL, atol=ATOL, err_msg=key)
        # z_IB conserves: Σ R_input = the explained logit
        assert_close(got["x"][n].sum(), values["out"].max(), rtol=1e-10)


# ============================================================== (f) nested models


def _copy_weights(src, dst, pairs):
    for a, b in pairs:
        dst.get_layer(b).set_weights(src[a].get_weights())


NESTED_RULES = ["lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1"]


def _flat_mlp(acts):
    i = keras.Input((6,), name="x")
    h = i
    for n, (a, s) in enumerate(zip(acts, (5, 4, 3))):
        h = L.Dense(s, activation=a, name=f"f{n}")(h)
    return keras.Model(i, h)


@pytest.mark.parametrize("variant", ["sequential_at_input", "functional_in_middle",
                                     "sequential_with_softmax_output"])
def test_nested_model_equals_flat(float64, variant):
    acts = ("relu", "relu", "softmax" if variant == "sequential_with_softmax_output" else None)
    i = keras.Input((6,), name="x")
    if variant == "sequential_at_input":
        inner = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu", name="a"),
                                  L.Dense(4, activation="relu", name="b")], name="inner")
        model = keras.Model(i, L.Dense(3, name="c")(inner(i)))
    elif variant == "functional_in_middle":
        j = keras.Input((5,))
        sub = keras.Model(j, L.Dense(4, activation="relu", name="b")(j), name="sub")
        model = keras.Model(i, L.Dense(3, name="c")(sub(L.Dense(5, activation="relu",
                                                                 name="a")(i))))
    else:
        inner = keras.Sequential([keras.Input((5,)), L.Dense(4, activation="relu", name="b"),
                                  L.Dense(3, activation="softmax", name="c")], name="inner")
        model = keras.Model(i, inner(L.Dense(5, activation="relu", name="a")(i)))
    layers = {layer.name: layer for layer in _all_layers(model)}
    _randomize(model, _rng(30))
    flat = _flat_mlp(acts)
    _copy_weights(layers, flat, [("a", "f0"), ("b", "f1"), ("c", "f2")])
    x = _rng(31).normal(size=(3, 6))
    np.testing.assert_allclose(_np(model(x)), _np(flat(x)), **SAME)
    for rule_name in NESTED_RULES:
        kwargs = RULES[rule_name][0]
        got = keras_lrp.create_analyzer(rule_name, model, **kwargs).analyze(x, layerwise=True)
        want = keras_lrp.create_analyzer(rule_name, flat, **kwargs).analyze(x, layerwise=True)
        np.testing.assert_allclose(got["x"], want["x"], **SAME, err_msg=rule_name)
        # nested layers are inlined: their layer-wise relevances are there under their names
        for nested, flat_name in [("a", "f0"), ("a_activation", "f0_activation"), ("b", "f1"),
                                  ("c", "f2")]:
            np.testing.assert_allclose(got[nested], want[flat_name], **SAME, err_msg=nested)


# ============================================================== (g) shared layers, fan-out
def test_shared_layer_applied_twice_in_sequence(float64):
    i = keras.Input((4,), name="x")
    shared = L.Dense(4, activation="relu", name="sh")
    model = keras.Model(i, L.Dense(3, name="out")(shared(shared(i))))
    _randomize(model, _rng(40))
    x = _rng(41).normal(size=(3, 4))
    net = ref.Net("x")
    h = net.dense(shared, "x")
    h = net.add("act1", "relu", [h])
    W, b = shared.get_weights()
    net.add("sh2", "kernel", [h], W=W, b=b, S=np.ones_like(W))
    h = net.add("act2", "relu", ["sh2"])
    net.dense(model.get_layer("out"), h)
    forward_order = ["x", "sh", "act1", "sh2", "act2", "out"]
    assert_close(np.stack([net.forward(xn)["out"] for xn in x]), _np(model(x)), rtol=1e-12)
    for rule_name in ("lrp.z", "lrp.alpha_2_beta_1"):
        got = keras_lrp.create_analyzer(rule_name, model, **RULES[rule_name][0]).analyze(
            x, layerwise=True)
        assert len(got) == 6 and len(set(got)) == 6
        # analyze(layerwise=True) lists the layers in forward order (documented)
        for n in range(len(x)):
            _, expected = net.relevance(x[n], RULES[rule_name][1], check=True)
            for key, ref_key in zip(got, forward_order):
                assert_close(got[key][n], expected[ref_key], rtol=RTOL, atol=ATOL,
                             err_msg=f"{rule_name}: {key} vs {ref_key}")


def test_shared_layer_layerwise_names_follow_call_order(float64):
    """A shared layer's calls are suffixed in forward order, as Keras numbers them."""
    i = keras.Input((4,), name="x")
    shared = L.Dense(4, activation="relu", name="sh")
    model = keras.Model(i, L.Dense(3, name="out")(shared(shared(i))))
    got = keras_lrp.create_analyzer("lrp.z", model).analyze(np.ones((1, 4)), layerwise=True)
    assert list(got) == ["x", "sh", "sh_activation", "sh_1", "sh_activation_1", "out"]


def test_shared_layer_on_two_inputs(float64):
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = L.Dense(3, activation="relu", name="sh")
    model = keras.Model([a, b], L.Dense(2, name="out")(L.Concatenate(name="cat")(
        [shared(a), shared(b)])))
    _randomize(model, _rng(42))
    g = _rng(43)
    xa, xb = g.normal(size=(3, 4)), g.normal(size=(3, 4))
    W, bias = shared.get_weights()
    Wo, bo = model.get_layer("out").get_weights()
    for rule_name in ("lrp.z", "lrp.epsilon", "lrp.gamma"):
        analyzer = keras_lrp.create_analyzer(rule_name, model, **RULES[rule_name][0])
        Ra, Rb = analyzer.analyze([xa, xb])
        rule = RULES[rule_name][1]
        for n in range(3):
            ha = np.maximum(xa[n] @ W + bias, 0)
            hb = np.maximum(xb[n] @ W + bias, 0)
            logits = np.concatenate([ha, hb]) @ Wo + bo
            R_out = np.eye(2)[np.argmax(logits)] * logits
            R_cat = rule(np.concatenate([ha, hb]), Wo, bo, R_out, np.ones_like(Wo))
            assert_close(Ra[n], rule(xa[n], W, bias, R_cat[:3], np.ones_like(W)),
                         rtol=RTOL, atol=ATOL)
            assert_close(Rb[n], rule(xb[n], W, bias, R_cat[3:], np.ones_like(W)),
                         rtol=RTOL, atol=ATOL)


def test_tensor_with_two_consumers_sums_their_relevance(float64):
    i = keras.Input((4,), name="x")
    h = L.Dense(5, activation="relu", name="h")(i)
    p, q = L.Dense(3, name="p")(h), L.Dense(3, name="q")(h)
    model = keras.Model(i, L.Dense(2, name="out")(L.Add(name="add")([p, q])))
    _randomize(model, _rng(44))
    x = _rng(46).normal(size=(3, 4))
    got = keras_lrp.create_analyzer("lrp.z", model).analyze(x, layerwise=True)
    net = ref.Net("x")
    hh = net.dense(model.get_layer("h"), "x", relu=True)
    net.add("add", "add", [net.dense(model.get_layer("p"), hh),
                           net.dense(model.get_layer("q"), hh)])
    net.dense(model.get_layer("out"), "add")
    rule = RULES["lrp.z"][1]
    Wp, bp = model.get_layer("p").get_weights()
    Wq, bq = model.get_layer("q").get_weights()
    for n in range(3):
        values, expected = net.relevance(x[n], rule, check=True)
        for key in got:
            assert_close(got[key][n], expected[key], rtol=RTOL, atol=ATOL, err_msg=key)
        # explicitly: relevance at h's output = what p sends back + what q sends back
        a = values["h_activation"]
        from_p = rule(a, Wp, bp, expected["p"], None)
        from_q = rule(a, Wq, bq, expected["q"], None)
        assert np.abs(from_p).max() > 1e-3 and np.abs(from_q).max() > 1e-3
        assert_close(got["h_activation"][n], from_p + from_q, rtol=RTOL, atol=ATOL)


# ============================================================== (h) models that cannot be analyzed


@pytest.mark.parametrize("obj", ["a string", None, L.Dense(3)], ids=["str", "None", "layer"])
def test_non_model_is_a_type_error(obj):
    with pytest.raises(TypeError, match="keras.Model"):
        keras_lrp.create_analyzer("lrp.z", obj)


# ============================================================== (i) unsupported layers
def _with_layer(layer):
    i = keras.Input((4,), name="x")
    return keras.Model(i, L.Dense(2, name="out")(layer(L.Dense(5, name="d")(i))))


def _check_unsupported(model, name, cls):
    x = np.ones((1, 4))
    before = _snapshot(model, x)
    with pytest.raises(ValueError) as info:
        keras_lrp.create_analyzer("lrp.z", model)
    message = str(info.value)
    # names the layer and its class, and says how to teach keras-lrp the layer
    assert f"'{name}'" in message and cls in message, message
    assert f"register_layer({cls}" in message, message
    _assert_unchanged(model, x, before)


def test_unsupported_unit_normalization(float64):
    _check_unsupported(_with_layer(L.UnitNormalization(name="un")), "un", "UnitNormalization")


def test_unsupported_lambda(float64):
    """Checked before cloning: a Lambda holding a Python lambda (which Keras refuses to
    deserialise) still gets keras-lrp's own message."""
    _check_unsupported(_with_layer(L.Lambda(lambda t: 2.0 * t, name="lam")), "lam", "Lambda")


class _Double(keras.layers.Layer):
    """A bias-free linear layer keras-lrp does not know: x ↦ 2x."""

    def call(self, x):
        return 2.0 * x


def test_unknown_linear_layer_traced_or_rescued_as_advised(float64):
    """A layer no entry names is traced into its parts (here 2.0 * x: the identity); the
    message's advice for a bias-free linear layer (the proportional Z rule through it) gives
    the same relevance in float64."""
    model = _with_layer(_Double(name="resc"))  # linear, not in the layer map
    _randomize(model, _rng(50))
    x = _rng(51).normal(size=(2, 4))
    traced = keras_lrp.create_analyzer("lrp.z", model).analyze(x)
    got = keras_lrp.create_analyzer("lrp.z", model, rule_map=[
        (_Double, keras_lrp.layers.ProportionalRelevance)]).analyze(x, layerwise=True)
    np.testing.assert_allclose(traced, got["x"], rtol=RTOL, atol=ATOL)
    # proportional through x ↦ 2x: R_in = x·2/(2x + 1e-100·sign)·R = R in float64
    np.testing.assert_allclose(got["d"], got["resc"], rtol=RTOL, atol=ATOL)
    W, b = model.get_layer("d").get_weights()
    Wo, bo = model.get_layer("out").get_weights()
    for n in range(2):
        h = 2.0 * (x[n] @ W + b)
        logits = h @ Wo + bo
        R = ref.z_rule(h, Wo, bo, np.eye(2)[np.argmax(logits)] * logits)
        assert_close(got["resc"][n], R, rtol=RTOL, atol=ATOL)
        assert_close(got["x"][n], ref.z_rule(x[n], 2 * W, 2 * b, R), rtol=RTOL, atol=ATOL)
