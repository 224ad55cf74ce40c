"""Analyzers for models whose inputs have an open sequence length (keras-hub's causal LMs are
built on ``keras.Input((None,), "int32")``).

A traced transformer block needs static shapes (its parts are laid out for one length), so
:class:`PerLength` builds analyses for a few fixed lengths, the *buckets*, on the user's model
called on inputs of that length (the model itself is never rebuilt or changed), and explains an
input of length n with an analysis built for a length L ≥ n: the inputs are padded to L, only
the outputs at the n real positions are explained, and the relevance is sliced back to n
(:mod:`keras_lrp.analyzers.padding`; checked once per bucket on the user's model, and where
padding changes the model's outputs, every length gets its own analysis).

Which analysis serves length n (``buckets="pow2"``, the default): the one built for B(n), the
smallest power of two ≥ max(n, 16), if it exists. Otherwise the smallest analysis already built
for a length ≥ n serves it, until B(n) has been asked for ``patience`` times (default 32): then
B(n) is built. A build costs hundreds of analyses of a short prompt, so a few long buckets serve
everything at first, and a short bucket is built only once it has paid for itself (the ski-rental
rule). At most ``max_analyses`` (default 8) are kept, least recently used dropped first.
"""

from __future__ import annotations

import collections
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import keras
import numpy as np
from keras import tree

from keras_lrp.analyzers import padding
from keras_lrp.analyzers.inputs import is_batch_stream
from keras_lrp.analyzers.running import check_indices, concatenate, stream_batches
from keras_lrp.canonizers.blocks import is_foreign, is_traced

#: The smallest bucket of ``buckets="pow2"``.
MIN_BUCKET = 16
#: The pairs of lengths the model is called on (symbolically) to find its outputs' position
#: axes: the first pair it runs at.
PROBE_LENGTHS = ((7, 11), (2, 3))
#: What ``buckets`` may be.
BUCKET_CHOICES = ("pow2", "exact")


def open_length(model) -> bool:
    """Whether ``model`` has an input with an unknown size beyond the batch axis and a layer
    keras-lrp may trace into its parts (a keras-hub transformer block, a layer of yours: a
    position embedding sized by ``ops.shape`` needs the length)."""
    inputs = getattr(model, "inputs", None) or []
    if not any(None in tuple(t.shape)[1:] for t in inputs):
        return False
    return any(is_traced(layer) or is_foreign(layer)
               for layer in model._flatten_layers(include_self=False))


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


