"""Make Zennit's reference numbers on the networks of tests/anchor_nets.py, with the weights and
inputs of tests/data/innvestigate/ (so every anchor sees the same numbers).

Run it in its own environment (PyTorch and Zennit), never in keras-lrp's:

    python3 -m venv /tmp/zen && /tmp/zen/bin/pip install torch==2.13.0 zennit
    /tmp/zen/bin/pip uninstall -y torchvision   # if it fails to import beside that torch
    /tmp/zen/bin/python tools/make_zennit_reference.py tests/data/innvestigate tests/data/zennit

Each network is rebuilt in PyTorch: kernels transposed to PyTorch's layout, inputs to channels
first, and a permutation back to channels last before every Flatten, so that the flattened order
is Keras'. An Add becomes zennit.layer.Sum (which Zennit's composites map to its Norm rule); a
BatchNormalization is folded by Zennit's SequentialMergeBatchNorm canonizer. The
relevance is the gradient Zennit's rules give at the input, starting from the explained logit
(one-hot times the output), returned in Keras' channels-last layout.
"""

import os
import sys
import types

import numpy as np
import torch
from torch import nn


def _stub_torchvision():
    """Zennit imports torchvision for its ResNet canonizers, which are not used here; PyPI's
    torchvision does not import beside the CPU build of torch this machine has, so a stub with
    the two names Zennit reads stands in when the real one is missing or broken."""
    try:
        import torchvision.models.resnet  # noqa: F401
        return
    except Exception:  # noqa: BLE001 - missing, or "operator torchvision::nms does not exist"
        for key in [k for k in sys.modules if k.startswith("torchvision")]:
            del sys.modules[key]
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.Bottleneck = resnet.BasicBlock = type("Unused", (nn.Module,), {})
    models = types.ModuleType("torchvision.models")
    models.resnet = resnet
    vision = types.ModuleType("torchvision")
    vision.models = models
    sys.modules.update({"torchvision": vision, "torchvision.models": models,
                        "torchvision.models.resnet": resnet})


_stub_torchvision()
from zennit import composites as zc  # noqa: E402
from zennit import rules as zr  # noqa: E402
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
from zennit.layer import Sum  # noqa: E402
from zennit.types import Linear  # noqa: E402

torch.set_default_dtype(torch.float32)


class ToLast(nn.Module):
    """Channels first → channels last (so Flatten matches Keras)."""

    def forward(self, x):
        return x.permute(0, *range(2, x.dim()), 1)


def _dense(w, k, n_in, n_out, bias):
    layer = nn.Linear(n_in, n_out, bias=bias)
    layer.weight.data = torch.tensor(w[k].T.copy())
    if bias:
        layer.bias.data = torch.tensor(w[k + 1])
    return layer, k + (2 if bias else 1)


def _conv(w, k, bias, dims):
    kernel = w[k]  # Keras: (*kernel, in, out) → PyTorch: (out, in, *kernel)
    conv = (nn.Conv1d if dims == 1 else nn.Conv2d)(kernel.shape[-2], kernel.shape[-1],
                                                   kernel.shape[:-2], bias=bias)
    conv.weight.data = torch.tensor(np.transpose(kernel, (dims + 1, dims, *range(dims))).copy())
    if bias:
        conv.bias.data = torch.tensor(w[k + 1])
    return conv, k + (2 if bias else 1)


class Residual(nn.Module):
    def __init__(self, w, bias):
        super().__init__()
        self.a1, k = _dense(w, 0, 12, 6, bias)
        self.a2, k = _dense(w, k, 6, 6, bias)
        self.proj, k = _dense(w, k, 12, 6, bias)
        self.out, _ = _dense(w, k, 6, 4, bias)
        self.relu1, self.relu2, self.sum = nn.ReLU(), nn.ReLU(), Sum()

    def forward(self, x):
        h = self.a2(self.relu1(self.a1(x)))
        return self.out(self.relu2(self.sum(torch.stack([h, self.proj(x)], dim=-1))))


class Concat(nn.Module):
    def __init__(self, w, bias):
        super().__init__()
        self.b1, k = _dense(w, 0, 12, 5, bias)
        self.b2, k = _dense(w, k, 12, 3, bias)
        self.out, _ = _dense(w, k, 8, 4, bias)
        self.r1, self.r2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        return self.out(torch.cat([self.r1(self.b1(x)), self.r2(self.b2(x))], dim=1))


