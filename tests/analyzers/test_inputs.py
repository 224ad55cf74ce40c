"""Input checks and batching (``keras_lrp/analyzers/inputs.py`` and ``Analyzer.iter_analyze``).

1. **Clear errors** before any TensorFlow work: every message names the problem *and* the
   remedy. "Before any heavy work" is checked, not assumed: the analyzer's compiled function is
   replaced by one that fails the test.
2. **Large inputs**: ``batch_size``, ``tf.data.Dataset``, generators and ``iter_analyze`` agree
   with one-shot analysis.
"""

import numpy as np
import pytest
from helpers import no_tf, two_input_net

import keras_lrp

try:
    import tensorflow as tf  # tf.data: the JAX and PyTorch environments have no TensorFlow
except ImportError:
    tf = None
needs_tf_data = pytest.mark.skipif(tf is None, reason="tf.data needs TensorFlow")


@pytest.mark.parametrize("bad, problem, remedy", [
    (np.ones((3, 4, 1), "float32"), "got shape (3, 4, 1)", "shape ('batch', 4)"),
    (np.ones((3, 5), "float32"), "got shape (3, 5)", "shape ('batch', 4)"),
    (np.ones(4, "float32"), "got shape (4,)", "shape ('batch', 4)"),  # no batch axis
    (np.array([["a", "b", "c", "d"]]), "dtype <U1", "np.asarray(x, dtype='float32')"),
    (np.array([[1.0, None, 2.0, 3.0]], dtype=object), "dtype object", "Convert it"),
    (np.ones((2, 4), "complex64"), "dtype complex64", "Convert it"),
])
def test_wrong_input_rank_shape_dtype(small, monkeypatch, bad, problem, remedy):
    _, analyzer = small
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError) as err:
        analyzer.analyze(bad)
    msg = str(err.value)
    assert "Input 'x'" in msg and problem in msg and remedy in msg, msg


def test_integer_and_bool_inputs_are_converted(small):
    _, analyzer = small
    ints = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    np.testing.assert_array_equal(analyzer.analyze(ints), analyzer.analyze(ints.astype("f4")))
    flags = ints > 1
    np.testing.assert_array_equal(analyzer.analyze(flags), analyzer.analyze(flags.astype("f4")))


def test_nested_list_for_single_input_model(small):
    _, analyzer = small
    rows = [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]
    try:
        result = analyzer.analyze(rows)
    except ValueError as err:  # acceptable if it says what to do with the list
        assert "np.asarray" in str(err) and "inputs;" not in str(err), str(err)
    else:
        np.testing.assert_array_equal(result, analyzer.analyze(np.asarray(rows, "float32")))


@pytest.mark.parametrize("given", ["one", "three", "bare array"])
def test_list_of_wrong_length_for_two_input_model(monkeypatch, given):
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    no_tf(monkeypatch, analyzer)
    a, b = np.ones((2, 3), "float32"), np.ones((2, 2), "float32")
    x = {"one": [a], "three": [a, b, b], "bare array": a}[given]
    with pytest.raises(ValueError) as err:
        analyzer.analyze(x)
    msg = str(err.value)
    assert "has 2 inputs (a, b)" in msg and "Pass a list with one array per input" in msg, msg


def test_different_batch_sizes_for_two_input_model(monkeypatch):
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError, match=r"different batch sizes \[2, 3\]; give every input "
                                         "the same number of samples"):
        analyzer.analyze([np.ones((2, 3)), np.ones((3, 2))])


def test_nan_and_inf_rejected_with_counts_and_first_index(small, monkeypatch):
    model, analyzer = small
    x = np.random.default_rng(0).random((4, 4)).astype("float32")
    x[1, 2] = np.nan
    x[2, 0] = np.inf
    x[3, 3] = -np.inf
    with monkeypatch.context() as patch:
        no_tf(patch, analyzer)
        with pytest.raises(ValueError) as err:
            analyzer.analyze(x)
    msg = str(err.value)
    assert "1 NaN and 2 infinite values" in msg and "first at index (1, 2)" in msg, msg
    assert "clean the data, or pass allow_nonfinite=True" in msg, msg
    # allow_nonfinite=True analyses; the finite sample is unaffected by its batch mates
    out = analyzer.analyze(x, allow_nonfinite=True)
    assert out.shape == x.shape
    np.testing.assert_allclose(out[:1], analyzer.analyze(x[:1]), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="allow_nonfinite"):  # streams are checked per batch
        analyzer.analyze(iter([x[:1], x[1:]]))


