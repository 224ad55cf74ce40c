"""Token heatmaps: a row of tokens (words, or the steps of a sequence) coloured by relevance,
as a PNG or an HTML page, both written atomically.

Red is positive relevance (evidence for the explained output), blue negative, white none; each
row is scaled by its own largest |R| (``normalize="row"``) or all rows by the largest overall
(``"all"``), so the colours compare tokens, not the absolute size of the relevance. Each row
says that scale: ``"max|R| 0.83"`` (``"max|R| of all rows 0.83"``) at the right of the PNG row,
and after the row's title in the HTML page.
"""

from __future__ import annotations

import html
import os
from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.patches import Rectangle

from keras_lrp.io.atomic import write_atomically
from keras_lrp.plots.heatmap import new_figure, save_figure

Row = Tuple[Sequence[str], np.ndarray]


def _check(rows: Sequence[Row], titles) -> list:
    out = []
    for k, (tokens, relevance) in enumerate(rows):
        relevance = np.asarray(relevance, dtype=np.float64).reshape(-1)
        if len(tokens) != len(relevance):
            raise ValueError(f"Row {k} has {len(tokens)} tokens but {len(relevance)} relevance "
                             "values; give one value per token (sum over the embedding first).")
        if not np.all(np.isfinite(relevance)):
            raise ValueError(f"Row {k} has non-finite relevance values.")
        out.append(([str(t) for t in tokens], relevance))
    if titles is not None and len(titles) != len(out):
        raise ValueError(f"Got {len(titles)} titles for {len(out)} rows.")
    return out


def _peaks(rows, normalize: str) -> list:
    """Each row's max |R| (``"row"``), or the largest over all rows for each (``"all"``)."""
    if normalize not in ("row", "all"):
        raise ValueError(f"normalize must be 'row' or 'all', got {normalize!r}.")
    peaks = [float(np.abs(r).max()) if len(r) else 0.0 for _, r in rows]
    if normalize == "all":
        peaks = [max(peaks, default=0.0)] * len(rows)
    return peaks


def _scales(peaks: list) -> list:
    return [p if p > 0 else 1.0 for p in peaks]


def _caption(peak: float, normalize: str) -> str:
    """The scale a row's colours are divided by, e.g. ``"max|R| 0.83"``."""
    return f"max|R| {'of all rows ' if normalize == 'all' else ''}{peak:.3g}"


def _rgb(value: float) -> Tuple[float, float, float]:
    """value in [−1, 1] → white-to-red (positive) or white-to-blue (negative)."""
    v = float(np.clip(value, -1.0, 1.0))
    return (1.0, 1.0 - v, 1.0 - v) if v >= 0 else (1.0 + v, 1.0 + v, 1.0)


def plot_tokens(rows: Sequence[Row], titles: Optional[Sequence[str]] = None,
                path: Optional[str] = None, normalize: str = "row", dpi: int = 120):
    """Rows of tokens coloured by their relevance.

    Args:
        rows: ``(tokens, relevance)`` pairs, one value per token.
        titles: one title per row, or ``None``.
        path: save the figure there as a PNG (atomically) when given.
        normalize: ``"row"`` (each row by its own largest |R|) or ``"all"``.

    Returns:
        The Matplotlib figure. Each row's scale is its right-hand title, ``"max|R| 0.83"``
        (``"max|R| of all rows 0.83"`` for ``"all"``); its left-hand title is ``titles[k]``.
    """
    rows = _check(rows, titles)
    peaks = _peaks(rows, normalize)
    scales = _scales(peaks)
    width = max((len(t) for t, _ in rows), default=1)
    char = max((len(tok) for t, _ in rows for tok in t), default=1)
    cell = 0.12 * char + 0.15
    fig = new_figure(max(3.0, cell * width + 0.4), 0.75 * max(len(rows), 1))
    for k, ((tokens, relevance), scale) in enumerate(zip(rows, scales)):
        ax = fig.add_axes([0.01, 1 - (k + 1) / len(rows) + 0.02, 0.98, 0.9 / len(rows) - 0.3
                           / len(rows)])
        ax.set_xlim(0, width)
        ax.set_ylim(0, 1)
        ax.axis("off")
        if titles is not None:
            ax.set_title(titles[k], fontsize=8, loc="left", pad=2)
        ax.set_title(_caption(peaks[k], normalize), fontsize=7, loc="right", pad=2)
        for i, (tok, r) in enumerate(zip(tokens, relevance)):
            ax.add_patch(_rectangle(i, _rgb(r / scale)))
            ax.text(i + 0.5, 0.5, tok, ha="center", va="center", fontsize=7,
                    family="monospace", color="white" if abs(r / scale) > 0.6 else "black")
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def _rectangle(i, color):
    return Rectangle((i + 0.03, 0.05), 0.94, 0.9, facecolor=color, edgecolor="0.8", lw=0.5)


