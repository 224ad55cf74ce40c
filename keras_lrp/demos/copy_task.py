"""The LLM demo's task: copy the marked word, a synthetic task with a known answer.

A prompt is :data:`WORDS_PER_PROMPT` words (``w2``…``w16``, drawn with replacement), one of
which is written in its marked form (``M2``…``M16``), then the question mark:

    w5 w9 M12 w3 w12 w7 w5 w2 ?   →   w12

The answer is the plain form of the marked word. Only the marked token says what it is (the
same word may also stand elsewhere unmarked, as ``w12`` above: a distractor), so the ground
truth of an explanation is known: a faithful explanation of the answer's logit ranks the marked
token's position first.
"""

from __future__ import annotations

import numpy as np

WORDS_PER_PROMPT = 8
LENGTH = WORDS_PER_PROMPT + 1
VOCAB = 32
QUESTION = 1
PLAIN = tuple(range(2, 17))
#: marked form of plain word i: i + MARK
MARK = 15
WORDS = ["<pad>", "?"] + [f"w{i}" for i in PLAIN] + [f"M{i}" for i in PLAIN]


def copy_data(n: int, seed: int = 0):
    """(prompts (n, LENGTH) int32, answers (n,) int32, source positions (n,) int32)."""
    rng = np.random.default_rng(seed)
    x = rng.choice(PLAIN, size=(n, LENGTH)).astype(np.int32)
    sources = rng.integers(WORDS_PER_PROMPT, size=n).astype(np.int32)
    rows = np.arange(n)
    answers = x[rows, sources].copy()
    x[rows, sources] += MARK
    x[:, -1] = QUESTION
    return x, answers, sources


__all__ = ["LENGTH", "MARK", "PLAIN", "QUESTION", "VOCAB", "WORDS", "WORDS_PER_PROMPT",
           "copy_data"]