@pytest.mark.parametrize("selection, problem, remedy", [
    (3, "got [3, 3]", "integer indices in [0, 3)"),
    (-1, "got [-1, -1]", "integer indices in [0, 3)"),
    ([0, 1, 2], "has 3 entries for a batch of 2", "one int or one index per sample"),
    (1.0, "got [1.0, 1.0]", "integer indices in [0, 3)"),
    (None, "needs analyze(x, neuron_selection=i)", "an int or one index per sample"),
])
def test_neuron_selection_out_of_range_or_wrong_length(small, monkeypatch, selection, problem,
                                                       remedy):
    model, _ = small
    analyzer = keras_lrp.create_analyzer("lrp.z", model, neuron_selection_mode="index")
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError) as err:
        analyzer.analyze(np.ones((2, 4), "float32"), neuron_selection=selection)
    msg = str(err.value)
    assert problem in msg and remedy in msg, msg


def test_neuron_selection_without_index_mode(small, monkeypatch):
    _, analyzer = small
    no_tf(monkeypatch, analyzer)
    with pytest.raises(ValueError, match="only used with neuron_selection_mode='index'"):
        analyzer.analyze(np.ones((2, 4)), neuron_selection=0)




def test_batch_size_zero_or_negative(small, monkeypatch):
    _, analyzer = small
    no_tf(monkeypatch, analyzer)
    for bad in (0, -5):
        with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {bad}"):
            analyzer.analyze(np.ones((3, 4)), batch_size=bad)


@pytest.mark.parametrize("bad", [2.5, "100"])
def test_batch_size_of_wrong_type_is_rejected_whatever_the_data_size(small, bad):
    _, analyzer = small
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        analyzer.analyze(np.ones((2, 4), "float32"), batch_size=bad)




