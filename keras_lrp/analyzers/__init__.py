"""Analyzers: build an attribution model once, then run it on data.

* :mod:`~keras_lrp.analyzers.names`: the analyzer names (:data:`ANALYZERS`),
  :func:`create_analyzer` and :func:`load_analyzer`;

* :mod:`~keras_lrp.analyzers.base`: :class:`Analyzer`, the contract every method shares
  (canonized copy, relevance model, compiled run, neuron selection);
* :mod:`~keras_lrp.analyzers.running`: batching, streams, layer-wise output, conservation;
* :mod:`~keras_lrp.analyzers.inputs`: the checks and batching of what ``analyze`` is given;
* :mod:`~keras_lrp.analyzers.lrp` and :mod:`~keras_lrp.analyzers.reverse`: LRP's reverse
  graph of relevance layers;
* :mod:`~keras_lrp.analyzers.gradient`, :mod:`~keras_lrp.analyzers.wrappers`,
  :mod:`~keras_lrp.analyzers.baselines`: the gradient family, SmoothGrad and
  IntegratedGradients over any analyzer, and the input/random baselines;
* :mod:`~keras_lrp.analyzers.report`, :mod:`~keras_lrp.analyzers.evaluate`: the
  conservation report and pixel-flipping curves;
* :mod:`~keras_lrp.analyzers.serialize`: an analyzer saved to one file.
"""

from keras_lrp.analyzers.base import Analyzer, Attributor, OutputRelevance
from keras_lrp.analyzers.baselines import InputAnalyzer, RandomAnalyzer
from keras_lrp.analyzers.gradient import Gradient
from keras_lrp.analyzers.lrp import LRP
from keras_lrp.analyzers.names import (
    ANALYZERS,
    COMMON_KWARGS,
    LENGTH_KWARGS,
    WRAPPERS,
    Entry,
    create_analyzer,
    from_config,
    load_analyzer,
)
from keras_lrp.analyzers.symbolic import one_or_list
from keras_lrp.analyzers.wrappers import IntegratedGradients, SmoothGrad, Wrapper

__all__ = ["ANALYZERS", "COMMON_KWARGS", "LENGTH_KWARGS", "WRAPPERS", "Analyzer", "Attributor",
           "Entry", "Gradient", "InputAnalyzer", "IntegratedGradients", "LRP", "OutputRelevance",
           "RandomAnalyzer", "SmoothGrad", "Wrapper", "create_analyzer", "from_config",
           "load_analyzer", "one_or_list"]
