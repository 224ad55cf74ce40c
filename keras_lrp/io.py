"""HDF5 export of relevances, with the metadata needed to tell how they were made.

File layout (format version 1)::

    /                   attrs: keras_lrp_format = "keras-lrp-results", keras_lrp_format_version,
                        one attribute per metadata key (JSON text for anything but strings,
                        numbers and numeric arrays; those keys listed in keras_lrp_json_keys)
    /relevance/<name>   one dataset per analyzer, axis 0 = samples (resizable, chunked)
    /inputs, /predictions, /neurons   optional, axis 0 = samples

A file is written to ``<path>.tmp-<pid>`` and renamed onto ``path`` only when the writer closes
cleanly, so an interrupted run never leaves a half-written file at ``path``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import h5py
import numpy as np

FORMAT, FORMAT_VERSION = "keras-lrp-results", 1
_MARK, _VERSION, _JSON_KEYS = "keras_lrp_format", "keras_lrp_format_version", "keras_lrp_json_keys"
BATCH_KEYS = ("inputs", "predictions", "neurons")


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
    import tensorflow as tf

    from keras_lrp import __version__
    return {"keras_lrp_version": __version__, "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
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
        ``tensorflow_version``, ``keras_version`` and ``created`` (UTC, ISO 8601).

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


def _encode(metadata: Mapping[str, Any]) -> Dict[str, Any]:
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


def _decode(attrs) -> Dict[str, Any]:
    json_keys, out = set(json.loads(attrs.get(_JSON_KEYS, "[]"))), {}
    for key, value in attrs.items():
        if key not in (_MARK, _VERSION, _JSON_KEYS):
            value = value.decode() if isinstance(value, bytes) else value
            out[key] = json.loads(value) if key in json_keys else (
                value.item() if isinstance(value, np.generic) else value)
    return out


def _rows(name: str, value) -> np.ndarray:
    arr = np.asarray(value) if not isinstance(value, (list, tuple)) else None
    if arr is None or arr.ndim == 0 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be one numeric array with the batch axis first; got "
                         f"{type(value).__name__} of shape {np.shape(value)}. For a multi-input "
                         "model append each input's relevance under its own name ('lrp.z[0]').")
    return arr


class RelevanceWriter:
    """Write relevances batch by batch to HDF5; the file appears at ``path`` only on success.

    Per batch, call :meth:`append_inputs` once (inputs, predictions, explained neurons), then
    :meth:`append` once per analyzer. :meth:`append` also takes ``inputs=…`` etc.: they are
    written only when that analyzer is the first to reach those rows, else checked against the
    stored rows, so passing a batch's inputs with every analyzer never duplicates them.

    Writes go to ``<path>.tmp-<pid>`` in the same folder. A clean exit of the ``with`` block (or
    :meth:`close`) renames it onto ``path`` with ``os.replace``. An exception (KeyboardInterrupt
    included), a failed write, or garbage collection without :meth:`close` removes the temp
    file and leaves any earlier file at ``path`` untouched.

    Args:
        path: the results file (``.h5``); its folder must exist.
        metadata: the run's description (see :func:`metadata_for`); versions and creation
            time are added when missing.
        overwrite: replace an existing file at ``path`` (else FileExistsError).
        compression: h5py compression of the datasets (``None`` for none).

    Example:
        >>> with RelevanceWriter("run.h5", metadata_for(analyzers, model)) as out:
        ...     for xb in batches:
        ...         out.append_inputs(xb, predictions=model.predict_on_batch(xb))
        ...         for a in analyzers:
        ...             out.append(a.name, a.analyze(xb))
    """

    def __init__(self, path, metadata: Optional[Mapping[str, Any]] = None,
                 overwrite: bool = True, compression: Optional[str] = "gzip"):
        self.path, self._file, self._live = os.fspath(path), None, False
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"Folder {folder!r} for {self.path!r} does not exist.")
        if os.path.exists(self.path) and (not overwrite or os.path.isdir(self.path)):
            raise FileExistsError(f"{self.path!r} exists; pass overwrite=True (files only) or "
                                  "choose another path.")
        self.metadata = {**_versions(), **dict(metadata or {})}
        attrs, self.compression = _encode(self.metadata), compression
        self.tmp_path = f"{self.path}.tmp-{os.getpid()}"
        self._failed: Optional[BaseException] = None
        self._file, self._live = h5py.File(self.tmp_path, "w", track_order=True), True
        try:
            self._file.attrs.update({_MARK: FORMAT, _VERSION: FORMAT_VERSION, **attrs})
            self._file.create_group("relevance", track_order=True)
        except BaseException:
            self.abort()
            raise

    def __enter__(self) -> "RelevanceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):  # never commit from the garbage collector
        try:
            self.abort()
        except Exception:  # noqa: BLE001 - e.g. at interpreter shutdown
            pass

    def _open(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError(f"The writer for {self.path!r} is closed; open a new one.")
        return self._file

    def _count(self, key: str) -> int:
        return int(self._open()[key].shape[0]) if key in self._open() else 0

    def _write(self, items: Sequence[tuple]) -> None:
        """Append ``(key, array)`` pairs; a failure mid-way makes :meth:`close` discard all."""
        for key, arr in items:  # check every shape before touching the file
            if key in self._open() and self._file[key].shape[1:] != arr.shape[1:]:
                raise ValueError(f"'/{key}' holds rows of shape {self._file[key].shape[1:]}; got "
                                 f"a batch of shape {arr.shape}. Keep the trailing shape fixed.")
        try:
            for key, arr in items:
                if key not in self._file:
                    row = max(1, int(np.prod(arr.shape[1:])) * arr.dtype.itemsize)
                    self._file.create_dataset(
                        key, shape=(0,) + arr.shape[1:], dtype=arr.dtype,
                        maxshape=(None,) + arr.shape[1:], compression=self.compression,
                        chunks=(max(1, min(1024, 2 ** 20 // row)),) + arr.shape[1:])
                ds, start = self._file[key], self._count(key)
                ds.resize(start + arr.shape[0], axis=0)
                ds[start:] = arr
        except BaseException as exc:
            self._failed = exc
            raise

    def append_inputs(self, inputs=None, predictions=None, neurons=None) -> None:
        """Append one batch's inputs, model outputs and explained neuron indices (all (n, …))."""
        items = [(k, _rows(k, v)) for k, v in zip(BATCH_KEYS, (inputs, predictions, neurons))
                 if v is not None]
        if len({a.shape[0] for _, a in items}) > 1:
            raise ValueError(f"One batch needs the same number of rows everywhere; got "
                             f"{ {k: a.shape[0] for k, a in items} }.")
        self._write(items)

    def append(self, name: str, relevance, inputs=None, predictions=None, neurons=None) -> None:
        """Append one batch of one analyzer's relevance to ``/relevance/<name>``.

        Args:
            name: the analyzer's name (no "/").
            relevance: (n, …) relevance of the batch.
            inputs: optional (n, …) inputs (see the class docstring); likewise predictions
                and neurons.
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"Relevance name must be a non-empty string without '/'; got "
                             f"{name!r}.")
        key, arr = f"relevance/{name}", _rows(f"relevance {name!r}", relevance)
        start, n, items = self._count(key), arr.shape[0], [(key, arr)]
        for k, value in zip(BATCH_KEYS, (inputs, predictions, neurons)):
            if value is None:
                continue
            value, stored = _rows(k, value), self._count(k)
            if value.shape[0] != n:
                raise ValueError(f"{k} has {value.shape[0]} rows but relevance {name!r} {n}.")
            if stored == start:  # this analyzer is the first to reach these rows
                items.append((k, value))
            elif stored < start + n or not np.array_equal(
                    self._file[k][start:start + n], value, equal_nan=True):
                raise ValueError(f"'/{k}' holds {stored} rows, which do not line up with (or "
                                 f"differ from) rows {start}..{start + n} of {name!r}; append "
                                 "each batch's values once, in order.")
        self._write(items)

    def completed_rows(self) -> Dict[str, int]:
        """Rows written so far per dataset, e.g. ``{"relevance/lrp.z": 64, "inputs": 64}``."""
        keys = [f"relevance/{k}" for k in self._open()["relevance"]]
        return {k: self._count(k) for k in keys + [k for k in BATCH_KEYS if k in self._file]}

    def close(self) -> None:
        """Finish the file and move it onto ``path`` (nothing to do once closed)."""
        if self._file is None:
            return
        if self._failed is not None:
            failed = self._failed
            self.abort()
            raise RuntimeError(f"Not saving {self.path!r}: an earlier write failed ({failed!r});"
                               " any earlier file there is untouched.") from failed
        try:
            self._file.close()
            self._file = None
            with open(self.tmp_path, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(self.tmp_path, self.path)
            self._live = False
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Discard everything written: close and remove the temp file; ``path`` is untouched."""
        f, self._file = getattr(self, "_file", None), None
        live, self._live = getattr(self, "_live", False), False
        try:
            if f is not None:
                f.close()
        finally:
            if live and os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)


