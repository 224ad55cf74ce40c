"""How keras-lrp handles keras-hub models beyond the causal LLMs: a markdown table.

Every model is built here from a tiny config with random weights (the Backbone and task classes
constructed directly, never ``from_preset``: nothing is downloaded): text encoders and their
classifiers (BERT, RoBERTa, DeBERTaV3, …, the encoders of T5 and BART), the Whisper encoder,
vision transformers and CNN image classifiers, the CLIP/SigLIP towers, segmenters, a detector
and a depth estimator. Models whose inputs have open lengths (token ids, images of any size)
are called on fixed-size ``keras.Input``s (8 tokens, 32x32 or 64x64 images); multi-output
backbones get a head (a pooled or sliced tensor followed by ``Dense(3)``), or the explained
output is named with ``output=``: the second column says what is explained.

For each model and each analyzer of :data:`ANALYZERS` (``gradient`` only for models whose
inputs are all float), the analyzer is created with ``keras_lrp.create_analyzer(name, model)``
and run on a batch of two; the cell reads

* ``ok``: ``analyze`` ran, returned finite arrays shaped like the inputs (one value per token
  for token ids: (2, 8)), and ``analyzer.forward_model(x, training=False)`` equals
  ``model(x, training=False)`` (its explained output) within 1e-4 relative to max |model|;
* ``wrong-forward (rel err X)``: it ran, but the forward model is not the user's model;
* ``bad-result: ...``: it ran, but the relevances are not finite or not shaped like the inputs;
* ``refused: ...``: a ValueError/TypeError raised inside keras-lrp whose message names
  keras-lrp or a layer (the first line, 120 characters);
* ``crash: Type: ...``: any other exception (120 characters);
* ``... +changed N model weights``: creating or running the analyzer changed the user's model
  (its variables are compared before and after, and put back, so that each analyzer sees the
  model as built).

A model that does not build (with its first forward pass) within :data:`BUILD_LIMIT` seconds
is reported as not built, and its cells are left out of the count. Under the table: the count
of ``ok`` cells, then each distinct failure message (300 characters; the innermost keras-lrp
frame for crashes and for errors raised outside keras-lrp) and the analyses it stopped.

Usage::

    python tools/hub_corpus_table.py                 # every model
    python tools/hub_corpus_table.py --only bert     # one model (repeatable)
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import keras
import keras_hub
import numpy as np

import keras_lrp

ANALYZERS = ["lrp.epsilon", "lrp.alpha_1_beta_0_IB", "lrp.z", "lrp.epsilon_plus", "gradient"]
FLOAT_ONLY = {"gradient"}
BATCH = 2
RTOL = 1e-4
SEQ = 8          # tokens
VOCAB = 64
IMG = 32         # image side
FRAMES = 16      # Whisper: mel frames
MELS = 16
CLASSES = 3
BUILD_LIMIT = 20  # seconds for building one model and its first forward pass
MESSAGE_CHARS = 120
DETAIL_CHARS = 300

L = keras.layers
M = keras_hub.models


class Case(NamedTuple):
    model: keras.Model
    explained: str
    kwargs: Dict[str, Any]


# ---------------------------------------------------------------- wrapping on fixed inputs


def input_name(tensor) -> str:
    """The name of the InputLayer behind a symbolic model input (the dict key)."""
    operation = getattr(getattr(tensor, "_keras_history", None), "operation", None)
    return operation.name if operation is not None else tensor.name


def _fixed_shape(tensor, side: int) -> tuple:
    """The shape of ``tensor`` (less the batch) with open sizes filled in: token ids get
    :data:`SEQ`, images ``side``, audio features :data:`FRAMES`."""
    shape = list(tensor.shape[1:])
    if "int" in str(tensor.dtype):
        fill = [SEQ] * len(shape)
    elif len(shape) == 2:  # (frames, features)
        fill = [FRAMES, MELS]
    else:
        fill = [side] * len(shape)
    return tuple(f if s is None else s for s, f in zip(shape, fill))


def wrap(inner: keras.Model, explained: str, head: Optional[Callable] = None,
         shapes: Optional[Dict[str, tuple]] = None, output: Any = None,
         side: int = IMG, name: Optional[str] = None) -> Case:
    """``keras.Model`` on fixed-size ``keras.Input``s named like ``inner``'s inputs (a single
    image input is named ``images``), calling ``inner`` and then ``head`` on its output. With
    ``output`` (a key of a dict output) every output gets an Identity layer named by its key, so
    that ``output=key`` names the explained one."""
    shapes = shapes or {}
    struct = getattr(inner, "_inputs_struct", None)
    if struct is None:
        struct = inner.inputs if len(inner.inputs) > 1 else inner.inputs[0]

    def make(key, tensor):
        shape = shapes.get(key) or _fixed_shape(tensor, side)
        return keras.Input(shape, dtype=tensor.dtype, name=key)

    if isinstance(struct, dict):
        ins = {key: make(key, t) for key, t in struct.items()}
        call = ins
    elif isinstance(struct, (list, tuple)):
        call = [make(input_name(t), t) for t in struct]
        ins = {input_name(t): c for t, c in zip(struct, call)}
    else:
        key = input_name(struct)
        if "float" in str(struct.dtype) and len(struct.shape) >= 4:
            key = "images"
        ins = make(key, struct)
        call = ins
    out = inner(call)
    if head is not None:
        out = head(out)
    if isinstance(out, dict) and isinstance(output, str):
        out = {key: L.Identity(name=key)(value) for key, value in out.items()}
    model = keras.Model(ins, out, name=name or f"{inner.name}_fixed")
    return Case(model, explained, {} if output is None else {"output": output})


def pooled(key: Optional[str] = None, how: str = "mean") -> Callable:
    """A head: the output (``key`` of a dict output), pooled (``mean`` over tokens or
    positions, the ``first`` or ``last`` token, or as is for a vector), then ``Dense(3)``."""
    def head(out):
        x = out[key] if key is not None else out
        if how == "first":
            x = x[:, 0, :]
        elif how == "last":
            x = x[:, -1, :]
        elif len(x.shape) == 3:
            x = L.GlobalAveragePooling1D(name="token_mean")(x)
        elif len(x.shape) == 4:
            x = L.GlobalAveragePooling2D(name="spatial_mean")(x)
        elif len(x.shape) == 5:
            x = L.Reshape((-1, x.shape[-1]))(x)
            x = L.GlobalAveragePooling1D(name="token_mean")(x)
        return L.Dense(CLASSES, name="head")(x)
    return head


def sub_model(backbone: keras.Model, input_keys, output_key: str) -> keras.Model:
    """The part of a dict-in, dict-out Functional ``backbone`` from ``input_keys`` to the
    output ``output_key`` (the encoder of an encoder-decoder), its own layers."""
    ins = {key: backbone._inputs_struct[key] for key in input_keys}
    return keras.Model(ins, backbone._outputs_struct[output_key],
                       name=f"{backbone.name}_{output_key}")


# ---------------------------------------------------------------- the models

TEXT = dict(vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=16,
            intermediate_dim=32)
CLS = f"logits ({CLASSES} classes)"
MEAN_HEAD = f"Dense({CLASSES}) on the token mean of {{}}"


def text_task(task_cls, backbone) -> Case:
    return wrap(task_cls(backbone, num_classes=CLASSES, preprocessor=None),
                f"{task_cls.__name__} {CLS}")


def image_task(task_cls, backbone, side: int = IMG, **kwargs) -> Case:
    kwargs.setdefault("preprocessor", None)
    return wrap(task_cls(backbone=backbone, num_classes=CLASSES, **kwargs),
                f"{task_cls.__name__} {CLS}", side=side)


def _bert():
    return text_task(M.BertTextClassifier, M.BertBackbone(**TEXT, max_sequence_length=SEQ))


def _distil_bert():
    return text_task(M.DistilBertTextClassifier,
                     M.DistilBertBackbone(**TEXT, max_sequence_length=SEQ))


def _roberta():
    return text_task(M.RobertaTextClassifier,
                     M.RobertaBackbone(**TEXT, max_sequence_length=SEQ))


def _albert():
    bb = M.AlbertBackbone(**TEXT, embedding_dim=8, max_sequence_length=SEQ)
    return text_task(M.AlbertTextClassifier, bb)


def _deberta_v3():
    bb = M.DebertaV3Backbone(**TEXT, max_sequence_length=SEQ, bucket_size=4)
    return text_task(M.DebertaV3TextClassifier, bb)


def _electra():
    cfg = dict(TEXT)
    cfg["vocab_size"] = cfg.pop("vocabulary_size")
    bb = M.ElectraBackbone(**cfg, embedding_dim=8, max_sequence_length=SEQ)
    return wrap(bb, f"Dense({CLASSES}) on pooled_output", head=pooled("pooled_output", "as-is"))


def _xlm_roberta():
    return text_task(M.XLMRobertaTextClassifier,
                     M.XLMRobertaBackbone(**TEXT, max_sequence_length=SEQ))


def _f_net():
    cfg = {k: v for k, v in TEXT.items() if k != "num_heads"}
    return text_task(M.FNetTextClassifier, M.FNetBackbone(**cfg, max_sequence_length=SEQ))


def _roformer_v2():
    return text_task(M.RoformerV2TextClassifier, M.RoformerV2Backbone(**TEXT, head_size=8))


def _esm():
    bb = M.ESMBackbone(**TEXT, max_sequence_length=2 * SEQ)
    return text_task(M.ESMProteinClassifier, bb)


def _xlnet():
    return wrap(M.XLNetBackbone(**TEXT), MEAN_HEAD.format("the sequence output"),
                head=pooled())


def _t5_encoder():
    bb = M.T5Backbone(**TEXT)
    enc = sub_model(bb, ["encoder_token_ids", "encoder_padding_mask"], "encoder_sequence_output")
    return wrap(enc, MEAN_HEAD.format("encoder_sequence_output (encoder only)"), head=pooled())


def _bart_encoder():
    bb = M.BartBackbone(**TEXT, max_sequence_length=SEQ)
    enc = sub_model(bb, ["encoder_token_ids", "encoder_padding_mask"], "encoder_sequence_output")
    return wrap(enc, MEAN_HEAD.format("encoder_sequence_output (encoder only)"), head=pooled())


def _clip_text():
    enc = M.CLIPTextEncoder(VOCAB, embedding_dim=16, hidden_dim=16, num_layers=2, num_heads=2,
                            intermediate_dim=32, max_sequence_length=SEQ)
    return wrap(enc, f"Dense({CLASSES}) on the last token (causal tower)", head=pooled(None,
                                                                                    "last"))


def _siglip_text():
    enc = M.SigLIPTextEncoder(VOCAB, embedding_dim=16, hidden_dim=16, num_layers=2, num_heads=2,
                              intermediate_dim=32, max_sequence_length=SEQ, projection_dim=16)
    return wrap(enc, f"Dense({CLASSES}) on the text embedding (last token, projected)",
                head=pooled(None, "as-is"))


def _whisper_encoder():
    bb = M.WhisperBackbone(**TEXT, num_mels=MELS, max_encoder_sequence_length=FRAMES,
                           max_decoder_sequence_length=SEQ)
    enc = sub_model(bb, ["encoder_features"], "encoder_sequence_output")
    return wrap(enc, MEAN_HEAD.format(f"encoder_sequence_output ({FRAMES}x{MELS} mel "
                                      "features, encoder only)"), head=pooled())


VIT = dict(num_layers=2, num_heads=2, hidden_dim=16)


def _vit():
    bb = M.ViTBackbone(image_shape=(IMG, IMG, 3), patch_size=8, mlp_dim=32, **VIT)
    return image_task(M.ViTImageClassifier, bb)


def _deit():
    bb = M.DeiTBackbone(image_shape=(IMG, IMG, 3), patch_size=8, intermediate_dim=32, **VIT)
    return image_task(M.DeiTImageClassifier, bb)


def _swin():
    bb = M.SwinTransformerBackbone(image_shape=(IMG, IMG, 3), embed_dim=16, depths=(2, 2),
                                   num_heads=(2, 2), window_size=4, patch_size=4,
                                   drop_path=0.0)
    return image_task(M.SwinTransformerImageClassifier, bb)


def _mit_backbone(dims=(8, 16)):
    return M.MiTBackbone(layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
                         layerwise_sr_ratios=[4, 2], max_drop_path_rate=0.0,
                         layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2],
                         image_shape=(IMG, IMG, 3), hidden_dims=list(dims))


def _mit():
    return image_task(M.MiTImageClassifier, _mit_backbone())


def _resnet_backbone(block_type="basic_block", pre=False, stages=3):
    """A small ResNet (keras-hub requires 64 filters in the first stage, and the basic block's
    identity shortcut as many in the stem)."""
    return M.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                            stackwise_num_filters=[64] + [32] * (stages - 1),
                            stackwise_num_blocks=[1] * stages,
                            stackwise_num_strides=[1] + [2] * (stages - 1),
                            block_type=block_type, use_pre_activation=pre)


def _resnet():
    return image_task(M.ResNetImageClassifier, _resnet_backbone())


def _resnet_v2():
    return image_task(M.ResNetImageClassifier, _resnet_backbone("bottleneck_block", pre=True))


def _efficientnet(block_types=("v1", "v1")):
    bb = M.EfficientNetBackbone(
        width_coefficient=1.0, depth_coefficient=1.0,
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 2],
        stackwise_input_filters=[8, 8], stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 2], stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
        stackwise_strides=[1, 2], stackwise_block_types=list(block_types),
        stackwise_force_input_filters=[0, 0], stackwise_nores_option=[False, False],
        num_features=32, dropout=0.0, input_shape=(IMG, IMG, 3))
    return image_task(M.EfficientNetImageClassifier, bb)


def _efficientnet_v2():
    return _efficientnet(("fused", "unfused"))


def _mobilenet():
    bb = M.MobileNetBackbone(
        stackwise_expansion=[[16, 24], [32, 48]], stackwise_num_blocks=[2, 2],
        stackwise_num_filters=[[8, 8], [16, 16]], stackwise_kernel_size=[[3, 3], [5, 5]],
        stackwise_num_strides=[[2, 1], [2, 1]], stackwise_se_ratio=[[None, None], [0.25, 0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1, 1], [2, 2]], output_num_filters=32, depthwise_filters=8,
        depthwise_stride=1, depthwise_residual=False, last_layer_filter=32,
        squeeze_and_excite=0.5, input_num_filters=8, image_shape=(IMG, IMG, 3))
    return image_task(M.MobileNetImageClassifier, bb, num_features=32)


def _densenet():
    bb = M.DenseNetBackbone(stackwise_num_repeats=[1, 2, 1], growth_rate=4,
                            image_shape=(IMG, IMG, 3))
    return image_task(M.DenseNetImageClassifier, bb)


def _cspnet():
    bb = M.CSPNetBackbone(stem_filters=8, stem_kernel_size=3, stem_strides=1,
                          stackwise_depth=[1, 1], stackwise_strides=2,
                          stackwise_num_filters=[8, 16], block_type="dark_block",
                          stage_type="csp", down_growth=True, bottle_ratio=(0.5, 1.0),
                          block_ratio=(1.0, 0.5), expand_ratio=(2.0, 1.0), stem_padding="same",
                          image_shape=(IMG, IMG, 3))
    return image_task(M.CSPNetImageClassifier, bb)


def _vgg():
    bb = M.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16],
                       image_shape=(IMG, IMG, 3))
    return image_task(M.VGGImageClassifier, bb, pooling_hidden_dim=16)


def _xception():
    bb = M.XceptionBackbone(stackwise_conv_filters=[[8, 16], [16, 32], [32, 32]],
                            stackwise_pooling=[False, True, False], image_shape=(IMG, IMG, 3))
    return image_task(M.XceptionImageClassifier, bb)


def _hgnetv2():
    stages = [[16, 8, 32, 1, 1, 3], [32, 16, 64, 1, 1, 3]]
    bb = M.HGNetV2Backbone(depths=[1, 1], embedding_size=16, hidden_sizes=[32, 64],
                           stem_channels=[3, 8, 16], hidden_act="relu",
                           use_learnable_affine_block=False, stackwise_stage_filters=stages,
                           apply_downsample=[False, True],
                           use_lightweight_conv_block=[False, False], image_shape=(IMG, IMG, 3))
    return image_task(M.HGNetV2ImageClassifier, bb)


def _clip_vision():
    enc = M.CLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=2, num_heads=2,
                              intermediate_dim=32, image_shape=(IMG, IMG, 3))
    return wrap(enc, f"Dense({CLASSES}) on the class token", head=pooled(None, "first"))


def _metaclip2_vision():
    enc = M.MetaCLIP2VisionEncoder(patch_size=8, hidden_dim=16, num_layers=2, num_heads=2,
                                   intermediate_dim=32, image_shape=(IMG, IMG, 3))
    return wrap(enc, f"Dense({CLASSES}) on the class token", head=pooled(None, "first"))


def _siglip_vision():
    enc = M.SigLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=2, num_heads=2,
                                intermediate_dim=32, image_shape=(IMG, IMG, 3))
    return wrap(enc, f"Dense({CLASSES}) on the attention-pooled embedding",
                head=pooled(None, "as-is"))


def _dinov2():
    bb = M.DINOV2Backbone(patch_size=8, intermediate_dim=32, image_shape=(IMG, IMG, 3),
                          position_embedding_shape=(IMG, IMG, 3), **VIT)
    return wrap(bb, f"Dense({CLASSES}) on the class token", head=pooled(None, "first"))


def _dinov3():
    bb = M.DINOV3Backbone(patch_size=8, intermediate_dim=32, num_register_tokens=2,
                          image_shape=(IMG, IMG, 3), **VIT)
    return wrap(bb, f"Dense({CLASSES}) on the class token", head=pooled(None, "first"))


def _vit_det():
    bb = M.ViTDetBackbone(hidden_size=16, num_layers=2, intermediate_dim=32, num_heads=2,
                          global_attention_layer_indices=[1], image_shape=(IMG, IMG, 3),
                          patch_size=4, num_output_channels=8, window_size=4)
    return wrap(bb, f"Dense({CLASSES}) on the spatial mean of the feature map", head=pooled())


def _video_prism():
    bb = M.VideoPrismBackbone(num_frames=2, patch_size=8, hidden_dim=16, intermediate_dim=32,
                              num_heads=2, num_spatial_layers=1, num_temporal_layers=1,
                              num_auxiliary_layers=1, image_shape=(16, 16, 3))
    return wrap(bb, f"Dense({CLASSES}) on the vision embedding (2 frames of 16x16)",
                head=pooled())


def _segformer():
    bb = M.SegFormerBackbone(image_encoder=_mit_backbone(), projection_filters=16)
    case = image_task(M.SegFormerImageSegmenter, bb)
    return case._replace(explained=f"SegFormerImageSegmenter per-pixel logits ({CLASSES})")


def _deeplab_v3():
    side = 64
    bb = M.DeepLabV3Backbone(image_encoder=_resnet_backbone(), low_level_feature_key="P2",
                             spatial_pyramid_pooling_key="P4", upsampling_size=4,
                             dilation_rates=[2, 4], projection_filters=8,
                             image_shape=(side, side, 3))
    case = image_task(M.DeepLabV3ImageSegmenter, bb, side=side)
    return case._replace(explained=f"DeepLabV3ImageSegmenter per-pixel logits ({CLASSES}), "
                                   f"{side}x{side}")


def _basnet():
    side = 64
    bb = M.BASNetBackbone(image_encoder=_resnet_backbone(stages=4), num_classes=1,
                          image_shape=(side, side, 3))  # its stem feeds the 64-filter stage
    model = M.BASNetImageSegmenter(backbone=bb, preprocessor=None)
    return wrap(model, f"BASNetImageSegmenter refine_out (sigmoid mask), {side}x{side}",
                side=side)


def _retinanet():
    side = 64
    bb = M.RetinaNetBackbone(image_encoder=_resnet_backbone(), min_level=3, max_level=4,
                             use_p5=False, image_shape=(side, side, 3))
    model = M.RetinaNetObjectDetector(backbone=bb, num_classes=CLASSES, preprocessor=None,
                                      pre_logits_num_conv_layers=1)
    return wrap(model, f"RetinaNetObjectDetector output='cls_logits' (anchors x {CLASSES}), "
                       f"{side}x{side}", output="cls_logits", side=side)


def _depth_anything():
    side = 64  # 8x8 patches: the 0.5 reassemble factor leaves 4x4 for the fusion's 3x3 conv
    enc = M.DINOV2Backbone(patch_size=8, intermediate_dim=32, image_shape=(side, side, 3),
                           position_embedding_shape=(side, side, 3), apply_layernorm=True,
                           name="image_encoder", num_layers=4, num_heads=2, hidden_dim=16)
    bb = M.DepthAnythingBackbone(image_encoder=enc, reassemble_factors=[4, 2, 1, 0.5],
                                 neck_hidden_dims=[8, 8, 16, 16], fusion_hidden_dim=16,
                                 head_hidden_dim=8, head_in_index=-1,
                                 feature_keys=["stage1", "stage2", "stage3", "stage4"])
    model = M.DepthAnythingDepthEstimator(backbone=bb, depth_estimation_type="relative",
                                          preprocessor=None)
    return wrap(model, f"DepthAnythingDepthEstimator depths (relative, per pixel), {side}x{side}",
                side=side)


MODELS: Dict[str, Callable[[], Case]] = {
    # text: token ids (int32), padding mask, segment ids
    "bert": _bert,
    "distil_bert": _distil_bert,
    "roberta": _roberta,
    "albert": _albert,
    "deberta_v3": _deberta_v3,
    "electra": _electra,
    "xlm_roberta": _xlm_roberta,
    "f_net": _f_net,
    "roformer_v2": _roformer_v2,
    "esm": _esm,
    "xlnet": _xlnet,
    "t5_encoder": _t5_encoder,
    "bart_encoder": _bart_encoder,
    "clip_text": _clip_text,
    "siglip_text": _siglip_text,
    # audio
    "whisper_encoder": _whisper_encoder,
    # vision transformers
    "vit": _vit,
    "deit": _deit,
    "swin": _swin,
    "mit": _mit,
    "clip_vision": _clip_vision,
    "metaclip2_vision": _metaclip2_vision,
    "siglip_vision": _siglip_vision,
    "dinov2": _dinov2,
    "dinov3": _dinov3,
    "vit_det": _vit_det,
    "video_prism": _video_prism,
    # CNNs
    "resnet": _resnet,
    "resnet_v2": _resnet_v2,
    "efficientnet": _efficientnet,
    "efficientnet_v2": _efficientnet_v2,
    "mobilenet": _mobilenet,
    "densenet": _densenet,
    "cspnet": _cspnet,
    "vgg": _vgg,
    "xception": _xception,
    "hgnetv2": _hgnetv2,
    # dense prediction
    "segformer": _segformer,
    "deeplab_v3": _deeplab_v3,
    "basnet": _basnet,
    "retinanet": _retinanet,
    "depth_anything": _depth_anything,
}

NOT_BUILT = {  # families of keras-hub left out, and why
    "CLIP / SigLIP / MetaCLIP2 dual backbones": "their logits are image-by-text similarity "
    "matrices across the batch (no per-sample output); the towers are covered on their own",
    "SAM / SAM3": "promptable segmenters (points, boxes, masks, text prompts as inputs)",
    "D-FINE": "a DETR detector with denoising queries and a large HGNetV2 config",
    "PARSeq / BLIP-2 / PaliGemma / Gemma3n / Moonshine": "image or audio to text generation "
    "with a language-model decoder (the decoders are the causal-LM corpus)",
    "ConvNeXt / CSPDarkNet": "not in keras-hub " + keras_hub.__version__ + " (CSPNet covers "
    "CSPDarkNet)",
    "MobileNetV5 / VAE / RQ-VAE / Flux / SD3": "not classifiers, or configs too large to shrink",
}


# ---------------------------------------------------------------- running


class BuildTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    """Raise :class:`BuildTimeout` in the block after ``seconds`` (SIGALRM, main thread)."""
    def handler(signum, frame):
        raise BuildTimeout(f"did not build in {seconds} s")
    previous = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def has_int_input(model) -> bool:
    return any("int" in str(t.dtype) for t in model.inputs)


def make_inputs(model, rng):
    """A batch of :data:`BATCH`: token ids in [1, VOCAB), padding masks of ones, segment ids
    of zeros, float inputs standard normal; a dict keyed by input name, or the array for a
    model with one input."""
    x = {}
    for t in model.inputs:
        name = input_name(t)
        shape = (BATCH,) + tuple(t.shape[1:])
        if "int" in str(t.dtype):
            if "padding_mask" in name:
                x[name] = np.ones(shape, "int32")
            elif "segment_ids" in name:
                x[name] = np.zeros(shape, "int32")
            else:
                x[name] = rng.integers(1, VOCAB, shape).astype("int32")
        else:
            x[name] = rng.normal(size=shape).astype("float32")
    return x if len(x) > 1 else next(iter(x.values()))


def plain(error: BaseException) -> str:
    """The message of ``error`` without terminal colour codes (Keras bolds some)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(error))


