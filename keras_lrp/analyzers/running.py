"""Running an attribution: batching, datasets and generators, neuron selection, the compiled
function, the finiteness check, layer-wise output and conservation.

:class:`Runner` is the running half of every :class:`~keras_lrp.analyzers.base.Analyzer`; it
needs the analyzer's ``relevance_model`` (and ``_layerwise_model``), ``inputs``, ``logits``,
``neuron_selection_mode``, ``jit_compile``, ``layer_names``, ``name`` and ``strategy``, and
its ``build()``, called on first use.

With a ``tf.distribute`` strategy (the analyzer was created inside ``strategy.scope()``), every
batch is split into one contiguous shard per replica, each replica analyzes its shard, and the
results are gathered back in input order (``strategy.gather``): the same numbers as on one
device. With ``MultiWorkerMirroredStrategy`` every worker passes the same batches and receives
the whole result.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np
from numpy.typing import ArrayLike

from keras_lrp import backend
from keras_lrp.analyzers.inputs import as_arrays, is_batch_stream, slices, stream
from keras_lrp.analyzers.report import ConservationReport

#: What ``analyze`` takes: an array, a list of arrays (multi-input models), or a dataset,
#: generator or iterable of such batches.
Inputs = Union[ArrayLike, Sequence[ArrayLike], Iterable]
#: An output index, one per sample, or ``None`` (the mode decides).
Selection = Optional[Union[int, ArrayLike]]


def _run(model, *args):
    return model(args[0] if len(args) == 1 else list(args), training=False)


def concatenate(parts: List[Any], layerwise: bool):
    """What ``analyze`` returns, from the per-batch results of ``iter_analyze``."""
    if not parts:
        raise ValueError("analyze got no samples: the dataset or generator was empty.")
    if layerwise:
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if isinstance(parts[0], list):
        return [np.concatenate(group) for group in zip(*parts)]
    return np.concatenate(parts)


def stream_batches(x, skip: int) -> Iterator[Tuple[Any, int]]:
    """A dataset's or generator's batches, each with the rows to skip in it: the batches
    wholly before row ``skip`` are read and dropped."""
    for batch in stream(x):
        rows = len(batch[0] if isinstance(batch, list) else batch)
        if skip >= rows:
            skip -= rows
            continue
        yield batch, skip
        skip = 0


def check_indices(sel: np.ndarray, n: int, where: str = "") -> None:
    """Raise ValueError unless ``sel`` holds integer indices in [0, n) (``where``: the
    output they index, for the message)."""
    if not np.issubdtype(sel.dtype, np.integer) or sel.min() < 0 or sel.max() >= n:
        raise ValueError(f"neuron_selection must hold integer indices in [0, {n}){where}; got "
                         f"{sel.tolist() if sel.size <= 10 else sel}.")


class Runner:
    """Runs a built relevance model on data, one compiled TensorFlow graph per output kind."""

    @property
    def num_replicas(self) -> int:
        """How many replicas each batch is split over (1 without a distribution strategy)."""
        return backend.num_replicas(self.strategy)

    def _call(self, layerwise: bool, args):
        """The compiled function on one batch, on every replica of the strategy."""
        fn = self._function(layerwise)
        n = self.num_replicas
        if n == 1 or len(args[0]) < n:  # fewer samples than replicas: no empty shards
            return fn(*args)
        step, values = backend.distributed(self.strategy, fn, args)
        key = ("distributed", layerwise)
        if key not in self._functions:  # one graph for the run and the gather (not eager)
            self._functions[key] = backend.compile_function(step)
        return self._functions[key](*values)

    def _function(self, layerwise: bool):
        if layerwise not in self._functions:
            model = self._layerwise_model if layerwise else self.relevance_model
            if model is None:
                raise ValueError(f"Analyzer {self.name!r} ({type(self).__name__}) has no "
                                 "layer-wise relevances: it is not a layer-by-layer method.")
            self._functions[layerwise] = backend.compile_model(
                functools.partial(_run, model), model, jit_compile=self.jit_compile)
        return self._functions[layerwise]

    def _output_size(self, arrays) -> int:
        """How many values the explained output has per sample, for inputs like ``arrays``
        (read off the model called symbolically where its length is open)."""
        shape = tuple(self.logits.shape[1:])
        if None in shape:
            specs = [keras.KerasTensor((1,) + a.shape[1:], dtype=str(a.dtype)) for a in arrays]
            shape = tuple(self.forward_model.compute_output_spec(
                specs[0] if len(specs) == 1 else specs).shape[1:])
        return int(np.prod(shape))

    def _selection(self, neuron_selection, batch: int, arrays=()):
        if neuron_selection is None:
            raise ValueError("neuron_selection_mode='index' needs analyze(x, "
                             "neuron_selection=i) with an int or one index per sample.")
        n = self._output_size(arrays)
        sel = np.asarray(neuron_selection)
        if sel.ndim == 0:
            sel = np.full((batch,), sel)
        sel = sel.reshape(-1)
        if sel.shape[0] != batch:
            raise ValueError(f"neuron_selection has {sel.shape[0]} entries for a batch of "
                             f"{batch}; give one int or one index per sample.")
        check_indices(sel, n)
        return sel.astype("int32")

    def analyze(self, x: Inputs, neuron_selection: Selection = None, layerwise: bool = False,
                batch_size: Optional[int] = None, allow_nonfinite: bool = False
                ) -> Union[np.ndarray, List[np.ndarray], Dict[str, np.ndarray]]:
        """Relevance of every input value for the selected output.

        Args:
            x: one array (batch first), a list of arrays for a multi-input model, or a
                ``tf.data.Dataset``, generator or iterable yielding such batches (or ``(x, y)``
                pairs), consumed one batch at a time.
            neuron_selection: with ``neuron_selection_mode="index"``, the output index to
                explain: an int, or one per sample (arrays only).
            layerwise: return a dict from layer name to the relevance at that layer's output
                (model inputs included, by input name) instead of the input relevance.
            batch_size: analyze arrays this many samples at a time (bounds the memory used).
            allow_nonfinite: analyze inputs holding NaN or inf instead of raising (the result
                may then hold NaN or inf too; without it, a non-finite result is an error
                naming the layer whose rule produced it).

        Returns:
            A NumPy array shaped like ``x`` (a list for multi-input models), or the dict.
        """
        return concatenate([rel for _, rel in self.iter_analyze(
            x, neuron_selection, batch_size, allow_nonfinite, layerwise)], layerwise)

    def iter_analyze(self, x: Inputs, neuron_selection: Selection = None,
                     batch_size: Optional[int] = None, allow_nonfinite: bool = False,
                     layerwise: bool = False, skip: int = 0) -> Iterator[Tuple[Any, Any]]:
        """Like :meth:`analyze`, but yields ``(inputs, relevance)`` batch by batch, keeping
        nothing: for results larger than memory (write each batch, e.g. with
        :class:`keras_lrp.io.writer.RelevanceWriter`).

        ``skip`` starts at that row, e.g. a resumed writer's ``resumed_rows``: the rows before
        it are not analysed (a dataset's or generator's are read and dropped), and
        ``neuron_selection`` still counts from row 0.
        """
        if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 0:
            raise ValueError(f"skip must be a row count >= 0, got {skip!r}.")
        self.build()  # on first use
        if is_batch_stream(x):
            if neuron_selection is not None and np.ndim(neuron_selection) > 0:
                raise ValueError("With a dataset or generator, neuron_selection must be one int "
                                 "for every sample (or None).")
            for batch, rows_skipped in stream_batches(x, skip):
                yield from self.iter_analyze(batch, neuron_selection, batch_size,
                                             allow_nonfinite, layerwise, rows_skipped)
            return
        arrays = as_arrays(x, self.inputs, self.model_name, allow_nonfinite)
        n = arrays[0].shape[0]
        if self.neuron_selection_mode == "index":
            selection = self._selection(neuron_selection, n, arrays)[skip:]
        elif neuron_selection is not None:
            raise ValueError(f"neuron_selection is only used with neuron_selection_mode='index'"
                             f" (this analyzer uses {self.neuron_selection_mode!r}).")
        start, arrays = 0, [a[skip:] for a in arrays]
        if arrays[0].shape[0] == 0:
            return
        for batch in slices(arrays, batch_size):
            size = batch[0].shape[0]
            args = batch + ([selection[start:start + size]]
                            if self.neuron_selection_mode == "index" else [])
            if getattr(self, "_length_input", None) is not None:  # padded inputs' real length
                length = np.iinfo("int32").max if self.valid_length is None \
                    else self.valid_length  # None: every position is real
                args.append(np.full((size,), length, "int32"))
            start += size
            if getattr(self, "_forward_pending", False):  # the probe could not run the model
                self.check_forward(batch)
            out = self._call(layerwise, args)
            if layerwise:
                result = {k: backend.to_numpy(out[k]) for k in self.layer_names}
                arrays_out = list(result.values())
            else:
                outs = out if isinstance(out, (list, tuple)) else [out]
                arrays_out = [backend.to_numpy(v) for v in outs]
                result = arrays_out[0] if len(arrays_out) == 1 else arrays_out
            if not allow_nonfinite and not all(np.isfinite(a).all() for a in arrays_out):
                raise FloatingPointError(self._overflow_message(args))
            yield (batch[0] if len(batch) == 1 else batch), result

    def _overflow_message(self, args) -> str:
        """Name the layer whose rule first produced inf/NaN (walking from the output)."""
        where = ""
        if self._layerwise_model is not None:
            rows = self._function(True)(*args)
            names = self.layer_names  # forward order; rows[name] = relevance at name's output
            bad = next((i for i in reversed(range(len(names)))
                        if not np.isfinite(backend.to_numpy(rows[names[i]])).all()), None)
            if bad is not None and bad + 1 < len(names):
                consumer = names[bad + 1]  # the layer reading that tensor; its rule produced it
                rule = next((repr(layer) for layer in self.relevance_model.layers
                             if layer.name == f"{consumer}_relevance"), "its rule")
                where = f" at layer '{consumer}' ({rule}), passing relevance to '{names[bad]}',"
        return (f"Relevance overflowed to inf/NaN{where} in analyzer {self.name!r}: a "
                "denominator nearly cancelled and the ratios grew without bound. This happens "
                "with rules that are not stabilised against mixed-sign inputs (e.g. ZPlusFast on "
                "inputs that can be negative). Use a stabilised rule there (lrp.epsilon, "
                "lrp.z_plus, lrp.alpha_1_beta_0), or analyze in float64.")

    def conservation(self, x: Inputs, neuron_selection: Selection = None
                     ) -> ConservationReport:
        """Σ R at every layer next to the explained output (see :class:`ConservationReport`)."""
        rows = self.analyze(x, neuron_selection, layerwise=True)
        output_name = next(reversed(rows))
        return ConservationReport(self.name, rows, explained=rows[output_name],
                                  input_names=[t.name for t in self.inputs])
