"""``keras-lrp compare --metrics … --html …``: the metric table and the HTML report, end to end
on the shipped digits CNN and text transformer, and their one-line errors. The metrics are the
tests' own (report_metrics), registered for the run as keras_lrp.metrics would name them."""

import html
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from report_metrics import FlipCurve, Gini, gini_by_pairs, register

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "keras_lrp" / "demos" / "models"
MODEL = MODELS / "digits_cnn.keras"


def one_error(stderr):
    errors = [line for line in stderr.splitlines() if line.startswith("keras-lrp: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def digits_npy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare-report")
    with np.load(MODELS / "digits_test.npz") as data:
        x = data["x"][:24]
    np.save(folder / "x.npy", x)
    return folder, x


@pytest.fixture(scope="module")
def reported(digits_npy):
    folder, _ = digits_npy
    mp = pytest.MonkeyPatch()
    register(mp, Gini=Gini, FlipCurve=FlipCurve)
    try:
        proc = run_cli("compare", MODEL, folder / "x.npy", "--method", "lrp.epsilon",
                       "--method", "lrp.epsilon_IB", "--metrics", "gini, FlipCurve",
                       "--html", folder / "report.html", "--bootstrap", "200",
                       "--png", folder / "cmp.png", "--png-samples", "3")
    finally:
        mp.undo()
    return proc, folder


def test_metrics_table_printed_after_the_usual_one(reported, digits_npy):
    import keras

    from keras_lrp.core.statistics import bootstrap_ci

    proc, folder = reported
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["analyzer", "ΣR", "/", "explained", "AOPC"]  # kept as it was
    head = next(i for i, line in enumerate(lines) if line.startswith("method"))
    assert "gini (↑)" in lines[head] and "flip_curve (↑)" in lines[head]
    import keras_lrp

    model = keras.models.load_model(MODEL)
    x = digits_npy[1]
    for k, name in enumerate(["lrp.epsilon", "lrp.epsilon_IB"], start=1):
        relevance = keras_lrp.create_analyzer(name, model).analyze(x)
        mean, low, high = bootstrap_ci(gini_by_pairs(relevance), 200, seed=0)
        row = lines[head + k]
        assert row.startswith(name + " ")
        shown = re.findall(r"(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]", row)[0]
        np.testing.assert_allclose([float(v) for v in shown], [mean, low, high], rtol=2e-3)
    assert "lrp.epsilon vs lrp.epsilon_IB: moved share" in proc.stdout
    assert f"wrote {folder / 'report.html'}" in proc.stdout
    assert f"wrote {folder / 'cmp.png'}" in proc.stdout and (folder / "cmp.png").is_file()


def test_html_report_written(reported):
    _, folder = reported
    text = (folder / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert re.findall(r"<th [^>]*>([^<]*)</th>", text) == ["method", "gini ↑", "flip_curve ↑"]
    assert "<h3>lrp.epsilon vs lrp.epsilon_IB</h3>" in text
    assert "3 → " not in text  # no labels on the command line: "#0: predicted 3" in the PNG


def test_metrics_of_the_package_by_name(digits_npy):
    import keras

    import keras_lrp
    from keras_lrp.metrics import Sparseness

    folder, x = digits_npy
    proc = run_cli("compare", MODEL, folder / "x.npy", "--method", "lrp.z", "--method",
                   "lrp.z_IB", "--metrics", "sparseness", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = keras.models.load_model(MODEL)
    rows = dict(re.findall(r"^(lrp\.z(?:_IB)?) +(-?[\d.]+)", proc.stdout, re.M))
    for name in ("lrp.z", "lrp.z_IB"):
        analyzer = keras_lrp.create_analyzer(name, model)
        expected = Sparseness()(analyzer, x, a=analyzer.analyze(x)).mean()
        assert float(rows[name]) == pytest.approx(expected, rel=1e-3)


def test_unknown_metric_lists_the_known_ones_before_any_work(digits_npy, monkeypatch):
    folder, _ = digits_npy
    register(monkeypatch, Gini=Gini, FlipCurve=FlipCurve)
    proc = run_cli("compare", REPO / "missing.keras", folder / "x.npy", "--method", "lrp.z",
                   "--method", "lrp.z_IB", "--metrics", "Gini,Sparsenes",
                   "--html", folder / "never.html")
    assert proc.returncode == 2
    assert one_error(proc.stderr) == ("keras-lrp: error: --metrics: Unknown metric "
                                      "'Sparsenes'. Known metrics: FlipCurve, Gini.")
    assert not (folder / "never.html").exists()  # checked before the model is even read


@pytest.mark.parametrize("args, message", [
    (["--metrics", "Gini,,Gini"], "names separated by commas"),
    (["--metrics", "Gini,gini2,Gini"], "names Gini more than once"),
    (["--html", "no-such-folder/r.html"], "does not exist"),
    (["--bootstrap", "-1"], "--bootstrap must be >= 0")])
def test_usage_errors(digits_npy, monkeypatch, args, message):
    folder, _ = digits_npy
    register(monkeypatch, Gini=Gini, gini2=Gini)
    proc = run_cli("compare", MODEL, folder / "x.npy", "--method", "lrp.z", "--method",
                   "lrp.z_IB", *args, cwd=folder)
    assert proc.returncode == 2
    assert message in one_error(proc.stderr)


def test_token_inputs_with_a_vocabulary(tmp_path):
    from keras_lrp.demos.text import WORDS

    with np.load(MODELS / "sentiment_test.npz") as data:
        np.save(tmp_path / "ids.npy", data["x"][:3])
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    proc = run_cli("compare", MODELS / "sentiment_transformer.keras", tmp_path / "ids.npy",
                   "--method", "lrp.z", "--method", "lrp.z_IB", "--vocab",
                   tmp_path / "vocab.txt", "--html", tmp_path / "t.html", "--steps", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert html.escape("<pad>") in text and "lrp.z − lrp.z_IB" in text
    assert "<img" not in text  # tokens are coloured text
