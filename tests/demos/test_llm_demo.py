"""The LLM demo's task and scores (keras_lrp.demos.copy_task, keras_lrp.demos.llm): the prompts
follow the task's definition, the scores equal values worked out by hand, the embedding gradient
equals a finite difference, and on the shipped copying model AttnLRP's most relevant token is
the marked word far above chance (the demo's table, run by ``keras-lrp demo --task llm``)."""

import numpy as np
import pytest

from keras_lrp.demos import copy_task as task


def test_copy_data_follows_its_definition():
    x, answers, sources = task.copy_data(400, seed=4)
    assert x.shape == (400, task.LENGTH) and x.dtype == np.int32
    assert np.all(x[:, -1] == task.QUESTION)
    words = x[:, :-1]
    marked = words > max(task.PLAIN)
    assert np.all(marked.sum(1) == 1) and np.all(np.argmax(marked, 1) == sources)
    assert np.all(words[np.arange(400), sources] - task.MARK == answers)
    assert np.isin(words[~marked], task.PLAIN).all() and np.isin(answers, task.PLAIN).all()
    assert 0.2 < np.mean([a in row for a, row in zip(answers, words)]) < 0.6  # distractors


def test_scores_by_hand():
    from keras_lrp.demos.llm import _scores

    relevance = np.array([[0.1, 0.9, 0.3], [0.5, 0.2, 0.4], [0.0, 0.1, 0.2]])
    sources = np.array([1, 2, 0])
    s = _scores(relevance, sources)
    # ranks of the sources: 1 (0.9 first), 2 (0.4 after 0.5), 3 (0.0 last)
    assert s["top-1 is source"] == pytest.approx(1 / 3)
    assert s["source in top 2"] == pytest.approx(2 / 3)
    assert s["mean rank of source"] == pytest.approx(2.0)


def test_shipped_copy_model(tmp_path, capsys):
    pytest.importorskip("keras_hub")
    from keras_lrp.demos.llm import run_llm_demo

    table = run_llm_demo(out_dir=str(tmp_path), n=100)
    attn = table["AttnLRP (lrp.z)"]["top-1 is source"]
    chance = table["random"]["top-1 is source"]
    assert attn >= 0.8 and chance <= 0.3, table
    out = capsys.readouterr().out
    assert "model accuracy" in out and (tmp_path / "llm_summary.txt").read_text() in out
    assert (tmp_path / "llm_tokens.png").stat().st_size > 1000


def test_embedding_gradient_is_a_derivative():
    """input × gradient at the embeddings against a central difference of the logit along the
    embeddings themselves: d/dt y(t·e) at t = 1 is Σ e ⊙ ∂y/∂e."""
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    from keras_lrp.demos.llm import embedding_gradients

    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(2)
        bb = keras_hub.models.LlamaBackbone(vocabulary_size=task.VOCAB, num_layers=1,
                                            hidden_dim=16, intermediate_dim=32,
                                            num_query_heads=2, num_key_value_heads=1)
        lm = keras_hub.models.LlamaCausalLM(backbone=bb, preprocessor=None)
        x, answers, _ = task.copy_data(2, seed=0)
        index = (task.LENGTH - 1) * task.VOCAB + answers
        ixg, norm = embedding_gradients(lm, x, index)
        e = np.asarray(bb.token_embedding(x))
        mask = np.ones_like(x)

        def y(scale):
            h = e * scale
            for block in bb.transformer_layers:
                h = block(h, decoder_padding_mask=mask)
            logits = np.asarray(bb.token_embedding(bb.layer_norm(h), reverse=True))
            return logits.reshape(2, -1)[np.arange(2), index]

        # keras-hub's norms compute in float32 inside: h = 1e-3 keeps their rounding (~1e-8 of
        # the logits) at ~1e-5 of the derivative, the central difference's own error at ~1e-6
        # the rounding is of the logits' scale, not of each entry's: atol at 1e-3 of the
        # largest (keras-hub 0.32's norms put one small entry 1.2e-3 off relative)
        h = 1e-3
        expected = (y(1 + h) - y(1 - h)) / (2 * h)
        np.testing.assert_allclose(ixg.sum(-1), expected, rtol=1e-3,
                                   atol=1e-3 * np.abs(expected).max())
        assert norm.shape == x.shape and np.all(norm >= 0)
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")
