"""Resumable results files: an interrupted run keeps its whole batches in the work folder
``<out>.partial``, and
``RelevanceWriter(resume=True)`` / ``keras-lrp analyze --resume`` continue it.

The CLI runs in-process (``keras_lrp.cli.main``) on the shipped digits CNN: 40 digits in batches
of 8, interrupted after 3 whole batches (24 rows) by a KeyboardInterrupt raised inside batch 4,
after its inputs and first analyzer were written. One test runs ``--resume`` as a subprocess.
"""

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp import cli
from keras_lrp import io as klio
from keras_lrp.io import journal

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "keras_lrp" / "demos" / "models" / "digits_cnn.keras"
DATA = REPO / "keras_lrp" / "demos" / "models" / "digits_test.npz"
N, BATCH, DONE = 40, 8, 24
METHODS = ("lrp.epsilon", "lrp.z")


def _args(inputs, out, *extra):
    args = ["analyze", str(MODEL), str(inputs), "--out", str(out), "--batch-size", str(BATCH)]
    for m in METHODS:
        args += ["--method", m]
    return args + [str(e) for e in extra]


def _interrupt_in_batch_4(monkeypatch):
    """Make the 8th ``append`` (batch 4, second analyzer) raise KeyboardInterrupt."""
    original, calls = klio.RelevanceWriter.append, []

    def append(self, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2 * (DONE // BATCH) + 2:
            raise KeyboardInterrupt
        return original(self, name, *args, **kwargs)
    monkeypatch.setattr(klio.RelevanceWriter, "append", append)


def _count_analyzed_rows(monkeypatch):
    """Wrap ``Analyzer.analyze``; the returned dict collects rows analysed per analyzer."""
    original, rows = keras_lrp.Analyzer.analyze, {}

    def analyze(self, x, *args, **kwargs):
        rows[self.name] = rows.get(self.name, 0) + len(x)
        return original(self, x, *args, **kwargs)
    monkeypatch.setattr(keras_lrp.Analyzer, "analyze", analyze)
    return rows


def _rows_per_dataset(path):
    """Rows per dataset of a results file, or the whole rows of a work folder."""
    res = klio.load_relevances(path)
    rows = {f"relevance/{k}": len(v) for k, v in res.relevance.items()}
    return {**rows, **{k: len(getattr(res, k)) for k in ("inputs", "predictions", "neurons")
                       if getattr(res, k) is not None}}


def _snapshot(folder):
    """{file name: bytes} of a work folder."""
    return {n: (Path(folder) / n).read_bytes() for n in sorted(os.listdir(folder))}


def assert_same_run(actual, expected):
    """Relevances, inputs and outputs of two runs with the same batches agree."""
    assert list(actual.relevance) == list(expected.relevance) == list(METHODS)
    for m in METHODS:
        assert actual.relevance[m].dtype == np.float32
        np.testing.assert_allclose(actual.relevance[m], expected.relevance[m], rtol=1e-6,
                                   atol=1e-9)
    np.testing.assert_array_equal(actual.inputs, expected.inputs)
    np.testing.assert_allclose(actual.predictions, expected.predictions, rtol=1e-6)
    np.testing.assert_array_equal(actual.neurons, expected.neurons)


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def x():
    with np.load(DATA) as data:
        return data["x"][:N]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, x):
    d = tmp_path_factory.mktemp("resume")
    np.save(d / "x.npy", x)
    return d


@pytest.fixture(scope="module")
def one_shot(folder):
    """The uninterrupted run, for comparison."""
    assert cli.main(_args(folder / "x.npy", folder / "full.h5")) == 0
    return klio.load_relevances(folder / "full.h5")


@pytest.fixture(scope="module")
def interrupted(folder, tmp_path_factory):
    """A run interrupted in batch 4 over an earlier, complete ``out.h5``."""
    d = tmp_path_factory.mktemp("interrupted")
    out = d / "out.h5"
    klio.save_relevances(out, {"old": np.arange(6.0).reshape(3, 2)}, metadata={"tag": "old"})
    earlier = out.read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        _interrupt_in_batch_4(mp)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = cli.main(_args(folder / "x.npy", out))
    return {"dir": d, "out": out, "earlier": earlier, "rc": rc, "stderr": err.getvalue()}


@pytest.fixture(scope="module")
def model_and_x(x):
    import keras

    return keras.models.load_model(MODEL), x


def _copy_partial(interrupted, tmp_path):
    out = tmp_path / "out.h5"
    shutil.copytree(interrupted["dir"] / "out.h5.partial", tmp_path / "out.h5.partial")
    return out


# ---------------------------------------------------------------------------- the CLI

def test_interrupt_keeps_whole_batches_and_the_earlier_file(interrupted, model_and_x):
    model, x = model_and_x
    assert interrupted["rc"] == 130
    assert "kept the 24 finished rows in" in interrupted["stderr"]
    assert sorted(os.listdir(interrupted["dir"])) == ["out.h5", "out.h5.partial"]  # no temp
    assert interrupted["out"].read_bytes() == interrupted["earlier"]  # byte-identical
    partial = Path(f"{interrupted['out']}.partial")
    # batch 4 had written /inputs and lrp.epsilon: cut back to the 24 rows of every dataset
    assert set(_rows_per_dataset(partial).values()) == {DONE}
    res = klio.load_relevances(partial)
    np.testing.assert_array_equal(res.inputs, x[:DONE])
    for m in METHODS:
        analyzer = keras_lrp.create_analyzer(m, model)
        expected = np.concatenate([analyzer.analyze(x[i:i + BATCH])
                                   for i in range(0, DONE, BATCH)])
        np.testing.assert_allclose(res.relevance[m], expected, rtol=1e-6, atol=1e-9)


def test_resume_computes_only_the_rest(interrupted, one_shot, folder, tmp_path, monkeypatch,
                                       capsys):
    out = _copy_partial(interrupted, tmp_path)
    rows = _count_analyzed_rows(monkeypatch)
    assert cli.main(_args(folder / "x.npy", out, "--resume", "--png", tmp_path / "png")) == 0
    assert rows == {m: N - DONE for m in METHODS}  # the 24 rows on disk were not recomputed
    cap = capsys.readouterr()
    assert "resuming" in cap.err and f"{DONE} of {N} rows already done" in cap.err
    assert f"batch 2/2 (after {DONE} rows done earlier)" in cap.err
    assert f"{N} inputs × 2 analyzer(s) ({DONE} of them resumed" in cap.out
    assert sorted(os.listdir(tmp_path)) == ["out.h5", "png"]  # the partial file is gone
    assert (tmp_path / "png" / "heatmaps.png").stat().st_size > 0
    res = klio.load_relevances(out)
    assert_same_run(res, one_shot)
    assert res.metadata["analyzers"] == list(METHODS)


def test_resume_subprocess_end_to_end(interrupted, one_shot, folder, tmp_path):
    out = _copy_partial(interrupted, tmp_path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "keras_lrp.cli",
                           *_args(folder / "x.npy", out, "--resume")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{DONE} of {N} rows already done" in proc.stderr
    assert not Path(f"{out}.partial").exists()
    assert_same_run(klio.load_relevances(out), one_shot)


@pytest.mark.parametrize("change, key", [(["--option", "bias=False"], "analyzer_kwargs"),
                                         (["--neuron", "3"], "neuron"),
                                         ("reversed", "inputs_sha256")])
def test_resume_with_other_settings_is_refused(interrupted, folder, x, tmp_path, capsys,
                                               change, key):
    out = _copy_partial(interrupted, tmp_path)
    before = _snapshot(f"{out}.partial")
    inputs = folder / "x.npy"
    if change == "reversed":
        inputs = tmp_path / "reversed.npy"
        np.save(inputs, x[::-1])
        change = []
    assert cli.main(_args(inputs, out, "--resume", *change)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("keras-lrp: error:") == 1
    assert f"['{key}']" in err and "out.h5.partial" in err and "--resume" in err
    assert _snapshot(f"{out}.partial") == before and not out.exists()


def test_resume_without_partial_starts_over(one_shot, folder, tmp_path, monkeypatch, capsys):
    rows = _count_analyzed_rows(monkeypatch)
    out = tmp_path / "out.h5"
    assert cli.main(_args(folder / "x.npy", out, "--resume")) == 0
    assert rows == {m: N for m in METHODS}
    assert "no " in capsys.readouterr().err
    assert_same_run(klio.load_relevances(out), one_shot)


def test_run_without_resume_replaces_partial(interrupted, one_shot, folder, tmp_path,
                                             monkeypatch):
    out = _copy_partial(interrupted, tmp_path)
    rows = _count_analyzed_rows(monkeypatch)
    assert cli.main(_args(folder / "x.npy", out)) == 0
    assert rows == {m: N for m in METHODS}
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]
    assert_same_run(klio.load_relevances(out), one_shot)


def test_corrupt_partial_is_refused_then_replaced(interrupted, one_shot, folder, tmp_path,
                                                  capsys):
    """A partial file cut short (a hard kill, a full disk) is never silently started over:
    --resume names it and says to delete it or drop --resume; a run without it replaces it."""
    out = _copy_partial(interrupted, tmp_path)
    partial = Path(f"{out}.partial")
    header = partial / "000000.h5"
    header.write_bytes(header.read_bytes()[:1024])
    assert cli.main(_args(folder / "x.npy", out, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("keras-lrp: error:") == 1 and "Traceback" not in err
    assert "Cannot resume from" in err and str(partial) in err
    assert "To start over, delete it or drop resume=True (--resume)" in err
    assert header.stat().st_size == 1024 and not out.exists()
    assert cli.main(_args(folder / "x.npy", out)) == 0
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]
    assert_same_run(klio.load_relevances(out), one_shot)


@pytest.mark.parametrize("cut", [0, 100, "half"])
def test_resume_after_a_shard_cut_short_recomputes_from_there(interrupted, one_shot, folder,
                                                             tmp_path, monkeypatch, capsys, cut):
    """A shard cut at any byte (a power loss before its fsync): --resume keeps the batches
    before it, says so in one line, and recomputes the rest; the result is the one-go run's."""
    out = _copy_partial(interrupted, tmp_path)
    shard = Path(f"{out}.partial") / "000002.npz"  # batch 2 of the 3 kept
    data = shard.read_bytes()
    shard.write_bytes(data[:len(data) // 2 if cut == "half" else cut])
    rows = _count_analyzed_rows(monkeypatch)
    assert cli.main(_args(folder / "x.npy", out, "--resume")) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" not in err
    assert "000002.npz is cut short or damaged" in err and "dropped 2 shard(s)" in err
    assert f"{BATCH} of {N} rows already done" in err
    assert rows == {m: N - BATCH for m in METHODS}
    assert_same_run(klio.load_relevances(out), one_shot)


# ---------------------------------------------------------------------------- the writer

META = {"analyzers": ["a", "b"], "analyzer_kwargs": {"a": {}, "b": {"epsilon": 0.1}},
        "model_weights_sha256": "0" * 64}


def _batch(i, n=3):
    x = np.full((n, 2), float(i), "float32")
    return x, x + 10, x + 20


def _write(writer, batches, stop_after=None):
    """Write ``batches`` (inputs, a, b each); raise KeyboardInterrupt after ``stop_after``
    appends of batch ``len(batches) - 1``."""
    for i in batches:
        x, ra, rb = _batch(i)
        steps = [lambda x=x: writer.append_inputs(x, predictions=x.sum(1)),
                 lambda ra=ra: writer.append("a", ra), lambda rb=rb: writer.append("b", rb)]
        for j, step in enumerate(steps):
            if i == batches[-1] and stop_after is not None and j == stop_after:
                raise KeyboardInterrupt
            step()


def _partial(tmp_path, stop_after=1, meta=META):
    path = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        with klio.RelevanceWriter(path, meta) as out:
            _write(out, [0, 1, 2], stop_after)
    return path


def test_writer_keeps_rows_written_for_every_analyzer(tmp_path):
    path = _partial(tmp_path, stop_after=2)  # batch 2: inputs and "a" written, "b" not
    assert os.listdir(tmp_path) == ["r.h5.partial"]  # no lock or temp file left
    assert sorted(os.listdir(f"{path}.partial")) == ["000000.h5", "000001.npz", "000002.npz"]
    res = klio.load_relevances(f"{path}.partial")
    assert {k: len(v) for k, v in res.relevance.items()} == {"a": 6, "b": 6}
    np.testing.assert_array_equal(res.inputs[:, 0], [0, 0, 0, 1, 1, 1])
    # an analyzer named in the metadata but never written: no row is whole
    with pytest.raises(KeyboardInterrupt):
        with klio.RelevanceWriter(path, {**META, "analyzers": ["a", "b", "c"]}) as out:
            _write(out, [0, 1], stop_after=0)
    assert _rows_per_dataset(f"{path}.partial") == {}  # nothing went to disk


def test_writer_writes_one_shard_per_whole_batch(tmp_path, monkeypatch):
    shards, original = [], journal.write_shard

    def write_shard(folder, number, items, *args):
        shards.append((number, sorted(key for key, _, _ in items)))
        return original(folder, number, items, *args)
    monkeypatch.setattr(journal, "write_shard", write_shard)
    with klio.RelevanceWriter(tmp_path / "r.h5", META) as out:
        _write(out, [0, 1, 2, 3])
    keys = ["inputs", "predictions", "relevance/a", "relevance/b"]
    assert shards == [(i, keys) for i in range(1, 5)]  # once per batch, not per append


def test_writer_resume_continues_and_matches_one_go(tmp_path):
    path = _partial(tmp_path)
    partial = Path(f"{path}.partial")
    before = _snapshot(partial)
    with klio.RelevanceWriter(path, {**META, "created": "another time"}, resume=True) as out:
        assert out.resumed_rows == 6
        assert set(out.completed_rows().values()) == {6}
        _write(out, [2, 3])
        now = _snapshot(partial)  # the earlier shards are untouched; new ones follow them
        assert {n: now[n] for n in before} == before and len(now) == len(before) + 2
    assert os.listdir(tmp_path) == ["r.h5"]
    with klio.RelevanceWriter(tmp_path / "whole.h5", META) as out:
        _write(out, [0, 1, 2, 3])
    resumed, whole = klio.load_relevances(path), klio.load_relevances(tmp_path / "whole.h5")
    for k in ("a", "b"):
        np.testing.assert_array_equal(resumed.relevance[k], whole.relevance[k])
    np.testing.assert_array_equal(resumed.predictions, whole.predictions)


def test_writer_resume_interrupted_again_grows_partial(tmp_path):
    path = _partial(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with klio.RelevanceWriter(path, META, resume=True) as out:
            _write(out, [2, 3, 4], stop_after=1)
    assert set(_rows_per_dataset(f"{path}.partial").values()) == {12}
    assert os.listdir(tmp_path) == ["r.h5.partial"]


@pytest.mark.parametrize("key, value", [("model_weights_sha256", "1" * 64),
                                        ("analyzer_kwargs", {"a": {}, "b": {"epsilon": 0.2}}),
                                        ("analyzers", ["a"]), ("extra", 1)])
def test_writer_resume_names_the_differing_key(tmp_path, key, value):
    path = _partial(tmp_path)
    before = _snapshot(f"{path}.partial")
    with pytest.raises(ValueError, match=rf"r\.h5\.partial.*\['{key}'\].*--resume") as info:
        klio.RelevanceWriter(path, {**META, key: value}, resume=True)
    assert "delete it" in str(info.value)
    assert _snapshot(f"{path}.partial") == before
    assert os.listdir(tmp_path) == ["r.h5.partial"]


def _partial_on(tmp_path, backend, version):
    """A partial file as another backend wrote it (its metadata names that backend)."""
    path = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        with klio.RelevanceWriter(path, {**META, "backend": backend,
                                         "backend_version": version}) as out:
            _write(out, [0, 1, 2], stop_after=1)
    return path


def test_writer_resume_refuses_another_backend_unless_told(tmp_path):
    here = keras.backend.backend()
    other = "torch" if here != "torch" else "jax"
    path = _partial_on(tmp_path, other, "9.9")
    before = _snapshot(f"{path}.partial")
    with pytest.raises(ValueError, match=rf"made on Keras backend {other} 9\.9, this run uses "
                                         rf"{here} .*--resume-other-backend"):
        klio.RelevanceWriter(path, META, resume=True)
    assert _snapshot(f"{path}.partial") == before  # refused, untouched
    with klio.RelevanceWriter(path, META, resume=True, other_backend=True) as out:
        assert out.resumed_rows == 6
        _write(out, [2, 3])
    whole = tmp_path / "whole.h5"
    with klio.RelevanceWriter(whole, META) as out:
        _write(out, [0, 1, 2, 3])
    for k in ("a", "b"):
        np.testing.assert_array_equal(klio.load_relevances(path).relevance[k],
                                      klio.load_relevances(whole).relevance[k])


def test_writer_records_the_backend(tmp_path):
    from keras_lrp import backend

    with klio.RelevanceWriter(tmp_path / "r.h5", META) as out:
        _write(out, [0])
    m = klio.load_relevances(tmp_path / "r.h5").metadata
    assert m["backend"] == keras.backend.backend() == backend.NAME
    assert m["backend_version"] == backend.version() and m["keras_version"] == keras.__version__


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all", "truncated"])
def test_writer_refuses_unreadable_partial(tmp_path, content):
    path = _partial(tmp_path)
    header = Path(f"{path}.partial") / "000000.h5"
    header.write_bytes(header.read_bytes()[:2048] if content == "truncated" else content)
    with pytest.raises(ValueError, match=r"Cannot resume from .*r\.h5\.partial.*not a readable"):
        klio.RelevanceWriter(path, META, resume=True)
    assert os.listdir(tmp_path) == ["r.h5.partial"]


def test_writer_failed_write_keeps_whole_batches(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    original = journal.write_shard

    def write_shard(folder, number, *args):
        if number > 2:
            raise OSError("disk full")
        return original(folder, number, *args)
    with pytest.raises(OSError, match="disk full"):
        with klio.RelevanceWriter(path, META) as out:
            monkeypatch.setattr(journal, "write_shard", write_shard)
            _write(out, [0, 1, 2])
    monkeypatch.undo()
    assert set(_rows_per_dataset(f"{path}.partial").values()) == {6}
    with klio.RelevanceWriter(path, META, resume=True) as out:
        _write(out, [2])
    assert len(klio.load_relevances(path).relevance["b"]) == 9


def test_writer_resume_refuses_a_dataset_the_partial_lacks(tmp_path):
    path = _partial(tmp_path)
    with klio.RelevanceWriter(path, META, resume=True) as out:
        with pytest.raises(ValueError, match=r"r\.h5\.partial' holds 6 rows without '/neurons'"):
            out.append_inputs(np.ones((3, 2)), neurons=np.ones(3, int))
        out.abort()
    assert os.listdir(tmp_path) == ["r.h5.partial"]
