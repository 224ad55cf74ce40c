"""The public namespace of keras_lrp: one name per concept, and the 0.2 names that moved keep
working for one release with a DeprecationWarning that names the new one."""

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.canonizers import blocks
from keras_lrp.canonizers.forward_layers import OLD_HOMES
from keras_lrp.layers import IdentityRelevance, RelevanceLayer


def _net():
    inputs = keras.Input((4,), dtype="float64")
    h = keras.layers.Dense(3, activation="relu", dtype="float64", name="d1")(inputs)
    h = keras.layers.LayerNormalization(dtype="float64", name="ln")(h)
    outputs = keras.layers.Dense(2, dtype="float64", name="d2")(h)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def test_every_public_name_resolves():
    for name in keras_lrp.__all__:
        assert getattr(keras_lrp, name) is not None


def test_attributor_is_a_documented_alias_of_analyzer():
    assert keras_lrp.Attributor is keras_lrp.Analyzer
    analyzer = keras_lrp.create_analyzer("lrp.z", _net())
    assert isinstance(analyzer, keras_lrp.Attributor) and isinstance(analyzer, keras_lrp.LRP)


def test_layer_map_warns_and_equals_rule_map():
    model = _net()
    x = np.random.default_rng(1).standard_normal((5, 4))
    entries = [(keras.layers.LayerNormalization, IdentityRelevance)]
    new = keras_lrp.create_analyzer("lrp.epsilon", model, rule_map=entries).analyze(x)
    with pytest.warns(DeprecationWarning, match="rule_map"):
        old = keras_lrp.create_analyzer("lrp.epsilon", model, layer_map=entries).analyze(x)
    np.testing.assert_array_equal(old, new)
    with pytest.warns(DeprecationWarning, match="entries"):
        composite = keras_lrp.composites.Composite(layer_map=entries)
    assert composite.own_entries == keras_lrp.composites.Composite(entries).own_entries


def test_a_composites_own_list_is_entries_and_rule_map_only_an_analyzers():
    """rule_map= has one meaning, an analyzer's own entries searched first; a composite's own
    list is entries=. The old Composite(rule_map=) and .rule_map warn for one release."""
    entries = [(keras.layers.LayerNormalization, IdentityRelevance)]
    with pytest.warns(DeprecationWarning, match="entries"):
        old = keras_lrp.composites.Composite(rule_map=entries)
    new = keras_lrp.composites.Composite(entries=entries)
    with pytest.warns(DeprecationWarning, match="own_entries"):
        assert old.rule_map == new.own_entries == entries


def test_register_composite_warns_and_registers_a_block():
    class Block(keras.layers.Layer):
        pass

    with keras_lrp.composites.registry.REGISTRY.scoped():
        with pytest.warns(DeprecationWarning, match="register_block"):
            register = keras_lrp.register_composite
        register(Block)
        assert blocks.REGISTERED[0] is Block
    assert Block not in blocks.REGISTERED


def test_trace_composites_and_as_target_warn():
    with pytest.warns(DeprecationWarning, match="TraceBlocks"):
        cls = keras_lrp.canonizers.TraceComposites
    assert cls is keras_lrp.canonizers.TraceBlocks
    with pytest.warns(DeprecationWarning, match="as_rule"):
        rule = keras_lrp.composites.as_target("Epsilon")
    assert type(rule) is keras_lrp.rules.Epsilon


def test_relevance_layer_target_is_the_old_name_of_layer():
    dense = keras.layers.Dense(2)
    with pytest.warns(DeprecationWarning, match="layer="):
        old = RelevanceLayer(target=dense)
    assert old.layer is dense
    with pytest.warns(DeprecationWarning, match=r"\.layer"):
        assert old.target is dense


@pytest.mark.parametrize("old,new", [("heatmap", "keras_lrp.plots.heatmap"),
                                     ("tokens", "keras_lrp.plots.tokens"),
                                     ("gradients", "keras_lrp.analyzers.gradient"),
                                     ("recurrent", "keras_lrp.layers.recurrent.cells")])
def test_moved_modules_warn_and_resolve(old, new):
    import importlib

    with pytest.warns(DeprecationWarning, match=new):
        module = getattr(keras_lrp, old)
    assert module is importlib.import_module(new)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        keras_lrp.nonsense  # noqa: B018


def test_zero_at_zero_moved_to_core_types_and_warns_at_its_old_place():
    from keras_lrp.analyzers import reverse
    from keras_lrp.core import types

    with pytest.warns(DeprecationWarning, match="keras_lrp.core.types.ZERO_AT_ZERO"):
        old = reverse.ZERO_AT_ZERO
    assert old is types.ZERO_AT_ZERO and "relu" in old and "sigmoid" not in old
    with pytest.raises(AttributeError, match="no attribute 'NOTHING'"):
        reverse.NOTHING  # noqa: B018