def assert_same(a, b):
    """Batching changes nothing but the batch dimension of the same ops: equal to 1e-6 of the
    largest value (exact equality is not promised: oneDNN may block a batch differently)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * float(np.abs(b).max()))


def test_batch_size_equals_one_shot(digits):
    _, analyzer, x, _ = digits
    one_shot = analyzer.analyze(x)
    for batch_size in (1, 7, 100, 360, 1000):
        assert_same(analyzer.analyze(x[:50] if batch_size == 1 else x, batch_size=batch_size),
                    one_shot[:50] if batch_size == 1 else one_shot)


def test_datasets_and_generators_equal_arrays(digits):
    _, analyzer, x, y = digits
    one_shot = analyzer.analyze(x)

    def gen(with_labels):
        for i in range(0, len(x), 64):
            yield (x[i:i + 64], y[i:i + 64]) if with_labels else x[i:i + 64]

    sources = {
        "generator": gen(False),
        "generator (x, y)": gen(True),
        "iterator of lists": iter([x[:200], x[200:]]),
    }
    if tf is not None:
        sources |= {
            "dataset": tf.data.Dataset.from_tensor_slices(x).batch(50),
            "dataset (x, y)": tf.data.Dataset.from_tensor_slices((x, y)).batch(50),
            "dataset (x, y, w)": tf.data.Dataset.from_tensor_slices((x, y, y * 0.5)).batch(50),
        }
    for label, source in sources.items():
        out = analyzer.analyze(source)
        assert out.shape == x.shape, label
        assert_same(out, one_shot)
    # batch_size splits the stream's batches further
    assert_same(analyzer.analyze(iter([x[:100], x[100:]]), batch_size=30), one_shot)


def test_iter_analyze_yields_batches_in_order_and_lazily(digits):
    _, analyzer, x, _ = digits
    one_shot = analyzer.analyze(x)
    parts = list(analyzer.iter_analyze(x, batch_size=100))
    assert [len(inputs) for inputs, _ in parts] == [100, 100, 100, 60]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in parts]), x)
    assert_same(np.concatenate([r for _, r in parts]), one_shot)

    pulled = []

    def source():
        for i in range(0, len(x), 40):
            pulled.append(i)
            yield x[i:i + 40]

    stream = analyzer.iter_analyze(source())
    first_inputs, first = next(stream)
    assert pulled == [0], "iter_analyze read ahead of what was asked"
    np.testing.assert_array_equal(first_inputs, x[:40])
    rest = list(stream)
    assert len(rest) == 8 and pulled == list(range(0, 360, 40))
    assert_same(np.concatenate([first] + [r for _, r in rest]), one_shot)


def test_iter_analyze_skip_starts_at_that_row(digits):
    """A resumed writer's ``resumed_rows`` go to ``skip``: arrays and streams start there, and
    per-sample neuron indices still count from row 0."""
    model, analyzer, x, y = digits
    one_shot = analyzer.analyze(x)
    parts = list(analyzer.iter_analyze(x, batch_size=100, skip=130))
    assert [len(inputs) for inputs, _ in parts] == [100, 100, 30]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in parts]), x[130:])
    assert_same(np.concatenate([r for _, r in parts]), one_shot[130:])
    batches = (x[i:i + 40] for i in range(0, len(x), 40))
    parts = list(analyzer.iter_analyze(batches, skip=90))
    assert [len(inputs) for inputs, _ in parts] == [30] + [40] * 6
    assert_same(np.concatenate([r for _, r in parts]), one_shot[90:])
    assert list(analyzer.iter_analyze(x, skip=len(x))) == []
    indexed = keras_lrp.create_analyzer("lrp.epsilon", model, neuron_selection_mode="index")
    rest = np.concatenate([r for _, r in indexed.iter_analyze(x, y, batch_size=64, skip=200)])
    assert_same(rest, indexed.analyze(x, neuron_selection=y)[200:])
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="skip must be a row count >= 0"):
            next(analyzer.iter_analyze(x, skip=bad))


def test_per_sample_neuron_selection_and_layerwise_with_batch_size(digits):
    model, _, x, y = digits
    analyzer = keras_lrp.create_analyzer("lrp.epsilon", model, neuron_selection_mode="index")
    assert_same(analyzer.analyze(x, neuron_selection=y, batch_size=64),
                analyzer.analyze(x, neuron_selection=y))
    whole = analyzer.analyze(x[:100], neuron_selection=3, layerwise=True)
    batched = analyzer.analyze(x[:100], neuron_selection=3, layerwise=True, batch_size=32)
    assert list(whole) == list(batched) == analyzer.layer_names
    for key in whole:
        assert_same(batched[key], whole[key])
    with pytest.raises(ValueError, match="neuron_selection must be one int"):
        analyzer.analyze(iter([x[:10], x[10:20]]), neuron_selection=y)


def _two_inputs(n=30):
    rng = np.random.default_rng(8)
    return rng.random((n, 3)).astype("float32"), rng.random((n, 2)).astype("float32")


def test_two_input_model_streams():
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    a, b = _two_inputs()
    whole = analyzer.analyze([a, b])
    for out in (analyzer.analyze([a, b], batch_size=4),
                analyzer.analyze((a, b)),
                analyzer.analyze([a[i:i + 8], b[i:i + 8]] for i in range(0, 30, 8)),
                analyzer.analyze(([a[i:i + 8], b[i:i + 8]], np.zeros(8)) for i in range(0, 30, 8))):
        assert isinstance(out, list) and len(out) == 2
        assert_same(out[0], whole[0])
        assert_same(out[1], whole[1])


@pytest.mark.parametrize("source", [pytest.param("dataset", marks=needs_tf_data), "generator"])
def test_two_input_model_from_tuple_batches(source):
    analyzer = keras_lrp.create_analyzer("lrp.z", two_input_net())
    a, b = _two_inputs()
    whole = analyzer.analyze([a, b])
    data = (tf.data.Dataset.from_tensor_slices(((a, b), np.zeros(30))).batch(7)
            if source == "dataset" else
            (((a[i:i + 8], b[i:i + 8]), np.zeros(8)) for i in range(0, 30, 8)))
    out = analyzer.analyze(data)
    assert_same(out[0], whole[0])
    assert_same(out[1], whole[1])


@pytest.mark.parametrize("empty", ["generator", pytest.param("dataset", marks=needs_tf_data),
                                   "list iterator"])
def test_empty_stream_is_a_clear_error(digits, empty):
    _, analyzer, x, _ = digits
    source = {"generator": (b for b in []),
              "dataset": lambda: tf.data.Dataset.from_tensor_slices(x).take(0).batch(10),
              "list iterator": iter([])}[empty]
    source = source() if callable(source) else source
    with pytest.raises(ValueError, match="analyze got no samples: the dataset or generator was "
                                         "empty"):
        analyzer.analyze(source)


