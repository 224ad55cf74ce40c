"""The symbolic side of an analysis: its Keras inputs, the traced forward output, the relevance
entering at the explained output, and the Keras models from the inputs to the relevances.

:class:`SymbolicModels` is the part of :class:`~keras_lrp.analyzers.base.Analyzer` that
:meth:`~keras_lrp.analyzers.base.Analyzer.build` uses to make them: the data inputs (16-bit
inputs read as float32), the neuron selection and valid-length inputs after the data, the
explained output of the canonized graph (:meth:`trace_forward`), the start relevance
(:class:`~keras_lrp.analyzers.selection.OutputRelevance`), and :attr:`relevance_model` with its
layer-wise twin.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from keras_lrp.analyzers.selection import OutputRelevance
from keras_lrp.canonizers.base import LOW_PRECISION
from keras_lrp.core import graph as graph_mod


def one_or_list(tensors):
    """One tensor for one, else the list (Keras models and calls take either)."""
    return tensors[0] if len(tensors) == 1 else list(tensors)


class SymbolicModels:
    """The symbolic inputs, forward output, start relevance and relevance models of an analyzer
    (reads the analyzer's :attr:`graph`, options and :attr:`name`; see the module docstring)."""

    def trace_forward(self, inputs):
        """The explained output of the canonized model on the symbolic ``inputs`` (of the
        user's own layers, through :class:`~keras_lrp.core.graph.GraphCall`, without
        :attr:`rewrites`)."""
        explained = self.graph.outputs[self.output_index]
        if self._direct:
            self._values = {}
            return graph_mod.GraphCall(self.graph, explained, name=f"{self._prefix}_model",
                                       dtype=inputs[0].dtype, autocast=False)(
                one_or_list(inputs))
        self._values = graph_mod.replay(self.graph, inputs)
        return self._values[explained]

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
        self._length_input = None
        if self.length_axes is not None:
            self._length_input = keras.Input(batch_shape=(None,), dtype="int32",
                                             name="valid_length")
        self.logits = self.trace_forward(self.inputs)
        self.forward_model = keras.Model(one_or_list(self.inputs), self.logits,
                                         name=f"{self._prefix}_forward")

    @property
    def _prefix(self) -> str:
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.name).strip("_")

    def output_relevance_layer(self, layer_name: str = "output_relevance") -> OutputRelevance:
        """The layer making the relevance at the explained output from ``[logits] +`` the
        inputs after the data (see
        :class:`~keras_lrp.analyzers.selection.OutputRelevance`)."""
        return OutputRelevance(self.neuron_selection_mode, self.output_relevance,
                               length_axes=self.length_axes or (), name=layer_name,
                               dtype=self.logits.dtype)

    def start_relevance(self, layer_name: str = "output_relevance"):
        """The symbolic relevance at the explained output (see
        :class:`~keras_lrp.analyzers.selection.OutputRelevance`)."""
        return self.output_relevance_layer(layer_name)([self.logits] + self.run_inputs())

    def run_inputs(self):
        """The symbolic inputs after the data: the selection and the valid length, if any."""
        return [t for t in (self._selection_input, self._length_input) if t is not None]

    def model_inputs(self):
        """The symbolic inputs of the relevance model: the data, then :meth:`run_inputs`."""
        return self.inputs + self.run_inputs()

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



__all__ = ["SymbolicModels", "one_or_list"]