def first_line(error: BaseException, chars: int = MESSAGE_CHARS) -> str:
    text = plain(error).strip()
    line = text.splitlines()[0] if text else ""
    return line[:chars]


def where(error: BaseException, always: bool = False) -> str:
    """The innermost keras-lrp frame: when the error was raised outside keras-lrp, or
    ``always``."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "keras_lrp" in Path(f.filename).parts]
    if not ours or (ours[-1] is frames[-1] and not always):
        return ""
    path = Path(ours[-1].filename)
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f" [from {rel}:{ours[-1].lineno} in {ours[-1].name}]"


def one_line(error: BaseException, analyzer: str = "", chars: int = DETAIL_CHARS,
             crash: bool = True) -> str:
    """The whole message on one line, with :func:`where` (always for a crash). So that equal
    messages of several analyzers and models group, the analyzer's name reads ``<analyzer>``
    and the numbers Keras appends to auto-named parts (``'pad_5'``) read ``_N``."""
    text = " ".join(plain(error).split())
    if analyzer:
        text = text.replace(f"'{analyzer}'", "'<analyzer>'")
    text = re.sub(r"'([A-Za-z][\w.]*?)_\d+'", r"'\1_N'", text)
    return f"{type(error).__name__}: {text[:chars]}{where(error, always=crash)}"


def raised_in_keras_lrp(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and "keras_lrp" in Path(frames[-1].filename).parts


def classify(error: BaseException, model: keras.Model) -> str:
    text = plain(error)
    names = [layer.name for layer in getattr(model, "_flatten_layers", lambda: [])()]
    mentions = ("keras-lrp" in text or "layer" in text.lower()
                or any(f"'{name}'" in text for name in names))
    if isinstance(error, (ValueError, TypeError)) and raised_in_keras_lrp(error) and mentions:
        return f"refused: {first_line(error)}"
    return f"crash: {type(error).__name__}: {first_line(error)}"


def explained_output(value, output):
    """The explained output of a model's result: ``output`` (a key or an index) of several."""
    if isinstance(value, dict):
        if output is None and len(value) == 1:
            return next(iter(value.values()))
        if isinstance(output, str):
            return value[output]
        value = keras.tree.flatten(value)
    if isinstance(value, (list, tuple)):
        if output is None and len(value) == 1:
            return value[0]
        return value[int(output)]
    return value


