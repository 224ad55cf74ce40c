"""``keras-lrp compare``: several analyzers on the same inputs, their conservation and
pixel-flipping AOPC side by side, and one comparison figure; with ``--metrics`` the metrics of
:mod:`keras_lrp.metrics` with bootstrap intervals, and with ``--html`` the whole comparison as
one self-contained page (:func:`keras_lrp.report`)."""

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


def parse_metrics(text):
    """``--metrics NAME[,NAME…]`` → Metric instances; an unknown name is a UsageError that
    lists the known ones."""
    from keras_lrp.metrics.registry import UnknownMetric, get

    if text is None:
        return []
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UsageError(f"--metrics needs metric names separated by commas, e.g. "
                         f"--metrics PixelFlipping,Sparseness; got {text!r}.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"--metrics names {repeated[0]} more than once.")
    try:
        return [get(n) for n in names]
    except UnknownMetric as e:
        raise UsageError(f"--metrics: {e}") from None


def cmd_compare(args) -> None:
    from keras_lrp.analyzers import evaluate
    from keras_lrp.plots import heatmap

    if len(args.method) < 2:
        raise UsageError("compare needs at least two --method arguments.")
    metrics = parse_metrics(args.metrics)
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0 (0: no intervals), got {args.bootstrap}.")
    for path, option in ((args.png, "--png"), (args.html, "--html")):
        if path:
            check_out(path, option)
    from keras_lrp.cli.analyze import _vocab

    vocab = _vocab(args.vocab)
    model, x, _, analyzers = prepare(args)
    with contextlib.closing(x):
        if vocab is not None:
            from keras_lrp.plots import tokens

            tokens.check_token_ids(x, vocab, args.vocab)
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
    if metrics or args.html:
        _report(args, model, x, analyzers, relevances, metrics, vocab)


def _report(args, model, x, analyzers, relevances, metrics, vocab) -> None:
    """The metric table (--metrics) and the HTML page (--html) of the analyses just made."""
    from keras_lrp.metrics.comparison import compare_methods
    from keras_lrp.plots.html import write_html

    comparison = compare_methods(model, x, list(analyzers.items()), metrics=metrics,
                                 y=args.neuron, relevances=relevances, token_names=vocab,
                                 bootstrap=args.bootstrap, seed=args.seed)
    if metrics:
        print()
        print(comparison.table())
    if args.html:
        write_html(comparison, args.html, samples=range(min(args.png_samples, len(x))))
        print(f"wrote {args.html}")


def add_parser(sub) -> None:
    """The ``compare`` command and its arguments, on the subcommands ``sub``."""
    p = sub.add_parser("compare", help="compare analyzers: conservation and AOPC table")
    add_model_arguments(p)
    p.add_argument("--png", default=None, metavar="FILE", help="side-by-side figure")
    p.add_argument("--steps", type=int, default=16,
                   help="pixel-flipping steps of the AOPC column (default: 16)")
    p.add_argument("--metrics", default=None, metavar="NAME[,NAME...]",
                   help="also evaluate these metrics of keras_lrp.metrics (names separated by "
                        "commas) and print their means with bootstrap intervals")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="write the comparison as one self-contained HTML page: the metric "
                        "table, the heatmaps of the first --png-samples inputs and each "
                        "analyzer against its _IB twin")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="resamples of the metrics' bootstrap intervals (default: 1000; 0: "
                        "none)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the bootstrap resampling (default: 0)")
    p.add_argument("--vocab", default=None, metavar="FILE",
                   help="token inputs: a vocabulary (one token per line, line k is id k), "
                        "for the words of the --html page")
    p.set_defaults(func=cmd_compare)
