"""The zB rule for inputs in a box [low, high] (Montavon et al. 2017)."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_lrp.rules.base import Rule, negative, positive, stabilize


class Bounded(Rule):
    """zB-rule: Deep Taylor decomposition for inputs bounded by ``low ≤ x ≤ high``.

    Formula:
        z_ij = x_i w_ij − l_i w⁺_ij − h_i w⁻_ij
        R_i = Σ_j z_ij / Σ_i' z_i'j · R_j

    No bias. Conserves relevance exactly.

    Args:
        low: lower bound l, a scalar or an array broadcastable to one sample (default −1).
        high: upper bound h, the same (default 1). Every l_i ≤ h_i.
    """

    PARAMS = {"low": -1.0, "high": 1.0}

    def validate(self, low, high):
        low, high = np.asarray(low, dtype="float64"), np.asarray(high, dtype="float64")
        try:
            np.broadcast_shapes(low.shape, high.shape)
        except ValueError:
            raise ValueError(f"Bounded: low (shape {low.shape}) and high (shape {high.shape}) "
                             "must broadcast together.") from None
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("Bounded needs finite low and high.")
        if np.any(low > high):
            shape = np.broadcast_shapes(low.shape, high.shape)
            bad = np.argwhere(np.broadcast_to(low > high, shape))[0]
            lo = float(np.broadcast_to(low, shape)[tuple(bad)])
            hi = float(np.broadcast_to(high, shape)[tuple(bad)])
            raise ValueError(f"Bounded needs low <= high; got low={lo!r} > high={hi!r}"
                             + (f" at index {tuple(bad)}." if bad.size else "."))

    def check_input_shapes(self, shapes) -> None:
        for value in (self.low, self.high):
            self._check_bound(np.asarray(value, dtype="float64"), tuple(shapes[0][1:]))

    def _check_bound(self, bound, sample) -> None:
        if None not in sample:
            try:
                fits = np.broadcast_shapes(bound.shape, sample) == sample
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(
                    f"Bounded at layer '{self.layer.name}': a bound of shape {bound.shape} does "
                    f"not broadcast to the layer's input shape {sample} (one sample). Pass a "
                    "scalar or an array of that shape.")

    def _bound(self, value, x):
        bound = np.asarray(value, dtype="float64")
        self._check_bound(bound, tuple(x.shape[1:]))
        return ops.broadcast_to(ops.convert_to_tensor(bound, dtype=x.dtype), ops.shape(x))

    def relevance(self, op, x, z, relevance):
        low, high = self._bound(self.low, x), self._bound(self.high, x)
        wp, wn = positive(op.kernel), negative(op.kernel)
        s = relevance / stabilize(op(x) - op(low, wp) - op(high, wn))
        return x * op.transpose(s, x) - low * op.transpose(s, x, wp) - high * op.transpose(s, x, wn)

    def get_config(self):
        config = super().get_config()
        for key in ("low", "high"):
            config[key] = np.asarray(config[key]).tolist()
        return config