def to_numpy(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def input_arrays(x, tensors) -> list:
    """The batch as a list of arrays in the order of the symbolic ``tensors``."""
    if not isinstance(x, dict):
        return list(x) if isinstance(x, (list, tuple)) else [x]
    names = [input_name(t) for t in tensors]
    if set(names) != set(x):
        raise ValueError(f"input names {names} do not match the batch's keys {sorted(x)}")
    return [x[name] for name in names]


def check_result(relevance, x, analyzer) -> Optional[str]:
    expected = input_arrays(x, analyzer.inputs)
    got = relevance if isinstance(relevance, list) else [relevance]
    if len(got) != len(expected):
        return f"bad-result: {len(got)} arrays for {len(expected)} inputs"
    for r, a in zip(got, expected):
        r = np.asarray(r)
        if r.shape != a.shape:
            return f"bad-result: shape {r.shape} for input {a.shape}"
        if not np.isfinite(r).all():
            return "bad-result: non-finite relevances"
    return None


def snapshot(model) -> list:
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.variables]


def restore(model, saved: list) -> list:
    """Put the variables of ``model`` back to ``saved``; the paths of those that had changed
    (creating or running an analyzer must leave the user's model as it was)."""
    changed = []
    for v, value in zip(model.variables, saved):
        if not np.array_equal(np.asarray(keras.ops.convert_to_numpy(v.value)), value):
            changed.append(v.path)
            v.assign(value)
    return changed


