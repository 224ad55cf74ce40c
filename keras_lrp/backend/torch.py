"""The PyTorch implementation of the backend seam (see :mod:`keras_lrp.backend`).

* the backward product is ``torch.autograd.grad`` on copies of the primals that require grad,
  under ``torch.enable_grad`` (the run itself is under ``no_grad``), with ``allow_unused``: an
  input with no path to the output gets ``None``, never a silent zero;
* the compiled run is eager, under ``torch.no_grad`` (``torch.compile`` is not used: Keras'
  own layers trace poorly through it, and eager already costs about what a gradient costs);
* there is one device and no distribution: a distribution is an error;
* a layer's call that resizes with ``torch.nn.functional.interpolate`` is read as an
  interpolation (:func:`foreign_functions`).
"""

from __future__ import annotations

import contextlib
from typing import Callable, List, Optional, Sequence

import keras
import numpy as np
import torch
from keras import ops

from keras_lrp.backend import forms

NAME = "torch"


def start() -> None:
    """Nothing more: importing PyTorch started it."""


def version() -> str:
    return str(torch.__version__)


def _differentiable(x) -> bool:
    return torch.is_floating_point(x) or torch.is_complex(x)


def vjp(fn: Callable, *primals):
    """``(y, pullback)`` with ``y = fn(*primals)``: ``pullback(cotangent)`` is the list of the
    derivatives ∂⟨y, cotangent⟩/∂x_i, ``None`` where ``y`` does not depend on x_i (or x_i holds
    integers or booleans). Call the pullback once."""
    xs = []
    for x in primals:
        t = ops.convert_to_tensor(x)
        xs.append(t.detach().requires_grad_(True) if _differentiable(t) else t)
    with torch.enable_grad():
        out = fn(*xs)
    outs = [o for o in keras.tree.flatten(out)]

    def pullback(cotangent) -> List[Optional[torch.Tensor]]:
        cots = keras.tree.flatten(cotangent)
        pairs = [(o, torch.broadcast_to(ops.cast(c, o.dtype), o.shape))
                 for o, c in zip(outs, cots) if o.requires_grad]
        live = [i for i, x in enumerate(xs) if x.requires_grad]
        result: List[Optional[torch.Tensor]] = [None] * len(xs)
        if pairs and live:
            grads = torch.autograd.grad([o for o, _ in pairs], [xs[i] for i in live],
                                        grad_outputs=[c for _, c in pairs], allow_unused=True)
            for i, g in zip(live, grads):
                result[i] = g
        return result

    return out, pullback


def scan(fn: Callable, elems, initializer, reverse: bool = False):
    """``acc_t = fn(acc_{t-1}, elems_t)`` over the leading axis, every ``acc_t`` stacked
    (``keras.ops.scan``: a Python loop, eager)."""
    def step(carry, x):
        new = fn(carry, x)
        return new, new

    _, stacked = ops.scan(step, initializer, elems, reverse=reverse)
    return stacked


@contextlib.contextmanager
def after(tensor):
    """No-op: eager PyTorch runs ops in program order."""
    yield


class _Eager:
    """``fn`` run eagerly without recording a graph for the outer call."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, *args):
        with torch.no_grad():
            return self.fn(*args)


def compile_model(fn: Callable, model, jit_compile: bool = False) -> Callable:
    """``fn`` run eagerly under ``no_grad`` (``jit_compile`` is TensorFlow's switch and changes
    nothing here)."""
    return _Eager(fn)


def check_build(function, model) -> None:
    """Run ``function`` once on a batch of one zero sample, so that shape errors are raised when
    the analyzer is built."""
    if any(d is None for t in model.inputs for d in t.shape[1:]):
        return  # a dynamic sequence length: the first call, at its length, checks
    args = [np.zeros((1,) + tuple(t.shape[1:]), dtype=t.dtype) for t in model.inputs]
    function(*args)


def compile_function(fn: Callable) -> Callable:
    return fn


def current_strategy():
    """Always ``None``: keras-lrp on PyTorch runs on one device."""
    distribution = keras.distribution.distribution() if hasattr(keras, "distribution") else None
    if distribution is not None:
        raise RuntimeError(
            "keras-lrp on PyTorch runs on one device, but a keras.distribution distribution is "
            "set. Unset it (keras.distribution.set_distribution(None)), or analyze on JAX "
            "(KERAS_BACKEND=jax) with keras.distribution.DataParallel.")
    return None


def num_replicas(strategy) -> int:
    return 1


def distributed(strategy, fn: Callable, args: Sequence[np.ndarray]):  # pragma: no cover
    raise RuntimeError("keras-lrp on PyTorch has no distribution (one device).")


def device_strategy(n: Optional[int], error: Callable[[str], Exception]):
    """``--devices``: only one device (``n == 1``) is possible on PyTorch."""
    if n == 1:
        return _OneDevice()
    shown = "all" if n is None else n
    raise error(f"--devices {shown}: keras-lrp on PyTorch runs on one device; use "
                "--backend jax for several devices (keras.distribution.DataParallel), or "
                "--backend tensorflow (tf.distribute).")


class _OneDevice:
    def scope(self):
        return contextlib.nullcontext()


# ------------------------------------------------------------- functions a layer may call directly
def _interpolate(original, input, *args, **kwargs):
    """``torch.nn.functional.interpolate`` on channels-first images (keras-hub's Depth
    Anything): an interpolation along every axis after the channels."""
    if len(input.shape) < 3:
        raise forms.NoForm
    return forms.Resample(input, lambda a: original(torch.from_numpy(a), *args, **kwargs)
                          .numpy(), tuple(range(2, len(input.shape))))


def foreign_functions():
    """``(owner, attribute, reader)`` for the PyTorch functions whose calls on symbolic tensors
    keras-lrp reads into :mod:`keras_lrp.backend.forms`."""
    return [(torch.nn.functional, "interpolate", _interpolate)]
