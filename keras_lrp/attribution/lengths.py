"""Analyzers for models whose inputs have an open sequence length (keras-hub's causal LMs are
built on ``keras.Input((None,), "int32")``).

A traced transformer block needs static shapes (its parts are laid out for one length), so
:class:`PerLength` builds one analyzer per prompt length it meets, on the user's model called on
inputs of that fixed length (the model itself is never rebuilt or changed), and keeps it: a
second prompt of a length already seen reuses its compiled analysis.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import keras
import numpy as np
from keras import tree

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


def fixed_length(model, length: int):
    """``model`` called on inputs whose open axes all have size ``length`` (a new functional
    model sharing the user's layers and weights)."""
    def fixed(t):
        shape = tuple(length if d is None else d for d in tuple(t.shape)[1:])
        name = t._keras_history.operation.name if t._keras_history.operation else t.name
        return keras.Input(shape, dtype=t.dtype, name=name)

    inputs = tree.map_structure(fixed, model.input)
    return keras.Model(inputs, model(inputs), name=f"{model.name}_length_{length}")


class PerLength:
    """One analyzer per input length, made on first use (see the module docstring).

    Args:
        make: ``make(model) -> Analyzer`` for a model of fixed length.
        model: the user's model, whose inputs have an open length.
    """

    def __init__(self, make: Callable, model, name: str = "lrp",
                 kwargs: Optional[Dict[str, Any]] = None):
        self.make, self.model, self.name = make, model, name
        self._kwargs = dict(kwargs or {})
        self.model_name = getattr(model, "name", "model")
        #: length → the analyzer built for it.
        self.analyzers: Dict[int, Any] = {}
        self._names = [t._keras_history.operation.name for t in model.inputs]

    def length_of(self, x) -> int:
        """The sequence length of ``x`` (a dict by input name, a list or one array)."""
        arrays = [x[n] for n in self._names if n in x] if isinstance(x, dict) else \
            (list(x) if isinstance(x, (list, tuple)) and len(self._names) > 1 else [x])
        lengths = {int(np.shape(a)[1]) for a in arrays if np.ndim(a) > 1}
        if len(lengths) != 1:
            raise ValueError(f"Model '{self.model_name}' takes sequences of any length, but "
                             f"its inputs must share one length per call; got lengths "
                             f"{sorted(lengths) or 'none'}. Pad the inputs (with a padding "
                             "mask) to one length, or analyze them separately.")
        return lengths.pop()

    def for_length(self, length: int):
        """The analyzer for inputs of ``length`` (built once, then reused)."""
        if length not in self.analyzers:
            self.analyzers[length] = self.make(fixed_length(self.model, length))
        return self.analyzers[length]

    def analyze(self, x, neuron_selection: Optional[Any] = None, **kwargs):
        """:meth:`keras_lrp.attribution.base.Analyzer.analyze` with the analyzer of ``x``'s
        length."""
        return self.for_length(self.length_of(x)).analyze(x, neuron_selection, **kwargs)

    def iter_analyze(self, x, neuron_selection: Optional[Any] = None, **kwargs):
        return self.for_length(self.length_of(x)).iter_analyze(x, neuron_selection, **kwargs)

    def get_config(self) -> Dict[str, Any]:
        """``{"name": …, "kwargs": …}``, as :meth:`keras_lrp.Analyzer.get_config`."""
        return {"name": self.name, "kwargs": dict(self._kwargs)}

    def __repr__(self):
        return (f"PerLength({self.name!r}, model={self.model_name!r}, "
                f"lengths={sorted(self.analyzers)})")


__all__ = ["PerLength", "fixed_length", "open_length"]
