"""The demos' figures and printed tables read right: rows labelled true → predicted, each
heatmap figure stating its colour scale, and "–", never nan or inf, for a value that does not
apply. The tables are checked through their formatting functions; the digits figures through
``run_demo`` on one shipped digit per class with just the two AlphaBeta(2, 1) analyzers."""

import re
import shutil

import numpy as np
import pytest
from report_metrics import FlipCurve, Gini, register

from keras_lrp.demos import common, digits, sequence, text, transformer
from keras_lrp.plots import heatmap as hm
from keras_lrp.plots import tokens

NOT_A_NUMBER = re.compile(r"\b(nan|inf)\b", re.IGNORECASE)


def _row(table: str, label: str) -> list:
    """The cells after ``label`` on its line of ``table``."""
    line, = [ln for ln in table.splitlines() if ln.startswith(label + " ")]
    return line[len(label):].split()


# ----------------------------------------------------------------- tables


def test_format_cell_prints_a_dash_for_missing_and_non_finite_values():
    assert common.format_cell(0.8312) == "0.831"
    assert common.format_cell(-15.20081, ".4f", 9) == " -15.2008"
    for missing in (None, float("nan"), np.nan, float("inf"), -np.inf, np.float32("nan")):
        assert common.format_cell(missing, ".3f", 7) == "      –"
    assert common.format_cell(None) == "–"


def test_digits_table_prints_a_dash_where_a_row_lacks_a_value():
    rows = {"lrp.z": {"sum_R / logit": 0.94337, "absorbed": 1.09671, "AOPC": 14.6084},
            "lrp.broken": {"sum_R / logit": float("nan"), "absorbed": float("inf"),
                           "AOPC": float("nan")},
            "random (baseline)": {"AOPC": 10.5862}}
    table = digits.format_table(rows, n=10, accuracy=0.9)
    assert _row(table, "lrp.z") == ["0.9434", "1.0967", "14.608"]
    assert _row(table, "lrp.broken") == ["–", "–", "–"]
    assert _row(table, "random (baseline)") == ["–", "–", "10.586"]
    assert not NOT_A_NUMBER.search(table), table
    widths = {len(ln) for ln in table.splitlines()[1:4]}  # header and rows stay aligned
    assert len(widths) == 1, table


def test_transformer_table_prints_a_dash_for_a_missing_aopc():
    aopc = {"AttnLRP (lrp.z)": 12.34567, "gradient": float("nan"), "random (baseline)": None}
    table = transformer.format_table(aopc, n=360, accuracy=0.95, steps=16)
    assert _row(table, "AttnLRP (lrp.z)") == ["12.346"]
    assert _row(table, "gradient") == ["–"]
    assert _row(table, "random (baseline)") == ["–"]
    assert not NOT_A_NUMBER.search(table), table


def test_text_table_prints_a_dash_for_the_baselines_sign_agreement():
    rows = {"AttnLRP (lrp.z)": {"sentiment share": 0.81234, "sign agreement": 0.98765},
            "no sentiment words": {"sentiment share": 0.5, "sign agreement": float("nan")},
            "uniform (baseline)": {"sentiment share": 0.2041}}
    table = text.format_table(rows, n=1000, accuracy=0.99)
    assert _row(table, "AttnLRP (lrp.z)") == ["0.812", "0.988"]
    assert _row(table, "no sentiment words") == ["0.500", "–"]
    assert _row(table, "uniform (baseline)") == ["0.204", "–"]
    assert not NOT_A_NUMBER.search(table), table


def test_text_scores_of_sequences_without_sentiment_words_print_a_dash():
    """ground_truth_scores gives nan sign agreement when no sequence has a sentiment word;
    the table prints it as "–"."""
    tokens_ = np.array([[10, 11, 0], [12, 13, 14]])
    with pytest.warns(RuntimeWarning):
        scores = text.ground_truth_scores(np.ones((2, 3)), tokens_, np.array([1, 0]))
    assert scores["sentiment share"] == 0.0 and np.isnan(scores["sign agreement"])
    table = text.format_table({"lrp.z": scores}, n=2, accuracy=1.0)
    assert _row(table, "lrp.z") == ["0.000", "–"]


