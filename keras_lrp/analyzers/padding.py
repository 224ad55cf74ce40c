"""Padding inputs of an open length to a longer one, and checking that it changes nothing.

An analysis built for length L explains inputs of any length n ≤ L when the model's outputs at
the real positions p < n do not depend on what follows them: a causal model (each position sees
only those before it), or a bidirectional one told by its padding mask which positions are
padding. The inputs are padded with zeros on their open axes (token id 0, padding mask 0), the
explained output is restricted to the real positions
(:class:`~keras_lrp.analyzers.selection.OutputRelevance` with ``length_axes``), and the relevance
is sliced back to n.

Whether a model is such a model is not read off its layers: :func:`check_padding` runs the
user's model on a row at its real length and padded, and compares the outputs at the real
positions (to √ε of the dtype, at least float32's, times their scale). A model whose
outputs change (a mean over the whole sequence, a recurrent layer's last state, a model without
its padding mask) is analysed at each exact length instead.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import keras
import numpy as np
from keras import tree

from keras_lrp.analyzers.verify import tolerance


class PaddingChanges(ValueError):
    """The model's outputs at the real positions change when its inputs are padded."""


def open_axes(model) -> List[Tuple[int, ...]]:
    """For each input of ``model``, the axes (beyond the batch) whose size is open."""
    return [tuple(a for a, d in enumerate(tuple(t.shape)) if a and d is None)
            for t in model.inputs]


def pad(arrays: Sequence[np.ndarray], axes: Sequence[Tuple[int, ...]], length: int):
    """Each array zero-padded at the end of its open ``axes`` to ``length``."""
    out = []
    for a, ax in zip(arrays, axes):
        widths = [(0, length - a.shape[i] if i in ax else 0) for i in range(a.ndim)]
        out.append(np.pad(a, widths) if any(w for _, w in widths) else a)
    return out


def cut(arrays: Sequence[np.ndarray], axes: Sequence[Tuple[int, ...]], length: int):
    """Each array's first ``length`` positions along its open ``axes`` (undoes :func:`pad`)."""
    return [a[tuple(slice(0, length) if i in ax else slice(None) for i in range(a.ndim))]
            for a, ax in zip(arrays, axes)]


def output_length_axes(short: np.ndarray, long: np.ndarray, n: int, length: int,
                       name: str) -> Tuple[int, ...]:
    """The axes of an output computed at length ``n`` (``short``) and ``length`` (``long``)
    that index positions: their sizes are ``n`` and ``length``. Raises :class:`PaddingChanges`
    for an axis whose size changes otherwise (a strided convolution: no slice undoes it)."""
    axes = []
    for a, (s, t) in enumerate(zip(short.shape, long.shape)):
        if a == 0 or s == t:
            continue
        if (s, t) != (n, length):
            raise PaddingChanges(f"output '{name}' has {s} positions along axis {a} for "
                                 f"inputs of length {n} and {t} for length {length}")
        axes.append(a)
    return tuple(axes)


def check_padding(model, rows: Sequence[np.ndarray], axes, length: int):
    """Run ``model`` on ``rows`` (its inputs, at their real length n) and padded to ``length``;
    return each output's position axes (:func:`output_length_axes`).

    Raises:
        PaddingChanges: naming the output, the largest difference at the real positions and
            the tolerance.
    """
    n = next(a.shape[i] for a, ax in zip(rows, axes) for i in ax)
    names = [t._keras_history.operation.name for t in model.inputs]

    def run(arrays):
        feed = dict(zip(names, arrays)) if isinstance(model.input, dict) else \
            (arrays[0] if len(arrays) == 1 else list(arrays))
        return [keras.ops.convert_to_numpy(y) for y in tree.flatten(model(feed, training=False))]

    short, long = run(rows), run(pad(rows, axes, length))
    out_names = list(getattr(model, "output_names", None) or []) or \
        [f"output {i}" for i in range(len(short))]
    found = []
    for name, s, t in zip(out_names, short, long):
        ax = output_length_axes(s, t, n, length, name)
        real = t[tuple(slice(0, n) if i in ax else slice(None) for i in range(t.ndim))]
        scale = float(np.abs(s).max()) if s.size else 0.0
        # at least float32's: float64 models compute parts in float32 (keras-hub's norms),
        # whose rounding changes with the padded shapes; a real leak is of the outputs' order
        bound = max(tolerance(str(s.dtype)), tolerance("float32")) * max(scale, 1e-30)
        diff = float(np.abs(real.astype("float64") - s).max()) if s.size else 0.0
        if not diff <= bound:
            raise PaddingChanges(
                f"output '{name}' at the real positions changes by {diff:.3g} (tolerance "
                f"{bound:.3g}) when inputs of length {n} are padded to {length}")
        found.append(ax)
    return found


__all__ = ["PaddingChanges", "check_padding", "cut", "open_axes", "output_length_axes", "pad"]
