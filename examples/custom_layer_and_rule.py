"""Teach keras-lrp your own layers, rule and method, each checked against a hand computation.

Each extension is one piece: a rule is one class, a layer without a kernel is one layer-map
entry, a gradient-family method is one analyzer class.

1. A custom kernel layer, ``PositiveDense``: z = x · softplus(V) + b (all weights positive).
   ``keras_lrp.register_linear`` tells keras-lrp its linear map, and every rule then applies.
2. A custom rule, ``AbsZ`` (the |z|-rule): relevance in proportion to the *magnitude* of each
   contribution, R_i = Σ_j |x_i w_ij| / Σ_i' |x_i' w_i'j| · R_j. A rule is a small class with
   ``relevance(op, x, z, R)`` written against the layer's linear map ``op`` (``op(x, kernel)``
   and its transpose ``op.transpose(s, like, kernel)``).
3. Both are used in one analyzer (``rule_map`` puts AbsZ on the Dense layer, Epsilon on
   PositiveDense) and the result is compared with the same computation done by hand in NumPy.
4. A custom layer without a kernel, ``Halve`` (x ↦ x/2): one entry,
   ``rule_map=[(Halve, ProportionalRelevance)]``, for this analyzer only
   (``keras_lrp.register_layer`` would teach every analyzer).
5. A custom gradient-family method, ``VarGrad`` (Adebayo et al. 2018): the variance of an
   attribution over noisy copies of the input, one :class:`keras_lrp.analyzers.Wrapper` subclass
   that runs over any analyzer. On a linear model, input × gradient under noise ε ~ N(0, σ²) is
   (x + ε) ⊙ w, whose variance is σ² w².

    python examples/custom_layer_and_rule.py
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_lrp  # noqa: E402
from keras_lrp.rules.base import stabilize  # noqa: E402


@keras.saving.register_keras_serializable("examples")
class PositiveDense(keras.layers.Layer):
    """z = x · softplus(V) + b: a Dense layer whose weights are all positive."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.v = self.add_weight(shape=(input_shape[-1], self.units), name="v")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def call(self, x):
        return ops.matmul(x, ops.softplus(self.v)) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# The linear map of PositiveDense, for any kernel of its shape: x ↦ x · kernel (+ b).
keras_lrp.register_linear(PositiveDense, lambda layer, x, kernel: ops.matmul(x, kernel),
                          kernel=lambda layer: ops.softplus(layer.v), bias="b")


class AbsZ(keras_lrp.rules.Rule):
    """|z|-rule: relevance in proportion to the magnitude of each contribution.

    Formula:
        R_i = Σ_j |x_i w_ij| / Σ_i' |x_i' w_i'j| · R_j     (no bias; conserves relevance)
    """

    def relevance(self, op, x, z, relevance):
        ax, aw = ops.abs(x), ops.abs(op.kernel)
        s = relevance / stabilize(op(ax, aw), sign=+1)  # Σ |x w| ≥ 0
        return ax * op.transpose(s, x, aw)


def build_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    h = PositiveDense(3, name="positive")(inputs)
    h = keras.layers.ReLU(name="relu")(h)
    outputs = keras.layers.Dense(2, name="out")(h)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def by_hand(model: keras.Model, x: np.ndarray, epsilon: float) -> np.ndarray:
    """The same analysis in NumPy: AbsZ on 'out', Epsilon(ε) on 'positive', in float64."""
    v, b1 = (np.asarray(w, "float64") for w in model.get_layer("positive").get_weights())
    w2, b2 = (np.asarray(w, "float64") for w in model.get_layer("out").get_weights())
    w1 = np.log1p(np.exp(v))
    z1 = x @ w1 + b1
    h = np.maximum(z1, 0)
    logits = h @ w2 + b2
    R = np.zeros_like(logits)
    rows = np.arange(len(x))
    R[rows, logits.argmax(1)] = logits[rows, logits.argmax(1)]
    contrib = np.abs(h)[:, :, None] * np.abs(w2)[None]              # |h_i w_ij|
    total = contrib.sum(axis=1, keepdims=True)                      # 0 where every h_i = 0
    share = np.divide(contrib, total, out=np.zeros_like(contrib), where=total > 0)
    R_h = (share * R[:, None, :]).sum(axis=2)
    denominator = z1 + epsilon * np.where(z1 >= 0, 1, -1)           # Epsilon, with bias
    return (x[:, :, None] * w1[None] / denominator[:, None, :] * R_h[:, None, :]).sum(axis=2)


