"""HDF5 export of relevances, with the metadata needed to tell how they were made.

File layout (format version 1)::

    /                   attrs: keras_lrp_format = "keras-lrp-results", keras_lrp_format_version,
                        one attribute per metadata key (JSON text for anything but strings,
                        numbers and numeric arrays; those keys listed in keras_lrp_json_keys)
    /relevance/<name>   one dataset per analyzer, axis 0 = samples (resizable, chunked)
    /inputs, /predictions, /neurons   optional, axis 0 = samples

A file is written to ``<path>.tmp-<pid>`` and renamed onto ``path`` only when the writer closes
cleanly, so an interrupted run never leaves a half-written file at ``path``. An interrupted or
failed run keeps its whole batches in ``<path>.partial``, which ``RelevanceWriter(...,
resume=True)`` continues (see :class:`RelevanceWriter`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from keras_lrp.io.atomic import replace
from keras_lrp.io.metadata import (
    _MARK,
    _VERSION,
    BACKEND_KEYS,
    _decode,
    _differing_keys,
    _encode,
    _versions,
    metadata_for,
    model_weights_hash,
)

__all__ = ["RelevanceWriter", "Results", "load_relevances", "metadata_for", "model_weights_hash",
           "partial_path", "save_relevances"]

FORMAT, FORMAT_VERSION = "keras-lrp-results", 1
BATCH_KEYS = ("inputs", "predictions", "neurons")


def partial_path(path) -> str:
    """Where :class:`RelevanceWriter` keeps the whole batches of an interrupted run."""
    return f"{os.fspath(path)}.partial"


def _rows(name: str, value) -> np.ndarray:
    arr = np.asarray(value) if not isinstance(value, (list, tuple)) else None
    if arr is None or arr.ndim == 0 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be one numeric array with the batch axis first; got "
                         f"{type(value).__name__} of shape {np.shape(value)}. For a multi-input "
                         "model append each input's relevance under its own name ('lrp.z[0]').")
    return arr


def _datasets(f: h5py.File) -> List[str]:
    return [f"relevance/{k}" for k in f["relevance"]] + [k for k in BATCH_KEYS if k in f]


def _check_format(f: h5py.File, path: str) -> None:
    mark = f.attrs.get(_MARK)
    if (mark.decode() if isinstance(mark, bytes) else mark) != FORMAT or not isinstance(
            f.get("relevance"), h5py.Group):
        raise ValueError(f"{path!r} is an HDF5 file but not a keras-lrp results file (no "
                         f"{_MARK}={FORMAT!r} attribute or no /relevance group).")
    if int(f.attrs.get(_VERSION, 0)) > FORMAT_VERSION:
        raise ValueError(f"{path!r} uses results format {f.attrs[_VERSION]}; this keras-lrp "
                         f"reads up to {FORMAT_VERSION}. Upgrade keras-lrp.")


class RelevanceWriter:
    """Write relevances batch by batch to HDF5; the file appears at ``path`` only on success.

    Per batch, call :meth:`append_inputs` once (inputs, predictions, explained neurons), then
    :meth:`append` once per analyzer. :meth:`append` also takes ``inputs=…`` etc.: they are
    written only when that analyzer is the first to reach those rows, else checked against the
    stored rows, so passing a batch's inputs with every analyzer never duplicates them.

    Writes go to ``<path>.tmp-<pid>``, flushed after each whole batch. A clean exit of the
    ``with`` block (or :meth:`close`) renames it onto ``path`` and removes ``<path>.partial``.
    An exception (KeyboardInterrupt included) or a failed write leaves ``path`` untouched and
    keeps the whole rows — written for every dataset and every analyzer in
    ``metadata["analyzers"]`` — in ``<path>.partial`` (:meth:`keep_partial`). :meth:`abort`, or
    garbage collection without :meth:`close`, discards everything.

    ``resume=True`` continues a ``<path>.partial`` whose metadata equals this run's (every key
    but ``created``): the writer appends to a copy, so the partial file survives a hard kill,
    and :attr:`resumed_rows` (also each value of :meth:`completed_rows`) says how many input
    rows to skip. A partial file that differs or cannot be read raises ValueError naming it and
    the key; it is never silently started over. One made on another Keras backend (or another
    version of it) is refused too, unless ``other_backend=True``: the backends agree to about
    1e-6 of max |R| in float32, not bit for bit. Without ``resume`` a run starts at row 0 and
    its own partial file replaces an older one.

    Args:
        path: the results file (``.h5``); its folder must exist.
        metadata: the run's description (see :func:`metadata_for`); versions and creation
            time are added when missing.
        overwrite: replace an existing file at ``path`` (else FileExistsError).
        compression: h5py compression of the datasets (``None`` for none).
        resume: continue ``<path>.partial`` if there is one.
        other_backend: let ``resume`` continue a partial file made on another backend.

    Example:
        >>> with RelevanceWriter("run.h5", metadata_for(analyzers, model), resume=True) as out:
        ...     for start in range(out.resumed_rows, len(x), 64):
        ...         xb = x[start:start + 64]
        ...         out.append_inputs(xb, predictions=model.predict_on_batch(xb))
        ...         for a in analyzers:
        ...             out.append(a.name, a.analyze(xb))
    """

    def __init__(self, path: Union[str, os.PathLike], metadata: Optional[Mapping[str, Any]] = None,
                 overwrite: bool = True, compression: Optional[str] = "gzip",
                 resume: bool = False, other_backend: bool = False):
        self.path, self._file, self._live = os.fspath(path), None, False
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"Folder {folder!r} for {self.path!r} does not exist.")
        if os.path.exists(self.path) and (not overwrite or os.path.isdir(self.path)):
            raise FileExistsError(f"{self.path!r} exists; pass overwrite=True (files only) or "
                                  "choose another path.")
        self.metadata = {**_versions(), **dict(metadata or {})}
        attrs, self.compression = _encode(self.metadata), compression
        self.tmp_path, self.partial_path = f"{self.path}.tmp-{os.getpid()}", partial_path(path)
        names = self.metadata.get("analyzers")
        self._expected = [f"relevance/{n}" for n in names if isinstance(n, str)] if isinstance(
            names, (list, tuple)) else []
        self._failed: Optional[BaseException] = None
        self._rows: Dict[str, int] = {}  # rows written in full, per dataset
        self.resumed_rows, self.kept_rows, self._flushed = 0, None, 0
        resuming = resume and os.path.exists(self.partial_path)
        if resuming:
            self._check_partial(attrs, BACKEND_KEYS if other_backend else ())
        self._live = True  # from here on abort() removes the temp file
        try:
            if resuming:
                shutil.copyfile(self.partial_path, self.tmp_path)
                self._file = h5py.File(self.tmp_path, "r+")
                self._rows = {k: int(self._file[k].shape[0]) for k in _datasets(self._file)}
                self.resumed_rows = self._flushed = self._complete()
                self._truncate(self.resumed_rows)
            else:
                self._file = h5py.File(self.tmp_path, "w", track_order=True)
                self._file.attrs.update({_MARK: FORMAT, _VERSION: FORMAT_VERSION, **attrs})
                self._file.create_group("relevance", track_order=True)
        except BaseException:
            self.abort()
            raise

    def _check_partial(self, attrs: Mapping[str, Any], ignore=()) -> None:
        """Raise ValueError unless the partial file is readable and made with this metadata."""
        p, remedy = self.partial_path, "delete it or drop resume=True (--resume)"
        try:
            with h5py.File(p, "r") as f:
                _check_format(f, p)
                old, new = _decode(f.attrs), _decode(attrs)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"Cannot resume from {p!r}: it is not a readable keras-lrp results "
                             f"file ({e}); it may have been cut short. To start over, {remedy}."
                             ) from None
        keys = _differing_keys(old, new, ignore)
        if any(k in BACKEND_KEYS for k in keys):
            raise ValueError(
                f"Cannot resume from {p!r}: it was made on Keras backend "
                f"{old.get('backend', 'tensorflow')} {old.get('backend_version', '')}, this run "
                f"uses {new.get('backend')} {new.get('backend_version')}. Rerun on that backend "
                "(--backend, KERAS_BACKEND), or pass other_backend=True "
                "(--resume-other-backend) to continue anyway; or, to start over, "
                f"{remedy}.")
        if keys:
            shown = "; ".join(f"{k}: {repr(old.get(k, '<missing>'))[:80]} there, "
                              f"{repr(new.get(k, '<missing>'))[:80]} now" for k in keys[:3])
            raise ValueError(f"Cannot resume from {p!r}: its metadata differs from this run's in "
                             f"{keys} ({shown}). Rerun with its settings; or, to start over, "
                             f"{remedy}.")

    def __enter__(self) -> RelevanceWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            try:
                self.keep_partial()
            except Exception:  # noqa: BLE001 - keep_partial has discarded the file; the
                pass  # original exception is the one to report
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
        self._open()
        return self._rows.get(key, 0)

    def _complete(self) -> int:
        """Rows written for every dataset and every analyzer named in the metadata."""
        keys = set(_datasets(self._open())) | set(self._expected)
        return min((self._rows.get(k, 0) for k in keys), default=0)

    def _truncate(self, n: int) -> None:
        for key in _datasets(self._open()):
            if self._file[key].shape[0] != n:
                self._file[key].resize(n, axis=0)
            self._rows[key] = n

    def _write(self, items: Sequence[tuple]) -> None:
        """Append ``(key, array)`` pairs; after a failure only the whole rows before it are kept."""
        if self._failed is not None:
            raise RuntimeError(f"An earlier write to {self.path!r} failed ({self._failed!r}); "
                               "close the writer (it keeps the whole batches in "
                               f"{self.partial_path!r}) and resume.")
        for key, arr in items:  # check every shape before touching the file
            if key in self._open() and self._file[key].shape[1:] != arr.shape[1:]:
                raise ValueError(f"'/{key}' holds rows of shape {self._file[key].shape[1:]}; got "
                                 f"a batch of shape {arr.shape}. Keep the trailing shape fixed.")
            if key not in self._file and self.resumed_rows:
                raise ValueError(f"{self.partial_path!r} holds {self.resumed_rows} rows without "
                                 f"'/{key}'; append the same data as the interrupted run, or "
                                 "start over without resume.")
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
                self._rows[key] = start + arr.shape[0]
            if self._complete() > self._flushed:  # a whole batch more: put it on disk
                self._file.flush()
                self._flushed = self._complete()
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
        """Rows written so far per dataset, e.g. ``{"relevance/lrp.z": 64, "inputs": 64}``.

        Right after a resume every value is :attr:`resumed_rows`, the input rows to skip.
        """
        return {k: self._count(k) for k in _datasets(self._open())}

    def close(self) -> None:
        """Finish the file, move it onto ``path`` and remove ``<path>.partial`` (nothing to do
        once closed). After a failed write it keeps the partial file instead and raises."""
        if self._file is None:
            return
        if self._failed is not None:
            failed, kept = self._failed, None
            try:
                kept = self.keep_partial()
            except Exception:  # noqa: BLE001 - reported below; the file is discarded
                pass
            raise RuntimeError(
                f"Not saving {self.path!r}: an earlier write failed ({failed!r}); any earlier "
                "file there is untouched. " + (f"The {self.kept_rows} whole rows are in {kept!r}:"
                                               " resume to continue." if kept else "")) from failed
        try:
            self._file.close()
            self._file = None
            replace(self.tmp_path, self.path)
            self._live = False
            if os.path.exists(self.partial_path):
                os.remove(self.partial_path)
        except BaseException:
            self.abort()
            raise

    def keep_partial(self) -> Optional[str]:
        """Stop after a failure: cut every dataset back to the whole rows, close, and rename the
        temp file onto ``<path>.partial`` (replacing an older one); ``path`` is untouched.

        Returns:
            The partial file's path (its row count in :attr:`kept_rows`), or None if the
            writer was already closed. If this fails too, everything is discarded.
        """
        if self._file is None:
            return None
        try:
            self.kept_rows = self._complete()
            self._truncate(self.kept_rows)
            self._file.close()
            self._file = None
            replace(self.tmp_path, self.partial_path)
            self._live = False
            return self.partial_path
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


def save_relevances(path: Union[str, os.PathLike], relevances: Mapping[str, np.ndarray],
                    inputs: Optional[np.ndarray] = None, predictions: Optional[np.ndarray] = None,
                    neurons: Optional[np.ndarray] = None,
                    metadata: Optional[Mapping[str, Any]] = None,
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
    writer = RelevanceWriter(path, metadata, overwrite=overwrite)
    try:  # one batch: nothing worth keeping in a partial file on failure
        if any(v is not None for v in batch.values()):
            writer.append_inputs(**batch)
        for name, relevance in relevances.items():
            writer.append(name, relevance)
    except BaseException:
        writer.abort()
        raise
    writer.close()


def load_relevances(path: Union[str, os.PathLike]) -> Results:
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
        _check_format(f, path)
        return Results(relevance={k: v[()] for k, v in f["relevance"].items()},
                       **{k: f[k][()] if k in f else None for k in BATCH_KEYS},
                       metadata=_decode(f.attrs))
