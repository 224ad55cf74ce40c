"""keras_lrp.io: HDF5 round trips, batched appends, metadata, and atomic writes."""

import os

import h5py
import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp import io as klio
from keras_lrp.io import journal, lock, metadata


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(hidden), name="tiny")


def _files(folder):
    return sorted(os.listdir(folder))


def test_weights_hash_tracks_every_weight():
    model = _model()
    first = klio.model_weights_hash(model)
    assert len(first) == 64 and first == klio.model_weights_hash(model)
    assert first == klio.model_weights_hash([w.numpy() for w in model.weights])
    kernel = model.layers[1].kernel
    kernel.assign(kernel.numpy() + np.float32(1e-3) * np.eye(4, 3, dtype="float32"))
    second = klio.model_weights_hash(model)
    assert second != first
    bias = model.layers[2].bias
    bias.assign(bias.numpy() + 1)
    assert klio.model_weights_hash(model) not in (first, second)
    # same bytes, another dtype or shape: another hash
    a = np.zeros(4, "float32")
    assert klio.model_weights_hash([a]) != klio.model_weights_hash([a.view("int32")])
    assert klio.model_weights_hash([a]) != klio.model_weights_hash([a.reshape(2, 2)])


def test_round_trip_with_metadata(tmp_path):
    model = _model()
    analyzers = [keras_lrp.create_analyzer("lrp.epsilon", model, epsilon=1e-3),
                 keras_lrp.create_analyzer("lrp.z", model)]
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    rel = {a.name: a.analyze(x) for a in analyzers}
    preds = analyzers[0].forward_model.predict_on_batch(x)
    neurons = preds.argmax(1)
    meta = klio.metadata_for(analyzers, model, {"lrp.epsilon": {"epsilon": 1e-3}})
    meta.update(extra={"nested": [1, 2.5, None, True]}, note="run 7", seed=3, flag=False,
                scale=np.float32(0.5), grid=np.arange(3))
    path = tmp_path / "run.h5"
    klio.save_relevances(path, rel, inputs=x, predictions=preds, neurons=neurons, metadata=meta)
    res = klio.load_relevances(path)
    assert list(res.relevance) == ["lrp.epsilon", "lrp.z"]  # insertion order kept
    for name in rel:
        np.testing.assert_array_equal(res.relevance[name], rel[name])
        assert res.relevance[name].dtype == rel[name].dtype
    np.testing.assert_array_equal(res.inputs, x)
    np.testing.assert_array_equal(res.predictions, preds)
    np.testing.assert_array_equal(res.neurons, neurons)
    m = res.metadata
    assert m["analyzers"] == ["lrp.epsilon", "lrp.z"]
    assert m["analyzer_kwargs"] == {"lrp.epsilon": {"epsilon": 1e-3}, "lrp.z": {}}
    assert m["analyzer_settings"]["lrp.z"]["neuron_selection_mode"] == "max_activation"
    assert m["model_name"] == "tiny"
    assert m["model_weights_sha256"] == klio.model_weights_hash(model)
    assert m["keras_lrp_version"] == keras_lrp.__version__
    assert m["backend"] == keras.backend.backend() and m["keras_version"] == keras.__version__
    assert m["backend_version"] == keras_lrp.backend.version()
    assert m["created"][:2] == "20" and m["created"].endswith("+00:00")
    assert m["extra"] == {"nested": [1, 2.5, None, True]}
    assert (m["note"], m["seed"], m["flag"], m["scale"]) == ("run 7", 3, False, 0.5)
    assert type(m["seed"]) is int and type(m["flag"]) is bool
    np.testing.assert_array_equal(m["grid"], [0, 1, 2])
    assert _files(tmp_path) == ["run.h5"]


