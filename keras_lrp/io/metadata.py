"""Metadata of keras-lrp results files: what a run was, its model hash, HDF5 attribute coding.

Used by :mod:`keras_lrp.io.results` (which re-exports :func:`metadata_for` and
:func:`model_weights_hash`), kept apart to keep that module short.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from keras_lrp.version import __version__

_MARK, _VERSION, _JSON_KEYS = "keras_lrp_format", "keras_lrp_format_version", "keras_lrp_json_keys"
VOLATILE_KEYS = ("created",)  # metadata keys a resumed run may change
#: Keys naming the framework a run used; ``--resume`` refuses another unless told otherwise.
BACKEND_KEYS = ("backend", "backend_version")


def model_weights_hash(model) -> str:
    """SHA-256 over every weight array of ``model``: dtype, shape and bytes, in order.

    Args:
        model: a Keras model (its ``weights``), or a sequence of arrays.

    Returns:
        The hex digest; it changes when any weight value, dtype, shape or their order changes.

    Example:
        >>> meta = {"model_weights_sha256": model_weights_hash(model)}
    """
    digest = hashlib.sha256()
    for w in (model.weights if hasattr(model, "weights") else model):
        arr = np.ascontiguousarray(w.numpy() if hasattr(w, "numpy") else np.asarray(w))
        digest.update(f"{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _versions() -> Dict[str, str]:
    import keras

    from keras_lrp import backend

    return {"keras_lrp_version": __version__, "backend": backend.NAME,
            "backend_version": backend.version(), "keras_version": keras.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def metadata_for(analyzers: Sequence[Any], model, kwargs_by_name: Optional[Mapping] = None
                 ) -> Dict[str, Any]:
    """Metadata describing a run: analyzers and their keywords, the model, versions, time.

    Args:
        analyzers: :class:`~keras_lrp.Analyzer` objects, analyzer names, or
            ``(label, analyzer name, kwargs)`` triples (the label names the dataset).
        model: the explained Keras model.
        kwargs_by_name: label → the keyword arguments given to ``create_analyzer`` (they
            override a triple's kwargs).

    Returns:
        ``analyzers`` (labels), ``analyzer_names`` (label → analyzer name), ``analyzer_kwargs``,
        ``analyzer_settings`` (neuron selection, output relevance, for Analyzer objects),
        ``model_name``, ``model_weights_sha256``, ``keras_lrp_version``,
        ``backend`` (the Keras backend: ``tensorflow``, ``jax`` or ``torch``),
        ``backend_version``, ``keras_version`` and ``created`` (UTC, ISO 8601).

    Example:
        >>> meta = metadata_for([eps], model, {"lrp.epsilon": {"epsilon": 1e-3}})
    """
    rows = [(a, a, {}) if isinstance(a, str) else tuple(a) if isinstance(a, (tuple, list))
            else (a.name, a.name, {}) for a in analyzers]
    if any(len(r) != 3 for r in rows):
        raise ValueError(f"Give Analyzer objects, names or (label, name, kwargs) triples; got "
                         f"{[r for r in rows if len(r) != 3]}.")
    labels, kwargs_by_name = [str(r[0]) for r in rows], dict(kwargs_by_name or {})
    if len(set(labels)) != len(labels):
        raise ValueError(f"Analyzer labels must be unique (each names a dataset); got {labels}.")
    if set(kwargs_by_name) - set(labels):
        raise ValueError(f"kwargs_by_name has {sorted(set(kwargs_by_name) - set(labels))}, "
                         f"which are not among the analyzers {labels}.")
    settings = {a.name: {"neuron_selection_mode": a.neuron_selection_mode,
                         "output_relevance": getattr(a, "output_relevance", None)}
                for a in analyzers if hasattr(a, "neuron_selection_mode")}
    return {"analyzers": labels, "analyzer_names": {lb: str(r[1]) for lb, r in zip(labels, rows)},
            "analyzer_kwargs": {lb: dict(kwargs_by_name.get(lb, r[2] or {}))
                                for lb, r in zip(labels, rows)},
            "analyzer_settings": settings, "model_name": getattr(model, "name", "model"),
            "model_weights_sha256": model_weights_hash(model), **_versions()}


def encode(metadata: Mapping[str, Any]) -> Dict[str, Any]:
    attrs, json_keys = {}, []
    for key, value in metadata.items():
        if not isinstance(key, str) or key in (_MARK, _VERSION, _JSON_KEYS):
            raise ValueError(f"Metadata key {key!r} is not allowed: use strings other than "
                             f"{(_MARK, _VERSION, _JSON_KEYS)}.")
        if (isinstance(value, (str, int, float, np.number)) and not isinstance(value, bool)) or (
                isinstance(value, np.ndarray) and value.dtype.kind in "iuf"):
            attrs[key] = value
        else:  # numpy values become lists/scalars, anything else its repr
            attrs[key] = json.dumps(value, default=lambda o: o.tolist() if isinstance(
                o, (np.ndarray, np.generic)) else repr(o))
            json_keys.append(key)
    attrs[_JSON_KEYS] = json.dumps(json_keys)
    return attrs


def decode(attrs) -> Dict[str, Any]:
    json_keys, out = set(json.loads(attrs.get(_JSON_KEYS, "[]"))), {}
    for key, value in attrs.items():
        if key not in (_MARK, _VERSION, _JSON_KEYS):
            value = value.decode() if isinstance(value, bytes) else value
            out[key] = json.loads(value) if key in json_keys else (
                value.item() if isinstance(value, np.generic) else value)
    return out


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any],
                    ignore: Sequence[str] = ()) -> List[str]:
    """Metadata keys (but :data:`VOLATILE_KEYS` and ``ignore``) whose values differ or that only
    one side has."""
    def same(a, b) -> bool:
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))
        return type(a) is type(b) and a == b
    keys = list(new) + [k for k in old if k not in new]
    return [k for k in keys if k not in VOLATILE_KEYS and k not in ignore
            and not (k in old and k in new and same(old[k], new[k]))]
