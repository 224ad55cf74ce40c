"""Tiny keras-hub causal LMs for the tests: built from small configs with random weights, or
from the Hugging Face weights of ``tests/data/lxt_llm/*.npz`` through keras-hub's own
checkpoint converters (a loader that reads the npz instead of a safetensors file)."""
import importlib
import importlib.util
import json
import pathlib
import sys
import types

import keras
import numpy as np

DATA = pathlib.Path(__file__).resolve().parent / "data" / "lxt_llm"
V, HIDDEN, LAYERS, HEADS, KV_HEADS, FF, T = 64, 32, 2, 4, 2, 64, 8
#: family → (keras-hub backbone, its CausalLM task)
FAMILIES = {
    "llama": ("LlamaBackbone", "LlamaCausalLM"),
    "llama3": ("Llama3Backbone", "Llama3CausalLM"),
    "mistral": ("MistralBackbone", "MistralCausalLM"),
    "gemma": ("GemmaBackbone", "GemmaCausalLM"),
    "gemma3": ("Gemma3Backbone", "Gemma3CausalLM"),
    "qwen": ("QwenBackbone", "QwenCausalLM"),
    "qwen3": ("Qwen3Backbone", "Qwen3CausalLM"),
    "phi3": ("Phi3Backbone", "Phi3CausalLM"),
    "mixtral": ("MixtralBackbone", "MixtralCausalLM"),
}
#: LXT reference file → keras-hub's converter module for it
CONVERTERS = {"llama": "convert_llama3", "qwen2": "convert_qwen", "qwen3": "convert_qwen3",
              "gemma3": "convert_gemma3"}


def backbone(family: str, **overrides):
    import keras_hub

    cls = getattr(keras_hub.models, FAMILIES[family][0])
    kw = dict(vocabulary_size=V, num_layers=LAYERS, hidden_dim=HIDDEN, intermediate_dim=FF,
              num_query_heads=HEADS, num_key_value_heads=KV_HEADS)
    if family in ("gemma", "gemma3", "qwen3"):
        kw["head_dim"] = HIDDEN // HEADS
    if family == "gemma3":
        kw.update(image_size=None, vision_encoder=None, sliding_window_size=1024)
    if family == "mistral":
        kw["sliding_window"] = 1024
    if family == "mixtral":
        kw.update(num_experts=4, top_k=2)
    return cls(**{**kw, **overrides})


def causal_lm(family_or_backbone, **overrides):
    import keras_hub

    bb = backbone(family_or_backbone, **overrides) if isinstance(family_or_backbone, str) \
        else family_or_backbone
    name = next(task for b, task in FAMILIES.values() if b == type(bb).__name__)
    return getattr(keras_hub.models, name)(backbone=bb, preprocessor=None)


def static(model, length: int = T):
    """``model`` (inputs of any length) called on inputs of a fixed length."""
    ins = {n: keras.Input((length,), dtype="int32", name=n)
           for n in ("token_ids", "padding_mask")}
    return keras.Model(ins, model(ins), name=f"{model.name}_t{length}")


class NpzLoader:
    """What keras-hub's converters ask of a checkpoint, served from a reference npz."""

    def __init__(self, data):
        self.data = data

    def get_tensor(self, key):
        if "hf:" + key not in self.data:  # converters may drop the "model." prefix
            key = next(k[3:] for k in self.data.files if k.endswith("." + key))
        return np.asarray(self.data["hf:" + key])

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        tensor = self.get_tensor(hf_weight_key)
        if hook_fn:
            tensor = hook_fn(tensor, list(keras_variable.shape))
        keras_variable.assign(tensor)


def from_reference(stem: str):
    """(keras-hub CausalLM with the reference's weights, the reference npz)."""
    data = np.load(DATA / f"{stem}.npz")
    config = json.loads(str(data["config"]))
    for name, attr in (("safetensors", "safe_open"), ("sentencepiece", "SentencePieceProcessor")):
        if name not in sys.modules and importlib.util.find_spec(name) is None:  # the Gemma 3
            # converter imports them at the top, for files these tests never read
            stub = types.ModuleType(name)
            setattr(stub, attr, None)
            sys.modules.setdefault(name, stub)
    module = importlib.import_module(
        f"keras_hub.src.utils.transformers.{CONVERTERS[stem.split('_')[0]]}")
    kwargs = module.convert_backbone_config(config)
    bb = module.backbone_cls(**kwargs)
    module.convert_weights(bb, NpzLoader(data), config)
    return causal_lm(bb), data
