"""Make LXT's AttnLRP and CP-LRP reference numbers for the tiny transformer of
tests/transformer_spec.py (Achtibat et al., ICML 2024; the ``lxt`` package, PyTorch).

Run it in its own environment (PyTorch and LXT), never in keras-lrp's:

    python3 -m venv /tmp/zen && /tmp/zen/bin/pip install torch lxt --no-deps
    /tmp/zen/bin/python tools/make_lxt_reference.py tests/data/lxt

``lxt.efficient`` imports Hugging Face transformers for its model patches, which this
network does not use (and whose current release lacks what LXT 2.1 imports), so the module with
LXT's rules, ``lxt/efficient/rules.py``, is loaded on its own. The network is written in PyTorch
with exactly the operations of Keras' layers, and LXT's rules are applied as its model patches
apply them: ``divide_gradient`` on the query and key (÷ 4) and the value (÷ 2) of every attention
(the uniform rule of both products), the identity rule (``identity_rule_implicit``) on GELU,
LayerNorm's standard deviation detached (``stop_gradient``), and, for CP-LRP, the attention
weights detached. LXT then reads the relevance as gradient × input at the token embeddings (the
"efficient" Gradient*Input framework); a token's relevance is the sum over its embedding.
Float64 throughout. Writes ``tiny_transformer[_nobias].npz``: the weights (by Keras weight path),
the tokens, the explained indices, and ``attnlrp|max_activation``, ``attnlrp|index``,
``cp|max_activation``, ``cp|index`` (shape (n, T)).
"""

import importlib.util
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import transformer_spec as spec  # noqa: E402


def _lxt_rules():
    import lxt

    path = os.path.join(os.path.dirname(lxt.__file__), "efficient", "rules.py")
    module_spec = importlib.util.spec_from_file_location("lxt_efficient_rules", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


RULES = _lxt_rules()


def forward(w, tokens, mode):
    """Logits and the token embeddings (the leaf the relevance is read at)."""
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()}
    emb = t["embed/embeddings"][torch.tensor(tokens, dtype=torch.long)].detach()
    emb.requires_grad_(True)
    x = emb
    scale = 1.0 / np.sqrt(spec.KEY_DIM)
    for b in range(1, spec.BLOCKS + 1):
        p = f"mha{b}/"
        q = torch.einsum("btc,chk->bthk", x, t[p + "query/kernel"]) + t[p + "query/bias"]
        k = torch.einsum("btc,chk->bthk", x, t[p + "key/kernel"]) + t[p + "key/bias"]
        v = torch.einsum("btc,chk->bthk", x, t[p + "value/kernel"]) + t[p + "value/bias"]
        if mode == "attnlrp":
            q, k = RULES.divide_gradient(q, 4), RULES.divide_gradient(k, 4)
            v = RULES.divide_gradient(v, 2)
        scores = torch.einsum("bshk,bthk->bhts", k, q * scale)
        attention = torch.softmax(scores, dim=-1)
        if mode == "cp":
            attention = RULES.stop_gradient(attention)
        ctx = torch.einsum("bhts,bshj->bthj", attention, v)
        a = torch.einsum("bthj,hje->bte", ctx, t[p + "attention_output/kernel"]) + \
            t[p + "attention_output/bias"]
        x = _layer_norm(x + a, t[f"ln{b}a/gamma"], t[f"ln{b}a/beta"])
        f = x @ t[f"ff{b}a/kernel"] + t[f"ff{b}a/bias"]
        f = RULES.identity_rule_implicit(torch.nn.functional.gelu, f)
        f = f @ t[f"ff{b}b/kernel"] + t[f"ff{b}b/bias"]
        x = _layer_norm(x + f, t[f"ln{b}b/gamma"], t[f"ln{b}b/beta"])
    logits = x.mean(dim=1) @ t["cls/kernel"] + t["cls/bias"]
    return logits, emb


def _layer_norm(x, gamma, beta):
    """Keras' LayerNormalization with LXT's identity rule: the standard deviation detached."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / RULES.stop_gradient((var + spec.LN_EPSILON).sqrt()) * gamma + beta


def relevance(w, tokens, mode, index=None):
    logits, emb = forward(w, tokens, mode)
    k = logits.argmax(dim=1) if index is None else torch.tensor(index)
    target = logits[torch.arange(len(tokens)), k].sum()
    target.backward()
    return (emb * emb.grad).sum(dim=-1).detach().numpy(), logits.detach().numpy()


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for bias in (True, False):
        w = spec.weights(seed=0, bias=bias)
        tokens = spec.tokens(seed=0)
        index = np.arange(len(tokens)) % spec.CLASSES
        data = {"tokens": tokens, "index": index, **{f"w:{k}": v for k, v in w.items()}}
        for mode in ("attnlrp", "cp"):
            data[f"{mode}|max_activation"], logits = relevance(w, tokens, mode)
            data[f"{mode}|index"], _ = relevance(w, tokens, mode, index)
        data["logits"] = logits
        path = os.path.join(out_dir, f"tiny_transformer{'' if bias else '_nobias'}.npz")
        np.savez_compressed(path, **data)
        print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/lxt")
