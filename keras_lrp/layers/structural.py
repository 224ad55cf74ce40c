"""Relevance layers for layers without an LRP rule of their own (no kernel)."""

from __future__ import annotations

import warnings

import keras
from keras import ops

from keras_lrp import backend
from keras_lrp.core import types
from keras_lrp.core.patterns import held_factor
from keras_lrp.core.stabilize import stabilize
from keras_lrp.layers.base import RelevanceLayer, batched


def _is_float(x) -> bool:
    return "float" in str(x.dtype)


def _vjp(owner: RelevanceLayer, xs, cotangent):
    """Vector-Jacobian product of ``owner.forward_fn`` (taking the list ``xs``) at ``xs`` with
    ``cotangent``.

    An integer or boolean input (ids, a mask) has no derivative and gets zero relevance. A
    floating-point input the output does not depend on is an error naming the layer, never a
    silent zero: relevance would vanish there without anyone being told.
    """
    _, pullback = backend.vjp(lambda *ys: owner.forward_fn(list(ys)), *xs)  # a twice-read x: two
    grads = pullback(cotangent)
    for i, (x, g) in enumerate(zip(xs, grads)):
        if g is None and _is_float(x):
            raise ValueError(
                f"Layer '{getattr(owner.layer, 'name', owner.layer)}' ({type(owner).__name__}): "
                f"its output does not depend on its input {i} (shape {batched(x.shape)}), so "
                "relevance has no path back to it. Register a relevance layer that says what "
                "that input receives (keras_lrp.register_layer), or remove the unused input.")
    return [ops.zeros(ops.shape(x), owner.compute_dtype) if g is None else g
            for x, g in zip(xs, grads)]


class IdentityRelevance(RelevanceLayer):
    """Element-wise layers (activations, dropout, noise): relevance passes unchanged. An input
    that the op broadcasts (a mask of shape (B, 1, 1, T) plus a bias of (B, H, T, T), as T5's
    attention adds them) gets the sum of its copies' relevance.

    Formula:
        R_i = R_i,   broadcast: R_i = Σ_{j a copy of i} R_j
    """

    @classmethod
    def check_node(cls, node, graph):
        if len(node.inputs) != 1:
            return (f"has {len(node.inputs)} inputs, but {cls.__name__} passes relevance through "
                    "single-input layers; register it with RouteRelevance or "
                    "ProportionalRelevance instead")
        return None

    def propagate(self, xs, z, relevance):
        return [_unbroadcast(relevance, tuple(xs[0].shape))]

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """Relevance passes unchanged: 0 where x is 0 when the layer maps 0 to 0 and the
        relevance at its output is 0 where the output is."""
        return outputs_keep and zero_at_zero(node.layer)


def zero_at_zero(layer) -> bool:
    """Whether an element-wise layer maps 0 to 0 (ReLU-like activations, dropout, noise)."""
    if isinstance(layer, types.ACTIVATION):
        return types.layer_activation(layer) in types.ZERO_AT_ZERO
    if isinstance(layer, keras.layers.ReLU):
        return float(layer.threshold) == 0.0
    return isinstance(layer, types.ELEMENTWISE)


def _unbroadcast(r, shape):
    """``r`` summed over the axes along which an input of ``shape`` was broadcast to it."""
    extra = len(r.shape) - len(shape)
    if extra > 0:
        r = ops.sum(r, axis=tuple(range(extra)))
    axes = tuple(k for k, (a, b) in enumerate(zip(shape, r.shape))
                 if a == 1 and b is not None and b > 1)
    return ops.sum(r, axis=axes, keepdims=True) if axes else r


class RouteRelevance(RelevanceLayer):
    """Layers that only move, copy or select values: relevance follows the values.

    Reshape, Flatten, Permute, padding, cropping, Concatenate, nearest-neighbour up-sampling and
    max pooling (winner-take-all) all route relevance by the transpose of their selection.

    Formula:
        R_i = Σ_j [output j is a copy of input i] · R_j     (the layer's vector-Jacobian product)
    """

    def propagate(self, xs, z, relevance):
        return _vjp(self, xs, relevance)

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """A moved or selected value keeps its relevance: 0 where x is 0 when the relevance at
        the output is 0 where the output is (for the layers that only move or select)."""
        return outputs_keep and isinstance(node.layer,
                                           types.ROUTE + types.MAX_POOLING + types.OP_SELECT)


