"""The one place that knows Keras' layer families, and the only module that touches ``keras.src``.

Every other module asks this one: "is this a kernel layer?", "does this layer keep the sign of
its input?", "is this activation element-wise?". When Keras moves a class, only this file
changes.
"""

from __future__ import annotations

import contextlib

import keras

L = keras.layers
_CONVOLUTIONAL = keras.src.layers.convolutional
_NP = keras.src.ops.numpy
_NN = keras.src.ops.nn
_MATH = keras.src.ops.math

# ------------------------------------------------------------------------------- kernel layers
#: Dense layers (matrix or einsum products with a kernel).
DENSE = (L.Dense, L.EinsumDense)
#: Convolutions of every rank: plain, depthwise and transposed.
CONV_BASE = _CONVOLUTIONAL.base_conv.BaseConv
DEPTHWISE = _CONVOLUTIONAL.base_depthwise_conv.BaseDepthwiseConv
TRANSPOSE = _CONVOLUTIONAL.base_conv_transpose.BaseConvTranspose
SEPARABLE = _CONVOLUTIONAL.base_separable_conv.BaseSeparableConv
CONV = (CONV_BASE, DEPTHWISE, TRANSPOSE)
#: Layers a BatchNormalization right after them can be folded into.
BATCHNORM_FOLDABLE = (L.Dense, CONV_BASE, DEPTHWISE, TRANSPOSE)
#: Kernel layers whose fused activation is split off into its own layer. Recurrent and attention
#: layers also have an ``activation``, but it acts inside the cell: it is never split off.
ACTIVATION_SPLITTABLE = DENSE + CONV + (SEPARABLE,)

# ------------------------------------------------------------------ layers that keep their insides
#: Recurrent layers: their ``activation`` is the cell's, not a fused output activation.
RECURRENT = (L.RNN, L.LSTM, L.GRU, L.SimpleRNN, L.Bidirectional, L.ConvLSTM1D, L.ConvLSTM2D,
             L.ConvLSTM3D)
#: Recurrent layers explained by keras-lrp (their cells are checked: LSTM, GRU, SimpleRNN).
RNN = (L.RNN,)
BIDIRECTIONAL = (L.Bidirectional,)
TIME_DISTRIBUTED = (L.TimeDistributed,)
EMBEDDING = (L.Embedding,)
#: Comparisons and boolean reductions: the masks Keras records in a functional graph (an
#: Embedding's ``mask_zero``, a Masking layer), which carry no relevance.
MASK_OPS = tuple(getattr(_NP, n) for n in (
    "NotEqual", "Equal", "Any", "All", "Greater", "GreaterEqual", "Less", "LessEqual",
    "LogicalAnd", "LogicalOr", "LogicalNot") if hasattr(_NP, n))
#: Attention layers (expanded into parts by the ExpandAttention canonizer, never split).
ATTENTION = (L.MultiHeadAttention, L.Attention, L.AdditiveAttention)
#: Keras' grouped-query attention: traced into its projections, repeats and products.
GROUP_QUERY_ATTENTION = (L.GroupQueryAttention,)

# ------------------------------------------------------------------------------ structural layers
#: Layers that only move, copy or select values (routing relevance with them).
ROUTE = (L.InputLayer, L.Flatten, L.Reshape, L.Permute, L.Concatenate, L.RepeatVector,
         L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D,
         L.Cropping3D, L.UpSampling1D, L.UpSampling3D)
MAX_POOLING = (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.GlobalMaxPooling1D,
               L.GlobalMaxPooling2D, L.GlobalMaxPooling3D)
AVERAGE_POOLING = (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
                   L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D)
#: Merges that sum their inputs with fixed coefficients.
LINEAR_MERGE = (L.Add, L.Subtract, L.Average)
#: Layers that act element-wise (or not at all) at inference.
ELEMENTWISE = (L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
               L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
               L.Identity, L.ReLU, L.LeakyReLU, L.ELU, L.PReLU, L.Masking)
