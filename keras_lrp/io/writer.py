""":class:`RelevanceWriter`: relevances written batch by batch, kept through any stop, resumed
by a later run, and put at their path only when the whole run is done."""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np

from keras_lrp.io import journal, lock
from keras_lrp.io.atomic import replace
from keras_lrp.io.layout import (
    FORMAT,
    FORMAT_VERSION,
    check_format,
    expected_keys,
    partial_path,
    rows_of,
)
from keras_lrp.io.metadata import (
    _MARK,
    _VERSION,
    BACKEND_KEYS,
    _versions,
    decode,
    differing_keys,
    encode,
)


class RelevanceWriter:
    """Write relevances batch by batch to HDF5; the file appears at ``path`` only on success.

    Per batch, call :meth:`append_inputs` once (inputs, predictions, explained neurons), then
    :meth:`append` once per analyzer. :meth:`append` also takes ``inputs=…`` etc.: they are
    written only when that analyzer is the first to reach those rows, else checked against the
    stored rows, so passing a batch's inputs with every analyzer never duplicates them.

    **What survives a stop.** Every batch that is whole (written for every dataset and every
    analyzer in ``metadata["analyzers"]``) goes to the work folder ``<path>.partial/`` as one
    shard, renamed into place (:mod:`keras_lrp.io.journal`). So a stop of any kind — an
    exception, Ctrl-C, SIGTERM, SIGKILL, the out-of-memory killer — loses at most the batch in
    flight, and a power loss at most the batches of the last ``sync_every`` seconds (the shards
    are fsynced that often). A clean exit of the ``with`` block (or :meth:`close`) merges the
    shards into one file, renames it onto ``path`` and removes the folder; until then an
    earlier file at ``path`` is untouched. An exception inside the ``with`` block keeps the
    folder (:meth:`keep_partial`); so does garbage collection without :meth:`close`.
    :meth:`abort` discards what this writer added.

    **One writer per path.** The writer holds ``<path>.lock`` (:class:`~keras_lrp.io.lock.
    OutputLock`); a second writer for the same path raises :class:`~keras_lrp.io.lock.
    LockedError` naming the holder's pid. It removes temporary files of earlier runs of
    ``path`` whose pid is gone (:attr:`removed_stale`).

    **Resuming.** ``resume=True`` continues ``<path>.partial`` whatever process wrote it, if
    its metadata equals this run's (every key but ``created``): :attr:`resumed_rows` (also each
    value of :meth:`completed_rows`) says how many input rows to skip. A work folder whose
    header differs or cannot be read raises ValueError naming it and the key; it is never
    silently started over. A shard cut short or damaged ends what is resumed there
    (:attr:`recovery` says so); the rows before it are kept. One made on another Keras backend
    (or another version of it) is refused too, unless ``other_backend=True``: the backends agree
    to about 1e-6 of max |R| in float32, not bit for bit. Without ``resume`` a run starts at
    row 0 and first discards an older ``<path>.partial``.

    Args:
        path: the results file (``.h5``); its folder must exist.
        metadata: the run's description (see :func:`~keras_lrp.io.metadata.metadata_for`);
            versions and creation time are added when missing.
        overwrite: replace an existing file at ``path`` (else FileExistsError).
        compression: h5py compression of the final file's datasets (``None`` for none).
        resume: continue ``<path>.partial`` if there is one.
        other_backend: let ``resume`` continue a work folder made on another backend.
        sync_every: fsync the shards at most this often, in seconds (0: after every batch).

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
                 resume: bool = False, other_backend: bool = False, sync_every: float = 5.0):
        self.path, self._lock, self._open_state = os.fspath(path), None, False
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"Folder {folder!r} for {self.path!r} does not exist.")
        if os.path.exists(self.path) and (not overwrite or os.path.isdir(self.path)):
            raise FileExistsError(f"{self.path!r} exists; pass overwrite=True (files only) or "
                                  "choose another path.")
        if not sync_every >= 0:
            raise ValueError(f"sync_every must be >= 0 seconds; got {sync_every!r}.")
        self.metadata = {**_versions(), **dict(metadata or {})}
        self._attrs, self.compression = encode(self.metadata), compression
        self.partial_path = partial_path(self.path)
        self.tmp_path = f"{self.path}.tmp-{lock.tag()}"
        self._expected = expected_keys(self.metadata)
        self._failed: Optional[BaseException] = None
        self._work = journal.WorkFolder(self.partial_path, float(sync_every))
        self.resumed_rows, self.kept_rows, self.recovery = 0, None, None
        self._lock = lock.OutputLock(self.path).acquire()
        try:
            self.removed_stale = lock.remove_stale(self.path, self.partial_path)
            if resume and os.path.exists(self.partial_path):
                self._check_partial(self._attrs, BACKEND_KEYS if other_backend else ())
                self.recovery = self._work.open()
                self.resumed_rows = self._complete()
                if any(n != self.resumed_rows for n in self._work.disk.values()):
                    self._work.cut(self.resumed_rows)
            else:
                journal.discard(self.partial_path)
                self._work.create({_MARK: FORMAT, _VERSION: FORMAT_VERSION, **self._attrs})
            self._open_state = True
        except BaseException:
            self._lock.release()
            raise

    # ---------------------------------------------------------------- the work folder

    def _check_partial(self, attrs: Mapping[str, Any], ignore=()) -> None:
        """Raise ValueError unless the work folder's header is readable and has this metadata."""
        p, remedy = self.partial_path, "delete it or drop resume=True (--resume)"
        try:
            with h5py.File(self._work.header(), "r") as f:
                check_format(f, p)
                old, new = decode(f.attrs), decode(attrs)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"Cannot resume from {p!r}: it is not a readable keras-lrp results "
                             f"file ({e}); it may have been cut short. To start over, {remedy}."
                             ) from None
        keys = differing_keys(old, new, ignore)
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

    # ---------------------------------------------------------------- appending

    def _check_open(self) -> None:
        if not self._open_state:
            raise RuntimeError(f"The writer for {self.path!r} is closed; open a new one.")

    def _count(self, key: str) -> int:
        self._check_open()
        return self._work.index.count(key)

    def _complete(self, counts: Optional[Mapping[str, int]] = None) -> int:
        """Rows written for every dataset and every analyzer named in the metadata."""
        if counts is None:
            counts = {k: self._work.index.count(k) for k in self._work.index.pieces}
        return journal.whole_rows(counts, self._expected)

    def _write(self, items: Sequence[Tuple[str, np.ndarray]]) -> None:
        """Append ``(key, array)`` pairs; a batch that becomes whole goes to disk as a shard."""
        if self._failed is not None:
            raise RuntimeError(f"An earlier write to {self.path!r} failed ({self._failed!r}); "
                               "close the writer (it keeps the whole batches in "
                               f"{self.partial_path!r}) and resume.")
        self._check_open()
        for key, arr in items:  # check every shape before taking any row
            spec = self._work.index.specs.get(key)
            if spec is not None and tuple(spec[0]) != arr.shape[1:]:
                raise ValueError(f"'/{key}' holds rows of shape {tuple(spec[0])}; got a batch of "
                                 f"shape {arr.shape}. Keep the trailing shape fixed.")
            if spec is None and self.resumed_rows:
                raise ValueError(f"{self.partial_path!r} holds {self.resumed_rows} rows without "
                                 f"'/{key}'; append the same data as the interrupted run, or "
                                 "start over without resume.")
        try:
            for key, arr in items:
                self._work.add(key, arr)
            if self._complete() > self._complete(self._work.disk) or \
                    self._work.pending_bytes >= journal.SHARD_BYTES:
                self._work.commit()
        except BaseException as exc:
            self._failed = exc
            raise

    def append_inputs(self, inputs=None, predictions=None, neurons=None) -> None:
        """Append one batch's inputs, model outputs and explained neuron indices (all (n, …))."""
        items = [(k, rows_of(k, v)) for k, v in zip(
            ("inputs", "predictions", "neurons"), (inputs, predictions, neurons)) if v is not None]
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
        key, arr = f"relevance/{name}", rows_of(f"relevance {name!r}", relevance)
        start, n, items = self._count(key), arr.shape[0], [(key, arr)]
        for k, value in zip(("inputs", "predictions", "neurons"), (inputs, predictions, neurons)):
            if value is None:
                continue
            value, stored = rows_of(k, value), self._count(k)
            if value.shape[0] != n:
                raise ValueError(f"{k} has {value.shape[0]} rows but relevance {name!r} {n}.")
            if stored == start:  # this analyzer is the first to reach these rows
                items.append((k, value))
            elif stored < start + n or not np.array_equal(
                    self._work.index.rows(k, start, start + n), value, equal_nan=True):
                raise ValueError(f"'/{k}' holds {stored} rows, which do not line up with (or "
                                 f"differ from) rows {start}..{start + n} of {name!r}; append "
                                 "each batch's values once, in order.")
        self._write(items)

    def completed_rows(self) -> Dict[str, int]:
        """Rows written so far per dataset, e.g. ``{"relevance/lrp.z": 64, "inputs": 64}``.

        Right after a resume every value is :attr:`resumed_rows`, the input rows to skip.
        """
        self._check_open()
        index = self._work.index
        return {k: index.count(k) for k in index.pieces}

    # ---------------------------------------------------------------- ending

    def close(self) -> None:
        """Merge the work folder into one file, move it onto ``path`` and remove the folder
        (nothing to do once closed). After a failed write it keeps the folder and raises."""
        if not self._open_state:
            return
        if self._failed is not None:
            failed, kept = self._failed, self.keep_partial()
            raise RuntimeError(
                f"Not saving {self.path!r}: an earlier write failed ({failed!r}); any earlier "
                f"file there is untouched. The {self.kept_rows} whole rows are in {kept!r}: "
                "resume to continue.") from failed
        try:
            self._work.commit()
            self._work.merge(self.tmp_path, self.compression)
            replace(self.tmp_path, self.path)
            self._work.remove()
        except BaseException:
            if os.path.exists(self.tmp_path):
                os.remove(self.tmp_path)
            self.keep_partial()
            raise
        self._end()

    def keep_partial(self) -> Optional[str]:
        """Stop: drop the rows of the batch in flight, fsync the shards and release the lock;
        ``<path>.partial`` keeps every whole batch and ``path`` is untouched.

        Returns:
            The work folder's path (its whole rows in :attr:`kept_rows`), or None if the
            writer was already closed.
        """
        if not self._open_state:
            return None
        self._work.drop_pending()
        self.kept_rows = self._complete(self._work.disk)
        try:
            self._work.sync()
        finally:
            self._end()
        return self.partial_path

    def abort(self) -> None:
        """Discard what this writer wrote (all of ``<path>.partial`` unless it resumed one);
        ``path`` is untouched."""
        if not self._open_state:
            return
        try:
            self._work.remove_own()
        finally:
            self._end()

    def _end(self) -> None:
        self._open_state = False
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> RelevanceWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            try:
                self.keep_partial()
            except Exception:  # noqa: BLE001 - the original exception is the one to report
                pass
        return False

    def __del__(self):  # never commit from the garbage collector, and never discard
        try:
            self.keep_partial()
        except Exception:  # noqa: BLE001 - e.g. at interpreter shutdown
            pass
