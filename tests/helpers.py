"""Helpers shared by the test files: small models, dtype scopes, and guards that make a test fail
when work happens before a check."""
import contextlib
import re

import keras

import keras_lrp

L = keras.layers


@contextlib.contextmanager
def keras_dtype(dtype):
    """Build layers in ``dtype`` ("float64", or a mixed policy such as "mixed_float16")."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    if not dtype.startswith("mixed"):
        keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def dense_net(in_dim=4, widths=(3, 2), bias=True, name="dense_net", softmax=False):
    """Dense(relu) … Dense(widths[-1]) (linear, or softmax)."""
    x = inputs = keras.Input((in_dim,), name="x")
    for i, w in enumerate(widths):
        last = i == len(widths) - 1
        act = ("softmax" if softmax else None) if last else "relu"
        x = L.Dense(w, activation=act, use_bias=bias, name=f"dense_{i}")(x)
    return keras.Model(inputs, x, name=name)


def conv_net(shape=(5, 5, 1), convs=((2, 2, "valid"),), n_out=3, bias=True, name="conv_net"):
    """Conv2D(relu) per (filters, kernel, padding), Flatten, Dense(n_out) (linear)."""
    x = inputs = keras.Input(shape, name="x")
    for i, (filters, k, padding) in enumerate(convs):
        x = L.Conv2D(filters, k, padding=padding, activation="relu", use_bias=bias,
                     name=f"conv_{i}")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(n_out, use_bias=bias, name="head")(x), name=name)


def build(arch):
    """The Keras model of an architecture tuple (see :data:`CURATED_ARCHS`)."""
    if arch[0] == "dense":
        _, in_dim, widths, bias = arch
        return dense_net(in_dim, widths, bias)
    _, shape, convs, n_out, bias = arch
    return conv_net(shape, convs, n_out, bias)


def tanh_mlp(seed=0):
    """x (4) → Dense(5, tanh) → Dense(3), normal weights from ``seed``; (model, 3 inputs drawn
    after the weights)."""
    import numpy as np

    i = keras.Input((4,), name="x")
    model = keras.Model(i, L.Dense(3, name="out")(L.Dense(5, activation="tanh", name="h")(i)))
    g = np.random.default_rng(seed)
    model.set_weights([g.normal(size=w.shape) for w in model.get_weights()])
    return model, g.normal(size=(3, 4))


def two_input_net():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = L.Concatenate()([L.Dense(2, activation="relu")(a), L.Dense(2, activation="relu")(b)])
    return keras.Model([a, b], L.Dense(2)(h), name="two_inputs")


BACKEND = keras.backend.backend()
#: Relative precision the reference tests can ask of Keras on this backend. Keras 3 computes in
#: float64 only on TensorFlow: on JAX and PyTorch its type promotion maps float64 to float32
#: (``BIT64_TO_BIT32_DTYPE`` in keras/src/backend/common/dtypes.py: matmul, maximum, the
#: recurrent scan's carry, …), so a float64 model's own forward pass there agrees with NumPy
#: only to ~1e-7. Read it through :func:`assert_close`.
PRECISION = 1e-10 if BACKEND == "tensorflow" else 1e-5


def assert_close(actual, desired, rtol=1e-7, atol=0.0, scale=None, **kwargs):
    """``np.testing.assert_allclose`` where the bound is Keras' arithmetic on this backend: the
    tolerances as written on TensorFlow (float64 throughout); on JAX and PyTorch, where Keras
    computes float64 models in float32 (:data:`PRECISION`), at least ``PRECISION`` relative and
    ``PRECISION · scale`` absolute, ``scale`` being max |desired| unless given (give it where
    ``desired`` is a difference or an error, whose own size says nothing of the values')."""
    import numpy as np

    if BACKEND != "tensorflow":
        if scale is None:
            scale = float(np.max(np.abs(desired))) if np.size(desired) else 0.0
        rtol, atol = max(rtol, PRECISION), max(atol, PRECISION * scale)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, **kwargs)


#: Skips a test that exercises TensorFlow itself (tf.data, tf.distribute, its graph modes).
tensorflow_only = __import__("pytest").mark.skipif(
    BACKEND != "tensorflow", reason=f"uses TensorFlow itself; the Keras backend is {BACKEND}")


