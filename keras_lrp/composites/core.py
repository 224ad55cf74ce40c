"""Composites: which relevance layer every node of the graph gets.

A :class:`Composite` is an ordered list of ``(key, value)`` entries; the first entry whose key
matches a node, and whose value serves its layer, decides its relevance layer. A key is a layer
class, a layer name, a predicate ``f(node, ctx) -> bool`` (such as :class:`FirstLayer`), or a
tuple of them; a value is an LRP rule (for kernel layers: Dense, convolutions,
BatchNormalization, your own linear layers, and the layers whose inner linear maps take a rule)
or a :class:`~keras_lrp.layers.RelevanceLayer` class (for any layer). Both answer one contract,
``serves(layer)``, ``problem(node, ctx)`` and ``bind(node, ctx)`` (:mod:`keras_lrp.layers.base`),
so the composite only maps; the global modes (``attention``, ``gate_rule``) reach the values in
the :class:`Context`. The search order is

1. the user's entries (``rule_map=`` of one analyzer: the only meaning of ``rule_map``), in
   front;
2. the global registrations (:func:`register_rule`, :func:`register_layer`);
3. the first-layer rule (``first_layer``: kernel layers fed by a model input through reshaping);
4. the until-index rule (``until_layer``: the layers among ``model.layers[0..idx]``);
5. the composite's own ``entries`` (an attention composite may map LayerNormalization here);
6. the base map of structural layers (:data:`keras_lrp.composites.registry.BASE_MAP`).

The composite also lists the canonizers that prepare the graph (:mod:`keras_lrp.canonizers.base`).
The named composites (:class:`EpsilonPlus`, :class:`EpsilonGammaBox`, …) are in
:mod:`keras_lrp.composites.named`.
"""

from __future__ import annotations

import warnings
from typing import Any, List, Optional, Sequence, Tuple

import keras

from keras_lrp import rules as rules_mod
from keras_lrp.canonizers import blocks
from keras_lrp.canonizers.base import DEFAULT_CANONIZERS, has_fused_activation
from keras_lrp.composites.keys import Context, FirstLayer, UntilLayer
from keras_lrp.composites.registry import BASE_MAP, REGISTRY, matches, unsupported_error
from keras_lrp.core import types
from keras_lrp.core.graph import Graph, Node
from keras_lrp.core.linear import is_kernel_layer
from keras_lrp.layers.attention import ATTENTION_MODES
from keras_lrp.layers.base import RelevanceLayer
from keras_lrp.layers.recurrent.cells import GATE_RULES
from keras_lrp.layers.rule_layers import takes_rule

#: The global modes a composite hands its values in the :class:`Context`, and their values.
MODES = {"attention": ATTENTION_MODES, "gate_rule": GATE_RULES}
#: Keys that match every layer: they say what to do with the rest, not which layers are known.
CATCH_ALL = (keras.Operation, keras.layers.Layer)


def as_rule(rule):
    """A rule template, or a RelevanceLayer class (structural), from what a user may write."""
    if isinstance(rule, type) and issubclass(rule, RelevanceLayer) and not issubclass(
            rule, rules_mod.Rule):
        return rule
    return rules_mod.get(rule)


def _entries(pairs, what: str) -> List[Tuple[Any, Any]]:
    out = []
    for pair in pairs or ():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"{what} must be a list of (layer classes or names, rule) pairs; "
                             f"got the entry {pair!r}.")
        key, rule = pair
        matches(key, None, None, validate_only=True)
        out.append((key, as_rule(rule)))
    return out


