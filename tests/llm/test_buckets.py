"""Prompts of any length without a build per length (keras_lrp.analyzers.lengths): a model of
open length is explained by analyses built for a few lengths, its inputs padded to them.

The oracle is the same analyzer with ``buckets="exact"`` (one analysis per length, the inputs
unpadded), in float64. The two agree to 1e-6 of the relevance's scale, not to float64's
rounding: keras-hub computes its norms and softmaxes in float32 inside float64 models, and
their rounding changes with the padded shapes (measured: up to 2e-7 relative on these models).
"""
import keras
import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")
import hub_lm  # noqa: E402

import keras_lrp  # noqa: E402
from keras_lrp.analyzers.base import OutputRelevance  # noqa: E402
from keras_lrp.analyzers.lengths import MIN_BUCKET, PerLength  # noqa: E402

FAST = ("llama",)
#: the causal LM families of tests/llm/test_families.py, and GPT-2 (learned positions)
FAMILIES = [pytest.param(f, marks=() if f in FAST else pytest.mark.slow)
            for f in list(hub_lm.FAMILIES) + ["gemma3_window", "gpt2"]]


def _lm(family):
    if family == "gpt2":
        bb = keras_hub.models.GPT2Backbone(vocabulary_size=hub_lm.V, num_layers=2, num_heads=2,
                                           hidden_dim=16, intermediate_dim=32,
                                           max_sequence_length=64)
        return keras_hub.models.GPT2CausalLM(backbone=bb, preprocessor=None)
    if family == "gemma3_window":
        return hub_lm.causal_lm("gemma3", use_sliding_window_attention=True,
                                sliding_window_size=3)
    return hub_lm.causal_lm(family)


def _close(got, want):
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6 * np.abs(w).max())


@pytest.mark.parametrize("family", FAMILIES)
def test_padded_equals_unpadded_on_causal_lms(float64, family):
    """Two prompt lengths (5 and 11) share the analysis built for 16; their relevances equal
    the unpadded analyses', for logits chosen by index (a different position per row) and, on
    Llama, by max_activation (the argmax over the real positions only: the padded ones are
    excluded; the same code on every family)."""
    keras.utils.set_random_seed(5)
    lm = _lm(family)
    rng = np.random.default_rng(1)
    for mode in ("index", "max_activation") if family in FAST else ("index",):
        padded = keras_lrp.create_analyzer("lrp.z", lm, neuron_selection_mode=mode)
        exact = keras_lrp.create_analyzer("lrp.z", lm, neuron_selection_mode=mode,
                                          buckets="exact")
        for t in (5, 11):
            x = {"token_ids": rng.integers(1, hub_lm.V, (2, t)).astype("int32"),
                 "padding_mask": np.ones((2, t), "int32")}
            sel = [(t - 1) * hub_lm.V + 3, (t - 3) * hub_lm.V + 7] if mode == "index" else None
            _close(padded.analyze(x, neuron_selection=sel), exact.analyze(x, sel))
        assert (padded.builds, sorted(padded.analyzers)) == (1, [MIN_BUCKET]), family
        assert exact.builds == 2 and padded.padding is True


def test_padded_equals_unpadded_on_a_masked_encoder(float64):
    """A bidirectional encoder (BERT's text classifier, its [CLS] output) told by its padding
    mask which positions are padding: padding to the bucket changes nothing."""
    keras.utils.set_random_seed(2)
    bb = keras_hub.models.BertBackbone(vocabulary_size=hub_lm.V, num_layers=2, num_heads=2,
                                       hidden_dim=16, intermediate_dim=32,
                                       max_sequence_length=64)
    model = keras_hub.models.BertTextClassifier(backbone=bb, num_classes=3, preprocessor=None,
                                                dropout=0.0)
    padded = keras_lrp.create_analyzer("lrp.epsilon", model)
    exact = keras_lrp.create_analyzer("lrp.epsilon", model, buckets="exact")
    rng = np.random.default_rng(4)
    for t in (6, 9):
        x = {"token_ids": rng.integers(1, hub_lm.V, (2, t)).astype("int32"),
             "segment_ids": np.zeros((2, t), "int32"), "padding_mask": np.ones((2, t), "int32")}
        _close(padded.analyze(x), exact.analyze(x))
    assert padded.builds == 1 and padded.padding is True


class AddPositions(keras.layers.Layer):
    """A layer of the user's (traced, so the model gets PerLength): a position embedding of
    ``table`` positions added to the token embedding, averaged over the whole sequence
    (padding included) with ``mean``."""

    def __init__(self, table=64, mean=True, **kwargs):
        super().__init__(**kwargs)
        self.table, self.mean = table, mean

    def build(self, shape):
        self.positions = self.add_weight(shape=(self.table, 4), name="positions")

    def call(self, x):
        h = x + self.positions[:keras.ops.shape(x)[1]]
        return keras.ops.mean(h, axis=1) if self.mean else h


def _mean_model(table=64, mean=True):
    keras.utils.set_random_seed(3)
    ids = keras.Input((None,), dtype="int32", name="ids")
    h = AddPositions(table, mean)(keras.layers.Embedding(20, 4)(ids))
    return keras.Model(ids, keras.layers.Dense(3)(h))


