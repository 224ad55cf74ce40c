"""``--backend``: the command line runs on the Keras backend it names (set before Keras loads),
says in one line when that backend is not installed, and refuses to switch a process whose Keras
is already loaded on another."""
import importlib.util

import keras
import pytest
from helpers import run_cli

HERE = keras.backend.backend()
MISSING = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b) is None]


def test_backend_in_use_runs_and_is_reported():
    proc = run_cli("--backend", HERE, "list", in_process=False)
    assert proc.returncode == 0, proc.stderr
    assert "lrp.epsilon" in proc.stdout
    assert proc.stderr == ""  # start-up noise hidden on every backend


@pytest.mark.skipif(not MISSING, reason="every backend is installed here")
def test_missing_backend_is_one_line():
    proc = run_cli("--backend", MISSING[0], "list", in_process=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"the Keras backend '{MISSING[0]}' cannot start" in lines[0]
    assert f"keras-lrp[{MISSING[0]}]" in lines[0]


def test_switching_a_loaded_keras_is_refused():
    other = "jax" if HERE != "jax" else "torch"
    proc = run_cli("--backend", other, "list")
    assert proc.returncode == 2
    err = proc.stderr
    assert err.count("keras-lrp: error:") == 1
    assert f"Keras was already loaded on {HERE}" in err and f"KERAS_BACKEND={other}" in err
    assert keras.backend.backend() == HERE
