"""Explaining generated text: which prompt tokens made a causal LM write what it wrote.

:func:`explain_generation` takes a prompt and its continuation (the tokens the model generated,
or any tokens to score) and explains, in one batched pass over the whole sequence without a
key/value cache (as LXT recommends for explaining generation):

* each generated token's logit: row j explains the logit of token g_j at position P + j − 1
  (the position that predicts it), so every token before it may receive relevance and every
  token from it on receives exactly 0;
* the log-likelihood of a span of the continuation, Σ_j log p(g_j | tokens before it): LRP's
  rules are linear in the relevance they pass on (for fixed forward values), so the span's
  relevance is the sum over its tokens of the relevance of log p(g_j), each explained through
  :class:`.LogSoftmax` appended to the model.

:func:`keras_lrp.plots.tokens.write_generation_heatmaps` writes both as token heatmaps (PNG and
HTML).

Calls for the same model and analyzer reuse the analyzers made before (the last
:data:`REUSED`). On a model of open length these are
:class:`~keras_lrp.analyzers.lengths.PerLength` analyzers, whose analyses serve every length
up to the longest one built: a continuation of growing length costs no build per token.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np

from keras_lrp.canonizers.forward_layers import LogSoftmax


@dataclasses.dataclass
class Generation:
    """What :func:`explain_generation` returns (T = P + G tokens)."""

    #: The prompt and the continuation, (T,).
    ids: np.ndarray
    #: P, the prompt's length.
    prompt_length: int
    #: (G, T): row j is the relevance of every token for generated token j's logit.
    per_token: np.ndarray
    #: (G,): the explained logits.
    logits: np.ndarray
    #: (G,): log p(g_j | the tokens before it).
    log_probs: np.ndarray
    #: The indices j (into the continuation) of the explained span.
    span: List[int]
    #: (T,): the relevance of every token for the span's log-likelihood Σ_{j ∈ span} log p(g_j).
    span_relevance: np.ndarray

    @property
    def prompt_relevance(self) -> np.ndarray:
        """(G, P): the prompt tokens' part of :attr:`per_token`."""
        return self.per_token[:, :self.prompt_length]

    def words(self, vocab: Optional[Sequence[str]] = None) -> List[str]:
        """The sequence's tokens as strings (``vocab[id]``, or the ids)."""
        return [vocab[int(t)] if vocab is not None else str(int(t)) for t in self.ids]

    def rows(self, vocab: Optional[Sequence[str]] = None):
        """``(rows, titles)`` for :func:`keras_lrp.plots.tokens.plot_tokens`: one row per
        generated token, then the span's log-likelihood."""
        words = self.words(vocab)
        rows, titles = [], []
        for j in range(self.per_token.shape[0]):
            t = self.prompt_length + j
            rows.append((words[:t], self.per_token[j, :t]))
            titles.append(f"→ {words[t]!r} (logit {self.logits[j]:.3g})")
        span = [self.prompt_length + j for j in self.span]
        end = max(span)
        rows.append((words[:end], self.span_relevance[:end]))
        titles.append(f"log p of {' '.join(words[i] for i in span)!r} "
                      f"({float(self.log_probs[self.span].sum()):.3g})")
        return rows, titles

    def save_heatmaps(self, folder: str, vocab: Optional[Sequence[str]] = None) -> List[str]:
        """Deprecated (one release): use
        :func:`keras_lrp.plots.tokens.write_generation_heatmaps`, which this calls; the
        plotting lives in :mod:`keras_lrp.plots`."""
        warnings.warn("Generation.save_heatmaps(folder, vocab) is deprecated; use "
                      "keras_lrp.plots.tokens.write_generation_heatmaps(generation, folder, "
                      "vocab). It goes in the next release.", DeprecationWarning, stacklevel=2)
        from keras_lrp.plots.tokens import write_generation_heatmaps

        return write_generation_heatmaps(self, folder, vocab)

def _ids(name: str, value) -> np.ndarray:
    ids = np.asarray(value)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a non-empty 1-D array of token ids; got "
                         f"{'shape ' + str(ids.shape) if ids.dtype.kind in 'iu' else ids.dtype}.")
    return ids.astype("int64")


def _inputs(model, ids: np.ndarray, rows: int):
    """The model's inputs for ``rows`` copies of the sequence: token ids, and an all-ones
    padding mask where the model takes one."""
    names = [t._keras_history.operation.name for t in model.inputs]
    if "token_ids" not in names and len(names) != 1:
        raise ValueError(f"explain_generation needs a causal LM whose inputs are token_ids (and "
                         f"optionally padding_mask); model '{model.name}' has {names}.")
    out = {}
    for name, spec in zip(names, model.inputs):
        if name == "padding_mask":
            out[name] = np.ones((rows, ids.size), spec.dtype)
        elif name == "token_ids" or len(names) == 1:
            out[name] = np.repeat(ids[None].astype(spec.dtype), rows, axis=0)
        else:
            raise ValueError(f"explain_generation cannot fill input '{name}' of model "
                             f"'{model.name}'; it fills token_ids and padding_mask.")
    return out if len(names) > 1 else out[names[0]]


def _spec(analyzer, kwargs):
    """(name, keyword arguments) of an analyzer or an analyzer name."""
    if isinstance(analyzer, str):
        return analyzer, dict(kwargs)
    if kwargs:
        raise ValueError("Keyword arguments go with an analyzer name; the analyzer passed to "
                         "explain_generation already has its own.")
    config = analyzer.get_config()
    return config["name"], dict(config["kwargs"])


