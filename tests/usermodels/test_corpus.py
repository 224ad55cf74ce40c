"""The user-model corpus (:mod:`usermodels.corpus`, models written as keras.io's examples write
them) explained by every LRP family and the gradient, with numbers checked independently:

* the analysis' forward pass equals the user's model (``model(x, training=False)``), and the
  build-time forward check ran;
* the relevances are finite and shaped like the inputs (one value per token for token ids);
* the gradient equals the backend's own autodiff of the user's model;
* where the model is piecewise linear (``corpus_conserves``), in float64: Σ R of ``lrp.z_IB``
  equals the explained logit, and ``lrp.z`` equals input × gradient (LRP-0 and gradient × input
  coincide on ReLU networks: Montavon et al., "Layer-wise relevance propagation: an overview",
  2019, §10.2.1; biases and max-pooling included).

The full product (every family on every model) runs by default on TensorFlow; the other backends
run the first family and the gradient (what differs between backends is the seam, which the
reference tests cover rule by rule), and the float64 identities run on TensorFlow only (Keras
computes float64 partly in float32 elsewhere).
"""

import keras
import numpy as np
import pytest
from helpers import BACKEND, assert_close, autodiff, keras_dtype
from keras import ops

import keras_lrp
from usermodels.corpus import INPUTS, MODELS

FAMILIES = ["lrp.epsilon", "lrp.alpha_1_beta_0_IB", "lrp.z", "lrp.epsilon_plus"]
#: Models keras-lrp refuses, with what the refusal must name.
REFUSED = {
    "audio_melspectrogram": (ValueError, "mel_spectrogram"),  # an STFT magnitude: no rule
}
#: Models Keras cannot build or run on a backend (none known today).
NOT_ON = {}

_BUILT = {}


def _model(name, dtype="float32"):
    key = (name, dtype)
    if key not in _BUILT:
        with keras_dtype(dtype):
            model = MODELS[name]()
        x = INPUTS[name](2, np.random.default_rng(1))
        if dtype == "float64":
            x = {k: v.astype(dtype) for k, v in x.items()} if isinstance(x, dict) else \
                x.astype(dtype) if "float" in str(x.dtype) else x
        _BUILT[key] = (model, x)
    return _BUILT[key]


def _arrays(x, model):
    """The inputs as a list in the model's input order (the analyzers take dicts too)."""
    if isinstance(x, dict):
        return [x[t._keras_history.operation.name] for t in model.inputs]
    return [x]


def _logits(model, x):
    out = model(x, training=False)
    return np.asarray(keras.ops.convert_to_numpy(out), dtype="float64")


def _families(name):
    model, _ = _model(name)
    names = FAMILIES if BACKEND == "tensorflow" else FAMILIES[:1]
    return names + ([] if getattr(model, "corpus_tokens", False) else ["gradient"])


CASES = [(m, a) for m in MODELS if m not in REFUSED for a in _families(m)]


@pytest.mark.parametrize("name,method", CASES, ids=[f"{m}-{a}" for m, a in CASES])
def test_corpus_model_is_explained(name, method):
    model, x = _model(name)
    analyzer = keras_lrp.create_analyzer(method, model)
    assert analyzer.forward_checked
    np.testing.assert_allclose(_flat(analyzer.forward_model(x, training=False)),
                               _logits(model, x).reshape(len(_arrays(x, model)[0]), -1),
                               rtol=1e-4, atol=1e-4 * np.abs(_logits(model, x)).max())
    relevance = analyzer.analyze(x)
    relevance = relevance if isinstance(relevance, list) else [relevance]
    for r, a in zip(relevance, _arrays(x, model)):
        assert r.shape == (a.shape if "float" in str(a.dtype) else a.shape[:2]), (r.shape, a.shape)
        assert np.isfinite(r).all()
        assert np.abs(r).max() > 0  # never a silent zero map
    if method == "gradient":
        xs = _arrays(x, model)  # NumPy: autodiff makes the backend's tensors itself
        logits = _logits(model, x).reshape(len(xs[0]), -1)
        top = logits.argmax(axis=1)
        mask = np.eye(logits.shape[1])[top].astype(_arrays(x, model)[0].dtype)

        def explained(*ts):
            out = model(ts[0] if len(ts) == 1 else list(ts), training=False)
            return ops.sum(ops.reshape(out, (len(top), -1)) * ops.convert_to_tensor(mask))

        expected = autodiff(explained, *xs)
        for r, e in zip(relevance, expected):
            np.testing.assert_allclose(r, np.asarray(e), rtol=1e-5,
                                       atol=1e-6 * np.abs(np.asarray(e)).max())


def _flat(t):
    a = np.asarray(keras.ops.convert_to_numpy(t), dtype="float64")
    return a.reshape(len(a), -1)


CONSERVING = [m for m in MODELS if m not in REFUSED and
              _model(m)[0].corpus_conserves]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="Keras computes float64 only on "
                    "TensorFlow (on JAX and PyTorch partly in float32, where LRP-0's unguarded "
                    "ratios near z = 0 lose the identities: separable_resnet's residual sums "
                    "cancel)")
@pytest.mark.parametrize("name", CONSERVING)
def test_corpus_conservation_and_lrp0_in_float64(name, float64):
    model, x = _model(name, "float64")
    arrays = _arrays(x, model)
    ib = keras_lrp.create_analyzer("lrp.z_IB", model, neuron_selection_mode="index")
    logits = _logits(model, x).reshape(len(arrays[0]), -1)
    top = logits.argmax(axis=1)
    relevance = ib.analyze(x, neuron_selection=top)
    relevance = relevance if isinstance(relevance, list) else [relevance]
    total = sum(r.reshape(len(r), -1).sum(axis=1) for r in relevance)
    # TensorFlow resizes in float32 whatever the dtype (tf.image.resize): 1e-6 where it does
    tol = 1e-6 if _has(model, keras.layers.Resizing) else 1e-9
    assert_close(total, logits[np.arange(len(top)), top], rtol=tol)
    if _offset_preprocessing(model):
        return  # the identity through x ↦ (x − μ)/σ is not the Z rule, so LRP-0 ≠ x · ∇
    z = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    txg = keras_lrp.create_analyzer("input_t_gradient", model, neuron_selection_mode="index")
    for a, b in zip(_listed(z.analyze(x, neuron_selection=top)),
                    _listed(txg.analyze(x, neuron_selection=top))):
        assert_close(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max())


def _has(model, cls) -> bool:
    return any(isinstance(layer, cls) for layer in model._flatten_layers(include_self=False))


def _offset_preprocessing(model) -> bool:
    """Whether the model holds a Normalization or a Rescaling with an offset (the identity
    rule passes relevance through them as if the offset were not there)."""
    layers = [layer for layer in model._flatten_layers(include_self=False)]
    return any(isinstance(layer, keras.layers.Normalization) or
               (isinstance(layer, keras.layers.Rescaling) and float(layer.offset) != 0.0)
               for layer in layers)


def _listed(r):
    return r if isinstance(r, list) else [r]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_corpus_refusals_name_the_layer(name):
    model, _ = _model(name)
    error, words = REFUSED[name]
    with pytest.raises(error, match=words):
        keras_lrp.create_analyzer("lrp.epsilon", model)
