"""``keras-lrp concepts``: relevance maximisation over a dataset (keras_lrp.concepts.relmax):
for every channel of the chosen layers, its top samples by relevance and by activation, and per
class, into one HDF5 file (resumable), and optionally its reference images."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from keras_lrp.cli.prepare import (
    UsageError,
    add_command_flags,
    check_out,
    load_inputs,
    load_model,
    parse_options,
)


def _labels(path, n: int):
    if path is None:
        return None
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"--labels {path} could not be read as a .npy file ({e}).") from None
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"--labels {path} holds {labels.dtype} of shape {labels.shape}; give "
                         f"{n} integer class indices, one per input.")
    return labels


def cmd_concepts(args) -> None:
    import keras_lrp
    from keras_lrp.concepts.relmax import relevance_maximization
    from keras_lrp.io.layout import partial_path

    check_out(args.out, "--out")
    if args.png:
        check_out(args.png, "--png", folder=True)
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}.")
    model = load_model(args.model)
    x = load_inputs(args.inputs, model, args.key)
    with contextlib.closing(x):
        labels = _labels(args.labels, len(x))
        options = parse_options(args.option)
        analyzer = keras_lrp.create_analyzer(args.method, model, **options)
        if not hasattr(analyzer, "composite"):
            raise UsageError(f"--method {args.method} is not an LRP analyzer; concepts need "
                             "one (e.g. lrp.epsilon_plus).")
        missing = [n for n in args.layer if n not in analyzer.layer_names]
        if missing:
            raise UsageError(f"--layer {missing[0]} is not a layer of the analysis; its layers "
                             f"are {', '.join(analyzer.layer_names)}.")
        extra = {"method_options": options, "inputs_sha256": x.sha256()}
        done = {"rows": 0}
        work = partial_path(args.out)
        if args.resume:
            print(f"keras-lrp: resuming {work}" if os.path.exists(work) else
                  f"keras-lrp: no {work} to resume; starting at row 0", file=sys.stderr)

        def progress(rows):
            done["rows"] = rows
            print(f"\r  {rows}/{len(x)} inputs", end="\n" if rows == len(x) else "",
                  file=sys.stderr, flush=True)

        try:
            result = relevance_maximization(
                analyzer, x, args.layer, top=args.top, labels=labels,
                batch_size=args.batch_size, out=args.out, resume=args.resume, metadata=extra,
                on_batch=progress)
        except BaseException:
            if os.path.exists(work):
                print(f"\nkeras-lrp: kept the state after {done['rows'] or 'the last'} "
                      f"finished rows in {work}; rerun with --resume to continue",
                      file=sys.stderr)
            raise
        print(f"wrote {args.out}: top {args.top} of {result.rows} inputs for "
              f"{sum(t.channels for t in result.top['relevance'].values())} channels of "
              f"{', '.join(args.layer)}")
        if args.png:
            for png in draw(analyzer, x, result, args.png):
                print(f"wrote {png}")


def draw(analyzer, x, result, folder) -> list:
    """For each layer and channel, ``folder/<layer>/channel_<k>.png``: its RelMax top samples,
    each masked by its receptive-field heatmap and blanked outside its crop box, beside the
    heatmap with its colour scale (keras_lrp.plots.heatmap.plot_grid)."""
    from keras_lrp.concepts.conditional import Conditional
    from keras_lrp.concepts.references import receptive_field_heatmaps, reference_image
    from keras_lrp.plots import heatmap

    crp = Conditional(analyzer, exclude_parallel=False)
    written = []
    for layer, top in result.top["relevance"].items():
        out = Path(folder) / layer
        out.mkdir(parents=True, exist_ok=True)
        for k in range(top.channels):
            rows = [i for i in range(top.k) if top.index[i, k] >= 0]
            if not rows:
                continue
            index = top.index[rows, k]
            xs = np.stack([np.asarray(x[int(i):int(i) + 1])[0] for i in index])
            heat = receptive_field_heatmaps(crp, xs, layer, k, top.neuron[rows, k])
            shown = []
            for image, h in zip(xs, heat):
                ref = reference_image(image, h)
                r0, r1, c0, c1 = ref.box
                full = np.zeros_like(image, dtype=np.float64)
                full[r0:r1, c0:c1] = ref.masked
                shown.append(full)
            png = out / f"channel_{k}.png"
            heatmap.plot_grid({f"{layer} channel {k}": heat}, inputs=np.stack(shown),
                              row_titles=[f"#{r + 1}: input {int(i)}" for r, i in
                                          zip(rows, index)], path=str(png))
            written.append(png)
    return written


def add_parser(sub) -> None:
    """The ``concepts`` command and its arguments, on the subcommands ``sub``."""
    p = sub.add_parser(
        "concepts", help="relevance maximisation: each channel's top samples (CRP)",
        description="For every channel of the --layer layers, the --top inputs in which it is "
        "most relevant (RelMax) and most active (ActMax), overall and per class, as zennit-crp's "
        "FeatureVisualization; written to --out (HDF5), resumable with --resume.")
    add_command_flags(p)
    p.add_argument("model", help=".keras or .h5 model file")
    p.add_argument("inputs", help=".npy, .npz, .h5, an image file or a folder of images")
    p.add_argument("--layer", action="append", required=True, metavar="NAME",
                   help="a layer of the analysis (repeatable), e.g. conv2")
    p.add_argument("--top", type=int, default=8, help="samples kept per channel (default: 8)")
    p.add_argument("--method", default="lrp.epsilon_plus", metavar="NAME",
                   help="the LRP analyzer (default: lrp.epsilon_plus)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the analyzer, e.g. epsilon=0.1")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help=".npy of one class per input, the output explained (default: each "
                        "input's winning class)")
    p.add_argument("--key", default=None, metavar="NAME",
                   help="the array of an .npz or the dataset of an .h5 file")
    p.add_argument("--batch-size", type=int, default=64, help="inputs per batch (default: 64)")
    p.add_argument("--out", required=True, help="results file (.h5)")
    p.add_argument("--png", default=None, metavar="DIR",
                   help="also draw each channel's reference images into DIR/<layer>/")
    p.add_argument("--resume", action="store_true",
                   help="continue OUT.partial, left by an interrupted run with the same "
                        "model, inputs and options")
    p.set_defaults(func=cmd_concepts)
