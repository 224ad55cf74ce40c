"""The sequence side of the user interface: the addition task and its shipped LSTM, the sequence
demo, token heatmaps (PNG and HTML) and ``keras-lrp analyze --vocab``."""

import re
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.demos import sequence as sequence_demo
from keras_lrp.plots import tokens

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "keras_lrp" / "demos" / "models"


def test_addition_data_has_its_known_answer():
    x, y, marks = sequence_demo.addition_data(200, seed=3)
    assert x.shape == (200, sequence_demo.STEPS, 2)
    assert np.all(x[..., 1].sum(axis=1) == 2)  # exactly two markers
    for n in range(200):
        on = np.flatnonzero(x[n, :, 1])
        assert list(on) == sorted(marks[n])
        assert marks[n, 0] < sequence_demo.STEPS // 2 <= marks[n, 1]
        np.testing.assert_allclose(y[n], x[n, on, 0].sum(), rtol=1e-6)


def test_recovery_metrics_by_hand():
    """Two sequences of 4 steps, marks at (0, 2) and (1, 3); relevance worked out by hand."""
    x = np.zeros((2, 4, 2))
    x[0, :, 0], x[1, :, 0] = [0.5, 0.1, -0.5, 0.2], [0.1, 0.3, 0.2, -0.6]
    marks = np.array([[0, 2], [1, 3]])
    r = np.zeros((2, 4, 2))
    r[0, :, 0] = [0.5, 0.0, -0.5, 0.5]  # marked |R| 1.0 of 1.5
    r[1, :, 0] = [0.0, 0.3, 0.0, -0.6]  # all on the marks
    m = sequence_demo.recovery(r, x, marks, predictions=np.array([0.0, -0.3]))
    np.testing.assert_allclose(m["marked share"], (1.0 / 1.5 + 1.0) / 2)
    expected_corr = np.corrcoef([0.5, -0.5, 0.3, -0.6], [0.5, -0.5, 0.3, -0.6])[0, 1]
    np.testing.assert_allclose(m["corr(R, value)"], expected_corr)
    np.testing.assert_allclose(m["ΣR / prediction"], np.median([0.5 / 1.0, -0.3 / -0.3]))


@pytest.fixture(scope="module")
def shipped():
    model = keras.models.load_model(MODELS / "addition_lstm.keras")
    data = np.load(MODELS / "addition_test.npz")
    return model, data["x"], data["y"], data["marks"]


def test_shipped_lstm_solves_the_task(shipped):
    model, x, y, _ = shipped
    pred = model.predict(x, verbose=0).reshape(-1)
    assert np.mean((pred - y) ** 2) < 0.01 * np.var(y)


def test_lrp_recovers_the_marked_values(shipped):
    """On the trained LSTM the marked steps' LRP relevance follows their values (Arras et al.
    2019's criterion); their relevance tracks the value almost exactly."""
    model, x, _, marks = shipped
    r = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(x[:200])
    pred = model.predict(x[:200], verbose=0).reshape(-1)
    m = sequence_demo.recovery(r, x[:200], marks[:200], pred)
    assert m["corr(R, value)"] > 0.99
    assert m["marked share"] > 0.5


