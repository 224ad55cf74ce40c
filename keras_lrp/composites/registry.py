"""The base map of structural layers, the global registrations, and how keys match layers.

:data:`BASE_MAP` says how relevance crosses every supported layer without a kernel; a composite
searches it last, so any analyzer can override an entry for itself. :data:`REGISTRY` holds what
:func:`register_layer` and :func:`register_rule` add for every analyzer of the process.
"""

from __future__ import annotations

import contextlib
import types as pytypes
from typing import Any, List, Tuple

import keras

from keras_lrp import rules as rules_mod
from keras_lrp.canonizers import blocks
from keras_lrp.canonizers.blocks import is_position_embedding
from keras_lrp.canonizers.forward_layers import (
    AddConstant,
    AttentionSoftmax,
    BatchConstant,
    BroadcastKeeping,
    KerasMask,
    LinearResample,
    LogSoftmax,
    PrependToken,
    RepeatHeads,
    ReshapeKeeping,
    ShapeConstant,
    SliceKeeping,
    SoftCap,
)
from keras_lrp.core import linear, patterns, types
from keras_lrp.layers import (
    GateRelevance,
    IdentityRelevance,
    LayerNormRelevance,
    ProportionalRelevance,
    RelevanceLayer,
    RouteRelevance,
)
from keras_lrp.layers.attention import LogSoftmaxRelevance, SoftmaxRelevance
from keras_lrp.layers.products import ProductRelevance
from keras_lrp.layers.sequence import EmbeddingRelevance, TimeDistributedRelevance, ZeroRelevance
from keras_lrp.layers.structural import (
    FourierRelevance,
    RMSNormRelevance,
    RotaryRelevance,
    SoftCapRelevance,
    SplitRelevance,
)


class Where:
    """Key: layers of ``classes`` for which ``predicate(node, ctx)`` holds."""

    def __init__(self, classes: tuple, predicate, description: str = ""):
        self.classes, self.predicate, self.description = classes, predicate, description

    def __call__(self, node, ctx) -> bool:
        return isinstance(node.layer, self.classes) and self.predicate(node, ctx)

    def __repr__(self):
        names = "/".join(c.__name__ for c in self.classes)
        return f"Where({names}{', ' + self.description if self.description else ''})"


def _elementwise_activation(node, ctx) -> bool:
    act = getattr(node.layer, "activation", None)
    return act is not None and types.is_elementwise_function(act)


def _tensor_args(n: int):
    return lambda node, ctx: len(node.inputs) == n


#: keras-hub's RMS norms (no centring, no bias): the identity rule.
KERAS_HUB_RMS_NORMS = ("LlamaLayerNorm", "MistralLayerNormalization", "QwenLayerNorm",
                       "Qwen3LayerNorm", "Phi3LayerNorm", "MixtralLayerNormalization",
                       "RMSNormalization", "Gemma3RMSNormalization", "T5LayerNorm")
#: keras-hub's rotary position embeddings.
KERAS_HUB_ROTARY = ("RotaryEmbedding", "LlamaRotaryEmbedding")


def _keras_hub(names):
    def key(node, ctx) -> bool:
        cls = type(node.layer)
        return cls.__module__.startswith("keras_hub") and cls.__name__ in names
    return key


def _no_float_output(node, ctx) -> bool:
    """Integer and boolean tensors (token ids, masks) carry no relevance."""
    dtypes = getattr(node, "out_dtypes", None)
    return bool(dtypes) and not any("float" in str(d) for d in dtypes)


def _facts(ctx):
    graph = getattr(ctx, "graph", None)
    return patterns.facts(graph) if graph is not None else None


def _constant_output(node, ctx) -> bool:
    """Tensors that depend on no input (a table or mask built in the graph from no input)
    carry no relevance."""
    found, outputs = _facts(ctx), getattr(node, "outputs", None)
    return found is not None and bool(outputs) and all(t in found.constants for t in outputs)