@dataclasses.dataclass
class Results:
    """A loaded results file: relevance per analyzer, optional batch data, metadata."""

    relevance: Dict[str, np.ndarray]
    inputs: Optional[np.ndarray] = None
    predictions: Optional[np.ndarray] = None
    neurons: Optional[np.ndarray] = None
    metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)


def save_relevances(path, relevances: Mapping[str, np.ndarray], inputs=None, predictions=None,
                    neurons=None, metadata: Optional[Mapping[str, Any]] = None,
                    overwrite: bool = True) -> None:
    """Write a whole set of relevances at once (atomically; see :class:`RelevanceWriter`).

    Args:
        path: the results file.
        relevances: analyzer name → (N, …) relevance.
        inputs: optional (N, …) inputs; likewise predictions and neurons.
        metadata: the run's description, e.g. from :func:`metadata_for`.
        overwrite: replace an existing file.

    Example:
        >>> save_relevances("run.h5", {"lrp.z": rz}, inputs=x, metadata={"model_name": "cnn"})
    """
    if not relevances:
        raise ValueError("relevances is empty; give {analyzer name: relevance array}.")
    batch = dict(zip(BATCH_KEYS, (inputs, predictions, neurons)))
    rows = {k: np.shape(v)[:1] for k, v in {**relevances, **batch}.items() if v is not None}
    if len(set(rows.values())) > 1:
        raise ValueError(f"Every array needs the same number of samples (axis 0); got {rows}.")
    with RelevanceWriter(path, metadata, overwrite=overwrite) as writer:
        if any(v is not None for v in batch.values()):
            writer.append_inputs(**batch)
        for name, relevance in relevances.items():
            writer.append(name, relevance)


