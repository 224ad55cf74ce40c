"""Baselines every explanation should beat: the input itself and the input plus noise."""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
from keras import ops

from keras_lrp.analyzers.base import Analyzer


class InputAnalyzer(Analyzer):
    """iNNvestigate's ``input``: the input itself, as a baseline heatmap.

    Formula:
        R_i = x_i
    """

    rewrites = False  # reads the inputs only (Analyzer.rewrites)

    def build_relevances(self):
        return [ops.convert_to_tensor(x) * 1 for x in self.inputs], {}


class RandomAnalyzer(Analyzer):
    """iNNvestigate's ``random``: the input plus Gaussian noise, a baseline no explanation
    should lose to.

    Formula:
        R_i = x_i + ε_i,   ε_i ~ N(0, stddev²)

    Args:
        model: the Keras model.
        stddev: the noise's standard deviation (default 1, as iNNvestigate).
        seed: makes the noise reproducible (two analyzers with one seed draw the same noise).
        **kwargs: see :class:`~keras_lrp.analyzers.base.Analyzer`.
    """

    rewrites = False  # the inputs and noise only (Analyzer.rewrites)

    def __init__(self, model: keras.Model, stddev: float = 1.0, seed: Optional[int] = None,
                 **kwargs):
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.number)) or \
                stddev < 0:
            raise ValueError(f"random needs stddev >= 0, got stddev={stddev!r}.")
        self.stddev, self.seed = float(stddev), keras.random.SeedGenerator(seed)
        super().__init__(model, **kwargs)
        self._options.update(stddev=stddev, seed=seed)

    def build_relevances(self):
        return [_Noise(self.stddev, self.seed, dtype=x.dtype)(x) for x in self.inputs], {}


class _Noise(keras.layers.Layer):
    def __init__(self, stddev, seed, **kwargs):
        super().__init__(**kwargs)
        self.stddev, self.seed = stddev, seed

    def call(self, x):
        return x + keras.random.normal(ops.shape(x), stddev=self.stddev, dtype=x.dtype,
                                       seed=self.seed)
