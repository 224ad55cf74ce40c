"""Composites: which relevance layer every node of the graph gets.

A :class:`Composite` is an ordered list of ``(key, rule)`` entries; the first entry whose key
matches a node decides its relevance layer. A key is a layer class, a layer name, a predicate
``f(node, ctx) -> bool`` (such as :class:`FirstLayer`), or a tuple of them; a rule is an LRP
rule (for kernel layers: Dense, convolutions, BatchNormalization, your own linear layers) or a
:class:`~keras_lrp.layers.RelevanceLayer` class (for any layer). The search order is

1. the user's entries (``rule_map=`` of one analyzer), in front;
2. the global registrations (:func:`register_rule`, :func:`register_layer`);
3. the first-layer rule (``first_layer``: kernel layers fed by a model input through reshaping);
4. the until-index rule (``until_layer``: the layers among ``model.layers[0..idx]``);
5. the composite's own ``rule_map`` (an attention composite may map LayerNormalization here);
6. the base map of structural layers (:data:`keras_lrp.composites.registry.BASE_MAP`).

The composite also lists the canonizers that prepare the graph (:mod:`keras_lrp.canonizers.base`).
The named composites (:class:`EpsilonPlus`, :class:`EpsilonGammaBox`, …) are in
:mod:`keras_lrp.composites.named`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, List, Optional, Sequence, Tuple

import keras

from keras_lrp import rules as rules_mod
from keras_lrp.canonizers import blocks
from keras_lrp.canonizers.attention import PRODUCTS
from keras_lrp.canonizers.base import DEFAULT_CANONIZERS, has_fused_activation
from keras_lrp.canonizers.forward_layers import AdditiveScores
from keras_lrp.composites.registry import BASE_MAP, REGISTRY, matches, unsupported_error
from keras_lrp.core import types
from keras_lrp.core.graph import Graph, Node, node_call
from keras_lrp.core.linear import is_kernel_layer
from keras_lrp.core.patterns import input_fed_nodes, nonnegative_tensors
from keras_lrp.layers.attention import ATTENTION_MODES, AdditiveScoresRelevance, BilinearRelevance
from keras_lrp.layers.base import RelevanceLayer
from keras_lrp.layers.recurrent.cells import GATE_RULES
from keras_lrp.layers.recurrent.relevance import (
    BidirectionalRelevance,
    RecurrentRelevance,
    bidirectional_problem,
    input_roles,
    recurrent_problem,
)
from keras_lrp.layers.sequence import TimeDistributedRelevance


@dataclasses.dataclass
class Context:
    """What matching and binding may look at: the graph, the model, and facts derived once."""

    graph: Graph
    model: Any = None

    def __post_init__(self):
        self.first_layers = input_fed_nodes(self.graph, is_kernel_layer)
        self.nonnegative = nonnegative_tensors(self.graph)


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
        rule_map: the composite's own ``(key, rule or RelevanceLayer class)`` entries, first
            match wins; a rule only matches kernel layers.
        first_layer: the rule for kernel layers fed by a model input (iNNvestigate's
            ``input_layer_rule``), or ``None``.
        base_map: entries for structural layers, searched last (default :data:`BASE_MAP`).
        canonizers: the canonizers, in order (default
            :data:`~keras_lrp.canonizers.base.DEFAULT_CANONIZERS`).
        layer_map: the deprecated old name of ``rule_map``.

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

    def __init__(self, rule_map: Sequence = (), first_layer=None, base_map=None,
                 canonizers: Optional[Sequence] = None, layer_map: Optional[Sequence] = None):
        if layer_map is not None:
            warnings.warn("Composite(layer_map=...) is deprecated; pass rule_map=... (the same "
                          "list).", DeprecationWarning, stacklevel=2)
            rule_map = list(rule_map) + list(layer_map)
        self.rule_map = _entries(rule_map, "rule_map")
        self.first_layer = None if first_layer is None else rules_mod.get(first_layer)
        self.base_map = list(BASE_MAP if base_map is None else base_map)
        self.canonizers = list(DEFAULT_CANONIZERS if canonizers is None else canonizers)
        self.user_map: List[Tuple[Any, Any]] = []
        self.until_layer: Optional[Tuple[UntilLayer, Any]] = None
        self.registry = REGISTRY
        self.params = {}
        #: How products of a gate and a signal inside recurrent cells divide relevance
        #: (:data:`keras_lrp.layers.recurrent.cells.GATE_RULES`).
        self.gate_rule = "signal"
        #: How relevance crosses attention: "attnlrp" or "cp" (:data:`ATTENTION_MODES`).
        self.attention = "attnlrp"

    # -- customising ---------------------------------------------------------------------------
    def customized(self, user_map: Sequence = (), first_layer=None, until_layer_idx=None,
                   until_layer_rule=None, owner: str = "", gate_rule=None,
                   attention=None) -> Composite:
        """A copy with the user's entries in front, and the first-layer and until-index rules.

        Raises:
            ValueError: a first-layer rule for a composite that fixes its own (``_flat``), or
                only one of ``until_layer_idx`` and ``until_layer_rule``.
        """
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        who = owner or repr(self)
        new.user_map = _entries(user_map, "rule_map") + list(self.user_map)
        if first_layer is not None:
            rule = rules_mod.get(first_layer)
            if self.fixed_first_layer and not _same_rule(rule, self.first_layer):
                raise ValueError(f"Analyzer {who} fixes input_layer_rule="
                                 f"'{type(self.first_layer).__name__}'; got {first_layer!r}. "
                                 "Use the analyzer without '_flat'.")
            new.first_layer, new.first_layer_types = rule, None
        if (until_layer_idx is None) != (until_layer_rule is None):
            raise ValueError("until_layer_idx and until_layer_rule go together; got "
                             f"until_layer_idx={until_layer_idx!r}, "
                             f"until_layer_rule={until_layer_rule!r}.")
        if until_layer_idx is not None:
            new.until_layer = (UntilLayer(int(until_layer_idx)), rules_mod.get(until_layer_rule))
        if gate_rule is not None:
            if gate_rule not in GATE_RULES:
                raise ValueError(f"gate_rule must be one of {', '.join(GATE_RULES)}; got "
                                 f"{gate_rule!r}.")
            new.gate_rule = gate_rule
        if attention is not None:
            if attention not in ATTENTION_MODES:
                raise ValueError(f"attention must be one of {', '.join(ATTENTION_MODES)}; got "
                                 f"{attention!r}.")
            new.attention = attention
        return new

    # -- deciding ------------------------------------------------------------------------------
    def entries(self) -> List[Tuple[Any, Any]]:
        """Every entry in search order (see the module docstring)."""
        out = list(self.user_map) + self.registry.entries()
        if self.first_layer is not None:
            out.append((FirstLayer(self.first_layer_types), self.first_layer))
        if self.until_layer is not None:
            out.append(self.until_layer)
        return out + self.rule_map + self.base_map

    def rule_for(self, node: Node, ctx: Context):
        """The rule template or RelevanceLayer class for ``node``, or ``None``."""
        kernel = takes_rule(node.layer)
        for key, rule in self.entries():
            if isinstance(rule, rules_mod.Rule) and not kernel:
                continue  # rules bind to kernel layers only
            if matches(key, node, ctx):
                return rule
        return None

    def maps(self, node: Node, ctx: Context) -> bool:
        """Whether an entry names this node's layer (catch-all keys such as
        ``keras.layers.Layer`` do not count): a layer of a class no entry names is traced into
        its parts (:func:`keras_lrp.canonizers.blocks.trace_blocks`). The user's own entries
        also keep a subclass that overrides ``call`` whole."""
        if is_kernel_layer(node.layer) and not blocks.overrides_call(node.layer):
            return True
        entries = self.entries() if not blocks.overrides_call(node.layer) else \
            list(self.user_map) + self.registry.entries()
        kernel = takes_rule(node.layer)
        for key, rule in entries:
            if key in CATCH_ALL or (isinstance(rule, rules_mod.Rule) and not kernel):
                continue
            if matches(key, node, ctx):
                return True
        return False

    def check(self, graph: Graph, model=None) -> None:
        """Raise an error naming the first layer no entry serves; runs on the user's layers
        before anything is cloned."""
        ctx = Context(graph, model)
        for node in graph.nodes:
            layer = node.layer
            output = any(t in graph.outputs for t in node.outputs)
            if types.is_softmax(layer) and output:
                continue  # stripped
            if has_fused_activation(layer):
                name = types.layer_activation(layer)
                if not types.is_elementwise_function(layer.activation) and name != "softmax":
                    raise unsupported_error(layer, self.registry, f" (its fused activation "
                                                                  f"'{name}' is not element-wise)")
            self._resolve(node, ctx, graph)

    def _resolve(self, node: Node, ctx: Context, graph: Graph):
        if _wraps_structural(node.layer):
            return self._resolve(dataclasses.replace(node, layer=node.layer.layer), ctx, graph)
        rule = self.rule_for(node, ctx)
        if rule is None:
            if takes_rule(node.layer):
                raise ValueError(f"No LRP rule applies to layer '{node.layer.name}' "
                                 f"({type(node.layer).__name__}); pass rule=... or a rule_map "
                                 "entry.")
            raise unsupported_error(node.layer, self.registry, traced_from=node.traced_from)
        problem = rule.check_node(node, graph) if not isinstance(rule, rules_mod.Rule) \
            else sequence_problem(node.layer, self.gate_rule)
        if problem:
            raise ValueError(f"Layer '{node.layer.name}' {problem}.")
        return rule

    def relevance_layer(self, node: Node, ctx: Context) -> RelevanceLayer:
        """The relevance layer propagating through ``node``."""
        layer = node.layer
        if _wraps_structural(layer):  # TimeDistributed(layer without a kernel)
            inner_node = dataclasses.replace(node, layer=layer.layer)
            inner = self._resolve(inner_node, ctx, ctx.graph).for_node(
                inner_node, ctx.graph, forward=lambda xs: layer.layer(xs[0]),
                name=f"{layer.layer.name}_relevance", dtype=getattr(layer, "dtype_policy", None))
            return TimeDistributedRelevance(layer=layer, inner=inner,
                                            name=f"{layer.name}_relevance",
                                            dtype=getattr(layer, "dtype_policy", None))
        rule = self._resolve(node, ctx, ctx.graph)
        if isinstance(rule, rules_mod.Rule) and not is_kernel_layer(layer):
            return sequence_relevance(node, layer, rule, self.gate_rule, self.attention)
        if isinstance(rule, rules_mod.Rule):
            rel = rule.bind(layer)
            rel.input_nonnegative = all(ctx.nonnegative.get(t, False) for t in node.inputs)
            return rel
        mode = {"attention": self.attention} if getattr(rule, "takes_attention_mode", False) \
            else {}
        return rule.for_node(node, ctx.graph, forward=node_call(node),
                             name=f"{layer.name}_relevance",
                             dtype=getattr(layer, "dtype_policy", None), **mode)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


#: Keys that match every layer: they say what to do with the rest, not which layers are known.
CATCH_ALL = (keras.Operation, keras.layers.Layer)


def takes_rule(layer) -> bool:
    """Kernel layers, and the sequence layers whose linear maps take the composite's rule:
    recurrent layers, Bidirectional, and TimeDistributed around a kernel layer."""
    return (is_kernel_layer(layer)
            or isinstance(layer, types.RNN + types.BIDIRECTIONAL + PRODUCTS)
            or (isinstance(layer, types.TIME_DISTRIBUTED) and is_kernel_layer(layer.layer)))


def _wraps_structural(layer) -> bool:
    return isinstance(layer, types.TIME_DISTRIBUTED) and not is_kernel_layer(layer.layer)


def sequence_problem(layer, gate_rule: str) -> Optional[str]:
    """Why a rule cannot serve this sequence layer, or ``None``."""
    if isinstance(layer, types.BIDIRECTIONAL):
        return bidirectional_problem(layer)
    if isinstance(layer, types.RNN):
        problem = recurrent_problem(layer)
        if problem is None and gate_rule != "signal" and not isinstance(layer, keras.layers.LSTM):
            return (f"is a {type(layer).__name__}; gate_rule={gate_rule!r} is implemented for "
                    "LSTM only (use gate_rule='signal', the default)")
        return problem
    return None


def sequence_relevance(node: Node, layer, rule, gate_rule: str,
                       attention: str = "attnlrp") -> RelevanceLayer:
    """The relevance layer of a sequence layer whose linear maps take ``rule``."""
    kwargs = dict(name=f"{layer.name}_relevance", dtype=getattr(layer, "dtype_policy", None))
    if isinstance(layer, PRODUCTS):
        cls = AdditiveScoresRelevance if isinstance(layer, AdditiveScores) else BilinearRelevance
        return cls(layer=layer, rule=rule, attention=attention, **kwargs)
    if isinstance(layer, types.TIME_DISTRIBUTED):
        return TimeDistributedRelevance(layer=layer, rule=rule.bind(layer.layer), **kwargs)
    cls = BidirectionalRelevance if isinstance(layer, types.BIDIRECTIONAL) else RecurrentRelevance
    return cls(layer=layer, rule=rule, gate_rule=gate_rule, roles=input_roles(node), **kwargs)


def _same_rule(a, b) -> bool:
    return type(a) is type(b) and getattr(a, "params", None) == getattr(b, "params", None)


def as_target(rule):
    """Deprecated: the old name of :func:`as_rule`."""
    warnings.warn("keras_lrp.composites.as_target is deprecated; use as_rule.",
                  DeprecationWarning, stacklevel=2)
    return as_rule(rule)


__all__ = ["Composite", "Context", "FirstLayer", "UntilLayer", "as_rule", "as_target"]