class Halve(keras.layers.Layer):
    """x ↦ x / 2: a bias-free linear layer without a kernel."""

    def call(self, x):
        return x / 2.0


class VarGrad(keras_lrp.analyzers.Wrapper):
    """VarGrad: the variance of an attribution over noisy inputs (Adebayo et al. 2018).

    Formula:
        R(x) = 1/n Σ_k (A(x + ε_k) − Ā)²,   Ā = 1/n Σ_k A(x + ε_k),   ε_k ~ N(0, σ²)
    """

    def __init__(self, analyzer, n: int = 64, noise_scale: float = 1.0, seed=None):
        self.noise_scale, self._seed = noise_scale, seed
        self.seed = keras.random.SeedGenerator(seed)
        super().__init__(analyzer, n, f"vargrad({analyzer.name})")

    def params(self):
        return {"n": self.n, "noise_scale": self.noise_scale, "seed": self._seed}

    def augment(self, x, repeated):
        return repeated + keras.random.normal(ops.shape(repeated), stddev=self.noise_scale,
                                              dtype=repeated.dtype, seed=self.seed)

    def reduce(self, x, results):  # results: (batch, n, …)
        return ops.var(results, axis=1)


def halve_model(seed: int = 0) -> keras.Model:
    inputs = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="d")(inputs)
    outputs = keras.layers.Dense(2, name="out")(Halve(name="halve")(h))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def halve_by_hand(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The Z rule through 'out' and 'd'; Halve passes relevance on proportionally (unchanged)."""
    w1, b1 = (np.asarray(w, "float64") for w in model.get_layer("d").get_weights())
    w2, b2 = (np.asarray(w, "float64") for w in model.get_layer("out").get_weights())
    h = (x @ w1 + b1) / 2
    logits = h @ w2 + b2
    rows, top = np.arange(len(x)), logits.argmax(1)
    R = np.zeros_like(logits)
    R[rows, top] = logits[rows, top]
    R_h = (h[:, :, None] * w2[None] / logits[:, None, :] * R[:, None, :]).sum(axis=2)
    z1 = x @ w1 + b1
    return (x[:, :, None] * w1[None] / z1[:, None, :] * R_h[:, None, :]).sum(axis=2)


def main() -> None:
    model = build_model()
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    analyzer = keras_lrp.create_analyzer(
        "lrp.epsilon", model, epsilon=0.01, rule_map=[("out", AbsZ())])
    ours = analyzer.analyze(x)
    hand = by_hand(model, x.astype("float64"), epsilon=0.01)
    print("keras-lrp:\n", ours, "\nby hand:\n", hand)
    print("max |difference|:", float(np.abs(ours - hand).max()))
    np.testing.assert_allclose(ours, hand, rtol=1e-4, atol=1e-5)
    print("custom layer + custom rule agree with the hand computation")

    model = halve_model()
    ours = keras_lrp.create_analyzer("lrp.z", model, rule_map=[
        (Halve, keras_lrp.layers.ProportionalRelevance)]).analyze(x)
    np.testing.assert_allclose(ours, halve_by_hand(model, x.astype("float64")), rtol=1e-3,
                               atol=1e-5)
    print("a layer without a kernel, mapped for one analyzer, agrees with the hand computation")

    inputs = keras.Input((4,), name="x")
    linear = keras.Model(inputs, keras.layers.Dense(1, name="out")(inputs))
    w = linear.get_layer("out").get_weights()[0][:, 0]
    vargrad = VarGrad(keras_lrp.create_analyzer("input_t_gradient", linear), n=4000,
                      noise_scale=0.5, seed=0)
    ours = vargrad.analyze(x)
    print("VarGrad:", ours[0], " σ² w²:", 0.25 * w ** 2)
    np.testing.assert_allclose(ours, np.broadcast_to(0.25 * w ** 2, ours.shape), rtol=0.15)
    print("a new gradient-family method (one class) agrees with σ² w²")


if __name__ == "__main__":
    main()
