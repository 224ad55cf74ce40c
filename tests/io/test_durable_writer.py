"""RelevanceWriter from Python: hard stops, damaged work folders, stale files and the lock.

Rows are made so that a misplaced one shows: row ``i`` holds ``i`` (inputs), ``i + 0.5``
(relevance ``a``) and ``-i`` (relevance ``b``), see ``durable_worker.py``.
"""

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_lrp import io as klio
from keras_lrp.io import journal, lock

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import durable_worker as worker  # noqa: E402

META = worker.META
ENV = dict(os.environ,
           PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def _write(writer, start, stop, batch=3):
    for s in range(start, stop, batch):
        x, a, b = worker.rows(s, min(stop, s + batch))
        writer.append_inputs(x)
        writer.append("a", a)
        writer.append("b", b)


def assert_rows(res, n):
    """``res`` holds exactly rows 0..n of the worker's data."""
    x, a, b = worker.rows(0, n)
    if n == 0:  # nothing reached the disk: no dataset at all
        assert res.inputs is None and res.relevance == {}
        return
    np.testing.assert_array_equal(res.inputs, x)
    np.testing.assert_array_equal(res.relevance["a"], a)
    np.testing.assert_array_equal(res.relevance["b"], b)


def _stopped(tmp_path, rows=30, batch=3):
    """A work folder with ``rows`` whole rows, as a stopped run leaves it."""
    path = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        with klio.RelevanceWriter(path, META) as out:
            _write(out, 0, rows, batch)
            raise KeyboardInterrupt
    return path


def test_python_writer_resumes_after_three_sigkills(tmp_path):
    """(A Python script that does not handle SIGTERM dies of it the same way.)"""
    sig = signal.SIGKILL
    rng, out, n, kept = np.random.default_rng(9), tmp_path / "r.h5", 600, 0
    command = [sys.executable, str(HERE / "durable_worker.py"), str(out), str(n), "4"]
    for _ in range(3):
        proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == f"resumed {kept}\n"
        time.sleep(rng.uniform(0.05, 0.4))
        assert proc.poll() is None, "the job ended before the stop"
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        assert proc.returncode == -sig
        res = klio.load_relevances(f"{out}.partial")
        assert len(res.inputs) > kept and len(res.inputs) % 4 == 0
        assert_rows(res, len(res.inputs))
        kept = len(res.inputs)
    proc = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == f"resumed {kept}\n", proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["r.h5"]
    assert_rows(klio.load_relevances(out), n)


def test_shard_cut_at_random_offsets_keeps_the_rows_before_it(tmp_path):
    path = _stopped(tmp_path)  # shards 1..10, three rows each
    folder = Path(f"{path}.partial")
    pristine = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    rng = np.random.default_rng(0)
    for _ in range(12):
        for name, data in pristine.items():
            (folder / name).write_bytes(data)
        shard = int(rng.integers(1, 11))
        data = pristine[journal.shard_name(shard)]
        cut = int(rng.integers(0, len(data)))
        (folder / journal.shard_name(shard)).write_bytes(data[:cut])
        out = klio.RelevanceWriter(path, META, resume=True)
        assert out.resumed_rows == 3 * (shard - 1), (shard, cut)
        assert journal.shard_name(shard) in out.recovery and "cut short" in out.recovery
        out.keep_partial()
        assert_rows(klio.load_relevances(folder), 3 * (shard - 1))


def test_garbled_bytes_never_give_a_wrong_row(tmp_path):
    """Bytes flipped anywhere in a shard (a power loss before its fsync): the shard is either
    read intact (the flip hit a field no row depends on) or ends the journal."""
    path = _stopped(tmp_path)
    folder = Path(f"{path}.partial")
    name = journal.shard_name(5)
    data = (folder / name).read_bytes()
    rng = np.random.default_rng(1)
    for offset in rng.integers(0, len(data), 40):
        garbled = bytearray(data)
        garbled[offset] ^= 0xFF
        (folder / name).write_bytes(bytes(garbled))
        res = klio.load_relevances(folder)
        assert len(res.inputs) in (12, 30), offset
        assert_rows(res, len(res.inputs))
    (folder / name).write_bytes(b"")  # renamed but never written: zero length
    assert_rows(klio.load_relevances(folder), 12)


def test_a_damaged_header_is_refused_in_one_line(tmp_path):
    path = _stopped(tmp_path)
    header = Path(f"{path}.partial") / journal.HEADER
    data = header.read_bytes()
    for cut in np.random.default_rng(2).integers(0, len(data), 8):
        header.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"Cannot resume from .*r\.h5\.partial.*not a "
                                             r"readable .* delete it or drop resume=True") as e:
            klio.RelevanceWriter(path, META, resume=True)
        assert "\n" not in str(e.value)
    assert not Path(f"{path}.lock").exists()  # the refusal released the lock


