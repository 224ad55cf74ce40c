"""Make LXT's AttnLRP and CP-LRP reference numbers for tiny Hugging Face causal LMs.

LXT is the PyTorch library of AttnLRP (Achtibat et al., ICML 2024; PyPI ``lxt``). This script
builds tiny random ``transformers`` models (Llama, Qwen2, Qwen3, Gemma3 text), patches them with
LXT's own ``lxt.efficient.monkey_patch`` (AttnLRP: the default patch map; CP-LRP: the model file's
``cp_LRP`` map) and reads the relevance as LXT does: gradient x input at ``inputs_embeds``, summed
over the hidden axis, for the logit of the argmax token at the last position.

Run it in its own environment, never in keras-lrp's (versions it was made with):

    python3 -m venv /work/anchors/lxt-llm
    /work/anchors/lxt-llm/bin/pip install /opt/wheels/torch-2.13.0+cpu-*.whl  # torch first
    /work/anchors/lxt-llm/bin/pip install --no-deps lxt==2.1
    /work/anchors/lxt-llm/bin/pip install transformers==4.53.3 numpy  # torch not among deps
    /work/anchors/lxt-llm/bin/python tools/make_lxt_llm_reference.py tests/data/lxt_llm

(numpy 2.4.6; transformers 5.x lacks what LXT 2.1's ``lxt/efficient/models/bert.py`` imports.)
``lxt.efficient.models`` imports ``torchvision.models.vision_transformer`` for its ViT map, and
the PyPI torchvision wheel is CUDA-built and fails to load against CPU torch, so a stub module
holding only ``nn`` is put in its place (only the ViT map uses it; nothing here touches it).

Models: vocab 64, hidden 32, 2 layers, 4 heads, 2 key-value heads, head_dim 8, intermediate 64,
rope_theta 1e4 (Gemma3 1e6, which keras-hub fixes for its global layers), rms_norm_eps 1e-6, no
rope scaling, eager attention, every layer global (Gemma3:
``layer_types`` all "full_attention", query_pre_attn_scalar 8, no soft-capping; the extra file
``gemma3_softcap`` has final_logit_softcapping 3; transformers 4.53.3's Gemma3 never passes
attn_logit_softcapping to its attention function, so that one is left None). tie_word_embeddings
is the family's default (recorded in "config"). Weights: fixed torch seed, every matrix normal(0,
0.2), biases normal(0, 0.1), norm scales 1 + 0.1 normal (Gemma's norms store w with scale 1 + w, so
w = 0.1 normal); every value is then rounded to a multiple of 2^-8, so the float64 weights are exact
and the files compress. model.double(), eval mode.

Float64: Hugging Face's code forces float32 inside RMSNorm (and LXT's patched RMSNorm copies that),
the softmax (dtype=torch.float32) and the rotary cos/sin, even in a float64 model. The main numbers
are computed with a TorchFunctionMode that turns those float32 requests into float64 (the
operations, and LXT's autograd rules, are unchanged); the same numbers with those float32 casts left
in place are stored under "*_f32" keys for comparison (they differ by ~1e-7). Likewise the rotary
inv_freq and Gemma's embedding scale sqrt(hidden), which Hugging Face builds as float32 buffers, are
rebuilt in float64.

Each family's .npz: "hf:<name>" every state_dict tensor (float64), "config" (JSON string),
"tokens" (3, 8), "targets" (3,), "logits" (3, 8, 64) of the unpatched model, "attnlrp" (3, 8),
"cp" (3, 8), "gradxinput" (3, 8) (unpatched gradient x input), "pos4_target", "pos4_attnlrp" (8,),
"pos4_cp" (8,) (sequence 0, logit of the argmax token at position 4), and "logits_f32",
"attnlrp_f32", "cp_f32", "pos4_attnlrp_f32", "pos4_cp_f32", "versions" (JSON string).
Mixtral / Qwen3-MoE are not made: LXT 2.1 has no patch map for them.
"""

import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
import transformers  # noqa: E402  (before the torchvision stub: transformers probes torchvision)
from torch.overrides import TorchFunctionMode

T = 8
N = 3
VOCAB = 64
TOKEN_SEED = 1234
TORCH_SEED = 0
GRID = 2.0**-8

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    intermediate_size=64,
    max_position_embeddings=64,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    rope_scaling=None,
    attention_dropout=0.0,
)

