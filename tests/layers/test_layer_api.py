"""Relevance layers are Keras layers: they never shadow keras.layers.Layer's API (``weights``,
``trainable_weights``, ``name``, …), so the relevance model of every analyzer can be summarised
and counted like any Keras model."""

import contextlib
import inspect
import io

import keras
import numpy as np
import pytest
from helpers import dense_net

import keras_lrp
from keras_lrp import layers as relevance_layers

#: The Layer methods a subclass is meant to override.
OVERRIDABLE = {"__init__", "call", "build", "compute_output_spec", "compute_output_shape",
               "compute_mask", "get_config", "from_config", "__repr__"}


def _relevance_layer_classes():
    import keras_lrp.analyzers  # noqa: F401 - imports every module that defines relevance layers
    seen, todo = set(), [relevance_layers.RelevanceLayer]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen and sub.__module__.startswith("keras_lrp"):
                seen.add(sub)
                todo.append(sub)
    return sorted(seen, key=lambda c: c.__qualname__)


def test_every_relevance_layer_class_is_found():
    names = {c.__name__ for c in _relevance_layer_classes()}
    assert {"Rule", "Epsilon", "WSquare", "Flat", "IdentityRelevance", "RecurrentRelevance",
            "BilinearRelevance", "GradientRelevance"} <= names


@pytest.mark.parametrize("cls", _relevance_layer_classes(), ids=lambda c: c.__name__)
def test_no_relevance_layer_shadows_the_keras_layer_api(cls):
    api = {n for n in dir(keras.layers.Layer) if not n.startswith("__")} | {"__call__"}
    own = {n for c in inspect.getmro(cls) if c.__module__.startswith("keras_lrp")
           for n in vars(c)}
    shadowed = sorted((own & api) - OVERRIDABLE)
    assert shadowed == [], f"{cls.__name__} redefines keras.layers.Layer's {shadowed}"


#: Analyzers that need an argument to exist at all.
REQUIRED = {"lrp": {"rule": "Epsilon"}, "lrp.alpha_beta": {"alpha": 2, "beta": 1}}
CASES = [(name, REQUIRED.get(name, {})) for name in keras_lrp.ANALYZERS] + [
    ("lrp.alpha_1_beta_0_IB", {"input_layer_rule": "WSquare"}),
    ("lrp.epsilon", {"input_layer_rule": "Flat"}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}{'+' + str(k) if k else ''}"
                                                    for n, k in CASES])
def test_summary_and_count_params_of_every_relevance_model(name, kwargs):
    """summary() lists the relevance layers, and count_params() counts the model's weights:
    the relevance model of the Dense net holds its two kernels and biases, 6·5+5 + 5·3+3 = 53
    parameters, once each and nothing else; the baselines (input, random) use no layer."""
    model = dense_net(6, (5, 3))  # Dense(5, relu) → Dense(3)
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        analyzer.relevance_model.summary()
    text = out.getvalue()
    assert "Total params" in text
    count = analyzer.relevance_model.count_params()
    expected = 0 if keras_lrp.ANALYZERS[name].family == "baseline" else 53
    assert count == expected
    assert f"{count:,}" in text.split("Total params")[1].splitlines()[0]
    stored = sorted(int(np.prod(w.shape)) for w in analyzer.relevance_model.weights)
    assert stored == ([] if expected == 0 else [3, 5, 15, 30])
