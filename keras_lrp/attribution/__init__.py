"""Analyzers: build an attribution model once, then run it on data.

* :mod:`~keras_lrp.attribution.base`: :class:`Analyzer`, the contract every method shares
  (canonized copy, relevance model, compiled run, neuron selection);
* :mod:`~keras_lrp.attribution.running`: batching, streams, layer-wise output, conservation;
* :mod:`~keras_lrp.attribution.lrp` and :mod:`~keras_lrp.attribution.reverse`: LRP's reverse
  graph of relevance layers;
* :mod:`~keras_lrp.attribution.gradient`, :mod:`~keras_lrp.attribution.wrappers`,
  :mod:`~keras_lrp.attribution.baselines`: the gradient family, SmoothGrad and
  IntegratedGradients over any analyzer, and the input/random baselines;
* :mod:`~keras_lrp.attribution.report`, :mod:`~keras_lrp.attribution.evaluate`: the
  conservation report and pixel-flipping curves;
* :mod:`~keras_lrp.attribution.serialize`: an analyzer saved to one file.
"""

from keras_lrp.attribution.base import Analyzer, Attributor, OutputRelevance, one_or_list
from keras_lrp.attribution.baselines import InputAnalyzer, RandomAnalyzer
from keras_lrp.attribution.gradient import Gradient
from keras_lrp.attribution.lrp import LRP
from keras_lrp.attribution.wrappers import IntegratedGradients, SmoothGrad, Wrapper

__all__ = ["Analyzer", "Attributor", "Gradient", "InputAnalyzer", "IntegratedGradients", "LRP",
           "OutputRelevance", "RandomAnalyzer", "SmoothGrad", "Wrapper", "one_or_list"]
