"""keras_lrp.concepts.graph: attribution graphs against zennit-crp's ``AttributionGraph`` and
against the relevance transfer matrix.

``tests/data/crp/graph.npz`` was made by ``tools/make_crp_graph_reference.py`` (zennit-crp 0.6,
Zennit 0.4.6, PyTorch) on the PyTorch twin of the shipped digits CNN under EpsilonPlusFlat:
one graph explaining an output (target) and one started at a hidden layer. The edges must be
the same (upper, lower) pairs in the same order; the weights agree to 1e-4 of the largest
(float32 on both sides; measured max |diff| 4.5e-8 on TensorFlow).
"""
import json
import os

import keras
import numpy as np
import pytest
from helpers import dense_net

import keras_lrp
from keras_lrp import concepts
from keras_lrp.concepts.graph import attribution_graph

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "crp", "graph.npz")


@pytest.fixture(scope="module")
def digits_crp():
    model = keras.models.load_model(os.path.join(ROOT, "keras_lrp", "demos", "models",
                                                 "digits_cnn.keras"))
    return concepts.Conditional(keras_lrp.create_analyzer("lrp.epsilon_plus_flat", model))


@pytest.mark.parametrize("key", ["target", "start"])
def test_matches_zennit_crp(digits_crp, key):
    data = np.load(DATA)
    layers = [str(n) for n in data["layers"]]
    _, layer, channel, y, width = json.loads(str(data["graphs"]))[key]
    graph = attribution_graph(digits_crp, data[f"{key}_x"], layer, channel, y=y, width=width,
                              layers=layers)
    got = [(layers.index(u[0]), u[1], layers.index(v[0]), v[1]) for u, v, _ in graph.edges]
    assert got == [tuple(int(i) for i in row) for row in data[f"{key}_edges"]]
    ref = data[f"{key}_weights"]
    np.testing.assert_allclose([w for _, _, w in graph.edges], ref, rtol=0,
                               atol=1e-4 * np.abs(ref).max())
    assert graph.nodes[0] == (layer, channel, 1.0)
    assert len(graph.nodes) == len({(n[0], n[1]) for n in graph.nodes})


def test_conv_edges_are_channel_sums_of_the_transfer_matrix(digits_crp):
    """On a convolution, started at conv3 with its activation a and only channel k kept:
    w(k → j) = Σ_{p, q} T_{(p, j), (q, k)} a_{q, k}, the transfer matrix summed over the
    positions of lower channel j and upper channel k (abs_norm off), and the same graph
    reuses a Conditional built with exclude_parallel=False."""
    x = np.load(DATA)["start_x"]
    crp = concepts.Conditional(digits_crp.analyzer, exclude_parallel=False)
    t = concepts.transfer_matrix(crp, x, upper="conv3", lower="conv2")  # (8·8·16, 4·4·16)
    act = crp.activation(x, "conv3")[0]  # (4, 4, 16)
    k = int(np.argmax(act.sum(axis=(0, 1))))
    masked = np.zeros_like(act)
    masked[..., k] = act[..., k]
    ref = (t @ masked.reshape(-1)).reshape(8, 8, 16).sum(axis=(0, 1))
    graph = attribution_graph(crp, x, "conv3", k, width=16, abs_norm=False)
    builds = crp.builds
    w = graph.weights()
    np.testing.assert_allclose([w[(("conv3", k), ("conv2", j))] for j in range(16)], ref,
                               rtol=0, atol=1e-5 * np.abs(ref).max())
    attribution_graph(crp, x, "conv3", (k + 1) % 16, width=2, abs_norm=False)
    assert crp.builds == builds  # one compiled program for both graphs


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(3)
    model = dense_net(in_dim=5, widths=(6, 4, 3), bias=False, name="tiny")
    x = np.random.default_rng(0).normal(size=(1, 5)).astype("float32")
    return concepts.Conditional(keras_lrp.create_analyzer("lrp.z", model)), x


