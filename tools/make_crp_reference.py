"""Make zennit-crp's reference numbers for keras_lrp.concepts (tests/concepts/).

Run it in its own environment (PyTorch, Zennit 0.4.6, zennit-crp 0.6), never in keras-lrp's:

    python3 -m venv /tmp/crp && /tmp/crp/bin/pip install torch "zennit==0.4.6" "zennit-crp==0.6.*"
    /tmp/crp/bin/python tools/make_crp_reference.py tests/data/crp

The network is the shipped digits CNN, rebuilt in PyTorch by tools/quantus_reference/twin.py
from the weights in tests/data/quantus/inputs.npz (channels first, kernels transposed, a
permutation back to channels last before the Flatten). Module names of the twin → Keras layer
names: "2" → conv2, "5" → conv3, "9" → dense.

Written, for the first N samples of inputs.npz and each composite K (``eps_plus_flat``:
zennit's EpsilonPlusFlat ↔ keras-lrp's ``lrp.epsilon_plus_flat``; ``eps_plus``: EpsilonPlus ↔
``lrp.epsilon_plus``):

* ``{K}_heatmap`` (N, C, 8, 8): CondAttribution's heatmap (the input relevance summed over
  channels) for each condition of CONDITIONS, each asked in its own call (zennit-crp regroups
  a mixed list by layer set);
* ``{K}_rel_{layer}`` (N, C, channels): ChannelConcept.attribute(relevance at the layer,
  abs_norm=False) under each condition. At a conditioned layer zennit-crp's recorded relevance
  is twice the masked relevance (with exclude_parallel, the default, the layer's retained .grad
  receives it from torch.autograd.grad and again as the root of the second backward; its
  heatmap is unaffected): the tests halve those entries;
* ``x``, ``conditions`` (JSON, in Keras layer names).

A second file, ``residual.npz``, holds the same for the residual network of
tests/anchor_nets.py (weights and inputs of tests/data/innvestigate/residual.npz, its twin from
tools/make_zennit_reference.py; the Add is Zennit's Sum) under EpsilonPlus (``eps_plus``), the
heatmap being the input relevance itself (N, C, 12). Its conditions sit on the branch (a1, a2)
and on the projection (proj) of the residual block, where exclude_parallel decides what passes.
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "quantus_reference"))
sys.path.insert(0, HERE)

import twin  # noqa: E402  (checks the twin against the saved Keras logits on import)
from crp.attribution import CondAttribution  # noqa: E402
from crp.concepts import ChannelConcept  # noqa: E402
from zennit import composites as zc  # noqa: E402

#: Keras layer name → the twin's module name.
TORCH_NAMES = {"conv2": "2", "conv3": "5", "dense": "9"}
#: Conditions in Keras names; within a condition the layers go from the output down
#: (zennit-crp's exclude_parallel walks them in that order).
CONDITIONS = [
    {"y": 3},
    {"y": 3, "conv2": [1, 7]},
    {"y": 5, "conv3": [0]},
    {"y": 3, "conv3": [2, 9, 11]},
    {"y": 3, "dense": [25, 31], "conv2": [8, 12]},
    {"y": 8, "dense": [0, 5, 7, 20]},
]
RECORD = ["conv2", "conv3", "dense"]
COMPOSITES = {"eps_plus_flat": zc.EpsilonPlusFlat, "eps_plus": zc.EpsilonPlus}
SAMPLES = 4


def _torch_condition(cond):
    return {("y" if k == "y" else TORCH_NAMES[k]): (v if isinstance(v, list) else [v])
            for k, v in cond.items()}


RESIDUAL_CONDITIONS = [
    {"y": 1},
    {"y": 1, "a2": [0, 3]},
    {"y": 2, "a1": [1, 2, 5]},
    {"y": 1, "proj": [4]},
    {"y": 0, "a2": [2], "a1": [0, 4]},
]
RESIDUAL_RECORD = ["a1", "a2", "proj"]


def residual(out_path):
    import make_zennit_reference as mz

    data = np.load(os.path.join(HERE, "..", "tests", "data", "innvestigate", "residual.npz"))
    w = [data[f"w{k}"] for k in range(8)]
    x = data["x"].astype(np.float32)
    model = mz.build("residual", w, True).eval()
    attribution, cc = CondAttribution(model), ChannelConcept()
    heat, rels = [], {name: [] for name in RESIDUAL_RECORD}
    for cond in RESIDUAL_CONDITIONS:
        data_t = torch.tensor(x, requires_grad=True)
        res = attribution(data_t, [{k: v if isinstance(v, list) else [v] for k, v in
                                    cond.items()}], zc.EpsilonPlus(), record_layer=RESIDUAL_RECORD)
        heat.append(data_t.grad.detach().numpy())  # the relevance itself (zennit-crp's heatmap
        for name in RESIDUAL_RECORD:                # sums axis 1, the features of a vector)
            rels[name].append(cc.attribute(res.relevances[name], abs_norm=False).numpy())
    out = {"x": x, "conditions": np.array(json.dumps(RESIDUAL_CONDITIONS)),
           "eps_plus_heatmap": np.stack(heat, axis=1)}
    out.update({f"eps_plus_rel_{n}": np.stack(r, axis=1) for n, r in rels.items()})
    np.savez_compressed(out_path, **out)
    print({k: v.shape for k, v in out.items()})


def main(out_path):
    w = twin.load_inputs()
    x = w["x"][:SAMPLES].astype(np.float32)
    model = twin.twin(w)
    attribution, cc = CondAttribution(model), ChannelConcept()
    out = {"x": x, "conditions": np.array(json.dumps(CONDITIONS))}
    for key, make in COMPOSITES.items():
        heat, rels = [], {name: [] for name in RECORD}
        for cond in CONDITIONS:
            data = torch.tensor(twin.nchw(x), requires_grad=True)
            res = attribution(data, [_torch_condition(cond)], make(),
                              record_layer=[TORCH_NAMES[n] for n in RECORD])
            heat.append(res.heatmap.detach().numpy())
            for name in RECORD:
                r = res.relevances[TORCH_NAMES[name]]
                rels[name].append(cc.attribute(r, abs_norm=False).detach().numpy())
        out[f"{key}_heatmap"] = np.stack(heat, axis=1)
        for name in RECORD:
            out[f"{key}_rel_{name}"] = np.stack(rels[name], axis=1)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    np.savez_compressed(out_path, **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data",
                                                                "crp")
    main(os.path.join(folder, "digits.npz"))
    residual(os.path.join(folder, "residual.npz"))