def test_appended_batches_concatenate(tmp_path):
    rng = np.random.default_rng(1)
    batches = [(rng.normal(size=(n, 3, 2)), rng.normal(size=(n, 3, 2)), rng.normal(size=(n, 3)))
               for n in (4, 1, 3)]
    path = tmp_path / "b.h5"
    with klio.RelevanceWriter(path, {"model_name": "m"}) as out:
        for i, (x, r, p) in enumerate(batches):
            out.append_inputs(x, predictions=p, neurons=p.argmax(1))
            out.append("a", r)
            out.append("b", 2 * r, inputs=x, predictions=p)  # already written: checked only
            assert out.completed_rows() == dict.fromkeys(
                ["relevance/a", "relevance/b", "inputs", "predictions", "neurons"],
                sum(len(b[0]) for b in batches[:i + 1]))
        assert not os.path.exists(path)  # nothing at path before the clean exit
    res = klio.load_relevances(path)
    xs, rs, ps = (np.concatenate(k) for k in zip(*batches))
    np.testing.assert_array_equal(res.inputs, xs)
    np.testing.assert_array_equal(res.relevance["a"], rs)
    np.testing.assert_array_equal(res.relevance["b"], 2 * rs)
    np.testing.assert_array_equal(res.predictions, ps)
    np.testing.assert_array_equal(res.neurons, ps.argmax(1))
    with h5py.File(path, "r") as f:
        assert f["relevance/a"].maxshape == (None, 3, 2) and f["relevance/a"].chunks is not None


def test_inputs_given_with_append_are_written_once_and_checked(tmp_path):
    x1, x2 = np.ones((2, 3)), np.zeros((2, 3))
    path = tmp_path / "once.h5"
    with klio.RelevanceWriter(path) as out:
        for name in ("a", "b"):
            out.append(name, x1, inputs=x1)
        with pytest.raises(ValueError, match="differ"):
            out.append("c", x1, inputs=x2)  # rows 0..2 already hold x1
        out.append("a", x2, inputs=x2)
        with pytest.raises(ValueError, match=r"rows of shape \(3,\).*\(2, 4\)"):
            out.append("a", np.zeros((2, 4)))
        with pytest.raises(ValueError, match="inputs has 1 rows"):
            out.append("b", x2, inputs=x2[:1])
    res = klio.load_relevances(path)
    np.testing.assert_array_equal(res.inputs, np.concatenate([x1, x2]))
    assert res.relevance["b"].shape == (2, 3) and "c" not in res.relevance  # rejected whole


def test_metadata_for_labelled_triples():
    meta = klio.metadata_for([("eps 0.1", "lrp.epsilon", {"epsilon": 0.1}), "lrp.z"], _model(),
                             {"lrp.z": {"rule_map": [(keras.layers.Dense, "Epsilon")]}})
    assert meta["analyzers"] == ["eps 0.1", "lrp.z"]
    assert meta["analyzer_names"] == {"eps 0.1": "lrp.epsilon", "lrp.z": "lrp.z"}
    assert meta["analyzer_kwargs"]["eps 0.1"] == {"epsilon": 0.1}
    assert meta["analyzer_settings"] == {}
    # a class is not JSON: it is stored as its repr, the rest round-trips
    decoded = metadata.decode(metadata.encode(meta))
    assert decoded["analyzer_kwargs"]["lrp.z"]["rule_map"][0][1] == "Epsilon"
    assert "Dense" in decoded["analyzer_kwargs"]["lrp.z"]["rule_map"][0][0]
    assert decoded["analyzer_names"] == meta["analyzer_names"]


def _good_file(path):
    klio.save_relevances(path, {"old": np.arange(6.0).reshape(3, 2)}, metadata={"tag": "old"})
    return klio.load_relevances(path)


def _assert_unchanged(path, before, partial_rows=None):
    """``path`` as before, no temp file, and ``<path>.partial`` holding ``partial_rows`` rows."""
    after = klio.load_relevances(path)
    assert after.metadata == before.metadata and list(after.relevance) == ["old"]
    np.testing.assert_array_equal(after.relevance["old"], before.relevance["old"])
    name = os.path.basename(path)
    kept = [] if partial_rows is None else [name + ".partial"]
    assert _files(os.path.dirname(path)) == [name] + kept  # no temp file left
    if kept:
        assert not [n for n in _files(path + ".partial") if n.startswith(".tmp-")]
        partial = klio.load_relevances(path + ".partial")  # the work folder's whole rows
        assert partial.metadata["tag"] == "new"
        np.testing.assert_array_equal(partial.relevance.get("new", np.ones((0, 2))),
                                      np.ones((partial_rows, 2)))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_inside_with_keeps_earlier_file(tmp_path, error):
    path = str(tmp_path / "r.h5")
    before = _good_file(path)
    with pytest.raises(error):
        with klio.RelevanceWriter(path, {"tag": "new"}) as out:
            out.append("new", np.ones((2, 2)), inputs=np.ones((2, 2)))
            assert os.path.isfile(os.path.join(out.partial_path, "000001.npz"))  # on disk now
            assert out.tmp_path.endswith(f".tmp-{os.getpid()}@{lock.host()}")
            raise error("stop")
    _assert_unchanged(path, before, partial_rows=2)


