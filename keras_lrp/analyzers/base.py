"""Analyzers: build an attribution model once, then run it on data.

An :class:`Analyzer` extracts and canonizes a private copy of the model, makes its
:attr:`~Analyzer.relevance_model` (a Keras model from the inputs to their relevances), traces
it into one TensorFlow graph, and runs it: batching, datasets and generators, neuron selection,
the finiteness check, layer-wise output and conservation. Subclasses only say what the model
computes: :class:`~keras_lrp.analyzers.lrp.LRP` builds the reverse graph of a composite
(:mod:`keras_lrp.analyzers.reverse`); the gradient family is in
:mod:`keras_lrp.analyzers.gradient`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Dict, Optional, Sequence

import keras

from keras_lrp import backend
from keras_lrp.analyzers.running import Runner
from keras_lrp.analyzers.selection import (  # noqa: F401 - OutputRelevance's old home
    NEURON_SELECTION_MODES,
    OUTPUT_RELEVANCES,
    OutputRelevance,
)
from keras_lrp.analyzers.serialize import save_analyzer
from keras_lrp.analyzers.symbolic import SymbolicModels
from keras_lrp.analyzers.verify import ForwardChecked
from keras_lrp.canonizers.base import (
    DEFAULT_CANONIZERS,
    StripSoftmax,
    finish,
    restructure,
    unfuse_output_softmax,
)
from keras_lrp.core import graph as graph_mod

#: What :meth:`Analyzer.build` makes: reading one of these on an analyzer not built yet builds it.
BUILT = frozenset({"graph", "reference_graph", "output_index", "inputs", "logits",
                   "forward_model", "relevance_model", "layer_names", "_layerwise_model",
                   "_direct", "_values", "_selection_input", "_length_input"})

class Analyzer(ForwardChecked, SymbolicModels, Runner):
    """Runs one attribution method on one Keras model (use :func:`keras_lrp.create_analyzer`).

    Constructing one records its arguments and checks them; :meth:`build` makes the analysis
    (the canonized copy, the relevance model, the forward check). It runs on first use
    (:meth:`analyze`, reading :attr:`relevance_model`, …) and in
    :func:`~keras_lrp.analyzers.names.create_analyzer`, so a subclass may set its state before
    or after ``super().__init__``. Subclasses implement :meth:`build_relevances`, returning the
    relevance at each input and (optionally) the layer-wise relevances, from the symbolic
    inputs :meth:`build` sets up.

    Args:
        model: a built Functional or Sequential Keras model (never modified).
        neuron_selection_mode: ``"max_activation"`` (default), ``"index"`` or ``"all"``.
        output_relevance: ``"logit"`` (start from the explained logit), ``"positive_logit"``
            (from max(logit, 0)) or ``"one"``.
        output: the explained output of a multi-output model (index or output layer name).
        jit_compile: compile the analysis with XLA.
        forward_check: check at build that the forward pass the analysis explains is the
            user's model, on a probe batch (:mod:`keras_lrp.analyzers.verify`); an error
            names the first layer that differs.
        length_axes: the explained output's axes that index the positions of inputs padded
            to this model's length (:class:`~keras_lrp.analyzers.lengths.PerLength` sets
            them): the analysis then explains only outputs at the real positions, below
            :attr:`valid_length` (see
            :class:`~keras_lrp.analyzers.selection.OutputRelevance`).
        name: the analyzer's name, for reports and saving.
        kwargs: the keyword arguments ``create_analyzer(name, model, **kwargs)`` rebuilds this
            analyzer from (see :meth:`get_config`).
    """

    #: The canonizers of an analyzer without a composite.
    canonizers = DEFAULT_CANONIZERS
    #: Whether the analysis needs the rewritten graph (LRP's relevance layers do). Analyzers
    #: that only differentiate or read the model (gradient, input, random) explain the user's
    #: own layers instead, less the output softmax (in float32 clones where a layer computes
    #: in 16 bits).
    rewrites = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        hook = cls.__dict__.get("build")
        if hook is not None and "build_relevances" not in cls.__dict__:
            # keras-lrp ≤ 0.x: ``build()`` was the hook making the symbolic relevances
            warnings.warn(f"{cls.__qualname__}.build() overrides the hook that makes the "
                          "symbolic relevances: that hook is now build_relevances(), and "
                          "build() builds the analyzer. Rename the method; the old name is "
                          "read as the hook until the next release.", DeprecationWarning,
                          stacklevel=2)
            cls.build_relevances = hook
            delattr(cls, "build")

    def __init__(self, model: keras.Model, neuron_selection_mode: str = "max_activation",
                 output_relevance: str = "logit", output=None, jit_compile: bool = False,
                 name: str = "lrp", kwargs: Optional[Dict[str, Any]] = None,
                 forward_check: bool = True, length_axes: Optional[Sequence[int]] = None):
        if neuron_selection_mode not in NEURON_SELECTION_MODES:
            raise ValueError(f"neuron_selection_mode must be one of {NEURON_SELECTION_MODES}, "
                             f"got {neuron_selection_mode!r}.")
        if output_relevance not in OUTPUT_RELEVANCES:
            raise ValueError(f"output_relevance must be one of {OUTPUT_RELEVANCES}, got "
                             f"{output_relevance!r}.")
        #: Whether :meth:`build` has run.
        self.built = False
        self._building = False
        self.name = name
        #: The user's model (read, never modified); saved by :meth:`save`.
        self.model = model
        self.model_name = getattr(model, "name", "model")
        self.neuron_selection_mode = neuron_selection_mode
        self.output_relevance = output_relevance
        self.jit_compile = jit_compile
        #: The explained output as given (an index, an output layer name or ``None``).
        self.output = output
        #: The explained output's position axes (``length_axes``), or ``None``.
        self.length_axes = None if length_axes is None else tuple(int(a) for a in length_axes)
        #: The real length of the padded inputs of the next call (with :attr:`length_axes`;
        #: ``None``: every position is real).
        self.valid_length: Optional[int] = None
        #: The ``tf.distribute`` strategy in whose scope the analyzer was created (the default
        #: strategy, one replica, otherwise); see :attr:`num_replicas`.
        self.strategy = backend.current_strategy()
        self._kwargs = dict(kwargs or {})
        self._options = dict(neuron_selection_mode=neuron_selection_mode,
                             output_relevance=output_relevance, output=output,
                             jit_compile=jit_compile, name=name, kwargs=kwargs,
                             forward_check=forward_check, length_axes=length_axes)
        self._functions: Dict[bool, Any] = {}
        self._forward_pending = False
        #: Whether the forward check compared the analysis with the model (see
        #: :meth:`check_forward`).
        self.forward_checked = False

    def build(self) -> Analyzer:
        """Make the analysis, once: the canonized copy of the model, the relevance model (from
        :meth:`build_relevances`), its compiled function (shape errors are raised here) and,
        with ``forward_check``, the forward check. Runs inside the distribution strategy the
        analyzer was created in. Returns the analyzer."""
        if self.built or self._building:
            return self
        # built in the scope of a strategy of several replicas that is not the current one (as
        # it was at construction); one replica runs the function directly (no scope needed)
        other = self.strategy is not backend.current_strategy() and self.num_replicas > 1
        self._building = True
        try:
            with self.strategy.scope() if other else contextlib.nullcontext():
                self._build()
        finally:
            self._building = False
        self.built = True
        return self

    def _build(self) -> None:
        self.graph = self.prepare_graph()
        self.output_index = self._output_index(self.output)
        self._make_inputs()
        relevances, layerwise = self.build_relevances()
        self._make_models(relevances, layerwise)
        backend.check_build(self._function(False), self.relevance_model)  # shape errors now
        self._forward_pending = bool(self._options["forward_check"])
        if self._forward_pending:
            self.check_forward()

    def __getattr__(self, name):
        # only for names not set yet: what build() makes is made on first read
        if name in BUILT and not self.__dict__.get("built", True) and \
                not self.__dict__.get("_building", True):
            self.build()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- building -----------------------------------------------------------------------------
    def prepare_graph(self):
        """The private, canonized copy of the model's graph (from :attr:`reference_graph`); for an
        analyzer without :attr:`rewrites`, the reference less its output softmax."""
        #: The user's graph before any rewrite (nested models inlined): the forward check's
        #: reference, made of the user's own layers.
        self.reference_graph = graph_mod.extract(self.model)
        graph_mod.inline(self.reference_graph)
        self._direct = not self.rewrites and self._low_precision() is None
        if self._direct:
            graph = self.reference_graph.snapshot()
            StripSoftmax().apply(graph)
            unfuse_output_softmax(graph)
            return graph
        graph = restructure(self.reference_graph.snapshot(), self.canonizers, self.explicit)
        self.check(graph)  # on the user's layers, before cloning
        return finish(graph, self.canonizers)

    #: ``explicit(node, graph)``: whether the analysis' rules name a layer, so that a foreign
    #: layer they do not name is traced into its parts (LRP sets it; ``None``: keep them).
    explicit = None

    def check(self, graph) -> None:
        """Raise for layers this analyzer cannot explain (on the user's layers, before any
        cloning); the default accepts every differentiable layer."""

    def build_relevances(self):  # pragma: no cover - abstract
        """``(relevance at each input, {layer name: relevance} or None)``, symbolic, from
        :attr:`inputs`, :attr:`logits` and :meth:`start_relevance` (called by :meth:`build`)."""
        raise NotImplementedError

    # -- configuration -------------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        """``{"name": …, "kwargs": …}``: ``create_analyzer(name, model, **kwargs)`` rebuilds this
        analyzer (saving and loading use it)."""
        return {"name": self.name, "kwargs": dict(self._kwargs)}

    def clone(self, **overrides) -> Analyzer:
        """The same analyzer with some constructor arguments changed (built on first use)."""
        return type(self)(self.model, **{**self._options, **overrides})

    def save(self, path: str) -> None:
        """Save this analyzer (configuration and model) to one file; see
        :func:`keras_lrp.load_analyzer`."""
        save_analyzer(self.get_config(), self.model, path)

    def __repr__(self):
        return (f"<keras_lrp.{type(self).__name__} {self.name!r} of model {self.model_name!r}, "
                f"neuron_selection_mode={self.neuron_selection_mode!r}>")


#: Zennit's word for an analyzer: an alias of :class:`Analyzer` (same class, ``isinstance`` holds).
Attributor = Analyzer
