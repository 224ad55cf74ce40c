"""Saving and loading analyzers: round trips, newer formats, foreign files, unsaveable rules.
"""
import json
import os
import zipfile

import keras
import numpy as np
import pytest
from helpers import L

import keras_lrp
from keras_lrp import rules
from keras_lrp.analyzers import serialize


# ============================================================================ 7. serialization
def serial_net():
    x = inputs = keras.Input((5, 5, 1), name="img")
    x = L.Conv2D(2, 2, activation="relu", name="conv")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(4, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x), name="serial")


SAVED = [
    ("lrp.epsilon", {"epsilon": 0.01}),
    ("lrp.alpha_beta", {"alpha": 3}),
    ("lrp", {"rule": "Gamma", "rule_map": [((L.Dense,), rules.Epsilon(epsilon=0.05)),
                                           ("conv", rules.AlphaBeta(alpha=2, beta=1))],
             "input_layer_rule": (np.full((5, 5, 1), -0.5), 2.0)}),
    ("lrp.epsilon_gamma_box", {"low": 0.0, "high": np.float32(1), "neuron_selection_mode": "all"}),
    ("lrp.z", {"neuron_selection_mode": "index", "until_layer_idx": 1,
               "until_layer_rule": "Flat"}),
    ("input_t_gradient", {}),
]


@pytest.fixture(scope="module")
def serial():
    keras.utils.set_random_seed(14)
    model = serial_net()
    return model, np.random.default_rng(14).normal(size=(6, 5, 5, 1)).astype("float32")


@pytest.mark.parametrize("name, kwargs", SAVED, ids=[f"{n}-{i}" for i, (n, _) in
                                                     enumerate(SAVED)])
def test_save_load_round_trip_is_identical(serial, tmp_path, name, kwargs):
    model, x = serial
    analyzer = keras_lrp.create_analyzer(name, model, **kwargs)
    selection = {"neuron_selection": [0, 1, 2, 0, 1, 2]} if kwargs.get(
        "neuron_selection_mode") == "index" else {}
    path = tmp_path / "analyzer.lrp"
    analyzer.save(path)
    loaded = keras_lrp.load_analyzer(path)
    assert type(loaded) is type(analyzer) and loaded.name == analyzer.name
    assert loaded.neuron_selection_mode == analyzer.neuron_selection_mode
    np.testing.assert_array_equal(loaded.analyze(x, **selection), analyzer.analyze(x, **selection))
    assert os.listdir(tmp_path) == ["analyzer.lrp"]  # no temporary files left behind


def test_newer_format_version_says_upgrade(serial, tmp_path):
    model, _ = serial
    path = tmp_path / "new.lrp"
    keras_lrp.create_analyzer("lrp.z", model).save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("analyzer.json"))
        saved_model = archive.read("model.keras")
    assert config["format_version"] == serialize.FORMAT_VERSION
    config["format_version"] = serialize.FORMAT_VERSION + 1
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("analyzer.json", json.dumps(config))
        archive.writestr("model.keras", saved_model)
    with pytest.raises(ValueError) as err:
        keras_lrp.load_analyzer(path)
    msg = str(err.value)
    assert f"file format {serialize.FORMAT_VERSION + 1}" in msg, msg
    assert f"reads formats up to {serialize.FORMAT_VERSION}" in msg, msg
    assert "Upgrade keras-lrp to load it" in msg, msg


@pytest.mark.parametrize("kind", ["text file", "keras model file", "zip without analyzer.json"])
def test_non_analyzer_file_fails_clearly(serial, tmp_path, kind):
    model, _ = serial
    path = tmp_path / "thing"
    if kind == "text file":
        path.write_text("not an analyzer")
    elif kind == "keras model file":
        path = tmp_path / "model.keras"
        model.save(path)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="is not a keras-lrp analyzer file"):
        keras_lrp.load_analyzer(path)


def test_missing_file_is_reported_as_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        keras_lrp.load_analyzer(tmp_path / "nowhere.lrp")


class MyEpsilon(rules.Epsilon):
    """A user's rule: not a keras-lrp built-in, so it cannot be saved by name."""


@pytest.mark.parametrize("kwargs, keyword", [
    ({"rule": MyEpsilon(epsilon=0.1)}, "rule"),
    ({"rule": "Z", "rule_map": [(L.Dense, MyEpsilon())]}, "rule_map"),
    ({"rule": "Z", "input_layer_rule": MyEpsilon}, "input_layer_rule"),
])
def test_custom_rule_cannot_be_saved(serial, tmp_path, kwargs, keyword):
    model, x = serial
    analyzer = keras_lrp.create_analyzer("lrp", model, **kwargs)
    analyzer.analyze(x)  # a fine analyzer; only saving it is impossible
    path = tmp_path / "custom.lrp"
    with pytest.raises(TypeError) as err:
        analyzer.save(path)
    msg = str(err.value)
    assert f"keyword argument {keyword!r}" in msg and "MyEpsilon" in msg, msg
    assert "Recreate analyzers with custom objects in code" in msg, msg
    assert not path.exists() and os.listdir(tmp_path) == []


