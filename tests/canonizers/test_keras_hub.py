"""keras-hub's backbones (BERT, GPT-2, ViT), built from small configs with random weights (no
preset download), with a classification or language-model head. keras-hub is a test extra:
these tests are skipped where it is not installed.

Their blocks (TransformerEncoder, TransformerDecoder, ViTEncoder, …) are layers made of layers,
which keras-lrp traces into their parts (:mod:`keras_lrp.canonizers.blocks`); their attention
is expanded like MultiHeadAttention. Checked here: the traced graph computes the model's function
(float64, 1e-6); the LRP analyzers build and give finite relevances of the inputs' shapes;
CP-LRP conserves the explained logit to 1e-9 with every bias, LayerNorm β, position embedding
and class token zeroed (all act as biases) and ε = 1e-30, while AttnLRP's softmax rule does
not conserve; GPT-2's causal mask gives exactly zero relevance to the tokens after the
explained position. A user's own block, registered with ``register_block``, is
checked against the Z rule written out in NumPy."""

import keras
import numpy as np
import pytest
from helpers import assert_close

import keras_lrp

keras_hub = pytest.importorskip("keras_hub")
L = keras.layers
T, V = 10, 40


def _bert():
    bb = keras_hub.models.BertBackbone(vocabulary_size=V, num_layers=2, num_heads=2, hidden_dim=8,
                                       intermediate_dim=16, max_sequence_length=T)
    ins = [keras.Input((T,), dtype="int32", name=n)
           for n in ("token_ids", "segment_ids", "padding_mask")]
    out = bb(dict(zip(("token_ids", "segment_ids", "padding_mask"), ins)))["pooled_output"]
    return keras.Model(ins, L.Dense(3, name="head")(out))


def _gpt2():
    bb = keras_hub.models.GPT2Backbone(vocabulary_size=V, num_layers=2, num_heads=2, hidden_dim=8,
                                       intermediate_dim=16, max_sequence_length=T)
    ins = [keras.Input((T,), dtype="int32", name=n) for n in ("token_ids", "padding_mask")]
    out = bb(dict(zip(("token_ids", "padding_mask"), ins)))
    return keras.Model(ins, L.Dense(V, name="lm_head")(out))


def _vit():
    bb = keras_hub.models.ViTBackbone(image_shape=(8, 8, 3), patch_size=4, num_layers=2,
                                      num_heads=2, hidden_dim=8, mlp_dim=16)
    image = keras.Input((8, 8, 3), name="image")
    return keras.Model(image, L.Dense(3, name="head")(bb(image)[:, 0, :]))


def _layers():
    """keras-hub's layers in a model of one's own: TokenAndPositionEmbedding, a
    TransformerEncoder (pre-LN) reading a padding mask, the mean over tokens."""
    tokens = keras.Input((T,), dtype="int32", name="token_ids")
    mask = keras.Input((T,), dtype="int32", name="padding_mask")
    h = keras_hub.layers.TokenAndPositionEmbedding(V, T, 8, name="embed")(tokens)
    h = keras_hub.layers.TransformerEncoder(16, 2, normalize_first=True, name="block")(
        h, padding_mask=mask)
    return keras.Model([tokens, mask], L.Dense(3, name="head")(L.GlobalAveragePooling1D()(h)))


BACKBONES = {"bert": _bert, "gpt2": _gpt2, "vit": _vit, "layers": _layers}


