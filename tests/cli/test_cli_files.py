"""Every bad input of the command line is one clear line, exit status 2, before any file exists.

Each case runs ``python -m keras_lrp.cli`` as a subprocess (as a user would) on a small Dense
model (6 features, 3 classes) and asserts the exit code, the absence of a traceback, that the
output folder holds nothing new afterwards (no output, no ``.partial``, no temporary file), and
the words of the message. Running as root, the permission cases cannot be provoked (root reads
and writes everything), so they are skipped there.
"""
import os
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    keras.utils.set_random_seed(0)
    i = keras.Input((6,), name="x")
    model = keras.Model(i, keras.layers.Dense(3, activation="softmax")(
        keras.layers.Dense(5, activation="relu")(i)), name="m")
    model.save(d / "m.keras")
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.normal(size=(50, 6)).astype("float32"))
    np.save(d / "bad.npy", rng.normal(size=(50, 7)).astype("float32"))
    (d / "out").mkdir()
    return d


def listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def fails(d, args, *words):
    """Run, and check: exit 2, one error line with ``words``, no traceback, no new file."""
    before = listing(d / "out")
    proc = run_cli(*args, cwd=d)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("keras-lrp: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], (word, errors[0])
    assert listing(d / "out") == before, listing(d / "out")
    return errors[0]


def analyze(d, inputs, *extra, method="lrp.z"):
    return ["analyze", d / "m.keras", inputs, "--method", method, "--out", d / "out" / "r.h5",
            *extra]


# ------------------------------------------------------------------ 1. validate before work
def test_inputs_of_the_wrong_width(d):
    line = fails(d, analyze(d, d / "bad.npy"), "bad.npy", "(50, 7)", "expects ('batch', 6)")
    assert "partial" not in line and "kept" not in line


@pytest.mark.parametrize("method, option, words", [
    ("lrp.z", "epsilon=abc", ("epsilon", "Valid")),
    ("lrp.alpha_beta", "alpha=0.5", ("alpha - beta = 1", "alpha=0.5")),
    ("lrp.epsilon", "epsilon=abc", ("Epsilon needs a number for epsilon", "'abc'")),
    ("lrp.alpha_beta", "alpha=x", ("needs a number for alpha", "'x'")),
    ("lrp.epsilon", "bias=1", ("needs bias=True or False", "bias=1")),
])
def test_invalid_options(d, method, option, words):
    fails(d, analyze(d, d / "x.npy", "--option", option, method=method), *words)


def test_neuron_out_of_range_is_named_once(d):
    line = fails(d, analyze(d, d / "x.npy", "--neuron", "7"), "--neuron 7", "3 outputs",
                 "0 to 2")
    assert line.count("7") == 1, line


def test_output_folder_missing_or_a_file(d):
    fails(d, ["analyze", d / "m.keras", d / "x.npy", "--method", "lrp.z", "--out",
              d / "out" / "no_such_folder" / "r.h5"], "no_such_folder", "does not exist")
    fails(d, ["analyze", d / "m.keras", d / "x.npy", "--method", "lrp.z", "--out",
              d / "x.npy" / "r.h5"], "does not exist")


@pytest.mark.skipif(ROOT_USER, reason="root writes into read-only folders")
def test_output_folder_not_writable(d):
    locked = d / "out" / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        fails(d, ["analyze", d / "m.keras", d / "x.npy", "--method", "lrp.z", "--out",
                  locked / "r.h5"], "permission denied")
    finally:
        locked.chmod(0o755)
        locked.rmdir()


def test_earlier_output_untouched_by_a_failed_run(d):
    out = d / "out" / "good.h5"
    ok = run_cli("analyze", d / "m.keras", d / "x.npy", "--method", "lrp.z", "--out", out,
                 cwd=d)
    assert ok.returncode == 0, ok.stderr[-2000:]
    content = out.read_bytes()
    fails(d, ["analyze", d / "m.keras", d / "bad.npy", "--method", "lrp.z", "--out", out],
          "bad.npy")
    assert out.read_bytes() == content
    out.unlink()


# ----------------------------------------------------------------------------- 2. the models
def test_model_missing(d):
    fails(d, analyze(d, d / "x.npy")[:1] + ["nope.keras"] + analyze(d, d / "x.npy")[2:],
          "model file not found", "nope.keras")


@pytest.mark.parametrize("content, words", [
    (b"", ("empty",)),
    (b"this is not a zip archive", ("could not be read as a Keras model", "not")),
    ("truncated", ("could not be read as a Keras model",)),
])
def test_model_corrupt_is_not_reported_as_missing(d, content, words):
    path = d / "corrupt.keras"
    if content == "truncated":
        data = (d / "m.keras").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    line = fails(d, ["analyze", path, d / "x.npy", "--method", "lrp.z", "--out",
                     d / "out" / "r.h5"], "corrupt.keras", *words)
    assert "not found" not in line


def test_model_zip_without_a_model(d):
    path = d / "zip.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    fails(d, ["analyze", path, d / "x.npy", "--method", "lrp.z", "--out", d / "out" / "r.h5"],
          "zip.keras", "could not be read as a Keras model")


