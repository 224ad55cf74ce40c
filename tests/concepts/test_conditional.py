"""keras_lrp.concepts: conditional heatmaps and concept relevances (Concept Relevance
Propagation, Achtibat et al. 2023) against zennit-crp's numbers and a NumPy float64 reference.

``tests/data/crp/*.npz`` were made by ``tools/make_crp_reference.py`` (zennit-crp 0.6,
Zennit 0.4.6 and PyTorch in their own environment) on the PyTorch twin of the shipped digits
CNN and of the residual anchor net. Tolerance: 1e-4 of the largest reference value; both sides
compute in float32, Zennit stabilising denominators with 1e-6 and keras-lrp with 1e-12 outside
ε (measured: within 2e-6 of it on the digits CNN, 2e-5 on the residual net).
"""
import json
import os

import anchor_nets
import keras
import numpy as np
import pytest
import reference
from helpers import BACKEND

import keras_lrp
from keras_lrp import concepts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "crp", "digits.npz")
COMPOSITES = {"eps_plus_flat": "lrp.epsilon_plus_flat", "eps_plus": "lrp.epsilon_plus"}
RECORD = ["conv2", "conv3", "dense"]
#: float64 against NumPy. On PyTorch keras-lrp's float64 analyses differ between identical rows
#: of one batch at float32 precision (rows after the first; plain ``analyze`` too), and
#: ``model(x)`` returns float32 logits there.
TOL = dict(rtol=1e-5, atol=1e-7) if BACKEND == "torch" else dict(rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def digits_cnn():
    return keras.models.load_model(os.path.join(ROOT, "keras_lrp", "demos", "models",
                                                "digits_cnn.keras"))


@pytest.mark.parametrize("key", sorted(COMPOSITES))
def test_matches_zennit_crp(digits_cnn, key):
    data = np.load(DATA)
    conditions = json.loads(str(data["conditions"]))
    crp = concepts.Conditional(keras_lrp.create_analyzer(COMPOSITES[key], digits_cnn))
    result = crp.attribute(data["x"], conditions, record=RECORD)
    ref = data[f"{key}_heatmap"]
    np.testing.assert_allclose(result.heatmap.sum(-1), ref, rtol=0,
                               atol=1e-4 * np.abs(ref).max())
    for layer in RECORD:
        ref = data[f"{key}_rel_{layer}"].copy()
        # zennit-crp records twice the masked relevance at a conditioned layer (exclude_parallel:
        # its retained .grad receives it from autograd.grad and again as the second backward's
        # root; see tools/make_crp_reference.py); its heatmaps are unaffected
        for c, cond in enumerate(conditions):
            if layer in cond:
                ref[:, c] /= 2
        got = concepts.channel_relevance(result.relevances[layer], lead=2)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(ref).max(),
                                   err_msg=layer)


def test_residual_matches_zennit_crp():
    """Conditions on a residual block's branch and projection (exclude_parallel decides what
    passes), Zennit's EpsilonPlus; zennit-crp's heatmap is its input relevance."""
    data = np.load(os.path.join(ROOT, "tests", "data", "crp", "residual.npz"))
    weights = np.load(os.path.join(ROOT, "tests", "data", "innvestigate", "residual.npz"))
    model = anchor_nets.build("residual", keras, True)
    model.set_weights([weights[f"w{k}"] for k in range(len(model.get_weights()))])
    conditions = json.loads(str(data["conditions"]))
    crp = concepts.Conditional(keras_lrp.create_analyzer("lrp.epsilon_plus", model))
    result = crp.attribute(data["x"], conditions, record=["a1", "a2", "proj"])
    ref = data["eps_plus_heatmap"]
    np.testing.assert_allclose(result.heatmap, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    for layer in ("a1", "a2", "proj"):
        ref = data[f"eps_plus_rel_{layer}"].copy()
        for c, cond in enumerate(conditions):
            if layer in cond:  # zennit-crp's double count (see test_matches_zennit_crp)
                ref[:, c] /= 2
        got = concepts.channel_relevance(result.relevances[layer], lead=2)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(ref).max(),
                                   err_msg=layer)


def _dense(widths, name="tiny"):
    """A bias-free ReLU Dense net, layers d0, d1, … (the last without activation)."""
    x = keras.Input((widths[0],), name="x")
    h = x
    for k, w in enumerate(widths[1:]):
        last = k == len(widths) - 2
        h = keras.layers.Dense(w, use_bias=False, activation=None if last else "relu",
                               name=f"d{k}")(h)
    return keras.Model(x, h, name=name)


@pytest.fixture
def tiny(float64):
    keras.utils.set_random_seed(3)
    model = _dense([4, 6, 5, 3])
    x = np.random.default_rng(0).uniform(0.1, 1, (2, 4))
    return model, x


def _forward(model, x):
    ws = [np.asarray(w, np.float64) for w in model.get_weights()]
    z1 = x @ ws[0]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ ws[1]
    a2 = np.maximum(z2, 0)
    return ws, a1, a2, a2 @ ws[2]


