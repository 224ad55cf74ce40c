"""The gradient family as attributors: Gradient (and input × gradient), and the wrappers
SmoothGrad and IntegratedGradients, which run over *any* attributor, LRP included.

The wrappers build one graph: the inputs are repeated along the batch axis (with noise, or along
the path), the wrapped attributor's relevance model runs on all of them at once, and the result
is reduced. No Python loop over samples or steps.
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_lrp.attribution import Attributor, OutputRelevance, one_or_list

POSTPROCESS = (None, "abs", "square")


class InputGradient(keras.layers.Layer):
    """Gradient of the selected output w.r.t. the input (times the input if asked).

    Formula:
        R_i = Σ_k m_k ∂y_k/∂x_i   (or x_i times it), m the selection mask.
    """

    def __init__(self, forward, start, times_input=False, **kwargs):
        super().__init__(**kwargs)
        self.forward, self.start, self.times_input = forward, start, times_input

    def call(self, inputs):
        n = len(self.forward.inputs)
        xs, extra = [tf.convert_to_tensor(x) for x in inputs[:n]], list(inputs[n:])
        with tf.GradientTape() as tape:
            for x in xs:
                tape.watch(x)
            logits = self.forward(xs[0] if n == 1 else xs)
            target = tf.reduce_sum(tf.stop_gradient(self.start([logits] + extra)) * logits)
        grads = tape.gradient(target, xs, unconnected_gradients="zero")
        out = [g * x for g, x in zip(grads, xs)] if self.times_input else grads
        return out[0] if n == 1 else out

    def compute_output_spec(self, inputs):
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                 for x in inputs[:len(self.forward.inputs)]]
        return specs[0] if len(specs) == 1 else specs


class Gradient(Attributor):
    """The gradient of the explained output, on the same cleaned (softmax-free) model.

    Formula:
        R_i = ∂y/∂x_i  (``times_input``: x_i ∂y/∂x_i, Shrikumar et al. 2016), then |R| or R²
        with ``postprocess="abs"``/``"square"`` (Simonyan et al. 2014).

    Args:
        model: the Keras model.
        times_input: multiply by the input (``input_t_gradient``).
        postprocess: ``None``, ``"abs"`` or ``"square"``.
        **kwargs: see :class:`~keras_lrp.attribution.Attributor`; ``output_relevance``
            defaults to ``"one"`` (the plain gradient).
    """

    def __init__(self, model, times_input: bool = False, postprocess: Optional[str] = None,
                 output_relevance: str = "one", **kwargs):
        if postprocess not in POSTPROCESS:
            raise ValueError(f"postprocess must be one of {POSTPROCESS}, got {postprocess!r}.")
        self.times_input, self.postprocess = times_input, postprocess
        super().__init__(model, output_relevance=output_relevance, **kwargs)
        self._options.update(times_input=times_input, postprocess=postprocess)

    def build(self):
        refuse_integer_inputs(self, "gradient")
        start = OutputRelevance(self.neuron_selection_mode, self.output_relevance,
                                name="gradient_selection", dtype=self.logits.dtype)
        out = InputGradient(self.forward_model, start, self.times_input, name=self._prefix,
                            dtype=self.inputs[0].dtype)(self.model_inputs())
        grads = list(out) if isinstance(out, (list, tuple)) else [out]
        if self.postprocess == "abs":
            grads = [ops.abs(g) for g in grads]
        elif self.postprocess == "square":
            grads = [ops.square(g) for g in grads]
        return grads, {}


def refuse_integer_inputs(attributor, what: str) -> None:
    """Raise ValueError for models fed integer ids (tokens): they have no gradient and no
    meaningful noise or path, so a gradient of them would be silently zero."""
    for x in attributor.inputs:
        if "int" in str(x.dtype) or "bool" in str(x.dtype):
            raise ValueError(
                f"Analyzer {attributor.name!r} differentiates with respect to the model's inputs "
                f"(or moves along them), but input '{x.name}' holds {x.dtype} values (token "
                f"ids), which have no {what}. Use an LRP analyzer (a token's relevance is the "
                "sum over its embedding vector), or explain a model that takes the embedding "
                "vectors as its input.")


class InputAttributor(Attributor):
    """iNNvestigate's ``input``: the input itself, as a baseline heatmap.

    Formula:
        R_i = x_i
    """

    def build(self):
        return [ops.convert_to_tensor(x) * 1 for x in self.inputs], {}


class RandomAttributor(Attributor):
    """iNNvestigate's ``random``: the input plus Gaussian noise, a baseline no explanation
    should lose to.

    Formula:
        R_i = x_i + ε_i,   ε_i ~ N(0, stddev²)

    Args:
        model: the Keras model.
        stddev: the noise's standard deviation (default 1, as iNNvestigate).
        seed: makes the noise reproducible (two analyzers with one seed draw the same noise).
        **kwargs: see :class:`~keras_lrp.attribution.Attributor`.
    """

    def __init__(self, model, stddev: float = 1.0, seed: Optional[int] = None, **kwargs):
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.number)) or \
                stddev < 0:
            raise ValueError(f"random needs stddev >= 0, got stddev={stddev!r}.")
        self.stddev, self.seed = float(stddev), keras.random.SeedGenerator(seed)
        super().__init__(model, **kwargs)
        self._options.update(stddev=stddev, seed=seed)

    def build(self):
        return [_Noise(self.stddev, self.seed, dtype=x.dtype)(x) for x in self.inputs], {}


class _Noise(keras.layers.Layer):
    def __init__(self, stddev, seed, **kwargs):
        super().__init__(**kwargs)
        self.stddev, self.seed = stddev, seed

    def call(self, x):
        return x + keras.random.normal(ops.shape(x), stddev=self.stddev, dtype=x.dtype,
                                       seed=self.seed)


class AugmentReduce(keras.layers.Layer):
    """Runs ``inner`` on every input repeated ``n`` times along the batch axis (sample-major),
    augmented by ``augment``, and reduces each sample's ``n`` results with ``reduce``."""

    def __init__(self, inner, n: int, augment, reduce, n_inputs: int, **kwargs):
        super().__init__(**kwargs)
        self.inner, self.n, self.augment, self.reduce = inner, n, augment, reduce
        self.n_inputs = n_inputs

    def call(self, inputs):
        xs, extra = list(inputs[:self.n_inputs]), list(inputs[self.n_inputs:])
        repeated = [ops.reshape(ops.repeat(ops.expand_dims(x, 1), self.n, axis=1),
                                (-1,) + tuple(x.shape[1:])) for x in xs]
        augmented = [self.augment(x, r) for x, r in zip(xs, repeated)]
        extra = [ops.repeat(e, self.n, axis=0) for e in extra]
        out = self.inner(one_or_list(augmented + extra))
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        results = [self.reduce(x, ops.reshape(r, (-1, self.n) + tuple(x.shape[1:])))
                   for x, r in zip(xs, out)]
        return one_or_list(results)

    def compute_output_spec(self, inputs):
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                 for x in inputs[:self.n_inputs]]
        return one_or_list(specs)


