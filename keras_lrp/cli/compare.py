"""``keras-lrp compare``: several analyzers on the same inputs, their conservation and
pixel-flipping AOPC side by side, and one comparison figure."""

from __future__ import annotations

import contextlib

import numpy as np

from keras_lrp.cli.prepare import (
    UsageError,
    add_model_arguments,
    analyze_all,
    check_out,
    prepare,
)


def cmd_compare(args) -> None:
    from keras_lrp.analyzers import evaluate
    from keras_lrp.plots import heatmap

    if len(args.method) < 2:
        raise UsageError("compare needs at least two --method arguments.")
    if args.png:
        check_out(args.png, "--png")
    model, x, _, analyzers = prepare(args)
    with contextlib.closing(x):
        regions = x.shape[1] if x.ndim == 2 else int(np.prod(x.shape[1:3]))
        if args.steps > regions:
            raise UsageError(f"--steps {args.steps} exceeds the {regions} pixel-flipping regions "
                             f"of an input of shape {x.shape[1:]}; use --steps {regions} or "
                             "fewer.")
        parts = list(analyze_all(analyzers, x, args.neuron, args.batch_size))
    x = np.concatenate([p[0] for p in parts])
    relevances = {m: np.concatenate([p[2][m] for p in parts]) for m in args.method}
    logits = np.concatenate([p[1] for p in parts])
    forward = next(iter(analyzers.values())).forward_model
    target = logits.argmax(axis=1) if args.neuron is None else np.full(len(x), args.neuron)
    print(f"{'analyzer':<34} {'ΣR / explained':>14} {'AOPC':>8}")
    for m, r in relevances.items():
        explained = logits[np.arange(len(x)), target]
        ratio = np.mean(r.reshape(len(x), -1).sum(1) / np.where(explained == 0, 1, explained))
        curve = evaluate.pixel_flipping(forward, x, r, target=target,
                                        steps=args.steps)
        print(f"{m:<34} {ratio:>14.4f} {curve.mean_aopc():>8.3f}")
    if args.png:
        n = min(args.png_samples, len(x))
        heatmap.plot_grid({m: r[:n] for m, r in relevances.items()}, inputs=x[:n],
                          path=args.png)
        print(f"wrote {args.png}")


def add_parser(sub) -> None:
    """The ``compare`` command and its arguments, on the subcommands ``sub``."""
    p = sub.add_parser("compare", help="compare analyzers: conservation and AOPC table")
    add_model_arguments(p)
    p.add_argument("--png", default=None, metavar="FILE", help="side-by-side figure")
    p.add_argument("--steps", type=int, default=16,
                   help="pixel-flipping steps of the AOPC column (default: 16)")
    p.set_defaults(func=cmd_compare)
