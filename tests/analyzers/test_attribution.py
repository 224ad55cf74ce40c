"""Running an analyzer: the user's model stays the user's (weights, layers, graph,
predictions, training and the global Keras configuration are untouched by analyses, failed ones
included), one analyzer shared by threads, and overflow named at its layer.
"""
import concurrent.futures
import threading

import keras
import numpy as np
import pytest
from helpers import L, keras_dtype, precision_net, unsupported_net

import keras_lrp


# ============================================================ 5. the user's model stays theirs
def user_net():
    """Conv → BatchNorm → ReLU (the clone folds the BN) → Dense(relu) → Dense(softmax)."""
    x = inputs = keras.Input((6, 6, 1), name="img")
    x = L.Conv2D(3, 3, name="conv")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(8, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="out")(x), name="user")


def snapshot(model, x):
    """Everything about the user's model an analysis could change."""
    return {
        "weights": [(v.path, v.dtype, np.array(v.numpy(), copy=True)) for v in model.weights],
        "layers": [(layer.name, type(layer).__name__, layer.trainable, layer.dtype_policy.name,
                    getattr(getattr(layer, "activation", None), "__name__", None),
                    len(layer._inbound_nodes), len(layer._outbound_nodes))
                   for layer in model.layers],
        "predictions": np.array(model(x, training=False), copy=True),
        "io": ([t.name for t in model.inputs], [t.name for t in model.outputs]),
        "trainable": model.trainable,
    }


def assert_untouched(before, after):
    assert len(before["weights"]) == len(after["weights"])
    for (p0, d0, w0), (p1, d1, w1) in zip(before["weights"], after["weights"]):
        assert (p0, d0) == (p1, d1) and w0.tobytes() == w1.tobytes(), p0  # bit-identical
    assert before["layers"] == after["layers"]
    assert before["predictions"].tobytes() == after["predictions"].tobytes()
    assert before["io"] == after["io"] and before["trainable"] == after["trainable"]


def _eager():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.config.functions_run_eagerly()


def global_config():
    return (keras.config.floatx(), keras.config.dtype_policy().name,
            keras.config.image_data_format(), keras.config.epsilon(),
            _eager())


def fit_step(model, x, y):
    keras.utils.set_random_seed(11)
    with _grad_enabled():  # the torch tests run with grad off (conftest)
        return model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)


def _grad_enabled():
    if keras.backend.backend() != "torch":
        import contextlib

        return contextlib.nullcontext()
    import torch

    return torch.enable_grad()


