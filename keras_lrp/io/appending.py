""":class:`BatchAppender`: the appending half of :class:`~keras_lrp.io.writer.RelevanceWriter`.

It checks each batch against the rows already stored (shapes, and inputs passed with more
than one analyzer), adds it to the run's work folder (:class:`~keras_lrp.io.journal.
WorkFolder`) and commits a batch to disk as one shard once it is whole: written for every
dataset and every analyzer the metadata names. Opening, ending and resuming the work folder
are the writer's (:mod:`keras_lrp.io.writer`, :mod:`keras_lrp.io.resume`).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_lrp.io import journal
from keras_lrp.io.layout import rows_of


class BatchAppender:
    """Append batches of rows to a work folder; a batch that becomes whole goes to disk.

    Per batch, call :meth:`append_inputs` once (inputs, predictions, explained neurons), then
    :meth:`append` once per analyzer. :meth:`append` also takes ``inputs=…`` etc.: they are
    written only when that analyzer is the first to reach those rows, else checked against the
    stored rows, so passing a batch's inputs with every analyzer never duplicates them.

    Args:
        path: the results file the rows are for (named in errors).
        work: the run's work folder, opened or created.
        expected: the datasets a whole batch has (:func:`~keras_lrp.io.layout.expected_keys`).
        resumed_rows: the rows the work folder held when it was resumed (0 for a new one).
    """

    def __init__(self, path: str, work: journal.WorkFolder, expected: Sequence[str],
                 resumed_rows: int = 0):
        self.path, self.partial_path = path, work.path
        self._work, self._expected, self.resumed_rows = work, expected, resumed_rows
        self._failed: Optional[BaseException] = None
        self._open_state = True

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


__all__ = ["BatchAppender"]
