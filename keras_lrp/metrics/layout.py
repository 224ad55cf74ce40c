"""How an input batch splits into features (pixels, tabular features, tokens), how relevance
maps onto them, and the values a perturbed feature takes."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

#: Quantus's baseline names (``perturb_baseline``): the value a perturbed feature takes.
BASELINES = ("black", "white", "mean", "uniform", "random", "zero")


class Layout:
    """How an input batch splits into features, and how relevance maps onto them.

    Args:
        x: the input batch: images (N, H, W) / (N, H, W, C), tabular (N, F) floats, or token
            ids (N, T) integers.
        token_baseline: the id a perturbed token takes (token inputs only).

    Attributes:
        kind: ``"image"``, ``"tabular"`` or ``"tokens"``.
        shape: (N, P…) the feature grid: (N, H, W) for images, (N, F) or (N, T) otherwise.
    """

    def __init__(self, x: np.ndarray, token_baseline: Optional[int] = None):
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"x needs a batch axis with at least one sample and a feature "
                             f"axis; got shape {x.shape}.")
        if np.issubdtype(x.dtype, np.integer):
            if x.ndim != 2:
                raise ValueError(f"Integer inputs are token ids of shape (N, T); got shape "
                                 f"{x.shape}.")
            if token_baseline is None:
                raise ValueError("x holds token ids: give token_baseline, the id a perturbed "
                                 "token takes (e.g. the padding or [MASK] id).")
            self.kind = "tokens"
        elif x.ndim == 2:
            self.kind = "tabular"
        elif x.ndim in (3, 4):
            self.kind = "image"
        else:
            raise ValueError(f"x of shape {x.shape} is neither images (N, H, W[, C]), tabular "
                             "(N, F) nor token ids (N, T).")
        self.x = x
        self.token_baseline = token_baseline
        self.shape = x.shape[:3] if self.kind == "image" else x.shape

    @property
    def features(self) -> int:
        """Features per sample."""
        return int(np.prod(self.shape[1:]))

    def relevance(self, a) -> np.ndarray:
        """Relevance per feature, ``(N, *feature grid)`` float64: summed over an image's channels.

        Accepts relevance shaped like x, or like the feature grid."""
        a = np.asarray(a, dtype=np.float64)
        if self.kind == "image" and a.shape == self.x.shape and self.x.ndim == 4:
            a = a.sum(axis=-1)
        elif self.kind == "image" and a.ndim == 4 and a.shape[-1] == 1 and \
                a.shape[:3] == tuple(self.shape):
            a = a[..., 0]
        if a.shape != tuple(self.shape):
            raise ValueError(f"Relevance of shape {a.shape} does not fit x of shape "
                             f"{self.x.shape}; give one shaped like x (or {tuple(self.shape)}).")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Relevance holds {np.sum(~np.isfinite(a))} NaN or infinite values.")
        return a

    def flat(self, a) -> np.ndarray:
        """Relevance per feature, flattened: (N, P)."""
        return self.relevance(a).reshape(len(self.x), -1)

    def replace(self, mask: np.ndarray, replacement: np.ndarray, x=None) -> np.ndarray:
        """x with the features where ``mask`` (N, P) is True set to ``replacement`` (shaped
        like x, or a per-sample value broadcast): all channels of a pixel together."""
        x = self.x if x is None else x
        m = np.asarray(mask, dtype=bool).reshape(self.shape)
        if self.kind == "image" and x.ndim == 4:
            m = m[..., None]
        return np.where(m, replacement, x).astype(x.dtype, copy=False)

    def baseline(self, kind: Union[str, float], rng: np.random.Generator,
                 x=None, **kwargs) -> np.ndarray:
        """The value every feature takes when perturbed, shaped like x (Quantus's
        ``perturb_baseline``): "black" / "white" the sample's min / max, "mean" its mean,
        "uniform" uniform in [uniform_low, uniform_high) (default [0, 1)), "random" the same,
        "zero" 0, or a number. Token inputs always take ``token_baseline``."""
        x = self.x if x is None else x
        if self.kind == "tokens":
            return np.full_like(x, self.token_baseline)
        axes = tuple(range(1, x.ndim))
        if isinstance(kind, (int, float)) and not isinstance(kind, bool):
            return np.full(x.shape, kind, dtype=x.dtype)
        values = {"black": lambda: x.min(axis=axes, keepdims=True),
                  "white": lambda: x.max(axis=axes, keepdims=True),
                  "mean": lambda: x.mean(axis=axes, keepdims=True),
                  "zero": lambda: np.zeros((len(x),) + (1,) * (x.ndim - 1)),
                  "uniform": lambda: rng.uniform(kwargs.get("uniform_low", 0.0),
                                                 kwargs.get("uniform_high", 1.0), x.shape),
                  "random": lambda: rng.uniform(kwargs.get("uniform_low", 0.0),
                                                kwargs.get("uniform_high", 1.0), x.shape)}
        if kind not in values:
            raise ValueError(f"perturb_baseline must be one of {BASELINES} or a number; got "
                             f"{kind!r}.")
        return np.broadcast_to(values[kind](), x.shape).astype(x.dtype)