def _held(node, ctx) -> bool:
    """Nodes that only feed factors held constant (an RMS norm's 1/rms, a router's weights):
    they get no relevance (:func:`keras_lrp.core.patterns.held_nodes`)."""
    found = _facts(ctx)
    return found is not None and (id(node) in found.norm_chain or id(node) in found.held)


def _held_factor(node, ctx) -> bool:
    return (getattr(ctx, "graph", None) is not None and len(node.inputs) == 2
            and patterns.held_factor(node, ctx.graph) is not None)


#: How relevance crosses each supported layer without a kernel, first match wins.
#:
#: :meta hide-value:
BASE_MAP: List[Tuple[Any, type]] = [
    # a layer without a kernel at every step: its own entry's relevance layer, per step (a
    # kernel layer inside takes the composite's rule instead: TimeDistributedRelevance.serves)
    (types.TIME_DISTRIBUTED, TimeDistributedRelevance),
    (_no_float_output, ZeroRelevance),
    (_constant_output, ZeroRelevance),
    (_held, ZeroRelevance),
    (_keras_hub(KERAS_HUB_RMS_NORMS), RMSNormRelevance),
    (_keras_hub(KERAS_HUB_ROTARY), RotaryRelevance),
    (Where(types.SOFTMAX + types.ACTIVATION, lambda node, ctx: types.is_softmax(node.layer),
           "softmax"), SoftmaxRelevance),
    (Where(types.ACTIVATION, _elementwise_activation, "element-wise"), IdentityRelevance),
    (types.ELEMENTWISE + types.PREPROCESSING + types.APP_ELEMENTWISE + types.OP_ACTIVATIONS
     + types.OP_ELEMENTWISE_LINEAR + types.RANDOM_AUGMENTATION, IdentityRelevance),
    # interpolation is a fixed linear map (the Z rule through it, like average pooling);
    # nearest-neighbour resizing and crops move values
    (Where(types.RESAMPLING, lambda node, ctx: getattr(node.layer, "interpolation", "")
           == "nearest", "nearest"), RouteRelevance),
    (types.RESAMPLING + (LinearResample,), ProportionalRelevance),
    (types.CROPPING, RouteRelevance),
    (SoftCap, SoftCapRelevance),
    (types.NORMALIZATION, LayerNormRelevance),
    (AttentionSoftmax, SoftmaxRelevance),
    (types.OP_SOFTMAX, SoftmaxRelevance),
    (LogSoftmax, LogSoftmaxRelevance),
    (types.EMBEDDING, EmbeddingRelevance),
    (types.MASK_OPS + types.OP_SHAPE_ONLY + (KerasMask,), ZeroRelevance),
    (is_position_embedding, ZeroRelevance),
    (ShapeConstant, ZeroRelevance),
    (BatchConstant, ZeroRelevance),
    (PrependToken, RouteRelevance),
    (ReshapeKeeping, RouteRelevance),
    (SliceKeeping, RouteRelevance),
    (BroadcastKeeping, RouteRelevance),
    (RepeatHeads, RouteRelevance),
    (AddConstant, ProportionalRelevance),
    (types.OP_SELECT, RouteRelevance),
    (types.OP_SPLIT + types.OP_UNSTACK, SplitRelevance),
    (types.OP_FFT, FourierRelevance),
    (types.OP_CAST, IdentityRelevance),
    (Where(types.UPSAMPLING_2D, lambda node, ctx: node.layer.interpolation == "nearest",
           "nearest"), RouteRelevance),
    (types.UPSAMPLING_2D, ProportionalRelevance),
    (types.ROUTE + types.MAX_POOLING, RouteRelevance),
    (types.LINEAR_MERGE + types.AVERAGE_POOLING + types.APP_LINEAR_MERGE, ProportionalRelevance),
    (Where(types.MULTIPLY, _held_factor, "a gate or a constant factor"), GateRelevance),
    (Where(types.MULTIPLY + types.OP_EINSUM + types.OP_BILINEAR, _tensor_args(2),
           "two signals"), ProductRelevance),
    # an einsum of one tensor and constants is a bias-free linear map: the Z rule (a weight
    # variable inside a traced block becomes a KernelEinsum, which takes the composite's rule)
    (Where(types.OP_EINSUM, _tensor_args(1), "a tensor and constants"), ProportionalRelevance),
    # keras.ops used directly in functional code: with one tensor and a constant they are
    # element-wise affine maps (x + 3, x · 1/6); Add/Subtract of two tensors are proportional.
    (Where(types.OP_ARITHMETIC, _tensor_args(1), "tensor and constant"), IdentityRelevance),
    (Where(types.OP_SUMS, _tensor_args(2), "two tensors"), ProportionalRelevance),
    (Where(types.OP_REDUCTIONS, _tensor_args(1), "over axes"), ProportionalRelevance),
    # minimum/maximum (of tensors or with a broadcast constant): the winner takes the relevance
    (types.OP_MINMAX, RouteRelevance),
]