#: Element-wise affine preprocessing (an offset can make values negative).
PREPROCESSING = (L.Rescaling, L.Normalization)
#: Augmentation layers: the identity at inference (RandomCrop, which crops and resizes there,
#: is in RESAMPLING).
RANDOM_AUGMENTATION = tuple(getattr(L, n) for n in dir(L)
                            if n.startswith("Random") and n != "RandomCrop")
#: Fixed linear resampling at inference: interpolation (Resizing, RandomCrop), patches.
RESAMPLING = (L.Resizing, L.RandomCrop, keras.src.ops.image.ExtractPatches)
#: Crops: routing.
CROPPING = (L.CenterCrop,)
#: Products of two tensors that are bilinear in them (matmul, dot).
OP_BILINEAR = (_NP.Matmul, _NP.Dot, _NP.Tensordot, L.Dot)
#: Raw ops linear in their tensor argument when the other is a weight (a traced layer's own
#: kernel: :mod:`keras_lrp.canonizers.kernels`), and the op adding a bias after one.
OP_KERNEL = (_NP.Matmul, _NP.Dot, _NP.Tensordot, _NN.Conv, _NN.DepthwiseConv, _NN.ConvTranspose)
OP_BIAS = (_NP.Add,)
#: Where Keras' own layers and its preprocessing layers live.
KERAS_LAYERS_MODULE = "keras.src.layers"
KERAS_PREPROCESSING_MODULE = "keras.src.layers.preprocessing"


def is_preprocessing_layer(layer) -> bool:
    """One of Keras' preprocessing layers (their state is not all in weights)."""
    return type(layer).__module__.startswith(KERAS_PREPROCESSING_MODULE)


def keras_layer_base(layer):
    """The nearest of Keras' own layer classes ``layer``'s class derives from (``Layer`` for a
    plain custom layer), or ``None``."""
    return next((c for c in type(layer).__mro__[1:]
                 if c.__module__.startswith(KERAS_LAYERS_MODULE)), None)


def is_keras_module(module: str) -> bool:
    """A module of Keras itself."""
    return module.startswith(("keras.src.", "keras.")) or module == "keras"
NORMALIZATION = (L.LayerNormalization,) + tuple(
    c for c in (getattr(L, "RMSNormalization", None),) if c)
BATCHNORM = (L.BatchNormalization,)
UPSAMPLING_2D = (L.UpSampling2D,)
ACTIVATION = (L.Activation,)
SOFTMAX = (L.Softmax,)
MULTIPLY = (L.Multiply, _NP.Multiply)

#: keras.applications' own layers: ConvNeXt's per-channel LayerScale (x·γ) and StochasticDepth
#: (identity at inference), InceptionResNetV2's CustomScaleLayer (x₀ + s·x₁).
APP_ELEMENTWISE: tuple = ()
APP_LINEAR_MERGE: tuple = ()
try:  # pragma: no branch - present in every Keras 3 release so far
    from keras.src.applications import convnext as _convnext
    from keras.src.applications import inception_resnet_v2 as _irv2
    APP_ELEMENTWISE = tuple(c for c in (getattr(_convnext, "LayerScale", None),
                                        getattr(_convnext, "StochasticDepth", None)) if c)
    APP_LINEAR_MERGE = tuple(c for c in (getattr(_irv2, "CustomScaleLayer", None),) if c)
except ImportError:  # pragma: no cover
    pass

# --------------------------------------------------------------------- raw keras.ops operations
#: Element-wise activations called as raw keras.ops in functional code.
OP_ACTIVATIONS = (_NN.Relu, _NN.Relu6, _NN.Sigmoid, _NN.HardSigmoid, _NN.Softplus, _NN.Softsign,
                  _NN.Silu, _NN.HardSilu, _NN.LogSigmoid, _NN.LeakyRelu, _NN.Elu, _NN.Selu,
                  _NN.Gelu, _NN.Celu, _NP.Tanh, keras.src.activations.activations.ReLU)
