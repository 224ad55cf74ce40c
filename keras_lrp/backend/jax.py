"""The JAX implementation of the backend seam (see :mod:`keras_lrp.backend`).

* the backward product is ``jax.vjp``; which primals the output depends on is read off the
  function's jaxpr, so an input with no path to the output gets ``None`` (as TensorFlow's tape
  says), never a silent zero;
* the compiled run is one ``jax.jit`` of the model's call inside a ``keras.StatelessScope``,
  with every variable's value passed as an argument (the weights are not baked into the
  compiled program as constants) and the state a call updates (the seed of SmoothGrad's noise)
  returned and written back, so each call draws new noise;
* distribution is ``keras.distribution.DataParallel``: each batch is padded to a multiple of
  the devices, sharded along its first axis, and the result sliced back in input order;
* a layer's call that resizes with ``jax.image`` is read as an interpolation
  (:func:`foreign_functions`).
"""

from __future__ import annotations

import contextlib
from typing import Callable, List, Optional, Sequence

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops

from keras_lrp.backend import forms

NAME = "jax"


def start() -> None:
    """Find the devices now (JAX says which platforms it lacks when it first looks)."""
    jax.devices()


def version() -> str:
    return str(jax.__version__)


# -- the backward product --------------------------------------------------------------------
def _is_literal(v) -> bool:
    return type(v).__name__ == "Literal"


#: Primitives whose output carries no derivative of their input.
_NO_DERIVATIVE = {"stop_gradient"}


def _reached(jaxpr) -> set:
    """Indices of ``jaxpr``'s inputs on which some output depends. Nested calls (jit, scan,
    custom rules) count as depending on all their inputs: conservative, never a false None."""
    deps = {v: {i} for i, v in enumerate(jaxpr.invars)}
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in _NO_DERIVATIVE:
            s = set()
        else:
            s = set()
            for v in eqn.invars:
                if not _is_literal(v):
                    s |= deps.get(v, set())
        for v in eqn.outvars:
            deps[v] = s
    out = set()
    for v in jaxpr.outvars:
        if not _is_literal(v):
            out |= deps.get(v, set())
    return out


def _differentiable(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.inexact)


def vjp(fn: Callable, *primals):
    """``(y, pullback)`` with ``y = fn(*primals)``: ``pullback(cotangent)`` is the list of the
    derivatives ∂⟨y, cotangent⟩/∂x_i, ``None`` where ``y`` does not depend on x_i (or x_i holds
    integers or booleans)."""
    xs = [jnp.asarray(ops.convert_to_tensor(x)) for x in primals]
    live = [i for i, x in enumerate(xs) if _differentiable(x)]

    def f(*floats):
        full = list(xs)
        for i, v in zip(live, floats):
            full[i] = v
        return fn(*full)

    floats = [xs[i] for i in live]
    out, pull = jax.vjp(f, *floats)
    reached = _reached(jax.make_jaxpr(f)(*floats).jaxpr) if live else set()

    def pullback(cotangent) -> List[Optional[jax.Array]]:
        cot = jax.tree_util.tree_map(
            lambda c, o: jnp.broadcast_to(jnp.asarray(c, dtype=o.dtype), o.shape),
            cotangent, out)
        grads = pull(cot) if live else ()
        result: List[Optional[jax.Array]] = [None] * len(xs)
        for j, (i, g) in enumerate(zip(live, grads)):
            result[i] = g if j in reached else None
        return result

    return out, pullback


# -- loops and ordering ---------------------------------------------------------------------
def scan(fn: Callable, elems, initializer, reverse: bool = False):
    """``acc_t = fn(acc_{t-1}, elems_t)`` over the leading axis, every ``acc_t`` stacked
    (``keras.ops.scan``, i.e. ``jax.lax.scan``: one compiled loop)."""
    def step(carry, x):
        new = fn(carry, x)
        new = jax.tree_util.tree_map(lambda n, c: jnp.asarray(n, dtype=c.dtype), new, carry)
        return new, new

    _, stacked = ops.scan(step, initializer, elems, reverse=reverse)
    return stacked


@contextlib.contextmanager
def after(tensor):
    """No-op: XLA orders the program itself."""
    yield


# -- the compiled run -----------------------------------------------------------------------
def _rows(args) -> int:
    return int(np.shape(args[0])[0])


def _bucket(rows: int) -> int:
    """The batch size a batch of ``rows`` runs at: the next power of two. XLA compiles one
    program per input shape, so without buckets every new batch size (a last, partial batch;
    each ``analyze`` of a differently sized array) would trace and compile anew (about a second
    for a small CNN); with them at most log2(largest batch) programs exist, and a batch pays at
    most twice its own rows, usually nothing (batch sizes are mostly powers of two)."""
    return 1 << max(rows - 1, 0).bit_length()


def _pad(a, extra: int):
    """``a`` with its last row repeated ``extra`` times (a real row: padding cannot overflow
    where the data does not; the padded rows' results are dropped)."""
    if isinstance(a, jax.Array):
        return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)])
    a = np.asarray(a)
    return np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])