class PerLength:
    """Analyses for a few input lengths, made on first use (see the module docstring).

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

    def __init__(self, make: Callable, model, name: str = "lrp",
                 kwargs: Optional[Dict[str, Any]] = None, buckets: Union[str, Sequence[int]]
                 = "pow2", patience: int = 32, max_analyses: int = 8, pads: bool = True):
        check_buckets(buckets, patience, max_analyses)
        self.make, self.model, self.name = make, model, name
        self._kwargs = dict(kwargs or {})
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
        self._checked: set = set()
        self._asked: collections.Counter = collections.Counter()
        self._axes = padding.open_axes(model)
        self._names = [t._keras_history.operation.name for t in model.inputs]
        self._output_axes: Optional[tuple] = None

    # -- lengths ---------------------------------------------------------------------------------
    def length_of(self, x) -> int:
        """The sequence length of ``x`` (a dict by input name, a list or one array)."""
        return self._length(self._arrays(x))

    def _length(self, arrays: List[np.ndarray]) -> int:
        lengths = {int(a.shape[i]) for a, ax in zip(arrays, self._axes) for i in ax}
        if len(lengths) != 1:
            raise ValueError(f"Model '{self.model_name}' takes sequences of any length, but "
                             f"its inputs must share one length per call; got lengths "
                             f"{sorted(lengths) or 'none'}. Pad the inputs (with a padding "
                             "mask) to one length, or analyze them separately.")
        return lengths.pop()

    def _arrays(self, x) -> List[np.ndarray]:
        if isinstance(x, dict):
            missing = [n for n in self._names if n not in x]
            if missing:
                raise ValueError(f"Model '{self.model_name}' needs inputs {self._names}; "
                                 f"missing {missing}.")
            return [np.asarray(x[n]) for n in self._names]
        if isinstance(x, (list, tuple)) and len(self._names) > 1:
            return [np.asarray(a) for a in x]
        return [np.asarray(x)]

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
        :meth:`serving`), built now if it is missing."""
        built = self.serving(length) if built is None else built
        if built not in self.analyzers:
            while len(self.analyzers) >= self.max_analyses:
                self.analyzers.popitem(last=False)
            axes = self.output_length_axes() if self.padding is not False else None
            self.analyzers[built] = self.make(fixed_length(self.model, built), axes)
            self.builds += 1
        self.analyzers.move_to_end(built)
        return self.analyzers[built]

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
        output = self._kwargs.get("output")
        names = list(getattr(self.model, "output_names", None) or [])
        if isinstance(output, str) and output in names:
            return names.index(output)
        return int(output) if isinstance(output, (int, np.integer)) else 0

    def _selection(self, neuron_selection, length: int, built: int, analyzer):
        """Flat indices into the output at ``length`` → into the output at ``built``."""
        if neuron_selection is None or built == length or \
                analyzer.neuron_selection_mode != "index":
            return neuron_selection
        shape_built = tuple(analyzer.logits.shape[1:])
        axes = analyzer.length_axes or ()
        shape = tuple(length if a + 1 in axes else d for a, d in enumerate(shape_built))
        sel = np.asarray(neuron_selection)
        check_indices(sel, int(np.prod(shape)), f" (the output of shape {shape} at length "
                      f"{length})")
        return np.ravel_multi_index(np.unravel_index(sel, shape), shape_built)

    # -- running ------------------------------------------------------------------------------
    def analyze(self, x, neuron_selection: Optional[Any] = None, layerwise: bool = False,
                batch_size: Optional[int] = None, allow_nonfinite: bool = False):
        """:meth:`keras_lrp.analyzers.base.Analyzer.analyze` with the analysis serving
        ``x``'s length (the exact length for ``layerwise``)."""
        return concatenate([r for _, r in self.iter_analyze(
            x, neuron_selection, batch_size, allow_nonfinite, layerwise)], layerwise)

    def iter_analyze(self, x, neuron_selection: Optional[Any] = None,
                     batch_size: Optional[int] = None, allow_nonfinite: bool = False,
                     layerwise: bool = False, skip: int = 0):
        """:meth:`keras_lrp.analyzers.base.Analyzer.iter_analyze`; a dataset's or
        generator's batches may each have their own length."""
        if is_batch_stream(x):
            for batch, rows_skipped in stream_batches(x, skip):
                yield from self.iter_analyze(batch, neuron_selection, batch_size,
                                             allow_nonfinite, layerwise, rows_skipped)
            return
        arrays = self._arrays(x)
        length = self._length(arrays)
        built = length if layerwise else self._padded_length(arrays, length)
        analyzer = self.for_length(length, built)
        feed = padding.pad(arrays, self._axes, built) if built != length else arrays
        selection = self._selection(neuron_selection, length, built, analyzer)
        feed = dict(zip(self._names, feed)) if len(feed) > 1 else feed[0]
        runs = analyzer.iter_analyze(feed, selection, batch_size,
                                     allow_nonfinite, layerwise, skip)
        start = skip
        while True:
            analyzer.valid_length = length if built != length else None
            try:
                _, result = next(runs)
            except StopIteration:
                return
            finally:
                analyzer.valid_length = None
            if built != length:
                parts = result if isinstance(result, list) else [result]
                parts = padding.cut(parts, self._axes, length)
                result = parts if isinstance(result, list) else parts[0]
            rows = len(result[0] if isinstance(result, list) else result)
            batch = [a[start:start + rows] for a in arrays]
            start += rows
            yield (batch[0] if len(batch) == 1 else batch), result

    def conservation(self, x, neuron_selection: Optional[Any] = None):
        """:meth:`keras_lrp.analyzers.base.Analyzer.conservation` at ``x``'s exact length."""
        length = self.length_of(x)
        return self.for_length(length, length).conservation(x, neuron_selection)

    def get_config(self) -> Dict[str, Any]:
        """``{"name": …, "kwargs": …}``, as :meth:`keras_lrp.Analyzer.get_config`."""
        return {"name": self.name, "kwargs": dict(self._kwargs)}

    def __repr__(self):
        return (f"PerLength({self.name!r}, model={self.model_name!r}, buckets={self.buckets!r}, "
                f"built={sorted(self.analyzers)})")


__all__ = ["PerLength", "check_buckets", "fixed_length", "open_length"]
