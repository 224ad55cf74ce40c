"""Framework functions a layer's ``call`` uses directly, traced through their ``keras.ops`` form.

A layer that calls ``tf.gather`` (keras-hub's DeBERTaV3 attention on TensorFlow) or resizes with
``tf.compat.v1.image.resize``, ``jax.image.scale_and_translate`` or
``torch.nn.functional.interpolate`` (Depth Anything's head) cannot be called on symbolic
tensors: the framework refuses a ``KerasTensor``. While a layer is traced, :func:`keras_forms`
puts a wrapper in place of each function the backend lists
(:func:`keras_lrp.backend.foreign_functions`): a call on plain tensors goes to the function
itself; a call on symbolic tensors is read (:mod:`keras_lrp.backend.forms`) and computed with
``keras.ops``:

* ``tf.gather`` → ``ops.take`` or ``ops.take_along_axis`` (routing: relevance goes back to the
  gathered entries);
* a resize → :class:`.LinearResample`, the resize's own linear map read off the function on a
  basis, one axis at a time, and checked against the function on random values before use.

A call the readers do not recognise keeps the framework's error, so the layer is refused by
name (:func:`keras_lrp.canonizers.tracing.trace`); and the traced parts are still compared
with your model by the forward check.
"""

from __future__ import annotations

import contextlib
import functools
from typing import List

import keras
import numpy as np
from keras import ops, tree

from keras_lrp import backend
from keras_lrp.backend import forms
from keras_lrp.canonizers import forward_layers as fwd

#: Relative agreement asked of a resize's linear map with the function itself (float32).
AGREEMENT = 1e-5


def _axis_matrix(call, shape, axis: int, axes) -> np.ndarray:
    """The ``n_in × n_out`` matrix of ``call`` along ``axis``: the function applied to the
    basis ``e_k`` along that axis (constant along the others, one channel), read at index 0 of
    the other resized axes."""
    n = shape[axis]
    dims = [n] + [d if k in axes else 1 for k, d in enumerate(shape) if k > 0]
    basis = np.zeros(dims, "float32")
    for k in range(n):
        basis[(k,) + tuple(k if j == axis else slice(None) for j in range(1, len(shape)))] = 1
    out = np.asarray(call(basis))
    index = tuple(slice(None) if j == axis else 0 for j in range(1, out.ndim))
    return np.stack([out[k][index] for k in range(n)])


def resample(form: forms.Resample):
    """:class:`.LinearResample` called on ``form.x``, its matrices read off ``form.call``; a
    resize that is not such a map (its read-off differs from the function on random values)
    has no form."""
    shape = tuple(form.x.shape)
    axes = tuple(a % len(shape) for a in form.axes)
    if any(shape[a] is None for a in axes) or 0 in axes:
        raise forms.NoForm
    matrices = [_axis_matrix(form.call, shape, a, axes) for a in axes]
    layer = fwd.LinearResample(axes, matrices, name=f"linear_resample_{keras.backend.get_uid()}")
    sample = (2,) + tuple(1 if d is None else int(d) for d in shape[1:])
    x = np.random.default_rng(0).standard_normal(sample).astype("float32")
    want = np.asarray(form.call(x), "float64")
    got = np.asarray(ops.convert_to_numpy(layer(ops.convert_to_tensor(x))), "float64")
    if got.shape != want.shape or \
            np.max(np.abs(got - want)) > AGREEMENT * max(np.max(np.abs(want)), 1.0):
        raise forms.NoForm
    return layer(form.x)


def _keras_form(form):
    if isinstance(form, forms.TakeAlong):
        return ops.take_along_axis(form.params, form.indices, axis=form.axis)
    if isinstance(form, forms.Take):
        return ops.take(form.params, form.indices, axis=form.axis)
    return resample(form)


def _routed(original, reader):
    @functools.wraps(original)
    def call(*args, **kwargs):
        if not any(isinstance(v, keras.KerasTensor) for v in tree.flatten((args, kwargs))):
            return original(*args, **kwargs)
        try:
            return _keras_form(reader(original, *args, **kwargs))
        except forms.NoForm:
            return original(*args, **kwargs)  # the framework's own error: refused by name
    call._lrp_original = original
    return call


@contextlib.contextmanager
def keras_forms():
    """Within: the backend's :func:`~keras_lrp.backend.foreign_functions`, called on symbolic
    tensors, compute their ``keras.ops`` form; the functions are put back on leaving."""
    patched: List[tuple] = []
    try:
        for owner, attribute, reader in backend.foreign_functions():
            original = getattr(owner, attribute)
            if hasattr(original, "_lrp_original"):
                continue  # already in place (a trace inside a trace)
            setattr(owner, attribute, _routed(original, reader))
            patched.append((owner, attribute, original))
        yield
    finally:
        for owner, attribute, original in reversed(patched):
            setattr(owner, attribute, original)


def __getattr__(name: str):
    return fwd.moved(__name__, name)


__all__ = ["AGREEMENT", "keras_forms", "resample"]
