"""Reshapes, slices and broadcasts whose sizes a trace left open (the batch), read off their
input at run time.

:class:`ReshapeKeeping` (:mod:`keras_lrp.canonizers.trace_rewrites`), :class:`SliceKeeping` and
:class:`BroadcastKeeping` (:mod:`keras_lrp.canonizers.batch_sizes`) move values: relevance
follows them (``RouteRelevance``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class ReshapeKeeping(keras.layers.Layer):
    """``ops.reshape(x, shape)`` where ``shape`` was read off a tensor in a symbolic trace and
    holds ``None`` (the batch, a sequence axis a layer left open). One ``None`` is the size that
    fits (−1); the batch and one more: the batch, and the size that fits there (MiT's H·W);
    else ``None`` at position i is the input's size there (Gemma's rotary embedding reshapes to
    ``ops.shape(x)``)."""

    def __init__(self, newshape=(), **kwargs):
        super().__init__(**kwargs)
        self.newshape = [None if d is None else int(d) for d in newshape]

    def _target(self, shape):
        new = list(self.newshape)
        rest = [k for k, d in enumerate(new[1:], 1) if d is None or d == -1]
        static = [d for d in shape[1:] if isinstance(d, int)]
        if new[0] is None and len(rest) == 1 and len(static) == len(shape) - 1:
            # the batch, and one open size: the size that fits, from the input's static sizes
            # (MiT's reshape to (B, -1, C) with B read off a symbolic shape)
            known = int(np.prod([d for k, d in enumerate(new[1:], 1) if k not in rest]))
            new[rest[0]] = int(np.prod(static)) // known
            return [-1] + new[1:]
        if sum(d is None for d in new) == 1 and -1 not in new:
            return [-1 if d is None else d for d in new]
        return [shape[k] if d is None else d for k, d in enumerate(new)]

    def call(self, x):
        return ops.reshape(x, self._target(ops.shape(x)))

    def compute_output_spec(self, x):
        target = self._target(x.shape)
        if -1 in target:
            known = [d for d in target if d != -1]
            total = None if None in x.shape else int(np.prod(x.shape))
            fill = None if total is None or None in known else total // int(np.prod(known))
            target = [fill if d == -1 else d for d in target]
        return keras.KerasTensor(target, dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "newshape": self.newshape}


def _sizes(open_sizes, shape) -> list:
    """``open_sizes`` with each ``None`` the size of ``shape`` there."""
    return [shape[k] if d is None else d for k, d in enumerate(open_sizes)]


class SliceKeeping(keras.layers.Layer):
    """``ops.slice(x, start, sizes)`` where a size is ``None``: the whole axis (its start is 0),
    as many as ``x`` has there at run time (the batch, at 2 or 64 as at 1)."""

    def __init__(self, start=(), sizes=(), **kwargs):
        super().__init__(**kwargs)
        self.start = [int(s) for s in start]
        self.sizes = [None if d is None else int(d) for d in sizes]

    def call(self, x):
        return ops.slice(x, self.start, _sizes(self.sizes, ops.shape(x)))

    def compute_output_spec(self, x):
        return keras.KerasTensor(_sizes(self.sizes, x.shape), dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "sizes": self.sizes}


class BroadcastKeeping(keras.layers.Layer):
    """``ops.broadcast_to(x, sizes)`` where a size is ``None``: the size ``x`` has there at run
    time (the batch), the other axes broadcast as traced."""

    def __init__(self, sizes=(), **kwargs):
        super().__init__(**kwargs)
        self.sizes = [None if d is None else int(d) for d in sizes]

    def call(self, x):
        return ops.broadcast_to(x, _sizes(self.sizes, ops.shape(x)))

    def compute_output_spec(self, x):
        return keras.KerasTensor(_sizes(self.sizes, x.shape), dtype=x.dtype)

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes}


__all__ = ["BroadcastKeeping", "ReshapeKeeping", "SliceKeeping"]
