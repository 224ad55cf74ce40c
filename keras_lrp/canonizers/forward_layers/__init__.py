"""The forward helper layers: the Keras layers the canonizers put into the canonized graph.

A canonizer that rewrites a call into parts keras-lrp has a rule for makes some of those parts
itself. They are all here, one home, each with the rewrite that makes it:

* :mod:`~keras_lrp.canonizers.forward_layers.attention` — an attention call's parts
  (:class:`.AttentionScores`, :class:`.AdditiveScores`, :class:`.AttentionSoftmax`,
  :class:`.AttentionCombine`, :class:`.KerasMask`, :class:`.RepeatHeads`), made by
  :mod:`keras_lrp.canonizers.attention`;
* :mod:`~keras_lrp.canonizers.forward_layers.constants` — constants
  (:class:`.BatchConstant`, :class:`.ShapeConstant`, :class:`.ShapeOutput`: a traced call's values
  that depend on no input, :mod:`keras_lrp.canonizers.tracing` and
  :mod:`keras_lrp.canonizers.trace_rewrites`; :class:`.PrependToken`, :class:`.AddConstant`: ViT's
  class token and positions, :mod:`keras_lrp.canonizers.vit_embedding`);
* :mod:`~keras_lrp.canonizers.forward_layers.shapes` — sizes read off the input at run time
  (:class:`.ReshapeKeeping`, :class:`.SliceKeeping`, :class:`.BroadcastKeeping`), made by
  :mod:`keras_lrp.canonizers.trace_rewrites` and :mod:`keras_lrp.canonizers.batch_sizes`;
* :mod:`~keras_lrp.canonizers.forward_layers.linear_maps` — linear maps (:class:`.KernelOp`,
  :class:`.KernelEinsum`, :class:`.LinearResample`), made by :mod:`keras_lrp.canonizers.kernels`,
  :mod:`keras_lrp.canonizers.trace_rewrites` and :mod:`keras_lrp.canonizers.foreign_calls`;
* :mod:`~keras_lrp.canonizers.forward_layers.heads` — on a language model's logits
  (:class:`.SoftCap`, made by :mod:`keras_lrp.canonizers.heads`; :class:`.LogSoftmax`, appended
  by :func:`keras_lrp.explain_generation`).

Their relevance layers are in :mod:`keras_lrp.layers`, chosen by the base map
(:mod:`keras_lrp.composites.registry`). Until 0.5 each lived in the module that makes it; those
paths work for one more release and warn with a DeprecationWarning (:func:`moved`).
"""

from __future__ import annotations

import warnings

from keras_lrp.canonizers.forward_layers.attention import (
    AdditiveScores,
    AttentionCombine,
    AttentionScores,
    AttentionSoftmax,
    KerasMask,
    RepeatHeads,
)
from keras_lrp.canonizers.forward_layers.constants import (
    AddConstant,
    BatchConstant,
    PrependToken,
    ShapeConstant,
    ShapeOutput,
)
from keras_lrp.canonizers.forward_layers.heads import LogSoftmax, SoftCap
from keras_lrp.canonizers.forward_layers.linear_maps import KernelEinsum, KernelOp, LinearResample
from keras_lrp.canonizers.forward_layers.shapes import (
    BroadcastKeeping,
    ReshapeKeeping,
    SliceKeeping,
)

#: Where each layer lived before: old module → the layers it defined (or re-exported).
OLD_HOMES = {
    "keras_lrp.canonizers.attention": ("AdditiveScores", "AttentionCombine", "AttentionScores",
                                       "AttentionSoftmax", "KerasMask", "RepeatHeads"),
    "keras_lrp.canonizers.batch_sizes": ("BroadcastKeeping", "SliceKeeping"),
    "keras_lrp.canonizers.blocks": ("AddConstant", "KernelEinsum", "PrependToken",
                                    "ReshapeKeeping"),
    "keras_lrp.canonizers.foreign_calls": ("LinearResample",),
    "keras_lrp.canonizers.heads": ("LogSoftmax", "SoftCap"),
    "keras_lrp.canonizers.kernels": ("KernelOp",),
    "keras_lrp.canonizers.trace_rewrites": ("BatchConstant", "KernelEinsum", "ReshapeKeeping",
                                            "ShapeConstant", "ShapeOutput"),
    "keras_lrp.canonizers.vit_embedding": ("AddConstant", "PrependToken"),
}


def moved(module: str, name: str):
    """``module.name`` for a layer that moved here from ``module`` (see :data:`OLD_HOMES`),
    with a DeprecationWarning naming its new path; the old module's ``__getattr__``. Any other
    name is an AttributeError, as for a module without one."""
    if name not in OLD_HOMES.get(module, ()):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new = f"{__name__}.{name}"
    warnings.warn(f"{module}.{name} is deprecated and will be removed in the next release; use "
                  f"{new}.", DeprecationWarning, stacklevel=3)
    return globals()[name]


__all__ = ["OLD_HOMES", "AddConstant", "AdditiveScores", "AttentionCombine", "AttentionScores",
           "AttentionSoftmax", "BatchConstant", "BroadcastKeeping", "KerasMask", "KernelEinsum",
           "KernelOp", "LinearResample", "LogSoftmax", "PrependToken", "RepeatHeads",
           "ReshapeKeeping", "ShapeConstant", "ShapeOutput", "SliceKeeping", "SoftCap", "moved"]
