"""The relevance program of :class:`~keras_lrp.concepts.conditional.Conditional`: one Keras
model over an LRP analyzer's canonized graph that runs the forward pass once per sample and the
reverse graph once per condition row, with the channel masks as inputs.

Inputs, in order: the row → sample index (M,) (first: JAX pads every input to the first one's
row bucket), the output index per row (M,) or, with a start layer, the start relevance
``(M, *shape)``, one (M, channels) mask per conditioned layer, one (M,) flag per conditioned layer
(1: the row's condition names it; for ``exclude_parallel``), then the data (N, …). Outputs:
the relevance at each model input, then at each recorded layer, (M, …).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import keras

from keras_lrp.analyzers.reverse import reverse
from keras_lrp.analyzers.selection import OutputRelevance
from keras_lrp.concepts import conditions as cond_mod
from keras_lrp.concepts.layers import ChannelMask, KeepRows, Rows, Targets


class Gathered(dict):
    """Tensor id → its forward value gathered per condition row, made on first use."""

    def __init__(self, values, rows):
        super().__init__()
        self.values, self.rows = values, rows

    def __missing__(self, tid):
        value = Rows(name=f"crp_rows_{len(self)}")([self.values[tid], self.rows])
        self[tid] = value
        return value


def relevance_program(a, tensors: Dict[str, int], layers: Sequence[str], record: Sequence[str],
                      start_layer: Optional[str], axis: int,
                      exclude_parallel: bool) -> keras.Model:
    """The Keras relevance program of the built LRP analyzer ``a`` (see the module docstring):
    masks at ``layers`` along ``axis``, the relevance recorded at ``record``, started at the
    explained output or at ``start_layer``. ``tensors``: layer name → output tensor id."""
    shape = lambda name: tuple(a._values[tensors[name]].shape)  # noqa: E731
    rows = keras.Input(batch_shape=(None,), dtype="int32", name="crp_rows")
    values = Gathered(a._values, rows)
    if start_layer is None:
        output = a.graph.outputs[a.output_index]
        head = keras.Input(batch_shape=(None,), dtype="int32", name="crp_targets")
        logits = values[output]
        start = OutputRelevance("index", a.output_relevance, name="crp_start",
                                dtype=logits.dtype)(
            [logits, Targets(name="crp_target")([logits, head])])
    else:
        output = tensors[start_layer]
        head = start = keras.Input(batch_shape=(None,) + shape(start_layer)[1:],
                                   dtype=a._values[output].dtype, name="crp_init")
    axes = [cond_mod.channel_axis(name, shape(name), axis) for name in layers]
    masks = [keras.Input(batch_shape=(None, shape(n)[k]), name=f"crp_mask_{i}")
             for i, (n, k) in enumerate(zip(layers, axes))]
    named = [keras.Input(batch_shape=(None,), name=f"crp_named_{i}")
             for i in range(len(layers))]
    condition, parallel = {}, {}
    for i, (name, k, mask, on) in enumerate(zip(layers, axes, masks, named)):
        layer = ChannelMask(k, name=f"crp_mask_layer_{i}")
        condition[tensors[name]] = lambda r, layer=layer, mask=mask: layer([r, mask])
        keep = KeepRows(name=f"crp_parallel_{i}")
        parallel[tensors[name]] = lambda r, keep=keep, on=on: keep([r, on])
    rev = reverse(a.graph, a.composite, values, output, start, a.inputs, a.model,
                  condition=condition, parallel=parallel if exclude_parallel else None)
    recorded = [rev.layerwise.get(n) for n in record]
    recorded = [keras.ops.zeros_like(values[tensors[n]]) if r is None else r
                for n, r in zip(record, recorded)]
    if exclude_parallel:  # a layer parallel to a condition gets none of its relevance
        for i, (name, on) in enumerate(zip(layers, named)):
            path = cond_mod.related(a.graph, tensors[name])
            recorded = [r if tensors[n] in path else
                        KeepRows(name=f"crp_record_{i}_{k}")([r, on])
                        for k, (n, r) in enumerate(zip(record, recorded))]
    return keras.Model([rows, head] + masks + named + list(a.inputs),
                       list(rev.inputs) + recorded, name="crp_relevance")


__all__ = ["Gathered", "relevance_program"]