def _token_relevance(model, relevance):
    if isinstance(relevance, list):
        names = [t._keras_history.operation.name for t in model.inputs]
        return relevance[names.index("token_ids") if "token_ids" in names else 0]
    return relevance


#: The analyzers explain_generation made, by (model, analyzer name, keywords), most recently
#: used last; at most :data:`REUSED` are kept. A model of open length gets
#: :class:`~keras_lrp.analyzers.lengths.PerLength` analyzers, so a continuation of growing
#: length reuses their analyses instead of building one per length.
_MADE: collections.OrderedDict[Any, Dict[str, Any]] = collections.OrderedDict()
REUSED = 4


def _reused(model, name: str, kw) -> Dict[str, Any]:
    """The analyzers made before for ``model`` with ``name`` and ``kw`` (a dict to fill)."""
    key = (id(model), name, repr(sorted(kw.items())))
    entry = _MADE.pop(key, None)
    if entry is None or entry["model"] is not model:  # a new model at a reused id
        entry = {"model": model}
    _MADE[key] = entry
    while len(_MADE) > REUSED:
        _MADE.popitem(last=False)
    return entry


def explain_generation(analyzer: Any, causal_lm: keras.Model, prompt_ids, generated_ids,
                       span: Optional[Sequence[int]] = None, **kwargs) -> Generation:
    """Explain a causal LM's continuation of a prompt (see the module docstring).

    Args:
        analyzer: an analyzer name (``"lrp.z"``, with ``attention=…`` in ``kwargs``) or an
            analyzer made with ``neuron_selection_mode="index"`` for ``causal_lm``.
        causal_lm: a model from token ids (and a padding mask) to logits (batch, T, vocabulary),
            e.g. keras-hub's ``LlamaCausalLM``; any sequence length it accepts.
        prompt_ids: the prompt, (P,) token ids.
        generated_ids: the continuation, (G,) token ids (generated by the model, or any).
        span: the indices j of the continuation whose log-likelihood is explained (default:
            all of it).
        **kwargs: the analyzer's keyword arguments, with an analyzer name.

    Returns:
        A :class:`Generation`.

    Raises:
        ValueError: ids that are not 1-D integer arrays, a span outside the continuation, an
            analyzer that does not select its neuron by index, or a model whose output is not
            (batch, T, vocabulary).
    """
    from keras_lrp.analyzers import create_analyzer

    prompt, generated = _ids("prompt_ids", prompt_ids), _ids("generated_ids", generated_ids)
    ids = np.concatenate([prompt, generated])
    p, g, t = prompt.size, generated.size, prompt.size + generated.size
    span = list(range(g)) if span is None else [int(j) for j in span]
    if not span or any(not 0 <= j < g for j in span):
        raise ValueError(f"span must hold indices into the continuation, in [0, {g}); got "
                         f"{span}.")
    name, kw = _spec(analyzer, kwargs)
    if kw.setdefault("neuron_selection_mode", "index") != "index":
        raise ValueError("explain_generation selects each explained logit by index; create the "
                         "analyzer with neuron_selection_mode='index'.")
    out = causal_lm.output
    size = out.shape[-1] if not isinstance(out, (list, tuple, dict)) else None
    if size is not None and (ids.max() >= size or ids.min() < 0):
        raise ValueError(f"Token ids must lie in [0, {size}) (the vocabulary); got "
                         f"{int(ids.min())}…{int(ids.max())}.")
    logits = np.asarray(causal_lm(_inputs(causal_lm, ids, 1)))
    if logits.ndim != 3 or logits.shape[1] != t:
        raise ValueError(f"explain_generation needs logits of shape (batch, {t}, vocabulary) "
                         f"from model '{causal_lm.name}'; got {logits.shape}.")
    vocab = logits.shape[-1]
    positions = p + np.arange(g) - 1
    index = positions * vocab + generated  # the logit predicting g_j, flat over (T, V)
    explained = logits[0, positions, generated]
    rows = logits[0, positions].astype("float64")
    peak = rows.max(-1)
    log_probs = explained - (peak + np.log(np.exp(rows - peak[:, None]).sum(-1)))
    made = _reused(causal_lm, name, kw)
    if isinstance(analyzer, str):
        analyzer = made.get("logits") or made.setdefault(
            "logits", create_analyzer(name, causal_lm, **kw))
    per_token = _token_relevance(causal_lm, analyzer.analyze(
        _inputs(causal_lm, ids, g), neuron_selection=index))
    if "log_probs" not in made:
        lp_model = keras.Model(causal_lm.input, LogSoftmax(name="log_probs")(causal_lm.output),
                               name=f"{causal_lm.name}_log_probs")
        made["log_probs"] = (lp_model, create_analyzer(name, lp_model, **kw))
    lp_model, lp = made["log_probs"]
    span_rows = _token_relevance(lp_model, lp.analyze(
        _inputs(causal_lm, ids, len(span)), neuron_selection=index[span]))
    return Generation(ids=ids, prompt_length=p, per_token=np.asarray(per_token),
                      logits=explained, log_probs=log_probs, span=span,
                      span_relevance=np.asarray(span_rows).sum(axis=0))


__all__ = ["Generation", "explain_generation"]
