"""Attributors: build an attribution model once, then run it on data.

An :class:`Attributor` extracts and canonizes a private copy of the model, makes its
:attr:`~Attributor.relevance_model` (a Keras model from the inputs to their relevances), traces
it into one TensorFlow graph, and runs it: batching, datasets and generators, neuron selection,
the finiteness check, layer-wise output and conservation. Subclasses only say what the model
computes: :class:`LRP` builds the reverse graph of a composite (:mod:`keras_lrp.reverse`); the
gradient family is in :mod:`keras_lrp.gradients`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_lrp import graph as graph_mod
from keras_lrp.canonizers import DEFAULT_CANONIZERS, LOW_PRECISION, canonize
from keras_lrp.composites import Composite
from keras_lrp.inputs import as_arrays, is_batch_stream, slices, stream
from keras_lrp.report import ConservationReport
from keras_lrp.reverse import reverse
from keras_lrp.serialize import save_analyzer

NEURON_SELECTION_MODES = ("max_activation", "index", "all")
OUTPUT_RELEVANCES = ("logit", "one")


class OutputRelevance(keras.layers.Layer):
    """The relevance entering the network at its output (pre-softmax logits).

    Formula:
        R_k = m_k · y_k  (``output_relevance="logit"``)  or  R_k = m_k  (``"one"``), with m the
        selection mask: one-hot of argmax_k y_k (``max_activation``), one-hot of the given index
        (``index``) or all ones (``all``).
    """

    def __init__(self, mode: str = "max_activation", start: str = "logit", **kwargs):
        super().__init__(**kwargs)
        self.mode, self.start = mode, start

    def call(self, inputs):
        logits = inputs[0]
        n = int(np.prod(logits.shape[1:]))
        flat = ops.reshape(logits, (-1, n))
        if self.mode == "all":
            mask = ops.ones_like(flat)
        elif self.mode == "max_activation":
            mask = ops.one_hot(ops.argmax(flat, axis=-1), n, dtype=flat.dtype)
        else:
            mask = ops.one_hot(ops.cast(inputs[1], "int32"), n, dtype=flat.dtype)
        relevance = mask * flat if self.start == "logit" else mask
        return ops.reshape(relevance, ops.shape(logits))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "start": self.start}


def _run(model, *args):
    return model(args[0] if len(args) == 1 else list(args), training=False)


def one_or_list(tensors):
    return tensors[0] if len(tensors) == 1 else list(tensors)


class Attributor:
    """Runs one attribution method on one Keras model (use :func:`keras_lrp.create_analyzer`).

    Subclasses implement :meth:`build`, returning the relevance at each input and (optionally)
    the layer-wise relevances, from the symbolic inputs set up here.

    Args:
        model: a built Functional or Sequential Keras model (never modified).
        neuron_selection_mode: ``"max_activation"`` (default), ``"index"`` or ``"all"``.
        output_relevance: ``"logit"`` (start from the explained logit) or ``"one"``.
        output: the explained output of a multi-output model (index or output layer name).
        jit_compile: compile the analysis with XLA.
        name: the analyzer's name, for reports and saving.
        kwargs: the keyword arguments ``create_analyzer(name, model, **kwargs)`` rebuilds this
            analyzer from (see :meth:`get_config`).
    """

    #: The canonizers of an attributor without a composite.
    canonizers = DEFAULT_CANONIZERS

    def __init__(self, model, neuron_selection_mode: str = "max_activation",
                 output_relevance: str = "logit", output=None, jit_compile: bool = False,
                 name: str = "lrp", kwargs: Optional[Dict[str, Any]] = None):
        if neuron_selection_mode not in NEURON_SELECTION_MODES:
            raise ValueError(f"neuron_selection_mode must be one of {NEURON_SELECTION_MODES}, "
                             f"got {neuron_selection_mode!r}.")
        if output_relevance not in OUTPUT_RELEVANCES:
            raise ValueError(f"output_relevance must be one of {OUTPUT_RELEVANCES}, got "
                             f"{output_relevance!r}.")
        self.name = name
        #: The user's model (read, never modified); saved by :meth:`save`.
        self.model = model
        self.model_name = getattr(model, "name", "model")
        self.neuron_selection_mode = neuron_selection_mode
        self.output_relevance = output_relevance
        self.jit_compile = jit_compile
        self._kwargs = dict(kwargs or {})
        self._options = dict(neuron_selection_mode=neuron_selection_mode,
                             output_relevance=output_relevance, output=output,
                             jit_compile=jit_compile, name=name, kwargs=kwargs)
        self.graph = self.prepare_graph()
        self.output_index = self._output_index(output)
        self._functions: Dict[bool, Any] = {}
        self._make_inputs()
        relevances, layerwise = self.build()
        self._make_models(relevances, layerwise)
        self._function(False).get_concrete_function()  # trace now: shape errors at build time

    # -- building -----------------------------------------------------------------------------
    def prepare_graph(self):
        """The private, canonized copy of the model's graph."""
        return canonize(graph_mod.extract(self.model), self.canonizers, self.check)

    def trace_forward(self, inputs):
        """The explained output of the canonized model on the symbolic ``inputs``."""
        self._values = graph_mod.replay(self.graph, inputs)
        return self._values[self.graph.outputs[self.output_index]]

    def check(self, graph) -> None:
        """Raise for layers this attributor cannot explain (on the user's layers, before any
        cloning); the default accepts every differentiable layer."""

    def build(self):  # pragma: no cover - abstract
        """``(relevance at each input, {layer name: relevance} or None)``, symbolic."""
        raise NotImplementedError

    def _output_index(self, output) -> int:
        """The explained output's index, from ``output`` (an index or an output layer name)."""
        names = self.graph.output_names
        if output is None:
            if len(names) > 1:
                raise ValueError(f"Model '{self.model_name}' has {len(names)} outputs "
                                 f"({', '.join(names)}); choose one with output=<index or "
                                 "name>.")
            return 0
        if isinstance(output, str):
            if output not in names:
                raise ValueError(f"Model '{self.model_name}' has no output named {output!r}; "
                                 f"its outputs are {', '.join(names)}.")
            return names.index(output)
        if isinstance(output, (int, np.integer)) and not isinstance(output, bool) and \
                -len(names) <= output < len(names):
            return int(output) % len(names)
        raise ValueError(f"output must be an index in [0, {len(names)}) or one of "
                         f"{', '.join(names)}; got {output!r}.")

    def _make_inputs(self):
        self.inputs = [keras.Input(batch_shape=(None,) + tuple(spec.shape[1:]),
                                   dtype="float32" if spec.dtype in LOW_PRECISION else spec.dtype,
                                   name=graph_mod.input_name(spec))
                       for spec in self.graph.input_specs]
        self._selection_input = None
        if self.neuron_selection_mode == "index":
            self._selection_input = keras.Input(batch_shape=(None,), dtype="int32",
                                                name="neuron_selection")
        self.logits = self.trace_forward(self.inputs)
        self.forward_model = keras.Model(one_or_list(self.inputs), self.logits,
                                         name=f"{self._prefix}_forward")

    @property
    def _prefix(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.name).strip("_")

    def start_relevance(self, layer_name: str = "output_relevance"):
        """The symbolic relevance at the explained output (see :class:`OutputRelevance`)."""
        return OutputRelevance(self.neuron_selection_mode, self.output_relevance,
                               name=layer_name, dtype=self.logits.dtype)(
            [self.logits] + ([self._selection_input] if self._selection_input is not None
                             else []))

    def model_inputs(self):
        """The symbolic inputs of the relevance model: the data, then the selection if any."""
        return self.inputs + ([self._selection_input] if self._selection_input is not None
                              else [])

    def _make_models(self, relevances, layerwise):
        inputs = one_or_list(self.model_inputs())
        self.relevance_model = keras.Model(inputs, one_or_list(relevances),
                                           name=f"{self._prefix}_relevance")
        self._layerwise_model = None
        #: Layer names in forward order, as keys of ``analyze(x, layerwise=True)``.
        self.layer_names = [x.name for x in self.inputs]
        if layerwise is not None:
            layerwise = {x.name: r for x, r in zip(self.inputs, relevances)} | layerwise
            self.layer_names = list(layerwise)
            self._layerwise_model = keras.Model(inputs, layerwise,
                                                name=f"{self._prefix}_layerwise")

    # -- configuration -------------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        """``{"name": …, "kwargs": …}``: ``create_analyzer(name, model, **kwargs)`` rebuilds this
        analyzer (saving and loading use it)."""
        return {"name": self.name, "kwargs": dict(self._kwargs)}

    def clone(self, **overrides) -> "Attributor":
        """The same attributor rebuilt with some constructor arguments changed."""
        return type(self)(self.model, **{**self._options, **overrides})

    # -- running ------------------------------------------------------------------------------
    def _function(self, layerwise: bool):
        if layerwise not in self._functions:
            model = self._layerwise_model if layerwise else self.relevance_model
            if model is None:
                raise ValueError(f"Analyzer {self.name!r} ({type(self).__name__}) has no "
                                 "layer-wise relevances: it is not a layer-by-layer method.")
            specs = [tf.TensorSpec(tuple(t.shape), t.dtype) for t in model.inputs]
            self._functions[layerwise] = tf.function(
                functools.partial(_run, model), input_signature=specs,
                jit_compile=self.jit_compile, reduce_retracing=True)
        return self._functions[layerwise]

    def _selection(self, neuron_selection, batch: int):
        if neuron_selection is None:
            raise ValueError("neuron_selection_mode='index' needs analyze(x, "
                             "neuron_selection=i) with an int or one index per sample.")
        n = int(np.prod(self.logits.shape[1:]))
        sel = np.asarray(neuron_selection)
        if sel.ndim == 0:
            sel = np.full((batch,), sel)
        sel = sel.reshape(-1)
        if sel.shape[0] != batch:
            raise ValueError(f"neuron_selection has {sel.shape[0]} entries for a batch of "
                             f"{batch}; give one int or one index per sample.")
        if not np.issubdtype(sel.dtype, np.integer) or sel.min() < 0 or sel.max() >= n:
            raise ValueError(f"neuron_selection must hold integer indices in [0, {n}); got "
                             f"{sel.tolist() if sel.size <= 10 else sel}.")
        return sel.astype("int32")

    def analyze(self, x, neuron_selection=None, layerwise: bool = False,
                batch_size: Optional[int] = None, allow_nonfinite: bool = False):
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
        parts = [rel for _, rel in self.iter_analyze(x, neuron_selection, batch_size,
                                                     allow_nonfinite, layerwise)]
        if not parts:
            raise ValueError("analyze got no samples: the dataset or generator was empty.")
        if layerwise:
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if isinstance(parts[0], list):
            return [np.concatenate(group) for group in zip(*parts)]
        return np.concatenate(parts)

    def iter_analyze(self, x, neuron_selection=None, batch_size: Optional[int] = None,
                     allow_nonfinite: bool = False, layerwise: bool = False):
        """Like :meth:`analyze`, but yields ``(inputs, relevance)`` batch by batch, keeping
        nothing: for results larger than memory (write each batch, e.g. with
        :class:`keras_lrp.io.RelevanceWriter`)."""
        if is_batch_stream(x):
            if neuron_selection is not None and np.ndim(neuron_selection) > 0:
                raise ValueError("With a dataset or generator, neuron_selection must be one int "
                                 "for every sample (or None).")
            for batch in stream(x):
                yield from self.iter_analyze(batch, neuron_selection, batch_size,
                                             allow_nonfinite, layerwise)
            return
        arrays = as_arrays(x, self.inputs, self.model_name, allow_nonfinite)
        n = arrays[0].shape[0]
        if self.neuron_selection_mode == "index":
            selection = self._selection(neuron_selection, n)
        elif neuron_selection is not None:
            raise ValueError(f"neuron_selection is only used with neuron_selection_mode='index'"
                             f" (this analyzer uses {self.neuron_selection_mode!r}).")
        start = 0
        for batch in slices(arrays, batch_size):
            size = batch[0].shape[0]
            args = batch + ([selection[start:start + size]]
                            if self.neuron_selection_mode == "index" else [])
            start += size
            out = self._function(layerwise)(*args)
            if layerwise:
                result = {k: np.asarray(out[k]) for k in self.layer_names}
                arrays_out = list(result.values())
            else:
                arrays_out = [np.asarray(v) for v in (out if isinstance(out, (list, tuple))
                                                      else [out])]
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
                        if not np.isfinite(np.asarray(rows[names[i]])).all()), None)
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

    def conservation(self, x, neuron_selection=None) -> ConservationReport:
        """Σ R at every layer next to the explained output (see :class:`ConservationReport`)."""
        rows = self.analyze(x, neuron_selection, layerwise=True)
        output_name = next(reversed(rows))
        return ConservationReport(self.name, rows, explained=rows[output_name],
                                  input_names=[t.name for t in self.inputs])

    def save(self, path: str) -> None:
        """Save this analyzer (configuration and model) to one file; see
        :func:`keras_lrp.load_analyzer`."""
        save_analyzer(self.get_config(), self.model, path)

    def __repr__(self):
        return (f"<keras_lrp.{type(self).__name__} {self.name!r} of model {self.model_name!r}, "
                f"neuron_selection_mode={self.neuron_selection_mode!r}>")


class LRP(Attributor):
    """Layer-wise Relevance Propagation with a :class:`~keras_lrp.composites.Composite`.

    The reverse graph calls, for every forward layer from the output back to the inputs, the
    relevance layer the composite chooses (Bach et al. 2015; Montavon et al. 2019).

    Args:
        model: the Keras model.
        composite: which rule or relevance layer each layer gets, and the canonizers.
        **kwargs: see :class:`Attributor`.
    """

    def __init__(self, model, composite: Composite, **kwargs):
        self.composite = composite
        self.canonizers = composite.canonizers
        super().__init__(model, **kwargs)
        self._options["composite"] = composite

    def check(self, graph) -> None:
        self.composite.check(graph, self.model)

    def build(self):
        rev = reverse(self.graph, self.composite, self._values,
                      self.graph.outputs[self.output_index], self.start_relevance(), self.inputs,
                      self.model)
        return rev.inputs, rev.layerwise


#: The name this class had before attributors; kept for ``isinstance`` checks.
Analyzer = Attributor
