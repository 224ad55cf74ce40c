"""Make zennit-crp's relevance-maximisation reference numbers for keras_lrp.concepts.relmax
(tests/concepts/test_relmax.py).

Run it in zennit-crp's own environment (see tools/make_crp_reference.py), never in keras-lrp's:

    /tmp/crp/bin/python tools/make_crp_relmax_reference.py tests/data/crp

zennit-crp's FeatureVisualization (its defaults: ``max_target="sum"``, ``abs_norm=True``) runs
over the first N digits of keras_lrp/demos/models/digits_test.npz, each explained at its label
(the dataset's target, as FeatureVisualization does), under zennit's EpsilonPlus (keras-lrp's
``lrp.epsilon_plus``) on the PyTorch twin of the digits CNN (tools/quantus_reference/twin.py;
modules "2" → conv2, "5" → conv3, "9" → dense), in batches of BATCH. It writes its results
into a folder, here a temporary one; they are read back with crp.helper's loaders.

Written to ``relmax.npz``, per layer L (Keras name) and mode M in ``rel`` (RelMax), ``act``
(ActMax), the top SAMPLE_SIZE (40, zennit-crp's) of every channel, best first:

* ``{M}_{L}_index`` (40, channels): the sample indices;
* ``{M}_{L}_value`` (40, channels): Σ over the channel's positions of its relevance
  (activation), divided by Σ over the channels of |that sum| (abs_norm);
* ``{M}_{L}_neuron`` (40, channels): the position (flattened H·W, C order) of the channel's
  largest relevance (activation) in that sample;
* ``stats_{M}_{L}_{t}_index`` / ``_value`` (40 or fewer, channels): the same among the samples
  of label t (zennit-crp's Statistics), for t in STATS_CLASSES;
* ``rf_{L}_{k}_heatmap`` (4, 8, 8): FeatureVisualization's receptive-field heatmaps
  (``_attribution_on_reference(rf=True)``, as ``get_max_reference(rf=True)`` computes them) of
  channel k's top 4 RelMax samples, each started at its ``neuron`` with the layer's activation,
  summed over the input channels; for (L, k) in RF_CHANNELS;
* ``x`` (N, 8, 8, 1), ``y`` (N,).
"""

import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "quantus_reference"))

import twin  # noqa: E402  (checks the twin against the saved Keras logits on import)
from crp.attribution import CondAttribution  # noqa: E402
from crp.concepts import ChannelConcept  # noqa: E402
from crp.helper import load_maximization, load_statistics  # noqa: E402
from crp.visualization import FeatureVisualization  # noqa: E402
from zennit.composites import EpsilonPlus  # noqa: E402

TORCH_NAMES = {"conv2": "2", "conv3": "5", "dense": "9"}
SAMPLES, BATCH = 64, 16
STATS_CLASSES = (0, 3)
RF_CHANNELS = (("conv2", 1), ("conv2", 7), ("conv3", 5))
DIGITS = os.path.join(HERE, "..", "keras_lrp", "demos", "models", "digits_test.npz")


class Digits(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = torch.tensor(twin.nchw(x)), [int(t) for t in y]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def main(out_path):
    with np.load(DIGITS) as d:
        x, y = d["x"][:SAMPLES].astype(np.float32), d["y"][:SAMPLES].astype(np.int64)
    model = twin.twin(twin.load_inputs())
    attribution = CondAttribution(model)
    layer_map = {name: ChannelConcept() for name in TORCH_NAMES.values()}
    out = {"x": x, "y": y}
    with tempfile.TemporaryDirectory() as tmp:
        fv = FeatureVisualization(attribution, Digits(x, y), layer_map,
                                  path=os.path.join(tmp, "fv"))
        fv.run(EpsilonPlus(), 0, SAMPLES, batch_size=BATCH)
        for keras_name, name in TORCH_NAMES.items():
            for mode, m in (("rel", fv.RelMax), ("act", fv.ActMax)):
                index, value, neuron = load_maximization(m.PATH, name)
                out[f"{mode}_{keras_name}_index"] = np.asarray(index)
                out[f"{mode}_{keras_name}_value"] = np.asarray(value)
                out[f"{mode}_{keras_name}_neuron"] = np.asarray(neuron)
            for mode, s in (("rel", fv.RelStats), ("act", fv.ActStats)):
                for t in STATS_CLASSES:
                    index, value, _ = load_statistics(s.PATH, name, t)
                    out[f"stats_{mode}_{keras_name}_{t}_index"] = np.asarray(index)
                    out[f"stats_{mode}_{keras_name}_{t}_value"] = np.asarray(value)
        for keras_name, k in RF_CHANNELS:
            rows = out[f"rel_{keras_name}_index"][:4, k]
            neurons = out[f"rel_{keras_name}_neuron"][:4, k]
            data = torch.tensor(twin.nchw(x[rows]))
            heat = fv._attribution_on_reference(data, k, TORCH_NAMES[keras_name], EpsilonPlus(),
                                                rf=True, neuron_ids=list(neurons))
            out[f"rf_{keras_name}_{k}_heatmap"] = heat.detach().numpy()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    np.savez_compressed(out_path, **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data",
                                                                "crp")
    main(os.path.join(folder, "relmax.npz"))
