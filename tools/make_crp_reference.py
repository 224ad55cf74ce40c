"""Make zennit-crp's reference numbers for keras_lrp.concepts (tests/concepts/).

Run it in its own environment (PyTorch, Zennit 0.4.6, zennit-crp 0.6), never in keras-lrp's:

    python3 -m venv /tmp/crp && /tmp/crp/bin/pip install torch "zennit==0.4.6" "zennit-crp==0.6.*"
    /tmp/crp/bin/python tools/make_crp_reference.py tests/data/crp/digits.npz

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
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "quantus_reference"))

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
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "crp",
                                                            "digits.npz"))
