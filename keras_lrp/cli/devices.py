"""``--devices``: the tf.distribute strategy the command line analyzes with.

``all`` is every GPU (one CPU when there is none); ``N`` is the first N GPUs, or, on a machine
without GPUs, N logical CPU devices (which share the CPU's cores: useful to check a distributed
set-up, rarely faster). For several machines, see README "Dataset scale": create the analyzer
inside a ``MultiWorkerMirroredStrategy``'s scope in Python.
"""

from __future__ import annotations

import contextlib


class DeviceError(ValueError):
    """A ``--devices`` value that cannot be honoured."""


def strategy_for(devices: str):
    """A ``MirroredStrategy`` over the devices ``devices`` ("all" or a count) names."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if devices == "all":
        names = [f"/gpu:{i}" for i in range(len(gpus))] or ["/cpu:0"]
    else:
        try:
            n = int(devices)
        except ValueError:
            raise DeviceError(f"--devices must be 'all' or a number >= 1, got {devices!r}.") \
                from None
        if n < 1:
            raise DeviceError(f"--devices must be 'all' or a number >= 1, got {devices!r}.")
        if gpus:
            if n > len(gpus):
                raise DeviceError(f"--devices {n}: this machine has {len(gpus)} GPU(s).")
            names = [f"/gpu:{i}" for i in range(n)]
        else:
            if n > 1:
                cpu = tf.config.list_physical_devices("CPU")[0]
                try:
                    tf.config.set_logical_device_configuration(
                        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
                except RuntimeError:
                    raise DeviceError("--devices: TensorFlow's devices were already set up in "
                                      "this process; pass --devices on a fresh start.") from None
            names = [f"/cpu:{i}" for i in range(n)]
    return tf.distribute.MirroredStrategy(names)


def scope_for(devices):
    """The strategy's scope, or a no-op context when ``devices`` is ``None``."""
    return strategy_for(devices).scope() if devices else contextlib.nullcontext()


__all__ = ["DeviceError", "scope_for", "strategy_for"]
