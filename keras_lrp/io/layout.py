"""The results file's format (version 1) and the names of the files beside it.

File layout::

    /                   attrs: keras_lrp_format = "keras-lrp-results", keras_lrp_format_version,
                        one attribute per metadata key (JSON text for anything but strings,
                        numbers and numeric arrays; those keys listed in keras_lrp_json_keys)
    /relevance/<name>   one dataset per analyzer, axis 0 = samples (resizable, chunked)
    /inputs, /predictions, /neurons   optional, axis 0 = samples

Beside ``<out>`` while a :class:`~keras_lrp.io.results.RelevanceWriter` runs: ``<out>.partial/``
(the rows written so far, :mod:`~keras_lrp.io.journal`), ``<out>.lock``
(:mod:`~keras_lrp.io.lock`) and, while it closes, ``<out>.tmp-<pid>@<host>``.
"""

from __future__ import annotations

import os
from typing import List

import h5py
import numpy as np

from keras_lrp.io.metadata import _MARK, _VERSION

FORMAT, FORMAT_VERSION = "keras-lrp-results", 1
BATCH_KEYS = ("inputs", "predictions", "neurons")


def partial_path(path) -> str:
    """The work folder where :class:`RelevanceWriter` keeps the rows of an unfinished run."""
    return f"{os.fspath(path)}.partial"


def expected_keys(metadata) -> List[str]:
    """The relevance datasets a run's metadata promises: one per name in ``analyzers``."""
    names = metadata.get("analyzers")
    if not isinstance(names, (list, tuple)):
        return []
    return [f"relevance/{n}" for n in names if isinstance(n, str)]


def rows_of(name: str, value) -> np.ndarray:
    """``value`` as one numeric array with the batch axis first, or ValueError naming ``name``."""
    arr = np.asarray(value) if not isinstance(value, (list, tuple)) else None
    if arr is None or arr.ndim == 0 or arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be one numeric array with the batch axis first; got "
                         f"{type(value).__name__} of shape {np.shape(value)}. For a multi-input "
                         "model append each input's relevance under its own name ('lrp.z[0]').")
    return arr


def datasets(f: h5py.File) -> List[str]:
    """The row datasets of an open results file, relevances first."""
    return [f"relevance/{k}" for k in f["relevance"]] + [k for k in BATCH_KEYS if k in f]


def check_format(f: h5py.File, path: str) -> None:
    """Raise ValueError unless ``f`` is a results file this version reads."""
    mark = f.attrs.get(_MARK)
    if (mark.decode() if isinstance(mark, bytes) else mark) != FORMAT or not isinstance(
            f.get("relevance"), h5py.Group):
        raise ValueError(f"{path!r} is an HDF5 file but not a keras-lrp results file (no "
                         f"{_MARK}={FORMAT!r} attribute or no /relevance group).")
    if int(f.attrs.get(_VERSION, 0)) > FORMAT_VERSION:
        raise ValueError(f"{path!r} uses results format {f.attrs[_VERSION]}; this keras-lrp "
                         f"reads up to {FORMAT_VERSION}. Upgrade keras-lrp.")


def chunks_for(shape: tuple, dtype) -> tuple:
    """About 1 MiB per chunk along the sample axis (at most 1024 rows)."""
    row = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return (max(1, min(1024, 2 ** 20 // row)),) + tuple(shape)
