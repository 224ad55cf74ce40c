"""The ``keras-lrp`` command line: demo, analyze, compare, list.

Every user error (bad path, unknown analyzer, misspelt option, shape mismatch) ends with one
short ``keras-lrp: error: …`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import sys
import traceback
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from keras_lrp import devices


class UsageError(Exception):
    """A problem with the user's arguments or files: reported in one line, exit 2."""


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
    """The inputs in ``path`` as a :class:`~keras_lrp.sources.Source`, checked against
    ``model`` when given (see :func:`keras_lrp.sources.open_inputs`)."""
    from keras_lrp.sources import check_for_model, open_inputs

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


def cmd_list(args) -> None:
    from keras_lrp import ANALYZERS, rules

    print("Analyzers (keras_lrp.create_analyzer / --method), with the library whose definition "
          "each follows:")
    for name, entry in ANALYZERS.items():
        params = ", ".join(f"{k}={v!r}" for k, v in entry.params.items())
        print(f"  {name:<36} {entry.description}" + (f"  [{params}]" if params else "")
              + f"  ({entry.anchor})")
    print("\nRules (rule=, input_layer_rule=, rule_map):")
    for name, factory in rules.RULES.items():
        cls = getattr(factory, "func", factory)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<24} {doc}")


def _check_out(path: str, option: str, folder: bool = False) -> None:
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


def _prepare(args):
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


def _analyze_all(analyzers, x, neuron, batch_size, skip: int = 0):
    """Yield ``(inputs, logits, {method: relevance})`` per batch of ``x[skip:]``."""
    forward = next(iter(analyzers.values())).forward_model
    n = len(x)
    batches = range(skip, n, batch_size)
    for i, start in enumerate(batches, 1):
        xb = np.asarray(x[start:start + batch_size])
        logits = np.asarray(forward(xb))
        sel = None if neuron is None else np.full(len(xb), neuron)
        yield xb, logits, {m: a.analyze(xb, neuron_selection=sel) for m, a in analyzers.items()}
        _progress(i, len(batches), skip)


def _resume_point(writer, x) -> int:
    """Rows of ``x`` already in the writer's resumed partial file; says so on stderr."""
    done = writer.resumed_rows  # same inputs: the metadata holds their hash
    if done:
        print(f"keras-lrp: resuming {writer.partial_path}: {done} of {len(x)} rows already "
              f"done, {len(x) - done} to go", file=sys.stderr)
    elif os.path.exists(writer.partial_path):
        print(f"keras-lrp: {writer.partial_path} holds no whole batch; starting at row 0",
              file=sys.stderr)
    else:
        print(f"keras-lrp: no {writer.partial_path} to resume; starting at row 0",
              file=sys.stderr)
    return done


def cmd_analyze(args) -> None:
    from keras_lrp import heatmap, io

    _check_out(args.out, "--out")
    if args.png:
        _check_out(args.png, "--png", folder=True)
    vocab = _vocab(args.vocab)
    model, x, options, analyzers = _prepare(args)
    if vocab is not None:
        from keras_lrp import tokens

        tokens.check_token_ids(x, vocab, args.vocab)
    with contextlib.closing(x):
        metadata = io.metadata_for([(m, m, options) for m in args.method], model)
        # what else decides the rows, so that --resume refuses other inputs or another neuron
        metadata.update(neuron=args.neuron, inputs_sha256=x.sha256())
        writer = io.RelevanceWriter(args.out, metadata, resume=args.resume)
        try:
            with writer:
                done = _resume_point(writer, x) if args.resume else 0
                for xb, logits, rel in _analyze_all(analyzers, x, args.neuron, args.batch_size,
                                                    skip=done):
                    neurons = logits.argmax(axis=1) if args.neuron is None else np.full(
                        len(xb), args.neuron)
                    writer.append_inputs(xb, predictions=logits, neurons=neurons)
                    for m, r in rel.items():
                        writer.append(m, r)
        except BaseException:
            if writer.kept_rows:
                print(f"\nkeras-lrp: kept the {writer.kept_rows} finished rows in "
                      f"{writer.partial_path}; rerun with --resume to continue", file=sys.stderr)
            raise
        resumed = f" ({done} of them resumed from {writer.partial_path})" if done else ""
        print(f"wrote {args.out}: {len(x)} inputs × {len(args.method)} analyzer(s){resumed}")
        if args.png:
            import h5py

            with h5py.File(args.out, "r") as f:  # also covers rows from an earlier, resumed run
                columns = {m: f["relevance"][m][: args.png_samples] for m in args.method}
            Path(args.png).mkdir(parents=True, exist_ok=True)
            if vocab is not None or np.issubdtype(x.dtype, np.integer):
                from keras_lrp import tokens

                for png in tokens.write_token_heatmaps(columns, x[: args.png_samples], vocab,
                                                       args.png):
                    print(f"wrote {png}")
                return
            png = Path(args.png) / "heatmaps.png"
            heatmap.plot_grid(columns, inputs=x[: args.png_samples], path=png)
            print(f"wrote {png}")