def load_relevances(path) -> Results:
    """Read a file written by :class:`RelevanceWriter` or :func:`save_relevances`.

    Args:
        path: the results file.

    Returns:
        :class:`Results`, relevances in the order they were first written.

    Example:
        >>> res = load_relevances("run.h5"); res.relevance["lrp.z"].shape
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No results file at {path!r}; write one with save_relevances "
                                "or RelevanceWriter.")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path!r} is not an HDF5 file, so not a keras-lrp results file.")
    with h5py.File(path, "r") as f:
        mark = f.attrs.get(_MARK)
        if (mark.decode() if isinstance(mark, bytes) else mark) != FORMAT or not isinstance(
                f.get("relevance"), h5py.Group):
            raise ValueError(f"{path!r} is an HDF5 file but not a keras-lrp results file (no "
                             f"{_MARK}={FORMAT!r} attribute or no /relevance group).")
        if int(f.attrs.get(_VERSION, 0)) > FORMAT_VERSION:
            raise ValueError(f"{path!r} uses results format {f.attrs[_VERSION]}; this keras-lrp "
                             f"reads up to {FORMAT_VERSION}. Upgrade keras-lrp.")
        return Results(relevance={k: v[()] for k, v in f["relevance"].items()},
                       **{k: f[k][()] if k in f else None for k in BATCH_KEYS},
                       metadata=_decode(f.attrs))
