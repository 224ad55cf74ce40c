"""The text part of the transformer demo: a small transformer on a synthetic sentiment task.

Sequences of 8–24 word tokens, padded with 0 to :data:`LENGTH`. Tokens 2–5 are positive words,
6–9 negative words, 10–31 neutral filler; a sequence holds 0–3 positive and 0–3 negative words
(never as many of each) and its label is 1 when it has more positive ones. Only the sentiment
words decide the label and each pushes it one way, so the ground truth is known: a faithful
explanation of the predicted class puts its relevance on the sentiment words, positive on the
words that argue for that class and negative on the others.

:func:`run_text_demo` explains the shipped ``keras_lrp/demos/models/sentiment_transformer.keras``
(trained by ``examples/train_sentiment_transformer.py``) on its 1000 test sequences and writes
``text_summary.txt`` (the table it prints) and ``text_tokens.png``/``.html`` (token heatmaps,
each row titled with the sequence's label and the prediction).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from keras_lrp.demos.common import format_cell

LENGTH, VOCAB = 24, 32
POSITIVE, NEGATIVE = (2, 3, 4, 5), (6, 7, 8, 9)
WORDS = (["<pad>", "<unk>", "good", "great", "fine", "love", "bad", "awful", "poor", "hate"]
         + [f"w{i}" for i in range(10, VOCAB)])

#: (label, analyzer name, keyword arguments) on the text transformer.
TEXT_ANALYZERS: List[Tuple[str, str, Dict]] = [
    ("AttnLRP (lrp.z)", "lrp.z", {}),
    ("AttnLRP (lrp.epsilon)", "lrp.epsilon", {"epsilon": 0.01}),
    ("CP-LRP (lrp.z, attention='cp')", "lrp.z", {"attention": "cp"}),
]


def sentiment_data(n: int, seed: int = 0):
    """(tokens (n, LENGTH) int32, labels (n,) int32) of the task in the module docstring."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, LENGTH), np.int32)
    y = np.zeros(n, np.int32)
    for i in range(n):
        length = rng.integers(8, LENGTH + 1)
        pos, neg = rng.integers(0, 4, size=2)
        while pos == neg:
            pos, neg = rng.integers(0, 4, size=2)
        words = list(rng.integers(10, VOCAB, size=length))
        where = rng.choice(length, size=pos + neg, replace=False)
        for k, j in enumerate(where):
            words[j] = rng.choice(POSITIVE if k < pos else NEGATIVE)
        x[i, :length] = words
        y[i] = int(pos > neg)
    return x, y


def ground_truth_scores(relevance, tokens, predictions) -> Dict[str, float]:
    """``sentiment share``: mean over sequences of |R| on sentiment words / |R| on all words;
    ``sign agreement``: the share of sentiment words whose relevance has the sign of their
    vote for the predicted class (+ for a positive word when the prediction is positive)."""
    r = np.asarray(relevance, np.float64)
    real = tokens != 0
    sentiment = np.isin(tokens, POSITIVE + NEGATIVE)
    total = np.where(real, np.abs(r), 0).sum(axis=1)
    share = np.where(sentiment, np.abs(r), 0).sum(axis=1) / np.where(total > 0, total, 1)
    vote = np.where(np.isin(tokens, POSITIVE), 1, -1) * np.where(predictions[:, None] == 1, 1, -1)
    agree = (np.sign(r) == vote)[sentiment]
    return {"sentiment share": float(share.mean()), "sign agreement": float(agree.mean())}


def run_text_demo(out: Path, models: Path, verbose: bool = True) -> Dict[str, Dict[str, float]]:
    """Explain the text transformer's test set; returns {label: ground-truth scores} (the
    uniform baseline has no "sign agreement": it does not apply)."""
    import keras

    import keras_lrp
    from keras_lrp.plots import tokens as tokens_mod

    model = keras.models.load_model(models / "sentiment_transformer.keras")
    data = np.load(models / "sentiment_test.npz")
    x, y = data["x"], data["y"]
    predictions = np.asarray(model.predict(x, verbose=0)).argmax(axis=1)
    rows, maps = {}, {}
    for label, name, kwargs in TEXT_ANALYZERS:
        maps[label] = keras_lrp.create_analyzer(name, model, **kwargs).analyze(x)
        rows[label] = ground_truth_scores(maps[label], x, predictions)
    real = x != 0
    chance = float((np.isin(x, POSITIVE + NEGATIVE).sum(axis=1) / real.sum(axis=1)).mean())
    rows["uniform (baseline)"] = {"sentiment share": chance}  # it has no signs to agree
    table = format_table(rows, n=len(x), accuracy=float(np.mean(predictions == y)))
    (out / "text_summary.txt").write_text(table + "\n")
    token_rows, titles = [], []
    for i in range(3):
        words = [WORDS[t] for t in x[i][real[i]]]
        for label in ("AttnLRP (lrp.z)", "CP-LRP (lrp.z, attention='cp')"):
            token_rows.append((words, maps[label][i][real[i]]))
            titles.append(f"#{i} {label}: label {y[i]}, predicted {predictions[i]}")
    tokens_mod.plot_tokens(token_rows, titles=titles, path=out / "text_tokens.png")
    tokens_mod.tokens_html(token_rows, titles=titles, path=out / "text_tokens.html")
    if verbose:
        print(table)
    return rows


def format_table(rows: Dict[str, Dict[str, float]], n: int, accuracy: float) -> str:
    """The text demo's table as text; a score that does not apply (missing, as the uniform
    baseline's sign agreement, or not finite) prints as "–"."""
    lines = [f"sentiment_transformer on {n} test sequences (accuracy {accuracy:.3f}); ground "
             "truth: the sentiment words", f"{'method':<34} {'sentiment share':>15} "
                                           f"{'sign agreement':>15}"]
    lines += [f"{label:<34} {format_cell(row.get('sentiment share'), '.3f', 15)} "
              f"{format_cell(row.get('sign agreement'), '.3f', 15)}" for label, row in rows.items()]
    lines.append("sentiment share: mean of |R| on the sentiment words / |R| on all words "
                 "(uniform: their share of the words); sign agreement: share of sentiment words "
                 "whose R has the sign of their vote for the predicted class; –: does not "
                 "apply.")
    return "\n".join(lines)
