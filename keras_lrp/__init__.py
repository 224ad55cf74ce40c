"""keras-lrp: Layer-wise Relevance Propagation for Keras 3.

Four nouns explain the library:

* **rules** (:mod:`keras_lrp.rules`): how relevance crosses one kernel layer (Z, Epsilon,
  AlphaBeta, Gamma, WSquare, Flat, Bounded, …), one class each with its formula; relevance
  layers for the layers without a kernel are in :mod:`keras_lrp.layers`;
* **composites** (:mod:`keras_lrp.composites`): which rule or relevance layer each layer gets;
* **canonizers** (:mod:`keras_lrp.canonizers`): exact rewrites of a clone of the model (softmax
  stripped, activations split, BatchNorm folded);
* **attributors** (:mod:`keras_lrp.attribution`, :mod:`keras_lrp.gradients`): build the
  relevance model once and run it; :func:`create_analyzer` makes one from iNNvestigate's names.

Example:
    >>> analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    >>> relevance = analyzer.analyze(x)   # NumPy array shaped like x
"""

import importlib

from keras_lrp.version import __version__

# Public names, imported on first use: ``import keras_lrp`` stays cheap and does not start
# TensorFlow, so the command line can silence TensorFlow's start-up messages before it loads.
_PUBLIC = {
    "ANALYZERS": "keras_lrp.analyzers", "create_analyzer": "keras_lrp.analyzers",
    "load_analyzer": "keras_lrp.analyzers", "LRP": "keras_lrp.attribution",
    "Analyzer": "keras_lrp.attribution", "Attributor": "keras_lrp.attribution",
    "Gradient": "keras_lrp.gradients", "IntegratedGradients": "keras_lrp.gradients",
    "SmoothGrad": "keras_lrp.gradients", "register_layer": "keras_lrp.layer_map",
    "register_rule": "keras_lrp.layer_map", "register_linear": "keras_lrp.linear",
    "ConservationReport": "keras_lrp.report", "register_composite": "keras_lrp.composite_layers",
}
_SUBMODULES = {"attribution", "canonizers", "composites", "gradients", "heatmap", "layers",
               "recurrent", "rules", "tokens"}


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_lrp.{name}")
    else:
        raise AttributeError(f"module 'keras_lrp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC) | _SUBMODULES)


__all__ = sorted(_PUBLIC) + sorted(_SUBMODULES) + ["__version__"]
