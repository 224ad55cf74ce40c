"""Make zennit-crp's attribution-graph reference for keras_lrp.concepts.graph (tests/concepts/).

Run it in zennit-crp's own environment (see tools/make_crp_reference.py), never keras-lrp's:

    /tmp/crp/bin/python tools/make_crp_graph_reference.py tests/data/crp/graph.npz

The network is the PyTorch twin of the shipped digits CNN (tools/quantus_reference/twin.py);
its concept layers are the twin's modules "0", "2", "5", "9" ↔ Keras' conv1, conv2, conv3,
dense. zennit-crp's ``AttributionGraph`` (``trace_model_graph`` for the layer connections,
``ChannelConcept`` masks and ``abs_norm=True``) decomposes, under EpsilonPlusFlat
(keras-lrp's ``lrp.epsilon_plus_flat``), each graph of GRAPHS for one sample of
tests/data/quantus/inputs.npz. Written per graph g:

* ``{g}_edges`` (E, 4) int: upper layer, upper channel, lower layer, lower channel (layers as
  indices into ``layers``), zennit-crp's connections in its order, each (upper, lower) pair once
  (zennit-crp repeats the children of a node reached twice);
* ``{g}_weights`` (E,): the edge relevances;
* ``{g}_x`` (1, 8, 8, 1): the sample; ``graphs`` (JSON): the arguments; ``layers``.
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "quantus_reference"))

import twin  # noqa: E402  (checks the twin against the saved Keras logits on import)
from crp.attribution import AttributionGraph, CondAttribution  # noqa: E402
from crp.concepts import ChannelConcept  # noqa: E402
from crp.graph import trace_model_graph  # noqa: E402
from zennit.composites import EpsilonPlusFlat  # noqa: E402

LAYERS = ["conv1", "conv2", "conv3", "dense"]
TORCH_NAMES = {"conv1": "0", "conv2": "2", "conv3": "5", "dense": "9"}
#: name → (sample, root layer, root channel, target or None, width per level)
GRAPHS = {
    "target": (0, "dense", 25, 3, [4, 2]),
    "start": (1, "conv3", 2, None, [3, 2]),
}


def main(out_path):
    w = twin.load_inputs()
    model = twin.twin(w)
    keras_name = {v: k for k, v in TORCH_NAMES.items()}
    out = {"graphs": np.array(json.dumps(GRAPHS)), "layers": np.array(LAYERS)}
    for key, (sample, layer, channel, target, width) in GRAPHS.items():
        x = w["x"][sample:sample + 1].astype(np.float32)
        data = torch.tensor(twin.nchw(x), requires_grad=True)
        graph = trace_model_graph(model, data, list(TORCH_NAMES.values()))
        cc = ChannelConcept()
        agraph = AttributionGraph(CondAttribution(model), graph,
                                  {name: cc for name in TORCH_NAMES.values()})
        _, connections = agraph(data, EpsilonPlusFlat(), channel, TORCH_NAMES[layer],
                                target=target, width=width, abs_norm=True, verbose=False)
        edges, weights, seen = [], [], set()
        for (u_layer, u_ch), lows in connections.items():
            for l_layer, l_ch, rel in lows:
                row = (LAYERS.index(keras_name[u_layer]), int(u_ch),
                       LAYERS.index(keras_name[l_layer]), int(l_ch))
                if row not in seen:
                    seen.add(row)
                    edges.append(row)
                    weights.append(rel)
        out[f"{key}_edges"] = np.array(edges, "int32")
        out[f"{key}_weights"] = np.array(weights, "float32")
        out[f"{key}_x"] = x
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    np.savez_compressed(out_path, **out)
    print({k: v.shape for k, v in out.items()})
    for key in GRAPHS:
        print(key, np.c_[out[f"{key}_edges"], out[f"{key}_weights"]])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "crp",
                                                             "graph.npz"))
