"""Reference images of a concept (Achtibat et al., "From attribution maps to human-understandable
explanations through Concept Relevance Propagation", Nature Machine Intelligence 5, 2023): its
top samples (:mod:`keras_lrp.concepts.relmax`) cropped to the part of the input the concept
saw, and masked by its conditional heatmap. NumPy, after zennit-crp 0.6's
``FeatureVisualization.get_max_reference(rf=True)`` with ``vis_opaque_img``:

1. **Receptive-field heatmap.** For sample n and channel k of layer l, the relevance starts at
   layer l with the activation of the one neuron p_n (the channel's most relevant or most active
   position, RelMax's ``neuron``) and nothing elsewhere,

       R^l_{n, q, j} = A^l_{n, q, j} · δ(q = p_n) δ(j = k),

   and is propagated to the input by the analyzer's rules (zennit-crp: ``start_layer=l``,
   ``init_rel`` its activation, masked by ``ChannelConcept.mask_rf``). Its input heatmap
   h (H, W) (summed over the input's channels) is non-zero only inside the neuron's receptive
   field. Without a neuron the whole channel starts (A^l_{n, q, k} at every q).
2. **Crop.** h is normalised by its maximum, ĥ = h / max h, and the image and heatmap are cropped
   to the bounding box of {ĥ > ``crop_th``} (rows and columns inclusive). zennit-crp first blurs h
   with a Gaussian of 19 pixels (made for 224-pixel images; ``blur`` here, 0 by default) and
   slices ``[row1:row2]``, leaving the last row and column of the box out; here they are kept.
   An empty box (max h ≤ 0, or nothing above the threshold) keeps the whole image, as
   zennit-crp does.
3. **Mask.** Pixels with ĥ ≤ ``vis_th`` are dimmed to ``alpha`` times their value:
   x' = x · (m + α (1 − m)), m = [ĥ > vis_th] (zennit-crp's ``vis_opaque_img``).
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np

from keras_lrp.concepts import conditions as cond_mod
from keras_lrp.concepts.conditional import Conditional


@dataclasses.dataclass
class Reference:
    """One reference image: the crop of the input, of its receptive-field heatmap, and the
    masked crop; ``box`` = (row0, row1, col0, col1), a slice ``[row0:row1, col0:col1]``."""

    image: np.ndarray
    heatmap: np.ndarray
    masked: np.ndarray
    box: Tuple[int, int, int, int]


def receptive_field_heatmaps(crp: Conditional, x, layer: str, channel: int,
                             neurons: Optional[Sequence[int]] = None) -> np.ndarray:
    """The input heatmaps ``(N, *input shape)`` of ``channel`` of ``layer`` started at the single
    neuron ``neurons[n]`` of each sample (positions flattened in C order over the layer's
    non-channel axes), or at the whole channel when ``neurons`` is None (step 1 above)."""
    x = np.asarray(x)
    shape = crp.shape(layer)[1:]
    axis = cond_mod.channel_axis(layer, (None,) + tuple(shape), crp.axis) - 1
    if not 0 <= channel < shape[axis]:
        raise ValueError(f"channel {channel} is out of range: layer {layer!r} has "
                         f"{shape[axis]} channels.")
    act = crp.activation(x, layer).astype(np.float64)
    moved = np.moveaxis(act, axis + 1, -1)  # (N, *positions, channels)
    init = np.zeros_like(moved)
    flat_init = init.reshape(len(x), -1, shape[axis])
    flat_act = moved.reshape(len(x), -1, shape[axis])
    if neurons is None:
        flat_init[:, :, channel] = flat_act[:, :, channel]
    else:
        neurons = np.asarray(neurons, np.int64).reshape(-1)
        positions = flat_act.shape[1]
        if neurons.shape != (len(x),) or neurons.min() < 0 or neurons.max() >= positions:
            raise ValueError(f"neurons must be {len(x)} positions in [0, {positions}) of layer "
                             f"{layer!r}; got {neurons.tolist()}.")
        rows = np.arange(len(x))
        flat_init[rows, neurons, channel] = flat_act[rows, neurons, channel]
    init = np.moveaxis(flat_init.reshape(moved.shape), -1, axis + 1)
    result = crp.attribute(x, [{}], start_layer=layer, init_rel=init.astype(act.dtype))
    heat = result.heatmap
    return (heat[0] if isinstance(heat, list) else heat)[:, 0]


def crop_box(heatmap, crop_th: float = 0.1) -> Tuple[int, int, int, int]:
    """The bounding box (row0, row1, col0, col1), as slice bounds, of {h / max h > crop_th} of a
    2-D heatmap; the whole heatmap if that set is empty or max h ≤ 0 (step 2 above)."""
    h = np.asarray(heatmap, np.float64)
    if h.ndim != 2:
        raise ValueError(f"crop_box takes a 2-D heatmap (H, W); got shape {h.shape}.")
    if not 0 <= crop_th < 1:
        raise ValueError(f"crop_th must be in [0, 1), got {crop_th}.")
    top = h.max()
    rows, cols = np.nonzero(h / top > crop_th) if top > 0 else ((), ())
    if not len(rows):
        return 0, h.shape[0], 0, h.shape[1]
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def _blur(h: np.ndarray, size: int) -> np.ndarray:
    """A separable Gaussian blur of odd width ``size`` (σ as torchvision's default for it:
    0.3 ((size − 1) / 2 − 1) + 0.8), reflecting at the borders."""
    if size <= 1:
        return h
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    t = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    pad = size // 2
    for axis in (0, 1):
        padded = np.pad(h, [(pad, pad) if a == axis else (0, 0) for a in (0, 1)],
                        mode="reflect" if h.shape[axis] > pad else "edge")
        h = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), axis, padded)
    return h


def reference_image(image, heatmap, crop_th: float = 0.1, vis_th: float = 0.2,
                    alpha: float = 0.3, blur: int = 0) -> Reference:
    """Crop ``image`` (H, W[, C]) and ``heatmap`` (H, W[, C], channels summed) to the heatmap's
    box and mask the image by it (steps 2 and 3 above)."""
    if not 0 <= alpha <= 1 or not 0 <= vis_th < 1:
        raise ValueError(f"alpha must be in [0, 1] and vis_th in [0, 1); got {alpha}, {vis_th}.")
    image = np.asarray(image, np.float64)
    h = np.asarray(heatmap, np.float64)
    h = h.sum(-1) if h.ndim == 3 else h
    if h.shape != image.shape[:2]:
        raise ValueError(f"heatmap of shape {np.shape(heatmap)} does not fit image of shape "
                         f"{image.shape}.")
    smooth = _blur(h, int(blur))
    top = smooth.max()
    norm = smooth / top if top > 0 else np.zeros_like(smooth)
    r0, r1, c0, c1 = crop_box(smooth, crop_th)
    keep = (norm > vis_th).astype(np.float64)
    keep = keep[..., None] if image.ndim == 3 else keep
    masked = image * (keep + alpha * (1 - keep))
    return Reference(image[r0:r1, c0:c1], h[r0:r1, c0:c1], masked[r0:r1, c0:c1], (r0, r1, c0, c1))


def reference_images(analyzer, x, layer: str, channel: int, neurons=None, crop_th: float = 0.1,
                     vis_th: float = 0.2, alpha: float = 0.3, blur: int = 0,
                     axis: int = -1) -> List[Reference]:
    """The reference images of ``channel`` of ``layer`` for the samples ``x`` (e.g. its RelMax
    top samples, with their ``neuron``\\ s): receptive-field heatmaps, crops, masks.

    ``analyzer``: an LRP analyzer or a :class:`Conditional`. Images are (H, W) or (H, W, C)."""
    crp = analyzer if isinstance(analyzer, Conditional) else Conditional(
        analyzer, axis=axis, exclude_parallel=False)
    x = np.asarray(x)
    heat = receptive_field_heatmaps(crp, x, layer, channel, neurons)
    return [reference_image(x[n], heat[n], crop_th, vis_th, alpha, blur) for n in range(len(x))]


__all__ = ["Reference", "crop_box", "receptive_field_heatmaps", "reference_image",
           "reference_images"]
