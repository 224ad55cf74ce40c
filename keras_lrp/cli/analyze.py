"""``keras-lrp analyze``: explain every input, batch by batch, into one HDF5 results file
(optionally resumed from an interrupted run), and optionally draw heatmaps."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from keras_lrp.cli.prepare import (
    UsageError,
    add_model_arguments,
    analyze_all,
    check_out,
    prepare,
)


def _resume_point(writer, x) -> int:
    """Rows of ``x`` already in the writer's resumed partial file; says so on stderr."""
    done = writer.resumed_rows  # same inputs: the metadata holds their hash
    if writer.recovery:
        print(f"keras-lrp: {writer.recovery}", file=sys.stderr)
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
    from keras_lrp.io import results as io
    from keras_lrp.plots import heatmap

    check_out(args.out, "--out")
    if args.png:
        check_out(args.png, "--png", folder=True)
    vocab = _vocab(args.vocab)
    model, x, options, analyzers = prepare(args)
    if vocab is not None:
        from keras_lrp.plots import tokens

        tokens.check_token_ids(x, vocab, args.vocab)
    with contextlib.closing(x):
        metadata = io.metadata_for([(m, m, options) for m in args.method], model)
        # what else decides the rows, so that --resume refuses other inputs or another neuron
        metadata.update(neuron=args.neuron, inputs_sha256=x.sha256())
        writer = io.RelevanceWriter(args.out, metadata, resume=args.resume,
                                    other_backend=args.resume_other_backend)
        try:
            with writer:
                if writer.removed_stale:
                    print(f"keras-lrp: removed {len(writer.removed_stale)} temporary file(s) "
                          f"left by earlier runs that died: "
                          f"{', '.join(os.path.basename(p) for p in writer.removed_stale)}",
                          file=sys.stderr)
                done = _resume_point(writer, x) if args.resume else 0
                for xb, logits, rel in analyze_all(analyzers, x, args.neuron, args.batch_size,
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
                from keras_lrp.plots import tokens

                for png in tokens.write_token_heatmaps(columns, x[: args.png_samples], vocab,
                                                       args.png):
                    print(f"wrote {png}")
                return
            png = Path(args.png) / "heatmaps.png"
            heatmap.plot_grid(columns, inputs=x[: args.png_samples], path=png)
            print(f"wrote {png}")


def _vocab(path):
    from keras_lrp.plots import tokens

    if path is None:
        return None
    try:
        return tokens.read_vocab(path)
    except OSError as e:
        raise UsageError(f"--vocab {path}: {e.strerror or e}.") from None
    except UnicodeDecodeError:
        raise UsageError(f"--vocab {path} is not UTF-8 text (one token per line).") from None


def add_parser(sub) -> None:
    """The ``analyze`` command and its arguments, on the subcommands ``sub``."""
    p = sub.add_parser("analyze", help="analyze inputs and write an HDF5 results file")
    add_model_arguments(p)
    p.add_argument("--out", required=True, help="results file (.h5)")
    p.add_argument("--png", default=None, metavar="DIR", help="also write heatmaps here")
    p.add_argument("--vocab", default=None, metavar="FILE",
                   help="token inputs: a vocabulary (one token per line, line k is id k); "
                        "--png then writes token heatmaps (tokens.png, tokens.html)")
    p.add_argument("--resume", action="store_true",
                   help="continue OUT.partial, left by an interrupted run with the same "
                   "model, inputs and options, skipping the rows it holds")
    p.add_argument("--resume-other-backend", action="store_true",
                   help="let --resume continue a partial file made on another Keras "
                   "backend or version (they agree to ~1e-6, not bit for bit)")
    p.set_defaults(func=cmd_analyze)
