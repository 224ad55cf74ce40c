"""Relevance maximisation (keras_lrp.concepts.relmax) against zennit-crp 0.6's
FeatureVisualization, a float64 NumPy reference, and a stopped-and-resumed run.

tests/data/crp/relmax.npz is written by tools/make_crp_relmax_reference.py: zennit-crp's RelMax,
ActMax and Statistics (defaults: max_target="sum", abs_norm=True) over the first 64 test
digits, each explained at its label, under EpsilonPlus on the PyTorch twin of the digits CNN,
in batches of 16. Ties: zennit-crp orders equal values arbitrarily (torch.argsort), keras-lrp by
sample index. A tie is detected as reference values equal to within 1e-6 (they
are exactly equal in float32: samples where a dense unit is dead give 0); within such a group
only set membership is compared (only the value where the group runs past the reference's 40
rows). Measured: conv2 and conv3, RelMax and ActMax, all 8 × 16 indices and neurons equal;
dense ActMax all equal; dense RelMax equal up to the order within ties of 0; max |value diff|
1.2e-7.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.concepts.relmax import (
    load_relmax,
    relevance_maximization,
    top_samples,
)
from keras_lrp.concepts.topk import TopK, channel_values
from keras_lrp.demos.common import MODELS_DIR
from keras_lrp.io.lock import LockedError, OutputLock

DATA = Path(__file__).parent.parent / "data" / "crp" / "relmax.npz"
LAYERS = ["conv2", "conv3", "dense"]
TIE = 1e-6


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def analyzer():
    model = keras.models.load_model(MODELS_DIR / "digits_cnn.keras")
    return keras_lrp.create_analyzer("lrp.epsilon_plus", model)


@pytest.fixture(scope="module")
def result(analyzer, ref):
    return relevance_maximization(analyzer, ref["x"], LAYERS, top=8, labels=ref["y"],
                                  batch_size=16)


def check_against(index, value, ref_index, ref_value, atol=1e-6):
    """Our top (k, C) equals the reference's sorted (K >= k, C), up to the order within a tie
    group; returns how many entries were in a tie."""
    k, ties = index.shape[0], 0
    for c in range(index.shape[1]):
        assert len(set(index[:, c])) == k
        for i in range(k):
            group = np.abs(ref_value[:, c] - ref_value[i, c]) <= TIE
            np.testing.assert_allclose(value[i, c], ref_value[i, c], atol=atol)
            if group.sum() == 1:
                assert index[i, c] == ref_index[i, c], (i, c)
            else:
                ties += 1
                if not group[-1]:  # a group running past the reference's end is open
                    assert index[i, c] in set(ref_index[group, c]), (i, c)
    return ties


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("mode,key", [("relevance", "rel"), ("activation", "act")])
def test_matches_zennit_crp(result, ref, layer, mode, key):
    t = result.top[mode][layer]
    ri, rv = ref[f"{key}_{layer}_index"], ref[f"{key}_{layer}_value"]
    ties = check_against(t.index, t.value, ri, rv)
    no_tie = np.array([[np.sum(np.abs(rv[:, c] - rv[i, c]) <= TIE) == 1 for c in
                        range(rv.shape[1])] for i in range(8)])
    np.testing.assert_array_equal(t.neuron[no_tie], ref[f"{key}_{layer}_neuron"][:8][no_tie])
    if layer != "dense" or mode == "activation":
        assert ties == 0  # conv layers: every index equal, in order


@pytest.mark.parametrize("label", [0, 3])
@pytest.mark.parametrize("mode,key", [("relevance", "rel"), ("activation", "act")])
def test_statistics_match_zennit_crp(result, ref, label, mode, key):
    for layer in LAYERS:
        t = result.stats[mode][layer]
        ri = ref[f"stats_{key}_{layer}_{label}_index"]
        rv = ref[f"stats_{key}_{layer}_{label}_value"]
        n = min(8, len(ri))  # class 0 has 6 samples among the 64
        check_against(t.index[label][:n], t.value[label][:n], ri, rv)
        assert np.all(t.index[label][n:] == -1) and np.all(t.value[label][n:] == -np.inf)


def test_numpy_reference(analyzer, ref, result):
    """The values are zennit-crp's formula on keras-lrp's own layer relevance (float64)."""
    x, y = ref["x"], ref["y"]
    a = keras_lrp.create_analyzer("lrp.epsilon_plus", analyzer.model,
                                  neuron_selection_mode="index")
    full = a.analyze(x, neuron_selection=y, layerwise=True)
    r = full["conv3"].astype(np.float64).reshape(64, -1, 16)
    s = r.sum(1)
    s = s / (np.abs(s).sum(1, keepdims=True) + 1e-10)
    full_order = np.lexsort((np.tile(np.arange(64)[:, None], (1, 16)).T, -s.T), axis=-1).T
    order = full_order[:8]
    np.testing.assert_array_equal(result.top["relevance"]["conv3"].index, order)
    np.testing.assert_allclose(result.top["relevance"]["conv3"].value,
                               np.take_along_axis(s, order, 0), atol=1e-6)
    assert top_samples(result, "conv3", 5) == list(order[:, 5])
    assert top_samples(result, "conv3", 5, label=3) == \
        [int(i) for i in full_order[:, 5] if y[i] == 3][:8]


def test_topk_ties_by_index_any_batches():
    """Equal values rank by sample index; the top-k is the same however the rows are split."""
    rng = np.random.default_rng(0)
    value = rng.integers(0, 3, size=(50, 4)).astype(np.float64)  # many ties
    neuron = rng.integers(0, 9, size=(50, 4))
    expected = np.lexsort((np.tile(np.arange(50)[:, None], (1, 4)).T, -value.T), axis=-1).T[:5]
    for cuts in ([50], [1] * 50, [7, 13, 30], [49, 1]):
        t, s = TopK(5, 4), 0
        for n in cuts:
            t.update(np.arange(s, s + n), value[s:s + n], neuron[s:s + n])
            s += n
        np.testing.assert_array_equal(t.index, expected)
        np.testing.assert_array_equal(t.value, np.take_along_axis(value, expected, 0))
        np.testing.assert_array_equal(t.neuron, np.take_along_axis(neuron, expected, 0))
    small = TopK(5, 1)
    small.update(np.arange(3), np.array([[1.0], [2.0], [1.0]]), np.zeros((3, 1), int))
    assert small.index[:, 0].tolist() == [1, 0, 2, -1, -1]
    with pytest.raises(FloatingPointError, match="Sample 1, channel 0"):
        small.update(np.arange(2), np.array([[1.0], [np.nan]]), np.zeros((2, 1), int))


def test_channel_values_hand():
    v = np.array([[[1.0, -2.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])  # (2, 2 positions, 2)
    value, neuron = channel_values(v, abs_norm=False)
    np.testing.assert_array_equal(value, [[4.0, -2.0], [0.0, 0.0]])
    np.testing.assert_array_equal(neuron, [[1, 1], [0, 0]])
    value, _ = channel_values(v)
    np.testing.assert_allclose(value, [[4 / 6, -2 / 6], [0, 0]])
    value, _ = channel_values(v, max_target="max", abs_norm=False)
    np.testing.assert_array_equal(value, [[3.0, 0.0], [0.0, 0.0]])


def test_resume_equals_one_run(analyzer, ref, tmp_path):
    """A generator that fails after 2 of 4 batches, then a resumed run: bit for bit the result
    of one run, and the same as the array run."""
    x, y = ref["x"], ref["y"]

    def batches(fail_at=None):
        for b in range(4):
            if b == fail_at:
                raise RuntimeError("stopped")
            yield x[16 * b:16 * b + 16], y[16 * b:16 * b + 16]

    out = tmp_path / "relmax.h5"
    seen = []
    with pytest.raises(RuntimeError, match="stopped"):
        relevance_maximization(analyzer, batches(2), ["conv3"], top=4, out=out,
                               on_batch=seen.append)
    assert seen == [16, 32] and not out.exists()
    assert (tmp_path / "relmax.h5.partial" / "state.npz").exists()
    done = []
    res = relevance_maximization(analyzer, batches(), ["conv3"], top=4, out=out, resume=True,
                                 on_batch=done.append)
    assert done == [48, 64] and out.exists()
    assert not (tmp_path / "relmax.h5.partial").exists()
    one = relevance_maximization(analyzer, batches(), ["conv3"], top=4)
    loaded = load_relmax(out)
    for table in ("top", "stats"):
        for mode in ("relevance", "activation"):
            for r in (res, loaded):
                for k, v in getattr(one, table)[mode]["conv3"].arrays().items():
                    np.testing.assert_array_equal(getattr(r, table)[mode]["conv3"].arrays()[k],
                                                  v)
    assert loaded.rows == 64 and loaded.metadata["layers"] == ["conv3"]
    # another setting is refused, naming it; fewer inputs than the state's rows too
    with pytest.raises(RuntimeError):
        relevance_maximization(analyzer, batches(1), ["conv3"], top=4, out=out)
    with pytest.raises(ValueError, match="top"):
        relevance_maximization(analyzer, batches(), ["conv3"], top=5, out=out, resume=True)
    with pytest.raises(ValueError, match="saved state has 16 rows, the inputs only 8"):
        relevance_maximization(analyzer, iter([(x[:8], y[:8])]), ["conv3"], top=4, out=out,
                               resume=True)
    with OutputLock(str(out)), pytest.raises(LockedError):  # one run per out
        relevance_maximization(analyzer, batches(), ["conv3"], top=4, out=out, resume=True)


def test_errors(analyzer, ref):
    with pytest.raises(ValueError, match="nope"):
        relevance_maximization(analyzer, ref["x"][:4], ["nope"])
    with pytest.raises(ValueError, match="ints in \\[0, 10\\)"):
        relevance_maximization(analyzer, ref["x"][:4], ["conv3"], labels=[0, 1, 2, 10])
    with pytest.raises(ValueError, match="top must be"):
        relevance_maximization(analyzer, ref["x"][:4], ["conv3"], top=0)
    with pytest.raises(ValueError, match="no samples"):
        relevance_maximization(analyzer, iter([]), ["conv3"])
