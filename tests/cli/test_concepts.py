"""``keras-lrp concepts`` end to end on the shipped digits CNN (in-process): the HDF5 result
equals relevance_maximization's, --png draws one figure per channel, a run stopped after two
batches and resumed with --resume ends with the one-run file, bit for bit."""

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp import cli
from keras_lrp.concepts import relmax
from keras_lrp.concepts.relmax import load_relmax, relevance_maximization

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "keras_lrp" / "demos" / "models" / "digits_cnn.keras"
DATA = REPO / "keras_lrp" / "demos" / "models" / "digits_test.npz"
N, BATCH = 40, 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("concepts")
    with np.load(DATA) as d:
        np.save(folder / "x.npy", d["x"][:N])
        np.save(folder / "y.npy", d["y"][:N])
    return folder


def _args(files, out, *extra, layers=("conv3", "dense")):
    return ["concepts", str(MODEL), str(files / "x.npy")] + \
        [a for name in layers for a in ("--layer", name)] + \
        ["--top", "4", "--batch-size", str(BATCH), "--out", str(out)] + [str(e) for e in extra]


def _datasets(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
        return out


def test_concepts_matches_python_and_draws(files, tmp_path, capsys):
    out = tmp_path / "concepts.h5"
    assert cli.main(_args(files, out, "--labels", files / "y.npy", "--png",
                          tmp_path / "png", layers=("conv3",))) == 0
    assert "wrote" in capsys.readouterr().out
    model = keras.models.load_model(MODEL)
    a = keras_lrp.create_analyzer("lrp.epsilon_plus", model)
    x, y = np.load(files / "x.npy"), np.load(files / "y.npy")
    ref = relevance_maximization(a, x, ["conv3"], top=4, labels=y, batch_size=BATCH)
    got = load_relmax(out)
    assert got.rows == N and got.metadata["method_options"] == {}
    for mode in ("relevance", "activation"):
        for layer in ("conv3",):
            for k, v in ref.top[mode][layer].arrays().items():
                np.testing.assert_array_equal(got.top[mode][layer].arrays()[k], v)
    pngs = sorted((tmp_path / "png" / "conv3").glob("channel_*.png"))
    assert len(pngs) == 16
    assert pngs[0].read_bytes()[:4] == b"\x89PNG"


def test_concepts_resume_after_a_stop(files, tmp_path, monkeypatch, capsys):
    one = tmp_path / "one.h5"
    assert cli.main(_args(files, one)) == 0
    out = tmp_path / "stopped.h5"
    original, calls = relmax.RelevanceMaximization.update, []

    def update(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(relmax.RelevanceMaximization, "update", update)
    assert cli.main(_args(files, out)) == 130
    assert "rerun with --resume" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "stopped.h5.partial" / "state.npz").exists()
    monkeypatch.setattr(relmax.RelevanceMaximization, "update", original)
    resumed = []
    monkeypatch.setattr(relmax.RelevanceMaximization, "update",
                        lambda self, *a, **k: (resumed.append(self.rows), original(self, *a, **k)))
    assert cli.main(_args(files, out, "--resume")) == 0
    assert resumed == [16, 24, 32]  # batches 3 to 5 only
    a, b = _datasets(one), _datasets(out)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # other settings are refused, in one line
    monkeypatch.setattr(relmax.RelevanceMaximization, "update", update)
    calls.clear()
    assert cli.main(_args(files, out)) == 130
    assert cli.main(_args(files, out, "--resume").__add__(["--top", "5"])) == 2
    assert "metadata differs" in capsys.readouterr().err


def test_concepts_errors(files, tmp_path, capsys):
    out = tmp_path / "e.h5"
    assert cli.main(_args(files, out, layers=("nope",))) == 2
    assert "--layer nope is not a layer" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros(3))
    assert cli.main(_args(files, out, "--labels", tmp_path / "bad.npy")) == 2
    assert "integer class indices" in capsys.readouterr().err
    assert cli.main(_args(files, out, "--method", "gradient")) == 2
    assert "not an LRP analyzer" in capsys.readouterr().err


def test_concepts_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["concepts", "--help"])
    assert e.value.code == 0 and "usage: keras-lrp concepts" in capsys.readouterr().out