class ProportionalRelevance(RelevanceLayer):
    """Bias-free linear layers (Add, Subtract, Average, average pooling): the Z rule.

    Formula:
        z_j = Σ_i c_ij x_i,    R_i = Σ_j c_ij x_i / z_j · R_j
        (z_j stabilised by the default ε·sign)
    """

    def propagate(self, xs, z, relevance):
        grads = _vjp(self, xs, relevance / stabilize(z))
        return [x * g for x, g in zip(xs, grads)]

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """R_i = x_i · (…): exactly 0 wherever x_i is 0."""
        return True


class GateRelevance(RelevanceLayer):
    """A gate: ``Multiply([signal, gate])`` gives all relevance to the signal, none to the gate.

    Squeeze-and-excitation blocks and hard-swish multiply a signal by a gate in [0, 1]; as for
    LSTM gates (Arras et al. 2017), the gate only scales the signal's message and receives no
    relevance. The same holds for any factor held constant (:func:`~keras_lrp.core.patterns.
    held_factor`): a tensor that depends on no input (RoPE's cos/sin tables), and the 1/rms of
    an RMS norm written in raw ops (AttnLRP's identity rule for norms, Achtibat et al. 2024).

    Formula:
        R_signal = R,   R_gate = 0

    Args:
        held: which input is held constant (the gate), as :func:`~keras_lrp.core.patterns.
            held_factor` says. ``gate_index`` is its 0.5 name (deprecated, one release).
    """

    def __init__(self, layer=None, held: int = 1, gate_index=None, **kwargs):
        super().__init__(layer=layer, **kwargs)
        if gate_index is not None:
            warnings.warn("GateRelevance(gate_index=…) is deprecated and will be removed in the "
                          "next release; pass held=….", DeprecationWarning, stacklevel=2)
            held = gate_index
        self.held = held

    @property
    def gate_index(self):
        """Deprecated: the 0.5 name of :attr:`held`."""
        warnings.warn("GateRelevance.gate_index is deprecated; use .held.", DeprecationWarning,
                      stacklevel=2)
        return self.held

    @classmethod
    def for_node(cls, node, graph, **kwargs):
        return cls(layer=node.layer, held=held_factor(node, graph), **kwargs)

    @classmethod
    def check_node(cls, node, graph):
        if len(node.inputs) != 2 or held_factor(node, graph) is None:
            return ("is a product of two signals, neither of which is a gate (a sigmoid-like or "
                    "broadcast factor): not linear, so no LRP rule applies")
        return None

    def propagate(self, xs, z, relevance):
        return [ops.zeros_like(x) if i == self.held else relevance
                for i, x in enumerate(xs)]

    def get_config(self):
        return {**super().get_config(), "held": self.held}


class LayerNormRelevance(RelevanceLayer):
    """LayerNormalization as the linear map it is for a fixed input (Ali et al. 2022).

    The standard deviation σ is held constant (detached), so the layer is the affine map
    y = (x − μ(x))/σ · γ + β, linear in x through the centring; the Z rule runs on it, with β as
    the bias (it absorbs its share; with β = 0 relevance is conserved). With ``rms_scaling``
    there is no centring: y = x/σ · γ; ``keras.layers.RMSNormalization`` is that map with its
    ``scale`` as γ and no β.

    Formula:
        c_ik = (δ_ik − 1/N) γ_i / σ,   R_k = Σ_i x_k c_ik / (Σ_k' x_k' c_ik' + β_i) · R_i
    """

    def propagate(self, xs, z, relevance):
        layer, x = self.layer, ops.convert_to_tensor(xs[0])
        axes = [a % len(x.shape) for a in (layer.axis if isinstance(layer.axis, (list, tuple))
                                          else [layer.axis])]
        shape = [x.shape[a] if a in axes else 1 for a in range(len(x.shape))]
        rms = getattr(layer, "rms_scaling", True)  # RMSNormalization has no such option
        gamma = getattr(layer, "gamma", getattr(layer, "scale", None))
        beta = getattr(layer, "beta", None)
        def affine(x):  # the layer with σ held constant, without β
            if rms:
                centred = x
                scale = ops.rsqrt(ops.mean(ops.square(x), axis=axes, keepdims=True)
                                  + layer.epsilon)
            else:
                centred = x - ops.mean(x, axis=axes, keepdims=True)
                scale = ops.rsqrt(ops.var(x, axis=axes, keepdims=True) + layer.epsilon)
            linear = centred * ops.stop_gradient(scale)
            if gamma is not None:
                linear = linear * ops.reshape(ops.cast(gamma, x.dtype), shape)
            return linear

        linear, pullback = backend.vjp(affine, x)
        full = linear if beta is None else linear + ops.reshape(ops.cast(beta, x.dtype), shape)
        grad = pullback(relevance / stabilize(full))[0]
        return [x * grad]