def test_sequence_table_prints_a_dash_for_an_undefined_correlation():
    x, _, marks = sequence.addition_data(6, seed=1)
    relevance = np.zeros((6, sequence.STEPS, 2))
    relevance[:, :, 0] = 1.0  # constant: the correlation with the values is undefined (nan)
    with pytest.warns(RuntimeWarning):
        scores = sequence.recovery(relevance, x, marks, np.ones(6))
    assert np.isnan(scores["corr(R, value)"])
    assert scores["marked share"] == pytest.approx(2 / sequence.STEPS)
    table = sequence.format_table({"flat": scores, "partial": {"marked share": 0.5}}, n=6,
                                  mse=0.01)
    assert _row(table, "flat") == [f"{2 / sequence.STEPS:.3f}", "–", f"{sequence.STEPS:.3f}"]
    assert _row(table, "partial") == ["0.500", "–", "–"]
    assert not NOT_A_NUMBER.search(table), table


# ----------------------------------------------------------------- token heatmaps


def test_token_rows_state_their_scale():
    rows = [(["a", "b", "c"], np.array([0.5, -2.0, 1.0])), (["d", "e"], np.array([0.0, 0.0])),
            (["f"], np.array([1234.5]))]
    fig = tokens.plot_tokens(rows, titles=["one", "two", "three"])
    assert [ax.get_title(loc="right") for ax in fig.axes] == [
        "max|R| 2", "max|R| 0", "max|R| 1.23e+03"]
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["one", "two", "three"]
    fig = tokens.plot_tokens(rows, normalize="all")
    assert [ax.get_title(loc="right") for ax in fig.axes] == ["max|R| of all rows 1.23e+03"] * 3
    page = tokens.tokens_html(rows, titles=["one", "two", "three"])
    assert re.findall(r"<b>(\w+)</b> <small>\(([^)]*)\)</small>", page) == [
        ("one", "max|R| 2"), ("two", "max|R| 0"), ("three", "max|R| 1.23e+03")]
    assert "R / max|R| of the row" in page and page.count("<span") == 6


# ----------------------------------------------------------------- the digits demo's figures


def test_row_labels_read_true_then_predicted():
    assert common.row_labels(np.array([3, 1]), np.array([3, 7])) == ["3 → 3", "1 → 7"]


@pytest.fixture(scope="module")
def digits_figures(tmp_path_factory):
    """run_demo on one shipped test digit per class, explained by the two AlphaBeta(2, 1)
    variants only (the ones ib_comparison.png shows); the figures it saved, by file name."""
    import keras

    models = tmp_path_factory.mktemp("models")
    with np.load(common.MODELS_DIR / "digits_test.npz") as data:
        picked = common.one_per_class(data["y"])
        x, y = data["x"][picked], data["y"][picked]
    np.savez(models / "digits_test.npz", x=x, y=y)
    shutil.copy(common.MODELS_DIR / "digits_cnn.keras", models / "digits_cnn.keras")
    saved, save = {}, hm.save_figure
    mp = pytest.MonkeyPatch()
    mp.setattr(digits, "DEMO_ANALYZERS", [entry for entry in digits.DEMO_ANALYZERS
                                          if entry[1].startswith("lrp.alpha_2_beta_1")])
    mp.setattr(hm, "save_figure", lambda fig, path, dpi=100: (
        saved.__setitem__(path.name, fig), save(fig, path, dpi)))
    register(mp, PixelFlipping=FlipCurve, Gini=Gini)  # the demo's report finds PixelFlipping
    try:
        out = tmp_path_factory.mktemp("demo")
        digits.run_demo(out_dir=str(out), models_dir=str(models), steps=2, verbose=False)
    finally:
        mp.undo()
    model = keras.models.load_model(models / "digits_cnn.keras")
    predictions = np.asarray(model.predict(x, verbose=0)).argmax(axis=1)
    from keras_lrp.io import load_relevances

    return saved, out, x, y, predictions, load_relevances(out / "relevances.h5").relevance


