"""The running top-k of relevance maximisation (:mod:`keras_lrp.concepts.relmax`): per channel,
the k best samples seen so far, merged batch by batch, never holding more than k + one batch.

The order is total and does not depend on how the samples were split into batches: a sample
ranks before another when its value is larger, or, on equal values, when its index (its row in
the dataset) is smaller. So the top-k of a dataset read in any batches, or in two runs (stopped
and resumed), is the same, bit for bit. (zennit-crp sorts with ``torch.argsort``, which leaves
the order of equal values unspecified; see :mod:`keras_lrp.concepts.relmax`.)

Empty slots (fewer than k samples seen, or none of a class) hold index -1, value -inf and
neuron -1.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import numpy as np

#: Index of an empty slot; it sorts after every real sample.
EMPTY = -1
_LAST = np.iinfo(np.int64).max


class TopK:
    """The best ``k`` samples of each of ``channels`` channels (optionally per class).

    Arrays, shaped (k, channels) or (classes, k, channels) with ``classes``:
    ``index`` (int64, the samples' dataset rows), ``value`` (float64), ``neuron`` (int64, the
    position of the channel's largest value in that sample, flattened in C order).
    """

    def __init__(self, k: int, channels: int, classes: Optional[int] = None):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"top must be a positive int, got {k!r}.")
        lead = (k, channels) if classes is None else (classes, k, channels)
        self.k, self.channels, self.classes = int(k), int(channels), classes
        self.index = np.full(lead, EMPTY, np.int64)
        self.value = np.full(lead, -np.inf, np.float64)
        self.neuron = np.full(lead, EMPTY, np.int64)

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"index": self.index, "value": self.value, "neuron": self.neuron}

    def load(self, arrays) -> None:
        for key, arr in self.arrays().items():
            new = np.asarray(arrays[key])
            if new.shape != arr.shape:
                raise ValueError(f"A saved top-k {key} of shape {new.shape} does not fit "
                                 f"{arr.shape}; the run's settings differ.")
            arr[...] = new

    def update(self, index, value, neuron, classes=None) -> None:
        """Merge a batch: ``index`` (B,) dataset rows, ``value`` and ``neuron`` (B, channels),
        ``classes`` (B,) the class of each sample (per-class top-k only)."""
        value = np.asarray(value, np.float64)
        if not np.all(np.isfinite(value)):
            bad = np.argwhere(~np.isfinite(value))[0]
            raise FloatingPointError(f"Sample {int(index[bad[0]])}, channel {int(bad[1])}: "
                                     f"value {value[tuple(bad)]} is not finite; check the "
                                     "analyzer (e.g. a stabiliser epsilon of 0).")
        index = np.asarray(index, np.int64)
        if self.classes is None:
            merge(self.index, self.value, self.neuron, index, value, neuron, self.k)
            return
        classes = np.asarray(classes)
        for t in np.unique(classes):
            rows = classes == t
            merge(self.index[t], self.value[t], self.neuron[t], index[rows], value[rows],
                  np.asarray(neuron)[rows], self.k)


def merge(top_index, top_value, top_neuron, index, value, neuron, k: int) -> None:
    """Merge a batch (B,), (B, C), (B, C) into the top-k arrays (k, C) in place: the k best of
    both by value (descending), equal values by index (ascending)."""
    c = top_value.shape[1]
    all_index = np.concatenate([top_index, np.broadcast_to(index[:, None], (len(index), c))])
    all_value = np.concatenate([top_value, value])
    all_neuron = np.concatenate([top_neuron, neuron])
    order_index = np.where(all_index == EMPTY, _LAST, all_index)
    # np.lexsort sorts by the last key first: -value, then the index
    order = np.lexsort((order_index.T, -all_value.T), axis=-1).T[:k]
    top_index[...] = np.take_along_axis(all_index, order, 0)
    top_value[...] = np.take_along_axis(all_value, order, 0)
    top_neuron[...] = np.take_along_axis(all_neuron, order, 0)


def channel_values(values, axis: int = -1, max_target: str = "sum", abs_norm: bool = True):
    """zennit-crp's ``ChannelConcept.reference_sampling`` on a batch ``(B, *shape)`` of a layer's
    relevance or activation, channels on ``axis``.

    Returns ``(value, neuron)``, both (B, channels): ``neuron`` = argmax over the channel's
    positions p (flattened in C order; the first of equal maxima), and

        value_k = Σ_p v_{p, k}    (``max_target="sum"``)   or   v_{neuron_k, k}   (``"max"``),
        value_k ← value_k / (Σ_k' |value_k'| + 1e-10)   (``abs_norm``),

    summed in float64.
    """
    if max_target not in ("sum", "max"):
        raise ValueError(f"max_target must be 'sum' or 'max', got {max_target!r}.")
    v = np.asarray(values)
    axis = axis % v.ndim
    if axis == 0:
        raise ValueError(f"axis {axis} is the batch axis of values of shape {v.shape}; give "
                         "the channel axis.")
    v = np.moveaxis(v, axis, 1).reshape(v.shape[0], v.shape[axis], -1).astype(np.float64)
    neuron = np.argmax(v, axis=-1)
    if max_target == "sum":
        value = v.sum(-1)
    else:
        value = np.take_along_axis(v, neuron[..., None], -1)[..., 0]
    if abs_norm:
        value = value / (np.abs(value).sum(-1, keepdims=True) + 1e-10)
    return value, neuron.astype(np.int64)


__all__ = ["EMPTY", "TopK", "channel_values", "merge"]


@dataclasses.dataclass
class RelMaxResult:
    """What :func:`~keras_lrp.concepts.relmax.relevance_maximization` returns. For mode in
    ``relevance``, ``activation`` and each layer: ``top[mode][layer]`` (k, channels) and
    ``stats[mode][layer]`` (classes, k, channels), :class:`TopK` (``index``, ``value``,
    ``neuron``; empty slots index -1)."""

    top: Dict[str, Dict[str, TopK]]
    stats: Dict[str, Dict[str, TopK]]
    #: Samples seen, and the run's description (layers, top, analyzer, model hash, …).
    rows: int
    metadata: Dict[str, Any]
