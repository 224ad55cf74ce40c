"""Shared fixtures: quiet TensorFlow, and Keras global state restored after every test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


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