#: Gemma 3's extras, every layer global.
GEMMA3 = dict(
    layer_types=["full_attention", "full_attention"],
    sliding_window=64,
    rope_local_base_freq=10000.0,
    rope_theta=1_000_000.0,  # keras-hub's Gemma 3 fixes its global layers' RoPE at 1e6
    query_pre_attn_scalar=8,
    hidden_activation="gelu_pytorch_tanh",
    attn_logit_softcapping=None,  # transformers 4.53.3's Gemma3 never applies it anyway
)

FAMILIES = {
    "llama": ("llama", "LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("qwen2", "Qwen2Config", "Qwen2ForCausalLM", dict(use_sliding_window=False)),
    "qwen3": ("qwen3", "Qwen3Config", "Qwen3ForCausalLM", dict(use_sliding_window=False)),
    "gemma3": ("gemma3", "Gemma3TextConfig", "Gemma3ForCausalLM",
               dict(GEMMA3, final_logit_softcapping=None)),
    "gemma3_softcap": ("gemma3", "Gemma3TextConfig", "Gemma3ForCausalLM",
                       dict(GEMMA3, final_logit_softcapping=3.0)),
}


class Float64Internals(TorchFunctionMode):
    """Turn the float32 casts of Hugging Face's (and LXT's) code into float64 casts."""

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.float:
            func = torch.Tensor.double
        elif func is torch.Tensor.to:
            args = tuple(torch.float64 if a is torch.float32 else a for a in args)
        if kwargs.get("dtype") is torch.float32:
            kwargs["dtype"] = torch.float64
        return func(*args, **kwargs)


class NoMode:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def build(family):
    mod_name, cfg_name, cls_name, extra = FAMILIES[family]
    cfg_cls = getattr(transformers, cfg_name)
    model_cls = getattr(transformers, cls_name)
    config = cfg_cls(**{**COMMON, **extra})
    config._attn_implementation = "eager"
    torch.manual_seed(TORCH_SEED)
    model = model_cls(config)
    gen = torch.Generator().manual_seed(TORCH_SEED)
    is_gemma = mod_name == "gemma3"
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if "norm" in name:
                value = 0.1 * noise + (0.0 if is_gemma else 1.0)
            elif name.endswith("bias"):
                value = 0.1 * noise
            else:
                value = 0.2 * noise
            p.copy_(torch.round(value / GRID) * GRID)
    model = model.double().eval()
    # Buffers that Hugging Face computes in float32 at construction: recompute them in float64.
    for name, module in model.named_modules():
        if hasattr(module, "inv_freq"):
            base = config.rope_local_base_freq if name.endswith("_local") else config.rope_theta
            dim = config.head_dim
            exponent = torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float64) / dim
            inv = 1.0 / (base**exponent)
            module.register_buffer("inv_freq", inv, persistent=False)
            module.original_inv_freq = inv
        if hasattr(module, "embed_scale"):
            scale = torch.tensor(config.hidden_size**0.5, dtype=torch.float64)
            module.register_buffer("embed_scale", scale, persistent=False)
    return model, config


def tokens():
    return np.random.default_rng(TOKEN_SEED).integers(0, VOCAB, size=(N, T))


def relevance(model, ids, position, targets, precision):
    """Gradient x input at inputs_embeds (summed over hidden) of logits[b, position, targets[b]]."""
    ctx = Float64Internals() if precision == "f64" else NoMode()
    with ctx:
        emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=emb, use_cache=False).logits
        sel = logits[torch.arange(ids.shape[0]), position, targets]
        sel.sum().backward()
        rel = (emb * emb.grad).sum(-1)
    return logits.detach().numpy(), rel.detach().numpy(), sel.detach().numpy()


def install_torchvision_stub():
    tv = types.ModuleType("torchvision")
    tvm = types.ModuleType("torchvision.models")
    vt = types.ModuleType("torchvision.models.vision_transformer")
    vt.nn = torch.nn
    tv.models, tvm.vision_transformer = tvm, vt
    sys.modules.update(
        {"torchvision": tv, "torchvision.models": tvm, "torchvision.models.vision_transformer": vt}
    )


