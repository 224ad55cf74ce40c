""":class:`RelevanceWriter`: relevances written batch by batch, kept through any stop, resumed
by a later run, and put at their path only when the whole run is done."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

from keras_lrp.io import journal, lock
from keras_lrp.io.appending import BatchAppender
from keras_lrp.io.atomic import replace
from keras_lrp.io.layout import expected_keys, partial_path
from keras_lrp.io.metadata import _versions, encode
from keras_lrp.io.resume import open_work


class RelevanceWriter(BatchAppender):
    """Write relevances batch by batch to HDF5; the file appears at ``path`` only on success.

    Per batch, call :meth:`append_inputs` once (inputs, predictions, explained neurons), then
    :meth:`append` once per analyzer (:class:`~keras_lrp.io.appending.BatchAppender`).

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
    its metadata equals this run's (every key but ``created``; :mod:`keras_lrp.io.resume`):
    :attr:`resumed_rows` (also each value of :meth:`completed_rows`) says how many input rows to
    skip, :attr:`recovery` what was cut from a damaged shard. A different or unreadable work
    folder, or one made on another Keras backend (unless ``other_backend=True``), raises
    ValueError. Without ``resume`` a run starts at row 0 and first discards an older
    ``<path>.partial``.

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
        self.compression, expected = compression, expected_keys(self.metadata)
        self.tmp_path, self.kept_rows = f"{self.path}.tmp-{lock.tag()}", None
        work = journal.WorkFolder(partial_path(self.path), float(sync_every))
        self._lock = lock.OutputLock(self.path).acquire()
        try:
            self.removed_stale = lock.remove_stale(self.path, work.path)
            rows, self.recovery = open_work(work, encode(self.metadata), expected, resume,
                                            other_backend)
        except BaseException:
            self._lock.release()
            raise
        super().__init__(self.path, work, expected, resumed_rows=rows)

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
