"""Time AttnLRP and CP-LRP through a keras-hub Llama causal LM against one compiled input
gradient (issue 20's speed check), and how both grow with the sequence length and the depth.

The model: ``LlamaBackbone`` with random weights (``--layers`` blocks, hidden ``--dim``,
``--heads`` query and half as many key-value heads, SwiGLU MLP of 2·dim, vocabulary
``--vocab``) and keras-hub's own ``LlamaCausalLM`` head (the tied, reversed embedding), on
prompts of ``--length`` tokens, batch ``--batch``. The explained output is each prompt's
largest logit at the last position.

The reference: the gradient of the same logits with respect to the token embeddings (the first
float tensor: token ids have no gradient), the backbone's blocks, final norm and tied head
called on an embedding input, in one ``tf.function`` (TensorFlow; run on the TensorFlow
backend). Each LRP analysis includes its own forward pass, as the gradient does.

Peak memory, TensorFlow's BFC allocator on the CPU (``TF_CPU_ALLOCATOR_USE_BFC=true``, set
here): the peak bytes of live tensors while the batch runs, minus those held before it, for the
gradient and each analysis (measured in one process, each after a warm-up run, with the peak
counter reset between them).

    python benchmarks/bench_llm.py [--layers 4] [--dim 256] [--length 256] [--batch 8]
        [--repeats 5] [--scaling]

``--scaling`` also prints the ratios for half and double the length and the depth.

``--variable N`` times issue 28's case instead: N prompts of random lengths in
[``--min-length``, ``--max-length``] (default 8…256, batch 1, one by one) on the model of open
length, each prompt's largest logit explained (``max_activation``). The reference is the
gradient of that logit w.r.t. the token embeddings, one ``tf.function`` with
``reduce_retracing`` (its traces included). Each LRP row is a fresh ``lrp.z`` analyzer with one
``buckets`` setting, its builds included: ``exact`` (one analysis per length, as before issue
28), ``pow2`` (the default) and one bucket at the longest length. Prints the total time, its
ratio to the gradients' total, and the number of builds.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_engine import interleaved_medians  # noqa: E402

import keras_lrp  # noqa: E402


def llama(layers, dim, heads, vocab):
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=vocab, num_layers=layers, hidden_dim=dim, intermediate_dim=2 * dim,
        num_query_heads=heads, num_key_value_heads=max(1, heads // 2))
    return keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)


def fixed(lm, length):
    ins = {n: keras.Input((length,), dtype="int32", name=n)
           for n in ("token_ids", "padding_mask")}
    return keras.Model(ins, lm(ins))


def embedding_head(lm, length):
    """The backbone's blocks, final norm and tied head on (embeddings, padding mask) of
    ``length`` tokens (``None``: any length)."""
    bb = lm.backbone
    e = keras.Input((length, bb.hidden_dim), name="embedded")
    m = keras.Input((length,), dtype="int32", name="padding_mask")
    x = e
    for block in bb.transformer_layers:
        x = block(x, decoder_padding_mask=m)
    return keras.Model([e, m], bb.token_embedding(bb.layer_norm(x), reverse=True))


def embedding_gradient(lm, length):
    """A compiled function: (token ids, flat index) → ∂ logits[index] / ∂ embeddings."""
    bb, head = lm.backbone, embedding_head(lm, length)

    @tf.function(jit_compile=False, reduce_retracing=True)
    def grad(ids, index):
        emb = bb.token_embedding(ids)
        with tf.GradientTape() as tape:
            tape.watch(emb)
            logits = head([emb, tf.ones_like(ids)])
            flat = tf.reshape(logits, (tf.shape(logits)[0], -1))
            y = tf.reduce_sum(tf.gather(flat, index, batch_dims=1))
        return tape.gradient(y, emb)

    return grad


def _peak_mib(fn) -> float:
    fn()  # warm up: traced, allocator grown
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    fn()
    return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2 ** 20


def measure(layers, dim, heads, vocab, length, batch, repeats, memory=True):
    lm = llama(layers, dim, heads, vocab)
    model = fixed(lm, length)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, (batch, length)).astype("int32")
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    last = np.asarray(model(x))[:, -1]
    index = ((length - 1) * vocab + last.argmax(-1)).astype("int32")
    gradient = embedding_gradient(lm, length)
    ids_t, index_t = tf.constant(ids), tf.constant(index[:, None])
    fns = {"gradient": lambda: gradient(ids_t, index_t).numpy()}
    builds = {}
    for label, kw in (("AttnLRP", {}), ("CP-LRP", {"attention": "cp"})):
        start = time.perf_counter()
        a = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index", **kw)
        a.analyze(x, neuron_selection=index)  # compiles
        builds[label] = time.perf_counter() - start
        fns[label] = lambda a=a: a.analyze(x, neuron_selection=index)
    medians = interleaved_medians(fns, repeats)
    peaks = {k: _peak_mib(f) for k, f in fns.items()} if memory else {}
    return medians, builds, peaks


def max_logit_gradient(lm):
    """A compiled function of any length: token ids → ∂ max(logits) / ∂ embeddings."""
    bb, head = lm.backbone, embedding_head(lm, None)

    @tf.function(reduce_retracing=True)
    def grad(ids):
        emb = bb.token_embedding(ids)
        with tf.GradientTape() as tape:
            tape.watch(emb)
            logits = head([emb, tf.ones_like(ids)])
            y = tf.reduce_sum(tf.reduce_max(tf.reshape(logits, (tf.shape(logits)[0], -1)), -1))
        return tape.gradient(y, emb)

    return grad


def variable(args) -> None:
    lm = llama(args.layers, args.dim, args.heads, args.vocab)
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.min_length, args.max_length + 1, args.variable)
    prompts = [rng.integers(0, args.vocab, (1, t)).astype("int32") for t in lengths]
    grad = max_logit_gradient(lm)
    start = time.perf_counter()
    for ids in prompts:
        grad(tf.constant(ids)).numpy()
    gradient = time.perf_counter() - start
    print(f"keras-hub LlamaCausalLM, {args.layers} layers, hidden {args.dim}, vocabulary "
          f"{args.vocab}; {args.variable} prompts of random lengths {args.min_length}…"
          f"{args.max_length} ({len(set(lengths.tolist()))} distinct), batch 1, one by one; "
          f"{os.cpu_count()} CPUs")
    print("| explained by | total s | ÷ the gradients' total | builds |")
    print("|---|---|---|---|")
    print(f"| gradient (reference) | {gradient:.1f} | 1.00 | |")
    settings = [("exact", "exact")] if not args.skip_exact else []
    settings += [("pow2", "pow2"), (f"[{args.max_length}]", [args.max_length])]
    for label, buckets in settings:
        a = keras_lrp.create_analyzer("lrp.z", lm, buckets=buckets)
        start = time.perf_counter()
        for ids in prompts:
            a.analyze({"token_ids": ids, "padding_mask": np.ones_like(ids)})
        total = time.perf_counter() - start
        print(f"| lrp.z, buckets={label} | {total:.1f} | {total / gradient:.2f} | {a.builds} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("layers", 4), ("dim", 256), ("heads", 8), ("vocab", 1000),
                          ("length", 256), ("batch", 8), ("repeats", 5)):
        parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--scaling", action="store_true")
    for flag, default in (("variable", 0), ("min-length", 8), ("max-length", 256)):
        parser.add_argument(f"--{flag}", type=int, default=default)
    parser.add_argument("--skip-exact", action="store_true",
                        help="with --variable: leave out buckets='exact' (a build per length)")
    args = parser.parse_args()
    if args.variable:
        return variable(args)
    shapes = [(args.layers, args.length)]
    if args.scaling:
        shapes += [(args.layers, args.length // 2), (args.layers, args.length * 2),
                   (max(1, args.layers // 2), args.length), (args.layers * 2, args.length)]
    print(f"keras-hub LlamaCausalLM, hidden {args.dim}, {args.heads} heads, vocabulary "
          f"{args.vocab}, batch {args.batch}; {os.cpu_count()} CPUs; median of {args.repeats} "
          "interleaved runs; memory: peak live tensors (BFC) during the batch")
    print(f"{'layers':>6} {'T':>5} {'method':<8} {'build s':>8} {'median ms':>10} "
          f"{'÷ gradient':>11} {'peak MiB':>9} {'÷ gradient':>11}")
    for layers, length in shapes:
        medians, builds, peaks = measure(layers, args.dim, args.heads, args.vocab, length,
                                         args.batch, args.repeats)
        for name, t in medians.items():
            build = f"{builds[name]:.1f}" if name in builds else ""
            print(f"{layers:>6} {length:>5} {name:<8} {build:>8} {t * 1e3:>10.1f} "
                  f"{t / medians['gradient']:>11.2f} {peaks[name]:>9.1f} "
                  f"{peaks[name] / peaks['gradient']:>11.2f}")


if __name__ == "__main__":
    main()
