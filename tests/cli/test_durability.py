"""Long jobs survive what stops them: real processes, stopped by real signals.

``keras-lrp analyze`` runs as a subprocess on the shipped digits CNN (720 digits in 180 batches
of 4, two analyzers) and is stopped when its work folder holds a random number of shards, plus
a random delay of up to 10 ms (so a stop lands anywhere in a batch, writes included). The
reference is the same command run once without a stop; "equal" means equal bit for bit: the
resumed run computes the same batches on the same backend.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_lrp import cli
from keras_lrp import io as klio
from keras_lrp.io import journal, lock

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "keras_lrp" / "demos" / "models" / "digits_cnn.keras"
DATA = REPO / "keras_lrp" / "demos" / "models" / "digits_test.npz"
N, BATCH, METHODS = 720, 4, ("lrp.epsilon", "lrp.alpha_1_beta_0_IB")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def _args(inputs, out, *extra):
    args = ["analyze", str(MODEL), str(inputs), "--out", str(out), "--batch-size", str(BATCH)]
    for m in METHODS:
        args += ["--method", m]
    return args + [str(e) for e in extra]


def _shards(out) -> int:
    folder = Path(f"{out}.partial")
    try:
        return len(journal.shard_numbers(str(folder))) if folder.is_dir() else 0
    except FileNotFoundError:  # renamed away as we looked
        return 0


def _stop_when(command, out, shards, sig, rng, second=None):
    """Run ``command``; once ``out``'s work folder holds ``shards`` shards (and a random
    delay of up to 10 ms), send ``sig`` (and ``second`` right after). Returns the process's
    exit code and stderr."""
    proc = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and _shards(out) < shards and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(rng.uniform(0, 0.01))
    assert proc.poll() is None, f"the run ended before the stop: {proc.communicate()[1][-2000:]}"
    proc.send_signal(sig)
    if second is not None:
        proc.send_signal(second)
    _, err = proc.communicate(timeout=240)
    return proc.returncode, err


def _cli(inputs, out, *extra):
    return [sys.executable, "-m", "keras_lrp.cli", *_args(inputs, out, *extra)]


def assert_prefix_of(partial: klio.Results, whole: klio.Results) -> int:
    """The work folder's whole rows are the first rows of the uninterrupted run, exactly."""
    n = len(partial.inputs)
    assert n % BATCH == 0 and set(partial.relevance) == set(METHODS)
    np.testing.assert_array_equal(partial.inputs, whole.inputs[:n])
    for m in METHODS:
        np.testing.assert_array_equal(partial.relevance[m], whole.relevance[m][:n])
    return n


def assert_same(actual: klio.Results, whole: klio.Results) -> None:
    assert list(actual.relevance) == list(METHODS)
    for m in METHODS:
        assert actual.relevance[m].tobytes() == whole.relevance[m].tobytes()  # bit for bit
    for k in ("inputs", "predictions", "neurons"):
        assert getattr(actual, k).tobytes() == getattr(whole, k).tobytes()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    with np.load(DATA) as data:
        x = np.concatenate([data["x"], data["x"][::-1]])[:N]
    path = tmp_path_factory.mktemp("durable") / "x.npy"
    np.save(path, x)
    return path


@pytest.fixture(scope="module")
def whole(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "whole.h5"
    assert cli.main(_args(inputs, out)) == 0
    return klio.load_relevances(out)


@pytest.mark.parametrize("sig", [
    pytest.param(signal.SIGKILL, id="SIGKILL", marks=pytest.mark.process),  # not the backend's
    pytest.param(signal.SIGTERM, id="SIGTERM")])
def test_three_stops_then_resume_equals_one_run(inputs, whole, tmp_path, sig):
    rng = np.random.default_rng(int(sig))
    out, kept = tmp_path / "out.h5", 0
    for _ in range(3):
        target = _shards(out) + int(rng.integers(5, 40))
        code, err = _stop_when(_cli(inputs, out, "--resume"), out, target, sig, rng)
        assert "Traceback" not in err
        if sig == signal.SIGTERM:
            assert code == 143, err[-2000:]
            assert "terminated (SIGTERM)" in err and "rerun with --resume to continue" in err
        else:
            assert code == -signal.SIGKILL
            assert Path(f"{out}.lock").exists()  # left by the killed run: stale, see below
        partial = klio.load_relevances(f"{out}.partial")
        rows = assert_prefix_of(partial, whole)
        assert rows >= kept + BATCH  # every stop keeps what came before it, and more
        if sig == signal.SIGTERM:
            assert f"kept the {rows} finished rows" in err
        kept = rows
    proc = subprocess.run(_cli(inputs, out, "--resume"), cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"resuming {out}.partial: {kept} of {N} rows already done" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]  # no work folder, lock or temp file
    assert_same(klio.load_relevances(out), whole)


@pytest.mark.process
def test_second_signal_stops_at_once_and_keeps_what_is_on_disk(inputs, whole, tmp_path):
    rng, out = np.random.default_rng(7), tmp_path / "out.h5"
    code, err = _stop_when(_cli(inputs, out), out, 20, signal.SIGTERM, rng,
                           second=signal.SIGINT)
    assert code in (143, 130) and "Traceback" not in err  # the second may come too late
    rows = assert_prefix_of(klio.load_relevances(f"{out}.partial"), whole)
    assert cli.main(_args(inputs, out, "--resume")) == 0
    assert rows >= 19 * BATCH
    assert_same(klio.load_relevances(out), whole)


def test_second_signal_during_cleanup_exits_at_once(tmp_path):
    """The first signal raises; one arriving during the cleanup it starts ends the process
    there, with 128 + its number, without running the rest of the cleanup."""
    script = (
        "import os, signal, time\n"
        "from keras_lrp.cli import signals\n"
        "with signals.stop_on_signals():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(5)\n"
        "    except signals.Terminated:\n"
        "        print('first', flush=True)\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(5)\n"
        "        print('cleanup went on', flush=True)\n")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stdout == "first\n"
    assert "stopping now" in proc.stderr and time.monotonic() - start < 5


@pytest.mark.process
def test_a_second_run_on_the_same_out_is_refused(inputs, whole, tmp_path, capsys):
    out = tmp_path / "out.h5"
    proc = subprocess.Popen(_cli(inputs, out), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and _shards(out) < 5:
        time.sleep(0.001)
    assert cli.main(_args(inputs, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"is being written by another keras-lrp run (pid {proc.pid} on {lock.host()}" in err
    _, first_err = proc.communicate(timeout=240)
    assert proc.returncode == 0, first_err[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]
    assert_same(klio.load_relevances(out), whole)