class Wrapper(Attributor):
    """An attributor over another one (iNNvestigate's AugmentReduceBase, Zennit's SmoothGrad).

    The explained neuron is chosen on the *clean* input (``max_activation``: its argmax) and held
    for every augmented copy, as iNNvestigate does; ``"all"`` passes through.

    Args:
        analyzer: the attributor to wrap (any: LRP, Gradient, …).
        n: the number of augmented copies of each sample.
    """

    def __init__(self, analyzer: Attributor, n: int, name: str):
        if not isinstance(analyzer, Attributor):
            raise TypeError(f"{type(self).__name__} wraps a keras_lrp analyzer, got "
                            f"{analyzer!r}.")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{type(self).__name__} needs a positive number of samples or "
                             f"steps, got {n!r}.")
        self.analyzer, self.n = analyzer, int(n)
        mode = analyzer.neuron_selection_mode
        self.inner = analyzer if mode == "all" else analyzer.clone(
            neuron_selection_mode="index")
        super().__init__(analyzer.model, neuron_selection_mode=mode,
                         output_relevance=analyzer.output_relevance,
                         output=self.inner.output_index, jit_compile=analyzer.jit_compile,
                         name=name)

    def prepare_graph(self):
        return self.inner.graph

    def trace_forward(self, inputs):
        return self.inner.forward_model(one_or_list(inputs))

    def clone(self, **overrides):
        return type(self)(self.analyzer.clone(**overrides), **self.params())

    def params(self) -> dict:  # pragma: no cover - abstract
        """The wrapper's own parameters (for cloning and saving)."""
        raise NotImplementedError

    def get_config(self):
        return {"wrapper": type(self).__name__, "name": self.name, "params": self.params(),
                "analyzer": self.analyzer.get_config()}

    def augment(self, x, repeated):  # pragma: no cover - abstract
        raise NotImplementedError

    def reduce(self, x, results):
        """Each sample's mean over its ``n`` results (shape (batch, n, …))."""
        return ops.mean(results, axis=1)

    def build(self):
        refuse_integer_inputs(self, "noise or path")
        extra = []
        if self.neuron_selection_mode == "max_activation":
            flat = ops.reshape(self.logits, (-1, int(np.prod(self.logits.shape[1:]))))
            extra = [ops.cast(ops.argmax(flat, axis=-1), "int32")]
        elif self.neuron_selection_mode == "index":
            extra = [self._selection_input]
        out = AugmentReduce(self.inner.relevance_model, self.n, self.augment, self.reduce,
                            len(self.inputs), name=self._prefix, dtype=self.inputs[0].dtype)(
            self.inputs + extra)
        return (list(out) if isinstance(out, (list, tuple)) else [out]), None


