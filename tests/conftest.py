"""Shared test set-up: the import path, quiet TensorFlow, the float64 fixture, and Keras global
state restored after every test.

The tests import the package (installed, or this checkout) and the NumPy oracle
``tests/reference.py`` as ``import reference``; this file is the one place that arranges it.
"""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
for path in (ROOT, TESTS):  # the checkout first: its keras_lrp and tests/reference.py
    if path not in sys.path:
        sys.path.insert(0, path)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# JAX computes in float32 unless told otherwise: the float64 reference tests need it on
os.environ.setdefault("JAX_ENABLE_X64", "1")
# XLA compiles each analysis once per shape (~1 s on the CPU); many tests build the same
# architecture with other random weights, which are arguments of the program, not constants, so
# a persistent cache of compiled programs serves them (and both xdist workers).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    __import__("tempfile").gettempdir(), "keras-lrp-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import keras  # noqa: E402
import pytest  # noqa: E402
from helpers import BACKEND  # noqa: E402

if BACKEND == "torch":
    # The tests read Keras outputs with np.asarray, which PyTorch refuses on a tensor that
    # requires grad (every output of a model with trainable weights). keras-lrp's own results
    # never need this (backend.to_numpy); helpers.autodiff and the seam's vjp enable grad.
    import torch

    torch.set_grad_enabled(False)


@pytest.fixture(autouse=True)
def _restore_keras_state():
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def float64():
    """Build models in float64 (Keras 3 needs both the floatx and the dtype policy set)."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield


@pytest.fixture(scope="module")
def small():
    """A Dense model (input 'x' of 4 features, 3 classes) and an analyzer for it."""
    from helpers import dense_net

    import keras_lrp

    keras.utils.set_random_seed(1)
    model = dense_net(4, (5, 3), name="small")
    return model, keras_lrp.create_analyzer("lrp.epsilon", model)


@pytest.fixture(scope="module")
def digits():
    """The shipped digits CNN, an analyzer for it, the 360 test digits and their labels."""
    import numpy as np

    import keras_lrp

    model = keras.models.load_model(os.path.join(ROOT, "keras_lrp", "demos", "models",
                                                 "digits_cnn.keras"))
    data = np.load(os.path.join(ROOT, "keras_lrp", "demos", "models", "digits_test.npz"))
    return model, keras_lrp.create_analyzer("lrp.alpha_2_beta_1", model), data["x"], data["y"]


def pytest_collection_modifyitems(config, items):
    """``heavy`` cases (the whole keras.applications product, hours on two cores) are part of
    ``-m slow`` but skipped unless KERAS_LRP_HEAVY=1, so CI's slow run stays within its time."""
    if os.environ.get("KERAS_LRP_HEAVY") == "1":
        return
    skip = pytest.mark.skip(reason="heavy: the whole zoo product; set KERAS_LRP_HEAVY=1 to run")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)
