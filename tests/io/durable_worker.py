"""A long job that writes with :class:`RelevanceWriter` from Python, for the hard-stop tests.

``python durable_worker.py OUT ROWS BATCH``: rows ``i`` hold ``i`` (inputs), ``i + 0.5``
(relevance ``a``) and ``-i`` (relevance ``b``), so any row put in the wrong place shows. The
run resumes what is on disk and sleeps 5 ms per batch, so that a test can stop it anywhere.
"""

import sys
import time

import numpy as np

from keras_lrp.io.writer import RelevanceWriter

META = {"analyzers": ["a", "b"], "model_weights_sha256": "0" * 64}


def rows(start: int, stop: int):
    i = np.arange(start, stop, dtype="float32")[:, None] * np.ones((1, 3), "float32")
    return i, i + 0.5, -i


def main(out: str, n: int, batch: int) -> None:
    with RelevanceWriter(out, META, resume=True, sync_every=0.05) as writer:
        print(f"resumed {writer.resumed_rows}", flush=True)
        for start in range(writer.resumed_rows, n, batch):
            x, a, b = rows(start, min(n, start + batch))
            writer.append_inputs(x)
            writer.append("a", a)
            time.sleep(0.005)
            writer.append("b", b)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
