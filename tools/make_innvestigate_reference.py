"""Make iNNvestigate 2.1.2's reference numbers on the networks of tests/anchor_nets.py.

Run it in its own environment (iNNvestigate needs TensorFlow ≤ 2.14 and Python ≤ 3.11), never
in keras-lrp's:

    python3.11 -m venv /tmp/innv
    /tmp/innv/bin/pip install innvestigate==2.1.2 "tensorflow==2.14.*"
    /tmp/innv/bin/python tools/make_innvestigate_reference.py tests/data/innvestigate

It writes one ``<net>[_nobias].npz`` per network (skipping those already there): the weights
(``w0``, ``w1``, … in the model's order), the inputs ``x``, the explained indices ``index`` and,
for every analyzer name both
libraries share, ``<name>|max_activation`` and ``<name>|index``.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()
import anchor_nets as reference_nets  # noqa: E402
import innvestigate  # noqa: E402

#: name → keyword arguments (the iNNvestigate defaults unless given).
ANALYZERS = {
    "lrp.z": {}, "lrp.epsilon": {}, "lrp.w_square": {}, "lrp.flat": {},
    "lrp.alpha_2_beta_1": {}, "lrp.alpha_2_beta_1_IB": {}, "lrp.alpha_1_beta_0": {},
    "lrp.alpha_1_beta_0_IB": {}, "lrp.z_plus": {}, "lrp.z_plus_fast": {},
    "lrp.sequential_preset_a": {}, "lrp.sequential_preset_b": {},
    "lrp.sequential_preset_a_flat": {}, "lrp.sequential_preset_b_flat": {},
    "deep_taylor": {}, "deep_taylor.bounded": {"low": -1.0, "high": 1.0},
    "gradient": {}, "gradient.baseline": {}, "input_t_gradient": {}, "deconvnet": {},
    "guided_backprop": {}, "integrated_gradients": {"steps": 16}, "input": {},
}


#: Compared statistically (noise), on a few networks only: on the linear ones SmoothGrad equals
#: the gradient whatever the noise; on the MLP the test compares with its Monte Carlo error.
NOISY = {"smoothgrad": {"augment_by_n": 256}, "random": {}}
NOISY_NETS = {"dense", "conv2d", "mlp"}

#: iNNvestigate 2.1.2 fails integrated_gradients on the BatchNormalization network ("Cannot convert
#: the argument `type_value`: dtype([('resource', 'u1')])"); the failure is printed and the key
#: left out, as for any analyzer that raises.


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    keras = tf.keras
    for seed, name in enumerate(reference_nets.NETS):
        for bias in (True, False):
            path = os.path.join(out_dir, f"{name}{'' if bias else '_nobias'}.npz")
            if os.path.exists(path):
                continue
            keras.backend.clear_session()  # a fresh graph: graph mode slows down as it grows
            model = reference_nets.build(name, keras, bias)
            if not bias and not model.get_weights():
                continue  # no kernel: the bias-free variant is the same network
            w = reference_nets.weights(model, seed)
            model.set_weights(w)
            x = reference_nets.inputs(name, seed)
            n_out = int(np.prod(model.output_shape[1:]))
            index = np.arange(len(x)) % n_out
            data = {"x": x, "index": index, **{f"w{k}": v for k, v in enumerate(w)}}
            extra = NOISY if name in NOISY_NETS else {}
            for analyzer, kwargs in {**ANALYZERS, **extra}.items():
                for mode in ("max_activation", "index"):
                    try:
                        a = innvestigate.create_analyzer(analyzer, model,
                                                         neuron_selection_mode=mode, **kwargs)
                        r = a.analyze(x, neuron_selection=index) if mode == "index" else \
                            a.analyze(x)
                    except Exception as e:  # noqa: BLE001 - recorded, not fatal
                        print(f"{name} bias={bias} {analyzer} {mode}: {type(e).__name__}: {e}")
                        continue
                    data[f"{analyzer}|{mode}"] = np.asarray(r, dtype="float32")
            np.savez_compressed(path, **data)
            print("wrote", path, len(data) - 2 - len(w), "analyses")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/innvestigate")