def test_the_users_model_is_untouched_by_analyses(monkeypatch, tmp_path):
    keras.utils.set_random_seed(9)
    model = user_net()
    rng = np.random.default_rng(9)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2, 3), rng.normal(size=3), rng.normal(size=3),
                    rng.uniform(0.5, 2, 3)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    x = rng.random((16, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    twin.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    config, before = global_config(), snapshot(model, x)

    analyzers = [keras_lrp.create_analyzer(name, model, **kwargs) for name, kwargs in [
        ("lrp.epsilon", {}), ("lrp.alpha_2_beta_1", {}), ("lrp.epsilon_gamma_box", {}),
        ("gradient", {}), ("lrp.z", {"rule_map": [("fc", "Flat")], "input_layer_rule": (0, 1)}),
        ("lrp.epsilon", {"neuron_selection_mode": "index"})]]
    for analyzer in analyzers[:-1]:
        analyzer.analyze(x)
        analyzer.analyze(x, layerwise=True, batch_size=5)
        list(analyzer.iter_analyze(x, batch_size=8))
    analyzers[0].conservation(x)
    analyzers[0].save(tmp_path / "a.lrp")
    keras_lrp.load_analyzer(tmp_path / "a.lrp").analyze(x)
    bad_x = x.copy()
    bad_x[0, 0, 0, 0] = np.nan
    failures = [lambda: analyzers[0].analyze(bad_x),                       # NaN input
                lambda: analyzers[0].analyze(x[..., 0]),                   # wrong shape
                lambda: analyzers[-1].analyze(x, neuron_selection=7),      # bad neuron index
                lambda: keras_lrp.create_analyzer("lrp.alpha_beta", model, alpha=1, beta=1),
                lambda: keras_lrp.create_analyzer("deep_taylor.bounded", model,
                                                  low=np.zeros(5)).analyze(x)]
    for fail in failures:
        with pytest.raises(ValueError):
            fail()
    assert global_config() == config
    assert_untouched(before, snapshot(model, x))
    # still trains, exactly like its never-analysed twin (same compile, data and seed)
    loss = fit_step(model, x, y).history["loss"][0]
    twin_loss = fit_step(twin, x, y).history["loss"][0]
    assert np.isfinite(loss) and loss == twin_loss
    for w, t in zip(model.weights, twin.weights):
        np.testing.assert_array_equal(w.numpy(), t.numpy(), err_msg=w.path)
    assert any(not np.array_equal(w, v.numpy()) for (_, _, w), v in zip(before["weights"],
                                                                        model.weights))


def test_model_with_unsupported_layer_is_untouched_by_the_failure():
    keras.utils.set_random_seed(10)
    model = unsupported_net()
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(10).random((8, 4)).astype("float32")
    config, before = global_config(), snapshot(model, x)
    with pytest.raises(ValueError, match="no relevance mapping for layer 'cube'"):
        keras_lrp.create_analyzer("lrp.epsilon", model)
    assert global_config() == config
    assert_untouched(before, snapshot(model, x))
    assert np.isfinite(fit_step(model, x, np.zeros((8, 2))).history["loss"][0])


@pytest.mark.parametrize("model_policy, global_policy", [("mixed_float16", "float32"),
                                                        ("float32", "mixed_float16"),
                                                        ("mixed_bfloat16", "float64")])
def test_global_configuration_unchanged_across_policies(model_policy, global_policy):
    keras.utils.set_random_seed(12)
    with keras_dtype(model_policy):
        model = precision_net()
    x = np.random.default_rng(12).random((3, 6, 6, 2)).astype("float32")
    before = snapshot(model, x)
    with keras_dtype(global_policy):
        config = global_config()
        for name in ("lrp.epsilon", "lrp.gamma", "gradient"):
            relevance = keras_lrp.create_analyzer(name, model).analyze(x)
            assert np.isfinite(relevance).all()
            assert global_config() == config
    assert_untouched(before, snapshot(model, x))


# ============================================================== 6. concurrency and reuse
def test_one_analyzer_shared_by_four_threads(digits):
    """4 threads call one fresh analyzer at once (the first calls race to trace it), mixing
    plain and layerwise analyses; each result equals the sequential one exactly."""
    model, _, x, _ = digits
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model)
    batches = [x[i * 20:(i + 1) * 20] for i in range(16)]
    start = threading.Barrier(4, timeout=60)

    def work(i):
        if i < 4:
            start.wait()  # the four first tasks start together, before anything is traced
        return analyzer.analyze(batches[i], layerwise=i % 3 == 0)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(work, range(16)))
    for i, got in enumerate(together):
        alone = analyzer.analyze(batches[i], layerwise=i % 3 == 0)
        if isinstance(alone, dict):
            assert list(got) == list(alone)
            for key in alone:
                np.testing.assert_array_equal(got[key], alone[key], err_msg=f"{i} {key}")
        else:
            np.testing.assert_array_equal(got, alone, err_msg=str(i))




def test_overflowing_rule_is_an_error_naming_the_layer_not_a_silent_inf():
    """If a rule's ratios blow up (as ZPlusFast can on mixed-sign inputs, seen on
    EfficientNetV2B0), analyze raises and names the layer and rule instead of returning inf."""

    class Overflow(keras_lrp.rules.Rule):
        """R_i = x_i · 1e30 · Σ_j R_j (overflows float32 for any nonzero x and R)."""

        def relevance(self, op, x, z, relevance):
            total = keras.ops.sum(relevance, axis=-1, keepdims=True)
            return x * 1e30 * 1e30 * total

    inputs = keras.Input((3,), name="x")
    h = keras.layers.Dense(4, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(h))
    analyzer = keras_lrp.create_analyzer("lrp.z", model, rule_map=[("hidden", Overflow())])
    x = np.random.default_rng(0).uniform(0.5, 1.0, (2, 3)).astype("float32")
    with pytest.raises(FloatingPointError, match=r"at layer 'hidden' \(Overflow\(\)\), passing "
                                                 r"relevance to 'x'.*Use a stabilised rule"):
        analyzer.analyze(x)

