"""The ``keras-lrp`` command line: list, analyze, compare, and its one-line user errors.

Each subprocess costs a TensorFlow import (~4 s), so every command runs once per module
(module-scoped fixtures) and several tests read its output. Most error cases call
``keras_lrp.cli.main`` in-process; two run as real subprocesses.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "keras_lrp" / "demos" / "models" / "digits_cnn.keras"
DATA = REPO / "keras_lrp" / "demos" / "models" / "digits_test.npz"
N = 20
METHODS = ("lrp.epsilon", "lrp.z")  # both accept bias=..., so --option bias=False fits both
OPTIONS = {"bias": False}


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc


def assert_close(actual, expected):
    """float32 relevances from two runs of the same graph (batching changes the sum order)."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    assert actual.dtype == np.float32
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=2e-6 * scale)


def assert_one_line_error(stderr, *fragments):
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("keras-lrp: error:")]
    assert len(errors) == 1, stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def model():
    import keras

    return keras.models.load_model(MODEL)


@pytest.fixture(scope="module")
def x():
    with np.load(DATA) as data:
        return data["x"][:N]


@pytest.fixture(scope="module")
def files(tmp_path_factory, x):
    """The same 20 digits as .npy, .npz (key x), .h5 (dataset x) and a folder of PNGs."""
    import h5py
    from PIL import Image

    d = tmp_path_factory.mktemp("cli")
    np.save(d / "x.npy", x)
    np.savez(d / "x.npz", y=np.arange(N), x=x)  # two arrays: the one named x is picked
    with h5py.File(d / "x.h5", "w") as f:
        f["labels"] = np.arange(N)
        f["x"] = x
    images = d / "images"
    images.mkdir()
    for i, digit in enumerate(x):
        pixels = np.rint(digit[..., 0] * 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"digit_{i:03d}.png")  # 8-bit grey ("L")
    np.save(d / "wrong_shape.npy", x[:3, :7, :7])
    return d


@pytest.fixture(scope="module")
def expected(model, x):
    """In-process relevances of METHODS with OPTIONS on all 20 digits, in one batch."""
    import keras_lrp

    return {m: keras_lrp.create_analyzer(m, model, **OPTIONS).analyze(x) for m in METHODS}


@pytest.fixture(scope="module")
def logits(model, x):
    import keras_lrp

    return np.asarray(keras_lrp.create_analyzer("lrp.z", model).forward_model(x))


def _analyze_args(inputs, out, *extra):
    args = ["analyze", MODEL, inputs, "--out", out]
    for m in METHODS:
        args += ["--method", m]
    return args + [f"--option={k}={v}" for k, v in OPTIONS.items()] + list(extra)


@pytest.fixture(scope="module")
def batched(files):
    """analyze x.npy in batches of 7 (3 batches for 20 inputs), with heatmaps."""
    out = files / "batched.h5"
    proc = ok(run_cli(*_analyze_args(files / "x.npy", out, "--batch-size", "7",
                                     "--png", files / "png")))
    return proc, out


@pytest.fixture(scope="module")
def one_batch(files):
    """analyze x.npz with the default batch size (64 > 20: one batch)."""
    out = files / "one_batch.h5"
    return ok(run_cli(*_analyze_args(files / "x.npz", out))), out


@pytest.fixture(scope="module")
def neuron3(files):
    out = files / "neuron3.h5"
    proc = ok(run_cli("analyze", MODEL, files / "x.h5", "--method", "lrp.epsilon",
                      "--option", "epsilon=0.1", "--neuron", "3", "--out", out))
    return proc, out


@pytest.fixture(scope="module")
def from_images(files):
    out = files / "images.h5"
    return ok(run_cli("analyze", MODEL, files / "images", "--method", "lrp.z", "--out", out)), out


@pytest.fixture(scope="module")
def compared(files):
    png = files / "compare.png"
    proc = ok(run_cli("compare", MODEL, files / "x.npy", "--method", "lrp.z", "--method",
                      "lrp.alpha_1_beta_0_IB", "--png", png))
    return proc, png


def load(path):
    from keras_lrp.io import load_relevances

    return load_relevances(path)


