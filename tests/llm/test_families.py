"""keras-hub's causal LMs, from tiny configs with random weights, with their own CausalLM heads:
Llama, Llama 3, Mistral, Gemma, Gemma 3, Qwen, Qwen 3, Phi-3 and Mixtral (mixture of experts).

Checked for each, in float64: the traced analysis graph computes the model's logits (1e-6 of
their scale; keras-hub's float32 casts inside norms and activations stay in both); causality
(explaining the logit at position 3 gives exactly 0 to tokens 4…); CP-LRP conserves the
explained logit (to 1e-6 relative): the models have no biases (Qwen's q/k/v biases are zeroed),
the RMS norms, RoPE, GQA's repeat and the tied head are bias-free linear maps once the rms is
held constant, Mixtral's routing weights are held constant (its router gets nothing) and its
experts' einsums with weights are linear maps, and CP-LRP holds the attention weights and the MLP
gates constant. AttnLRP's
softmax rule leaks, so its sum differs.
"""
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
import hub_lm  # noqa: E402
import keras  # noqa: E402

import keras_lrp  # noqa: E402

FAST = ("llama",)
#: extra cases: Gemma 3 with sliding-window attention shorter than the prompt (the window is a
#: mask, traced with the rest; its local layers use RoPE at 1e4)
VARIANTS = {"gemma3_window": ("gemma3", {"use_sliding_window_attention": True,
                                       "sliding_window_size": 3})}
FAMILIES = [pytest.param(f, marks=() if f in FAST else pytest.mark.slow)
            for f in list(hub_lm.FAMILIES) + list(VARIANTS)]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(7)
        family, overrides = VARIANTS.get(request.param, (request.param, {}))
        lm = hub_lm.causal_lm(family, **overrides)
        for w in lm.weights:  # zero every bias (Qwen's q/k/v); non-trivial scales elsewhere
            if w.path.endswith("bias"):
                w.assign(np.zeros(w.shape))
        yield request.param, hub_lm.static(lm)
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def _x(n=2):
    rng = np.random.default_rng(3)
    return {"token_ids": rng.integers(0, hub_lm.V, (n, hub_lm.T)).astype("int32"),
            "padding_mask": np.ones((n, hub_lm.T), "int32")}


def _tokens(model, r):
    return r[[t.name for t in model.inputs].index("token_ids")]


def test_family(family):
    name, model = family
    x = _x()
    logits = np.asarray(model(x))
    cp = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index",
                                   attention="cp")
    got = np.asarray(cp.forward_model([x[t.name] for t in model.inputs]))
    np.testing.assert_allclose(got, logits, rtol=0, atol=1e-6 * np.abs(logits).max())
    target = np.argmax(logits[:, 3, :], axis=-1)
    index = 3 * hub_lm.V + target
    explained = logits[np.arange(2), 3, target]
    r_cp = _tokens(model, cp.analyze(x, neuron_selection=index))
    assert np.all(r_cp[:, 4:] == 0.0), name
    np.testing.assert_allclose(r_cp.sum(-1), explained, rtol=1e-6)
    attn = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    r_attn = _tokens(model, attn.analyze(x, neuron_selection=index))
    assert np.all(r_attn[:, 4:] == 0.0), name
    assert np.all(np.isfinite(r_attn)) and np.abs(r_attn[:, :4]).max() > 0
    assert not np.allclose(r_attn.sum(-1), explained, rtol=1e-3)  # the softmax rule leaks


def test_open_length(float64):
    """A causal LM on keras.Input((None,)) is explained for prompts of any length: with
    ``buckets="exact"``, one analyzer per length, reused for a second prompt of a seen length,
    equal to the analyzer of the same model called on inputs of that fixed length (the padded
    buckets are tests/llm/test_buckets.py's)."""
    keras.utils.set_random_seed(11)
    lm = hub_lm.causal_lm("llama")
    a = keras_lrp.create_analyzer("lrp.z", lm, neuron_selection_mode="index", buckets="exact")
    rng = np.random.default_rng(0)
    results = {}
    fixed = {}
    for t in (5, 8, 5):
        x = {"token_ids": rng.integers(0, hub_lm.V, (2, t)).astype("int32"),
             "padding_mask": np.ones((2, t), "int32")}
        got = _tokens(lm, a.analyze(x, neuron_selection=[(t - 1) * hub_lm.V + 3] * 2))
        assert got.shape == (2, t)
        if t not in fixed:  # against the analyzer of the model called on that fixed length
            fixed[t] = keras_lrp.create_analyzer("lrp.z", hub_lm.static(lm, t),
                                                 neuron_selection_mode="index")
        want = _tokens(lm, fixed[t].analyze(x, neuron_selection=[(t - 1) * hub_lm.V + 3] * 2))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        results.setdefault(t, id(a.for_length(t)))
        assert id(a.for_length(t)) == results[t]  # built once per length
    assert sorted(a.analyzers) == [5, 8]
    with pytest.raises(ValueError, match="share one length"):
        a.analyze({"token_ids": np.zeros((1, 4), "int32"),
                   "padding_mask": np.ones((1, 6), "int32")})