def matches(key, node, ctx, validate_only: bool = False) -> bool:
    """Whether a composite key matches ``node``: a layer class, a layer name (a split separable
    convolution's halves answer to its name), a predicate ``f(node, ctx)``, or a tuple of them.

    Raises:
        TypeError: a key of any other kind (also with ``validate_only``, which matches nothing).
    """
    if isinstance(key, (tuple, list)):
        return any([matches(k, node, ctx, validate_only) for k in key])
    if not isinstance(key, (str, type)) and not callable(key):
        raise TypeError(f"A rule_map key must be a layer class, a layer name, a "
                        f"predicate f(node, ctx) or a tuple of them; got {key!r}.")
    if validate_only:
        return False
    layer = node.layer
    if isinstance(key, str):
        base = layer.name
        for suffix in ("_depthwise", "_pointwise"):
            base = base[: -len(suffix)] if base.endswith(suffix) else base
        return key in (layer.name, base)
    if isinstance(key, type):
        return isinstance(layer, key)
    return bool(key(node, ctx))


class Registry:
    """Process-wide registrations, searched before every composite's own entries (after the
    user's per-analyzer ``rule_map``)."""

    def __init__(self):
        self.rules: List[Tuple[Any, Any]] = []
        self.layers: List[Tuple[Any, type]] = []

    def entries(self) -> List[Tuple[Any, Any]]:
        return self.rules + self.layers

    @contextlib.contextmanager
    def scoped(self):
        """Registrations made inside the ``with`` block (:func:`register_layer`,
        :func:`register_rule`, :func:`keras_lrp.register_linear`,
        :func:`keras_lrp.register_block`) are undone when it ends.

        Example:
            >>> with keras_lrp.composites.registry.REGISTRY.scoped():
            ...     keras_lrp.register_layer(MyScaling, keras_lrp.layers.IdentityRelevance)
        """
        saved = (list(self.rules), list(self.layers), list(linear.LINEAR_OPS),
                 list(blocks.REGISTERED))
        try:
            yield self
        finally:
            (self.rules[:], self.layers[:], linear.LINEAR_OPS[:],
             blocks.REGISTERED[:]) = saved

    def supported(self) -> str:
        """A one-line summary of the layer classes the base map and registrations serve."""
        names = []
        for key, _ in self.layers + BASE_MAP:
            for cls in _classes(key):
                if cls.__module__.startswith("keras") and cls.__name__ not in names:
                    names.append(cls.__name__)
                elif not cls.__module__.startswith("keras"):
                    names.append(f"{cls.__module__}.{cls.__name__}")
        return ", ".join(names)


def _classes(key) -> list:
    if isinstance(key, (tuple, list)):
        return [c for k in key for c in _classes(k)]
    if isinstance(key, Where):
        return list(key.classes)
    return [key] if isinstance(key, type) else []


