"""How keras-lrp handles the user-model corpus (tests/usermodels/corpus.py): a markdown table.

For each corpus model and each analyzer of :data:`ANALYZERS` (``gradient`` skipped for token
models), the analyzer is created with ``keras_lrp.create_analyzer(name, model)`` and run on a
batch of two; the cell reads

* ``ok``: ``analyze`` ran, returned finite arrays shaped like the inputs (one value per token
  for token ids), and ``analyzer.forward_model(x)`` equals ``model(x)`` within 1e-4 relative
  (max |forward - model| / max |model|; the corpus models output logits). Both are called with
  ``training=False``: Keras 3's random preprocessing layers augment by default, even in a plain
  ``model(x)``;
* ``wrong-forward (rel err X)``: it ran, but the forward model is not the user's model;
* ``bad-result: ...``: it ran, but the relevances are not finite or not shaped like the inputs;
* ``refused: ...``: a ValueError/TypeError raised inside keras-lrp whose message names
  keras-lrp or a layer (the first line, 100 characters);
* ``crash: Type: ...``: any other exception.

The last column, for models with ``corpus_conserves`` set, is Σ R / explained logit of that
analyzer per sample, in float32 (1 when relevance is conserved).

Under the table: the count of ``ok`` cells, then every failure with its whole message on one
line (400 characters).

Usage::

    python tools/corpus_table.py                 # every model (a few minutes on two cores)
    python tools/corpus_table.py --only unet     # one model (repeatable)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "tests", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import keras
import numpy as np
from usermodels.corpus import INPUTS, MODELS

import keras_lrp

ANALYZERS = ["lrp.epsilon", "lrp.alpha_1_beta_0_IB", "lrp.z", "lrp.epsilon_plus", "gradient"]
TOKEN_SKIP = {"gradient"}
BATCH = 2
RTOL = 1e-4
MESSAGE_CHARS = 100
DETAIL_CHARS = 400


def first_line(error: BaseException, chars: int = MESSAGE_CHARS) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return line[:chars]


def one_line(error: BaseException, analyzer: str = "", chars: int = DETAIL_CHARS) -> str:
    """The whole message on one line, for the list of failures under the table, with the
    innermost keras-lrp frame when the error was raised outside keras-lrp; the analyzer's name
    reads ``<analyzer>``, so that equal messages of several analyzers group."""
    text = " ".join(str(error).split())
    if analyzer:
        text = text.replace(f"'{analyzer}'", "'<analyzer>'")
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "keras_lrp" in Path(f.filename).parts]
    where = ""
    if ours and ours[-1] is not frames[-1]:
        path = Path(ours[-1].filename)
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        where = f" [from {rel}:{ours[-1].lineno} in {ours[-1].name}]"
    return f"{type(error).__name__}: {text[:chars]}{where}"


def raised_in_keras_lrp(error: BaseException) -> bool:
    """Whether the innermost frame of the traceback is keras-lrp's own code."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and "keras_lrp" in Path(frames[-1].filename).parts


def classify(error: BaseException, model: keras.Model, chars: int = MESSAGE_CHARS) -> str:
    text = str(error)
    layer_names = [layer.name for layer in getattr(model, "layers", [])]
    mentions = ("keras-lrp" in text or "layer" in text.lower()
                or any(f"'{name}'" in text for name in layer_names))
    if isinstance(error, (ValueError, TypeError)) and raised_in_keras_lrp(error) and mentions:
        return f"refused: {first_line(error, chars)}"
    return f"crash: {type(error).__name__}: {first_line(error, chars)}"


def to_numpy(value) -> np.ndarray:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"expected one output, got {len(value)}")
        value = value[0]
    return np.asarray(keras.ops.convert_to_numpy(value))


def input_name(tensor) -> str:
    """The name of the InputLayer behind a symbolic model input (the dict key)."""
    operation = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    return operation.name if operation is not None else tensor.name


def input_arrays(x, tensors) -> list:
    """The batch as a list of arrays in the order of the symbolic ``tensors``."""
    if not isinstance(x, dict):
        return list(x) if isinstance(x, (list, tuple)) else [x]
    names = [input_name(t) for t in tensors]
    if set(names) != set(x):
        raise ValueError(f"input names {names} do not match the batch's keys {sorted(x)}")
    return [x[name] for name in names]


def inference(model, x) -> np.ndarray:
    """``model(x, training=False)``: Keras 3's random preprocessing layers (RandomFlip, …)
    default to ``training=True``, so a plain ``model(x)`` would augment."""
    return to_numpy(model(x, training=False))


def forward_of(analyzer, x) -> np.ndarray:
    forward = analyzer.forward_model
    arrays = input_arrays(x, forward.inputs)
    return inference(forward, arrays[0] if len(arrays) == 1 else arrays)