def _data(model, rng, n=3):
    out = []
    for spec in model.inputs:
        shape = (n,) + tuple(spec.shape[1:])
        if spec.name == "padding_mask":
            mask = np.ones(shape, "int32")
            mask[0, -3:] = 0
            out.append(mask)
        elif spec.name == "segment_ids":
            out.append((np.arange(T) >= T // 2).astype("int32") + np.zeros(shape, "int32"))
        elif "int" in spec.dtype:
            out.append(rng.integers(1, V, shape).astype("int32"))
        else:
            out.append(rng.normal(size=shape))
    return out


def _model(name, zero_biases=False):
    model = BACKBONES[name]()
    rng = np.random.default_rng(1)
    weights = []
    for w in model.weights:
        value = rng.normal(0, 0.4, w.shape)
        if "gamma" in w.path:
            value = 1 + 0.2 * value
        if zero_biases and any(k in w.path for k in ("bias", "beta", "position", "class_token")):
            value = np.zeros(w.shape)
        weights.append(value)
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_traced_backbone_computes_the_same_function(float64, name):
    model = _model(name)
    x = _data(model, np.random.default_rng(0))
    a = keras_lrp.create_analyzer("lrp.epsilon", model)
    names = [layer.name for layer in a.forward_model.layers]
    assert not any("transformer_layer_0" == n or n.endswith("_encoder") for n in names)
    assert any(n.endswith("_scores") for n in names) and any(n.endswith("_combine") for n in names)
    assert_close(np.asarray(a.forward_model(x)), model.predict(x, verbose=0), rtol=1e-6, atol=1e-9)


#: By default two rules per backbone (a stabilised one and AlphaBeta); all six with -m slow.
SLOW = pytest.mark.slow


@pytest.mark.parametrize("analyzer", [pytest.param("lrp.z", marks=SLOW), "lrp.epsilon",
                                      pytest.param("lrp.alpha_1_beta_0", marks=SLOW),
                                      "lrp.alpha_2_beta_1", pytest.param("lrp.z_plus", marks=SLOW),
                                      pytest.param("lrp.epsilon_IB", marks=SLOW)])
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_lrp_analyzers_give_finite_relevance(name, analyzer):
    model = _model(name)
    x = _data(model, np.random.default_rng(0), n=2)
    r = keras_lrp.create_analyzer(analyzer, model).analyze(x if len(x) > 1 else x[0])
    r = r if isinstance(r, list) else [r]
    for part, xi in zip(r, x):
        assert part.shape == xi.shape and np.all(np.isfinite(part))
    assert np.abs(r[0]).sum() > 0


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_cp_lrp_conserves_with_biases_zeroed(float64, name):
    model = _model(name, zero_biases=True)
    x = _data(model, np.random.default_rng(2), n=3)
    logits = model.predict(x, verbose=0).reshape(3, -1)
    a = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30, attention="cp")
    r = a.analyze(x if len(x) > 1 else x[0])
    r = r if isinstance(r, list) else [r]
    total = sum(part.reshape(3, -1).sum(axis=1) for part in r)
    assert_close(total, logits.max(axis=1), rtol=1e-9)
    attn = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30).analyze(
        x if len(x) > 1 else x[0])
    attn = attn if isinstance(attn, list) else [attn]
    assert np.abs(sum(p.reshape(3, -1).sum(axis=1) for p in attn) - logits.max(axis=1)).max() \
        > 1e-6  # AttnLRP's softmax rule does not conserve


def test_gpt2_explains_the_next_token_at_a_chosen_position(float64):
    """The LM head's logits (batch, T, V); position p, token k is index p·V + k. The causal
    mask of GPT-2 means tokens after p get exactly zero relevance."""
    model = _model("gpt2")
    x = _data(model, np.random.default_rng(3), n=2)
    x[1][:] = 1  # no padding
    a = keras_lrp.create_analyzer("lrp.epsilon", model, neuron_selection_mode="index")
    for p in (2, T - 1):
        tokens, mask = a.analyze(x, neuron_selection=p * V + np.array([5, 7]))
        assert np.all(tokens[:, p + 1:] == 0) and np.all(np.abs(tokens[:, :p + 1]).sum(1) > 0)
        assert np.all(mask == 0)


def test_registered_block_is_traced(float64):
    """A user's own block, registered with keras_lrp.register_block, is traced into
    its Dense layers, so the Z rule reaches them: equal to the NumPy Z rule on the unrolled
    block (bias-free, so relevance is x ⊙ W ⊙ …, here checked by conservation and by the
    per-input values of a one-layer case)."""

    @keras.saving.register_keras_serializable("keras_lrp_tests")
    class Block(L.Layer):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.inner = L.Dense(units, use_bias=False, name="inner")

        def call(self, x):
            return x + self.inner(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    x_in = keras.Input((4,))
    model = keras.Model(x_in, L.Dense(2, use_bias=False, name="out")(Block(name="block")(x_in)))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape) for w in model.weights])
    x = rng.normal(size=(3, 4))
    unregistered = keras_lrp.create_analyzer("lrp.z", model).analyze(x)  # traced by default
    with keras_lrp.composites.registry.REGISTRY.scoped():
        keras_lrp.register_block(Block)
        r = keras_lrp.create_analyzer("lrp.z", model).analyze(x)
    np.testing.assert_allclose(unregistered, r, rtol=1e-12)
    W = model.get_layer("block").inner.get_weights()[0]
    Wo = model.get_layer("out").get_weights()[0]
    logits = x @ (np.eye(4) + W) @ Wo
    j = logits.argmax(axis=1)
    h_inner = x @ W
    h = x + h_inner
    R_h = h * Wo[:, j].T / logits[np.arange(3), j][:, None] * logits[np.arange(3), j][:, None]
    R_x_direct = x / h * R_h
    R_x_inner = x * ((h_inner / h * R_h / h_inner) @ W.T)
    assert_close(r, R_x_direct + R_x_inner, rtol=1e-9)