def test_digits_figures_label_rows_true_then_predicted(digits_figures):
    saved, out, x, y, predictions, _ = digits_figures
    assert sorted(saved) == ["heatmaps.png", "ib_comparison.png"]
    expected = [f"{t} → {p}" for t, p in zip(y, predictions)]
    assert expected[:3] == ["0 → 0", "1 → 1", "2 → 2"]
    for name, ncols in (("heatmaps.png", 3), ("ib_comparison.png", 4)):
        fig = saved[name]  # input column first: it carries the row labels
        assert [fig.axes[i * ncols].get_ylabel() for i in range(len(x))] == expected, name
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_ib_comparison_captions_the_shared_scale_of_each_row(digits_figures):
    saved, _, x, _, _, relevance = digits_figures
    fig = saved["ib_comparison.png"]
    a, b = (relevance[k].sum(axis=-1) for k in ("lrp.alpha_2_beta_1", "lrp.alpha_2_beta_1_IB"))
    shared = np.maximum(np.abs(a).max(axis=(1, 2)), np.abs(b).max(axis=(1, 2)))
    assert np.all(shared > 0)
    d = a - b
    pa, pb = a.reshape(len(x), -1), b.reshape(len(x), -1)
    moved = 0.5 * np.abs(pa / np.abs(pa).sum(1, keepdims=True)
                         - pb / np.abs(pb).sum(1, keepdims=True)).sum(1)
    for i in range(len(x)):
        assert [fig.axes[4 * i + j].get_xlabel() for j in (1, 2)] == [
            f"max|R| {shared[i]:.3g}"] * 2
        assert fig.axes[4 * i + 3].get_xlabel() == (f"max|ΔR| {np.abs(d[i]).max():.3g}, "
                                                    f"moved {100 * moved[i]:.0f}%")
    assert [fig.axes[j].get_title() for j in range(4)] == [
        "input", "alpha_2_beta_1", "alpha_2_beta_1_IB", "difference"]
    bars = [c.get_ylabel() for ax in fig.axes for c in ax.child_axes]
    assert bars == ["R / max|R| shared by the row", "ΔR / max|ΔR| of each panel"]
    assert [t.get_text() for t in fig.texts] == [
        f"alpha_2_beta_1 − alpha_2_beta_1_IB: {100 * moved.mean():.0f}% of the relevance moved "
        "(mean over the rows)"]
    heat = saved["heatmaps.png"]
    cax, = [c for ax in heat.axes for c in ax.child_axes]
    assert cax.get_ylabel() == "R / max|R| of each panel"
    own = np.abs(a).max(axis=(1, 2))  # heatmaps.png: column 1 is lrp.alpha_2_beta_1
    assert [heat.axes[3 * i + 1].get_xlabel() for i in range(len(x))] == [
        f"max|R| {v:.3g}" for v in own]


def test_digits_report_holds_the_registered_metrics_and_the_pair(digits_figures):
    saved, out, x, _, predictions, relevance = digits_figures
    text = (out / "report.html").read_text(encoding="utf-8")
    # DEMO_METRICS names PixelFlipping, Sparseness and Completeness: only the first is
    # registered here (as FlipCurve), so the table has that one column
    heads = re.findall(r"<th [^>]*>([^<]*)</th>", text)
    assert heads == ["method", "flip_curve ↑"]
    cells = re.findall(r'<td (?:class="best" )?data-value="([^"]*)"', text)
    assert cells[0::2] == ["lrp.alpha_2_beta_1", "lrp.alpha_2_beta_1_IB"]
    assert "<h3>lrp.alpha_2_beta_1 vs lrp.alpha_2_beta_1_IB</h3>" in text
    assert "<h2>Perturbation curves</h2>" in text
