"""Building is one explicit step (Analyzer.build): constructing an analyzer records and checks its
arguments; the canonized copy, the relevance model and the forward check are made on first use
or by create_analyzer. A subclass that still overrides build() as the hook making the symbolic
relevances (now build_relevances) keeps working for one release, with a DeprecationWarning."""
import warnings

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp import composites as C
from keras_lrp import rules as R
from keras_lrp.analyzers.lrp import LRP
from keras_lrp.canonizers.base import DEFAULT_CANONIZERS, canonize, finish, restructure
from keras_lrp.core import graph as graph_mod


def _model():
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(5, activation="relu")(x)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax")(h))


def _x():
    return np.random.default_rng(0).normal(size=(3, 4)).astype("float32")


def test_construction_records_and_first_use_builds():
    model = _model()
    a = LRP(model, C.Uniform(rule=R.Epsilon()))
    assert not a.built and "relevance_model" not in vars(a)
    want = keras_lrp.create_analyzer("lrp.epsilon", model)
    assert want.built
    np.testing.assert_allclose(a.analyze(_x()), want.analyze(_x()), rtol=1e-6, atol=1e-7)
    assert a.built and a.forward_checked


def test_reading_what_build_makes_builds():
    a = LRP(_model(), C.Uniform(rule=R.Epsilon()))
    relevance_model = a.relevance_model
    assert a.built and isinstance(relevance_model, keras.Model)
    assert a.build() is a and a.relevance_model is relevance_model  # once
    with pytest.raises(AttributeError, match="no_such_thing"):
        getattr(a, "no_such_thing")  # noqa: B009 - the attribute read is the test


def test_bad_arguments_are_refused_at_construction():
    with pytest.raises(ValueError, match="neuron_selection_mode must be one of"):
        LRP(_model(), C.Uniform(rule=R.Epsilon()), neuron_selection_mode="best")


class Doubled(keras_lrp.Analyzer):
    """A new-style subclass: its state set after super().__init__ (build comes later)."""

    rewrites = False

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self.factor = 2.0

    def build_relevances(self):
        return [x * self.factor for x in self.inputs], {}


def test_a_subclass_sets_its_state_after_super_init():
    x = _x()
    np.testing.assert_allclose(Doubled(_model()).analyze(x), 2 * x, rtol=1e-6)


def test_an_old_subclass_overriding_build_warns_and_works():
    with pytest.warns(DeprecationWarning, match=r"OldDoubled.build\(\) overrides the hook"):
        class OldDoubled(keras_lrp.Analyzer):
            rewrites = False

            def __init__(self, model, **kwargs):
                self.factor = 2.0
                super().__init__(model, **kwargs)

            def build(self):
                return [x * self.factor for x in self.inputs], {}

    x = _x()
    old = OldDoubled(_model())
    assert old.build() is old  # build() is the public step again
    np.testing.assert_allclose(old.analyze(x), Doubled(_model()).analyze(x), rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new-style subclass does not warn

        class New(Doubled):
            pass


def test_canonize_in_two_steps_equals_canonize_with_a_check():
    """restructure, then the check on the user's layers, then finish: what canonize did with
    its check callback (the analyzers now check between the two steps)."""
    model = _model()
    seen = []

    def check(graph):
        seen.append([n.layer for n in graph.nodes])

    def extracted():
        graph = graph_mod.extract(model)
        graph_mod.inline(graph)
        return graph

    one = canonize(extracted(), DEFAULT_CANONIZERS, check)
    graph = restructure(extracted(), DEFAULT_CANONIZERS)
    mine = [n.layer for n in graph.nodes]
    two = finish(graph, DEFAULT_CANONIZERS)
    assert seen == [mine] and all(layer in model.layers for layer in mine)
    assert [type(n.layer) for n in one.nodes] == [type(n.layer) for n in two.nodes]
    assert not any(n.layer in model.layers for n in two.nodes)  # clones
