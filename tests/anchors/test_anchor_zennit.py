"""keras-lrp's Zennit composites against Zennit's own numbers, on the same weights and inputs.

``tests/data/zennit/*.npz`` were made by ``tools/make_zennit_reference.py`` (PyTorch and Zennit
in their own environment; CI installs neither) on PyTorch twins of ``tests/anchor_nets.py``
with the weights and inputs of ``tests/data/innvestigate/``. Tolerance: 2e-3 of the largest
value (Zennit stabilises every denominator with 1e-6, keras-lrp with 1e-12 outside ε; both in
float32).

One documented difference is left out of the data: where several layers read the input
(``residual``, ``concat``), Zennit's first-layer rule (the ``_flat`` composites and
``lrp.epsilon_gamma_box``) takes only the first of them in module order, keras-lrp all of them.
"""
import pathlib

import anchor_nets
import keras
import numpy as np
import pytest

import keras_lrp

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "zennit"
NAMES = {"lrp.gamma.IB": ("lrp.gamma", {"bias": False})}


#: The default (fast) selection: every composite on a BatchNorm CNN and a residual network in
#: ``max_activation`` mode, every network with Zennit's EpsilonPlus, and the ``index`` mode on
#: one network; the full product runs with ``-m slow``.
FAST_STEMS = ("cnn_bn", "residual")


def _fast(stem: str, key: str, mode: str) -> bool:
    if mode == "index":
        return stem == "conv2d"
    return stem in FAST_STEMS or key == "lrp.epsilon_plus"


def _cases():
    return anchor_nets.anchor_cases(DATA, _fast)


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(stem):
        if stem not in cache:
            weights = np.load(DATA.parent / "innvestigate" / f"{stem}.npz")
            name, bias = stem.removesuffix("_nobias"), not stem.endswith("_nobias")
            model = anchor_nets.build(name, keras, bias)
            model.set_weights([weights[f"w{k}"] for k in range(len(model.get_weights()))])
            cache[stem] = (model, dict(np.load(DATA / f"{stem}.npz")))
        return cache[stem]
    return get


def test_twins_compute_the_same_logits(loaded):
    for path in sorted(DATA.glob("*.npz")):
        model, data = loaded(path.stem)
        np.testing.assert_allclose(np.asarray(model(data["x"])).reshape(len(data["x"]), -1),
                                   data["logits"], rtol=1e-5, atol=1e-5, err_msg=path.stem)


@pytest.mark.parametrize("stem, key, mode", list(_cases()))
def test_matches_zennit(loaded, stem, key, mode):
    model, data = loaded(stem)
    name, kwargs = NAMES.get(key, (key, {}))
    analyzer = keras_lrp.create_analyzer(name, model, neuron_selection_mode=mode, **kwargs)
    got = analyzer.analyze(data["x"], neuron_selection=data["index"] if mode == "index"
                           else None)
    expected = data[f"{key}|{mode}"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3 * float(np.abs(expected).max()))
