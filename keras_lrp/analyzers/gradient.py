"""The gradient of the explained output with respect to the inputs, as an analyzer (gradient,
input × gradient, and the backward ReLU variants through the composite's relevance layers);
the wrappers SmoothGrad and IntegratedGradients are in :mod:`keras_lrp.analyzers.wrappers`."""

from __future__ import annotations

from typing import Optional

import keras
from keras import ops

from keras_lrp import backend
from keras_lrp.analyzers.base import Analyzer

POSTPROCESS = (None, "abs", "square")


class InputGradient(keras.layers.Layer):
    """Gradient of the selected output w.r.t. the input (times the input if asked).

    Formula:
        R_i = Σ_k m_k ∂y_k/∂x_i   (or x_i times it), m the selection mask.
    """

    def __init__(self, forward, start, times_input=False, **kwargs):
        super().__init__(**kwargs)
        # not ``self.forward``: that is torch.nn.Module's method on the PyTorch backend
        self.forward_model, self.start, self.times_input = forward, start, times_input

    def call(self, inputs):
        model = self.forward_model
        n = len(model.inputs)
        xs, extra = list(inputs[:n]), list(inputs[n:])
        logits, pullback = backend.vjp(lambda *ys: model(ys[0] if n == 1 else list(ys)), *xs)
        # ∂/∂x Σ_k m_k y_k with the selection m held constant: the pullback of m
        grads = pullback(ops.stop_gradient(self.start([logits] + extra)))
        for x, g in zip(model.inputs, grads):
            if g is None:  # never a silent zero gradient
                raise ValueError(
                    f"The explained output of model '{model.name}' does not depend on its "
                    f"input '{x.name}' (shape {tuple(x.shape)}): its gradient does not exist. "
                    "Explain a model whose inputs all reach the output.")
        out = [g * x for g, x in zip(grads, xs)] if self.times_input else grads
        return out[0] if n == 1 else out

    def compute_output_spec(self, inputs):
        specs = [keras.KerasTensor(x.shape, dtype=self.compute_dtype)
                 for x in inputs[:len(self.forward_model.inputs)]]
        return specs[0] if len(specs) == 1 else specs


class Gradient(Analyzer):
    """The gradient of the explained output of the user's own model (its layers, less the
    output softmax; no rewrite, so any model the backend can differentiate).

    Formula:
        R_i = ∂y/∂x_i  (``times_input``: x_i ∂y/∂x_i, Shrikumar et al. 2016), then |R| or R²
        with ``postprocess="abs"``/``"square"`` (Simonyan et al. 2014).

    Args:
        model: the Keras model.
        times_input: multiply by the input (``input_t_gradient``).
        postprocess: ``None``, ``"abs"`` or ``"square"``.
        **kwargs: see :class:`~keras_lrp.analyzers.base.Analyzer`; ``output_relevance``
            defaults to ``"one"`` (the plain gradient).
    """

    rewrites = False  # the user's own layers (Analyzer.rewrites)

    def __init__(self, model: keras.Model, times_input: bool = False,
                 postprocess: Optional[str] = None, output_relevance: str = "one", **kwargs):
        if postprocess not in POSTPROCESS:
            raise ValueError(f"postprocess must be one of {POSTPROCESS}, got {postprocess!r}.")
        self.times_input, self.postprocess = times_input, postprocess
        super().__init__(model, output_relevance=output_relevance, **kwargs)
        self._options.update(times_input=times_input, postprocess=postprocess)

    def build_relevances(self):
        refuse_integer_inputs(self, "gradient")
        start = self.output_relevance_layer("gradient_selection")
        out = InputGradient(self.forward_model, start, self.times_input, name=self._prefix,
                            dtype=self.inputs[0].dtype)(self.model_inputs())
        grads = list(out) if isinstance(out, (list, tuple)) else [out]
        if self.postprocess == "abs":
            grads = [ops.abs(g) for g in grads]
        elif self.postprocess == "square":
            grads = [ops.square(g) for g in grads]
        return grads, {}


def refuse_integer_inputs(analyzer, what: str) -> None:
    """Raise ValueError for models fed integer ids (tokens): they have no gradient and no
    meaningful noise or path, so a gradient of them would be silently zero."""
    for x in analyzer.inputs:
        if "int" in str(x.dtype) or "bool" in str(x.dtype):
            raise ValueError(
                f"Analyzer {analyzer.name!r} differentiates with respect to the model's inputs "
                f"(or moves along them), but input '{x.name}' holds {x.dtype} values (token "
                f"ids), which have no {what}. Use an LRP analyzer (a token's relevance is the "
                "sum over its embedding vector), or explain a model that takes the embedding "
                "vectors as its input.")
