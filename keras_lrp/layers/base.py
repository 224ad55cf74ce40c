"""The relevance layer contract: :class:`RelevanceLayer`.

Every value of a composite's map answers the same three questions, so that the composite only
maps (first match wins) and never asks what it holds:

* ``serves(layer)``: whether the value may serve a layer at all (a rule serves the layers whose
  linear maps take a rule; a relevance layer class serves any layer its key matches);
* ``problem(node, ctx)``: why it cannot serve this node (words following "Layer 'name' "), or
  ``None``; asked on the user's layers before any work;
* ``bind(node, ctx)``: the relevance layer for this node of the canonized graph.

A :class:`RelevanceLayer` subclass answers them as a class (its :meth:`~RelevanceLayer.bind`
calls :meth:`~RelevanceLayer.for_node`); a :class:`~keras_lrp.rules.Rule` answers them as an
instance holding its parameters. ``ctx`` is the composite's
:class:`~keras_lrp.composites.Context`: the graph, the facts derived from it once, and the
global modes (``attention``, ``gate_rule``).
"""

from __future__ import annotations

import warnings
from typing import Optional

import keras

from keras_lrp.core.graph import node_call


def _compatible(a, b) -> bool:
    """Static shapes that may be equal (same rank; each dimension equal or unknown)."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


class RelevanceLayer(keras.layers.Layer):
    """A layer of the reverse graph: relevance at a forward layer's output → at its inputs.

    Called on ``[x_1, …, x_n, z, R]``: the forward layer's inputs, its output and the relevance
    at that output. Returns the relevance at the input (a list when the layer has several).

    The shape contract: the relevance returned for input ``x_i`` has the shape of ``x_i``. It is
    checked on the static shapes when the analysis is traced (which happens when the analyzer is
    built), so a rule that returns the wrong shape is an error naming it, never a wrong array.

    Args:
        layer: the forward layer (or keras Operation) whose relevance this layer propagates.
        forward: ``forward(xs)`` recomputes the layer's output from its inputs, replaying the
            node's own call arguments; defaults to calling ``layer`` on one input or a list.
        target: the old name of ``layer`` (deprecated; "target" now means only the explained
            output neuron, as in ``pixel_flipping(target=…)``).
    """

    def __init__(self, layer=None, forward=None, target=None, **kwargs):
        super().__init__(**kwargs)
        if target is not None:
            warnings.warn(f"{type(self).__name__}(target=…) is deprecated; pass layer=….",
                          DeprecationWarning, stacklevel=2)
            layer = target if layer is None else layer
        self.layer = layer
        #: ``forward_fn(xs)``: the forward layer's output recomputed from its inputs. (Not
        #: ``self.forward``: on PyTorch a Keras layer is a ``torch.nn.Module``, whose ``forward``
        #: method that name would shadow.)
        self.forward_fn = forward or (lambda xs: layer(xs[0] if len(xs) == 1 else xs))
        self.supports_masking = True  # a forward value may carry a Keras mask: relevance never does

    @property
    def target(self):
        """Deprecated: the old name of :attr:`layer`."""
        warnings.warn("RelevanceLayer.target is deprecated; use .layer.", DeprecationWarning,
                      stacklevel=2)
        return self.layer

    #: Whether the output z may be handed a ReLU's output a = max(z, 0) in its place: true for
    #: rules, which read z only as R / z, 0 wherever relevance cannot arrive (see
    #: :func:`keras_lrp.analyzers.reverse.relu_stand_ins`).
    output_stand_in = False

    # -- the map-value contract (see the module docstring) -------------------------------------
    @classmethod
    def serves(cls, layer) -> bool:
        """Whether this class may serve ``layer``: any layer its composite key matches."""
        return True

    @classmethod
    def problem(cls, node, ctx) -> Optional[str]:
        """Why this class cannot serve ``node`` (see :meth:`check_node`), or ``None``."""
        return cls.check_node(node, ctx.graph)

    @classmethod
    def bind(cls, node, ctx) -> RelevanceLayer:
        """The relevance layer for ``node`` (built by :meth:`for_node`, replaying the node's own
        call), named after its layer."""
        return cls.for_node(node, ctx.graph, forward=node_call(node), **named_after(node))

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """Whether the relevance this layer gives each input of ``node`` is provably 0 wherever
        that input is 0, given whether the relevance at the outputs is (``outputs_keep``).
        Declared per class (default ``False``); see
        :func:`keras_lrp.analyzers.reverse.zero_where_zero`."""
        return False

    # -- building from the graph ---------------------------------------------------------------
    @classmethod
    def for_node(cls, node, graph, **kwargs) -> RelevanceLayer:
        """The relevance layer for one node of the forward graph (subclasses may read the graph,
        e.g. to find which input of a product is the gate)."""
        return cls(layer=node.layer, **kwargs)

    @classmethod
    def check_node(cls, node, graph) -> Optional[str]:
        """Why this relevance layer cannot serve ``node``, as words following "Layer 'name' "
        (``None`` if it can); asked before any work, so the error names the user's layer."""
        return None

    def call(self, inputs):
        *xs, z, relevance = inputs
        return self.checked(xs, self.propagate(xs, z, relevance))

    def checked(self, xs, out):
        """``out`` (one relevance per input in ``xs``) after the shape contract's check; a single
        tensor for a single input.

        Raises:
            ValueError: a count or a static shape that does not match the inputs'.
        """
        if len(out) != len(xs):
            raise ValueError(
                f"Relevance layer '{self.name}' ({self!r}) returned {len(out)} relevances for the "
                f"{len(xs)} inputs of layer '{_name(self.layer)}'; return one per input.")
        for i, (x, r) in enumerate(zip(xs, out)):
            if not _compatible(tuple(r.shape), tuple(x.shape)):
                raise ValueError(
                    f"Relevance layer '{self.name}' ({self!r}) returned relevance of shape "
                    f"{batched(r.shape)} for input {i} of layer '{_name(self.layer)}', whose "
                    f"shape is {batched(x.shape)}. Relevance must have its input's shape: the "
                    "rule does not fit this layer (register another relevance layer for it).")
        return out[0] if len(out) == 1 else out

    def compute_mask(self, inputs, previous_mask):
        return None

    def propagate(self, xs, z, relevance):  # pragma: no cover - abstract
        raise NotImplementedError

    def compute_output_spec(self, inputs):
        xs = inputs[:-2]
        self.check_input_shapes([tuple(x.shape) for x in xs])
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype) for x in xs]
        return specs[0] if len(specs) == 1 else specs

    def check_input_shapes(self, shapes) -> None:
        """Raise ValueError if the layer's input shapes do not suit this relevance layer; called
        when the reverse graph is built, before any analysis."""

    def __repr__(self):
        return type(self).__name__


def named_after(node) -> dict:
    """The name and dtype policy of ``node``'s relevance layer: ``<layer name>_relevance``, in
    the forward layer's policy."""
    return {"name": f"{node.layer.name}_relevance",
            "dtype": getattr(node.layer, "dtype_policy", None)}


def batched(shape) -> tuple:  # also used by layers.structural
    """A static shape as the user's model declares it: the batch size unknown (the check runs
    on a concrete batch on JAX and PyTorch)."""
    shape = tuple(shape)
    return (None,) + shape[1:] if shape else shape


def _name(layer) -> str:
    return getattr(layer, "name", type(layer).__name__)
