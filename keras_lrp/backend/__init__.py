"""The backend seam: the few framework primitives keras-lrp needs, one module per backend, as
Keras keeps them (``keras/src/backend/<name>/``). Everything outside this folder uses
``keras.ops`` and never imports a framework (``tests/backend/test_seam.py`` checks it).

The primitives:

* :func:`vjp` — the backward product: ``(f(x), pullback)``;
* :func:`scan` — the recurrent loop, one compiled loop whatever the length;
* :func:`after` — an ordering hint (ops wait for a tensor; bounds peak memory);
* :func:`compile_model` / :func:`compile_function` — the compiled run;
* :func:`check_build` — the build-time shape check (a TensorFlow trace, ``jax.eval_shape``, a
  one-sample call on PyTorch);
* :func:`current_strategy`, :func:`num_replicas`, :func:`distributed`,
  :func:`device_strategy` — distribution (``tf.distribute``; ``keras.distribution`` on JAX;
  none on PyTorch);
* :func:`to_numpy` — a result as a NumPy array;
* :func:`start` — start the framework's runtime (the CLI hides its start-up lines);
* :func:`version` — the framework's version (recorded in results files);
* :func:`foreign_functions` — the framework functions a layer's call may use directly, each
  with a reader into :mod:`~keras_lrp.backend.forms` (traced with ``keras.ops``).

The module is chosen by the Keras backend: :mod:`~keras_lrp.backend.tensorflow`,
:mod:`~keras_lrp.backend.jax` or :mod:`~keras_lrp.backend.torch`. Only the chosen one is
imported, so JAX and PyTorch need no TensorFlow.
"""

import importlib

import keras
import numpy as np

#: The Keras backend in use ("tensorflow", "jax" or "torch"), chosen by Keras itself
#: (``KERAS_BACKEND``, or ``~/.keras/keras.json``).
NAME = keras.backend.backend()
#: The backends keras-lrp runs on.
SUPPORTED = ("tensorflow", "jax", "torch")

if NAME not in SUPPORTED:  # pragma: no cover - needs another backend installed
    raise ImportError(
        f"keras-lrp runs on Keras' TensorFlow, JAX and PyTorch backends; this Keras runs on "
        f"{NAME!r} (KERAS_BACKEND). Set KERAS_BACKEND to one of {', '.join(SUPPORTED)}.")

_impl = importlib.import_module(f"keras_lrp.backend.{NAME}")
after = _impl.after
check_build = _impl.check_build
compile_function = _impl.compile_function
compile_model = _impl.compile_model
current_strategy = _impl.current_strategy
device_strategy = _impl.device_strategy
distributed = _impl.distributed
foreign_functions = _impl.foreign_functions
num_replicas = _impl.num_replicas
scan = _impl.scan
start = _impl.start
version = _impl.version
vjp = _impl.vjp


def to_numpy(x) -> np.ndarray:
    """A result as a NumPy array, on every backend (a torch tensor that requires grad or lives
    on a GPU, a JAX array on any device): ``keras.ops.convert_to_numpy``."""
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(keras.ops.convert_to_numpy(x))


__all__ = ["NAME", "SUPPORTED", "after", "check_build", "compile_function", "compile_model",
           "current_strategy", "device_strategy", "distributed", "foreign_functions",
           "num_replicas", "scan", "start", "to_numpy", "version", "vjp"]