def test_resuming_drops_rows_of_an_unfinished_batch_and_shards_after_a_gap(tmp_path):
    path = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        with klio.RelevanceWriter(path, META) as out:
            _write(out, 0, 9)
            out.append_inputs(worker.rows(9, 12)[0])  # batch 4 has its inputs only
            journal.SHARD_BYTES, saved = 0, journal.SHARD_BYTES  # ... and they reach disk
            try:
                out.append("a", worker.rows(9, 12)[1])
            finally:
                journal.SHARD_BYTES = saved
            raise KeyboardInterrupt
    folder = Path(f"{path}.partial")
    os.rename(folder / journal.shard_name(2), folder / "aside")  # shard 2 lost: 3 and 4 orphans
    with klio.RelevanceWriter(path, META, resume=True) as out:
        assert out.resumed_rows == 3 and "000002.npz is missing" in out.recovery
        assert "dropped 2 shard(s)" in out.recovery
        _write(out, 3, 12)
    assert_rows(klio.load_relevances(path), 12)


def test_stale_temporary_files_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    path = _stopped(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is not alive any more
    me = lock.host()
    folder = Path(f"{path}.partial")
    stale = [tmp_path / f"r.h5.tmp-{dead.pid}",  # keras-lrp 0.4's name
             tmp_path / f"r.h5.tmp-{dead.pid}@{me}", folder / f".tmp-{dead.pid}@{me}.000011.npz"]
    (tmp_path / f"r.h5.partial.tmp-{dead.pid}@{me}.old").mkdir()
    stale.append(tmp_path / f"r.h5.partial.tmp-{dead.pid}@{me}.old")
    live = [tmp_path / f"r.h5.tmp-1@{me}",  # pid 1 is alive
            tmp_path / f"r.h5.tmp-{dead.pid}@another-host",  # cannot tell: kept
            tmp_path / "r.h5.tmp-notes.txt"]  # not ours
    for p in stale[:3] + live:
        p.write_bytes(b"x")
    with klio.RelevanceWriter(path, META, resume=True) as out:
        assert sorted(out.removed_stale) == sorted(map(str, stale))
        _write(out, 30, 33)
    assert sorted(os.listdir(tmp_path)) == sorted(["r.h5"] + [p.name for p in live])
    assert_rows(klio.load_relevances(path), 33)


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    path = tmp_path / "r.h5"
    first = klio.RelevanceWriter(path, META)
    with pytest.raises(lock.LockedError, match=rf"is being written by another keras-lrp run "
                                               rf"\(pid {os.getpid()} on {lock.host()}"):
        klio.RelevanceWriter(path, META, resume=True)
    _write(first, 0, 6)
    first.close()
    assert sorted(os.listdir(tmp_path)) == ["r.h5"]
    (tmp_path / "r.h5.lock").write_text("12345@elsewhere\n")  # left by a killed run
    with klio.RelevanceWriter(path, META) as out:  # an flock dies with its process
        _write(out, 0, 3)
    assert_rows(klio.load_relevances(path), 3)


def test_lock_without_fcntl_uses_the_pid(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "fcntl", None)
    path = str(tmp_path / "r.h5")
    held = lock.OutputLock(path).acquire()
    with pytest.raises(lock.LockedError, match=f"pid {os.getpid()} on"):
        lock.OutputLock(path).acquire()
    held.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    Path(f"{path}.lock").write_text(f"{dead.pid}@{lock.host()}\n")
    with lock.OutputLock(path):  # its holder is gone: stale
        assert Path(f"{path}.lock").read_text() == f"{lock.tag()}\n"
    assert not os.path.exists(f"{path}.lock")


@pytest.mark.parametrize("sync_every, during", [(0.0, 4), (3600.0, 0)])
def test_shards_are_fsynced_at_most_every_sync_every_seconds(tmp_path, monkeypatch, sync_every,
                                                             during):
    synced = []
    original = journal.fsync_paths
    monkeypatch.setattr(journal, "fsync_paths", lambda paths: (synced.extend(paths),
                                                               original(paths)))
    with pytest.raises(KeyboardInterrupt):
        with klio.RelevanceWriter(tmp_path / "r.h5", META, sync_every=sync_every) as out:
            synced.clear()
            _write(out, 0, 12)
            assert len(synced) == during
            raise KeyboardInterrupt
    names = sorted(os.path.basename(p) for p in synced)
    assert names == [journal.shard_name(i) for i in range(1, 5)]  # all of them, once, by now


def test_a_keras_lrp_0_4_partial_file_is_adopted(tmp_path):
    path = tmp_path / "r.h5"
    x, a, b = worker.rows(0, 9)
    klio.save_relevances(f"{path}.partial", {"a": a, "b": b}, inputs=x, metadata=META)
    with klio.RelevanceWriter(path, META, resume=True) as out:
        assert out.resumed_rows == 9
        _write(out, 9, 15)
    assert_rows(klio.load_relevances(path), 15)


def test_garbage_collection_keeps_the_work_folder_and_abort_removes_only_new_shards(tmp_path):
    path = tmp_path / "r.h5"
    out = klio.RelevanceWriter(path, META)
    _write(out, 0, 6)
    del out
    gc.collect()
    assert sorted(os.listdir(tmp_path)) == ["r.h5.partial"]  # no lock left, rows kept
    out = klio.RelevanceWriter(path, META, resume=True)
    _write(out, 6, 12)
    out.abort()
    assert_rows(klio.load_relevances(f"{path}.partial"), 6)
    assert sorted(os.listdir(tmp_path)) == ["r.h5.partial"]
