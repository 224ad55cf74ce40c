"""The work folder ``<out>.partial/`` of a :class:`~keras_lrp.io.results.RelevanceWriter`: a
journal of appended rows that survives any stop (SIGKILL, out of memory, power loss) between
two of its writes.

Layout::

    <out>.partial/000000.h5      the header: the results file's root attributes (its metadata);
                                 a 0.4 partial file, adopted, also holds rows (every dataset
                                 starts at row 0)
    <out>.partial/000001.npz     one shard per whole batch: ``index.json`` lists its
    <out>.partial/000002.npz     ``[key, start]`` pairs (member ``0.npy`` … holds each one's
    …                            rows) and an optional ``cut``; written beside, then renamed

Reading replays the shards in order: ``cut`` first cuts every dataset to that many rows, then
each ``(key, start, rows)`` cuts ``key`` to ``start`` rows and appends ``rows``. ``start`` beyond
the rows ``key`` has (a gap) marks the shard as not part of the journal.

Why shards and not the HDF5 file itself: HDF5 rewrites its own index in place, so a process
killed in the middle of a write can leave a file that no longer opens, losing every batch. A
shard is complete before its rename (a kill leaves a ``.tmp-`` file, removed by the next run)
and a zip file checks its CRC-32 on reading, so a shard cut short or garbled by a power loss is
found: the journal ends at the first such shard, and only what came after it is lost.
Renames survive any stop of the process (the kernel holds the data); the writer fsyncs the
shards at most every ``sync_every`` seconds, which bounds what a power loss can take.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import h5py
import numpy as np

from keras_lrp.io import lock
from keras_lrp.io.atomic import fsync_folder
from keras_lrp.io.layout import chunks_for, datasets

HEADER = "000000.h5"
#: A shard is also written when this many bytes wait for a batch to become whole.
SHARD_BYTES = 64 * 2 ** 20


@dataclasses.dataclass(slots=True)
class Piece:
    """Rows ``[start, stop)`` of one dataset, held in ``source`` from its first row on (a cut
    only lowers ``stop``)."""

    start: int
    stop: int
    source: object  # an array in memory, or (file, member) on disk

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)`` of the dataset (within this piece)."""
        a, b = lo - self.start, hi - self.start
        if isinstance(self.source, np.ndarray):
            return self.source[a:b]
        path, member = self.source
        if path.endswith(".h5"):
            with h5py.File(path, "r") as f:
                return f[member][a:b]
        with np.load(path) as shard:
            return shard[member][a:b]


class Index:
    """Per dataset, the pieces its rows are made of, in row order."""

    def __init__(self):
        self.pieces: Dict[str, List[Piece]] = {}
        self.specs: Dict[str, Tuple[tuple, np.dtype]] = {}  # trailing shape, dtype

    def count(self, key: str) -> int:
        pieces = self.pieces.get(key)
        return pieces[-1].stop if pieces else 0

    def cut(self, key: str, n: int) -> None:
        """Keep rows ``[0, n)`` of ``key``."""
        self.pieces[key] = [p if p.stop <= n else dataclasses.replace(p, stop=n)
                            for p in self.pieces.get(key, []) if p.start < n]

    def add(self, key: str, start: int, source, n: int, spec) -> Piece:
        """Rows ``[start, start + n)`` of ``key`` are ``source``'s (replacing any from there on)."""
        if start > self.count(key):
            raise ValueError(f"rows of '{key}' start at {start} after {self.count(key)}")
        if start < self.count(key):
            self.cut(key, start)
        piece = Piece(start, start + n, source)
        self.pieces.setdefault(key, []).append(piece)
        self.specs.setdefault(key, spec)
        return piece

    def rows(self, key: str, lo: int, hi: int) -> np.ndarray:
        parts = []
        for p in reversed(self.pieces.get(key, [])):  # the rows asked for are mostly the last
            if p.stop <= lo:
                break
            if p.start < hi:
                parts.append(p.rows(max(lo, p.start), min(hi, p.stop)))
        parts.reverse()
        shape, dtype = self.specs[key]
        return np.concatenate(parts) if parts else np.zeros((0,) + shape, dtype)


def shard_name(number: int) -> str:
    return f"{number:06d}.npz"


def write_shard(folder: str, number: int, items: Sequence[Tuple[str, int, np.ndarray]],
                cut: Optional[int], tmp_tag: str) -> str:
    """Write ``items`` (key, start, rows) as shard ``number``: beside it, then renamed."""
    index = {"cut": cut, "items": [[key, int(start)] for key, start, _ in items]}
    arrays = {str(i): np.ascontiguousarray(arr) for i, (_, _, arr) in enumerate(items)}
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)
    path = os.path.join(folder, shard_name(number))
    tmp = os.path.join(folder, f".tmp-{tmp_tag}.{shard_name(number)}")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def header_path(folder: str) -> str:
    """The header file of a work folder (its root attributes are the run's metadata)."""
    return os.path.join(folder, HEADER)