def run_one(name: str, case: Case, x, y: np.ndarray):
    """``(cell, error or None, paths of the model's variables it changed)`` for one analyzer;
    the model's weights are restored after it (the cell notes it if they changed)."""
    saved = snapshot(case.model)
    cell, error = _run_one(name, case, x, y)
    changed = restore(case.model, saved)
    if changed:
        cell += f" +changed {len(changed)} model weights"
    return cell, error, changed


def _run_one(name: str, case: Case, x, y: np.ndarray):
    try:
        analyzer = keras_lrp.create_analyzer(name, case.model, **case.kwargs)
        relevance = analyzer.analyze(x)
        problem = check_result(relevance, x, analyzer)
        if problem:
            return problem, None
        forward = analyzer.forward_model
        arrays = input_arrays(x, forward.inputs)
        got = to_numpy(explained_output(
            forward(arrays[0] if len(arrays) == 1 else arrays, training=False), None))
        scale = float(np.max(np.abs(y))) or 1.0
        err = (float(np.max(np.abs(got.reshape(y.shape) - y))) / scale
               if got.size == y.size else float("inf"))
        if not err <= RTOL:
            return f"wrong-forward (rel err {err:.2g})", None
        return "ok", None
    except Exception as error:  # noqa: BLE001 - every failure is a table cell
        return classify(error, case.model), error