@pytest.mark.parametrize("method", ["write_shard", "replace"])
def test_failure_inside_append_keeps_earlier_file(tmp_path, monkeypatch, method):
    path = str(tmp_path / "r.h5")
    before = _good_file(path)
    with pytest.raises(OSError, match="disk full"):
        with klio.RelevanceWriter(path, {"tag": "new"}) as out:
            out.append("new", np.ones((2, 2)))  # one good batch first

            def fail(*args, **kwargs):
                raise OSError("disk full")
            monkeypatch.setattr(journal if method == "write_shard" else journal.os, method, fail)
            out.append("new", np.ones((2, 2)))
    monkeypatch.undo()
    _assert_unchanged(path, before, partial_rows=2)  # the good batch, not the failed one


def test_failed_append_caught_inside_with_is_not_committed(tmp_path, monkeypatch):
    path = str(tmp_path / "r.h5")
    before = _good_file(path)
    with pytest.raises(RuntimeError, match="earlier write failed"):
        with klio.RelevanceWriter(path, {"tag": "new"}) as out:
            monkeypatch.setattr(journal, "write_shard", lambda *a, **k: (_ for _ in ()).throw(
                OSError("io")))
            try:
                out.append("new", np.ones((2, 2)))
            except OSError:
                pass  # the caller swallows it; the half-written file must still not land
            monkeypatch.undo()
    _assert_unchanged(path, before, partial_rows=0)


def test_writer_without_close_leaves_nothing(tmp_path):
    path = str(tmp_path / "r.h5")
    out = klio.RelevanceWriter(path)
    out.append("a", np.ones((1, 2)))
    out.abort()
    assert _files(tmp_path) == []
    with pytest.raises(RuntimeError, match="closed"):
        out.append("a", np.ones((1, 2)))


def test_overwrite_false_and_missing_folder(tmp_path):
    path = str(tmp_path / "r.h5")
    _good_file(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        klio.RelevanceWriter(path, overwrite=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        klio.RelevanceWriter(tmp_path / "no" / "r.h5")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No results file"):
        klio.load_relevances(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.ones(3)
    with pytest.raises(ValueError, match="not a keras-lrp results file"):
        klio.load_relevances(other)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        klio.load_relevances(text)


def test_bad_arguments(tmp_path):
    path = tmp_path / "x.h5"
    with pytest.raises(ValueError, match=r"same number of samples.*\(3,\).*\(2,\)"):
        klio.save_relevances(path, {"a": np.ones((3, 2))}, inputs=np.ones((2, 2)))
    with pytest.raises(ValueError, match="empty"):
        klio.save_relevances(path, {})
    with pytest.raises(ValueError, match="keras_lrp_format"):
        klio.save_relevances(path, {"a": np.ones((1, 1))}, metadata={"keras_lrp_format": "x"})
    with pytest.raises(ValueError, match="without '/'"):
        klio.save_relevances(path, {"a/b": np.ones((1, 1))})
    with pytest.raises(ValueError, match="multi-input"):
        klio.save_relevances(path, {"a": [np.ones((1, 1)), np.ones((1, 1))]})
    with pytest.raises(ValueError, match="unique"):
        klio.metadata_for(["a", "a"], _model())
    with pytest.raises(ValueError, match=r"not among the analyzers \['a'\]"):
        klio.metadata_for(["a"], _model(), {"b": {}})
    assert _files(tmp_path) == []
