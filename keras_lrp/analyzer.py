"""The analyzer: a cleaned clone of the model plus its reverse graph of relevance layers.

Building an :class:`Analyzer` clones and canonicalises the model (:mod:`keras_lrp.canonize`),
replays it on fresh inputs, and walks it backwards, calling one relevance layer per forward
layer. The result, :attr:`Analyzer.relevance_model`, is an ordinary Keras model from the inputs
to their relevances; :meth:`Analyzer.analyze` runs it as one compiled TensorFlow graph.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_lrp import graph as graph_mod
from keras_lrp.canonize import LOW_PRECISION, canonize
from keras_lrp.layer_map import RuleSelector, check_supported, input_fed_nodes, \
    nonnegative_tensors, relevance_layer
from keras_lrp.inputs import as_arrays, is_batch_stream, slices, stream
from keras_lrp.report import ConservationReport

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


def _one_or_list(tensors):
    return tensors[0] if len(tensors) == 1 else list(tensors)


class Analyzer:
    """LRP analyzer for one Keras model and one assignment of rules.

    Use :func:`keras_lrp.create_analyzer` rather than building this directly.

    Args:
        model: a built Functional or Sequential Keras model (never modified).
        selector: the :class:`~keras_lrp.layer_map.RuleSelector` choosing each layer's rule.
        neuron_selection_mode: ``"max_activation"`` (default), ``"index"`` or ``"all"``.
        output_relevance: ``"logit"`` (start from the explained logit) or ``"one"``.
        name: the analyzer's name, for reports.
        jit_compile: compile the analysis with XLA.
    """

    def __init__(self, model, selector: Optional[RuleSelector] = None,
                 neuron_selection_mode: str = "max_activation", output_relevance: str = "logit",
                 name: str = "lrp", jit_compile: bool = False, output=None):
        if neuron_selection_mode not in NEURON_SELECTION_MODES:
            raise ValueError(f"neuron_selection_mode must be one of {NEURON_SELECTION_MODES}, "
                             f"got {neuron_selection_mode!r}.")
        if output_relevance not in OUTPUT_RELEVANCES:
            raise ValueError(f"output_relevance must be one of {OUTPUT_RELEVANCES}, got "
                             f"{output_relevance!r}.")
        self.name = name
        #: The user's model (read, never modified); saved by :meth:`save`.
        self.model = model
        #: ``{"name": …, "kwargs": …}`` as given to create_analyzer (set by it), for :meth:`save`.
        self.config = {"name": name, "kwargs": {}}
        self.model_name = getattr(model, "name", "model")
        self.neuron_selection_mode = neuron_selection_mode
        self.output_relevance = output_relevance
        self.jit_compile = jit_compile
        self.selector = selector
        self.graph = graph_mod.extract(model)
        check_supported(self.graph)
        self.graph = canonize(self.graph)
        self.output_index = self._output_index(output)
        self._build()
        self._functions: Dict[bool, Any] = {}

    # -- building -----------------------------------------------------------------------------

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
        self._values = graph_mod.replay(self.graph, self.inputs)
        self.logits = self._values[self.graph.outputs[self.output_index]]
        self.forward_model = keras.Model(_one_or_list(self.inputs), self.logits,
                                         name=f"{self.name.replace('.', '_')}_forward")
        start_inputs = [self.logits] + ([self._selection_input] if self._selection_input
                                        is not None else [])
        self.start = OutputRelevance(self.neuron_selection_mode, self.output_relevance,
                                     name="output_relevance", dtype=self.logits.dtype)(
                                         start_inputs)

    def _model_inputs(self):
        return self.inputs + ([self._selection_input] if self._selection_input is not None
                              else [])

    def _build(self):
        self._make_inputs()
        g, values = self.graph, self._values
        input_fed, nonneg = input_fed_nodes(g), nonnegative_tensors(g)
        relevance = {g.outputs[self.output_index]: self.start}
        layerwise: Dict[str, Any] = {}
        calls: Dict[str, int] = {}  # a shared layer's calls are numbered in forward order
        call_index = {}
        for node in g.nodes:
            call_index[id(node)] = calls.get(node.layer.name, 0)
            calls[node.layer.name] = call_index[id(node)] + 1
        sums = 0
        for node in reversed(g.nodes):
            r_out = relevance.get(node.outputs[0])
            if r_out is None:
                continue  # the node does not lead to the explained output
            if len(node.outputs) != 1:
                raise ValueError(f"Layer '{node.layer.name}' has {len(node.outputs)} outputs; "
                                 "keras-lrp supports single-output layers.")
            k = call_index[id(node)]
            key = f"{node.layer.name}_{k}" if k else node.layer.name
            layerwise[key] = r_out
            rel = relevance_layer(node, self.selector, g, input_fed, nonneg)
            if k:
                rel.name = f"{rel.name}_{k}"
            out = rel([values[t] for t in node.inputs] + [values[node.outputs[0]], r_out])
            out = out if isinstance(out, (list, tuple)) else [out]
            for tid, r in zip(node.inputs, out):
                if tid in relevance:  # several consumers: sum their relevance
                    sums += 1
                    r = keras.layers.Add(name=f"relevance_sum_{sums}",
                                         dtype=relevance[tid].dtype)([relevance[tid], r])
                relevance[tid] = r
        input_relevance = []
        for tid, x in zip(g.inputs, self.inputs):
            input_relevance.append(relevance[tid] if tid in relevance else ops.zeros_like(x))
        layerwise = {x.name: r for x, r in zip(self.inputs, input_relevance)} | dict(
            reversed(list(layerwise.items())))
        #: Layer names in forward order, as keys of ``analyze(x, layerwise=True)``.
        self.layer_names = list(layerwise)
        self.relevance_model = keras.Model(_one_or_list(self._model_inputs()),
                                           _one_or_list(input_relevance),
                                           name=f"{self.name.replace('.', '_')}_relevance")
        self._layerwise_model = keras.Model(_one_or_list(self._model_inputs()), layerwise,
                                            name=f"{self.name.replace('.', '_')}_layerwise")

    # -- running ------------------------------------------------------------------------------

    def _function(self, layerwise: bool):
        if layerwise not in self._functions:
            model = self._layerwise_model if layerwise else self.relevance_model
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
        rows = self._function(True)(*args)
        names = self.layer_names  # forward order; rows[name] = relevance at name's output
        bad = next((i for i in reversed(range(len(names)))
                    if not np.isfinite(np.asarray(rows[names[i]])).all()), None)
        where = ""
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
        from keras_lrp.serialize import save_analyzer

        save_analyzer(self, path)

    def __repr__(self):
        return (f"<keras_lrp.Analyzer {self.name!r} of model {self.model_name!r}, "
                f"neuron_selection_mode={self.neuron_selection_mode!r}>")