def test_masked_propagation_equals_numpy_reference(tiny):
    """R(x | θ) is the Z rule's propagation with the relevance at d0 zeroed outside θ."""
    model, x = tiny
    ws, a1, a2, out = _forward(model, x)
    crp = concepts.Conditional(keras_lrp.create_analyzer("lrp.z", model, bias=False))
    conds = [{"y": 1, "d0": [0, 2]}, {"y": 2, "d1": 3}, {"y": 0}]
    result = crp.attribute(x, conds, record=["d0"])
    for c, cond in enumerate(conds):
        r3 = np.zeros_like(out)
        r3[:, cond["y"]] = out[:, cond["y"]]
        r2 = reference.z_rule(a2, ws[2], 0, r3, bias=False)
        if "d1" in cond:
            r2 = r2 * np.isin(np.arange(r2.shape[1]), cond["d1"])
        r1 = reference.z_rule(a1, ws[1], 0, r2, bias=False)
        if "d0" in cond:
            r1 = r1 * np.isin(np.arange(r1.shape[1]), cond["d0"])
        np.testing.assert_allclose(result.relevances["d0"][:, c], r1, **TOL)
        r0 = reference.z_rule(x, ws[0], 0, r1, bias=False)
        np.testing.assert_allclose(result.heatmap[:, c], r0, **TOL)


def test_concept_relevances_conserve_the_output(float64):
    """Z rule, no biases: the channel relevances of a conv layer sum to the explained logit."""
    keras.utils.set_random_seed(4)
    x_in = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(4, 3, use_bias=False, activation="relu", name="conv")(x_in)
    h = keras.layers.Flatten()(h)
    model = keras.Model(x_in, keras.layers.Dense(3, use_bias=False, name="out")(h))
    x = np.random.default_rng(1).uniform(0, 1, (3, 6, 6, 2))
    rel = concepts.concept_relevances(keras_lrp.create_analyzer("lrp.z", model, bias=False),
                                      x, "conv")
    logits = np.asarray(model(x))
    assert rel.shape == (3, 4)
    np.testing.assert_allclose(rel.sum(-1), logits.max(-1), **TOL)
    per_y = concepts.concept_relevances(keras_lrp.create_analyzer("lrp.z", model, bias=False),
                                        x, "conv", conditions=[{"y": 0}, {"y": 2}])
    np.testing.assert_allclose(per_y.sum(-1), logits[:, [0, 2]], **TOL)


def test_start_layer_with_the_full_relevance_is_the_analysis(tiny):
    model, x = tiny
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    full = analyzer.analyze(x, layerwise=True)
    crp = concepts.Conditional(analyzer)
    result = crp.attribute(x, [{}], start_layer="d1", init_rel=full["d1"])
    np.testing.assert_allclose(result.heatmap[:, 0], full["x"], **TOL)
    with pytest.raises(ValueError, match="leave 'y' out"):
        crp.attribute(x, [{"y": 1}], start_layer="d1")
    with pytest.raises(ValueError, match="does not fit layer 'd1'"):
        crp.attribute(x, [{}], start_layer="d1", init_rel=np.ones((3, 3)))


def test_transfer_matrix_is_the_seed_coefficients(tiny):
    """Seed 000: R_l = Cᵀ R_{l+1}, C_{j i} = W_{j i} h_i / Σ_i' W_{j i'} h_i' (Z rule)."""
    model, x = tiny
    ws, a1, _, _ = _forward(model, x[:1])
    analyzer = keras_lrp.create_analyzer("lrp.z", model, bias=False)
    t = concepts.transfer_matrix(analyzer, x[:1], upper="d1", lower="d0")
    contrib = a1[0][:, None] * ws[1]  # (lower i, upper j) = h_i W_ij (Keras' kernel layout)
    c = (contrib / contrib.sum(0, keepdims=True)).T  # the seed's C (upper j, lower i)
    np.testing.assert_allclose(t, c.T, **TOL)
    full = analyzer.analyze(x[:1], layerwise=True)
    np.testing.assert_allclose(t @ full["d1"][0], full["d0"][0], **TOL)
    with pytest.raises(ValueError, match="one sample"):
        concepts.transfer_matrix(analyzer, x, upper="d1", lower="d0")


def test_new_conditions_reuse_the_compiled_program(tiny):
    model, x = tiny
    crp = concepts.Conditional(keras_lrp.create_analyzer("lrp.epsilon", model))
    first = crp.attribute(x, [{"y": 0, "d0": [1]}]).heatmap
    program = crp.program(["d0"])
    second = crp.attribute(x, [{"y": 2, "d0": [0, 3, 5]}, {"y": 1, "d0": 4}]).heatmap
    assert crp.program(["d0"]) is program and crp.builds == 1 and len(crp.programs) == 1
    if BACKEND == "tensorflow":  # one trace for every batch size (JAX: one per row bucket)
        assert crp.traces == 1
    assert not np.allclose(first[:, 0], second[:, 0])
    chunked = concepts.Conditional(crp.analyzer, batch_size=3)
    np.testing.assert_allclose(
        chunked.attribute(x, [{"y": 2, "d0": [0, 3, 5]}, {"y": 1, "d0": 4}]).heatmap, second,
        **TOL)


