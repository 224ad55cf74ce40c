"""The tiny transformer of the LXT reference numbers (tests/data/lxt/), framework-free: its
sizes, its weights keyed by Keras weight path, and its inputs. ``tools/make_lxt_reference.py``
rebuilds it in PyTorch from these arrays; ``tests/test_anchor_lxt.py`` builds it in Keras.

Token embedding → 2 × [x = LN(x + MHA(x, x)); x = LN(x + Dense(GELU(Dense(x))))] → mean over
tokens → Dense (logits). Post-LN blocks, Keras' defaults (LayerNormalization ε = 1e-3, exact GELU).
"""

import numpy as np

VOCAB, T, D, HEADS, KEY_DIM, FF, CLASSES, BLOCKS = 12, 6, 8, 2, 4, 16, 3, 2
LN_EPSILON = 1e-3


def weight_shapes():
    shapes = {"embed/embeddings": (VOCAB, D)}
    for b in range(1, BLOCKS + 1):
        for part in ("query", "key", "value"):
            shapes[f"mha{b}/{part}/kernel"] = (D, HEADS, KEY_DIM)
            shapes[f"mha{b}/{part}/bias"] = (HEADS, KEY_DIM)
        shapes[f"mha{b}/attention_output/kernel"] = (HEADS, KEY_DIM, D)
        shapes[f"mha{b}/attention_output/bias"] = (D,)
        for ln in ("a", "b"):
            shapes[f"ln{b}{ln}/gamma"] = (D,)
            shapes[f"ln{b}{ln}/beta"] = (D,)
        shapes[f"ff{b}a/kernel"], shapes[f"ff{b}a/bias"] = (D, FF), (FF,)
        shapes[f"ff{b}b/kernel"], shapes[f"ff{b}b/bias"] = (FF, D), (D,)
    shapes["cls/kernel"], shapes["cls/bias"] = (D, CLASSES), (CLASSES,)
    return shapes


def weights(seed=0, bias=True):
    """Kernels N(0, 0.5²) (embeddings N(0, 1)), LayerNorm γ U(0.5, 1.5); biases and β
    U(−0.3, 0.3), or 0 with ``bias=False``."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in weight_shapes().items():
        if name.endswith("gamma"):
            out[name] = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("bias", "beta")):
            out[name] = rng.uniform(-0.3, 0.3, shape) if bias else np.zeros(shape)
        elif name.endswith("embeddings"):
            out[name] = rng.normal(0, 1.0, shape)
        else:
            out[name] = rng.normal(0, 0.5, shape)
    return out


def tokens(seed=0, n=6):
    return np.random.default_rng(100 + seed).integers(0, VOCAB, size=(n, T)).astype("int32")