# ----------------------------------------------------------------------------- 2. the inputs
def _npy_cases(d):
    good = (d / "x.npy").read_bytes()
    (d / "empty.npy").write_bytes(b"")
    (d / "truncated.npy").write_bytes(good[: len(good) - 100])
    (d / "garbage.npy").write_bytes(b"not numpy at all" * 10)
    np.save(d / "objects.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    np.save(d / "scalar.npy", np.float32(3))
    np.save(d / "strings.npy", np.array([["a"] * 6] * 4))
    np.save(d / "none.npy", np.zeros((0, 6), "float32"))


@pytest.mark.parametrize("name, words", [
    ("empty.npy", ("empty.npy", "empty (0 bytes)")),
    ("truncated.npy", ("truncated.npy", "truncated", "bytes")),
    ("garbage.npy", ("garbage.npy", "not a NumPy .npy file")),
    ("objects.npy", ("objects.npy", "Python objects")),
    ("scalar.npy", ("scalar.npy", "single number")),
    ("strings.npy", ("strings.npy", "dtype <U1", "expected numbers")),
    ("none.npy", ("none.npy", "no samples")),
    ("missing.npy", ("inputs file not found", "missing.npy")),
])
def test_npy_failures(d, name, words):
    _npy_cases(d)
    fails(d, analyze(d, d / name), *words)


def test_npz_failures_and_key(d):
    x = np.load(d / "x.npy")
    np.savez(d / "two.npz", a=x, b=x[:, :5])
    fails(d, analyze(d, d / "two.npz"), "two.npz", "several arrays (a, b)", "--key")
    fails(d, analyze(d, d / "two.npz", "--key", "q"), "two.npz", "no array 'q'", "a, b")
    fails(d, analyze(d, d / "two.npz", "--key", "b"), "(50, 5)")
    (d / "corrupt.npz").write_bytes((d / "two.npz").read_bytes()[:300])
    fails(d, analyze(d, d / "corrupt.npz"), "corrupt.npz", "not a readable NumPy .npz")
    ok = run_cli(*analyze(d, d / "two.npz", "--key", "a"), cwd=d)
    assert ok.returncode == 0, ok.stderr[-2000:]
    (d / "out" / "r.h5").unlink()


def test_h5_failures_and_key(d):
    x = np.load(d / "x.npy")
    with h5py.File(d / "two.h5", "w") as f:
        f["first"] = x
        f["group/second"] = x
    fails(d, analyze(d, d / "two.h5"), "two.h5", "several datasets (first, group/second)",
          "--key")
    (d / "junk.h5").write_bytes(b"\x89HDF junk" * 20)
    fails(d, analyze(d, d / "junk.h5"), "junk.h5", "not a readable HDF5 file")
    (d / "cut.h5").write_bytes((d / "two.h5").read_bytes()[:2000])
    fails(d, analyze(d, d / "cut.h5"), "cut.h5", "not a readable HDF5 file")
    ok = run_cli(*analyze(d, d / "two.h5", "--key", "group/second"), cwd=d)
    assert ok.returncode == 0, ok.stderr[-2000:]
    with h5py.File(d / "out" / "r.h5", "r") as f:
        np.testing.assert_array_equal(f["inputs"][()], x)
    (d / "out" / "r.h5").unlink()


@pytest.fixture(scope="module")
def image_model(d):
    for channels in (1, 2):
        i = keras.Input((4, 4, channels), name="img")
        keras.Model(i, keras.layers.Dense(2)(keras.layers.Flatten()(i)), name="im").save(
            d / f"im{channels}.keras")
    return d / "im1.keras"


def _image_case(d, case):
    folder = d / f"img_{case}"
    folder.mkdir(exist_ok=True)
    if case == "unreadable":
        (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif case == "sizes":
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "a.png")
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / "b.png")
    elif case == "channels":  # RGB for a model of 2 input channels
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "a.png")
    return folder


@pytest.mark.parametrize("case, words", [
    ("unreadable", ("cannot read image", "a.png")),
    ("sizes", ("different sizes", "a.png", "b.png")),
    ("channels", ("img_channels", "(1, 4, 4, 3)", "expects ('batch', 4, 4, 2)")),
    ("empty", ("no image files",)),
])
def test_image_failures(d, image_model, case, words):
    folder = _image_case(d, case)
    model = d / "im2.keras" if case == "channels" else image_model
    fails(d, ["analyze", model, folder, "--method", "lrp.z", "--out", d / "out" / "r.h5"],
          *words)


@pytest.mark.skipif(ROOT_USER, reason="root reads files without read permission")
def test_unreadable_inputs_file(d):
    locked = d / "locked.npy"
    locked.write_bytes((d / "x.npy").read_bytes())
    locked.chmod(0o000)
    try:
        fails(d, analyze(d, locked), "locked.npy", "permission denied")
    finally:
        locked.chmod(0o644)


def test_debug_shows_the_traceback(d):
    (d / "junk2.npz").write_bytes(b"junk")
    proc = run_cli("--debug", *analyze(d, d / "junk2.npz"), cwd=d)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "keras-lrp: error:" in proc.stderr


def test_compare_steps_beyond_the_inputs_fail_first(d):
    fails(d, ["compare", d / "m.keras", d / "x.npy", "--method", "lrp.z", "--method",
              "lrp.epsilon"], "--steps 16", "6 pixel-flipping regions", "--steps 6")


def test_repeated_method(d):
    fails(d, analyze(d, d / "x.npy", "--method", "lrp.z"), "--method lrp.z", "more than once")
