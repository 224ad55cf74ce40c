"""``--devices``: the distribution the command line analyzes with, on the Keras backend in use.

TensorFlow: ``all`` is every GPU (one CPU when there is none); ``N`` is the first N GPUs, or, on
a machine without GPUs, N logical CPU devices (which share the CPU's cores: useful to check a
distributed set-up, rarely faster). For several machines, see README "Dataset scale": create
the analyzer inside a ``MultiWorkerMirroredStrategy``'s scope in Python. JAX: ``all`` or the
first ``N`` local devices, with ``keras.distribution.DataParallel``. PyTorch: one device.
"""

from __future__ import annotations

import contextlib


class DeviceError(ValueError):
    """A ``--devices`` value that cannot be honoured."""


def device_count(devices: str):
    """``--devices`` read once for every backend: ``None`` for ``all``, else a count >= 1."""
    if devices == "all":
        return None
    try:
        n = int(devices)
    except ValueError:
        raise DeviceError(f"--devices must be 'all' or a number >= 1, got {devices!r}.") from None
    if n < 1:
        raise DeviceError(f"--devices must be 'all' or a number >= 1, got {devices!r}.")
    return n


def strategy_for(devices: str):
    """The backend's distribution over the devices ``devices`` ("all" or a count) names (see
    :func:`keras_lrp.backend.device_strategy`): an object with a ``scope()``."""
    count = device_count(devices)
    from keras_lrp import backend

    return backend.device_strategy(count, DeviceError)


def scope_for(devices):
    """The strategy's scope, or a no-op context when ``devices`` is ``None``."""
    return strategy_for(devices).scope() if devices else contextlib.nullcontext()


__all__ = ["DeviceError", "device_count", "scope_for", "strategy_for"]
