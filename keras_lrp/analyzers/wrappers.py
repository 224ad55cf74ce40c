"""Wrappers over any analyzer, LRP included: SmoothGrad and IntegratedGradients.

A wrapper builds one graph: the inputs are repeated along the batch axis (with noise, or along
the path), the wrapped analyzer's relevance model runs on all of them at once, and the result
is reduced. No Python loop over samples or steps.
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
from keras import ops

from keras_lrp.analyzers.base import Analyzer
from keras_lrp.analyzers.gradient import refuse_integer_inputs
from keras_lrp.analyzers.lengths import PerLength
from keras_lrp.analyzers.symbolic import one_or_list


def _sample_shape(x) -> tuple:
    """One sample's shape: static sizes as ints, an open length (a sequence of any length) as
    the traced tensor's size."""
    static, dynamic = tuple(x.shape[1:]), ops.shape(x)[1:]
    return tuple(d if d is not None else t for d, t in zip(static, dynamic))


class AugmentReduce(keras.layers.Layer):
    """Runs ``inner`` on every input repeated ``n`` times along the batch axis (sample-major),
    augmented by ``augment``, and reduces each sample's ``n`` results with ``reduce``."""

    def __init__(self, inner, n: int, augment, reduce, n_inputs: int, seed_generator=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.inner, self.n, self.augment, self.reduce = inner, n, augment, reduce
        self.n_inputs = n_inputs
        #: The augmentation's seed, tracked by the layer so that its state is part of the model's
        #: variables: a compiled JAX run threads it through and draws new noise on every call.
        self.seed_generator = seed_generator

    def call(self, inputs):
        xs, extra = list(inputs[:self.n_inputs]), list(inputs[self.n_inputs:])
        repeated = [ops.reshape(ops.repeat(ops.expand_dims(x, 1), self.n, axis=1),
                                (-1,) + _sample_shape(x)) for x in xs]
        augmented = [self.augment(x, r) for x, r in zip(xs, repeated)]
        extra = [ops.repeat(e, self.n, axis=0) for e in extra]
        out = self.inner(one_or_list(augmented + extra))
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        results = [self.reduce(x, ops.reshape(r, (-1, self.n) + _sample_shape(x)))
                   for x, r in zip(xs, out)]
        return one_or_list(results)

    def compute_output_spec(self, inputs):
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                 for x in inputs[:self.n_inputs]]
        return one_or_list(specs)


class Wrapper(Analyzer):
    """An analyzer over another one (iNNvestigate's AugmentReduceBase, Zennit's SmoothGrad).

    The explained neuron is chosen on the *clean* input (``max_activation``: its argmax) and held
    for every augmented copy, as iNNvestigate does; ``"all"`` passes through.

    Over a :class:`~keras_lrp.analyzers.lengths.PerLength` (a model of open length) the wrapper
    is one per exact input length (:attr:`per_length`): the same wrapper over the analysis of
    the model at that length, built when the length is first met.

    Args:
        analyzer: the analyzer to wrap (any: LRP, Gradient, …).
        n: the number of augmented copies of each sample.
    """

    def __init__(self, analyzer: Analyzer, n: int, name: str):
        if not isinstance(analyzer, Analyzer):
            raise TypeError(f"{type(self).__name__} wraps a keras_lrp analyzer, got "
                            f"{analyzer!r}.")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{type(self).__name__} needs a positive number of samples or "
                             f"steps, got {n!r}.")
        self.analyzer, self.n = analyzer, int(n)
        mode = analyzer.neuron_selection_mode
        #: Over a PerLength: the wrappers of each exact length (else ``None``).
        self.per_length: Optional[PerLength] = None
        if isinstance(analyzer, PerLength):
            self.inner = analyzer
            self.per_length = analyzer.wrapped(
                lambda fixed: type(self)(fixed, **self.params(), name=self.name), name)
        else:
            self.inner = analyzer if mode == "all" else analyzer.clone(
                neuron_selection_mode="index")
        super().__init__(analyzer.model, neuron_selection_mode=mode,
                         output_relevance=analyzer.output_relevance,
                         output=analyzer.output, jit_compile=analyzer.jit_compile,
                         name=name)

    def _build(self) -> None:
        if self.per_length is None:  # else each length's wrapper builds itself
            super()._build()

    def iter_analyze(self, x, *args, **kwargs):
        """:meth:`~keras_lrp.analyzers.running.Runner.iter_analyze`; over a PerLength, the
        wrapper of each input's exact length runs it."""
        if self.per_length is not None:
            return self.per_length.iter_analyze(x, *args, **kwargs)
        return super().iter_analyze(x, *args, **kwargs)

    def prepare_graph(self):
        self._direct, self.reference_graph = False, self.inner.reference_graph
        return self.inner.graph

    def trace_forward(self, inputs):
        return self.inner.forward_model(one_or_list(inputs))

    def check_forward(self, xs=None) -> None:
        """The wrapped analyzer checked its forward pass when it was built."""
        self._forward_pending = False
        self.forward_checked = self.inner.forward_checked

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

    def build_relevances(self):
        refuse_integer_inputs(self, "noise or path")
        extra = []
        if self.neuron_selection_mode == "max_activation":
            flat = ops.reshape(self.logits, (-1, int(np.prod(self.logits.shape[1:]))))
            extra = [ops.cast(ops.argmax(flat, axis=-1), "int32")]
        elif self.neuron_selection_mode == "index":
            extra = [self._selection_input]
        out = AugmentReduce(self.inner.relevance_model, self.n, self.augment, self.reduce,
                            len(self.inputs), seed_generator=getattr(self, "seed", None),
                            name=self._prefix, dtype=self.inputs[0].dtype)(
            self.inputs + extra)
        return (list(out) if isinstance(out, (list, tuple)) else [out]), None


class SmoothGrad(Wrapper):
    """The mean attribution over noisy copies of the input (Smilkov et al. 2017).

    Formula:
        R(x) = 1/n Σ_k A(x + ε_k),   ε_k ~ N(0, σ²), n = ``augment_by_n``, σ = ``noise_scale``

    Args:
        analyzer: the analyzer A (a gradient for SmoothGrad proper; any works).
        augment_by_n: n (default 64, as iNNvestigate).
        noise_scale: σ, the standard deviation of the noise, in input units (default 1).
        seed: makes the noise reproducible: two analyzers with the same seed draw the same
            noise on the same sequence of calls.
    """

    def __init__(self, analyzer: Analyzer, augment_by_n: int = 64, noise_scale: float = 1.0,
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
    it. Over another analyzer (LRP, …) the same sum integrates that attribution instead.

    Args:
        analyzer: the analyzer A.
        steps: s ≥ 1 (default 64, as iNNvestigate).
        reference_inputs: x̄, a scalar or an array broadcastable to one sample (default 0).
    """

    def __init__(self, analyzer: Analyzer, steps: int = 64, reference_inputs=0.0,
                 name: Optional[str] = None):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"IntegratedGradients needs steps >= 1, got {steps!r}.")
        self.reference = np.asarray(reference_inputs)
        for spec in analyzer.model.inputs:  # the user's inputs (built or not)
            # an open length: the reference must broadcast to every length (size 1 there)
            sample = tuple(1 if d is None else d for d in spec.shape[1:])
            try:
                fits = np.broadcast_shapes(self.reference.shape, sample) == sample
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
