"""keras-hub's vision towers whose embeddings read the batch size (a class token tiled to the
batch) or whose MLP uses CLIP's ``quick_gelu``: DeiT (its encoder blocks return
``(y, None)``), Swin and ViTDet (window attention: reshapes to ``batch × windows``, a shifted
window's ``ops.roll``, ViTDet's ``ops.unstack``), DINOv2, DINOv3 (rotary tables computed from
the image's shape), CLIP's, MetaCLIP 2's and SigLIP's vision encoders (SigLIP pools with a
learned probe repeated to the batch as the attention's query, and its embedding reports one
token more than it makes), and Depth Anything (its head resizes with the backend's own
align-corners interpolation, :mod:`keras_lrp.canonizers.foreign_calls`). Before, every LRP
analysis of them was refused. Built from tiny configs with random weights; keras-hub is a test
extra.

Checked: the analysis' forward pass is the model's function (float64, 1e-9), and CP-LRP
conserves the explained logit to 1e-8 with every bias, LayerNorm β, position embedding, class
and register token zeroed (all act as biases) and ε = 1e-30; with them left in, relevance
leaks into them (the conservation gap is not zero)."""

import keras
import numpy as np
import pytest
from helpers import assert_close

import keras_lrp

keras_hub = pytest.importorskip("keras_hub")
M = keras_hub.models if keras_hub is not None else None
L = keras.layers
IMG = 16
TOWER = dict(num_layers=1, num_heads=2, hidden_dim=8)
#: Weights that act as biases (zeroed for the conservation check).
BIAS_LIKE = ("bias", "beta", "position", "token", "class_embedding")


def _dinov2():
    return M.DINOV2Backbone(patch_size=8, intermediate_dim=16, image_shape=(IMG, IMG, 3),
                            position_embedding_shape=(IMG, IMG, 3), **TOWER)


def _dinov3():
    return M.DINOV3Backbone(patch_size=8, intermediate_dim=16, num_register_tokens=2,
                            image_shape=(IMG, IMG, 3), **TOWER)


def _deit():
    return M.DeiTBackbone(image_shape=(IMG, IMG, 3), patch_size=8, intermediate_dim=16, **TOWER)


def _clip():
    return M.CLIPVisionEncoder(patch_size=8, intermediate_dim=16, image_shape=(IMG, IMG, 3),
                               **TOWER)


def _siglip():
    return M.SigLIPVisionEncoder(patch_size=8, intermediate_dim=16, image_shape=(IMG, IMG, 3),
                                 **TOWER)


def _metaclip2():
    return M.MetaCLIP2VisionEncoder(patch_size=8, intermediate_dim=16,
                                    image_shape=(IMG, IMG, 3), **TOWER)


def _swin():
    return M.SwinTransformerBackbone(image_shape=(IMG, IMG, 3), embed_dim=8, depths=(2, 2),
                                     num_heads=(2, 2), window_size=2, patch_size=2,
                                     drop_path=0.0)


def _vit_det():
    return M.ViTDetBackbone(hidden_size=8, num_layers=2, intermediate_dim=16, num_heads=2,
                            global_attention_layer_indices=[1], image_shape=(IMG, IMG, 3),
                            patch_size=4, window_size=2, num_output_channels=8)


TOWERS = {"deit": _deit, "swin": _swin, "vit_det": _vit_det, "dinov2": _dinov2,
          "dinov3": _dinov3, "clip": _clip, "metaclip2": _metaclip2, "siglip": _siglip}


def _model(name, zero_biases):
    tower = TOWERS[name]()
    image = keras.Input((IMG, IMG, 3), name="images")
    out = tower(image)
    if isinstance(out, dict):
        out = out["sequence_output"]
    pooled = L.GlobalAveragePooling2D()(out) if len(out.shape) == 4 else \
        out[:, 0, :] if len(out.shape) == 3 else out
    model = keras.Model(image, L.Dense(3, name="head")(pooled))
    rng = np.random.default_rng(1)
    weights = []
    for w in model.weights:
        value = rng.normal(0, 0.4, w.shape)
        if "gamma" in w.path or "lambda" in w.path:
            value = 1 + 0.2 * value
        if zero_biases and any(k in w.path for k in BIAS_LIKE):
            value = np.zeros(w.shape)
        if "int" in str(w.dtype):
            value = np.asarray(w)
        weights.append(value)
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("name", sorted(TOWERS))
def test_cp_lrp_of_a_vision_tower_conserves_with_biases_zeroed(float64, name):
    x = np.random.default_rng(0).normal(size=(3, IMG, IMG, 3))
    for zero in (True, False):
        model = _model(name, zero_biases=zero)
        a = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30, attention="cp")
        logits = model.predict(x, verbose=0)
        assert_close(np.asarray(a.forward_model(x)), logits, rtol=1e-9, atol=1e-12)
        total = a.analyze(x).reshape(3, -1).sum(axis=1)
        gap = np.abs(total - logits.max(axis=1)).max()
        if zero:
            assert_close(total, logits.max(axis=1), rtol=1e-8)
        else:
            assert gap > 1e-6  # biases, tokens and positions absorb a share


def _depth_anything(side=32):
    """Depth Anything (a DINOv2 encoder, DPT's reassemble and fusion convolutions, a head that
    resizes with the backend's own align-corners interpolation) on side × side images: 8 × 8
    patches of 4, so that the 0.5 reassemble factor leaves 4 × 4 for the fusion's 3 × 3 conv."""
    enc = M.DINOV2Backbone(patch_size=4, intermediate_dim=16, image_shape=(side, side, 3),
                           position_embedding_shape=(side, side, 3), apply_layernorm=True,
                           num_layers=4, num_heads=2, hidden_dim=8, name="image_encoder")
    bb = M.DepthAnythingBackbone(image_encoder=enc, reassemble_factors=[4, 2, 1, 0.5],
                                 neck_hidden_dims=[4, 4, 8, 8], fusion_hidden_dim=8,
                                 head_hidden_dim=4, head_in_index=-1,
                                 feature_keys=["stage1", "stage2", "stage3", "stage4"])
    return M.DepthAnythingDepthEstimator(backbone=bb, depth_estimation_type="relative",
                                         preprocessor=None)


def test_cp_lrp_of_depth_anything_conserves_with_biases_zeroed():
    """Float32 (the head's resize computes in float32): the forward pass is the model's to
    1e-5, and the depth of the most relevant pixel is conserved to 1e-4 (sums of a few
    thousand float32 terms)."""
    model = _depth_anything()
    rng = np.random.default_rng(1)
    model.set_weights([np.zeros(w.shape) if any(k in w.path for k in BIAS_LIKE)
                       else (1 + 0.2 * rng.normal(size=w.shape)) if "gamma" in w.path or
                       "lambda" in w.path else np.asarray(w) if "int" in str(w.dtype)
                       else rng.normal(0, 0.4, w.shape) for w in model.weights])
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    depth = np.asarray(model.predict(x, verbose=0)["depths"]).reshape(2, -1)
    a = keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-30, attention="cp")
    np.testing.assert_allclose(np.asarray(a.forward_model(x)).reshape(2, -1), depth,
                               rtol=1e-5, atol=1e-5 * np.abs(depth).max())
    total = a.analyze(x).reshape(2, -1).sum(axis=1)
    np.testing.assert_allclose(total, depth.max(axis=1), rtol=1e-4)
