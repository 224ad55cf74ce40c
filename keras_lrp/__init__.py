"""keras-lrp: Layer-wise Relevance Propagation for Keras 3.

Four nouns explain the library, one folder each:

* **rules** (:mod:`keras_lrp.rules`): how relevance crosses one kernel layer (Z, Epsilon,
  AlphaBeta, Gamma, WSquare, Flat, Bounded, …), one class each with its formula; relevance
  layers for the layers without a kernel are in :mod:`keras_lrp.layers`;
* **composites** (:mod:`keras_lrp.composites`): which rule or relevance layer each layer gets;
* **canonizers** (:mod:`keras_lrp.canonizers`): exact rewrites of a clone of the model (softmax
  stripped, activations split, BatchNorm folded, blocks traced, attention expanded);
* **analyzers** (:mod:`keras_lrp.analyzers`): build the relevance model once and run it;
  :func:`create_analyzer` makes one from iNNvestigate's names.

Example:
    >>> analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    >>> relevance = analyzer.analyze(x)   # NumPy array shaped like x

:func:`report` compares methods on the same inputs (metrics with bootstrap intervals, heatmaps,
bias against ignore-bias) and writes one self-contained HTML page; :func:`compare_methods` is
its data step.
"""

import importlib
import warnings

from keras_lrp.version import __version__

# Public names, imported on first use: ``import keras_lrp`` stays cheap and does not start
# TensorFlow, so the command line can silence TensorFlow's start-up messages before it loads.
_PUBLIC = {
    "ANALYZERS": "keras_lrp.analyzers.names",
    "create_analyzer": "keras_lrp.analyzers.names",
    "load_analyzer": "keras_lrp.analyzers.names",
    "Analyzer": "keras_lrp.analyzers.base",
    "Attributor": "keras_lrp.analyzers.base",
    "LRP": "keras_lrp.analyzers.lrp",
    "Gradient": "keras_lrp.analyzers.gradient",
    "IntegratedGradients": "keras_lrp.analyzers.wrappers",
    "SmoothGrad": "keras_lrp.analyzers.wrappers",
    "ConservationReport": "keras_lrp.analyzers.report",
    "Comparison": "keras_lrp.metrics.comparison",
    "compare_methods": "keras_lrp.metrics.comparison",
    "report": "keras_lrp.metrics.comparison",
    "register_layer": "keras_lrp.composites.registry",
    "register_rule": "keras_lrp.composites.registry",
    "register_linear": "keras_lrp.core.linear",
    "register_block": "keras_lrp.canonizers.blocks",
    "explain_generation": "keras_lrp.generation",
}
_SUBMODULES = {"analyzers", "backend", "canonizers", "cli", "composites", "core", "demos", "io",
               "layers", "plots", "rules"}
#: Names of 0.x that moved: old name → (module, new name). Each works for one more release and
#: warns with a DeprecationWarning naming its replacement.
_DEPRECATED = {
    "register_composite": ("keras_lrp.canonizers.blocks", "register_block"),
    "attribution": ("keras_lrp.analyzers", None),
    "gradients": ("keras_lrp.analyzers.gradient", None),
    "heatmap": ("keras_lrp.plots.heatmap", None),
    "tokens": ("keras_lrp.plots.tokens", None),
    "recurrent": ("keras_lrp.layers.recurrent.cells", None),
}


_FRAMEWORKS = ("tensorflow", "jax", "jaxlib", "torch")


def _import(module: str):
    """``importlib.import_module``, with a remedy when Keras' backend is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name not in _FRAMEWORKS:
            raise
        import os

        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        raise ImportError(
            f"keras-lrp needs Keras' backend {backend!r} (KERAS_BACKEND), which is not installed "
            f"here ({e}). Install one: pip install 'keras-lrp[tensorflow]' (Keras' default), "
            "'keras-lrp[jax]' or 'keras-lrp[torch]', and set KERAS_BACKEND to match.") from e


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(_import(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = _import(f"keras_lrp.{name}")
    elif name in _DEPRECATED:
        module, new = _DEPRECATED[name]
        replacement = f"{module}.{new}" if new else module
        warnings.warn(f"keras_lrp.{name} is deprecated and will be removed in the next release; "
                      f"use {replacement}.", DeprecationWarning, stacklevel=2)
        mod = importlib.import_module(module)
        return getattr(mod, new) if new else mod
    else:
        raise AttributeError(f"module 'keras_lrp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC) | _SUBMODULES)


__all__ = sorted(_PUBLIC) + sorted(_SUBMODULES) + ["__version__"]
