"""The relevance layer contract, and the stabilised arithmetic every relevance layer shares."""

from __future__ import annotations

from typing import Optional

import keras
from keras import ops

#: The default stabiliser added (with the denominator's sign) to every denominator other than the
#: Z rule's, so that no rule ever divides by zero. In float32 it is *relative*: RELATIVE × the
#: largest |d| of the sample in that denominator tensor, never below the floor TINY (1e-30), so
#: that a network whose activations are tiny (an untrained MobileNet's logits are ~1e-20) keeps
#: its relevance as in float64. In float64 it is the absolute 1e-100 (conservation is checked
#: precisely there, on networks whose activations may be far below 1e-12). Other dtypes: 1e-12.
TINY = {"float32": 1e-30, "float64": 1e-100}
TINY_DEFAULT = 1e-12
RELATIVE = {"float32": 1e-9}


def tiny(dtype) -> float:
    """The absolute floor of the default stabiliser for tensors of ``dtype``."""
    return TINY.get(keras.backend.standardize_dtype(dtype), TINY_DEFAULT)


def default_eps(z):
    """The default stabiliser for the denominator ``z``: max(RELATIVE · max |z| over each
    sample, TINY) in float32 (a tensor broadcasting against z), TINY otherwise."""
    dtype = keras.backend.standardize_dtype(z.dtype)
    relative = RELATIVE.get(dtype)
    if relative is None:
        return tiny(dtype)
    axes = tuple(range(1, len(z.shape)))
    scale = ops.max(ops.abs(z), axis=axes, keepdims=True) if axes else ops.abs(z)
    return ops.maximum(scale * relative, ops.convert_to_tensor(tiny(dtype), dtype=z.dtype))


def sign_plus(z):
    """sign(z) with sign(0) = +1."""
    return ops.where(z >= 0, ops.ones_like(z), -ops.ones_like(z))


def stabilize(z, eps: Optional[float] = None, sign: int = 0):
    """``z + eps·sign(z)`` with sign(0) = +1: never zero, keeps the sign of ``z``. ``eps``
    defaults to :func:`default_eps` (relative to the sample's scale in float32).

    Pass ``sign=+1`` (or ``-1``) when ``z`` is mathematically ≥ 0 (≤ 0) everywhere: two
    operations instead of three. ``z`` is clamped first, so a rounding error of the wrong sign
    (a fast convolution may return −1e-12 for an exact 0) can never cancel ε.
    """
    eps = default_eps(z) if eps is None else eps
    eps = ops.convert_to_tensor(eps, dtype=z.dtype)  # not ops.cast: it rounds through float32
    if sign:
        return ops.maximum(z, 0) + eps if sign > 0 else ops.minimum(z, 0) - eps
    return z + ops.where(z >= 0, eps, -eps)


def safe_divide(a, b):
    """``a / b`` where ``b ≠ 0`` and exactly 0 where ``b == 0`` (the Z rule's division)."""
    zero = ops.equal(b, 0)
    return ops.where(zero, ops.zeros_like(a), a / ops.where(zero, ops.ones_like(b), b))


def positive(t):
    return ops.maximum(t, 0)


def negative(t):
    return ops.minimum(t, 0)


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
        target: the forward layer (or keras Operation) whose relevance this layer propagates.
        forward: ``forward(xs)`` recomputes the target's output from its inputs, replaying the
            node's own call arguments; defaults to calling ``target`` on one input or a list.
    """

    def __init__(self, target=None, forward=None, **kwargs):
        super().__init__(**kwargs)
        self.target = target
        self.forward = forward or (lambda xs: target(xs[0] if len(xs) == 1 else xs))
        self.supports_masking = True  # a forward value may carry a Keras mask: relevance never does

    @classmethod
    def for_node(cls, node, graph, **kwargs) -> "RelevanceLayer":
        """The relevance layer for one node of the forward graph (subclasses may read the graph,
        e.g. to find which input of a product is the gate)."""
        return cls(target=node.layer, **kwargs)

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
                f"{len(xs)} inputs of layer '{_name(self.target)}'; return one per input.")
        for i, (x, r) in enumerate(zip(xs, out)):
            if not _compatible(tuple(r.shape), tuple(x.shape)):
                raise ValueError(
                    f"Relevance layer '{self.name}' ({self!r}) returned relevance of shape "
                    f"{tuple(r.shape)} for input {i} of layer '{_name(self.target)}', whose "
                    f"shape is {tuple(x.shape)}. Relevance must have its input's shape: the "
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


def _name(layer) -> str:
    return getattr(layer, "name", type(layer).__name__)