# ---------------------------------------------------------------------------- list

def test_list_names_every_analyzer_and_rule():
    import keras_lrp
    from keras_lrp import rules

    proc = ok(run_cli("list"))
    analyzers_part, _, rules_part = proc.stdout.partition("Rules")
    assert rules_part, proc.stdout
    listed_analyzers = {line.split()[0] for line in analyzers_part.splitlines()[1:]
                        if line.startswith("  ")}
    listed_rules = {line.split()[0] for line in rules_part.splitlines()[1:]
                    if line.startswith("  ")}
    assert set(keras_lrp.ANALYZERS) <= listed_analyzers
    assert set(rules.RULES) <= listed_rules


# ---------------------------------------------------------------------------- analyze

def test_parse_options_reads_python_literals_else_strings():
    from keras_lrp.cli.prepare import parse_options

    assert parse_options(["epsilon=0.1", "bias=False", "input_layer_rule=WSquare",
                          "input_layer_rule2=(0, 1)"]) == {
        "epsilon": 0.1, "bias": False, "input_layer_rule": "WSquare",
        "input_layer_rule2": (0, 1)}


def test_analyze_relevances_equal_in_process(batched, expected):
    proc, out = batched
    assert f"{N} inputs × {len(METHODS)} analyzer(s)" in proc.stdout
    res = load(out)
    assert list(res.relevance) == list(METHODS)
    for m in METHODS:
        assert_close(res.relevance[m], expected[m])


def test_analyze_batch_data_and_metadata(batched, x, model, logits):
    from keras_lrp.io import model_weights_hash

    res = load(batched[1])
    np.testing.assert_array_equal(res.inputs, x)
    np.testing.assert_allclose(res.predictions, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(res.neurons, logits.argmax(axis=1))
    meta = res.metadata
    assert meta["analyzers"] == list(METHODS)
    assert meta["analyzer_names"] == {m: m for m in METHODS}
    assert meta["analyzer_kwargs"] == {m: OPTIONS for m in METHODS}
    assert meta["model_weights_sha256"] == model_weights_hash(model)


def test_analyze_reports_batch_progress(batched):
    assert "batch 3/3" in batched[0].stderr


def test_batches_of_7_equal_one_batch(batched, one_batch):
    a, b = load(batched[1]), load(one_batch[1])
    assert list(a.relevance) == list(b.relevance)
    for m in METHODS:
        assert_close(a.relevance[m], b.relevance[m])
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_allclose(a.predictions, b.predictions, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.neurons, b.neurons)


def test_inputs_from_npz_key_x(one_batch, x, expected):
    res = load(one_batch[1])
    np.testing.assert_array_equal(res.inputs, x)
    for m in METHODS:
        assert_close(res.relevance[m], expected[m])


def test_neuron_3_from_h5_explains_class_3(neuron3, x, model):
    import keras_lrp

    res = load(neuron3[1])
    np.testing.assert_array_equal(res.inputs, x)  # the dataset named x, not "labels"
    np.testing.assert_array_equal(res.neurons, np.full(N, 3))
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=0.1,
                                         neuron_selection_mode="index")
    assert_close(res.relevance["lrp.epsilon"], analyzer.analyze(x, neuron_selection=3))
    winners = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=0.1).analyze(x)
    not_three = res.predictions.argmax(axis=1) != 3
    assert not_three.any()
    assert not np.allclose(res.relevance["lrp.epsilon"][not_three], winners[not_three])


def test_inputs_from_png_folder_round_trip(from_images, x, model):
    import keras_lrp

    res = load(from_images[1])
    assert res.inputs.shape == x.shape  # grey PNGs get the model's single channel
    assert res.inputs.dtype == np.float32
    np.testing.assert_allclose(res.inputs, x, rtol=0, atol=0.5 / 255 + 1e-6)
    assert_close(res.relevance["lrp.z"],
                 keras_lrp.create_analyzer("lrp.z", model).analyze(res.inputs))