class _Compiled:
    """``fn`` jitted with every variable of ``model`` passed by value (see the module text)."""

    def __init__(self, fn: Callable, model):
        self.fn, self.variables = fn, list(model.variables)
        self.updated: List[int] = []  # which variables a call writes (found while tracing)
        self.jitted = jax.jit(self._pure)

    def _pure(self, values, *args):
        mapping = list(zip(self.variables, values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            out = self.fn(*args)
            new = [scope.get_current_value(v) for v in self.variables]
        self.updated = [i for i, (n, v) in enumerate(zip(new, values)) if n is not v]
        return out, [new[i] for i in self.updated]

    def __call__(self, *args):
        rows = _rows(args)
        padded = _bucket(rows)
        if padded != rows:  # one program per bucket, not per batch size
            args = [_pad(a, padded - rows) for a in args]
        values = [v.value for v in self.variables]
        out, new = self.jitted(values, *args)
        for i, value in zip(self.updated, new):
            self.variables[i].assign(value)
        if padded != rows:
            out = jax.tree_util.tree_map(lambda t: t[:rows], out)
        return out

    def eval_shape(self, *specs):
        values = [jax.ShapeDtypeStruct(v.shape, v.dtype) for v in self.variables]
        return jax.eval_shape(self._pure, values, *specs)[0]


def compile_model(fn: Callable, model, jit_compile: bool = False) -> Callable:
    """``fn`` (which calls ``model``) under one ``jax.jit`` (XLA always; ``jit_compile`` is
    TensorFlow's switch and changes nothing here)."""
    return _Compiled(fn, model)


def check_build(function, model) -> None:
    """Trace ``function`` abstractly (``jax.eval_shape``, batch of 2) so that shape errors are
    raised when the analyzer is built."""
    if any(d is None for t in model.inputs for d in t.shape[1:]):
        return  # a dynamic sequence length: the first call, at its length, checks
    specs = [jax.ShapeDtypeStruct((2,) + tuple(t.shape[1:]), t.dtype) for t in model.inputs]
    function.eval_shape(*specs)


def compile_function(fn: Callable) -> Callable:
    return fn


# -- distribution ---------------------------------------------------------------------------
def current_strategy():
    """The ``keras.distribution`` distribution set globally (``None``: one device)."""
    return keras.distribution.distribution()


def num_replicas(strategy) -> int:
    if strategy is None:
        return 1
    return int(np.prod(strategy.device_mesh.shape))


def distributed(strategy, fn: Callable, args: Sequence[np.ndarray]):
    """``fn`` on every array sharded along its first axis over the distribution's mesh (padded
    to a multiple of the devices with copies of the last row), sliced back to the input's rows
    in input order. Returns ``(function, values)`` as the TensorFlow backend does."""
    from jax.sharding import NamedSharding, PartitionSpec

    n = num_replicas(strategy)
    rows = len(args[0])
    pad = -rows % n
    mesh = strategy.device_mesh.backend_mesh
    batch_axis = getattr(strategy, "batch_dim_name", None) or mesh.axis_names[0]
    values = []
    for a in args:
        a = np.asarray(a)
        if pad:
            a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
        spec = PartitionSpec(batch_axis, *([None] * (a.ndim - 1)))
        values.append(jax.device_put(a, NamedSharding(mesh, spec)))

    def step(*parts):  # the last part is the row count: one step serves every batch size
        *parts, n_rows = parts
        return jax.tree_util.tree_map(lambda t: t[:n_rows], fn(*parts))
    return step, values + [rows]


def device_strategy(n: Optional[int], error: Callable[[str], Exception]):
    """``keras.distribution.DataParallel`` over every local device (``n`` is ``None``) or the
    first ``n``. On the CPU, n devices exist only if
    ``XLA_FLAGS=--xla_force_host_platform_device_count=n`` was set before JAX started."""
    local = jax.local_devices()
    if n is None:
        chosen = local
    else:
        if n > len(local):
            hint = (" On the CPU, set XLA_FLAGS=--xla_force_host_platform_device_count="
                    f"{n} before starting." if local[0].platform == "cpu" else "")
            raise error(f"--devices {n}: JAX sees {len(local)} device(s) here "
                        f"({local[0].platform}).{hint}")
        chosen = local[:n]
    names = [f"{d.platform}:{d.id}" for d in chosen]
    return _Distribution(keras.distribution.DataParallel(devices=names))


class _Distribution:
    """A distribution with TensorFlow's ``scope()`` spelling: inside it, it is Keras' global
    distribution (``keras.distribution.set_distribution``)."""

    def __init__(self, distribution):
        self.distribution = distribution

    @contextlib.contextmanager
    def scope(self):
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(self.distribution)
        try:
            yield self.distribution
        finally:
            keras.distribution.set_distribution(previous)


# ------------------------------------------------------------- functions a layer may call directly
def _shape_for(a, shape, axes):
    """``shape`` (a resize's output shape) with ``a``'s sizes on the axes not resized."""
    return tuple(int(d) if k in axes else a.shape[k] for k, d in enumerate(shape))


def _scale_and_translate(original, image, shape, spatial_dims, scale, translation,
                         method="linear", antialias=True, precision=None):
    """``jax.image.scale_and_translate`` (keras-hub's Depth Anything resizes with it)."""
    axes = tuple(int(d) for d in spatial_dims)
    return forms.Resample(image, lambda a: np.asarray(original(
        a, _shape_for(a, shape, axes), axes, scale, translation, method=method,
        antialias=antialias, precision=precision)), axes)


def _resize(original, image, shape, method, antialias=True, precision=None):
    """``jax.image.resize``: an interpolation along the axes whose size changes."""
    axes = tuple(k for k, (a, b) in enumerate(zip(image.shape, shape)) if a != b)
    if not axes or None in [image.shape[k] for k in axes]:
        raise forms.NoForm
    return forms.Resample(image, lambda a: np.asarray(original(
        a, _shape_for(a, shape, axes), method, antialias=antialias, precision=precision)),
        axes)


def foreign_functions():
    """``(owner, attribute, reader)`` for the JAX functions whose calls on symbolic tensors
    keras-lrp reads into :mod:`keras_lrp.backend.forms`."""
    return [(jax.image, "scale_and_translate", _scale_and_translate),
            (jax.image, "resize", _resize)]
