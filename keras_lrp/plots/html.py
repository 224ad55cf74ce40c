"""A :class:`~keras_lrp.metrics.comparison.Comparison` as one self-contained HTML page.

:func:`write_html` writes a single file that needs nothing else: its figures are inline PNGs
(``data:`` URIs, drawn off-screen with Matplotlib's Agg canvas by :mod:`keras_lrp.plots.heatmap`
and :mod:`keras_lrp.plots.tokens`), its style and its one small script are inline, and a
Content-Security-Policy forbids every other source, so the page loads nothing from the network.
Every text from the user (method and metric names, labels, tokens) is escaped.

The page shows, in order: the metric table (methods × metrics, ``mean [low, high]`` with the
bootstrap interval, the best mean per metric starred, sortable by clicking a column header), the
mean perturbation curves of the metrics that return curves, the heatmaps (images: a grid with
its colour bar and ``true → predicted`` row titles; token ids: coloured tokens; tabular: bar
charts), and for each ignore-bias pair the difference map R − R_IB on its own colour scale with
the share of relevance that moved.
"""

from __future__ import annotations

import base64
import html
import io
from typing import List, Optional, Sequence

import numpy as np

from keras_lrp.io.atomic import write_atomically
from keras_lrp.plots import heatmap, tokens

#: Nothing but inline style, inline script and data: images; no request leaves the page.
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;
 padding:0 16px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:32px;border-bottom:1px solid
 #ddd;padding-bottom:4px}