def shard_numbers(folder: str) -> List[int]:
    """The numbers of the shards in ``folder``, in order (the header is 0)."""
    numbers = []
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if ext == ".npz" and stem.isdigit() and len(stem) == 6:
            numbers.append(int(stem))
    return sorted(numbers)


def replay(folder: str, index: Index) -> Tuple[int, Optional[str]]:
    """Load the header's rows and then every shard of ``folder`` into ``index``, in order.

    Returns:
        ``(last, problem)``: the number of the last shard in the journal (0: none), and why the
        journal ends before the next shard in the folder (None if it does not).
    """
    header = header_path(folder)
    with h5py.File(header, "r") as f:
        for key in datasets(f):
            ds = f[key]
            index.specs[key] = (ds.shape[1:], ds.dtype)
            if ds.shape[0]:
                index.add(key, 0, (header, key), ds.shape[0], index.specs[key])
    last = 0
    for number in shard_numbers(folder):
        if number != last + 1:
            return last, f"shard {shard_name(last + 1)} is missing"
        path = os.path.join(folder, shard_name(number))
        try:
            with np.load(path) as shard:
                spec = json.loads(bytes(shard["index"]).decode())
                arrays = [shard[str(i)] for i in range(len(spec["items"]))]  # checks CRC-32
        except Exception as e:  # noqa: BLE001 - any failure to read a shard: damaged
            return last, f"{shard_name(number)} is cut short or damaged ({type(e).__name__})"
        problem = _gap(index, spec, arrays)
        if problem:
            return last, f"{shard_name(number)} does not follow on ({problem})"
        if spec.get("cut") is not None:
            for key in list(index.pieces):
                index.cut(key, int(spec["cut"]))
        for i, ((key, start), arr) in enumerate(zip(spec["items"], arrays)):
            index.add(key, int(start), (path, str(i)), arr.shape[0], (arr.shape[1:], arr.dtype))
        last = number
    return last, None


def _gap(index: Index, spec: Mapping, arrays: Sequence[np.ndarray]) -> Optional[str]:
    """Why the shard described by ``spec`` cannot follow ``index`` (a row range that starts
    after the rows its dataset has), or None; checked before the shard changes anything."""
    counts = {k: index.count(k) for k in index.pieces}
    if spec.get("cut") is not None:
        counts = {k: min(n, int(spec["cut"])) for k, n in counts.items()}
    for (key, start), arr in zip(spec["items"], arrays):
        if int(start) > counts.get(key, 0):
            return f"rows of '{key}' start at {start} after {counts.get(key, 0)}"
        counts[key] = int(start) + arr.shape[0]
    return None


def whole_rows(counts: Mapping[str, int], expected: Sequence[str] = ()) -> int:
    """Rows written for every dataset in ``counts`` and every key in ``expected`` (an analyzer
    named in the metadata but never written has none)."""
    return min((counts.get(k, 0) for k in set(counts) | set(expected)), default=0)


