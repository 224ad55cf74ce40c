"""The PyTorch twin of the shipped digits CNN, for making Quantus's reference numbers.

Run the generators of this folder in Quantus' own environment, never in keras-lrp's:

    python3 -m venv /tmp/quantus && /tmp/quantus/bin/pip install torch==2.13.0 "quantus==0.6.*"
    /tmp/quantus/bin/python tools/quantus_reference/<part>.py

:func:`twin` rebuilds ``keras_lrp/demos/models/digits_cnn.keras`` from the weights saved in
``tests/data/quantus/inputs.npz`` (written by make_inputs.py in keras-lrp's environment):
channels first, kernels transposed to PyTorch's layout, a permutation back to channels last
before the Flatten so that the flattened order is Keras', the output softmax left out (the
twin returns logits; Quantus applies a softmax itself where its ``softmax=True``). Importing
this module checks that the twin's logits equal the saved Keras logits.

The explain functions have Quantus' signature ``explain_func(model, inputs, targets, **kwargs)``
and compute what keras-lrp's ``gradient`` and ``input_t_gradient`` analyzers compute: the
gradient of the target logit at the input (times the input).
"""

import os

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
INPUTS = os.path.join(HERE, "..", "..", "tests", "data", "quantus", "inputs.npz")


def load_inputs(path: str = INPUTS) -> dict:
    """The arrays of inputs.npz as a dict (NumPy, Keras layout)."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def nchw(a: np.ndarray) -> np.ndarray:
    """(N, H, W, C) → (N, C, H, W)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(a), -1, 1))


def nhwc(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, H, W, C)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(a), 1, -1))


class _ToLast(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def _conv(kernel: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[:2], padding="same")
    conv.weight.data = torch.tensor(np.transpose(kernel, (3, 2, 0, 1)).copy())
    conv.bias.data = torch.tensor(bias)
    return conv


def _dense(kernel: np.ndarray, bias: np.ndarray) -> nn.Linear:
    dense = nn.Linear(*kernel.shape)
    dense.weight.data = torch.tensor(kernel.T.copy())
    dense.bias.data = torch.tensor(bias)
    return dense


def twin(inputs: dict = None) -> nn.Module:
    """conv1–conv2–pool–conv3–flatten–dense–dropout–logits, in eval mode, float32."""
    w = load_inputs() if inputs is None else inputs
    model = nn.Sequential(
        _conv(w["w0"], w["w1"]), nn.ReLU(), _conv(w["w2"], w["w3"]), nn.ReLU(),
        nn.MaxPool2d(2), _conv(w["w4"], w["w5"]), nn.ReLU(), _ToLast(), nn.Flatten(),
        _dense(w["w6"], w["w7"]), nn.ReLU(), nn.Dropout(0.3), _dense(w["w8"], w["w9"]))
    return model.eval()


def _gradient(model, inputs, targets, times_input: bool) -> np.ndarray:
    x = torch.tensor(np.asarray(inputs, dtype=np.float32), requires_grad=True)
    out = model(x)
    t = torch.as_tensor(np.asarray(targets).reshape(-1), dtype=torch.long)
    out[torch.arange(len(t)), t].sum().backward()
    g = x.grad.detach().numpy()
    return g * x.detach().numpy() if times_input else g


def explain_gradient(model, inputs, targets, **kwargs) -> np.ndarray:
    """∂ logit_target / ∂ x, NCHW NumPy (keras-lrp's ``gradient``)."""
    return _gradient(model, inputs, targets, times_input=False)


def explain_input_x_gradient(model, inputs, targets, **kwargs) -> np.ndarray:
    """x ⊙ ∂ logit_target / ∂ x, NCHW NumPy (keras-lrp's ``input_t_gradient``)."""
    return _gradient(model, inputs, targets, times_input=True)


def _check() -> None:
    w = load_inputs()
    with torch.no_grad():
        logits = twin(w)(torch.tensor(nchw(w["x"]))).numpy()
    np.testing.assert_allclose(logits, w["logits"], rtol=1e-4, atol=1e-5,
                               err_msg="the twin does not compute the Keras model")
    g = nhwc(explain_gradient(twin(w), nchw(w["x"]), w["y"]))
    np.testing.assert_allclose(g, w["a_gradient"], rtol=1e-4, atol=1e-5,
                               err_msg="the twin's gradient is not keras-lrp's")


_check()
