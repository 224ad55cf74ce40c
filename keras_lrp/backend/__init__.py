"""The backend seam: the few framework primitives keras-lrp needs, one module per backend, as
Keras keeps them (``keras/src/backend/<name>/``). Everything outside this folder uses
``keras.ops`` and never imports a framework (``tests/backend/test_seam.py`` checks it).

The primitives:

* :func:`vjp` — the backward product: ``(f(x), pullback)``;
* :func:`scan` — the recurrent loop, one compiled loop whatever the length;
* :func:`after` — an ordering hint (ops wait for a tensor; bounds peak memory);
* :func:`compile_model` / :func:`compile_function` — the compiled run;
* :func:`current_strategy`, :func:`distributed`, :func:`device_strategy` — distribution;
* :func:`version` — the framework's version (recorded in results files).

Today the TensorFlow backend is implemented (:mod:`keras_lrp.backend.tensorflow`); under
another Keras backend, importing this module raises an error that says so.
"""

import keras

#: The Keras backend in use ("tensorflow", "jax", "torch", …).
NAME = keras.backend.backend()

if NAME == "tensorflow":
    from keras_lrp.backend.tensorflow import (
        after,
        compile_function,
        compile_model,
        current_strategy,
        device_strategy,
        distributed,
        scan,
        version,
        vjp,
    )
else:  # pragma: no cover - needs another backend installed
    raise ImportError(
        f"keras-lrp runs on Keras' TensorFlow backend; this Keras runs on {NAME!r} "
        "(KERAS_BACKEND). Set KERAS_BACKEND=tensorflow; JAX and PyTorch support is planned.")

__all__ = ["NAME", "after", "compile_function", "compile_model", "current_strategy",
           "device_strategy", "distributed", "scan", "version", "vjp"]