class RMSNormRelevance(IdentityRelevance):
    """An RMS norm held at its statistic: AttnLRP's identity rule (Achtibat et al., ICML 2024).

    With the rms held constant the layer is the diagonal map y_i = x_i · g_i / rms(x) (keras-hub's
    Llama, Mistral, Qwen, Phi-3, Mixtral and T5 norms; Gemma's with g = 1 + scale), so the Z rule
    on it passes every element's relevance through unchanged.

    Formula:
        y = x ⊙ g / √(mean(x²) + ε),   R_x = x ⊙ (g/rms) · R / y = R
    """

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """Not declared (the norm is no ReLU-like element-wise map)."""
        return False


class RotaryRelevance(ProportionalRelevance):
    """Rotary position embeddings (RoPE, Su et al. 2021): for fixed positions a rotation of each
    pair of features, linear in the input and without bias; the cos/sin tables are constants and
    carry no relevance. The Z rule on that linear map (what LXT's gradient × input gives).

    Formula:
        y = x ⊙ cos θ + rot(x) ⊙ sin θ,   R_x = x ⊙ Jᵀ (R / y),   J = ∂y/∂x
    """

    def keeps_zeros(self, node, outputs_keep: bool) -> bool:
        """Not declared (rot(x) mixes each feature with its pair)."""
        return False


class SplitRelevance(RelevanceLayer):
    """``ops.split`` (Gemma's rotary embedding splits the features in halves) and
    ``ops.unstack`` (ViTDet's queries, keys and values): each part's relevance goes back to the
    slice it was cut from.

    Formula:
        split:    x = [x_1 | … | x_k] along the axis,   R_x = [R_1 | … | R_k]
        unstack:  x = stack(x_1, …, x_k) along the axis,   R_x = stack(R_1, …, R_k)
    """

    multi_output = True

    def __init__(self, layer=None, n_outputs: int = 2, **kwargs):
        super().__init__(layer=layer, **kwargs)
        self.n_outputs = int(n_outputs)

    @classmethod
    def for_node(cls, node, graph, **kwargs):
        return cls(layer=node.layer, n_outputs=len(node.outputs), **kwargs)

    @classmethod
    def check_node(cls, node, graph):
        if len(node.inputs) != 1:
            return f"splits {len(node.inputs)} tensors; {cls.__name__} serves one"
        return None

    def call(self, inputs):
        x, rs = inputs[0], inputs[1 + self.n_outputs:]
        join = ops.stack if isinstance(self.layer, types.OP_UNSTACK) else ops.concatenate
        return self.checked([x], [join(list(rs), axis=self.layer.axis)])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "n_outputs": self.n_outputs}


class SoftCapRelevance(RelevanceLayer):
    """Logit soft-capping y = c · tanh(x / c) (:class:`.SoftCap`,
    Gemma's final logits) as LXT treats it: not patched, so gradient × input of the relevance
    ratio, which does not conserve (|y| < |x|·y'(0) away from 0).

    Formula:
        R_x = x · (1 − tanh²(x/c)) · R / y     (y stabilised by ε·sign)
    """

    def propagate(self, xs, z, relevance):
        x = xs[0]
        cap = ops.convert_to_tensor(self.layer.cap, dtype=x.dtype)
        t = ops.tanh(x / cap)
        return [x * (1.0 - t * t) * relevance / stabilize(z)]


class FourierRelevance(RelevanceLayer):
    """``ops.fft2`` / ``ops.fft`` on (real, imaginary) parts (F-Net's token mixing, which keeps
    the real part; Lee-Thorp et al. 2022): for fixed sizes a linear map without bias, so the Z
    rule, summed over the outputs (a discarded imaginary part carries no relevance).

    Formula:
        (z_re, z_im) = F(x_re, x_im),   R_u = u ⊙ Σ_o J_{o,u}ᵀ (R_o / z_o),   u ∈ {x_re, x_im}
        (z_o stabilised by the default ε·sign)
    """

    multi_output = True

    def call(self, inputs):
        xs, zs, rs = inputs[:2], inputs[2:4], inputs[4:6]
        _, pullback = backend.vjp(lambda re, im: tuple(self.forward_fn([re, im])), *xs)
        grads = pullback(tuple(r / stabilize(z) for r, z in zip(rs, zs)))
        return self.checked(xs, [ops.zeros_like(x) if g is None else x * g
                                 for x, g in zip(xs, grads)])

    def compute_output_spec(self, inputs):
        return [keras.KerasTensor(x.shape, dtype=self.compute_dtype) for x in inputs[:2]]