def test_analyze_png_writes_heatmap(batched):
    import matplotlib.image as mpimg

    proc, _ = batched
    png = batched[1].parent / "png" / "heatmaps.png"
    assert png.is_file()
    assert str(png) in proc.stdout
    img = mpimg.imread(png)
    assert img.ndim == 3
    rows, cols = min(8, N), len(METHODS) + 1  # --png-samples 8 rows; input + one per method
    assert rows * 50 <= img.shape[0] <= rows * 500, img.shape
    assert cols * 50 <= img.shape[1] <= cols * 500, img.shape
    assert float(np.std(img[..., :3])) > 0.01


# ---------------------------------------------------------------------------- compare

def test_compare_table_matches_in_process(compared, model, x):
    import keras_lrp
    from keras_lrp.analyzers import evaluate

    proc, _ = compared
    rows = {}
    for line in proc.stdout.splitlines():
        match = re.fullmatch(r"(\S+)\s+(-?\d+\.\d{4})\s+(-?\d+\.\d{3})", line.strip())
        if match:
            rows[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    assert set(rows) == {"lrp.z", "lrp.alpha_1_beta_0_IB"}, proc.stdout
    for name, (ratio, aopc) in rows.items():
        analyzer = keras_lrp.create_analyzer(name, model)
        relevance = analyzer.analyze(x)
        scores = np.asarray(analyzer.forward_model(x))
        target = scores.argmax(axis=1)
        explained = scores[np.arange(N), target].astype(np.float64)
        mine = np.mean(relevance.reshape(N, -1).sum(axis=1, dtype=np.float64) / explained)
        assert abs(mine - ratio) <= 1e-4 + 1e-6, (name, mine, ratio)
        curve = evaluate.pixel_flipping(
            lambda b, analyzer=analyzer: np.asarray(analyzer.forward_model(b)), x,
            relevance, target=target, steps=16)
        assert abs(curve.mean_aopc() - aopc) <= 1e-3 + 1e-6, (name, curve.mean_aopc(), aopc)
    # lrp.z keeps the biases: some logit is absorbed; the IB variant is closer to 1 here
    assert abs(rows["lrp.alpha_1_beta_0_IB"][0] - 1) < abs(rows["lrp.z"][0] - 1)


def test_compare_writes_png(compared):
    import matplotlib.image as mpimg

    proc, png = compared
    assert png.is_file()
    assert str(png) in proc.stdout
    img = mpimg.imread(png)
    assert img.ndim == 3 and min(img.shape[:2]) >= 100


# ---------------------------------------------------------------------------- errors

def test_error_missing_model_subprocess(files):
    proc = run_cli("analyze", files / "no_such_model.keras", files / "x.npy", "--method",
                   "lrp.z", "--out", files / "never.h5", in_process=False)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "model file not found", "no_such_model.keras")
    assert not (files / "never.h5").exists()


def test_error_batch_size_zero_subprocess(files):
    proc = run_cli("analyze", MODEL, files / "x.npy", "--method", "lrp.z", "--batch-size", "0",
                   "--out", files / "never0.h5", in_process=False)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--batch-size", "0")
    assert not (files / "never0.h5").exists()


def _main(capsys, *args):
    from keras_lrp.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr()


def test_error_missing_inputs(capsys, files):
    rc, cap = _main(capsys, "analyze", MODEL, files / "missing.npy", "--method", "lrp.z",
                    "--out", files / "e.h5")
    assert rc == 2
    assert_one_line_error(cap.err, "inputs file not found", "missing.npy")


def test_error_unknown_method_lists_valid_names(capsys, files):
    import keras_lrp

    rc, cap = _main(capsys, "analyze", MODEL, files / "x.npy", "--method", "lrp.epsilom",
                    "--out", files / "e.h5")
    assert rc == 2
    line = assert_one_line_error(cap.err, "lrp.epsilom")
    for name in keras_lrp.ANALYZERS:
        assert name in line, name
    assert not (files / "e.h5").exists()


def test_error_misspelt_option_key(capsys, files):
    rc, cap = _main(capsys, "analyze", MODEL, files / "x.npy", "--method", "lrp.epsilon",
                    "--option", "epsilonn=0.1", "--out", files / "e.h5")
    assert rc == 2
    assert_one_line_error(cap.err, "epsilonn", "epsilon")