#: Raw element-wise linear maps without bias (−x, as in RoPE's rotate-half): relevance passes
#: unchanged.
OP_ELEMENTWISE_LINEAR = (_NP.Negative,)
#: Raw ops whose output is ≥ 0.
OP_NONNEGATIVE = (_NN.Relu, _NN.Relu6, _NN.Sigmoid, _NN.HardSigmoid, _NN.Softplus)
#: Raw ops bounded like a gate (sigmoid-like, or relu6 as in hard-sigmoid = relu6(x + 3)/6).
OP_GATES = (_NN.Sigmoid, _NN.HardSigmoid, _NN.Relu6)
#: Raw element-wise arithmetic: with one tensor and a constant, an element-wise affine map.
OP_ARITHMETIC = (_NP.Add, _NP.Subtract, _NP.Multiply, _NP.Divide, _NP.TrueDivide)
#: Raw ops that select, move or copy values (``x[..., 0]``, reshapes, the mask arithmetic of
#: keras-hub's blocks): relevance is routed back.
OP_SELECT = tuple(getattr(_NP, n) for n in (
    "GetItem", "ExpandDims", "Squeeze", "Reshape", "Transpose", "BroadcastTo", "Tile", "Repeat",
    "Concatenate", "Stack", "Where", "TakeAlongAxis", "Take", "Moveaxis", "Swapaxes", "Pad",
    "Roll")
    if hasattr(_NP, n)) + (keras.src.ops.core.Slice,)
#: Raw element-wise minimum and maximum.
OP_MINMAX = (_NP.Minimum, _NP.Maximum)
#: Raw ops whose output depends only on their input's shape (``zeros_like``, ``ones_like``): they
#: carry no relevance (positions computed from an input's shape end there, like a bias).
OP_SHAPE_ONLY = tuple(getattr(_NP, n) for n in ("ZerosLike", "OnesLike", "FullLike")
                      if hasattr(_NP, n))
#: Raw element-wise casts.
OP_CAST = (keras.src.ops.core.Cast,)
#: Raw sums of two tensors.
OP_SUMS = (_NP.Add, _NP.Subtract)
#: The raw ops of an RMS norm's statistic 1/√(mean(x²) + ε) (:mod:`keras_lrp.core.patterns`).
OP_RSQRT = (_MATH.Rsqrt,)
OP_SQRT = (_NP.Sqrt,)
OP_RECIPROCAL = (_NP.Reciprocal,)
OP_SQUARE = (_NP.Square,)
OP_POWER = (_NP.Power,)
OP_MEAN = (_NP.Mean,)
#: A raw reshape.
OP_RESHAPE = (_NP.Reshape,)
#: A raw einsum (of two signals: a bilinear product; of a signal and a weight: a linear map).
OP_EINSUM = (_NP.Einsum,)
#: Raw sums and means over axes: linear, without bias.
OP_REDUCTIONS = (_NP.Sum, _NP.Mean)
#: A raw split into several outputs.
OP_SPLIT = (_NP.Split,)
#: Raw Fourier transforms of (real, imaginary) parts (F-Net's token mixing).
OP_FFT = tuple(getattr(_MATH, n) for n in ("FFT", "FFT2") if hasattr(_MATH, n))
#: A raw unstack along an axis (ViTDet's queries, keys and values).
OP_UNSTACK = (keras.src.ops.core.Unstack,)
#: A raw slice (``ops.slice``) and a raw broadcast (``ops.broadcast_to``), whose sizes a traced
#: call may read off the batch (:mod:`keras_lrp.canonizers.batch_sizes`).
OP_SLICE = (keras.src.ops.core.Slice,)
OP_BROADCAST = (_NP.BroadcastTo,)
#: A raw softmax.
OP_SOFTMAX = (_NN.Softmax,)
#: ``ops.dot_product_attention`` (keras-hub's attention on JAX and PyTorch).
OP_DOT_PRODUCT_ATTENTION = (_NN.DotProductAttention,)
#: Raw ops seen through when looking for a gate.
RESHAPE_LIKE = (L.Reshape, L.Rescaling)