def check_result(relevance, x, analyzer) -> str | None:
    """``None`` if the relevances are finite and shaped like the inputs, else the problem."""
    expected = input_arrays(x, analyzer.inputs)
    got = relevance if isinstance(relevance, list) else [relevance]
    if len(got) != len(expected):
        return f"bad-result: {len(got)} arrays for {len(expected)} inputs"
    for r, a in zip(got, expected):
        r = np.asarray(r)
        if r.shape != a.shape:
            return f"bad-result: shape {r.shape} for input {a.shape}"
        if not np.isfinite(r).all():
            return "bad-result: non-finite relevances"
    return None


def run_one(name: str, model: keras.Model, x, y: np.ndarray):
    """``(cell, detail, relevance or None, forward or None)`` for one analyzer."""
    try:
        analyzer = keras_lrp.create_analyzer(name, model)
        relevance = analyzer.analyze(x)
        problem = check_result(relevance, x, analyzer)
        if problem:
            return problem, problem, None, None
        forward = forward_of(analyzer, x)
        scale = float(np.max(np.abs(y))) or 1.0
        err = (float(np.max(np.abs(forward.reshape(y.shape) - y))) / scale
               if forward.size == y.size else float("inf"))
        if not err <= RTOL:
            cell = f"wrong-forward (rel err {err:.2g})"
            return cell, cell, None, None
        return "ok", "", relevance, forward
    except Exception as error:  # noqa: BLE001 - every failure is a table cell
        return classify(error, model), one_line(error, name), None, None


def conservation(relevance, forward: np.ndarray) -> str:
    parts = relevance if isinstance(relevance, list) else [relevance]
    total = sum(np.asarray(r, "float64").reshape(len(forward), -1).sum(axis=1) for r in parts)
    logit = forward.reshape(len(forward), -1).max(axis=1)  # the default: the largest logit
    return ", ".join(f"{t / v:.4f}" if v != 0 else "n/a" for t, v in zip(total, logit))


def probe_model(model_name: str):
    """The row of one model: ``(cells, conservation cell, details)``, and the seconds it
    took."""
    start = time.time()
    keras.backend.clear_session()
    try:
        model = MODELS[model_name]()
        x = INPUTS[model_name](BATCH, np.random.default_rng(1))
        y = inference(model, x)
    except Exception as error:  # noqa: BLE001
        cell = f"build failed: {type(error).__name__}: {first_line(error)}"
        return {a: cell for a in ANALYZERS}, "", {"build": one_line(error)}, time.time() - start
    tokens = bool(getattr(model, "corpus_tokens", False))
    conserves = getattr(model, "corpus_conserves", None)
    cells, details, results = {}, {}, {}
    for name in ANALYZERS:
        if tokens and name in TOKEN_SKIP:
            cells[name] = "–"
            continue
        cells[name], detail, relevance, forward = run_one(name, model, x, y)
        results[name] = (relevance, forward)
        if cells[name] != "ok":
            details[name] = detail
    cons = ""
    if conserves:
        if conserves not in results:
            status, detail, relevance, forward = run_one(conserves, model, x, y)
            results[conserves] = (relevance, forward)
            if status != "ok":
                details[conserves] = detail
        else:
            status = cells[conserves]
        relevance, forward = results[conserves]
        cons = (f"{conserves}: {conservation(relevance, forward)}" if relevance is not None
                else f"{conserves}: n/a ({status.split(':')[0]})")
    return cells, cons, details, time.time() - start


def escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", choices=sorted(MODELS),
                        help="run only this corpus model (repeatable)")
    args = parser.parse_args(argv)
    names = args.only or list(MODELS)
    rows = []
    for model_name in names:
        cells, cons, details, seconds = probe_model(model_name)
        print(f"[{seconds:5.1f} s] {model_name}", file=sys.stderr, flush=True)
        rows.append((model_name, cells, cons, details))

    header = ["model"] + ANALYZERS + ["Σ R / logit"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model_name, cells, cons, _ in rows:
        print("| " + " | ".join(escape(c) for c in [model_name]
                                 + [cells[a] for a in ANALYZERS] + [cons]) + " |")
    run = [c for _, cells, _, _ in rows for c in cells.values() if c != "–"]
    ok = sum(c == "ok" for c in run)
    print()
    print(f"{ok} of {len(run)} analyses explain the model")
    if any(details for *_, details in rows):
        print()
        print("Failures (the whole message, one line each):")
        print()
        for model_name, _, _, details in rows:
            grouped = {}  # the same message for several analyzers: one line
            for name, detail in details.items():
                grouped.setdefault(detail, []).append(name)
            for detail, names in grouped.items():
                print(f"* {model_name} / {', '.join(names)}: {escape(detail)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
