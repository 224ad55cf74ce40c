"""The backend seam: no module outside keras_lrp/backend/ imports a framework (TensorFlow, JAX,
PyTorch) or calls one directly; and the seam's primitives compute what they promise, checked
against NumPy in float64."""

import ast
import pathlib

import numpy as np
import pytest
from helpers import assert_close
from keras import ops

from keras_lrp import backend

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "keras_lrp"
FRAMEWORKS = ("tensorflow", "jax", "jaxlib", "torch")


def _framework_uses(path):
    """(line, what) for every framework import, and every ``tf.``/``jax.``/``torch.`` name."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] in FRAMEWORKS]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in FRAMEWORKS:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in ("tf", "jax", "jnp", "torch"):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def test_no_framework_outside_the_backend_folder():
    offenders = {str(p.relative_to(PACKAGE)): _framework_uses(p)
                 for p in sorted(PACKAGE.rglob("*.py")) if "backend" not in p.parts}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"framework calls outside keras_lrp/backend/: {offenders}"


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The check above can fail: it sees imports, from-imports and attribute calls."""
    bad = tmp_path / "bad.py"
    bad.write_text("import tensorflow as tf\nfrom jax import numpy\nx = tf.zeros(3)\n")
    assert _framework_uses(bad) == [(1, "tensorflow"), (2, "jax"), (3, "tf.zeros")]


def test_vjp_is_the_transposed_jacobian(float64):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3))
    x, b = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    c = rng.standard_normal((2, 3))
    out, pullback = backend.vjp(lambda u, v: ops.matmul(u * v, w), x, b)
    assert_close(np.asarray(out), (x * b) @ w, rtol=1e-12)
    gx, gb = pullback(ops.convert_to_tensor(c))
    assert_close(np.asarray(gx), (c @ w.T) * b, rtol=1e-12)
    assert_close(np.asarray(gb), (c @ w.T) * x, rtol=1e-12)


def test_vjp_copies_a_tensor_passed_twice(float64):
    """u·v with u = v = x: each argument gets the derivative through itself only (v and u)."""
    x = np.array([[1.0, -2.0, 3.0]])
    _, pullback = backend.vjp(lambda u, v: u * v, x, x)
    gu, gv = pullback(ops.ones((1, 3), dtype="float64"))
    np.testing.assert_array_equal(np.asarray(gu), x)
    np.testing.assert_array_equal(np.asarray(gv), x)


def test_vjp_says_none_where_there_is_no_path(float64):
    _, pullback = backend.vjp(lambda u, v: u * 2.0, np.ones(3), np.ones(3))
    gu, gv = pullback(ops.ones(3, dtype="float64"))
    np.testing.assert_array_equal(np.asarray(gu), [2.0, 2.0, 2.0])
    assert gv is None


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_stacks_every_accumulator(float64, reverse):
    xs = np.arange(1.0, 6.0)
    out = np.asarray(backend.scan(lambda acc, x: acc * 0.5 + x, ops.convert_to_tensor(xs),
                                  ops.convert_to_tensor(0.0, dtype="float64"), reverse=reverse))
    expected, acc = [], 0.0
    for x in (xs[::-1] if reverse else xs):
        acc = acc * 0.5 + x
        expected.append(acc)
    np.testing.assert_allclose(out, expected[::-1] if reverse else expected, rtol=1e-15)


def test_vjp_says_none_through_stop_gradient_and_for_integers(float64):
    """A path that only runs through stop_gradient carries no derivative, and integer primals
    (token ids) have none: both ``None``, on every backend (JAX reads it off the jaxpr)."""
    x, ids = np.array([1.0, 2.0]), np.array([3, 4], dtype="int32")
    _, pullback = backend.vjp(lambda u, v, k: ops.stop_gradient(u) * v + ops.cast(k, "float64"),
                              x, x * 3.0, ids)
    gu, gv, gk = pullback(ops.ones(2, dtype="float64"))
    assert gu is None and gk is None
    np.testing.assert_array_equal(backend.to_numpy(gv), x)


def test_to_numpy_of_a_backend_tensor():
    t = ops.convert_to_tensor(np.arange(3.0))
    out = backend.to_numpy(t * 2.0)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 2.0, 4.0])


@pytest.mark.skipif(backend.NAME != "torch", reason="PyTorch's one-device rule")
def test_torch_refuses_a_distribution_in_one_line(monkeypatch):
    """Keras has no distribution for PyTorch (DataParallel() itself fails there); should one be
    set anyway, the analyzer says to use JAX instead of running on one device silently."""
    import keras

    monkeypatch.setattr(keras.distribution, "distribution", lambda: "a distribution")
    with pytest.raises(RuntimeError, match="runs on one device.*KERAS_BACKEND=jax"):
        backend.current_strategy()