def autodiff(f, *xs):
    """``[∂f/∂x for x in xs]`` for a scalar ``f(*xs)`` written with ``keras.ops``, by the active
    backend's own automatic differentiation (``tf.GradientTape``, ``jax.grad``,
    ``torch.autograd.grad``): an oracle independent of keras-lrp's backend seam."""
    import numpy as np

    if BACKEND == "tensorflow":
        import tensorflow as tf

        ts = [tf.constant(x) for x in xs]
        with tf.GradientTape() as tape:
            tape.watch(ts)
            y = f(*ts)
        return [g.numpy() for g in tape.gradient(y, ts)]
    if BACKEND == "jax":
        import jax

        grads = jax.grad(f, argnums=tuple(range(len(xs))))(*[jax.numpy.asarray(x) for x in xs])
        return [np.asarray(g) for g in grads]
    import torch

    with torch.enable_grad():
        ts = [torch.tensor(np.asarray(x), requires_grad=True) for x in xs]
        return [g.detach().cpu().numpy() for g in torch.autograd.grad(f(*ts), ts)]


def plain(msg):
    """``msg`` with NumPy 2 scalar reprs (``np.float64(1.0)``) written as plain numbers.

    (Bounded's message shows ``low=np.float64(1.0)``: cosmetic, reported, not a failure.)
    """
    return re.sub(r"np\.(?:float|int)\d+\(([^)]*)\)", r"\1", msg)


def no_tf(monkeypatch, analyzer):
    """Make any run of the analyzer's compiled function fail the test."""
    def fail(*args, **kwargs):
        raise AssertionError("the check came after TensorFlow work")
    monkeypatch.setattr(analyzer, "_function", fail)


def no_build(monkeypatch, what="extract"):
    """Make graph extraction (or cloning, ``what="clone"``) fail the test."""
    def fail(*args, **kwargs):
        raise AssertionError(f"the check came after {what}")
    if what == "extract":
        monkeypatch.setattr(keras_lrp.analyzers.base.graph_mod, "extract", fail)
    else:
        monkeypatch.setattr(keras_lrp.canonizers.base, "clone_layers", fail)


def set_weights(analyzer, weights):
    """Put ``weights`` (the user's model's order) into the analyzer's cleaned clone.

    Valid for the models here (no BatchNormalization to fold, no separable convolutions): the
    clone has the same weights in the same order, and the compiled function reads them as
    variables, so nothing is rebuilt or retraced.
    """
    analyzer.forward_model.set_weights(weights)


class Cube(L.Layer):
    """An element-wise layer keras-lrp does not know."""

    def call(self, x):
        return x ** 3


def unsupported_net():
    x = inputs = keras.Input((4,), name="x")
    x = Cube(name="cube")(L.Dense(3, activation="relu", name="d0")(x))
    return keras.Model(inputs, L.Dense(2, name="d1")(x), name="unsupported")


def precision_net(hidden_dtype=None):
    """Conv(relu) → MaxPool → Dense(relu) → Dense(softmax) in float32 (Keras' advice for mixed
    precision: the softmax output in float32); the hidden layers follow the global policy."""
    x = inputs = keras.Input((6, 6, 2), name="img")
    x = L.Conv2D(3, 3, activation="relu", name="conv")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(6, activation="relu", name="fc")(x)
    return keras.Model(inputs, L.Dense(3, activation="softmax", dtype="float32", name="out")(x),
                       name="precision_net")


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=300, in_process=True):
    """``keras-lrp ARGS`` from ``cwd`` (default: the repository root), as a
    ``subprocess.CompletedProcess`` (returncode, stdout, stderr).

    In-process by default: ``keras_lrp.cli.main`` runs in this test process with its standard
    output and error captured, so the CLI tests share one TensorFlow instead of starting one per
    case (~4 s each). ``in_process=False`` runs ``python -m keras_lrp.cli`` as a real subprocess,
    for what only a process shows (its exit status, start-up noise, signals)."""
    import io
    import os
    import subprocess
    import sys

    argv = [str(a) for a in args]
    cwd = str(cwd or REPO)
    if not in_process:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
            filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        return subprocess.run([sys.executable, "-m", "keras_lrp.cli", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    from keras_lrp.cli import main

    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's usage errors and --help
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