# ----------------------------------------------------------------------------------- activations
#: Element-wise activations, by name: relevance passes through them unchanged.
ELEMENTWISE_ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid",
    "hard_sigmoid", "softplus", "softsign", "silu", "swish", "hard_silu", "hard_swish", "mish",
    "exponential", "celu", "glu", "log_sigmoid", "sparse_plus", "squareplus", "tanh_shrink",
    "hard_tanh", "soft_shrink", "hard_shrink", "threshold", "gelu_approximate",
})
#: Activations whose output is never negative (rules may then skip x⁻ terms).
#: Element-wise activations with f(0) = 0 (relevance passes unchanged, zeros stay zeros).
ZERO_AT_ZERO = frozenset({"linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "tanh",
                          "silu", "swish", "hard_silu", "hard_swish", "mish", "softsign", "celu",
                          "hard_tanh"})
NONNEGATIVE_ACTIVATIONS = frozenset({"relu", "relu6", "sigmoid", "hard_sigmoid", "softplus",
                                     "exponential"})
#: Activations that make a tensor a gate in [0, 1].
GATE_ACTIVATIONS = frozenset({"sigmoid", "hard_sigmoid", "relu6"})

#: Layers through which iNNvestigate's Deep Taylor passes the gradient of relevance.
DEEP_TAYLOR_GRADIENT = (MAX_POOLING + AVERAGE_POOLING + (
    L.Add, L.UpSampling1D, L.UpSampling2D, L.UpSampling3D, L.Dropout, L.SpatialDropout1D,
    L.SpatialDropout2D, L.SpatialDropout3D, L.InputLayer, L.Cropping1D, L.Cropping2D,
    L.Cropping3D, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Concatenate, L.Flatten,
    L.Masking, L.Permute, L.RepeatVector, L.Reshape))

#: Layers that leave values unchanged apart from their arrangement (seen through when looking
#: for the layers fed directly by a model input).
RESHAPING = (L.InputLayer, L.Flatten, L.Reshape, L.Permute, L.Dropout)

#: Layers whose output is ≥ 0 wherever all their inputs are (they copy, select, add or average
#: values). Rescaling and Normalization are absent: an offset can make values negative.
SIGN_PRESERVING = (L.InputLayer, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D,
                   L.SpatialDropout3D, L.GaussianDropout, L.AlphaDropout, L.Identity,
                   L.ActivityRegularization, L.Flatten, L.Reshape, L.Permute, L.RepeatVector,
                   L.Concatenate, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
                   L.Cropping1D, L.Cropping2D, L.Cropping3D, L.UpSampling1D, L.UpSampling2D,
                   L.UpSampling3D, L.Add, L.Average) + MAX_POOLING + AVERAGE_POOLING


def activation_name(fn) -> str:
    """The name of an activation function (``"relu"``, ``"softmax"``, …)."""
    return getattr(fn, "__name__", type(fn).__name__)


def layer_activation(layer) -> str:
    """The name of a layer's activation, or ``""`` if it has none."""
    act = getattr(layer, "activation", None)
    return activation_name(act) if act is not None else ""


#: Element-wise functions found by :func:`is_elementwise_function` (by id: lambdas included).
_ELEMENTWISE_FOUND: dict = {}


def is_elementwise_function(fn) -> bool:
    """Whether activation ``fn`` is element-wise: a named one
    (:data:`ELEMENTWISE_ACTIVATIONS`), or a function of yours or keras-hub's (CLIP's
    ``quick_gelu(x) = x·σ(1.702x)``) that acts as one scalar function on every entry, tested on
    a probe: f keeps the shape and commutes with flattening, with permuting the entries and with
    taking each entry alone. Softmax-like functions (which mix entries) fail the test."""
    name = activation_name(fn)
    if name in ELEMENTWISE_ACTIVATIONS:
        return True
    if name in ("softmax", "log_softmax") or not callable(fn):
        return False
    if id(fn) not in _ELEMENTWISE_FOUND:
        _ELEMENTWISE_FOUND[id(fn)] = (fn, _acts_elementwise(fn))
    return _ELEMENTWISE_FOUND[id(fn)][1]