def test_real_lm_head(float64):
    """keras-hub's GPT2CausalLM reuses the token embedding reversed (ReversibleEmbedding with
    reverse=True: logits = h Eᵀ). The analysis equals that of the same backbone with a separate
    bias-free Dense head whose kernel is Eᵀ, and the token relevance has the tokens' shape."""
    keras.utils.set_random_seed(5)
    bb = keras_hub.models.GPT2Backbone(vocabulary_size=V, num_layers=1, num_heads=2,
                                       hidden_dim=8, intermediate_dim=16, max_sequence_length=T)
    lm = keras_hub.models.GPT2CausalLM(backbone=bb, preprocessor=None)
    names = ("token_ids", "padding_mask")
    ins = {n: keras.Input((T,), dtype="int32", name=n) for n in names}
    model = keras.Model(ins, lm(ins))
    kernel = np.asarray(bb.token_embedding.embeddings).T
    head = L.Dense(V, use_bias=False, name="separate_head")
    ref = keras.Model(ins, head(bb(ins)))
    head.set_weights([kernel])
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, V, (2, T)).astype("int32"),
         "padding_mask": np.ones((2, T), "int32")}
    np.testing.assert_allclose(model(x), ref(x), rtol=1e-12, atol=1e-12)
    for name in ("lrp.epsilon", "lrp.alpha_1_beta_0"):
        got = keras_lrp.create_analyzer(name, model).analyze(x)
        want = keras_lrp.create_analyzer(name, ref).analyze(x)
        for g, w in zip(got, want):
            assert g.shape == (2, T)
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_bert_masked_lm_head(float64):
    """keras-hub's BertMaskedLM: its MaskedLMHead gathers the masked positions, runs a GELU
    Dense and a LayerNorm, then the tied embedding reversed plus a bias. The analysis equals
    that of the same backbone with the head written out in core layers (the same weights, a
    Dense with kernel Eᵀ), and the mask positions get no relevance."""
    keras.utils.set_random_seed(6)
    bb = keras_hub.models.BertBackbone(vocabulary_size=V, num_layers=1, num_heads=2,
                                       hidden_dim=8, intermediate_dim=16, max_sequence_length=T)
    mlm = keras_hub.models.BertMaskedLM(backbone=bb, preprocessor=None)
    shapes = {"mask_positions": (2,)}
    ins = {t.name: keras.Input(shapes.get(t.name, (T,)), dtype="int32", name=t.name)
           for t in mlm.inputs}
    model = keras.Model(ins, mlm(ins))
    head = mlm.masked_lm_head
    seq = bb({k: ins[k] for k in ("token_ids", "segment_ids", "padding_mask")})[
        "sequence_output"]
    picked = keras.ops.take_along_axis(seq, keras.ops.expand_dims(ins["mask_positions"], -1),
                                       axis=1)
    inter = L.Dense(8, activation="gelu", name="inter")
    norm = L.LayerNormalization(epsilon=head._intermediate_layer_norm.epsilon, name="norm")
    out = L.Dense(V, name="out")
    ref = keras.Model(ins, out(norm(inter(picked))))
    inter.set_weights(head._intermediate_dense.get_weights())
    norm.set_weights(head._intermediate_layer_norm.get_weights())
    out.set_weights([np.asarray(bb.token_embedding.embeddings).T, np.asarray(head._bias)])
    rng = np.random.default_rng(1)
    x = {"token_ids": rng.integers(1, V, (2, T)).astype("int32"),
         "segment_ids": np.zeros((2, T), "int32"), "padding_mask": np.ones((2, T), "int32"),
         "mask_positions": np.array([[1, 4], [2, 7]], "int32")}
    np.testing.assert_allclose(model(x), ref(x), rtol=1e-12, atol=1e-12)
    names = [t.name for t in model.inputs]
    got = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x)
    want = keras_lrp.create_analyzer("lrp.epsilon", ref).analyze(x)
    for name, g, w in zip(names, got, want):
        assert_close(g, w, rtol=1e-9, atol=1e-12)
        if name == "mask_positions":
            assert np.all(g == 0)
    assert np.abs(got[names.index("token_ids")]).max() > 0
