"""Concept relevances at a layer, and the relevance transfer between two layers (Concept
Relevance Propagation; Achtibat et al., Nature Machine Intelligence 5, 2023).

* :func:`channel_relevance`: R_k = Σ_p R_{p, k}, the relevance of channel (concept) k at a
  layer, summed over its positions p (zennit-crp's ``ChannelConcept.attribute``; with
  ``abs_norm``, divided by Σ_k |R_k|). Under a conserving rule on a bias-free network the R_k of
  a layer sum to the explained output.
* :func:`concept_relevances`: those sums for every sample (and condition) from one
  conditional pass.
* :func:`transfer_matrix`: T with T_{i j} = the relevance unit i of the lower layer receives
  when unit j of the upper layer holds relevance 1 and every other unit 0. LRP is linear in the
  upper relevance (the activations fixed), so R_lower = T R_upper, and T_{i j} R_upper_j is
  how much of unit j's relevance goes to unit i: for a bias-free dense layer under the z-rule
  T = Cᵀ with C_{j i} = W_{j i} h_i / Σ_i' W_{j i'} h_i'. All rows come from one batched pass
  started at the upper layer with one-hot relevances.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from keras_lrp.concepts.conditional import Conditional


def channel_relevance(relevance, axis: int = -1, lead: int = 1,
                      abs_norm: bool = False) -> np.ndarray:
    """Σ over every position of ``relevance`` per channel: ``(*lead axes, channels)``.

    Args:
        relevance: a layer's relevance, ``lead`` leading axes (samples, conditions) first.
        axis: the channel axis (counted in ``relevance``'s own axes; channels last by default).
        lead: how many leading axes are kept (1: samples; 2: samples × conditions).
        abs_norm: divide each row by Σ_k |R_k| (+1e-10), as zennit-crp's default.
    """
    r = np.asarray(relevance)
    axis = axis % r.ndim
    if axis < lead:
        raise ValueError(f"axis={axis} is one of the {lead} leading axes of a relevance of "
                         f"shape {r.shape}; give the channel axis.")
    r = np.moveaxis(r, axis, -1)
    out = r.reshape(r.shape[:lead] + (-1, r.shape[-1])).sum(axis=lead)
    if abs_norm:
        out = out / (np.abs(out).sum(-1, keepdims=True) + 1e-10)
    return out


def _conditional(analyzer_or_conditional, **kwargs) -> Conditional:
    if isinstance(analyzer_or_conditional, Conditional):
        return analyzer_or_conditional
    return Conditional(analyzer_or_conditional, **kwargs)


def concept_relevances(analyzer, x, layer: str,
                       conditions: Optional[Sequence[Mapping[str, Any]]] = None,
                       axis: int = -1, abs_norm: bool = False) -> np.ndarray:
    """The relevance of every channel of ``layer`` for each sample: (N, channels), or
    (N, C, channels) with ``conditions`` (each explains its ``"y"`` and keeps its masks).

    ``analyzer``: an LRP analyzer or a :class:`Conditional` (reusing its programs); without
    conditions each sample's largest output is explained."""
    crp = _conditional(analyzer, axis=axis)
    result = crp.attribute(x, [{}] if conditions is None else conditions, record=[layer])
    out = channel_relevance(result.relevances[layer], axis=crp.axis if crp.axis < 0
                            else crp.axis + 1, lead=2, abs_norm=abs_norm)
    return out[:, 0] if conditions is None else out


def transfer_matrix(analyzer, x, upper: str, lower: str) -> np.ndarray:
    """T (lower units, upper units) for the one sample ``x``: T_{i j} is the relevance at unit
    i of ``lower`` when unit j of ``upper`` alone holds relevance 1 (units: every value of the
    layer output, flattened in C order). ``R_lower = T @ R_upper`` for any upper relevance.

    ``analyzer``: an LRP analyzer or a :class:`Conditional`. One batched pass, started at
    ``upper`` with one one-hot relevance per upper unit."""
    crp = _conditional(analyzer)
    first = np.asarray(x[0] if isinstance(x, (list, tuple)) else x)
    if first.shape[0] != 1:
        raise ValueError(f"transfer_matrix explains one sample; x has {first.shape[0]}.")
    shape = crp.shape(upper)[1:]
    units = int(np.prod(shape))
    init = np.eye(units, dtype="float32").reshape((1, units) + tuple(shape))
    result = crp.attribute(x, [{}] * units, record=[lower], start_layer=upper, init_rel=init)
    rel = result.relevances[lower][0]  # ``(upper units, *lower shape)``
    return rel.reshape(units, -1).T


__all__ = ["channel_relevance", "concept_relevances", "transfer_matrix"]