def test_one_output_per_sample(tiny):
    model, x = tiny
    crp = concepts.Conditional(keras_lrp.create_analyzer("lrp.epsilon", model))
    per_sample = crp.attribute(x, [{"y": [2, 0], "d0": [1, 4]}]).heatmap[:, 0]
    each = crp.attribute(x, [{"y": 2, "d0": [1, 4]}, {"y": 0, "d0": [1, 4]}]).heatmap
    np.testing.assert_allclose(per_sample, each[[0, 1], [0, 1]], **TOL)
    with pytest.raises(ValueError, match=r"y has shape \(3,\) for 2 samples"):
        crp.attribute(x, [{"y": [0, 1, 2]}])


def test_conditioning_on_every_channel_changes_nothing(tiny):
    model, x = tiny
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    full = analyzer.analyze(x)
    result = concepts.conditional(analyzer, x, [{"d0": list(range(6))}, {}])
    np.testing.assert_allclose(result.heatmap[:, 0], full, **TOL)
    np.testing.assert_allclose(result.heatmap[:, 1], full, **TOL)


def test_exclude_parallel_drops_the_skip(float64):
    """In a residual block, conditioning on the branch with every channel kept: masking alone
    is the plain analysis; exclude_parallel keeps only what passed the branch."""
    keras.utils.set_random_seed(5)
    x_in = keras.Input((5,), name="x")
    h = keras.layers.Dense(4, activation="relu", name="stem")(x_in)
    branch = keras.layers.Dense(4, activation="relu", name="branch")(h)
    out = keras.layers.Dense(2, name="out")(keras.layers.Add(name="add")([h, branch]))
    model = keras.Model(x_in, out)
    x = np.random.default_rng(2).uniform(0, 1, (3, 5))
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    everything = [{"branch": list(range(4))}]
    masked = concepts.Conditional(analyzer, exclude_parallel=False).attribute(x, everything)
    np.testing.assert_allclose(masked.heatmap[:, 0], analyzer.analyze(x), **TOL)
    full = analyzer.analyze(x, layerwise=True)
    only = concepts.Conditional(analyzer).attribute(x, [{}], start_layer="branch",
                                                     init_rel=full["branch"])
    excluded = concepts.Conditional(analyzer).attribute(x, everything)
    np.testing.assert_allclose(excluded.heatmap[:, 0], only.heatmap[:, 0], **TOL)
    assert not np.allclose(excluded.heatmap, masked.heatmap)
    # per condition: a row that names no layer keeps its parallel paths in the same batch
    mixed = concepts.Conditional(analyzer).attribute(x, [{}] + everything)
    np.testing.assert_allclose(mixed.heatmap[:, 0], analyzer.analyze(x), **TOL)
    np.testing.assert_allclose(mixed.heatmap[:, 1], only.heatmap[:, 0], **TOL)


def test_errors_name_the_layers_and_channels(tiny):
    model, x = tiny
    crp = concepts.Conditional(keras_lrp.create_analyzer("lrp.epsilon", model))
    with pytest.raises(ValueError, match=r"no layer named 'nope'.*its layers are: d0, "):
        crp.attribute(x, [{"nope": [0]}])
    with pytest.raises(ValueError, match=r"channel 6 is out of range: layer 'd0' has 6 channels"):
        crp.attribute(x, [{"d0": [1, 6]}])
    with pytest.raises(ValueError, match=r"y 3 is out of range: the explained output has 3"):
        crp.attribute(x, [{"y": 3}])
    with pytest.raises(ValueError, match="not a channel axis of layer 'd0'"):
        concepts.Conditional(crp.analyzer, axis=0).attribute(x, [{"d0": [1]}])
    with pytest.raises(ValueError, match="not a channel axis of layer 'd0'"):
        concepts.Conditional(crp.analyzer, axis=2).attribute(x, [{"d0": [1]}])
    with pytest.raises(ValueError, match="non-empty list of dicts"):
        crp.attribute(x, {"d0": [1]})
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        crp.attribute(x, [{}], record=["nope"])
    with pytest.raises(TypeError, match="LRP analyzer"):
        concepts.Conditional(keras_lrp.create_analyzer("gradient", model))


def test_several_inputs_each_get_a_heatmap():
    a_in, b_in = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([keras.layers.Dense(5, activation="relu", name="da")(a_in),
                                    keras.layers.Dense(2, activation="relu", name="db")(b_in)])
    model = keras.Model([a_in, b_in], keras.layers.Dense(3, name="out")(h))
    xs = [np.random.default_rng(3).uniform(0, 1, (2, k)) for k in (4, 3)]
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    heat = concepts.conditional(analyzer, xs, [{}, {"da": [0, 1]}]).heatmap
    assert [h.shape for h in heat] == [(2, 2, 4), (2, 2, 3)]
    for h, full in zip(heat, analyzer.analyze(xs)):
        np.testing.assert_allclose(h[:, 0], full, rtol=1e-5, atol=1e-7)
    assert not heat[1][:, 1].any()  # exclude_parallel: nothing reaches b past da's condition
