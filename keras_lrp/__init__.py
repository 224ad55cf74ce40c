"""keras-lrp: Layer-wise Relevance Propagation for Keras 3.

Four nouns explain the library:

* **rules** (:mod:`keras_lrp.rules`): how relevance crosses one kernel layer (Z, Epsilon,
  AlphaBeta, Gamma, WSquare, Flat, Bounded, …), one class each with its formula;
* **layer map** (:mod:`keras_lrp.layer_map`): which rule or relevance layer each layer gets;
* **canonizers** (:mod:`keras_lrp.canonize`): exact rewrites of a clone of the model (softmax
  stripped, activations split, BatchNorm folded);
* **analyzers** (:func:`create_analyzer`): run the whole thing, with iNNvestigate's names.

Example:
    >>> analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    >>> relevance = analyzer.analyze(x)   # NumPy array shaped like x
"""

from keras_lrp import rules
from keras_lrp.analyzer import Analyzer
from keras_lrp.analyzers import ANALYZERS, create_analyzer
from keras_lrp.layer_map import register_layer, register_rule
from keras_lrp.linear import register_linear
from keras_lrp.report import ConservationReport
from keras_lrp.serialize import load_analyzer

__version__ = "0.1.0"

__all__ = ["ANALYZERS", "Analyzer", "ConservationReport", "create_analyzer", "load_analyzer", "register_layer",
           "register_linear", "register_rule", "rules",
           "__version__"]