#: The process-wide registrations.
REGISTRY = Registry()


def register_layer(layer_class: type, relevance: type) -> None:
    """Teach every analyzer how relevance crosses a layer class without a kernel.

    For one analyzer only, pass ``rule_map=[(layer_class, relevance)]`` to
    :func:`keras_lrp.create_analyzer` instead.

    Args:
        layer_class: the Keras layer class, or ``keras.Operation`` class for ops called directly
            in functional code (subclasses match too).
        relevance: one of :class:`~keras_lrp.layers.IdentityRelevance` (element-wise layers),
            :class:`~keras_lrp.layers.RouteRelevance` (layers that move or select values) or
            :class:`~keras_lrp.layers.ProportionalRelevance` (bias-free linear layers), or your
            own :class:`~keras_lrp.rules.RelevanceLayer` subclass.

    Example:
        >>> keras_lrp.register_layer(MyScaling, keras_lrp.layers.IdentityRelevance)
    """
    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.Operation)):
        raise TypeError(f"register_layer needs a keras.layers.Layer (or keras.Operation) "
                        f"subclass, got {layer_class!r}.")
    if not (isinstance(relevance, type) and issubclass(relevance, RelevanceLayer)):
        raise TypeError(f"register_layer needs a keras_lrp.rules.RelevanceLayer subclass "
                        f"(e.g. IdentityRelevance), got {relevance!r}.")
    REGISTRY.layers.insert(0, (layer_class, relevance))


def register_rule(layer: Any, rule: Any) -> None:
    """Use ``rule`` for a kernel layer class (or layer name) in every analyzer from now on.

    Takes precedence over the analyzers' own assignments, ``input_layer_rule`` and
    ``until_layer_rule``; an analyzer's ``rule_map`` still comes first. The layer must be a kernel
    layer keras-lrp knows, or one taught with :func:`keras_lrp.register_linear`.

    Args:
        layer: a layer class, a layer name, or a tuple of them.
        rule: a rule name, :class:`~keras_lrp.rules.Rule` subclass or instance.

    Example:
        >>> keras_lrp.register_rule(MyDense, keras_lrp.rules.Epsilon(epsilon=0.01))
    """
    matches(layer, pytypes.SimpleNamespace(layer=None), None, validate_only=True)
    REGISTRY.rules.insert(0, (layer, rules_mod.get(rule)))


def unsupported_error(layer, registry: Registry = REGISTRY, detail: str = "",
                      traced_from=None) -> ValueError:
    """The error for a layer no composite entry serves, listing what is supported. For a part
    of a traced layer (``traced_from``), it names that layer, the part, and the recipes for the
    layer."""
    cls = type(layer)
    if traced_from is not None:
        part = (f": its call() was traced into its parts, and part '{layer.name}' "
                f"({cls.__module__}.{cls.__name__}){detail} has no rule")
        layer, cls, detail = traced_from, type(traced_from), part
    return ValueError(
        f"keras-lrp has no relevance mapping for layer '{layer.name}' of class "
        f"{cls.__module__}.{cls.__name__}{detail}. Supported: kernel layers (Dense, "
        "EinsumDense, convolutions, BatchNormalization, and those taught with "
        f"keras_lrp.register_linear) and {registry.supported()}. If the layer is element-wise, "
        f"pass rule_map=[({cls.__name__}, keras_lrp.layers.IdentityRelevance)] to "
        f"create_analyzer (or keras_lrp.register_layer({cls.__name__}, "
        "keras_lrp.layers.IdentityRelevance) for every analyzer); if it only moves or selects "
        "values, use keras_lrp.layers.RouteRelevance; if it is a bias-free linear map, "
        "keras_lrp.layers.ProportionalRelevance. Otherwise replace the layer with supported ones.")


__all__ = ["BASE_MAP", "REGISTRY", "Registry", "Where", "matches", "register_layer",
           "register_rule", "unsupported_error"]
