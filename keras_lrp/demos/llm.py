"""The LLM demo: a keras-hub Llama trained to copy the marked word
(:mod:`keras_lrp.demos.copy_task`), explained by AttnLRP, CP-LRP, input × gradient, gradient and
chance.

:func:`run_llm_demo` loads the shipped ``copy_llama.keras`` (trained by
``examples/train_copy_llama.py``) and its test prompts, explains the logit of each prompt's
correct answer at the last position, and scores each method by how often its most relevant
prompt token is the source (the marked word), how often the source is among its two most
relevant tokens, and the source's mean rank. It writes ``llm_summary.txt`` (the table it prints) and
``llm_tokens.png``/``.html`` (token heatmaps of the first prompts, one row per method).

Input × gradient and gradient are taken at the token embeddings (the model's first float
tensors; keras-lrp's gradient analyzers refuse integer inputs): e ⊙ ∂y/∂e summed over the
embedding, and ‖∂y/∂e‖₂ per token.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from keras_lrp.demos.copy_task import LENGTH, WORDS

MODELS = Path(__file__).resolve().parent / "models"


def _load(models_dir: Optional[str]):
    try:
        import keras_hub  # noqa: F401 - registers the model's classes
    except ImportError:
        raise FileNotFoundError(
            "The LLM demo's model is a keras-hub Llama: install keras-hub "
            "(pip install 'keras-lrp[tensorflow,hub]').") from None
    import keras

    folder = Path(models_dir) if models_dir else MODELS
    path, data = folder / "copy_llama.keras", folder / "copy_test.npz"
    for p in (path, data):
        if not p.exists():
            raise FileNotFoundError(f"The LLM demo needs {p} (made by "
                                    "examples/train_copy_llama.py).")
    return keras.models.load_model(path, compile=False), np.load(data)


def embedding_gradients(lm, tokens, index):
    """(input × gradient, gradient norm), (n, T) each, of the logits at flat ``index`` with
    respect to the token embeddings of keras-hub's Llama ``lm`` (its backbone's layers called
    on the embedding vectors)."""
    from keras import ops

    from keras_lrp import backend

    bb = lm.backbone
    mask = ops.convert_to_tensor(np.ones(tokens.shape, "int32"))
    embedded = bb.token_embedding(ops.convert_to_tensor(tokens))

    def logits_at(e):
        x = e
        for block in bb.transformer_layers:
            x = block(x, decoder_padding_mask=mask)
        logits = bb.token_embedding(bb.layer_norm(x), reverse=True)
        flat = ops.reshape(logits, (logits.shape[0], -1))
        return ops.sum(flat * ops.one_hot(ops.convert_to_tensor(index), flat.shape[-1]))

    _, pullback = backend.vjp(logits_at, embedded)
    grad = np.asarray(ops.convert_to_numpy(pullback(ops.convert_to_tensor(1.0,
                                                                          embedded.dtype))[0]))
    e = np.asarray(ops.convert_to_numpy(embedded))
    return (e * grad).sum(-1), np.linalg.norm(grad, axis=-1)


def _scores(relevance, sources) -> Dict[str, float]:
    order = np.argsort(-relevance, axis=1)
    rows = np.arange(len(sources))
    return {"top-1 is source": float(np.mean(order[:, 0] == sources)),
            "source in top 2": float(np.mean((order[:, :2] == sources[:, None]).any(1))),
            "mean rank of source": float(np.mean(np.argmax(order == sources[:, None], 1)
                                                 + 1))} if len(rows) else {}


def run_llm_demo(out_dir: str = "lrp-demo-llm", models_dir: Optional[str] = None,
                 n: int = 200) -> Dict[str, Dict[str, float]]:
    """Explain the copying model on ``n`` test prompts; print and write the table, write token
    heatmaps. Returns {method: scores}."""
    import keras_lrp
    from keras_lrp.io.atomic import write_atomically
    from keras_lrp.plots.tokens import plot_tokens, tokens_html

    lm, data = _load(models_dir)
    tokens, answers, sources = data["x"][:n], data["y"][:n], data["source"][:n]
    inputs = {"token_ids": tokens, "padding_mask": np.ones_like(tokens)}
    logits = np.asarray(lm(inputs))
    accuracy = float(np.mean(np.argmax(logits[:, -1], -1) == answers))
    index = (LENGTH - 1) * logits.shape[-1] + answers
    methods: Dict[str, np.ndarray] = {}
    for label, kw in (("AttnLRP (lrp.z)", {}), ("CP-LRP (lrp.z, attention='cp')",
                                               {"attention": "cp"})):
        a = keras_lrp.create_analyzer("lrp.z", lm, neuron_selection_mode="index", **kw)
        r = a.analyze(inputs, neuron_selection=index)
        methods[label] = r[[t.name for t in lm.inputs].index("token_ids")]
    methods["input × gradient"], methods["gradient (norm)"] = \
        embedding_gradients(lm, tokens, index)
    methods["random"] = np.random.default_rng(0).random(tokens.shape)
    table = {label: _scores(r, sources) for label, r in methods.items()}
    lines = [f"copy the marked word, {n} test prompts of {LENGTH} tokens; model accuracy "
             f"{accuracy:.3f}; explained: the correct answer's logit at the last position",
             f"{'method':34s} {'top-1 is source':>16s} {'source in top 2':>16s} "
             f"{'mean rank':>10s}"]
    for label, s in table.items():
        lines.append(f"{label:34s} {s['top-1 is source']:16.3f} {s['source in top 2']:16.3f} "
                     f"{s['mean rank of source']:10.2f}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    os.makedirs(out_dir, exist_ok=True)
    write_atomically(os.path.join(out_dir, "llm_summary.txt"), lambda f: f.write(text.encode()))
    rows, titles = [], []
    for i in range(min(4, n)):
        words = [WORDS[int(t)] for t in tokens[i]]
        for label, r in methods.items():
            rows.append((words, r[i]))
            titles.append(f"→ {WORDS[int(answers[i])]}: {label}")
    plot_tokens(rows, titles=titles, path=os.path.join(out_dir, "llm_tokens.png"))
    tokens_html(rows, titles=titles, path=os.path.join(out_dir, "llm_tokens.html"))
    return table


__all__ = ["embedding_gradients", "run_llm_demo"]