def worker(family, mode, state_path, out_path):
    """Patch with LXT (in a fresh process: LXT's patches are class-level and permanent)."""
    import importlib

    install_torchvision_stub()
    from lxt.efficient import monkey_patch

    mod_name = FAMILIES[family][0]
    hf_module = importlib.import_module(f"transformers.models.{mod_name}.modeling_{mod_name}")
    lxt_module = importlib.import_module(f"lxt.efficient.models.{mod_name}")
    if mode == "attnlrp":
        monkey_patch(hf_module)  # LXT's default map == lxt_module.attnLRP
    else:
        monkey_patch(hf_module, patch_map=lxt_module.cp_LRP)
    model, _ = build(family)
    state = torch.load(state_path, weights_only=False)
    model.load_state_dict(state["state_dict"])
    ids = torch.tensor(state["tokens"])
    targets = torch.tensor(state["targets"])
    out = {}
    for precision in ("f64", "f32"):
        logits, rel, _ = relevance(model, ids, -1, targets, precision)
        _, rel4, _ = relevance(model, ids[:1], 4, torch.tensor([state["pos4_target"]]), precision)
        out[precision] = dict(logits=logits, rel=rel, rel4=rel4[0])
    torch.save(out, out_path)


def versions():
    import importlib.metadata as md

    return {k: md.version(k) for k in ("torch", "lxt", "transformers", "numpy")}


def make(family, out_dir):
    model, config = build(family)
    ids_np = tokens()
    ids = torch.tensor(ids_np)
    with Float64Internals(), torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits.numpy()
    targets = logits[:, -1].argmax(-1)
    pos4_target = int(logits[0, 4].argmax())
    with torch.no_grad():
        logits_f32 = model(input_ids=ids, use_cache=False).logits.numpy()
    _, gxi, sel = relevance(model, ids, -1, torch.tensor(targets), "f64")
    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        state_path = os.path.join(tmp, "state.pt")
        torch.save(
            dict(state_dict=state_dict, tokens=ids_np, targets=targets, pos4_target=pos4_target),
            state_path,
        )
        for mode in ("attnlrp", "cp"):
            out_path = os.path.join(tmp, f"{mode}.pt")
            subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", family, mode]
                + [state_path, out_path],
                check=True,
            )
            res[mode] = torch.load(out_path, weights_only=False)

    data = {"hf:" + k: v.numpy().astype(np.float64) for k, v in state_dict.items()}
    data.update(
        config=np.array(config.to_json_string(use_diff=False)),
        versions=np.array(json.dumps(versions())),
        tokens=ids_np.astype(np.int64),
        targets=targets.astype(np.int64),
        logits=logits,
        logits_f32=logits_f32,
        gradxinput=gxi,
        pos4_target=np.int64(pos4_target),
    )
    for mode in ("attnlrp", "cp"):
        data[mode] = res[mode]["f64"]["rel"]
        data[mode + "_f32"] = res[mode]["f32"]["rel"]
        data["pos4_" + mode] = res[mode]["f64"]["rel4"]
        data["pos4_" + mode + "_f32"] = res[mode]["f32"]["rel4"]
    path = os.path.join(out_dir, family + ".npz")
    np.savez_compressed(path, **data)

    # Sanity report.
    explained = logits[np.arange(N), -1, targets]
    tied = config.tie_word_embeddings
    print(f"== {family}: {os.path.getsize(path)} bytes, tie_word_embeddings={tied}")
    print(f"   explained logits {np.round(explained, 4)}")
    for mode in ("attnlrp", "cp"):
        r = res[mode]
        print(
            f"   {mode}: patched-vs-unpatched logits max|d| f64 "
            f"{np.abs(r['f64']['logits'] - logits).max():.2e}, "
            f"f32 {np.abs(r['f32']['logits'] - logits_f32).max():.2e}"
        )
        print(f"   {mode}: sum(R)/logit {np.round(data[mode].sum(-1) / explained, 4)}")
        print(
            f"   {mode}: f64-vs-f32 max|d| {np.abs(data[mode] - data[mode + '_f32']).max():.2e}"
            f" (max|R| {np.abs(data[mode]).max():.3f})"
        )
        print(f"   {mode}: pos4 R {np.round(data['pos4_' + mode], 4)}")
    print(f"   gradxinput sum/logit {np.round(gxi.sum(-1) / explained, 4)}")
    print(f"   max|gradxinput - attnlrp| {np.abs(gxi - data['attnlrp']).max():.3f}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:6])
        return
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "data", "lxt_llm")
    os.makedirs(out_dir, exist_ok=True)
    print(versions())
    # An independent plain-PyTorch re-implementation of the rule table (kept outside the
    # repository) reproduced "attnlrp" and "cp" to 3e-15.
    for family in sys.argv[2:] or FAMILIES:
        make(family, out_dir)


if __name__ == "__main__":
    main()
