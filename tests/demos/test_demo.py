"""``keras-lrp demo``: run once as a subprocess, then check every file it wrote.

The demo explains the shipped digits CNN with each analyzer of ``DEMO_ANALYZERS`` and writes
heatmaps.png, ib_comparison.png, report.html, relevances.h5 and summary.txt. The numbers in
the summary table are checked against values computed here, in-process, from the same model and
digits.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
MODEL_PATH = REPO / "keras_lrp" / "demos" / "models" / "digits_cnn.keras"
DATA_PATH = REPO / "keras_lrp" / "demos" / "models" / "digits_test.npz"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"  # does not exist yet: the demo creates it
    proc = run_cli("demo", "--out", out, in_process=False)  # a real process, as a user runs it
    return proc, out


@pytest.fixture(scope="module")
def model():
    import keras

    return keras.models.load_model(MODEL_PATH)


@pytest.fixture(scope="module")
def digits():
    with np.load(DATA_PATH) as data:
        return data["x"], data["y"]


@pytest.fixture(scope="module")
def results(demo):
    from keras_lrp.io import load_relevances

    return load_relevances(demo[1] / "relevances.h5")


@pytest.fixture(scope="module")
def table(demo):
    """summary.txt as {label: (ΣR/logit text, absorbed text, AOPC float)}."""
    from keras_lrp.demos.digits import DEMO_ANALYZERS

    labels = [label for label, _, _ in DEMO_ANALYZERS] + ["random (baseline)"]
    rows = {}
    for line in (demo[1] / "summary.txt").read_text().splitlines():
        parts = line.rsplit(maxsplit=3)
        if len(parts) == 4 and parts[0].strip() in labels:
            rows[parts[0].strip()] = (parts[1], parts[2], float(parts[3]))
    return rows


def test_demo_exits_zero_and_writes_five_files(demo):
    proc, out = demo
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    names = ("heatmaps.png", "ib_comparison.png", "report.html", "relevances.h5", "summary.txt")
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert "Wrote heatmaps.png, ib_comparison.png, report.html, relevances.h5 and summary.txt" \
        in proc.stdout


def test_report_html_is_self_contained_and_compares_both_ib_pairs(demo, results):
    text = (demo[1] / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]*)"', text)
    assert len(sources) >= 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in text and "https://" not in text
    assert "<title>keras-lrp demo: digits_cnn on 360 test digits</title>" in text
    for name in ("lrp.alpha_1_beta_0", "lrp.alpha_2_beta_1"):
        a = results.relevance[name].astype(np.float64).sum(-1).reshape(360, -1)
        b = results.relevance[name + "_IB"].astype(np.float64).sum(-1).reshape(360, -1)
        moved = 0.5 * np.abs(a / np.abs(a).sum(1, keepdims=True)
                             - b / np.abs(b).sum(1, keepdims=True)).sum(1)
        match = re.search(rf"<h3>{name} vs {name}_IB</h3><p class=\"moved\">Moved share: "
                          r"<b>([\d.]+)%</b>", text)
        assert match, name
        assert float(match.group(1)) == pytest.approx(100 * moved.mean(), abs=0.051)


def test_heatmaps_png_loads_with_plausible_size(demo):
    import matplotlib.image as mpimg

    img = mpimg.imread(demo[1] / "heatmaps.png")
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    h, w = img.shape[:2]
    from keras_lrp.demos.digits import DEMO_ANALYZERS

    # one row per digit class (10), one column per analyzer plus the input column
    cols = len(DEMO_ANALYZERS) + 1
    assert 10 * 50 <= h <= 10 * 500, img.shape
    assert cols * 50 <= w <= cols * 500, img.shape
    assert 0.5 < (h / 10) / (w / cols) < 2, "cells should be roughly square"
    assert float(np.std(img[..., :3])) > 0.01, "the figure should not be blank"


def test_relevances_h5_holds_one_array_per_analyzer(demo, results, digits):
    from keras_lrp.demos.digits import DEMO_ANALYZERS

    x = digits[0]
    labels = [label for label, _, _ in DEMO_ANALYZERS]
    assert list(results.relevance) == labels
    for label in labels:
        rel = results.relevance[label]
        assert rel.shape == x.shape, label
        assert np.all(np.isfinite(rel)), label
        assert np.any(rel != 0), label


def test_relevances_h5_batch_data(results, digits, model):
    import keras_lrp

    x = digits[0]
    np.testing.assert_array_equal(results.inputs, x)
    assert results.inputs.dtype == x.dtype
    logits = np.asarray(keras_lrp.create_analyzer("lrp.z", model).forward_model(x))
    assert results.predictions.shape == (len(x), 10)
    np.testing.assert_allclose(results.predictions, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(results.neurons, logits.argmax(axis=1))


def test_relevances_h5_metadata(results, model):
    from keras_lrp.demos.digits import DEMO_ANALYZERS
    from keras_lrp.io import model_weights_hash

    meta = results.metadata
    labels = [label for label, _, _ in DEMO_ANALYZERS]
    assert meta["analyzers"] == labels
    assert meta["analyzer_names"] == {label: name for label, name, _ in DEMO_ANALYZERS}
    # kwargs travel as JSON: tuples come back as lists
    assert meta["analyzer_kwargs"] == {label: json.loads(json.dumps(kwargs))
                                       for label, _, kwargs in DEMO_ANALYZERS}
    assert meta["model_name"] == model.name
    assert meta["model_weights_sha256"] == model_weights_hash(model)
    for key in ("keras_lrp_version", "backend", "backend_version", "keras_version", "created"):
        assert meta.get(key), key


@pytest.mark.parametrize("label", ["lrp.z", "a1b0_IB + WSquare input"])
def test_stored_relevance_matches_in_process(results, digits, model, label):
    import keras_lrp
    from keras_lrp.demos.digits import DEMO_ANALYZERS

    name, kwargs = next((n, k) for lb, n, k in DEMO_ANALYZERS if lb == label)
    expected = keras_lrp.create_analyzer(name, model, **kwargs).analyze(digits[0])
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(results.relevance[label], expected, rtol=1e-5, atol=2e-6 * scale)


def test_summary_lists_every_analyzer_and_the_random_baseline(table):
    from keras_lrp.demos.digits import DEMO_ANALYZERS

    assert set(table) == {label for label, _, _ in DEMO_ANALYZERS} | {"random (baseline)"}
    ratio, absorbed, _ = table["random (baseline)"]
    assert ratio == absorbed == "–"


def test_summary_wsquare_ratio_matches_in_process(table, digits, model):
    """ΣR / winning logit for AlphaBeta(1, 0)-IB with WSquare at the input, computed here."""
    import keras_lrp

    x = digits[0]
    analyzer = keras_lrp.create_analyzer("lrp.alpha_1_beta_0_IB", model,
                                         input_layer_rule="WSquare")
    relevance = analyzer.analyze(x)
    logits = np.asarray(analyzer.forward_model(x), dtype=np.float64)
    explained = logits[np.arange(len(x)), logits.argmax(axis=1)]
    mine = float(np.mean(relevance.reshape(len(x), -1).sum(axis=1, dtype=np.float64)
                         / explained))
    ratio_text = table["a1b0_IB + WSquare input"][0]
    assert ratio_text == "1.0000"
    assert abs(mine - float(ratio_text)) <= 1e-4 + 1e-6, (mine, ratio_text)


def test_summary_random_baseline_aopc_below_epsilon_gamma_box(table):
    random_aopc = table["random (baseline)"][2]
    gamma_box_aopc = table["lrp.epsilon_gamma_box"][2]
    assert random_aopc < gamma_box_aopc, (random_aopc, gamma_box_aopc)


def test_stdout_prints_the_summary_table(demo):
    proc, out = demo
    assert (out / "summary.txt").read_text().strip() in proc.stdout


def test_demo_runtime_printed_under_60_s(demo):
    match = re.search(r"in (\d+(?:\.\d+)?) s\.", demo[0].stdout)
    assert match, demo[0].stdout[-500:]
    assert float(match.group(1)) < 60


def test_demo_help_explains_out():
    proc = run_cli("demo", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--out" in proc.stdout
    assert "output folder" in proc.stdout
