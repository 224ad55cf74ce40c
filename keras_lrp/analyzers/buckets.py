"""The bucket bookkeeping of :class:`~keras_lrp.analyzers.lengths.PerLength`: which built length
serves an input length, and the analyses built, least recently used first (the policy is in
:mod:`keras_lrp.analyzers.lengths`' docstring).
"""

from __future__ import annotations

import collections
import warnings
from typing import Any, Callable, Optional, Sequence, Union

import keras
import numpy as np
from keras import tree

from keras_lrp.analyzers import padding

#: The smallest bucket of ``buckets="pow2"``.
MIN_BUCKET = 16
#: What ``buckets`` may be.
BUCKET_CHOICES = ("pow2", "exact")
#: The pairs of lengths the model is called on (symbolically) to find its outputs' position
#: axes: the first pair it runs at.
PROBE_LENGTHS = ((7, 11), (2, 3))


def fixed_length(model, length: int):
    """``model`` called on inputs whose open axes all have size ``length`` (a new functional
    model sharing the user's layers and weights)."""
    def fixed(t):
        shape = tuple(length if d is None else d for d in tuple(t.shape)[1:])
        name = t._keras_history.operation.name if t._keras_history.operation else t.name
        return keras.Input(shape, dtype=t.dtype, name=name)

    inputs = tree.map_structure(fixed, model.input)
    return keras.Model(inputs, model(inputs), name=f"{model.name}_length_{length}")


