"""keras-lrp's AttnLRP and CP-LRP on keras-hub's causal LMs against LXT's own numbers on the same
weights: Llama, Qwen 2, Qwen 3 and Gemma 3 (and Gemma 3 with its final logit soft cap).

``tests/data/lxt_llm/*.npz`` were made by ``tools/make_lxt_llm_reference.py`` in its own
environment (torch 2.13 CPU, transformers 4.53.3, lxt 2.1; CI never installs them): tiny Hugging
Face models with random weights, LXT's own ``monkey_patch`` (its AttnLRP map, and its ``cp_LRP``
map), relevance read as gradient × input at the token embeddings, summed over the embedding, in
float64 (with Hugging Face's float32 casts turned into float64). Here the same weights are loaded
into keras-hub's backbones by keras-hub's own checkpoint converters (``hub_lm.NpzLoader``), and
keras-lrp's ``lrp.z`` (the Z rule on every linear map: what plain gradients give in LXT's
framework) explains the same logit.

Precision: float64, but keras-hub's RMS norms, activations and softmax cast to float32 inside
(as the models do in use), so the keras-hub model itself differs from the float64 reference by up
to ~3e-5 in its logits (Qwen 3, whose query/key norms add two casts per layer). The bound is the
issue's: 1e-4 of max |R|; measured 4e-8 … 6e-6.
"""
import numpy as np
import pytest

pytest.importorskip("keras_hub")
import hub_lm  # noqa: E402

import keras_lrp  # noqa: E402

STEMS = [pytest.param(s, marks=() if s == "llama" else pytest.mark.slow)
         for s in ("llama", "qwen2", "qwen3", "gemma3", "gemma3_softcap")]


def _tokens(model, r):
    names = [t.name for t in model.inputs]
    return r[names.index("token_ids")] if isinstance(r, list) else r


@pytest.fixture(scope="module", params=STEMS)
def reference(request):
    import keras

    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        lm, data = hub_lm.from_reference(request.param)
        yield hub_lm.static(lm), data
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def _inputs(data):
    return {"token_ids": data["tokens"].astype("int32"),
            "padding_mask": np.ones(data["tokens"].shape, "int32")}


def test_same_network(reference):
    model, data = reference
    got = np.asarray(model(_inputs(data)))
    np.testing.assert_allclose(got, data["logits"], rtol=0,
                               atol=1e-4 * np.abs(data["logits"]).max())


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_matches_lxt(reference, attention):
    model, data = reference
    a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index",
                                  attention=attention)
    t, v = data["tokens"].shape[1], data["logits"].shape[-1]
    got = _tokens(model, a.analyze(_inputs(data), neuron_selection=(t - 1) * v + data["targets"]))
    expected = data[attention]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    # position 4 of the first sequence: LXT's numbers, and exactly 0 after it (causality)
    x = {k: v_[:1] for k, v_ in _inputs(data).items()}
    pos4 = _tokens(model, a.analyze(x, neuron_selection=4 * v + int(data["pos4_target"])))[0]
    np.testing.assert_allclose(pos4, data[f"pos4_{attention}"], rtol=0,
                               atol=1e-4 * np.abs(data[f"pos4_{attention}"]).max())
    assert np.all(pos4[5:] == 0.0)