def test_no_padding_beyond_the_longest_length_the_model_takes():
    """Positions from a table of 20: a prompt of 18 cannot be padded to 32 (the model fails
    there), so it gets its own analysis; a prompt of 10 is then padded to 18 (the analysis
    built, shorter than the failing length)."""
    model = _mean_model(table=20, mean=False)  # position-wise: padding changes nothing
    a = keras_lrp.create_analyzer("lrp.epsilon", model)
    exact = keras_lrp.create_analyzer("lrp.epsilon", model, buckets="exact")
    rng = np.random.default_rng(0)
    for t in (18, 10):
        x = rng.integers(0, 20, (2, t)).astype("int32")
        np.testing.assert_allclose(a.analyze(x), exact.analyze(x), rtol=1e-5, atol=1e-6)
    assert a.too_long == 32 and sorted(a.analyzers) == [18] and a.padding is True


def test_a_model_that_padding_changes_gets_exact_lengths():
    """A mean over every position changes when the inputs are padded: the check on the user's
    model sees it, warns once naming the output and the difference, and each length gets its
    own analysis, equal to the analysis of the model at that fixed length."""
    model = _mean_model()
    a = keras_lrp.create_analyzer("lrp.epsilon", model)
    x = np.random.default_rng(0).integers(0, 20, (2, 5)).astype("int32")
    with pytest.warns(UserWarning, match=r"changes by .* padded to 16, so each input length"):
        got = a.analyze(x)
    assert a.padding is False and "padded to 16" in a.padding_error
    assert sorted(a.analyzers) == [5] and got.shape == (2, 5)
    fixed = keras_lrp.create_analyzer(
        "lrp.epsilon", keras.Model(i := keras.Input((5,), dtype="int32", name="ids"), model(i)))
    np.testing.assert_allclose(got, fixed.analyze(x), rtol=1e-6, atol=1e-7)


def test_which_analysis_serves_a_length():
    """The bucket policy, on a stub builder: the power-of-two bucket if built; else the
    shortest longer analysis, until the bucket was asked for ``patience`` times; at most
    ``max_analyses`` kept, least recently used dropped first."""
    made = []

    def make(model, axes):
        made.append(model.inputs[0].shape[1])
        return object()

    a = PerLength(make, _mean_model(table=1024), patience=2, max_analyses=2)
    a.padding = True  # as after a passed check
    assert [a.bucket(n) for n in (1, 16, 17, 100, 128, 129)] == [16, 16, 32, 128, 128, 256]
    served = []
    for n in (40, 10, 12, 9, 300, 64):
        built = a.serving(n)
        a.for_length(n, built)
        served.append(built)
    # 40 → 64 built; 10 and 12 served by 64 (bucket 16 asked twice); 9 → 16 built;
    # 300 → 512 built (drops 64, the least recently used); 64 → served by 512
    assert served == [64, 64, 64, 16, 512, 512]
    assert made == [64, 16, 512] and list(a.analyzers) == [16, 512]
    listed = PerLength(make, _mean_model(), buckets=[24, 200])
    assert [listed.bucket(n) for n in (3, 24, 25, 200, 201)] == [24, 24, 200, 200, 256]


@pytest.mark.parametrize("kwargs, match", [
    ({"buckets": "powers"}, "buckets must be"), ({"buckets": [0, 8]}, "buckets must be"),
    ({"patience": -1}, "patience must be"), ({"max_analyses": 0}, "max_analyses must be")])
def test_bad_bucket_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_lrp.create_analyzer("lrp.epsilon", _mean_model(), **kwargs)


def test_output_relevance_at_real_positions_only():
    """OutputRelevance with length_axes, against the mask worked out by hand: the row of
    length 2 may select only positions 0-1, the row of length 3 positions 0-2."""
    y = np.zeros((2, 4, 3), "float32")
    y[:, 3, 0] = 9.0  # the largest logit sits at a padded position of both rows
    y[0, 1, 2], y[1, 2, 1] = 5.0, 4.0  # the largest real ones
    lengths = np.array([2, 3], "int32")
    got = OutputRelevance("max_activation", "logit", length_axes=(1,))([y, lengths])
    want = np.zeros_like(y)
    want[0, 1, 2], want[1, 2, 1] = 5.0, 4.0
    np.testing.assert_array_equal(np.asarray(got), want)
    got = OutputRelevance("all", "one", length_axes=(1,))([y, lengths])
    want = np.zeros_like(y)
    want[0, :2], want[1, :3] = 1.0, 1.0
    np.testing.assert_array_equal(np.asarray(got), want)
    y[1, 0, 1] = 2.0
    got = OutputRelevance("index", "logit", length_axes=(1,))(
        [y, np.array([11, 1], "int32"), lengths])  # row 0: position 3 is padding
    want = np.zeros_like(y)
    want[1, 0, 1] = 2.0
    np.testing.assert_array_equal(np.asarray(got), want)


def test_generation_reuses_its_analyses(float64):
    """explain_generation on a model of open length, for a continuation growing by one token:
    the second call builds nothing (both lengths are served by the bucket of 16)."""
    keras.utils.set_random_seed(9)
    lm = hub_lm.causal_lm("llama")
    prompt, more = np.array([3, 9, 4, 17]), np.array([5, 8, 21])
    first = keras_lrp.explain_generation("lrp.z", lm, prompt, more[:2])
    from keras_lrp import generation

    made = next(v for k, v in generation._MADE.items() if v["model"] is lm)
    builds = made["logits"].builds, made["log_probs"][1].builds
    second = keras_lrp.explain_generation("lrp.z", lm, prompt, more)
    assert (made["logits"].builds, made["log_probs"][1].builds) == builds == (1, 1)
    # the first continuation's rows are unchanged by the token after them (causality)
    np.testing.assert_allclose(second.per_token[:2, :6], first.per_token[:, :6], rtol=0,
                               atol=1e-6 * np.abs(first.per_token).max())