def test_edges_are_transfer_matrix_entries(tiny):
    """Started at dense_1 with its activation a (only channel k kept): R_dense_0 = T (a_k e_k),
    so w(k → j) = T_{j k} a_k (abs_norm off), and divided by Σ_j |T_{j k} a_k| with it."""
    crp, x = tiny
    t10 = concepts.transfer_matrix(crp, x, upper="dense_1", lower="dense_0")
    act = crp.activation(x, "dense_1")[0]
    k = int(np.argmax(act))
    graph = attribution_graph(crp, x, "dense_1", k, width=6, abs_norm=False)
    w = graph.weights()
    assert len(w) == 6
    for j in range(6):
        np.testing.assert_allclose(w[(("dense_1", k), ("dense_0", j))], t10[j, k] * act[k],
                                   rtol=1e-5, atol=1e-6)
    # normalised: divided by the absolute sum over the lower channels
    norm = attribution_graph(crp, x, "dense_1", k, width=6).weights()
    col = t10[:, k] * act[k]
    for j in range(6):
        np.testing.assert_allclose(norm[(("dense_1", k), ("dense_0", j))],
                                   col[j] / (np.abs(col).sum() + 1e-10), rtol=1e-5, atol=1e-6)


def test_two_levels_with_an_output(tiny):
    """y explained from the output: root (dense_2, c) carries R_c = y_c; the second level's edge
    from (dense_1, m) to (dense_0, j) is T01_{j m} T12_{m c} R_c (conditioned on the root and
    on m, as zennit-crp)."""
    crp, x = tiny
    c = 1
    t21 = concepts.transfer_matrix(crp, x, upper="dense_2", lower="dense_1")
    t10 = concepts.transfer_matrix(crp, x, upper="dense_1", lower="dense_0")
    y = crp.analyzer.model.predict(x, verbose=0)[0]
    graph = attribution_graph(crp, x, "dense_2", c, y=c, width=[2, 6], abs_norm=False)
    w = graph.weights()
    top = np.argsort(-(t21[:, c] * y[c]), kind="stable")[:2]
    for m in top:
        np.testing.assert_allclose(w[(("dense_2", c), ("dense_1", int(m)))], t21[m, c] * y[c],
                                   rtol=1e-5, atol=1e-6)
        for j in range(6):
            np.testing.assert_allclose(w[(("dense_1", int(m)), ("dense_0", j))],
                                       t10[j, m] * t21[m, c] * y[c], rtol=1e-4, atol=1e-6)
    assert [n[:2] for n in graph.nodes[1:3]] == [("dense_1", int(m)) for m in top]
    # a node's relevance: its channel's share under the root condition alone
    r1 = t21[:, c] * y[c]
    r0 = t10 @ r1
    shares = {n[:2]: n[2] for n in graph.nodes}
    assert shares[("dense_2", c)] == 1.0
    for m in top:
        np.testing.assert_allclose(shares[("dense_1", int(m))], r1[m], rtol=1e-4, atol=1e-6)
    for j in range(6):
        np.testing.assert_allclose(shares[("dense_0", j)], r0[j], rtol=1e-4, atol=1e-6)


def test_errors(tiny):
    crp, x = tiny
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        attribution_graph(crp, x, "nope", 0)
    with pytest.raises(ValueError, match="channel 4 is out of range.*4 channels"):
        attribution_graph(crp, x, "dense_1", 4)
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        attribution_graph(crp, x, "dense_1", 0, depth=0)
    with pytest.raises(ValueError, match="width must be"):
        attribution_graph(crp, x, "dense_1", 0, width=[2, 0])
    with pytest.raises(ValueError, match="one sample; x has 2"):
        attribution_graph(crp, np.concatenate([x, x]), "dense_1", 0)
    with pytest.raises(ValueError, match="no concept layer below"):
        attribution_graph(crp, x, "dense_0", 0)


def test_figure(tiny, tmp_path):
    crp, x = tiny
    graph = attribution_graph(crp, x, "dense_2", 0, y=0, width=[2, 2])
    fig = graph.figure("tiny")
    assert len(fig.axes) == 2  # the graph and its colour bar
    path = str(tmp_path / "graph.png")
    graph.save(path)
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["graph.png"]  # no temp file left