class SmoothGrad(Wrapper):
    """The mean attribution over noisy copies of the input (Smilkov et al. 2017).

    Formula:
        R(x) = 1/n Σ_k A(x + ε_k),   ε_k ~ N(0, σ²), n = ``augment_by_n``, σ = ``noise_scale``

    Args:
        analyzer: the attributor A (a gradient for SmoothGrad proper; any works).
        augment_by_n: n (default 64, as iNNvestigate).
        noise_scale: σ, the standard deviation of the noise, in input units (default 1).
        seed: makes the noise reproducible: two analyzers with the same seed draw the same
            noise on the same sequence of calls.
    """

    def __init__(self, analyzer: Attributor, augment_by_n: int = 64, noise_scale: float = 1.0,
                 seed: Optional[int] = None, name: Optional[str] = None):
        if not (isinstance(noise_scale, (int, float, np.number)) and noise_scale >= 0):
            raise ValueError(f"SmoothGrad needs noise_scale >= 0, got {noise_scale!r}.")
        self.noise_scale, self._seed = float(noise_scale), seed
        self.seed = keras.random.SeedGenerator(seed)
        super().__init__(analyzer, augment_by_n, name or f"smoothgrad({analyzer.name})")

    def params(self):
        return {"augment_by_n": self.n, "noise_scale": self.noise_scale, "seed": self._seed}

    def augment(self, x, repeated):
        noise = keras.random.normal(ops.shape(repeated), stddev=self.noise_scale,
                                    dtype=repeated.dtype, seed=self.seed)
        return repeated + noise


class IntegratedGradients(Wrapper):
    """The attribution integrated along the straight path from a reference to the input
    (Sundararajan et al. 2017; iNNvestigate's PathIntegrator).

    Formula:
        R(x) = (x − x̄) ⊙ 1/s Σ_{k=0}^{s−1} A(x̄ + k/s · (x − x̄)),   s = ``steps``

    With A the gradient this is integrated gradients as a left Riemann sum (α = 0, 1/s, …,
    (s−1)/s: the reference is a point of the path, the input is not), as iNNvestigate computes
    it. Over another attributor (LRP, …) the same sum integrates that attribution instead.

    Args:
        analyzer: the attributor A.
        steps: s ≥ 1 (default 64, as iNNvestigate).
        reference_inputs: x̄, a scalar or an array broadcastable to one sample (default 0).
    """

    def __init__(self, analyzer: Attributor, steps: int = 64, reference_inputs=0.0,
                 name: Optional[str] = None):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"IntegratedGradients needs steps >= 1, got {steps!r}.")
        self.reference = np.asarray(reference_inputs)
        for spec in analyzer.inputs:
            try:
                fits = np.broadcast_shapes(self.reference.shape, tuple(spec.shape[1:])) == tuple(
                    spec.shape[1:])
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"reference_inputs of shape {self.reference.shape} do not "
                                 f"broadcast to one sample of input '{spec.name}' "
                                 f"{tuple(spec.shape[1:])}; pass a scalar or that shape.")
        super().__init__(analyzer, steps, name or f"integrated_gradients({analyzer.name})")

    def params(self):
        return {"steps": self.n, "reference_inputs": self.reference}

    def _alphas(self, dtype):
        return ops.convert_to_tensor(np.arange(self.n) / self.n, dtype=dtype)

    def augment(self, x, repeated):
        ref = ops.convert_to_tensor(self.reference, dtype=x.dtype)
        alphas = ops.tile(self._alphas(x.dtype), [ops.shape(x)[0]])
        alphas = ops.reshape(alphas, (-1,) + (1,) * (len(x.shape) - 1))
        return ref + alphas * (repeated - ref)

    def reduce(self, x, results):
        ref = ops.convert_to_tensor(self.reference, dtype=x.dtype)
        return (x - ref) * ops.mean(results, axis=1)