table.metrics{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
table.metrics th,table.metrics td{border:1px solid #ccc;padding:4px 10px;text-align:right}
table.metrics th:first-child,table.metrics td:first-child{text-align:left}
table.metrics th{background:#f3f3f3;cursor:pointer;user-select:none}
table.metrics th:hover{background:#e6e6e6}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.best{background:#e7f6e7;font-weight:bold}td small{color:#666;font-weight:normal}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.tokens span{font-family:monospace;padding:2px 3px;margin:1px;border-radius:3px;
 display:inline-block}
.note{color:#555;font-size:.9em}code{background:#f3f3f3;padding:0 3px}
"""

# Click a header: sort the rows by that column, best first for a metric (its data-first),
# again: the other way. Empty values (NaN) stay last.
_SCRIPT = """
(function () {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var first = th.getAttribute("data-first") || "ascending";
        var other = first === "ascending" ? "descending" : "ascending";
        var dir = th.getAttribute("aria-sort") === first ? other : first;
        var numeric = th.getAttribute("data-type") === "number";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var u = a.cells[col].getAttribute("data-value");
          var v = b.cells[col].getAttribute("data-value");
          if (numeric) {
            var x = u === "" ? NaN : Number(u), y = v === "" ? NaN : Number(v);
            if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
            return dir === "ascending" ? x - y : y - x;
          }
          return dir === "ascending" ? u.localeCompare(v) : v.localeCompare(u);
        });
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def figure_uri(fig, dpi: int = 100) -> str:
    """A Matplotlib figure as a ``data:image/png;base64,…`` URI, its blank margins cropped to
    ``dpi / 10`` pixels (drawn once: ``bbox_inches="tight"`` would draw it twice)."""
    from matplotlib.image import imsave

    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    ink = np.any(rgba[..., :3] < 250, axis=-1) & (rgba[..., 3] > 0)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size:
        pad = max(1, dpi // 10)
        rgba = rgba[max(rows[0] - pad, 0):rows[-1] + pad + 1,
                    max(cols[0] - pad, 0):cols[-1] + pad + 1]
    buffer = io.BytesIO()
    imsave(buffer, rgba, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(fig, alt: str, dpi: int = 100) -> str:
    return f'<img src="{figure_uri(fig, dpi)}" alt="{_e(alt)}">'


def _number(value: float) -> str:
    return f"{value:.4g}" if np.isfinite(value) else "–"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%" if np.isfinite(value) else "–"


def pick_samples(comparison, samples: Optional[Sequence[int]] = None, limit: int = 8) -> List[int]:
    """The rows the figures show: ``samples``, else the first sample of each true class (up to
    10 classes) when the labels are known, else the first ``limit``."""
    n = len(comparison.x)
    if samples is not None:
        picked = [int(i) for i in samples]
        if not picked or min(picked) < -n or max(picked) >= n:
            raise ValueError(f"samples must be indices in [0, {n}); got {list(samples)}.")
        return [i % n for i in picked]
    if comparison.labels is not None:
        classes = np.unique(comparison.labels)
        if len(classes) <= 10:  # in class order, as the demos' figures
            return [int(np.flatnonzero(comparison.labels == c)[0]) for c in classes]
    return list(range(min(limit, n)))


def _row_titles(comparison, picked) -> List[str]:
    p = comparison.predictions
    if comparison.labels is None:
        return [f"#{i}: predicted {p[i]}" for i in picked]
    return [f"{comparison.labels[i]} → {p[i]}" for i in picked]


def _kind(comparison) -> str:
    x = comparison.x
    if np.issubdtype(x.dtype, np.integer) and x.ndim == 2:
        return "tokens"
    return "image" if x.ndim in (3, 4) else "tabular"


def metric_table(comparison) -> str:
    """The sortable ``<table>`` of methods × metrics, the best mean per metric marked."""
    pct = round(100 * comparison.confidence)
    heads = ['<th data-type="text" data-first="ascending" title="click to sort">method</th>']
    for r in comparison.metrics.values():
        arrow, first = ("↑", "descending") if r.higher_is_better else ("↓", "ascending")
        way = "higher" if r.higher_is_better else "lower"
        heads.append(f'<th data-type="number" data-first="{first}" title="{way} is better; '
                     f'click to sort">{_e(r.name)} {arrow}</th>')
    rows = []
    for m in comparison.methods:
        cells = [f'<td data-value="{_e(m)}">{_e(m)}</td>']
        for r in comparison.metrics.values():
            mean, (low, high) = r.mean[m], r.ci[m]
            value = repr(float(mean)) if np.isfinite(mean) else ""
            text = _number(mean)
            if np.isfinite(low) and np.isfinite(high):
                text += f" <small>[{_number(low)}, {_number(high)}]</small>"
            if m in r.best():
                cells.append(f'<td class="best" data-value="{value}" title="best mean">'
                             f'{text} ★</td>')
            else:
                cells.append(f'<td data-value="{value}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="metrics sortable" id="metrics"><thead><tr>{"".join(heads)}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="note">Mean over {len(comparison.x)} samples and its {pct}% percentile '
            f"bootstrap interval [low, high] ({comparison.bootstrap} resamples of the samples, "
            f"seed {comparison.seed}); ↑ higher is better, ↓ lower is better; ★ the best mean "
            "of each metric. Click a column's header to sort by it.</p>")


def _curves(comparison) -> List[str]:
    parts = []
    for r in comparison.metrics.values():
        if not r.curves:
            continue
        fig = heatmap.new_figure(6.0, 3.6, layout="constrained")
        ax = fig.subplots()
        for m, curve in r.curves.items():
            ax.plot(np.arange(len(curve)), curve, marker="o", markersize=2.5, label=m)
        ax.set(xlabel="perturbation step", ylabel="mean over the samples", title=r.name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        parts.append(_img(fig, f"mean perturbation curve of {r.name}"))
    return parts


def _token_rows(comparison, picked, columns) -> str:
    """Coloured tokens: for each picked sample, one row per column (label → (N, T) map)."""
    names = comparison.token_names
    rows, titles = [], []
    for i in picked:
        words = [names[t] if names is not None else str(t) for t in comparison.x[i].tolist()]
        for label, r in columns.items():
            rows.append((words, r[i]))
            titles.append(f"{_row_titles(comparison, [i])[0]} · {label}")
    return '<div class="tokens">' + tokens.token_rows_html(rows, titles) + "</div>"


def _heatmaps(comparison, picked) -> str:
    kind, maps = _kind(comparison), {m: comparison.feature_map(m) for m in comparison.methods}
    if kind == "tokens":
        return _token_rows(comparison, picked, maps)
    if kind == "image":
        fig = heatmap.plot_grid({m: r[picked] for m, r in maps.items()},
                                inputs=comparison.x[picked],
                                row_titles=_row_titles(comparison, picked))
        return _img(fig, "heatmaps: one row per sample, one column per method")
    titles = _row_titles(comparison, picked)
    return "".join(f"<h3>{_e(m)}</h3>" + _img(heatmap.plot_features(r[picked], titles=titles),
                                               f"relevance bars of {m}")
                   for m, r in maps.items())


def _pairs(comparison, picked) -> List[str]:
    parts, kind = [], _kind(comparison)
    for p in comparison.pairs:
        low, high = p.ci
        interval = (f" [{_percent(low)}, {_percent(high)}]"
                    if np.isfinite(low) and np.isfinite(high) else "")
        parts.append(f'<h3>{_e(p.method)} vs {_e(p.ib)}</h3><p class="moved">Moved share: '
                     f"<b>{_percent(p.mean)}</b>{interval} of the relevance (mean over "
                     f"{len(p.moved)} samples and its bootstrap interval; 0%: the same map up "
                     "to scale, 100%: no overlap).</p>")
        a, b = comparison.feature_map(p.method), comparison.feature_map(p.ib)
        if kind == "tokens":
            parts.append(_token_rows(comparison, picked, {
                p.method: a, p.ib: b, f"{p.method} − {p.ib}": p.difference}))
            continue
        fig = heatmap.plot_comparison(
            a[picked], b[picked], inputs=comparison.x[picked] if kind == "image" else None,
            names=(p.method, p.ib), row_titles=_row_titles(comparison, picked),
            difference=True)
        parts.append(_img(fig, f"{p.method} and {p.ib} with their difference"))
    return parts


def render(comparison, title: Optional[str] = None,
           samples: Optional[Sequence[int]] = None) -> str:
    """The report's HTML text (see :func:`write_html`)."""
    from keras_lrp.version import __version__

    picked = pick_samples(comparison, samples)
    title = title or f"keras-lrp comparison: {comparison.model_name}"
    explained = ("the winning class" if np.array_equal(comparison.targets, comparison.predictions)
                 else "the given outputs")
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="note">{len(comparison.x)} samples of shape {_e(comparison.x.shape[1:])} '
            f"explained for {explained} with {len(comparison.methods)} methods: "
            f"{_e(', '.join(comparison.methods))}. keras-lrp {_e(__version__)}.</p>"]
    if comparison.metrics:
        body += ["<h2>Metrics</h2>", metric_table(comparison)]
        curves = _curves(comparison)
        if curves:
            body += ["<h2>Perturbation curves</h2>", *curves]
    body += ["<h2>Heatmaps</h2>", _heatmaps(comparison, picked)]
    if comparison.pairs:
        body += ["<h2>With and without the bias</h2>",
                 '<p class="note">For each method and its ignore-bias (IB) twin: the two maps on '
                 "one shared scale per row, and their difference ΔR = R − R<sub>IB</sub> on its "
                 "own scale. The <i>moved share</i> is ½ Σ<sub>i</sub> | R<sub>i</sub> / "
                 "Σ<sub>j</sub>|R<sub>j</sub>| − R<sub>IB,i</sub> / Σ<sub>j</sub>|R<sub>IB,j"
                 "</sub>| |: the fraction of the |relevance| mass that has to move (or change "
                 "sign) to turn one map into the other, both scaled to unit total |R|.</p>",
                 *_pairs(comparison, picked)]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        *body, f"<script>{_SCRIPT}</script>", "</body></html>"])


def write_html(comparison, path, title: Optional[str] = None,
               samples: Optional[Sequence[int]] = None) -> str:
    """Write the comparison as one self-contained HTML file, atomically.

    Args:
        comparison: a :class:`~keras_lrp.metrics.comparison.Comparison`.
        path: the file; its folder must exist.
        title: the page's title (default: ``"keras-lrp comparison: <model name>"``).
        samples: indices of the samples the figures show (default: :func:`pick_samples`).

    Returns:
        The path written.

    Example:
        >>> write_html(keras_lrp.metrics.comparison.compare_methods(model, x, methods),
        ...            "report.html")
    """
    text = render(comparison, title, samples)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
    return str(path)


__all__ = ["CSP", "figure_uri", "metric_table", "pick_samples", "render", "write_html"]
