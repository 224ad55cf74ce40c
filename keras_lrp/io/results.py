"""Relevance results in HDF5, with the metadata needed to tell how they were made: written batch
by batch (:class:`~keras_lrp.io.writer.RelevanceWriter`) or at once (:func:`save_relevances`),
read back with :func:`load_relevances` (a finished file, or the work folder of an unfinished
run). The format is in :mod:`keras_lrp.io.layout`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Union

import h5py
import numpy as np

from keras_lrp.io import journal
from keras_lrp.io.layout import BATCH_KEYS, check_format, expected_keys, partial_path
from keras_lrp.io.metadata import decode, metadata_for, model_weights_hash
from keras_lrp.io.writer import RelevanceWriter

__all__ = ["RelevanceWriter", "Results", "load_relevances", "metadata_for", "model_weights_hash",
           "partial_path", "save_relevances"]


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
        path: the results file, or the work folder ``<out>.partial`` of an unfinished run
            (its whole rows: those written for every dataset and every analyzer).

    Returns:
        :class:`Results`, relevances in the order they were first written.

    Example:
        >>> res = load_relevances("run.h5"); res.relevance["lrp.z"].shape
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _load_work_folder(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No results file at {path!r}; write one with save_relevances "
                                "or RelevanceWriter.")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path!r} is not an HDF5 file, so not a keras-lrp results file.")
    with h5py.File(path, "r") as f:
        check_format(f, path)
        return Results(relevance={k: v[()] for k, v in f["relevance"].items()},
                       **{k: f[k][()] if k in f else None for k in BATCH_KEYS},
                       metadata=decode(f.attrs))


def _load_work_folder(path: str) -> Results:
    header = journal.header_path(path)
    try:
        with h5py.File(header, "r") as f:
            check_format(f, path)
            metadata = decode(f.attrs)
    except OSError as e:
        raise ValueError(f"{path!r} is not the work folder of a keras-lrp run (no readable "
                         f"{header!r}: {e}).") from None
    index = journal.Index()
    journal.replay(path, index)
    whole = journal.whole_rows({k: index.count(k) for k in index.pieces},
                               expected_keys(metadata))
    rows = {k: index.rows(k, 0, whole) for k in index.pieces}
    return Results(relevance={k[len("relevance/"):]: v for k, v in rows.items()
                              if k.startswith("relevance/")},
                   **{k: rows.get(k) for k in BATCH_KEYS}, metadata=metadata)
