"""``keras-lrp generate``: explain a causal LM's continuation of a prompt
(:func:`keras_lrp.explain_generation`), writing token heatmaps and the numbers."""

from __future__ import annotations

import io
import os

import numpy as np

from keras_lrp.cli.prepare import UsageError, add_command_flags, load_model, parse_options


def parse_ids(text: str, flag: str) -> np.ndarray:
    """Token ids from ``"5 17 3"`` or ``"5,17,3"``, or from a file of them (.npy or text)."""
    if os.path.isfile(text):
        ids = np.load(text) if text.endswith(".npy") else np.loadtxt(text, dtype="int64",
                                                                    ndmin=1)
    else:
        try:
            ids = np.array([int(t) for t in text.replace(",", " ").split()], dtype="int64")
        except ValueError:
            raise UsageError(f"{flag} takes token ids ('5 17 3' or '5,17,3') or a file of them; "
                             f"got {text!r}.") from None
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0 or ids.dtype.kind not in "iu" or ids.min() < 0:
        raise UsageError(f"{flag} needs at least one token id, each >= 0; got {text!r}.")
    return ids.astype("int64")


def _load(path):
    try:  # keras-hub's models need its classes registered before loading
        import keras_hub  # noqa: F401
    except ImportError:
        pass
    return load_model(path)


def cmd_generate(args) -> None:
    from keras_lrp.generation import explain_generation
    from keras_lrp.io.atomic import write_atomically
    from keras_lrp.plots.tokens import read_vocab, write_generation_heatmaps

    prompt = parse_ids(args.prompt, "--prompt")
    continuation = parse_ids(args.continuation, "--continuation")
    vocab = read_vocab(args.vocab) if args.vocab else None
    if vocab is not None:
        top = int(max(prompt.max(), continuation.max()))
        if top >= len(vocab):
            raise UsageError(f"token id {top} is beyond --vocab {args.vocab} ({len(vocab)} "
                             f"tokens, ids 0 to {len(vocab) - 1}).")
    model = _load(args.model)
    options = parse_options(args.option)
    gen = explain_generation(args.method, model, prompt, continuation,
                             attention=args.attention, **options)
    os.makedirs(args.out, exist_ok=True)
    paths = write_generation_heatmaps(gen, args.out, vocab)
    numbers = os.path.join(args.out, "generation.npz")

    def write(handle):
        buffer = io.BytesIO()
        np.savez(buffer, ids=gen.ids, prompt_length=gen.prompt_length, per_token=gen.per_token,
                 logits=gen.logits, log_probs=gen.log_probs, span=np.asarray(gen.span),
                 span_relevance=gen.span_relevance)
        handle.write(buffer.getvalue())

    write_atomically(numbers, write)
    words = gen.words(vocab)
    print(f"{args.method} (attention={args.attention}) on {model.name}: prompt of "
          f"{gen.prompt_length} tokens, {len(continuation)} generated")
    for j in range(len(continuation)):
        t = gen.prompt_length + j
        top = int(np.argmax(gen.per_token[j, :t]))
        print(f"  {words[t]!r:>12}  log p {gen.log_probs[j]:8.3f}   most relevant: "
              f"{words[top]!r} at {top} (R = {gen.per_token[j, top]:.3g})")
    print("wrote " + ", ".join(paths + [numbers]))


def add_parser(sub) -> None:
    """The ``generate`` command and its arguments, on the subcommands ``sub``."""
    p = sub.add_parser(
        "generate", help="explain a causal LM's continuation of a prompt (token heatmaps)",
        description="Explain each generated token's logit and the continuation's "
        "log-likelihood by the prompt's tokens (keras_lrp.explain_generation): writes "
        "generation.png, generation.html and generation.npz into --out.")
    add_command_flags(p)
    p.add_argument("model", help=".keras file of a causal LM (token ids, padding mask → logits)")
    p.add_argument("--prompt", required=True, metavar="IDS",
                   help="the prompt's token ids ('5 17 3', '5,17,3', or a .npy/.txt file)")
    p.add_argument("--continuation", required=True, metavar="IDS",
                   help="the generated token ids, in the same forms")
    p.add_argument("--vocab", default=None, metavar="FILE",
                   help="one token per line (line k is id k), for the heatmaps' words")
    p.add_argument("--method", default="lrp.z", metavar="NAME",
                   help="analyzer name (default: lrp.z, LXT's choice)")
    p.add_argument("--attention", choices=("attnlrp", "cp"), default="attnlrp",
                   help="AttnLRP or CP-LRP (default: attnlrp)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the analyzer, e.g. epsilon=0.1")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_generate)
