"""keras-hub's text and audio encoders that were refused before: ESM and RoFormerV2 (their
rotary layers return two tensors where their output spec says one, or test ``ops.ndim(x)``),
Whisper's encoder (its
attention is keras-hub's cached MultiHeadAttention without a key bias), F-Net (its token
mixing is the real part of a 2-D FFT, :class:`~keras_lrp.layers.structural.FourierRelevance`)
and T5's encoder (its blocks return ``(x, position_bias)`` and its attention
``(x, bias, None)``, its norm is an RMS norm, its padding mask is broadcast over heads and
rows), DeBERTaV3 (its disentangled attention gathers its relative scores with ``tf.gather`` on
TensorFlow, :mod:`keras_lrp.canonizers.foreign_calls`, and its projections were built for any
length) and XLNet (its TwoStreamRelativeAttention, a MultiHeadAttention with its own call, is
traced: the relative shift slices and broadcasts to sizes read off the batch, and its position
table is laid out by batch). Built from tiny configs with random weights; keras-hub is a test
extra.

Checked in float32 (F-Net's layer casts to float32 for its FFT; T5's attention does not build
in float64): the analysis' forward pass is the model's (1e-5), and CP-LRP conserves the
explained logit to 1e-4 (float32 sums over a few hundred terms) with every bias, LayerNorm β
and position embedding zeroed and ε = 1e-30 (XLNet's content, positional and segment
attention biases are among the biases: they enter only the scores, which CP-LRP holds)."""

import keras
import numpy as np
import pytest
from helpers import assert_close

import keras_lrp

keras_hub = pytest.importorskip("keras_hub")
L = keras.layers
T, V = 8, 40
#: Weights that act as biases (zeroed for the conservation check).
BIAS_LIKE = ("bias", "beta", "position")
TEXT = dict(vocabulary_size=V, num_layers=1, hidden_dim=8, intermediate_dim=16)


def _f_net():
    bb = keras_hub.models.FNetBackbone(**TEXT, max_sequence_length=T)
    ins = {n: keras.Input((T,), dtype="int32", name=n) for n in ("token_ids", "segment_ids")}
    return keras.Model(ins, L.Dense(3, name="head")(
        L.GlobalAveragePooling1D()(bb(ins)["sequence_output"])))


def _t5_encoder():
    bb = keras_hub.models.T5Backbone(**TEXT, num_heads=2)
    keys = ("encoder_token_ids", "encoder_padding_mask")
    enc = keras.Model({k: bb._inputs_struct[k] for k in keys},
                      bb._outputs_struct["encoder_sequence_output"])
    ins = {k: keras.Input((T,), dtype="int32", name=k) for k in keys}
    return keras.Model(ins, L.Dense(3, name="head")(L.GlobalAveragePooling1D()(enc(ins))))


def _whisper_encoder():
    bb = keras_hub.models.WhisperBackbone(**TEXT, num_heads=2, num_mels=4,
                                          max_encoder_sequence_length=2 * T,
                                          max_decoder_sequence_length=T)
    enc = keras.Model({"encoder_features": bb._inputs_struct["encoder_features"]},
                      bb._outputs_struct["encoder_sequence_output"])
    ins = {"encoder_features": keras.Input((2 * T, 4), name="encoder_features")}
    return keras.Model(ins, L.Dense(3, name="head")(L.GlobalAveragePooling1D()(enc(ins))))


def _backbone_mean(bb, names):
    ins = {n: keras.Input((T,), dtype="int32", name=n) for n in names}
    out = bb(ins)
    out = out["sequence_output"] if isinstance(out, dict) else out
    return keras.Model(ins, L.Dense(3, name="head")(L.GlobalAveragePooling1D()(out)))


def _esm():
    return _backbone_mean(keras_hub.models.ESMBackbone(**TEXT, num_heads=2,
                                                       max_sequence_length=2 * T),
                          ("token_ids",))


def _roformer_v2():
    return _backbone_mean(keras_hub.models.RoformerV2Backbone(**TEXT, num_heads=2, head_size=4),
                          ("token_ids", "segment_ids", "padding_mask"))


def _deberta_v3():
    return _backbone_mean(keras_hub.models.DebertaV3Backbone(**TEXT, num_heads=2,
                                                             max_sequence_length=T,
                                                             bucket_size=4),
                          ("token_ids", "padding_mask"))


def _xlnet():
    return _backbone_mean(keras_hub.models.XLNetBackbone(**TEXT, num_heads=2),
                          ("token_ids", "padding_mask", "segment_ids"))


ENCODERS = {"esm": _esm, "roformer_v2": _roformer_v2, "f_net": _f_net, "t5_encoder": _t5_encoder,
            "whisper_encoder": _whisper_encoder, "deberta_v3": _deberta_v3, "xlnet": _xlnet}


def _inputs(model, rng, n=3):
    out = {}
    for spec in model.inputs:
        name = spec.name
        if "features" in name:
            out[name] = rng.normal(size=(n,) + tuple(spec.shape[1:])).astype("float32")
        elif "mask" in name:
            out[name] = np.ones((n, T), "int32")
        elif "segment" in name:
            out[name] = np.zeros((n, T), "int32")
        else:
            out[name] = rng.integers(1, V, (n, T)).astype("int32")
    return out


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_cp_lrp_of_a_text_encoder_conserves_with_biases_zeroed(name):
    model = ENCODERS[name]()
    rng = np.random.default_rng(1)
    model.set_weights([np.zeros(w.shape) if any(k in w.path for k in BIAS_LIKE) else
                       (1 + 0.2 * rng.normal(size=w.shape)) if "gamma" in w.path or
                       "layer_norm" in w.path else rng.normal(0, 0.4, w.shape)
                       for w in model.weights])
    x = _inputs(model, np.random.default_rng(0))
    logits = model.predict(x, verbose=0)
    a = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30, attention="cp")
    assert_close(np.asarray(a.forward_model(x)), logits, rtol=1e-5, atol=1e-6)
    r = a.analyze(x)
    total = sum(np.asarray(part).reshape(3, -1).sum(axis=1)
                for part in (r.values() if isinstance(r, dict) else
                             r if isinstance(r, list) else [r]))
    assert_close(total, logits.max(axis=1), rtol=1e-4)
