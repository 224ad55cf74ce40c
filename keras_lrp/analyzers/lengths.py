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

from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from keras_lrp.analyzers import padding
from keras_lrp.analyzers.base import Analyzer
from keras_lrp.analyzers.buckets import (
    BUCKET_CHOICES,
    MIN_BUCKET,
    PROBE_LENGTHS,
    Buckets,
    check_buckets,
    fixed_length,
)
from keras_lrp.analyzers.inputs import is_batch_stream
from keras_lrp.analyzers.running import check_indices, stream_batches
from keras_lrp.canonizers.blocks import is_foreign, is_traced


def open_length(model) -> bool:
    """Whether ``model`` has an input with an unknown size beyond the batch axis and a layer
    keras-lrp may trace into its parts (a keras-hub transformer block, a layer of yours: a
    position embedding sized by ``ops.shape`` needs the length)."""
    inputs = getattr(model, "inputs", None) or []
    if not any(None in tuple(t.shape)[1:] for t in inputs):
        return False
    return any(is_traced(layer) or is_foreign(layer)
               for layer in model._flatten_layers(include_self=False))


class PerLength(Buckets, Analyzer):
    """An analyzer for a model of open length: analyses for a few input lengths, made on first
    use (see the module docstring; the bookkeeping is
    :class:`~keras_lrp.analyzers.buckets.Buckets`'). It is an
    :class:`~keras_lrp.analyzers.base.Analyzer`: it analyzes, streams, saves and is wrapped
    (SmoothGrad, IntegratedGradients: one wrapper per exact length) like one, but has no
    relevance model of its own (:meth:`for_length` gives the analysis of a length).

    Args:
        make: ``make(model, length_axes) -> Analyzer`` for a model of fixed length, whose
            explained output's positions lie along ``length_axes`` (``None``: not padded).
        model: the user's model, whose inputs have an open length.
        name, kwargs: as :class:`~keras_lrp.analyzers.base.Analyzer`'s.
        buckets, patience, max_analyses, pads: see
            :class:`~keras_lrp.analyzers.buckets.Buckets` (``pads``: whether ``make`` honours
            ``length_axes``).
        options: the analyses' ``neuron_selection_mode``, ``output_relevance``, ``output``,
            ``jit_compile`` and ``forward_check`` (as :class:`Analyzer`'s).
    """

    def __init__(self, make: Callable, model, name: str = "lrp",
                 kwargs: Optional[Dict[str, Any]] = None, buckets: Union[str, Sequence[int]]
                 = "pow2", patience: int = 32, max_analyses: int = 8, pads: bool = True,
                 **options):
        Analyzer.__init__(self, model, name=name, kwargs=kwargs, **options)
        Buckets.__init__(self, make, model, buckets, patience, max_analyses, pads)
        self._names = [t._keras_history.operation.name for t in model.inputs]

    def _build(self) -> None:
        """Nothing to build: each length's analysis is built when first met."""

    def clone(self, **overrides) -> PerLength:
        """The same analyses with some arguments of each changed (built on first use)."""
        make = self.make
        options = {k: v for k, v in self._options.items() if k != "length_axes"}
        return type(self)(lambda fixed, axes: make(fixed, axes).clone(**overrides), self.model,
                          **{**options, **overrides}, **self.bucket_options())

    def wrapped(self, wrap: Callable, name: str) -> PerLength:
        """A PerLength whose analysis of each exact length is ``wrap(this one's analysis)``
        (unpadded: a wrapper's copies and path would reach the padding)."""
        make = self.make
        options = {k: v for k, v in self._options.items() if k not in ("length_axes", "name")}
        return type(self)(lambda fixed, axes: wrap(make(fixed, None)), self.model, name=name,
                          **options, **{**self.bucket_options(), "pads": False})

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

    def _built_selection(self, neuron_selection, length: int, built: int, analyzer):
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
        selection = self._built_selection(neuron_selection, length, built, analyzer)
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

    def __repr__(self):
        return (f"PerLength({self.name!r}, model={self.model_name!r}, buckets={self.buckets!r}, "
                f"built={sorted(self.analyzers)})")


__all__ = ["BUCKET_CHOICES", "MIN_BUCKET", "PROBE_LENGTHS", "PerLength", "check_buckets",
           "fixed_length", "open_length"]
