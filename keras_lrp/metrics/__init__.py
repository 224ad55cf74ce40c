"""Evaluation measures for explanations, with Quantus's names, parameters and numbers, on
Keras 3 and every backend (see :mod:`keras_lrp.metrics.base`)."""

from keras_lrp.metrics.base import Explainer, Layout, Metric, Scores  # noqa: F401