def _vocab(path):
    from keras_lrp import tokens

    if path is None:
        return None
    try:
        return tokens.read_vocab(path)
    except OSError as e:
        raise UsageError(f"--vocab {path}: {e.strerror or e}.") from None
    except UnicodeDecodeError:
        raise UsageError(f"--vocab {path} is not UTF-8 text (one token per line).") from None


def cmd_compare(args) -> None:
    from keras_lrp import evaluate, heatmap

    if len(args.method) < 2:
        raise UsageError("compare needs at least two --method arguments.")
    if args.png:
        _check_out(args.png, "--png")
    model, x, _, analyzers = _prepare(args)
    with contextlib.closing(x):
        regions = x.shape[1] if x.ndim == 2 else int(np.prod(x.shape[1:3]))
        if args.steps > regions:
            raise UsageError(f"--steps {args.steps} exceeds the {regions} pixel-flipping regions "
                             f"of an input of shape {x.shape[1:]}; use --steps {regions} or "
                             "fewer.")
        parts = list(_analyze_all(analyzers, x, args.neuron, args.batch_size))
    x = np.concatenate([p[0] for p in parts])
    relevances = {m: np.concatenate([p[2][m] for p in parts]) for m in args.method}
    logits = np.concatenate([p[1] for p in parts])
    forward = next(iter(analyzers.values())).forward_model
    target = logits.argmax(axis=1) if args.neuron is None else np.full(len(x), args.neuron)
    print(f"{'analyzer':<34} {'ΣR / explained':>14} {'AOPC':>8}")
    for m, r in relevances.items():
        explained = logits[np.arange(len(x)), target]
        ratio = np.mean(r.reshape(len(x), -1).sum(1) / np.where(explained == 0, 1, explained))
        curve = evaluate.pixel_flipping(lambda b: np.asarray(forward(b)), x, r, target=target,
                                        steps=args.steps)
        print(f"{m:<34} {ratio:>14.4f} {curve.mean_aopc():>8.3f}")
    if args.png:
        n = min(args.png_samples, len(x))
        heatmap.plot_grid({m: r[:n] for m, r in relevances.items()}, inputs=x[:n],
                          path=args.png)
        print(f"wrote {args.png}")


