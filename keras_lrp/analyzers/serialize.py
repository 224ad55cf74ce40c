"""Saving and loading analyzers: their configuration plus the model, in one zip file.

The file holds ``analyzer.json`` (format version, keras-lrp version, and the analyzer's
``get_config()``: its name and keyword arguments, or a wrapper's parameters and the wrapped
analyzer's configuration) and ``model.keras``. :func:`keras_lrp.load_analyzer` rebuilds the
analyzer from them, so results are identical to the saved analyzer's. A file written in a newer
format than this keras-lrp reads fails with a message saying so.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Dict, Optional

import keras
import numpy as np

from keras_lrp import rules
from keras_lrp.composites import COMPOSITES, Composite
from keras_lrp.io.atomic import write_atomically
from keras_lrp.version import __version__

#: Version of the file layout; bump it when a change makes older readers misread files.
FORMAT_VERSION = 2


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v, where) for k, v in value.items()}
    if isinstance(value, rules.Rule) and getattr(rules, type(value).__name__, None) is type(value):
        return {"__rule__": type(value).__name__, "params": _encode(value.params, where)}
    if isinstance(value, Composite) and COMPOSITES.get(type(value).__name__) is type(value) \
            and not value.user_map and value.until_layer is None:
        return {"__composite__": type(value).__name__, "params": _encode(value.params, where)}
    if isinstance(value, type) and getattr(rules, value.__name__, None) is value:
        return {"__rule_class__": value.__name__}
    if isinstance(value, type) and getattr(keras.layers, value.__name__, None) is value:
        return {"__layer_class__": value.__name__}
    raise TypeError(f"Cannot save the analyzer: {where} holds {value!r}, which is not a built-in "
                    "rule, named composite, Keras layer class, number, string, array or list of "
                    "them. Recreate analyzers with custom objects in code instead of saving "
                    "them.")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__rule__" in value:
        return getattr(rules, value["__rule__"])(**_decode(value["params"]))
    if "__composite__" in value:
        return COMPOSITES[value["__composite__"]](**_decode(value["params"]))
    if "__rule_class__" in value:
        return getattr(rules, value["__rule_class__"])
    if "__layer_class__" in value:
        return getattr(keras.layers, value["__layer_class__"])
    return {k: _decode(v) for k, v in value.items()}


def _encode_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """An analyzer configuration as JSON values, naming the keyword that cannot be saved."""
    if "wrapper" in config:
        return {"wrapper": config["wrapper"], "name": config.get("name"),
                "params": {k: _encode(v, f"{config['wrapper']} parameter {k!r}")
                           for k, v in config["params"].items()},
                "analyzer": _encode_config(config["analyzer"])}
    return {"name": config["name"],
            "kwargs": {k: _encode(v, f"keyword argument {k!r}")
                       for k, v in config["kwargs"].items()}}


def save_analyzer(config: Dict[str, Any], model, path: str) -> None:
    """Write an analyzer's ``config`` and ``model`` to ``path`` atomically (temp file + rename).

    Raises:
        TypeError: the configuration holds an object that cannot be saved (custom rules,
            composites or layer classes); the message names it.
    """
    config = {"format_version": FORMAT_VERSION, "keras_lrp_version": __version__,
              "config": _encode_config(config)}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        model_path = os.path.join(tmp, "model.keras")
        model.save(model_path)

        def write(handle):
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("analyzer.json", json.dumps(config, indent=1))
                archive.write(model_path, "model.keras")

        write_atomically(path, write)


def read_analyzer(path: str, custom_objects: Optional[Dict[str, Any]] = None):
    """``(config, model)`` from a file written by :func:`save_analyzer`.

    Raises:
        ValueError: not an analyzer file, or written in a newer format than this keras-lrp reads.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No analyzer file at {path}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a keras-lrp analyzer file (expected a zip written by "
                         "Analyzer.save).")
    with zipfile.ZipFile(path) as archive:
        if "analyzer.json" not in archive.namelist():
            raise ValueError(f"{path} is not a keras-lrp analyzer file (no analyzer.json).")
        saved = json.loads(archive.read("analyzer.json"))
        version = saved.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(
                f"{path} was saved by keras-lrp {saved.get('keras_lrp_version', '?')} in file "
                f"format {version!r}; this keras-lrp ({__version__}) reads formats up to "
                f"{FORMAT_VERSION}. Upgrade keras-lrp to load it.")
        with tempfile.TemporaryDirectory() as tmp:
            archive.extract("model.keras", tmp)
            model = keras.models.load_model(os.path.join(tmp, "model.keras"),
                                            custom_objects=custom_objects, compile=False)
    if version == 1:  # format 1: the name and keyword arguments at the top level
        return {"name": saved["name"], "kwargs": _decode(saved["kwargs"])}, model
    return _decode(saved["config"]), model
