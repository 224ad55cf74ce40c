"""What ``analyze`` and ``compare`` check and build before any output exists: the model, the
inputs, the options and the analyzers; a problem is a :class:`UsageError` (one line, exit 2).
Also the arguments the commands share (:func:`add_command_flags`, :func:`add_model_arguments`).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from keras_lrp.cli import devices


class UsageError(Exception):
    """A problem with the user's arguments or files: reported in one line, exit 2."""


def add_command_flags(p: argparse.ArgumentParser) -> None:
    """``--debug`` and ``--verbose`` after a command's name too (``keras-lrp analyze --debug``);
    left unset there, the ones before the command hold."""
    for flag, text in (("--debug", "show the Python traceback of an error"),
                       ("--verbose", "show TensorFlow's start-up and log messages")):
        p.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments ``analyze`` and ``compare`` share: the model, the inputs, the analyzers
    and how to run them."""
    add_command_flags(p)
    p.add_argument("model", help=".keras or .h5 model file")
    p.add_argument("inputs", help=".npy, .npz, .h5, an image file or a folder of images")
    p.add_argument("--method", action="append", required=True, metavar="NAME",
                   help="analyzer name (repeatable); see `keras-lrp list`")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for every analyzer, e.g. epsilon=0.1")
    p.add_argument("--neuron", type=int, default=None,
                   help="explain this output index (default: the winning class of each "
                        "input)")
    p.add_argument("--key", default=None, metavar="NAME",
                   help="the array of an .npz or the dataset of an .h5 file (default: 'x' "
                   "or the only one)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="inputs per batch (default: 64)")
    p.add_argument("--devices", default=None, metavar="all|N",
                   help="split every batch over these devices (tf.distribute on "
                        "TensorFlow: all GPUs, or N GPUs, or N logical CPU devices without "
                        "GPUs; keras.distribution.DataParallel on JAX: all or N local "
                        "devices; PyTorch: one device)")
    p.add_argument("--png-samples", type=int, default=8, metavar="N",
                   help="how many inputs the --png figure shows (default: 8)")


def parse_options(items: List[str]) -> Dict[str, object]:
    """``["epsilon=0.1", "bias=False", "input_layer_rule=WSquare"]`` → keyword arguments."""
    options = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option needs key=value, got {item!r}.")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        options[key.strip()] = value
    return options


def load_model(path: str):
    """The Keras model in ``path``, or a one-line error saying why it could not be read."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"model file not found: {path}")
    if p.is_dir() or not os.access(p, os.R_OK):
        raise UsageError(f"cannot read model {path}: "
                         f"{'it is a folder' if p.is_dir() else 'permission denied'}.")
    if p.stat().st_size == 0:
        raise UsageError(f"model file {path} is empty (0 bytes).")
    if p.suffix == ".keras" and not zipfile.is_zipfile(p):
        raise UsageError(f"{path} could not be read as a Keras model: a .keras file is a zip "
                         "archive and this one is not (truncated or corrupt?).")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is the user's file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path} could not be read as a Keras model ({reason[:300]}).") \
            from None


def load_inputs(path: str, model=None, key: Optional[str] = None):
    """The inputs in ``path`` as a :class:`~keras_lrp.io.sources.Source`, checked against
    ``model`` when given (see :func:`keras_lrp.io.sources.open_inputs`)."""
    from keras_lrp.io.sources import check_for_model, open_inputs

    channels = model.inputs[0].shape[-1] if model is not None else None
    source = open_inputs(path, key=key, channels=channels)
    try:
        if model is not None:
            check_for_model(source, model)
    except BaseException:
        source.close()
        raise
    return source


def _progress(done: int, total: int, skipped: int = 0) -> None:
    if total > 1:
        end = "\n" if done == total else ""
        earlier = f" (after {skipped} rows done earlier)" if skipped else ""
        print(f"\r  batch {done}/{total}{earlier}", end=end, file=sys.stderr, flush=True)


def check_out(path: str, option: str, folder: bool = False) -> None:
    """Raise UsageError unless ``path`` can be written: a file (or, with ``folder``, a folder
    that exists or can be created) in a folder that exists and is writable."""
    p = Path(path)
    if folder:
        if p.exists() and not p.is_dir():
            raise UsageError(f"{option} {path} exists and is not a folder.")
        parent = next(q for q in [p, *p.parents] if q.exists())
    else:
        if p.is_dir():
            raise UsageError(f"{option} {path} is a folder; give a file name, e.g. "
                             f"{p / 'results.h5'}.")
        parent = p.absolute().parent
        if not parent.is_dir():
            raise UsageError(f"{option} {path}: folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write in {parent} (permission denied).")


def _build_analyzers(model, methods, options, neuron):
    """Every analyzer, built (so a bad name or option fails before any file is touched), and
    ``--neuron`` checked against the model's outputs."""
    import keras_lrp

    kwargs = dict(options)
    if neuron is not None:
        kwargs["neuron_selection_mode"] = "index"
    analyzers = {m: keras_lrp.create_analyzer(m, model, **kwargs) for m in methods}
    first = next(iter(analyzers.values()))
    n = int(np.prod(first.logits.shape[1:]))
    if neuron is not None and not 0 <= neuron < n:
        raise UsageError(f"--neuron {neuron} is out of range: model '{model.name}' has {n} "
                         f"outputs (0 to {n - 1}).")
    return analyzers


def prepare(args):
    """Model, inputs, options and analyzers, every one checked before any output exists."""
    repeated = sorted({m for m in args.method if args.method.count(m) > 1})
    if repeated:
        raise UsageError(f"--method {repeated[0]} is given more than once; give each analyzer "
                         "once.")
    scope = devices.scope_for(args.devices)  # first: logical devices precede TensorFlow's start
    model = load_model(args.model)
    x = load_inputs(args.inputs, model, args.key)
    try:
        options = parse_options(args.option)
        with scope:
            analyzers = _build_analyzers(model, args.method, options, args.neuron)
        first = next(iter(analyzers.values()))
        if first.num_replicas > 1:
            print(f"analyzing on {first.num_replicas} replicas", file=sys.stderr)
    except BaseException:
        x.close()
        raise
    return model, x, options, analyzers


def analyze_all(analyzers, x, neuron, batch_size, skip: int = 0):
    """Yield ``(inputs, logits, {method: relevance})`` per batch of ``x[skip:]``."""
    forward = next(iter(analyzers.values())).forward_model
    n = len(x)
    batches = range(skip, n, batch_size)
    for i, start in enumerate(batches, 1):
        xb = np.asarray(x[start:start + batch_size])
        from keras_lrp import backend
        logits = backend.to_numpy(forward(xb))
        sel = None if neuron is None else np.full(len(xb), neuron)
        yield xb, logits, {m: a.analyze(xb, neuron_selection=sel) for m, a in analyzers.items()}
        _progress(i, len(batches), skip)
