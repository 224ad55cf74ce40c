"""A property-based test of the command line over argument combinations and corrupted files.

Hypothesis draws a command (analyze or compare), a model file (good, truncated, empty, garbage,
a folder, missing), an inputs file (good ``.npy``/``.npz``/``.h5``, wrong width, truncated,
empty, garbage, several arrays, missing), methods, ``--option`` values (valid, misspelt, of the
wrong type, invalid), ``--neuron``, ``--batch-size``, ``--key``, ``--resume`` and the output path
(new, an earlier good result, in a missing folder, a folder). Every run, in process, must end
with exit status 0 or 2 and no traceback; after a failure the output folder holds exactly what
it held before and the earlier good result is byte for byte unchanged.

Profiles: ``HYPOTHESIS_PROFILE=ci`` (default) runs 40 cases; ``dev`` runs 300
(``python -m pytest tests/test_cli_fuzz.py -s`` prints what was tried).
"""
import contextlib
import io
import os
import shutil
from collections import Counter

import h5py
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_lrp.cli import main

EXAMPLES = {"ci": 40, "dev": 300}[os.environ.get("HYPOTHESIS_PROFILE", "ci")]
SEEN = Counter()


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    keras.utils.set_random_seed(0)
    i = keras.Input((6,), name="x")
    keras.Model(i, keras.layers.Dense(3)(keras.layers.Dense(4, activation="relu")(i)),
                name="m").save(d / "good.keras")
    data = (d / "good.keras").read_bytes()
    (d / "cut.keras").write_bytes(data[: len(data) // 3])
    (d / "empty.keras").write_bytes(b"")
    (d / "garbage.keras").write_bytes(b"garbage" * 50)
    (d / "folder.keras").mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 6)).astype("float32")
    np.save(d / "x.npy", x)
    np.save(d / "wide.npy", rng.normal(size=(9, 7)).astype("float32"))
    raw = (d / "x.npy").read_bytes()
    (d / "cut.npy").write_bytes(raw[:-40])
    (d / "empty.npy").write_bytes(b"")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 garbage")
    np.savez(d / "two.npz", a=x, b=x[:, :5])
    with h5py.File(d / "x.h5", "w") as f:
        f["x"] = x
    (d / "out").mkdir()
    assert main(["analyze", str(d / "good.keras"), str(d / "x.npy"), "--method", "lrp.z",
                 "--out", str(d / "out" / "earlier.h5")]) == 0
    return d


MODELS = ["good.keras"] * 6 + ["cut.keras", "empty.keras",
          "garbage.keras", "folder.keras", "missing.keras"]
INPUTS = ["x.npy"] * 4 + ["x.h5", "two.npz", "wide.npy", "cut.npy", "empty.npy",
          "garbage.npz", "missing.npy"]
METHODS = ["lrp.z", "lrp.epsilon", "lrp.alpha_2_beta_1", "lrp.gamma", "gradient",
           "input_t_gradient", "lrp.alpha_beta", "lrp.nope"]
OPTIONS = ["epsilon=0.1", "epsilon=abc", "alpha=0.5", "alpha=2", "bias=False", "bias=1",
           "gamma=x", "nokey=1", "epsilon", "=3"]
OUTS = ["new.h5"] * 3 + ["earlier.h5", "no_folder/r.h5", "."]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(command=st.sampled_from(["analyze", "analyze", "analyze", "compare"]),
       model=st.sampled_from(MODELS), inputs=st.sampled_from(INPUTS),
       methods=st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True),
       options=st.lists(st.sampled_from(OPTIONS), max_size=2),
       neuron=st.sampled_from([None, None, None, 0, 2, 3, -1]),
       batch=st.sampled_from([None, None, None, 1, 4, 0]),
       key=st.sampled_from([None, None, None, "a", "q"]),
       resume=st.booleans(), out=st.sampled_from(OUTS))
def _case(d, command, model, inputs, methods, options, neuron, batch, key, resume, out):
    earlier = d / "out" / "earlier.h5"
    before, content = sorted(os.listdir(d / "out")), earlier.read_bytes()
    args = [command, str(d / model), str(d / inputs)]
    for m in methods:
        args += ["--method", m]
    for o in options:
        args += ["--option", o]
    args += [] if neuron is None else ["--neuron", str(neuron)]
    args += [] if batch is None else ["--batch-size", str(batch)]
    args += [] if key is None else ["--key", key]
    if command == "analyze":
        args += ["--out", str(d / "out" / out)] + (["--resume"] if resume else [])
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(args)
        except SystemExit as e:  # argparse's own errors
            rc = e.code
    text = stderr.getvalue()
    assert rc in (0, 2), (args, rc, text[-3000:])
    assert "Traceback" not in text, (args, text[-3000:])
    if rc == 0:
        SEEN["succeeded"] += 1
        for name in set(os.listdir(d / "out")) - set(before):
            path = d / "out" / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        earlier.write_bytes(content)  # a successful run may replace it: put the original back
        return
    line = [t for t in text.splitlines() if "error" in t][-1].replace(str(d) + "/", "")
    SEEN[" ".join(line.split("error:", 1)[-1].split()[:6])] += 1
    assert sorted(os.listdir(d / "out")) == before, (args, text)
    assert earlier.read_bytes() == content, args


def test_fuzz_exit_codes_tracebacks_and_files(d):
    _case(d)
    print(f"\n[fuzz] {sum(SEEN.values())} cases: " + "; ".join(
        f"{n} × {k}" for k, n in SEEN.most_common()))
    assert SEEN["succeeded"] >= 1 and sum(SEEN.values()) >= EXAMPLES