class Composite:
    """An ordered map from layers to relevance layers, with the canonizers preparing the graph.

    Args:
        entries: the composite's own ``(key, rule or RelevanceLayer class)`` entries, first
            match wins; a rule only serves the layers that take rules.
        first_layer: the rule for kernel layers fed by a model input (iNNvestigate's
            ``input_layer_rule``), or ``None``.
        base_map: entries for structural layers, searched last (default :data:`BASE_MAP`).
        canonizers: the canonizers, in order (default
            :data:`~keras_lrp.canonizers.base.DEFAULT_CANONIZERS`).
        rule_map, layer_map: deprecated old names of ``entries`` (``rule_map=`` means an
            analyzer's own entries, searched first).

    Example:
        >>> c = Composite([(keras.layers.Dense, Epsilon(epsilon=0.1)), (keras.layers.Layer, Z())],
        ...               first_layer=Flat())
        >>> keras_lrp.create_analyzer("lrp", model, composite=c)
    """

    #: Parameters of a named composite (subclasses set them), for repr and saving.
    PARAMS: dict = {}
    #: Whether the first-layer rule is part of the composite's definition (the ``_flat`` ones).
    fixed_first_layer = False
    #: The layer classes the composite's own first-layer rule applies to (``None``: every
    #: kernel layer); a user's ``input_layer_rule`` applies to every first kernel layer.
    first_layer_types: Optional[tuple] = None

    def __init__(self, entries: Sequence = (), first_layer=None, base_map=None,
                 canonizers: Optional[Sequence] = None, rule_map: Optional[Sequence] = None,
                 layer_map: Optional[Sequence] = None):
        for old, given in (("rule_map", rule_map), ("layer_map", layer_map)):
            if given is not None:
                warnings.warn(f"Composite({old}=...) is deprecated; pass entries=... (the same "
                              "list).", DeprecationWarning, stacklevel=2)
                entries = list(entries) + list(given)
        #: The composite's own entries (searched fifth; see the module docstring).
        self.own_entries = _entries(entries, "entries")
        self.first_layer = None if first_layer is None else rules_mod.get(first_layer)
        self.base_map = list(BASE_MAP if base_map is None else base_map)
        self.canonizers = list(DEFAULT_CANONIZERS if canonizers is None else canonizers)
        self.user_map: List[Tuple[Any, Any]] = []
        self.until_layer: Optional[Tuple[UntilLayer, Any]] = None
        self.registry = REGISTRY
        self.params = {}
        #: The global modes (:data:`MODES`), handed to the values in the :class:`Context`.
        self.modes = {"attention": "attnlrp", "gate_rule": "signal"}

    def customized(self, user_map: Sequence = (), first_layer=None, until_layer_idx=None,
                   until_layer_rule=None, owner: str = "", **modes) -> Composite:
        """A copy with the user's entries in front, the first-layer and until-index rules, and
        the global modes (``attention=``, ``gate_rule=``; ``None`` keeps the composite's).

        Raises:
            ValueError: a first-layer rule for a composite that fixes its own (``_flat``), only
                one of ``until_layer_idx`` and ``until_layer_rule``, or an unknown mode value.
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.user_map = _entries(user_map, "rule_map") + list(self.user_map)
        if first_layer is not None:
            rule = rules_mod.get(first_layer)
            if self.fixed_first_layer and not _same_rule(rule, self.first_layer):
                raise ValueError(f"Analyzer {owner or repr(self)} fixes input_layer_rule="
                                 f"'{type(self.first_layer).__name__}'; got {first_layer!r}. "
                                 "Use the analyzer without '_flat'.")
            new.first_layer, new.first_layer_types = rule, None
        new.until_layer = _until(until_layer_idx, until_layer_rule) or self.until_layer
        new.modes = _modes(self.modes, modes)
        return new

    def context(self, graph: Graph, model=None) -> Context:
        """The :class:`Context` this composite's values read on ``graph``."""
        return Context(graph, model, self, **self.modes)

    def entries(self) -> List[Tuple[Any, Any]]:
        """Every entry in search order (see the module docstring)."""
        out = list(self.user_map) + self.registry.entries()
        if self.first_layer is not None:
            out.append((FirstLayer(self.first_layer_types), self.first_layer))
        if self.until_layer is not None:
            out.append(self.until_layer)
        return out + self.own_entries + self.base_map

    def rule_for(self, node: Node, ctx: Context):
        """The first value (rule or RelevanceLayer class) whose key matches ``node`` and which
        serves its layer, or ``None``."""
        for key, value in self.entries():
            if value.serves(node.layer) and matches(key, node, ctx):
                return value
        return None

    def maps(self, node: Node, ctx: Context) -> bool:
        """Whether an entry other than a catch-all names this node's layer (else a foreign layer
        is traced into its parts); only the user's entries keep a ``call`` override whole."""
        whole = blocks.overrides_call(node.layer)
        if is_kernel_layer(node.layer) and not whole:
            return True
        entries = list(self.user_map) + self.registry.entries() if whole else self.entries()
        return any(key not in CATCH_ALL and value.serves(node.layer) and matches(key, node, ctx)
                   for key, value in entries)

    def value(self, node: Node, ctx: Context):
        """:meth:`rule_for`, or an error naming the layer when no entry serves it."""
        value = self.rule_for(node, ctx)
        if value is not None:
            return value
        if takes_rule(node.layer):
            raise ValueError(f"No LRP rule applies to layer '{node.layer.name}' "
                             f"({type(node.layer).__name__}); pass rule=... or a rule_map "
                             "entry.")
        raise unsupported_error(node.layer, self.registry, traced_from=node.traced_from)

    def check(self, graph: Graph, model=None) -> None:
        """Raise an error naming the first layer no entry serves; runs on the user's layers
        before anything is cloned."""
        ctx = self.context(graph, model)
        for node in graph.nodes:
            layer = node.layer
            if types.is_softmax(layer) and any(t in graph.outputs for t in node.outputs):
                continue  # stripped
            if has_fused_activation(layer):
                name = types.layer_activation(layer)
                if not types.is_elementwise_function(layer.activation) and name != "softmax":
                    raise unsupported_error(layer, self.registry, f" (its fused activation "
                                                                  f"'{name}' is not element-wise)")
            self._checked(node, ctx)

    def _checked(self, node: Node, ctx: Context):
        value = self.value(node, ctx)
        problem = value.problem(node, ctx)
        if problem:
            raise ValueError(f"Layer '{node.layer.name}' {problem}.")
        return value

    def relevance_layer(self, node: Node, ctx: Context) -> RelevanceLayer:
        """The relevance layer propagating through ``node``: its value's ``bind(node, ctx)``."""
        return self._checked(node, ctx).bind(node, ctx)

    @property
    def rule_map(self):
        """Deprecated: the old name of :attr:`own_entries`."""
        warnings.warn("Composite.rule_map is deprecated; use .own_entries.", DeprecationWarning,
                      stacklevel=2)
        return self.own_entries

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _until(idx, rule) -> Optional[Tuple[UntilLayer, Any]]:
    """The until-index entry, or ``None`` when neither is given."""
    if (idx is None) != (rule is None):
        raise ValueError("until_layer_idx and until_layer_rule go together; got "
                         f"until_layer_idx={idx!r}, until_layer_rule={rule!r}.")
    return None if idx is None else (UntilLayer(int(idx)), rules_mod.get(rule))


def _modes(current: dict, given: dict) -> dict:
    """``current`` updated with the ``given`` modes that are not ``None``, each checked."""
    out = dict(current)
    for name, value in given.items():
        if value is not None and value not in MODES[name]:
            raise ValueError(f"{name} must be one of {', '.join(MODES[name])}; got {value!r}.")
        out[name] = current[name] if value is None else value
    return out


def _same_rule(a, b) -> bool:
    return type(a) is type(b) and getattr(a, "params", None) == getattr(b, "params", None)


def as_target(rule):
    """Deprecated: the old name of :func:`as_rule`."""
    warnings.warn("keras_lrp.composites.as_target is deprecated; use as_rule.",
                  DeprecationWarning, stacklevel=2)
    return as_rule(rule)


__all__ = ["CATCH_ALL", "MODES", "Composite", "as_rule", "as_target"]
