"""explain_generation on a tiny keras-hub Llama (random weights, float64): each generated
token's row equals the analyzer run directly on that logit, and is exactly 0 from the token's
own position on (causality); the span's relevance equals one analysis of a model whose single
output is the span's summed log-probability (LRP is linear in the relevance it starts from); the
log-probabilities equal NumPy's log-softmax of the logits; the heatmaps are written."""
import os

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
import hub_lm  # noqa: E402
import keras  # noqa: E402
from keras import ops  # noqa: E402

import keras_lrp  # noqa: E402
from keras_lrp.plots.tokens import write_generation_heatmaps  # noqa: E402

PROMPT, CONTINUATION = np.array([5, 17, 3, 42, 8]), np.array([21, 9, 60])


@pytest.fixture(scope="module")
def lm():
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(4)
        yield hub_lm.causal_lm("llama")
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def _x(ids, rows=1):
    return {"token_ids": np.repeat(ids[None], rows, 0).astype("int32"),
            "padding_mask": np.ones((rows, ids.size), "int32")}


def _tokens(model, r):
    return r[[t.name for t in model.inputs].index("token_ids")]


@pytest.mark.parametrize("attention", ["attnlrp", pytest.param("cp", marks=pytest.mark.slow)])
def test_explain_generation(lm, attention, tmp_path):
    gen = keras_lrp.explain_generation("lrp.z", lm, PROMPT, CONTINUATION, attention=attention)
    ids = np.concatenate([PROMPT, CONTINUATION])
    p, t = PROMPT.size, ids.size
    logits = np.asarray(lm(_x(ids)))[0]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    direct = keras_lrp.create_analyzer("lrp.z", lm, neuron_selection_mode="index",
                                       attention=attention)
    for j, g in enumerate(CONTINUATION):
        pos = p + j - 1
        np.testing.assert_allclose(gen.logits[j], logits[pos, g], rtol=1e-12)
        np.testing.assert_allclose(gen.log_probs[j], log_p[pos, g], rtol=1e-10)
        want = _tokens(lm, direct.analyze(_x(ids), neuron_selection=[pos * lm.output.shape[-1]
                                                                     + g]))[0]
        np.testing.assert_allclose(gen.per_token[j], want, rtol=1e-10, atol=1e-14)
        assert np.all(gen.per_token[j, p + j:] == 0.0)
    assert gen.prompt_relevance.shape == (CONTINUATION.size, p)
    # the span's log-likelihood, explained at once through one scalar output
    pick = np.zeros((t, logits.shape[-1]))
    for j, g in enumerate(CONTINUATION):
        pick[p + j - 1, g] = 1.0
    lp = keras_lrp.canonizers.forward_layers.LogSoftmax()(lm.output)
    total = ops.sum(lp * pick, axis=(1, 2))
    scalar = keras.Model(lm.input, ops.expand_dims(total, -1))
    one = keras_lrp.create_analyzer("lrp.z", scalar, attention=attention)
    want = _tokens(scalar, one.analyze(_x(ids)))[0]
    # (keras-hub casts to float32 inside its norms: two summation orders differ by ~1e-9)
    np.testing.assert_allclose(gen.span_relevance, want, rtol=1e-6, atol=1e-10)
    png, page = write_generation_heatmaps(gen, str(tmp_path), vocab=[f"w{i}" for i in range(64)])
    assert os.path.getsize(png) > 1000 and "w21" in open(page, encoding="utf-8").read()


def test_errors(lm):
    with pytest.raises(ValueError, match="span must hold indices"):
        keras_lrp.explain_generation("lrp.z", lm, PROMPT, CONTINUATION, span=[3])
    with pytest.raises(ValueError, match="1-D array of token ids"):
        keras_lrp.explain_generation("lrp.z", lm, PROMPT[None], CONTINUATION)
    with pytest.raises(ValueError, match="neuron_selection_mode='index'"):
        keras_lrp.explain_generation("lrp.z", lm, PROMPT, CONTINUATION,
                                     neuron_selection_mode="max_activation")
    with pytest.raises(ValueError, match=r"in \[0, 64\)"):
        keras_lrp.explain_generation("lrp.z", lm, PROMPT, np.array([99]))