def build(name, w, bias):
    """The PyTorch twin of anchor_nets.build(name) with the Keras weights ``w``."""
    if name == "mlp":
        d1, k = _dense(w, 0, 12, 8, bias)
        d2, k = _dense(w, k, 8, 6, bias)
        out, _ = _dense(w, k, 6, 4, bias)
        return nn.Sequential(d1, nn.ReLU(), d2, nn.ReLU(), out)
    if name == "cnn_pools":
        c1, k = _conv(w, 0, bias, 2)
        c2, k = _conv(w, k, bias, 2)
        out, _ = _dense(w, k, 6, 4, bias)
        return nn.Sequential(c1, nn.ReLU(), nn.MaxPool2d(2), c2, nn.ReLU(), nn.AvgPool2d(2),
                             ToLast(), nn.Flatten(), out)
    if name == "cnn_bn":
        c1, k = _conv(w, 0, bias, 2)
        bn = nn.BatchNorm2d(4, eps=1e-3)  # Keras' default epsilon
        gamma, *rest = w[k:k + (4 if bias else 3)]
        beta = rest.pop(0) if bias else np.zeros_like(gamma)
        bn.weight.data, bn.bias.data = torch.tensor(gamma), torch.tensor(beta)
        bn.running_mean.data, bn.running_var.data = torch.tensor(rest[0]), torch.tensor(rest[1])
        out, _ = _dense(w, k + (4 if bias else 3), 64, 4, bias)
        return nn.Sequential(c1, bn, nn.ReLU(), nn.MaxPool2d(2), ToLast(), nn.Flatten(), out)
    if name == "residual":
        return Residual(w, bias)
    if name == "concat":
        return Concat(w, bias)
    if name == "conv1d":
        c1, k = _conv(w, 0, bias, 1)
        out, _ = _dense(w, k, 56, 4, bias)
        return nn.Sequential(c1, nn.ReLU(), ToLast(), nn.Flatten(), out)
    if name in ("dense", "dense_relu"):
        out, _ = _dense(w, 0, 300, 4, bias)
        return nn.Sequential(ToLast(), nn.Flatten(), out,
                             *([nn.ReLU()] if name == "dense_relu" else []))
    if name in ("conv2d", "conv2d_relu"):
        c, _ = _conv(w, 0, bias, 2)
        return nn.Sequential(c, *([nn.ReLU()] if name == "conv2d_relu" else []), ToLast(),
                             nn.Flatten())
    pool = nn.AvgPool2d(2) if name == "avgpool" else nn.MaxPool2d(2)
    return nn.Sequential(pool, ToLast(), nn.Flatten())


def gamma_everywhere(bias):
    rule = zr.Gamma(gamma=0.25, zero_params=None if bias else ["bias"])
    return zc.LayerMapComposite(layer_map=zc.layer_map_base() + [(Linear, rule)])


#: keras-lrp name (``.IB``: with bias=False) → Zennit composite; ``first``: uses a first layer.
COMPOSITES = {
    "lrp.epsilon_plus": (lambda: zc.EpsilonPlus(), False),
    "lrp.epsilon_plus_flat": (lambda: zc.EpsilonPlusFlat(), True),
    "lrp.epsilon_alpha_2_beta_1": (lambda: zc.EpsilonAlpha2Beta1(), False),
    "lrp.epsilon_alpha_2_beta_1_flat": (lambda: zc.EpsilonAlpha2Beta1Flat(), True),
    "lrp.epsilon_gamma_box": (lambda: zc.EpsilonGammaBox(low=-1.0, high=1.0), True),
    "lrp.gamma": (lambda: gamma_everywhere(True), False),
    "lrp.gamma.IB": (lambda: gamma_everywhere(False), False),
}
#: Networks with several layers fed by the input: Zennit's first-layer rule takes only the first
#: of them in module order, keras-lrp every one (a documented difference; not compared).
SEVERAL_FIRST = {"residual", "concat"}


def relevance(model, composite, x, selection):
    """Zennit's relevance at the input (the gradient its rules give), from the selected logit."""
    xt = torch.tensor(x, requires_grad=True)
    with composite.context(model) as modified:
        out = modified(xt)
        start = torch.zeros_like(out)
        start[torch.arange(len(x)), torch.tensor(selection)] = 1.0
        (grad,) = torch.autograd.grad(out, xt, grad_outputs=start * out.detach())
    return grad.numpy()


def main(source, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for path in sorted(os.listdir(source)):
        stem = path[:-4]
        data = dict(np.load(os.path.join(source, path)))
        name, bias = stem.removesuffix("_nobias"), not stem.endswith("_nobias")
        w = [data[f"w{k}"] for k in range(len([k for k in data if k.startswith("w")]))]
        x = data["x"]
        xt = np.moveaxis(x, -1, 1) if x.ndim > 2 else x  # channels first
        model = build(name, w, bias).eval()
        logits = model(torch.tensor(xt)).detach().numpy()
        result = {"x": x, "index": data["index"], "logits": logits}
        for key, (make, first) in COMPOSITES.items():
            if first and name in SEVERAL_FIRST:
                continue
            for mode in ("max_activation", "index"):
                selection = data["index"] if mode == "index" else logits.argmax(axis=1)
                composite = make()
                if name == "cnn_bn":  # Zennit folds BatchNorm with a canonizer, as keras-lrp does
                    composite.canonizers = [SequentialMergeBatchNorm()]
                r = relevance(model, composite, xt, selection)
                result[f"{key}|{mode}"] = np.moveaxis(r, 1, -1) if r.ndim > 2 else r
        np.savez_compressed(os.path.join(out_dir, path), **result)
        print("wrote", os.path.join(out_dir, path), len(result) - 3, "analyses")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