def cmd_demo(args) -> None:
    from keras_lrp.demo import run_demo
    from keras_lrp.sequence_demo import run_sequence_demo
    from keras_lrp.transformer_demo import run_transformer_demo

    try:
        if args.task == "sequence":
            run_sequence_demo(out_dir=args.out or "lrp-demo-sequence", models_dir=args.models_dir)
        elif args.task == "transformer":
            run_transformer_demo(out_dir=args.out or "lrp-demo-transformer",
                                 models_dir=args.models_dir, steps=args.steps)
        else:
            run_demo(out_dir=args.out or "lrp-demo", models_dir=args.models_dir, steps=args.steps)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-lrp", description="Layer-wise Relevance Propagation for Keras 3 models.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and log messages (hidden by default, "
                        "unless TF_CPP_MIN_LOG_LEVEL is 0 or 1)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="explain the shipped digits CNN with several analyzers",
                          description="Explain the shipped digits CNN (models/digits_cnn.keras) "
                          "with a representative set of analyzers; write heatmaps.png, "
                          "relevances.h5 and summary.txt into --out and print the table.")
    demo.add_argument("--task", choices=("digits", "sequence", "transformer"), default="digits",
                      help="digits: the CNN on handwritten digits (default); sequence: the LSTM "
                           "on the addition task, with token heatmaps; transformer: the ViT on "
                           "the same digits, beside the CNN")
    demo.add_argument("--out", default=None,
                      help="output folder (default: lrp-demo, or lrp-demo-sequence)")
    demo.add_argument("--models-dir", default=None, help="folder holding digits_cnn.keras")
    demo.add_argument("--steps", type=int, default=16, help="pixel-flipping steps")
    demo.set_defaults(func=cmd_demo)

    def common(p, out_required):
        for flag, text in (("--debug", "show the Python traceback of an error"),
                           ("--verbose", "show TensorFlow's start-up and log messages")):
            p.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
        p.add_argument("model", help=".keras or .h5 model file")
        p.add_argument("inputs", help=".npy, .npz, .h5, an image file or a folder of images")
        p.add_argument("--method", action="append", required=True, metavar="NAME",
                       help="analyzer name (repeatable); see `keras-lrp list`")
        p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="keyword argument for every analyzer, e.g. epsilon=0.1")
        p.add_argument("--neuron", type=int, default=None,
                       help="explain this output index (default: the winning class)")
        p.add_argument("--key", default=None, metavar="NAME",
                       help="the array of an .npz or the dataset of an .h5 file (default: 'x' "
                       "or the only one)")
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--devices", default=None, metavar="all|N",
                       help="split every batch over these devices with tf.distribute: all "
                            "GPUs, or N (GPUs, or N logical CPU devices without GPUs)")
        p.add_argument("--png-samples", type=int, default=8)

    analyze = sub.add_parser("analyze", help="analyze inputs and write an HDF5 results file")
    common(analyze, True)
    analyze.add_argument("--out", required=True, help="results file (.h5)")
    analyze.add_argument("--png", default=None, metavar="DIR", help="also write heatmaps here")
    analyze.add_argument("--vocab", default=None, metavar="FILE",
                         help="token inputs: a vocabulary (one token per line, line k is id k); "
                              "--png then writes token heatmaps (tokens.png, tokens.html)")
    analyze.add_argument("--resume", action="store_true",
                         help="continue OUT.partial, left by an interrupted run with the same "
                         "model, inputs and options, skipping the rows it holds")
    analyze.set_defaults(func=cmd_analyze)

    compare = sub.add_parser("compare", help="compare analyzers: conservation and AOPC table")
    common(compare, False)
    compare.add_argument("--png", default=None, metavar="FILE", help="side-by-side figure")
    compare.add_argument("--steps", type=int, default=16, help="pixel-flipping steps")
    compare.set_defaults(func=cmd_compare)

    lister = sub.add_parser("list", help="list analyzers and rules")
    lister.set_defaults(func=cmd_list)
    return parser


def quiet_tensorflow() -> None:
    """Load TensorFlow and Keras without their start-up lines (oneDNN, CUDA drivers, absl).

    TF_CPP_MIN_LOG_LEVEL does not reach every C++ logger TensorFlow starts while loading (seen
    with TensorFlow 2.21, even when set before Python starts), so standard error is pointed at
    the null device for the imports only; Python errors raised by them still reach the user
    once it is restored. ``--verbose``, or TF_CPP_MIN_LOG_LEVEL=0 or 1, skips this.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(null, 2)
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") not in ("0", "1"):
        quiet_tensorflow()
    for option in ("batch_size", "png_samples", "steps"):
        if getattr(args, option, 1) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1, got "
                         f"{getattr(args, option)}")
    try:
        args.func(args)
    except (UsageError, ValueError, TypeError, OSError) as e:  # ValueError: InputError too
        if args.debug:
            traceback.print_exc()
        print(f"keras-lrp: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-lrp: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        print(f"keras-lrp: error: unexpected {type(e).__name__}: {_one_line(e)} (this is a bug "
              "in keras-lrp; rerun with --debug for the traceback and report it)",
              file=sys.stderr)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 2000 else text[:2000] + " …"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