def _acts_elementwise(fn) -> bool:
    import warnings

    import numpy as np

    x = np.random.default_rng(0).normal(scale=2.0, size=(3, 4, 5)).astype("float32")
    flat = x.reshape(-1)
    perm = np.random.default_rng(1).permutation(flat.size)

    def run(v):
        return np.asarray(keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(v))))

    try:
        with warnings.catch_warnings():  # a softmax over a probe axis of size 1 warns
            warnings.simplefilter("ignore")
            y = run(x)
            if y.shape != x.shape or not np.all(np.isfinite(y)):
                return False
            y = y.reshape(-1)
            pairs = ((run(flat), y), (run(flat[perm]), y[perm]), (run(flat[:, None]), y))
    except Exception:  # noqa: BLE001 - a function that cannot run on a probe is not known
        return False
    return all(np.allclose(a.reshape(-1), b, rtol=1e-5, atol=1e-6) for a, b in pairs)


@contextlib.contextmanager
def none_free_nodes():
    """Within (a block's trace): a layer called on symbolic tensors may return ``None`` among
    its outputs (DeiT's encoder block returns ``(y, None)``, T5's attention ``(x, bias, None)``
    without a cache): Keras records only its tensors as the node's outputs, instead of refusing
    it; and ``keras.ops.ndim`` of a symbolic tensor is its static rank."""
    import keras.src.layers.layer as layer_module

    base = layer_module.Node

    class NoneFreeNode(base):
        def __init__(self, operation, call_args=None, call_kwargs=None, outputs=None):
            if outputs is not None:
                flat = keras.tree.flatten(outputs)
                if any(v is None for v in flat):
                    outputs = [v for v in flat if v is not None]
            super().__init__(operation, call_args, call_kwargs, outputs)

    ndim = keras.ops.ndim
    layer_module.Node = NoneFreeNode
    # a KerasTensor's rank is static: RoFormer's rotary layer tests ``ops.ndim(x) or …``
    keras.ops.ndim = lambda x: len(x.shape) if isinstance(x, keras.KerasTensor) else ndim(x)
    try:
        yield
    finally:
        layer_module.Node = base
        keras.ops.ndim = ndim


def spec_from_call(layer):
    """``layer``'s output spec computed by running its ``call`` on placeholders, as Keras does
    for a layer without its own ``compute_output_shape`` (ESM's rotary embedding inherits one
    that returns one shape for its two outputs)."""
    return keras.src.ops.operation.Operation.compute_output_spec.__get__(layer)


def is_softmax(layer) -> bool:
    """A ``Softmax`` layer or ``Activation("softmax")``."""
    return isinstance(layer, SOFTMAX) or (isinstance(layer, ACTIVATION)
                                          and layer_activation(layer) == "softmax")


def is_layer(op) -> bool:
    """A Keras layer (not a raw ``keras.ops`` operation)."""
    return isinstance(op, L.Layer)


def is_model(op) -> bool:
    return isinstance(op, keras.Model)


def is_nonnegative_producer(layer, inputs_nonnegative: bool) -> bool:
    """Whether ``layer``'s output is provably ≥ 0, given whether all of its inputs are."""
    if isinstance(layer, ACTIVATION):
        return layer_activation(layer) in NONNEGATIVE_ACTIVATIONS
    if isinstance(layer, L.ReLU):
        return float(layer.negative_slope) == 0.0
    if isinstance(layer, OP_NONNEGATIVE):
        return True
    return inputs_nonnegative and isinstance(layer, SIGN_PRESERVING)


def is_gate_producer(layer) -> bool:
    """A layer whose output is bounded like a gate: sigmoid-like, or a capped ReLU."""
    if layer_activation(layer) in GATE_ACTIVATIONS or isinstance(layer, OP_GATES):
        return True
    return isinstance(layer, L.ReLU) and layer.max_value is not None


def is_plain_relu(layer) -> bool:
    """max(x, 0) in any form: a ReLU layer without leak, cap or threshold, Activation("relu"), or
    a raw ``keras.ops.relu`` call (the ReLUs whose backward pass deconvnet and guided backprop
    replace)."""
    if isinstance(layer, L.ReLU):
        return (float(layer.negative_slope) == 0 and layer.max_value is None
                and float(layer.threshold) == 0)
    return (isinstance(layer, ACTIVATION) and layer_activation(layer) == "relu") or \
        isinstance(layer, _NN.Relu)
