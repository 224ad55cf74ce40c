"""What a composite's keys and map values read: the :class:`Context`, and the keys that look at
the model beyond one layer (:class:`FirstLayer`, :class:`UntilLayer`).

The keys of single layers (classes, names, predicates, :class:`~keras_lrp.composites.registry
.Where`) and how they match are in :mod:`keras_lrp.composites.registry`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import keras

from keras_lrp.composites.registry import matches
from keras_lrp.core.graph import Graph, Node
from keras_lrp.core.linear import is_kernel_layer
from keras_lrp.core.patterns import input_fed_nodes, nonnegative_tensors


@dataclasses.dataclass
class Context:
    """What matching and binding may look at: the graph, the model, the facts derived from the
    graph once, and the composite's global modes. A map value reads it in ``problem(node, ctx)``
    and ``bind(node, ctx)`` (see :mod:`keras_lrp.layers.base`).

    Attributes:
        graph: the (canonized) graph.
        model: the user's model (for :class:`UntilLayer`).
        composite: the composite deciding; a value wrapping another layer (``TimeDistributed``
            around a layer without a kernel) asks it for that layer (:meth:`relevance_layer`).
        attention: how relevance crosses attention, ``"attnlrp"`` or ``"cp"``
            (:data:`~keras_lrp.layers.attention.ATTENTION_MODES`).
        gate_rule: how gate · signal products inside recurrent cells divide relevance
            (:data:`~keras_lrp.layers.recurrent.cells.GATE_RULES`).
    """

    graph: Graph
    model: Any = None
    composite: Any = None
    attention: str = "attnlrp"
    gate_rule: str = "signal"

    def __post_init__(self):
        #: id(node) of the kernel layers fed by a model input through reshaping only.
        self.first_layers = input_fed_nodes(self.graph, is_kernel_layer)
        #: tensor id → whether the tensor is provably ≥ 0.
        self.nonnegative = nonnegative_tensors(self.graph)

    def relevance_layer(self, node: Node):
        """The composite's relevance layer for ``node``."""
        return self.composite.relevance_layer(node, self)

    def problem(self, node: Node) -> Optional[str]:
        """Why the composite cannot serve ``node`` (raising when no entry does), or ``None``."""
        return self.composite.value(node, self).problem(node, self)


class FirstLayer:
    """Key: the kernel layers fed by a model input through reshaping layers only (of the layer
    classes ``types``, when given)."""

    def __init__(self, types: Optional[tuple] = None):
        self.types = types

    def __call__(self, node: Node, ctx: Context) -> bool:
        return id(node) in ctx.first_layers and (self.types is None
                                                 or isinstance(node.layer, self.types))

    def __repr__(self):
        return "FirstLayer()" if self.types is None else f"FirstLayer({self.types!r})"


class UntilLayer:
    """Key: the layers among ``model.layers[0..idx]`` (0-based, inclusive; iNNvestigate's
    ``until_layer_idx``; a functional model's InputLayer is index 0; nested models count whole)."""

    def __init__(self, idx: int):
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise ValueError(f"until_layer_idx must be an int, got {idx!r}.")
        self.idx = idx
        self._names = {}

    def names(self, model) -> set:
        if id(model) not in self._names:
            names = set()

            def add(layer):
                names.add(layer.name)
                for sub in getattr(layer, "layers", []) if isinstance(layer, keras.Model) else []:
                    add(sub)

            for layer in model.layers[: self.idx + 1]:
                add(layer)
            self._names[id(model)] = names
        return self._names[id(model)]

    def __call__(self, node: Node, ctx: Context) -> bool:
        return matches(tuple(self.names(ctx.model)), node, ctx)

    def __repr__(self):
        return f"UntilLayer({self.idx})"


__all__ = ["Context", "FirstLayer", "UntilLayer"]