def fsync_paths(paths: Sequence[str]) -> None:
    """Flush these files' bytes to disk (a missing one is skipped)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class WorkFolder:
    """The journal of one run: :meth:`add` rows, :meth:`commit` them as a shard, and
    :meth:`merge` everything into the final file; :meth:`open` an existing one to resume.

    Args:
        path: the folder (``<out>.partial``).
        sync_every: fsync the shards at most this often, in seconds.
    """

    def __init__(self, path: str, sync_every: float):
        self.path, self.sync_every = path, sync_every
        self.index, self.disk = Index(), {}  # disk: rows on disk, per dataset
        self.pending: List[Tuple[str, Piece]] = []
        self.pending_bytes, self.shard, self.first_own, self.resumed = 0, 0, 1, False
        self._unsynced, self._last_sync = [], time.monotonic()

    def header(self) -> str:
        return self.path if os.path.isfile(self.path) else header_path(self.path)

    def create(self, attrs: Mapping) -> None:
        """A new folder holding only the header: built beside, then renamed into place."""
        new = f"{self.path}.tmp-{lock.tag()}.new"
        os.mkdir(new)
        try:
            with h5py.File(header_path(new), "w", track_order=True) as f:
                f.attrs.update(attrs)
                f.create_group("relevance", track_order=True)
            fsync_paths([header_path(new)])
            os.replace(new, self.path)
            fsync_folder(os.path.dirname(os.path.abspath(self.path)))
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise

    def open(self) -> Optional[str]:
        """Replay an existing folder; returns why it ends early (None if it does not).

        Shards after the end are removed: they cannot follow on, and new ones take their
        numbers. A keras-lrp 0.4 partial file becomes the header of a new folder."""
        p = self.path
        if os.path.isfile(p):
            new = f"{p}.tmp-{lock.tag()}.new"
            os.mkdir(new)
            os.replace(p, header_path(new))
            os.replace(new, p)
        self.shard, problem = replay(p, self.index)
        later = [n for n in shard_numbers(p) if n > self.shard]
        for n in later:
            os.remove(os.path.join(p, shard_name(n)))
        self.disk = {k: self.index.count(k) for k in self.index.pieces}
        self.first_own, self.resumed = self.shard + 1, True
        if problem:
            return (f"{p}: {problem}; kept the rows before it and dropped {len(later)} "
                    "shard(s) from there on")
        return None

    def add(self, key: str, arr: np.ndarray) -> None:
        """Append rows to ``key`` in memory (on disk at the next :meth:`commit`)."""
        piece = self.index.add(key, self.index.count(key), arr, arr.shape[0],
                               (arr.shape[1:], arr.dtype))
        self.pending.append((key, piece))
        self.pending_bytes += arr.nbytes

    def commit(self) -> None:
        """Write the pending rows as the next shard; fsync if ``sync_every`` has passed."""
        if not self.pending:
            return
        items = [(key, piece.start, piece.source) for key, piece in self.pending]
        path = write_shard(self.path, self.shard + 1, items, None, lock.tag())
        self.shard += 1
        for i, (key, piece) in enumerate(self.pending):  # the rows now live on disk only
            piece.source = (path, str(i))
            self.disk[key] = piece.stop
        self.pending, self.pending_bytes = [], 0
        self._unsynced.append(path)
        if time.monotonic() - self._last_sync >= self.sync_every:
            self.sync()

    def cut(self, rows: int) -> None:
        """Cut every dataset to ``rows``, in memory and with a shard that says so."""
        for key in list(self.index.pieces):
            self.index.cut(key, rows)
        self.shard += 1
        self._unsynced.append(write_shard(self.path, self.shard, [], rows, lock.tag()))
        self.disk = {k: rows for k in self.disk}

    def drop_pending(self) -> None:
        for key, piece in self.pending:
            self.index.cut(key, piece.start)
        self.pending, self.pending_bytes = [], 0

    def sync(self) -> None:
        fsync_paths(self._unsynced)
        fsync_folder(self.path)
        self._unsynced, self._last_sync = [], time.monotonic()

    def merge(self, target: str, compression) -> None:
        """Write every dataset's rows to the HDF5 file ``target``, reading shard by shard."""
        by_file: Dict[str, List[Tuple[str, Piece]]] = {}
        with h5py.File(target, "w", track_order=True) as f:
            with h5py.File(self.header(), "r") as header:  # a resumed run's: the first run's
                f.attrs.update(dict(header.attrs))
            f.create_group("relevance", track_order=True)
            for key, pieces in self.index.pieces.items():
                shape, dtype = self.index.specs[key]
                f.create_dataset(key, shape=(self.index.count(key),) + tuple(shape),
                                 dtype=dtype, maxshape=(None,) + tuple(shape),
                                 compression=compression, chunks=chunks_for(shape, dtype))
                for piece in pieces:
                    by_file.setdefault(piece.source[0], []).append((key, piece))
            for path, parts in by_file.items():
                opened = h5py.File(path, "r") if path.endswith(".h5") else np.load(path)
                with opened as source:
                    for key, piece in parts:
                        f[key][piece.start:piece.stop] = source[piece.source[1]][
                            :piece.stop - piece.start]

    def remove(self) -> None:
        """Delete the folder (renamed aside first, so a stop midway leaves no half)."""
        discard(self.path)

    def remove_own(self) -> None:
        """Delete the shards this run wrote (all of the folder unless it resumed one)."""
        if not self.resumed:
            return self.remove()
        for n in range(self.first_own, self.shard + 1):
            shard = os.path.join(self.path, shard_name(n))
            if os.path.exists(shard):
                os.remove(shard)


def discard(path: str) -> None:
    """Remove a work folder (or a 0.4 partial file); a folder is renamed aside first."""
    if os.path.isfile(path):
        os.remove(path)
    elif os.path.isdir(path):
        old = f"{path}.tmp-{lock.tag()}.old"
        os.replace(path, old)
        shutil.rmtree(old)
