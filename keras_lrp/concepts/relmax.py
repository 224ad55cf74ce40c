"""Relevance maximisation (Achtibat et al., "From attribution maps to human-understandable
explanations through Concept Relevance Propagation", Nature Machine Intelligence 5, 2023):
for every channel (concept) of chosen layers, the samples of a dataset in which it is most
relevant (RelMax) and most active (ActMax), and the same per class (zennit-crp's Statistics).

Definitions, as zennit-crp 0.6's ``FeatureVisualization`` with its defaults
(``max_target="sum"``, ``abs_norm=True``; ``ChannelConcept.reference_sampling``):

* each sample n is explained at one output t_n, its label (zennit-crp explains the dataset's
  target) or, without labels, its largest output; no channel is conditioned (the plain LRP
  pass, started at y_{t_n} as :class:`~keras_lrp.concepts.conditional.Conditional` starts);
* RelMax value of channel k at layer l:
  ``r_{n,k} = Σ_p R^l_{n,p,k} / (Σ_k' |Σ_p R^l_{n,p,k'}| + 1e-10)`` (the relevance at the
  layer's output summed over the channel's positions p, divided by the sum over the channels
  of its absolute value);
* ActMax value: the same of the layer's activation A^l (its output, e.g. a Conv2D's before its
  own activation function, as zennit-crp's forward hook on the Conv module sees it);
* ``neuron``: the position p of the channel's largest relevance (activation) in that sample,
  flattened in C order over the non-channel axes (zennit-crp's ``rf_c_sorted``; the start of the
  receptive-field heatmap in :mod:`keras_lrp.concepts.references`);
* the top ``k`` samples per channel rank by value, descending; **equal values rank by sample
  index, ascending** (zennit-crp's ``torch.argsort`` leaves their order unspecified, so its
  indices agree with these only up to the order within a group of equal values);
* per class t (the explained output): the top ``k`` among the samples explained at t.

The pass is streamed (:mod:`keras_lrp.concepts.topk`): each batch's values are merged into the
running top-k and dropped. With ``out=``, the state after every batch goes to
``<out>.partial/state.npz`` (written atomically, :mod:`keras_lrp.io.atomic`); ``resume=True``
continues after the last batch there, if the run's metadata is the same, and the end result is
that of one uninterrupted run, bit for bit (the order does not depend on the batches). The
result is then written to ``out`` (HDF5, :mod:`keras_lrp.concepts.relmax_io`).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from keras_lrp import backend
from keras_lrp.analyzers.inputs import is_batch_stream
from keras_lrp.concepts.conditional import Conditional
from keras_lrp.concepts.topk import RelMaxResult, TopK, channel_values  # noqa: F401

MODES = ("relevance", "activation")


def _batches(x, labels, batch_size: int) -> Iterator[Tuple[Any, Optional[np.ndarray], int]]:
    """``(inputs, labels or None, rows)`` per batch: slices of an array (or list of arrays, or a
    :class:`~keras_lrp.io.sources.Source`), or a dataset's/generator's batches (``x`` or
    ``(x, y, …)``; ``y`` are the labels when ``labels`` is None)."""
    if is_batch_stream(x):
        start = 0
        for batch in x:
            y = None
            if isinstance(batch, tuple) and len(batch) >= 2:
                batch, y = batch[0], batch[1]
            xb = [np.asarray(b) for b in batch] if isinstance(batch, (list, tuple)) \
                else np.asarray(batch)
            rows = len(xb[0] if isinstance(xb, list) else xb)
            if labels is not None:
                y = labels[start:start + rows]
            yield xb, (None if y is None else np.asarray(y).reshape(-1)), rows
            start += rows
        return
    multi = isinstance(x, (list, tuple))
    n = len(x[0] if multi else x)
    for s in range(0, n, batch_size):
        xb = [np.asarray(a[s:s + batch_size]) for a in x] if multi \
            else np.asarray(x[s:s + batch_size])
        yield xb, None if labels is None else labels[s:s + batch_size], min(batch_size, n - s)


class RelevanceMaximization:
    """The running RelMax / ActMax state of an LRP analyzer on ``layers`` (see the module
    docstring); :meth:`update` merges one batch."""

    def __init__(self, analyzer, layers: Sequence[str], top: int = 8, axis: int = -1,
                 max_target: str = "sum", abs_norm: bool = True):
        self.crp = analyzer if isinstance(analyzer, Conditional) else \
            Conditional(analyzer, axis=axis, exclude_parallel=False)
        if isinstance(layers, str) or not len(layers):
            raise ValueError(f"layers must be a non-empty list of layer names, got {layers!r}.")
        self.layers = list(layers)
        if max_target not in ("sum", "max"):
            raise ValueError(f"max_target must be 'sum' or 'max', got {max_target!r}.")
        self.max_target, self.abs_norm, self.k = max_target, bool(abs_norm), top
        a = self.crp.analyzer
        self.classes = int(np.prod(a.logits.shape[1:]))
        channels = {name: self.crp.channels(name) for name in self.layers}
        self.top = {m: {n: TopK(top, c) for n, c in channels.items()} for m in MODES}
        self.stats = {m: {n: TopK(top, c, self.classes) for n, c in channels.items()}
                      for m in MODES}
        self.rows, self._forward = 0, None

    def states(self) -> Dict[str, np.ndarray]:
        """Every top-k array, keyed ``top/relevance/<layer>/index`` etc."""
        out = {}
        for kind, table in (("top", self.top), ("stats", self.stats)):
            for mode, layers in table.items():
                for name, t in layers.items():
                    out.update({f"{kind}/{mode}/{name}/{k}": v for k, v in t.arrays().items()})
        return out

    def load(self, arrays, rows: int) -> None:
        for kind, table in (("top", self.top), ("stats", self.stats)):
            for mode, layers in table.items():
                for name, t in layers.items():
                    t.load({k: arrays[f"{kind}/{mode}/{name}/{k}"] for k in t.arrays()})
        self.rows = int(rows)

    def forward(self, xb) -> Tuple[np.ndarray, List[np.ndarray]]:
        """The logits and the outputs of every layer of :attr:`layers` on ``xb``, from one
        compiled forward pass of the analysis (the canonized model, as
        :meth:`Conditional.activation`)."""
        if self._forward is None:
            import functools

            import keras

            from keras_lrp.analyzers.running import _run

            a = self.crp.analyzer
            inputs = list(a.inputs)
            model = keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                                [a.logits] + [a._values[self.crp.tensors[n]]
                                              for n in self.layers])
            self._forward = backend.compile_model(functools.partial(_run, model), model)
        out = [backend.to_numpy(v) for v in self._forward(*(xb if isinstance(xb, list)
                                                             else [xb]))]
        return out[0], out[1:]

    def update(self, xb, labels: Optional[np.ndarray] = None) -> None:
        """Merge the batch ``xb`` (rows ``self.rows`` on), explained at ``labels`` (None: each
        sample's largest output)."""
        n = len(xb[0] if isinstance(xb, list) else xb)
        logits, activations = self.forward(xb)
        if labels is None:  # each sample's largest output (flattened index)
            labels = np.argmax(logits.reshape(n, -1), axis=-1).astype(np.int64)
        labels = np.asarray(labels).reshape(-1)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or \
                labels.min() < 0 or labels.max() >= self.classes:
            raise ValueError(f"Labels of rows {self.rows} to {self.rows + n - 1} must be {n} "
                             f"ints in [0, {self.classes}) (the model's outputs); got "
                             f"{labels[:10].tolist()} (dtype {labels.dtype}).")
        index = np.arange(self.rows, self.rows + n, dtype=np.int64)
        result = self.crp.attribute(xb, [{"y": labels}], record=self.layers)
        axis = self.crp.axis
        for name, act in zip(self.layers, activations):
            for mode, values in (("relevance", result.relevances[name][:, 0]),
                                 ("activation", act)):
                value, neuron = channel_values(values, axis, self.max_target, self.abs_norm)
                self.top[mode][name].update(index, value, neuron)
                self.stats[mode][name].update(index, value, neuron, labels)
        self.rows += n

    def result(self, metadata: Dict[str, Any]) -> RelMaxResult:
        return RelMaxResult(self.top, self.stats, self.rows, dict(metadata))


def relevance_maximization(analyzer, x, layers: Sequence[str], top: int = 8, labels=None,
                           batch_size: int = 64, axis: int = -1, max_target: str = "sum",
                           abs_norm: bool = True, out=None, resume: bool = False,
                           metadata: Optional[Dict[str, Any]] = None,
                           on_batch=None) -> RelMaxResult:
    """RelMax, ActMax and per-class statistics of every channel of ``layers`` over ``x``.

    Args:
        analyzer: an LRP analyzer (any composite), or a :class:`Conditional` of one.
        x: an array (batch first), a list of arrays (several inputs), a
            :class:`~keras_lrp.io.sources.Source`, or a dataset / generator of batches ``x``
            or ``(x, y)`` (``y``: the labels of the batch).
        layers: layer names (``analyzer.layer_names``).
        top: how many samples per channel (and class) to keep.
        labels: the output explained for each sample (N ints, e.g. the true classes, as
            zennit-crp); ``None``: a stream's ``y``, else each sample's largest output.
        batch_size: samples per pass (arrays; a stream's batches are kept as they come).
        axis: the channel axis of the layers' outputs (channels last by default).
        max_target, abs_norm: zennit-crp's (``"sum"`` or ``"max"``; divide by Σ_k |value_k|).
        out: write the result there (HDF5) and keep the state after each batch in
            ``<out>.partial/`` so that ``resume=True`` continues after a stop.
        metadata: extra metadata to store (e.g. ``inputs_sha256``); checked on resume.
        on_batch: called as ``on_batch(rows_done)`` after each batch is merged (and saved).

    Returns:
        :class:`RelMaxResult`.

    Example:
        >>> res = relevance_maximization(create_analyzer("lrp.epsilon_plus", model), x,
        ...                              ["conv2"], top=8)
        >>> res.top["relevance"]["conv2"].index[:, 5]   # the 8 samples where channel 5 matters
    """
    from keras_lrp.concepts import relmax_io

    state = RelevanceMaximization(analyzer, layers, top, axis, max_target, abs_norm)
    meta = relmax_io.metadata(state, batch_size, labels, metadata)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
    if out is None:
        return _run(state, x, labels, batch_size, None, False, on_batch, meta)
    with relmax_io.locked(out):  # one run per out; temporary files of dead runs removed
        work = relmax_io.Work(out, meta, state)
        return _run(state, x, labels, batch_size, work, resume, on_batch, meta)


def _run(state, x, labels, batch_size, work, resume, on_batch, meta) -> RelMaxResult:
    skip = work.start(resume) if work is not None else 0
    skipped = 0
    for xb, yb, rows in _batches(x, labels, batch_size):
        if skipped < skip:  # done in the run that stopped: read and dropped
            if skipped + rows > skip:
                raise ValueError(f"Cannot resume at row {skip}: a batch spans rows {skipped} to "
                                 f"{skipped + rows - 1}; give the batches of the first run.")
            skipped += rows
            continue
        state.update(xb, yb)
        if work is not None:
            work.save()
        if on_batch is not None:
            on_batch(state.rows)
    if skipped < skip:
        raise ValueError(f"Cannot resume: the saved state has {skip} rows, the inputs only "
                         f"{skipped}; give the first run's inputs.")
    if state.rows == 0:
        raise ValueError("relevance_maximization got no samples: the dataset was empty.")
    if labels is not None and len(labels) != state.rows:
        raise ValueError(f"labels has {len(labels)} entries for {state.rows} samples.")
    result = state.result(meta)
    if work is not None:
        work.finish(result)
    return result


def load_relmax(path) -> RelMaxResult:
    """Read a file written by :func:`relevance_maximization` (``out=``)."""
    from keras_lrp.concepts import relmax_io

    return relmax_io.load(path)


def top_samples(result: RelMaxResult, layer: str, channel: int, mode: str = "relevance",
                label: Optional[int] = None) -> List[int]:
    """The dataset rows of the best samples of ``channel`` (best first, empty slots left out),
    overall or among the samples explained at ``label``."""
    table = result.top if label is None else result.stats
    if mode not in table or layer not in table[mode]:
        raise ValueError(f"No {mode!r} top-k of layer {layer!r}; the result has modes "
                         f"{list(table)} and layers {list(table[MODES[0]])}.")
    t = table[mode][layer]
    index = t.index if label is None else t.index[label]
    return [int(i) for i in index[:, channel] if i >= 0]


__all__ = ["MODES", "RelMaxResult", "RelevanceMaximization", "load_relmax",
           "relevance_maximization", "top_samples"]
