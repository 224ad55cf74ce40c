"""Files of relevance maximisation (:mod:`keras_lrp.concepts.relmax`): the resumable state of a
run and its HDF5 result.

While a run with ``out=OUT`` goes on, ``OUT.partial/state.npz`` holds the whole running state
after the last finished batch: every top-k array, the rows done and the run's metadata (JSON).
It is replaced after each batch through :func:`keras_lrp.io.atomic.write_atomically` (written
beside, fsynced, renamed), so any stop (an exception, SIGKILL, a power loss) leaves the state
of some finished batch, never a half-written one. Unlike the rows of
:class:`~keras_lrp.io.RelevanceWriter`'s journal, the state is not appended to but replaced
(it is small: layers × channels × k × (classes + 1) entries), so one file suffices. A resumed
run (``resume=True``) first checks that the saved metadata equals its own (every key but
``created``, :func:`keras_lrp.io.metadata.differing_keys`), then skips the rows done.

The result ``OUT`` (written atomically, then the work folder is removed): root attributes the
metadata (:func:`keras_lrp.io.metadata.encode`), and per mode (``relevance``, ``activation``)
and layer the datasets ``top/<mode>/<layer>/{index,value,neuron}`` (k, channels) and
``stats/<mode>/<layer>/{index,value,neuron}`` (classes, k, channels); empty slots have index
-1, value -inf, neuron -1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from typing import Any, Dict, Optional

import h5py
import numpy as np

from keras_lrp.io import lock
from keras_lrp.io.atomic import replace, write_atomically
from keras_lrp.io.layout import partial_path
from keras_lrp.io.metadata import BACKEND_KEYS, decode, differing_keys, encode, metadata_for

KIND = "keras_lrp.concepts.relmax"
STATE = "state.npz"


def metadata(state, batch_size: int, labels, extra: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The run's description: the analyzer and model (:func:`metadata_for`), the layers and
    settings, and ``extra``."""
    a = state.crp.analyzer
    meta = metadata_for([a], a.model)
    meta.update(kind=KIND, layers=state.layers, top=state.k, max_target=state.max_target,
                abs_norm=state.abs_norm, axis=state.crp.axis, batch_size=int(batch_size),
                classes=state.classes,
                labels="given" if labels is not None else "stream or largest output")
    if labels is not None:
        meta["labels_sha256"] = _digest(np.asarray(labels))
    meta.update(extra or {})
    return json.loads(json.dumps(meta, default=repr))  # as it reads back


def _digest(arr: np.ndarray) -> str:
    import hashlib

    arr = np.ascontiguousarray(arr)
    return hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode() + arr.tobytes()).hexdigest()


@contextlib.contextmanager
def locked(out):
    """Hold ``<out>.lock`` (:class:`~keras_lrp.io.lock.OutputLock`: a second run on the same
    ``out`` stops at once, naming the first) and remove the temporary files of dead runs."""
    out = os.fspath(out)
    with lock.OutputLock(out):
        lock.remove_stale(out, partial_path(out) if os.path.isdir(partial_path(out)) else None)
        yield


class Work:
    """The work folder ``<out>.partial/`` of a run (see the module docstring)."""

    def __init__(self, out, meta: Dict[str, Any], state):
        self.out, self.meta, self.state = os.fspath(out), meta, state
        self.folder = partial_path(self.out)
        self.path = os.path.join(self.folder, STATE)
        parent = os.path.dirname(os.path.abspath(self.out))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"Folder {parent!r} for {self.out!r} does not exist; "
                                    "create it.")

    def start(self, resume: bool) -> int:
        """The rows done: those of the saved state (``resume``), else 0 (an older work folder
        is discarded)."""
        if not (resume and os.path.exists(self.path)):
            shutil.rmtree(self.folder, ignore_errors=True)
            os.makedirs(self.folder)
            return 0
        try:
            with np.load(self.path) as saved:
                arrays = {k: saved[k] for k in saved.files}
            old = json.loads(str(arrays.pop("metadata")))
            rows = int(arrays.pop("rows"))
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"Cannot resume from {self.path!r}: it is not readable ({e}). To "
                             f"start over, delete {self.folder!r} or drop resume=True "
                             "(--resume).") from None
        keys = differing_keys(old, self.meta)
        if keys:
            shown = "; ".join(f"{k}: {repr(old.get(k, '<missing>'))[:80]} there, "
                              f"{repr(self.meta.get(k, '<missing>'))[:80]} now" for k in keys[:3])
            hint = " (another Keras backend: rerun on that one)" \
                if any(k in BACKEND_KEYS for k in keys) else ""
            raise ValueError(f"Cannot resume from {self.folder!r}: its metadata differs from "
                             f"this run's in {keys} ({shown}){hint}. Rerun with its settings; "
                             "or, to start over, delete it or drop resume=True (--resume).")
        self.state.load(arrays, rows)
        return rows

    def save(self) -> None:
        """Replace the saved state with the current one (atomically)."""
        arrays = dict(self.state.states(), rows=np.int64(self.state.rows),
                      metadata=np.array(json.dumps(self.meta)))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomically(self.path, lambda handle: handle.write(buffer.getvalue()))

    def finish(self, result) -> None:
        """Write the result to ``out`` (atomically) and remove the work folder."""
        save(self.out, result)
        shutil.rmtree(self.folder, ignore_errors=True)


def save(path, result) -> None:
    """Write a :class:`~keras_lrp.concepts.topk.RelMaxResult` to ``path`` (HDF5, atomically)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{lock.tag()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(encode({**result.metadata, "rows": result.rows}))
            for kind, table in (("top", result.top), ("stats", result.stats)):
                for mode, layers in table.items():
                    for name, t in layers.items():
                        for key, arr in t.arrays().items():
                            f.create_dataset(f"{kind}/{mode}/{name}/{key}", data=arr)
        replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path):
    """Read :func:`save`'s file back as a :class:`~keras_lrp.concepts.topk.RelMaxResult`."""
    from keras_lrp.concepts.topk import RelMaxResult, TopK

    path = os.fspath(path)
    if not os.path.isfile(path) or not h5py.is_hdf5(path):
        raise ValueError(f"{path!r} is not an HDF5 file written by relevance_maximization.")
    with h5py.File(path, "r") as f:
        meta = decode(f.attrs)
        if meta.get("kind") != KIND:
            raise ValueError(f"{path!r} is not a relevance maximisation result (its kind is "
                             f"{meta.get('kind')!r}, not {KIND!r}).")
        tables: Dict[str, Dict[str, Dict[str, TopK]]] = {"top": {}, "stats": {}}
        for kind in tables:
            for mode, layers in f[kind].items():
                for name, group in layers.items():
                    arrays = {k: group[k][()] for k in group}
                    shape = arrays["index"].shape
                    t = TopK(shape[-2], shape[-1], shape[0] if kind == "stats" else None)
                    t.load(arrays)
                    tables[kind].setdefault(mode, {})[name] = t
    rows = int(meta.pop("rows"))
    return RelMaxResult(tables["top"], tables["stats"], rows, meta)


__all__ = ["KIND", "Work", "load", "locked", "metadata", "save"]
