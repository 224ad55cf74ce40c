"""Canonizers: exact rewrites of a private clone of the model before it is explained.

Each is a small object a composite lists (Zennit's word): nested models inlined, blocks traced
(:mod:`~keras_lrp.canonizers.blocks`), attention expanded
(:mod:`~keras_lrp.canonizers.attention`), activations split, separable convolutions split,
the output softmax stripped and BatchNormalization folded (:mod:`~keras_lrp.canonizers.base`).
The Keras layers the canonizers put into the graph (attention's parts, constants, kept sizes,
linear maps) live in :mod:`~keras_lrp.canonizers.forward_layers`. The user's model is never
changed.
"""

from keras_lrp.canonizers.base import (
    DEFAULT_CANONIZERS,
    LOW_PRECISION,
    Canonizer,
    ExpandAttention,
    FoldBatchNorm,
    InlineNested,
    SplitActivations,
    SplitSeparable,
    StripSoftmax,
    TraceBlocks,
    analysis_dtype,
    canonize,
    clone_layers,
    has_fused_activation,
)


def __getattr__(name: str):
    if name == "TraceComposites":
        import warnings

        warnings.warn("keras_lrp.canonizers.TraceComposites is deprecated; use TraceBlocks.",
                      DeprecationWarning, stacklevel=2)
        return TraceBlocks
    raise AttributeError(f"module 'keras_lrp.canonizers' has no attribute {name!r}")


__all__ = ["DEFAULT_CANONIZERS", "LOW_PRECISION", "Canonizer", "ExpandAttention",
           "FoldBatchNorm", "InlineNested", "SplitActivations", "SplitSeparable", "StripSoftmax",
           "TraceBlocks", "analysis_dtype", "canonize", "clone_layers", "has_fused_activation"]