def tokens_html(rows: Sequence[Row], titles: Optional[Sequence[str]] = None,
                path: Optional[str] = None, normalize: str = "row") -> str:
    """The same rows as an HTML page (each token a ``<span>`` with its colour and, as a tooltip,
    its relevance), each row's title followed by its scale (``"max|R| 0.83"``). Writes it to
    ``path`` (atomically) when given; returns the text."""
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>keras-lrp token "
             "relevance</title><style>span{font-family:monospace;padding:2px 3px;margin:1px;"
             "border-radius:3px;display:inline-block}</style></head><body>",
             token_rows_html(rows, titles, normalize), "</body></html>"]
    text = "\n".join(parts)
    if path is not None:
        write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
    return text


def token_rows_html(rows: Sequence[Row], titles: Optional[Sequence[str]] = None,
                    normalize: str = "row") -> str:
    """The body of :func:`tokens_html`: a note on the colours, then per row its title and
    scale and its tokens as coloured ``<span>`` elements (every text escaped); an HTML fragment
    for a page of one's own (:mod:`keras_lrp.plots.html` puts it in the comparison report)."""
    rows = _check(rows, titles)
    peaks = _peaks(rows, normalize)
    scales = _scales(peaks)
    parts = ["<p><small>Red: positive relevance, blue: negative, white: none; the colour is R / "
             f"max|R| of {'all rows' if normalize == 'all' else 'the row'}.</small></p>"]
    for k, ((tokens, relevance), scale) in enumerate(zip(rows, scales)):
        title = f"<b>{html.escape(titles[k])}</b> " if titles is not None else ""
        parts.append(f"<p>{title}<small>({_caption(peaks[k], normalize)})</small></p>")
        spans = []
        for tok, r in zip(tokens, relevance):
            red, green, blue = (int(round(255 * c)) for c in _rgb(r / scale))
            spans.append(f"<span style='background:rgb({red},{green},{blue})' "
                         f"title='{r:.4g}'>{html.escape(tok)}</span>")
        parts.append("<p>" + "".join(spans) + "</p>")
    return "\n".join(parts)


def read_vocab(path) -> list:
    """A vocabulary file: one token per line, the line number (from 0) is the token id."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def check_token_ids(ids, vocab, path) -> None:
    """Raise ValueError unless ``ids`` (an array or an inputs source) holds integer token ids
    below the vocabulary's size (read in blocks of 4096 rows)."""
    name = getattr(ids, "path", "the inputs")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"--vocab needs integer token ids as inputs; {name} holds {ids.dtype}.")
    top = max((int(np.max(ids[i:i + 4096])) for i in range(0, len(ids), 4096)), default=0)
    if top >= len(vocab):
        raise ValueError(f"{name} holds token id {top}, but --vocab {path} has only "
                         f"{len(vocab)} tokens (ids 0 to {len(vocab) - 1}).")


def write_token_heatmaps(columns, ids, vocab, folder):
    """tokens.png and tokens.html in ``folder``: each sample's tokens (words from ``vocab``, or
    the ids), one row per analyzer in ``columns`` ({name: relevance}); returns the two paths."""
    rows, titles = [], []
    for n, seq in enumerate(np.asarray(ids)):
        words = [vocab[int(t)] if vocab is not None else str(int(t)) for t in seq.reshape(-1)]
        for method, r in columns.items():
            rows.append((words, np.asarray(r[n]).reshape(len(words), -1).sum(axis=1)))
            titles.append(f"sample {n}: {method}")
    paths = [os.path.join(folder, "tokens.png"), os.path.join(folder, "tokens.html")]
    plot_tokens(rows, titles=titles, path=paths[0])
    tokens_html(rows, titles=titles, path=paths[1])
    return paths


def write_generation_heatmaps(generation, folder, vocab: Optional[Sequence[str]] = None) -> list:
    """``generation.png`` and ``generation.html`` in ``folder`` (made if missing; each written
    atomically): the token heatmaps of a :class:`~keras_lrp.generation.Generation` (or any
    object with its ``rows(vocab)``), one row per generated token, then the span's
    log-likelihood; words from ``vocab``, or the ids. Returns the two paths."""
    os.makedirs(folder, exist_ok=True)
    rows, titles = generation.rows(vocab)
    paths = [os.path.join(folder, "generation.png"), os.path.join(folder, "generation.html")]
    plot_tokens(rows, titles=titles, path=paths[0])
    tokens_html(rows, titles=titles, path=paths[1])
    return paths


__all__ = ["check_token_ids", "plot_tokens", "read_vocab", "token_rows_html", "tokens_html",
           "write_generation_heatmaps", "write_token_heatmaps"]
