"""Conditional relevance (Concept Relevance Propagation; Achtibat et al., "From attribution maps
to human-understandable explanations through Concept Relevance Propagation", Nature Machine
Intelligence 5, 2023).

A condition θ names an output c and channels θ_l at layers l; the conditional heatmap
R(x | θ) is LRP's input relevance when the relevance reaching each conditioned layer is kept
only at the named channels (Achtibat et al. 2023):

    R^L(x | θ) = y_c e_c  (the explained logit, as zennit-crp starts),
    R^{l-1}_i(x | θ) = Σ_j q^l_{i←j} · m^l_j R^l_j(x | θ),   m^l_j = δ(j ∈ θ_l) (1 where θ
    names no channel of layer l),   R(x | θ) = R^0(x | θ),

with q^l_{i←j} the share the composite's rule at layer l gives input i of output j (z_ij / z_j
for the Z rule). Masks along a channel axis hold for every position of the channel.

:class:`Conditional` builds, once per set of conditioned layers, one Keras *relevance program*
over the analyzer's canonized graph: the forward pass runs once per sample, its values are
gathered once per condition row (:class:`~keras_lrp.concepts.layers.Rows`), and the reverse
graph (:func:`~keras_lrp.analyzers.reverse.reverse`) runs on all rows at once with the channel
masks as *inputs* (:class:`~keras_lrp.concepts.layers.ChannelMask`): new conditions reuse the
compiled program. The relevance may also start at a hidden layer with a given relevance
(zennit-crp's ``start_layer`` and ``init_rel``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence

import keras
import numpy as np

from keras_lrp import backend
from keras_lrp.analyzers.inputs import as_arrays
from keras_lrp.concepts import conditions as cond_mod
from keras_lrp.concepts.program import relevance_program


@dataclasses.dataclass
class ConditionalResult:
    """What :meth:`Conditional.attribute` returns (NumPy, samples × conditions first)."""

    #: The relevance at each model input, ``(N, C, *input shape)``; a list for several inputs.
    heatmap: Any
    #: Recorded layer name → the relevance at its output, ``(N, C, *output shape)``, after masking.
    relevances: Dict[str, np.ndarray]


class Conditional:
    """Conditional heatmaps and layer relevances of an LRP analyzer (see the module docstring).

    Args:
        analyzer: an LRP analyzer (any composite), e.g. ``create_analyzer("lrp.epsilon_plus_flat",
            model)``; its ``output_relevance`` decides the start (``"logit"``: y_c at output c).
        axis: the channel axis of every conditioned layer's output (channels last by default).
        exclude_parallel: at a conditioned layer, drop the relevance pending on parallel paths
            (a residual block's skip), so that all the relevance reaching the input has passed
            the condition, and record none at layers parallel to it (zennit-crp's default);
            ``False`` only masks. Per condition: rows whose condition does not name the layer
            keep their parallel relevance.
        batch_size: the most condition rows (samples × conditions) one call runs.
    """

    def __init__(self, analyzer, axis: int = -1, exclude_parallel: bool = True,
                 batch_size: Optional[int] = None):
        if not hasattr(analyzer, "composite"):
            raise TypeError(f"Conditional needs an LRP analyzer (one with a composite), got "
                            f"{type(analyzer).__name__}.")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}.")
        self.analyzer = analyzer.build()
        self.axis = axis
        self.exclude_parallel = exclude_parallel
        self.batch_size = batch_size
        #: Layer name → output tensor id, in forward order (the names conditions may use).
        self.tensors = cond_mod.layer_tensors(analyzer.graph)
        #: Program key → (compiled function, Keras model); one per set of layers.
        self.programs: Dict[Any, Any] = {}
        #: How many relevance programs were built (new conditions on the same layers: none).
        self.builds = 0
        #: How many times a program's Python body ran (TensorFlow and JAX: once per trace).
        self.traces = 0
        self._activations: Dict[str, Any] = {}

    # -- layers ----------------------------------------------------------------------------------
    def shape(self, layer: str):
        """The output shape of ``layer`` (batch first) in the analysis."""
        tid = cond_mod.check_layer(layer, self.tensors, self.analyzer.model_name)
        return tuple(self.analyzer._values[tid].shape)

    def channels(self, layer: str) -> int:
        """How many channels ``layer``'s output has along :attr:`axis`."""
        shape = self.shape(layer)
        return int(shape[cond_mod.channel_axis(layer, shape, self.axis)])

    # -- the relevance program -------------------------------------------------------------------
    def program(self, layers: Sequence[str], record: Sequence[str] = (),
                start_layer: Optional[str] = None):
        """The compiled relevance program for masks at ``layers``, recording the relevance at
        ``record`` (built on first use, then reused for every condition on these layers; its
        inputs and outputs: :mod:`keras_lrp.concepts.program`)."""
        key = (tuple(layers), tuple(record), start_layer)
        if key not in self.programs:
            self.programs[key] = self._build(*key)
        return self.programs[key][0]

    def _build(self, layers, record, start_layer):
        a = self.analyzer
        for name in list(layers) + list(record):
            self.shape(name)
        model = relevance_program(a, self.tensors, layers, record, start_layer, self.axis,
                                  self.exclude_parallel)
        self.builds += 1

        def run(*args):
            self.traces += 1
            return model(list(args), training=False)

        function = backend.compile_model(run, model, jit_compile=a.jit_compile)
        return function, model

    # -- running ---------------------------------------------------------------------------------
    def attribute(self, x, conditions: Sequence[Mapping[str, Any]], record: Sequence[str] = (),
                  start_layer: Optional[str] = None, init_rel=None) -> ConditionalResult:
        """The conditional heatmap of every sample of ``x`` under every condition.

        Args:
            x: an array (batch first) or a list of arrays (several inputs).
            conditions: dicts from layer name to channel indices, and ``"y"`` to the explained
                output, an int or one per sample (see :mod:`keras_lrp.concepts.conditions`).
            record: layers whose (masked) relevance is returned too.
            start_layer: start at this layer's output instead of the model output.
            init_rel: the relevance at ``start_layer``: ``None`` (its activation, as
                zennit-crp), a callable of the activations ``(N, *shape)``, or an array shaped
                ``(*shape)``, ``(N, *shape)`` or ``(N, C, *shape)``.

        Returns:
            :class:`ConditionalResult`, with the heatmap ``(N, C, *input shape)``.
        """
        a = self.analyzer
        arrays = as_arrays(x, a.inputs, a.model_name, False)
        n, layers = arrays[0].shape[0], cond_mod.condition_layers(conditions)
        for name in layers:
            cond_mod.check_layer(name, self.tensors, a.model_name)
        if start_layer is not None:
            cond_mod.check_layer(start_layer, self.tensors, a.model_name)
        record = list(record)
        channels = {name: self.channels(name) for name in layers}
        outputs = int(np.prod(a.logits.shape[1:]))
        targets, masks = cond_mod.parse(conditions, layers, channels, outputs, start_layer, n)
        c = targets.shape[1]
        named = {k: np.array([k in cond for cond in conditions], "float32") for k in layers}
        fn = self.program(layers, record, start_layer)
        head = targets if start_layer is None else self._init(arrays, start_layer, init_rel, c)
        per_call = self.batch_size or n * c
        step = max(1, per_call // c)
        samples: List[List[np.ndarray]] = []
        for s0 in range(0, n, step):
            s1 = min(n, s0 + step)
            parts = []
            for c0 in range(0, c, per_call):
                c1 = min(c, c0 + per_call)
                rows = np.repeat(np.arange(s1 - s0, dtype="int32"), c1 - c0)
                h = head[s0:s1, c0:c1].reshape((-1,) + head.shape[2:])
                args = [rows, h] + [np.tile(masks[k][c0:c1], (s1 - s0, 1)) for k in layers] \
                    + [np.tile(named[k][c0:c1], s1 - s0) for k in layers]
                out = fn(*(args + [arr[s0:s1] for arr in arrays]))
                out = out if isinstance(out, (list, tuple)) else [out]
                parts.append([backend.to_numpy(o).reshape((s1 - s0, c1 - c0) + tuple(o.shape[1:]))
                              for o in out])
            samples.append([np.concatenate(k, axis=1) for k in zip(*parts)])
        out = [np.concatenate(k, axis=0) for k in zip(*samples)]
        k = len(a.inputs)
        return ConditionalResult(out[0] if k == 1 else out[:k], dict(zip(record, out[k:])))

    def _init(self, arrays, layer, init_rel, c):
        """The start relevance at ``layer`` as ``(N, C, *shape)``, in the layer's dtype."""
        if init_rel is None or callable(init_rel):
            act = self.activation(arrays, layer)
            init_rel = act if init_rel is None else init_rel(act)
        dtype = keras.backend.standardize_dtype(self.analyzer._values[self.tensors[layer]].dtype)
        return start_relevance(init_rel, layer, self.shape(layer)[1:], arrays[0].shape[0], c,
                               dtype)

    def activation(self, x, layer: str) -> np.ndarray:
        """The output of ``layer`` in the analysis (the canonized model) on ``x``."""
        a = self.analyzer
        if layer not in self._activations:
            tid = cond_mod.check_layer(layer, self.tensors, a.model_name)
            inputs = list(a.inputs)
            self._activations[layer] = keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                                                   a._values[tid])
        arrays = as_arrays(x, a.inputs, a.model_name, False)
        return backend.to_numpy(self._activations[layer](
            arrays[0] if len(arrays) == 1 else arrays, training=False))


def start_relevance(init_rel, layer: str, shape, n: int, c: int, dtype) -> np.ndarray:
    """``init_rel`` shaped ``(*shape)``, ``(N, *shape)`` or ``(N, C, *shape)``, as
    ``(N, C, *shape)``."""
    init = np.asarray(init_rel)
    if init.ndim == len(shape) + 1:
        init = init[:, None]
    elif init.ndim == len(shape):
        init = init[None, None]
    try:
        return np.ascontiguousarray(np.broadcast_to(init, (n, c) + tuple(shape)), dtype)
    except ValueError:
        raise ValueError(f"init_rel of shape {np.shape(init_rel)} does not fit layer "
                         f"{layer!r}: give (*{shape}), (N, *{shape}) or (N, C, *{shape}) "
                         f"with N={n} samples and C={c} conditions.") from None


def conditional(analyzer, x, conditions: Sequence[Mapping[str, Any]], axis: int = -1,
                **kwargs) -> ConditionalResult:
    """Conditional heatmaps R(x | θ) of ``analyzer`` for every sample and condition, in one
    batched pass (see :class:`Conditional`; ``kwargs`` go to :meth:`Conditional.attribute`).
    Reuse a :class:`Conditional` to reuse its compiled programs."""
    return Conditional(analyzer, axis=axis).attribute(x, conditions, **kwargs)


__all__ = ["Conditional", "ConditionalResult", "conditional"]