@pytest.mark.parametrize("name", ["EmbeddingRelevance", "TimeDistributedRelevance",
                                  "ZeroRelevance"])
def test_sequence_layers_moved_out_of_recurrent_and_warn_at_their_old_path(name):
    from keras_lrp import layers
    from keras_lrp.layers import recurrent, sequence
    from keras_lrp.layers.recurrent import relevance

    assert getattr(layers, name) is getattr(sequence, name)
    for old in (relevance, recurrent):
        with pytest.warns(DeprecationWarning, match=f"keras_lrp.layers.sequence.{name}"):
            assert getattr(old, name) is getattr(sequence, name)


@pytest.mark.parametrize("name", ["GateRelevance", "IdentityRelevance", "LayerNormRelevance",
                                  "ProportionalRelevance", "RouteRelevance"])
def test_structural_layers_have_one_path_and_warn_under_rules(name):
    from keras_lrp import layers, rules

    assert name not in rules.__all__ and name in layers.__all__
    with pytest.warns(DeprecationWarning, match=f"keras_lrp.layers.{name}"):
        assert getattr(rules, name) is getattr(layers, name)


def test_the_old_attribution_package_warns_and_is_the_new_one():
    """keras_lrp.attribution moved to keras_lrp.analyzers: the old names are the new modules,
    and importing the old package warns once (one release)."""
    import importlib
    import sys
    import warnings

    import keras_lrp.analyzers.lengths as new

    sys.modules.pop("keras_lrp.attribution", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("keras_lrp.attribution.lengths")
        from keras_lrp.attribution import LRP
    assert old is new
    assert LRP is keras_lrp.analyzers.LRP
    assert any(issubclass(w.category, DeprecationWarning) and "keras_lrp.analyzers" in
               str(w.message) for w in caught)


def _gated_graph():
    """s = Dense(4)(x), a gate g = Dense(4, sigmoid)(x): Multiply([s, g]) and the CP
    product Multiply([softmax(x), s])."""
    from keras_lrp.core import graph as graphs

    x = keras.Input((4,))
    s = keras.layers.Dense(4, name="s")(x)
    g = keras.layers.Dense(4, activation="sigmoid", name="g")(x)
    a = keras.layers.Softmax(name="a")(x)
    gated = keras.layers.Multiply(name="gated")([s, g])
    cp = keras.layers.Multiply(name="cp")([a, s])
    graph = graphs.extract(keras.Model(x, [gated, cp]))
    named = {n.layer.name: n for n in graph.nodes}
    return graph, named["gated"], named["cp"]


def test_one_name_asks_which_factor_of_a_product_is_held():
    from keras_lrp.core import patterns

    graph, gated, cp = _gated_graph()
    assert patterns.held_factor(gated, graph) == 1
    assert patterns.held_factor(gated, graph, kind="gate") == 1
    assert patterns.held_factor(cp, graph, kind="cp") == 0
    assert patterns.held_factor(cp, graph, kind="gate") is None
    with pytest.raises(ValueError, match="kind must be one of"):
        patterns.held_factor(gated, graph, kind="nonsense")


@pytest.mark.parametrize("old,kind", [("factor_index", "outright"), ("gate_index", "gate"),
                                      ("held_operand", "cp")])
def test_the_old_names_of_held_factor_warn_and_agree(old, kind):
    from keras_lrp.core import patterns

    graph, gated, cp = _gated_graph()
    with pytest.warns(DeprecationWarning, match=f"held_factor.*kind='{kind}'"):
        fn = getattr(patterns, old)
    for node in (gated, cp):
        assert fn(node, graph) == patterns.held_factor(node, graph, kind=kind)
    assert old not in patterns.__all__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        patterns.nothing  # noqa: B018


def test_gate_relevance_gate_index_is_the_old_name_of_held():
    from keras_lrp.layers import GateRelevance

    assert GateRelevance(held=0).get_config()["held"] == 0
    with pytest.warns(DeprecationWarning, match="held="):
        old = GateRelevance(gate_index=0)
    assert old.held == 0
    with pytest.warns(DeprecationWarning, match=r"\.held"):
        assert old.gate_index == 0
    with pytest.warns(DeprecationWarning, match="held="):  # a 0.5 config still loads
        assert GateRelevance.from_config({"gate_index": 0, "name": "g"}).held == 0


def test_the_canonizers_forward_layers_have_one_home():
    """Every Keras layer a canonizer puts into the canonized graph is defined in
    keras_lrp.canonizers.forward_layers (and exported there)."""
    import importlib
    import pkgutil

    import keras_lrp.canonizers as canonizers
    from keras_lrp.canonizers import forward_layers

    for info in pkgutil.walk_packages(canonizers.__path__, "keras_lrp.canonizers."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, keras.layers.Layer) and \
                    value.__module__ == module.__name__:
                assert module.__name__.startswith("keras_lrp.canonizers.forward_layers."), value
                assert getattr(forward_layers, value.__name__) is value


@pytest.mark.parametrize("old,name", [(old, name) for old, names in OLD_HOMES.items()
                                      for name in names])
def test_forward_layers_warn_at_their_old_paths(old, name):
    import importlib

    from keras_lrp.canonizers import forward_layers

    module = importlib.import_module(old)
    assert name not in module.__all__
    with pytest.warns(DeprecationWarning, match=f"keras_lrp.canonizers.forward_layers.{name}"):
        assert getattr(module, name) is getattr(forward_layers, name)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        module.Nothing  # noqa: B018


def test_the_old_io_inputs_module_warns_and_lends_the_new_names():
    """keras_lrp.io.inputs moved to keras_lrp.analyzers.inputs (its only user): the old module
    warns on import and its names are the new functions (one release)."""
    import importlib
    import sys
    import warnings

    from keras_lrp.analyzers import inputs as new

    sys.modules.pop("keras_lrp.io.inputs", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("keras_lrp.io.inputs")
        from keras_lrp.io.inputs import as_arrays, is_batch_stream
    assert as_arrays is new.as_arrays and is_batch_stream is new.is_batch_stream
    assert old.slices is new.slices and old.stream is new.stream
    assert is_batch_stream(iter([np.ones(2)])) and not is_batch_stream(np.ones(2))
    assert any(issubclass(w.category, DeprecationWarning) and "keras_lrp.analyzers.inputs" in
               str(w.message) for w in caught)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        old.nothing  # noqa: B018


def test_generation_save_heatmaps_warns_and_writes_what_plots_writes(tmp_path):
    """Generation.save_heatmaps moved to keras_lrp.plots.tokens.write_generation_heatmaps: the
    old method warns and writes the same two files (one release)."""
    from keras_lrp.generation import Generation
    from keras_lrp.plots.tokens import write_generation_heatmaps

    ids = np.array([3, 1, 4, 1, 5])  # a prompt of 3 tokens, 2 generated
    per_token = np.array([[0.5, -0.25, 1.0, 0.0, 0.0], [0.1, 0.2, -0.3, 0.4, 0.0]])
    gen = Generation(ids=ids, prompt_length=3, per_token=per_token, logits=np.array([2.0, 1.5]),
                     log_probs=np.array([-0.5, -1.0]), span=[0, 1],
                     span_relevance=np.array([0.3, -0.1, 0.6, 0.2, 0.0]))
    vocab = [f"w{i}" for i in range(6)]
    with pytest.warns(DeprecationWarning, match="write_generation_heatmaps"):
        old = gen.save_heatmaps(str(tmp_path / "old"), vocab)
    new = write_generation_heatmaps(gen, str(tmp_path / "new"), vocab)
    assert [p.rsplit("/", 1)[1] for p in old] == ["generation.png", "generation.html"]
    assert [p.rsplit("/", 1)[1] for p in new] == ["generation.png", "generation.html"]
    page_old, page_new = (open(p[1], encoding="utf-8").read() for p in (old, new))
    assert page_old == page_new and "w4" in page_new and "log p of" in page_new
    import os

    assert os.path.getsize(old[0]) > 1000 and os.path.getsize(new[0]) > 1000


def test_the_demos_models_dir_moved_to_common_and_the_old_name_warns():
    """The demos' shared helpers live in keras_lrp.demos.common; digits.MODELS_DIR, the one
    digits itself no longer uses, warns and is the same folder (one release)."""
    from keras_lrp.demos import common, digits

    assert (common.MODELS_DIR / "digits_cnn.keras").is_file()
    with pytest.warns(DeprecationWarning, match="keras_lrp.demos.common.MODELS_DIR"):
        old = digits.MODELS_DIR
    assert old == common.MODELS_DIR
    with pytest.warns(DeprecationWarning, match="demos.common"):
        from keras_lrp.demos.digits import MODELS_DIR
    assert MODELS_DIR == common.MODELS_DIR
    assert digits.format_cell is common.format_cell  # what digits uses stays reachable there
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        digits.nothing  # noqa: B018