def test_sequence_demo_writes_its_files(tmp_path, shipped):
    rows = sequence_demo.run_sequence_demo(out_dir=tmp_path / "out", models_dir=MODELS,
                                           verbose=False)
    assert set(rows) == {label for label, _, _ in sequence_demo.SEQUENCE_ANALYZERS}
    text = (tmp_path / "out" / "summary.txt").read_text()
    model, x, _, marks = shipped
    pred = model.predict(x, verbose=0).reshape(-1)
    r = keras_lrp.create_analyzer("input_t_gradient", model).analyze(x)
    m = sequence_demo.recovery(r, x, marks, pred)
    line = next(ln for ln in text.splitlines() if ln.startswith("input_t_gradient"))
    share, corr, ratio = map(float, line.split()[1:4])
    np.testing.assert_allclose([share, corr, ratio], [m["marked share"], m["corr(R, value)"],
                                                      m["ΣR / prediction"]], atol=6e-4)
    assert (tmp_path / "out" / "tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "out" / "tokens.html").read_text()
    assert html.count("<span") == 6 * sequence_demo.STEPS


def test_tokens_html_colours():
    """Each row scaled by its largest |R|: +max is pure red, −max pure blue, 0 white, half of
    +max half-way to red."""
    html = tokens.tokens_html([(["a", "<b>", "c", "d"], np.array([2.0, -2.0, 0.0, 1.0]))],
                              titles=["t & u"])
    spans = re.findall(r"background:rgb\((\d+),(\d+),(\d+)\)' title='([^']*)'>([^<]*)<", html)
    assert [s[:3] for s in spans] == [("255", "0", "0"), ("0", "0", "255"),
                                      ("255", "255", "255"), ("255", "128", "128")]
    assert [s[4] for s in spans] == ["a", "&lt;b&gt;", "c", "d"]  # escaped
    assert [float(s[3]) for s in spans] == [2.0, -2.0, 0.0, 1.0]
    assert "t &amp; u" in html


def test_tokens_errors(tmp_path):
    with pytest.raises(ValueError, match="Row 0 has 2 tokens but 3 relevance values"):
        tokens.plot_tokens([(["a", "b"], np.zeros(3))])
    with pytest.raises(ValueError, match="Row 0 has non-finite relevance"):
        tokens.tokens_html([(["a"], np.array([np.nan]))])
    with pytest.raises(ValueError, match="normalize must be 'row' or 'all'"):
        tokens.tokens_html([(["a"], np.zeros(1))], normalize="max")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tokens.tokens_html([(["a"], np.zeros(1))], path=tmp_path / "no" / "t.html")
    assert not list(tmp_path.iterdir())  # nothing half-written


def _main(capsys, *args):
    from keras_lrp.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr()


@pytest.fixture(scope="module")
def token_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokens")
    keras.utils.set_random_seed(0)
    i = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(6, 3, mask_zero=True)(i)
    model = keras.Model(i, keras.layers.Dense(2)(keras.layers.LSTM(4)(h)))
    model.save(folder / "m.keras")
    ids = np.array([[1, 2, 3, 0, 0], [5, 4, 3, 2, 1]], dtype="int32")
    np.save(folder / "ids.npy", ids)
    (folder / "vocab.txt").write_text("<pad>\nthe\ncat\nsat\non\nmat\n", encoding="utf-8")
    return folder, model, ids


def test_analyze_with_vocab_writes_token_heatmaps(capsys, token_files):
    folder, model, ids = token_files
    rc, cap = _main(capsys, "analyze", folder / "m.keras", folder / "ids.npy", "--method",
                    "lrp.epsilon", "--out", folder / "r.h5", "--png", folder / "png", "--vocab",
                    folder / "vocab.txt")
    assert rc == 0, cap.err
    html = (folder / "png" / "tokens.html").read_text()
    words = re.findall(r"'>([^<]*)</span>", html)
    assert words == ["the", "cat", "sat", "&lt;pad&gt;", "&lt;pad&gt;",
                     "mat", "on", "sat", "cat", "the"]
    values = [float(v) for v in re.findall(r"title='([^']*)'", html)]
    expected = keras_lrp.create_analyzer("lrp.epsilon", model).analyze(ids)
    np.testing.assert_allclose(values, expected.reshape(-1), rtol=1e-3, atol=1e-6)
    assert values[3] == values[4] == 0.0  # padding: exactly zero


def test_vocab_errors(capsys, token_files):
    folder, _, _ = token_files
    (folder / "short.txt").write_text("a\nb\n")
    rc, cap = _main(capsys, "analyze", folder / "m.keras", folder / "ids.npy", "--method",
                    "lrp.epsilon", "--out", folder / "e.h5", "--vocab", folder / "short.txt")
    assert rc == 2 and "holds token id 5, but --vocab" in cap.err and "has only 2 tokens" in cap.err
    rc, cap = _main(capsys, "analyze", folder / "m.keras", folder / "ids.npy", "--method",
                    "lrp.epsilon", "--out", folder / "e.h5", "--vocab", folder / "none.txt")
    assert rc == 2 and "--vocab" in cap.err and "none.txt" in cap.err
    assert not (folder / "e.h5").exists()


def test_demo_task_sequence_from_the_command_line(capsys, tmp_path):
    rc, cap = _main(capsys, "demo", "--task", "sequence", "--out", tmp_path / "seq",
                    "--models-dir", MODELS)
    assert rc == 0, cap.err
    assert "addition_lstm on 500 test sequences" in cap.out
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == ["summary.txt", "tokens.html",
                                                                   "tokens.png"]
