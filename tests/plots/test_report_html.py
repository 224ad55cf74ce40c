"""keras_lrp.plots.html and keras_lrp.report: one self-contained HTML page per comparison,
read back here with Python's HTML parser (the browser test, test_report_browser.py, runs it)."""

import base64
import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import keras
import numpy as np
import pytest
from report_metrics import FlipCurve, Gini

import keras_lrp
from keras_lrp.metrics.comparison import compare_methods
from keras_lrp.plots.html import pick_samples, render, write_html

MODELS = Path(keras_lrp.__file__).resolve().parent / "demos" / "models"
EVIL = '<b>eps & "co"</b>'  # a method label that must come out as text


class Odd(Gini):
    higher_is_better = False


Odd.name = "Gini <i>&</i>"  # after the class: Metric names each subclass by its class name


class Page(HTMLParser):
    """Every tag with its attributes, and the metric table's cells."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.rows, self.heads, self._cell = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = {"attrs": attrs, "text": "", "tag": tag}

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            (self.heads if self._cell["tag"] == "th" else self.rows[-1]).append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


@pytest.fixture(scope="module")
def page(digits, tmp_path_factory):
    model, _, x, y = digits
    x, y = x[:30], y[:30]
    comparison = compare_methods(model, x, [(EVIL, "lrp.epsilon", {}), "lrp.epsilon_IB",
                                            ("lrp.epsilon_IB_twin", "lrp.z", {}), "gradient"],
                                 metrics=[Gini(), FlipCurve(steps=4), Odd()], labels=y,
                                 ib_pairs=[(EVIL, "lrp.epsilon_IB")], bootstrap=100)
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert write_html(comparison, path, title="digits <&> report",
                      samples=range(4)) == str(path)
    text = path.read_text(encoding="utf-8")
    return comparison, text, Page(text), path


def test_self_contained_every_image_inline_and_nothing_fetched(page):
    _, text, parsed, _ = page
    images = [a for tag, a in parsed.tags if tag == "img"]
    assert len(images) == 3  # curves, heatmaps, the IB pair
    for a in images:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert a["alt"]
    for tag, a in parsed.tags:
        for key in ("src", "href", "action", "data"):
            assert not str(a.get(key, "")).lower().startswith(("http:", "https:", "//")), tag
    assert "http://" not in text and "https://" not in text
    assert not [t for t, a in parsed.tags if t in ("link", "iframe", "object", "embed")]
    assert not [a for t, a in parsed.tags if t == "script" and "src" in a]
    csp, = [a["content"] for t, a in parsed.tags if a.get("http-equiv") ==
            "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "img-src data:" in csp


def test_user_text_is_escaped(page):
    comparison, text, parsed, _ = page
    assert EVIL not in text and "<i>&</i>" not in text and "<&>" not in text
    assert html.escape(EVIL) in text
    assert "<title>digits &lt;&amp;&gt; report</title>" in text
    assert [r[0]["text"] for r in parsed.rows if r] == comparison.methods  # read back as text
    assert [h["text"] for h in parsed.heads] == ["method", "gini ↑", "flip_curve ↑",
                                                 "Gini <i>&</i> ↓"]


def test_table_holds_the_means_and_marks_the_best_of_each_metric(page):
    comparison, _, parsed, _ = page
    rows = [r for r in parsed.rows if r]
    for j, result in enumerate(comparison.metrics.values(), start=1):
        best = [r[0]["text"] for r in rows if r[j]["attrs"].get("class") == "best"]
        assert best == result.best() and best  # lrp.z ties lrp.epsilon on FlipCurve: both
        for r in rows:
            m = r[0]["text"]
            assert float(r[j]["attrs"]["data-value"]) == result.mean[m]
            low, high = result.ci[m]
            assert f"[{low:.4g}, {high:.4g}]" in r[j]["text"]
            assert r[j]["text"].endswith("★") == (m in best)
    directions = [h["attrs"]["data-first"] for h in parsed.heads]
    assert directions == ["ascending", "descending", "descending", "ascending"]
    # Odd is Gini read the other way round: its best is Gini's worst
    gini, odd = comparison.metrics["gini"], comparison.metrics["Gini <i>&</i>"]
    assert odd.best() == [m for m, v in gini.mean.items() if v == min(gini.mean.values())]


def test_ib_pair_section_states_the_moved_share(page):
    comparison, text, _, _ = page
    pair, = comparison.pairs
    low, high = pair.ci
    assert (f"Moved share: <b>{100 * pair.mean:.1f}%</b> [{100 * low:.1f}%, {100 * high:.1f}%]"
            in text)
    assert f"{html.escape(EVIL)} vs lrp.epsilon_IB" in text
    assert "½ Σ<sub>i</sub>" in text  # the definition


def test_written_atomically(tmp_path):
    from keras_lrp.metrics.comparison import Comparison

    comparison = Comparison(["a"], {"a": np.ones((1, 2))}, np.ones((1, 2)), None,
                            np.zeros(1, int), np.zeros(1, int), {}, [])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_html(comparison, tmp_path / "missing" / "r.html")
    write_html(comparison, tmp_path / "r.html")
    assert os.listdir(tmp_path) == ["r.html"]  # no temporary file left beside it


def test_pick_samples(page):
    comparison = page[0]
    picked = pick_samples(comparison)
    labels = comparison.labels
    assert [labels[i] for i in picked] == sorted(set(labels.tolist()))
    assert all(i == int(np.flatnonzero(labels == labels[i])[0]) for i in picked)
    assert pick_samples(comparison, [3, -1]) == [3, 29]
    with pytest.raises(ValueError, match=r"indices in \[0, 30\)"):
        pick_samples(comparison, [30])


def test_report_is_compare_then_write(digits, tmp_path):
    model, _, x, y = digits
    path = tmp_path / "r.html"
    comparison = keras_lrp.report(model, x[:6], ["lrp.z", "lrp.z_IB"], path=path, labels=y[:6],
                                  bootstrap=10, samples=[0, 1])
    assert [(p.method, p.ib) for p in comparison.pairs] == [("lrp.z", "lrp.z_IB")]
    assert path.read_text(encoding="utf-8") == render(comparison, samples=[0, 1])
    assert "<h2>Metrics</h2>" not in path.read_text(encoding="utf-8")  # none asked for


def test_token_report_shows_words_and_the_difference_row(tmp_path):
    from keras_lrp.demos.text import WORDS

    model = keras.models.load_model(MODELS / "sentiment_transformer.keras")
    with np.load(MODELS / "sentiment_test.npz") as data:
        x, y = data["x"][:4], data["y"][:4]
    path = tmp_path / "tokens.html"
    comparison = keras_lrp.report(model, x, ["lrp.epsilon", "lrp.epsilon_IB"], labels=y,
                                  token_names=WORDS, metrics=[Gini()], bootstrap=20, path=path)
    text = path.read_text(encoding="utf-8")
    parsed = Page(text)
    assert not [t for t, a in parsed.tags if t == "img"]  # tokens are text, not pictures
    spans = [a for t, a in parsed.tags if t == "span"]
    # one sample per class (2); heatmaps: 2 methods; the pair: R, R_IB and R − R_IB rows
    assert len(set(y)) == 2 and len(spans) == 2 * 24 * (2 + 3)
    assert "&lt;pad&gt;" in text and "<pad>" not in text
    first = pick_samples(comparison)[0]
    shown = [html.unescape(t) for t in re.findall(r">([^<]*)</span>", text)]
    assert shown[:24] == [WORDS[t] for t in x[first]]  # the first row: its words, in order
    assert "lrp.epsilon − lrp.epsilon_IB" in text
    pair, = comparison.pairs
    assert comparison.relevances["lrp.epsilon"].shape == x.shape
    np.testing.assert_allclose(pair.difference, comparison.relevances["lrp.epsilon"].astype(float)
                               - comparison.relevances["lrp.epsilon_IB"])
    assert f"{y[first]} → {comparison.predictions[first]} · lrp.epsilon" in text


def test_tabular_report_draws_bars(tmp_path):
    from helpers import dense_net

    keras.utils.set_random_seed(2)
    model = dense_net(5, (6, 3), name="tab")
    x = np.random.default_rng(0).standard_normal((3, 5)).astype("float32")
    comparison = keras_lrp.report(model, x, ["lrp.epsilon", "lrp.epsilon_IB"],
                                  path=tmp_path / "t.html", bootstrap=0)
    parsed = Page((tmp_path / "t.html").read_text(encoding="utf-8"))
    alts = [a["alt"] for t, a in parsed.tags if t == "img"]
    assert alts == ["relevance bars of lrp.epsilon", "relevance bars of lrp.epsilon_IB",
                    "lrp.epsilon and lrp.epsilon_IB with their difference"]
    assert comparison.pairs[0].difference.shape == (3, 5)