def probe_model(model_name: str):
    """``(explained, cells, {analyzer: (cell, detail)} of the failures, seconds)``."""
    start = time.time()
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    try:
        with time_limit(BUILD_LIMIT):
            case = MODELS[model_name]()
            x = make_inputs(case.model, np.random.default_rng(1))
            y = to_numpy(explained_output(case.model(x, training=False),
                                          case.kwargs.get("output")))
    except Exception as error:  # noqa: BLE001
        cell = f"not built: {type(error).__name__}: {first_line(error)}"
        return cell, {a: "not built" for a in ANALYZERS}, \
            {"build": (cell, one_line(error))}, time.time() - start
    built = time.time() - start
    cells, failures = {}, {}
    for name in ANALYZERS:
        if name in FLOAT_ONLY and has_int_input(case.model):
            cells[name] = "–"
            continue
        t0 = time.time()
        cells[name], error, changed = run_one(name, case, x, y)
        print(f"    {model_name} / {name}: {cells[name][:60]} ({time.time() - t0:.1f} s)",
              file=sys.stderr, flush=True)
        if cells[name] != "ok":
            detail = cells[name]
            if error is not None:
                detail = one_line(error, name, crash=not detail.startswith("refused"))
            if changed:
                detail += f" (and it changed the model's {', '.join(changed)})"
            failures[name] = (cells[name], detail)
    print(f"    {model_name}: built in {built:.1f} s", file=sys.stderr, flush=True)
    return case.explained, cells, failures, time.time() - start


def escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", choices=sorted(MODELS),
                        help="run only this model (repeatable)")
    args = parser.parse_args(argv)
    names = args.only or list(MODELS)
    started = time.time()
    rows = []
    for model_name in names:
        explained, cells, failures, seconds = probe_model(model_name)
        print(f"[{seconds:5.1f} s] {model_name}", file=sys.stderr, flush=True)
        rows.append((model_name, explained, cells, failures, seconds))

    print(f"keras-hub {keras_hub.__version__}, keras {keras.__version__}, backend "
          f"{keras.backend.backend()}; batch {BATCH}, {SEQ} tokens, vocabulary {VOCAB}")
    print()
    header = ["model", "what is explained"] + ANALYZERS + ["s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model_name, explained, cells, _, seconds in rows:
        print("| " + " | ".join(escape(c) for c in [model_name, explained]
                                 + [cells[a] for a in ANALYZERS] + [f"{seconds:.0f}"]) + " |")
    run = [c for _, _, cells, _, _ in rows for c in cells.values()
           if c not in ("–", "not built")]
    ok = sum(c == "ok" for c in run)
    print()
    unbuilt = [r[0] for r in rows if "not built" in r[2].values()]
    print(f"{ok} of {len(run)} analyses explain the model ({len(rows) - len(unbuilt)} models "
          f"built, {time.time() - started:.0f} s)"
          + (f"; not built: {', '.join(unbuilt)}" if unbuilt else ""))
    grouped: Dict[str, list] = {}  # the same message for several analyses: one line
    for model_name, _, _, failures, _ in rows:
        for name, (cell, detail) in failures.items():
            kind = cell.split(":")[0].split(" (")[0]
            grouped.setdefault(detail if detail.startswith(kind) else f"{kind}: {detail}",
                               []).append(f"{model_name}/{name}")
    if grouped:
        print()
        print("Distinct failures (the whole message, one line each, then the analyses):")
        print()
        for detail, where_ in grouped.items():
            print(f"* {escape(detail)} — {', '.join(where_)}")
    if not args.only:
        print()
        print("Not built here:")
        print()
        for family, why in NOT_BUILT.items():
            print(f"* {family}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