def check_buckets(buckets, patience, max_analyses) -> None:
    """Raise ValueError for a bad ``buckets``, ``patience`` or ``max_analyses``."""
    def count(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if not (buckets in BUCKET_CHOICES or (
            isinstance(buckets, (list, tuple)) and buckets and
            all(count(b) and b > 0 for b in buckets))):
        raise ValueError(f"buckets must be 'pow2', 'exact' or a list of positive lengths, got "
                         f"{buckets!r}.")
    for key, value, least in (("patience", patience, 0), ("max_analyses", max_analyses, 1)):
        if not (count(value) and value >= least):
            raise ValueError(f"{key} must be an int >= {least}, got {value!r}.")


class Buckets:
    """The analyses built for a few lengths, which one serves an input length, and whether
    padding to it leaves the model's outputs unchanged (checked on the user's model).

    Args:
        make: ``make(model, length_axes) -> Analyzer`` for a model of fixed length, whose
            explained output's positions lie along ``length_axes`` (``None``: not padded).
        model: the user's model, whose inputs have an open length.
        buckets: ``"pow2"`` (default), ``"exact"`` (one analysis per length, no padding) or the
            lengths to build, e.g. ``[256]`` when no input is longer (a longer one gets the
            next power of two).
        patience: how often a bucket is served by a longer analysis before it is built.
        max_analyses: how many analyses are kept (least recently used dropped first).
        pads: whether ``make`` honours ``length_axes`` (the wrappers do not: exact lengths).
    """

    def __init__(self, make: Callable, model, buckets: Union[str, Sequence[int]] = "pow2",
                 patience: int = 32, max_analyses: int = 8, pads: bool = True):
        check_buckets(buckets, patience, max_analyses)
        self.make, self.model = make, model
        self.model_name = getattr(model, "name", "model")
        self.buckets = buckets if isinstance(buckets, str) else sorted(int(b) for b in buckets)
        self.patience, self.max_analyses = int(patience), int(max_analyses)
        #: built length → its analyzer, least recently used first.
        self.analyzers: collections.OrderedDict[int, Any] = collections.OrderedDict()
        #: How many analyses were built (a dropped one built again counts again).
        self.builds = 0
        #: Whether padding leaves the model's outputs at the real positions unchanged: ``None``
        #: until checked, then per bucket (``False`` after a failed check: exact lengths).
        self.padding: Optional[bool] = None if (pads and buckets != "exact") else False
        #: Why padding is off, after a failed check.
        self.padding_error: Optional[str] = None
        #: The shortest length the model was found not to run at (``None``: none yet);
        #: inputs are padded to shorter lengths only.
        self.too_long: Optional[int] = None
        self._asked: collections.Counter = collections.Counter()
        self._pads = bool(pads)
        self._checked: set = set()
        self._axes = padding.open_axes(model)
        self._output_axes: Optional[tuple] = None

    def bucket_options(self) -> dict:
        """The constructor arguments, for a copy with other analyses."""
        return {"buckets": self.buckets, "patience": self.patience,
                "max_analyses": self.max_analyses, "pads": self._pads}

    def bucket(self, length: int) -> int:
        """The length of the analysis built for inputs of ``length``."""
        if self.padding is False:
            return length
        listed = [b for b in self.buckets if b >= length] if isinstance(self.buckets, list) \
            else []
        bucket = listed[0] if listed else 1 << (max(length, MIN_BUCKET) - 1).bit_length()
        if self.too_long is not None and bucket >= self.too_long > length:
            return length  # the model cannot run at the bucket's length
        return bucket

    def serving(self, length: int) -> int:
        """The built length that explains inputs of ``length`` (see the module docstring)."""
        own = self.bucket(length)
        if own in self.analyzers or self.padding is False:
            return own
        longer = [b for b in self.analyzers if length <= b and (
            self.too_long is None or b < self.too_long)]
        if longer and self._asked[own] < self.patience:
            self._asked[own] += 1
            return min(longer)
        return own

    def for_length(self, length: int, built: Optional[int] = None):
        """The analyzer for inputs of ``length``: the one built for ``built`` (default:
        :meth:`serving`), made now if it is missing (and built on its first use)."""
        built = self.serving(length) if built is None else built
        if built not in self.analyzers:
            while len(self.analyzers) >= self.max_analyses:
                self.analyzers.popitem(last=False)
            self.analyzers[built] = self.make_analysis(built)
            self.builds += 1
        self.analyzers.move_to_end(built)
        return self.analyzers[built]

    def make_analysis(self, length: int):
        """The analysis for inputs padded (or not) to ``length``."""
        axes = self.output_length_axes() if self.padding is not False else None
        return self.make(fixed_length(self.model, length), axes)

    # -- padding ------------------------------------------------------------------------------
    def output_length_axes(self) -> Optional[tuple]:
        """The explained output's position axes, read off the model called on two lengths
        (``None``, and padding off, where an output's size changes otherwise)."""
        if self._output_axes is None and self.padding is not False:
            for n, m in PROBE_LENGTHS:
                try:
                    short, long = (tree.flatten(fixed_length(self.model, k).outputs)
                                   for k in (n, m))
                except Exception as e:  # noqa: BLE001 - the model does not run at these
                    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                    error = f"the model does not run at lengths {n} and {m} ({first})"
                    continue
                try:
                    axes = [padding.output_length_axes(s, t, n, m, f"output {i}")
                            for i, (s, t) in enumerate(zip(short, long))]
                except padding.PaddingChanges as e:
                    error = str(e)
                    break
                self._output_axes = axes[self._explained_output()]
                return self._output_axes
            self._padding_off(error)
        return self._output_axes

    def _padded_length(self, arrays, length: int) -> int:
        """The built length for inputs of ``length``, checking padding to it on the first row
        (once per built length); the exact length where padding changes the model."""
        built = self.serving(length)
        if built == length or built in self._checked or self.padding is False:
            return built
        if self.output_length_axes() is None:
            return length
        try:
            padding.check_padding(self.model, [a[:1] for a in arrays], self._axes, built)
        except padding.PaddingChanges as e:
            self._padding_off(str(e))
            return length
        except Exception:  # noqa: BLE001 - the model cannot run at that length (a table of
            # positions shorter than the bucket): pad no further than below it
            self.too_long = built if self.too_long is None else min(self.too_long, built)
            return self._padded_length(arrays, length)
        self._checked.add(built)
        self.padding = True
        return built

    def _padding_off(self, why: str) -> None:
        self.padding, self.padding_error = False, why
        warnings.warn(f"Model '{self.model_name}': {why}, so each input length gets its own "
                      "analysis (a build per new length). A causal model, or a model given its "
                      "padding mask, can share one analysis across lengths.", stacklevel=4)

    def _explained_output(self) -> int:
        output = getattr(self, "output", None)
        names = list(getattr(self.model, "output_names", None) or [])
        if isinstance(output, str) and output in names:
            return names.index(output)
        return int(output) if isinstance(output, (int, np.integer)) else 0


__all__ = ["BUCKET_CHOICES", "Buckets", "MIN_BUCKET", "PROBE_LENGTHS", "check_buckets",
           "fixed_length"]
