"""The reverse graph hands a rule the ReLU's output a in place of its pre-activation z where that
is exact (keras_lrp.analyzers.reverse.relu_stand_ins): the analysis then keeps one activation
per layer. Checked: the relevances are bit-identical in float64 with and without the stand-ins,
for every rule family; which layers get a stand-in (only where every reader of a passes relevance
in proportion to its input, so nothing arrives where a = 0)."""

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.analyzers import reverse as rv

L = keras.layers


def _net():
    i = keras.Input((12, 12, 3))
    h = L.Conv2D(4, 3, activation="relu", name="c1")(i)
    h = L.MaxPooling2D()(h)
    h = L.Conv2D(5, 3, padding="same", name="c2")(h)
    h = L.ReLU()(L.BatchNormalization()(h))
    h2 = L.Conv2D(5, 1, activation="relu", name="c3")(h)
    h = L.Flatten()(L.Add()([h, h2]))
    h = L.Dropout(0.2)(L.Dense(8, activation="relu", name="d1")(h))
    model = keras.Model(i, L.Dense(3, name="out")(h))
    rng = np.random.default_rng(0)
    model.set_weights([np.abs(rng.normal(0, 0.5, w.shape)) + 0.5 if "variance" in w.path
                       else rng.normal(0, 0.5, w.shape) for w in model.weights])
    return model


def _stand_ins(analyzer):
    graph = analyzer.graph
    out = graph.outputs[0]
    rels = rv.relevance_layers(graph, analyzer.composite,
                                 analyzer.composite.context(graph, analyzer.model), out)
    producers = graph.producers()
    return sorted(producers[z].layer.name for z in rv.relu_stand_ins(graph, rels, out))


CASES = [("lrp.z", {}, ["c1", "c2", "c3", "d1"]),
         ("lrp.epsilon", {}, ["c1", "c2", "c3", "d1"]),
         ("lrp.epsilon_IB", {}, ["c1", "c2", "c3", "d1"]),
         ("lrp.alpha_2_beta_1", {}, ["c1", "c2", "c3", "d1"]),
         ("lrp.z_plus", {}, ["c1", "c2", "c3", "d1"]),
         ("lrp.epsilon_gamma_box", {}, ["c1", "c2", "c3", "d1"]),
         ("lrp.sequential_preset_a_flat", {}, ["c1", "c2", "c3", "d1"]),
         # WSquare gives relevance without x: only c3, read by the Add (proportional), qualifies
         ("lrp.w_square", {}, ["c3"]),
         # bias_factor spreads the absorbed share over inputs that are 0: only c3 qualifies
         ("lrp.epsilon", {"bias_factor": 1.0}, ["c3"]),
         # deep_taylor's ReLUs pass the gradient
         ("deep_taylor", {}, [])]


@pytest.mark.parametrize("name, kwargs, expected", CASES,
                         ids=[f"{n}{'-bf1' if k else ''}" for n, k, _ in CASES])
def test_stand_ins_are_exact(float64, monkeypatch, name, kwargs, expected):
    model = _net()
    x = np.random.default_rng(1).normal(size=(4, 12, 12, 3))
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    assert _stand_ins(analyzer) == expected
    with_stand_ins = analyzer.analyze(x)
    monkeypatch.setattr(rv, "relu_stand_ins", lambda *a, **k: {})
    without = keras_lrp.create_analyzer(name, model, **kwargs).analyze(x)
    np.testing.assert_array_equal(with_stand_ins, without)
    assert np.abs(without).max() > 0
