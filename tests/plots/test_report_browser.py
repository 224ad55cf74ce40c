"""The comparison report in a real browser: headless Chromium, driven by Playwright.

Playwright (the ``playwright`` package of the ``test`` extra) drives the system's Chromium
(Debian's ``chromium`` at /usr/bin/chromium, which CI installs) over the DevTools protocol: no
driver binary whose version must match the browser's, and its events report console messages,
uncaught script errors and every request the page makes. Its own browser downloads
(``playwright install``) are never used.

The page must load with no console error and no uncaught exception, request nothing but itself
(its images are ``data:`` URIs), show every image decoded, sort the metric table on a header
click, and render to a screenshot that is not blank. The report does not depend on the Keras
backend, so this runs on TensorFlow only; it skips, saying why, where no browser can start.
"""

import io
import os

import numpy as np
import pytest
from helpers import BACKEND
from report_metrics import FlipCurve, Gini

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason=f"the HTML report does not depend on the backend; the TensorFlow run tests it in a "
           f"browser (this is {BACKEND})")

CHROMIUM = os.environ.get("KERAS_LRP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set "
                    "KERAS_LRP_CHROMIUM)")
    manager = sync_api.sync_playwright().start()
    try:
        browser = manager.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    except Exception as e:  # noqa: BLE001 - any launch failure: no browser here
        manager.stop()
        pytest.skip(f"Chromium at {CHROMIUM} cannot start: {str(e).splitlines()[0]}")
    yield browser
    browser.close()
    manager.stop()


@pytest.fixture(scope="module")
def report(digits, tmp_path_factory):
    import keras_lrp

    model, _, x, y = digits
    path = tmp_path_factory.mktemp("browser") / "report.html"
    comparison = keras_lrp.report(model, x[:24], ["lrp.epsilon", "lrp.epsilon_IB",
                                                  ("a2b1", "lrp.alpha_2_beta_1", {}), "gradient"],
                                  metrics=[Gini(), FlipCurve(steps=4)], labels=y[:24],
                                  bootstrap=200, path=path, samples=range(4))
    return comparison, path


COLUMN = ("Array.from(document.querySelectorAll('#metrics tbody tr'))"
          ".map(r => r.cells[{}].getAttribute('data-value'))")


def _open(browser, path):
    """A page showing ``path``, with the problems it reported and the URLs it requested."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems, requests = [], []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth,"
                           " i.naturalHeight, i.src.slice(0, 22)])")
    return page, problems, requests, images


def test_the_checks_see_a_broken_page(browser, tmp_path):
    """The same checks on a page with a script error and an image that does not load."""
    path = tmp_path / "broken.html"
    path.write_text("<!DOCTYPE html><html><body><img src='missing.png'>"
                    "<script>undefinedFunction()</script></body></html>")
    page, problems, requests, images = _open(browser, path)
    page.close()
    assert any("undefinedFunction" in p for p in problems)
    assert any("missing.png" in p for p in problems)
    assert images[0][1] == 0  # naturalWidth of an image that did not load


def test_report_in_chromium(browser, report, tmp_path):
    import matplotlib.image as mpimg

    comparison, path = report
    page, problems, requests, images = _open(browser, path)

    # every image decoded, at its natural size
    assert len(images) == 3  # curves, heatmaps, the IB pair
    for complete, width, height, src in images:
        assert complete and width > 0 and height > 0
        assert src == "data:image/png;base64,"
    assert [u for u in requests if not u.startswith("data:")] == [path.as_uri()]

    # a header click sorts the column, best first; a second click reverses it
    gini = comparison.metrics["gini"]
    before = [float(v) for v in page.evaluate(COLUMN.format(1))]
    assert before == [gini.mean[m] for m in comparison.methods]
    assert before != sorted(before, reverse=True)
    page.click("#metrics thead th:nth-child(2)")
    after = [float(v) for v in page.evaluate(COLUMN.format(1))]
    assert after == sorted(before, reverse=True)  # higher is better: descending
    assert page.get_attribute("#metrics thead th:nth-child(2)", "aria-sort") == "descending"
    assert page.evaluate(COLUMN.format(0))[0] == gini.best()[0]  # the rows moved with it
    page.click("#metrics thead th:nth-child(2)")
    assert [float(v) for v in page.evaluate(COLUMN.format(1))] == sorted(before)
    page.click("#metrics thead th:nth-child(1)")
    assert page.evaluate(COLUMN.format(0)) == sorted(comparison.methods)

    # the screenshot shows something
    png = page.screenshot(full_page=True)
    (tmp_path / "report.png").write_bytes(png)
    pixels = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    assert pixels.shape[0] > 900 and pixels.shape[1] == 1280
    assert float(pixels.var()) > 0.001
    colours = np.unique((pixels.reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 50  # red and blue heatmaps, grey digits, text
    reds = np.sum((pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.2) & (pixels[..., 2] < 0.2))
    blues = np.sum((pixels[..., 2] > 0.9) & (pixels[..., 0] < 0.2) & (pixels[..., 1] < 0.2))
    assert reds > 100 and blues > 100
    page.close()
    assert problems == []
