"""The ``keras-lrp`` command line: demo, analyze, compare, list.

Every user error (bad path, unknown analyzer, misspelt option, shape mismatch) ends with one
short ``keras-lrp: error: …`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import List, Optional

from keras_lrp.cli import analyze, compare, concepts, generate, signals
from keras_lrp.cli.prepare import UsageError


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


def cmd_demo(args) -> None:
    from keras_lrp.demos.digits import run_demo
    from keras_lrp.demos.sequence import run_sequence_demo
    from keras_lrp.demos.transformer import run_transformer_demo

    try:
        if args.task == "llm":
            from keras_lrp.demos.llm import run_llm_demo

            run_llm_demo(out_dir=args.out or "lrp-demo-llm", models_dir=args.models_dir)
        elif args.task == "concepts":
            from keras_lrp.demos.concepts import run_concepts_demo

            run_concepts_demo(out_dir=args.out or "lrp-demo-concepts", models_dir=args.models_dir)
        elif args.task == "sequence":
            run_sequence_demo(out_dir=args.out or "lrp-demo-sequence", models_dir=args.models_dir)
        elif args.task == "transformer":
            run_transformer_demo(out_dir=args.out or "lrp-demo-transformer",
                                 models_dir=args.models_dir, steps=args.steps)
        else:
            run_demo(out_dir=args.out or "lrp-demo", models_dir=args.models_dir, steps=args.steps)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def add_demo_parser(sub) -> None:
    """The ``demo`` command and its arguments, on the subcommands ``sub``."""
    p = sub.add_parser(
        "demo", help="explain a shipped model (digits CNN, addition LSTM or transformers)",
        description="Explain a shipped model (package data in keras_lrp/demos/models/) with a "
        "representative set of analyzers, write figures, an HDF5 results file and summary.txt "
        "(and, for the digits, report.html, a self-contained page comparing the analyzers) "
        "into --out, and print the summary table.")
    p.add_argument("--task", choices=("digits", "sequence", "transformer", "llm", "concepts"),
                   default="digits",
                   help="digits: the CNN on handwritten digits; sequence: the LSTM on the "
                        "addition task, with token heatmaps; transformer: the ViT on the "
                        "same digits beside the CNN, and the text transformer; llm: a "
                        "keras-hub Llama on key-value recall, AttnLRP against CP-LRP and "
                        "gradients (needs keras-hub); concepts: CRP on a CNN whose concepts "
                        "are known (shapes × colours) (default: digits)")
    p.add_argument("--out", default=None,
                   help="output folder (default: lrp-demo, lrp-demo-sequence, "
                        "lrp-demo-transformer, lrp-demo-llm or lrp-demo-concepts, in the "
                        "current folder)")
    p.add_argument("--models-dir", default=None, metavar="DIR",
                   help="folder holding the demo's models and test data (default: the "
                        "shipped ones)")
    p.add_argument("--steps", type=int, default=16,
                   help="pixel-flipping steps of the AOPC column, digits and transformer "
                        "tasks (default: 16)")
    p.set_defaults(func=cmd_demo)


def add_list_parser(sub) -> None:
    """The ``list`` command, on the subcommands ``sub``."""
    p = sub.add_parser("list", help="list analyzers and rules",
                       description="List every analyzer name with its keyword arguments, "
                       "and every rule name.")
    p.set_defaults(func=cmd_list)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the options before a command, then each command's own, added
    by the ``add_parser`` beside the code that runs it."""
    parser = argparse.ArgumentParser(
        prog="keras-lrp", description="Layer-wise Relevance Propagation for Keras 3 models.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    parser.add_argument("--verbose", action="store_true",
                        help="show the framework's start-up and log messages (hidden by "
                        "default, unless TF_CPP_MIN_LOG_LEVEL is 0 or 1)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="the Keras backend to run on (default: KERAS_BACKEND, else Keras' "
                        "own default, tensorflow); JAX and PyTorch need no TensorFlow")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser in (add_demo_parser, analyze.add_parser, compare.add_parser,
                       concepts.add_parser, generate.add_parser, add_list_parser):
        add_parser(sub)
    return parser


BACKENDS = ("tensorflow", "jax", "torch")


def choose_backend(name: Optional[str]) -> None:
    """Set ``KERAS_BACKEND`` to ``name`` before Keras is imported (Keras reads it once)."""
    if name is None:
        return
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise UsageError(f"--backend {name}: Keras was already loaded on "
                         f"{keras.backend.backend()} in this process; set KERAS_BACKEND={name} "
                         "before starting Python.")
    os.environ["KERAS_BACKEND"] = name


def quiet_start() -> None:
    """Load Keras and its framework without their start-up lines (TensorFlow's oneDNN, CUDA
    drivers and absl lines; JAX's "no GPU" warning, printed when it first looks for devices).

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
        from keras_lrp import backend

        backend.start()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        choose_backend(args.backend)
    except UsageError as e:
        print(f"keras-lrp: error: {e}", file=sys.stderr)
        return 2
    try:
        if not args.verbose and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") not in ("0", "1"):
            quiet_start()
        else:
            import keras_lrp.backend  # noqa: F401 - fail here, in one line, if it cannot start
    except ImportError as e:
        name = os.environ.get("KERAS_BACKEND", "tensorflow")
        print(f"keras-lrp: error: the Keras backend {name!r} cannot start ({_one_line(e)}); "
              f"install it (pip install 'keras-lrp[{name}]') or choose another with --backend",
              file=sys.stderr)
        return 2
    for option in ("batch_size", "png_samples", "steps"):
        if getattr(args, option, 1) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1, got "
                         f"{getattr(args, option)}")
    try:
        with signals.stop_on_signals():
            args.func(args)
    except (UsageError, ValueError, TypeError, OSError) as e:  # ValueError: InputError too
        if args.debug:
            traceback.print_exc()
        print(f"keras-lrp: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (signals.Terminated)
        terminated = isinstance(e, signals.Terminated)
        print(f"keras-lrp: {'terminated (SIGTERM)' if terminated else 'interrupted'}",
              file=sys.stderr)
        return signals.exit_code(e)
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