def test_error_option_without_equals(capsys, files):
    rc, cap = _main(capsys, "compare", MODEL, files / "x.npy", "--method", "lrp.z",
                    "--method", "lrp.epsilon", "--option", "epsilon")
    assert rc == 2
    assert_one_line_error(cap.err, "key=value", "'epsilon'")
    assert cap.out == ""


def test_error_inputs_of_wrong_shape(capsys, files):
    rc, cap = _main(capsys, "analyze", MODEL, files / "wrong_shape.npy", "--method", "lrp.z",
                    "--out", files / "e.h5")
    assert rc == 2
    assert_one_line_error(cap.err, "(3, 7, 7")
    assert not (files / "e.h5").exists()


def test_error_batch_size_zero_in_process(capsys, files):
    from keras_lrp.cli import main

    with pytest.raises(SystemExit) as info:  # argparse's parser.error
        main(["compare", str(MODEL), str(files / "x.npy"), "--method", "lrp.z", "--method",
              "lrp.epsilon", "--batch-size", "0"])
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "--batch-size must be >= 1")


def test_error_compare_needs_two_methods(capsys, files):
    rc, cap = _main(capsys, "compare", MODEL, files / "x.npy", "--method", "lrp.z")
    assert rc == 2
    assert_one_line_error(cap.err, "at least two --method")


def test_error_out_is_an_existing_folder(capsys, files):
    rc, cap = _main(capsys, "analyze", MODEL, files / "x.npy", "--method", "lrp.z",
                    "--out", files)
    assert rc == 2
    assert_one_line_error(cap.err, str(files))


def test_error_inputs_h5_not_hdf5(capsys, files):
    junk = files / "junk.h5"
    junk.write_text("not an HDF5 file")
    rc, cap = _main(capsys, "analyze", MODEL, junk, "--method", "lrp.z",
                    "--out", files / "e.h5")
    assert rc == 2
    assert_one_line_error(cap.err, "junk.h5")


@pytest.mark.parametrize("command, option", [("compare", "--steps"),
                                             ("analyze", "--png-samples")])
def test_error_nonpositive_counts_rejected_before_any_work(capsys, files, tmp_path, command,
                                                           option):
    from keras_lrp.cli import main

    out = tmp_path / "never.h5"
    args = [command, str(MODEL), str(files / "x.npy"), "--method", "lrp.z", "--method",
            "lrp.epsilon", option, "0"] + (["--out", str(out)] if command == "analyze" else [])
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, f"{option} must be >= 1")
    assert not out.exists()


def test_no_tensorflow_start_up_lines():
    """Without TF_CPP_MIN_LOG_LEVEL in the environment, keras-lrp still prints none of
    TensorFlow's start-up lines (oneDNN, CUDA drivers, absl); ``--verbose`` lets them through."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "keras_lrp.cli", "list"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "lrp.epsilon_gamma_box" in proc.stdout and "(Zennit)" in proc.stdout
    for noise in ("oneDNN", "cuda", "absl", "cpu_feature_guard", "I0000"):
        assert noise not in proc.stderr, proc.stderr


def _options(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for inner in _options(sub):
                    yield (name,) + inner[1:] if inner[0] == "" else inner
        elif not isinstance(action, argparse._HelpAction):
            yield ("", action)


def test_help_describes_every_option_and_its_default():
    """Every option of every command has help text, and an option with a default value states
    it in its help (``--help`` is the CLI's reference)."""
    import argparse

    from keras_lrp.cli.app import build_parser

    seen = set()
    for command, action in _options(build_parser()):
        seen.add((command, action.dest))
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        default = action.default
        if action.option_strings and default not in (None, False, [], argparse.SUPPRESS):
            assert f"default: {default}" in action.help, (command, action.option_strings)
    assert {("analyze", "resume"), ("analyze", "batch_size"), ("compare", "steps"),
            ("demo", "task"), ("demo", "models_dir")} <= seen


def test_help_of_every_command_runs(capsys):
    from keras_lrp.cli import main

    for command in ("analyze", "compare", "demo", "generate", "list"):
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0
        assert f"usage: keras-lrp {command}" in capsys.readouterr().out
