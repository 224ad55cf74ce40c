"""Reference images (keras_lrp.concepts.references): crop and mask on hand-made heatmaps, and the
receptive-field heatmaps of the digits CNN checked against the geometry of its 3×3 'same'
convolutions, against LRP's linearity in the start relevance, and against zennit-crp's
(tests/data/crp/relmax.npz; measured max |diff| 1.2e-6 at max |R| 1.6)."""

from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.concepts.conditional import Conditional
from keras_lrp.concepts.references import (
    crop_box,
    receptive_field_heatmaps,
    reference_image,
    reference_images,
)
from keras_lrp.demos.common import MODELS_DIR


def hand_heatmap():
    h = np.zeros((6, 6))
    h[2, 3], h[4, 1], h[0, 0], h[5, 5] = 1.0, 0.5, 0.05, -2.0
    return h


def test_crop_box_hand():
    h = hand_heatmap()
    assert crop_box(h) == (2, 5, 1, 4)            # {1.0, 0.5} > 0.1; 0.05 and -2 are not
    assert crop_box(h, crop_th=0.6) == (2, 3, 3, 4)
    assert crop_box(h, crop_th=0.0) == (0, 5, 0, 4)
    assert crop_box(-np.ones((3, 4))) == (0, 3, 0, 4)  # nothing positive: the whole image
    with pytest.raises(ValueError, match="2-D"):
        crop_box(np.zeros((2, 2, 2)))


def test_reference_image_hand():
    image = np.arange(36, dtype=float).reshape(6, 6)
    ref = reference_image(image, hand_heatmap(), crop_th=0.1, vis_th=0.2, alpha=0.3)
    assert ref.box == (2, 5, 1, 4)
    np.testing.assert_array_equal(ref.image, image[2:5, 1:4])
    np.testing.assert_array_equal(ref.heatmap, hand_heatmap()[2:5, 1:4])
    keep = np.zeros((3, 3))
    keep[0, 2] = keep[2, 0] = 1.0             # (2, 3) and (4, 1): 1 and 0.5 > 0.2
    np.testing.assert_allclose(ref.masked, image[2:5, 1:4] * (keep + 0.3 * (1 - keep)))
    rgb = reference_image(np.ones((6, 6, 3)), hand_heatmap()[..., None])
    assert rgb.masked.shape == (3, 3, 3) and rgb.masked[0, 2, 1] == 1.0
    assert rgb.masked[0, 0, 1] == pytest.approx(0.3)
    blurred = reference_image(image, hand_heatmap(), blur=3)
    assert blurred.box[0] <= 2 and blurred.box[1] >= 5  # the blur widens the box
    with pytest.raises(ValueError, match="does not fit"):
        reference_image(image, np.zeros((5, 6)))


@pytest.fixture(scope="module")
def crp():
    model = keras.models.load_model(MODELS_DIR / "digits_cnn.keras")
    return Conditional(keras_lrp.create_analyzer("lrp.epsilon_plus", model),
                       exclude_parallel=False)


@pytest.fixture(scope="module")
def x():
    return np.load(MODELS_DIR / "digits_test.npz")["x"][:4]


@pytest.mark.parametrize("layer,reach", [("conv1", 1), ("conv2", 2)])
def test_receptive_field_geometry(crp, x, layer, reach):
    """A neuron at (i, j) of the k-th stacked 3×3 convolution sees rows i−k…i+k, columns
    j−k…j+k: its heatmap is zero outside, and not all zero inside."""
    act = crp.activation(x, layer)[..., 3]  # channel 3
    neurons = act.reshape(len(x), -1).argmax(1)
    heat = receptive_field_heatmaps(crp, x, layer, 3, neurons)[..., 0]
    for n, p in enumerate(neurons):
        i, j = divmod(int(p), 8)
        window = np.zeros((8, 8), bool)
        window[max(0, i - reach):i + reach + 1, max(0, j - reach):j + reach + 1] = True
        assert np.all(heat[n][~window] == 0) and np.any(heat[n][window] != 0)
        r0, r1, c0, c1 = crop_box(heat[n])
        assert window[r0:r1, c0:c1].all()


def test_neurons_add_up_to_the_channel(crp, x):
    """LRP is linear in the start relevance: the heatmaps of the 16 neurons of a conv3 channel
    (pooled 4×4) add up to the heatmap of the whole channel."""
    one = np.repeat(x[:1], 16, axis=0)
    parts = receptive_field_heatmaps(crp, one, "conv3", 5, np.arange(16))
    whole = receptive_field_heatmaps(crp, x[:1], "conv3", 5)
    np.testing.assert_allclose(parts.sum(0), whole[0], rtol=1e-5, atol=1e-6)
    refs = reference_images(crp, x[:2], "conv3", 5)
    assert len(refs) == 2 and refs[0].image.shape == refs[0].masked.shape
    with pytest.raises(ValueError, match="channel 16 is out of range"):
        receptive_field_heatmaps(crp, x, "conv3", 16)
    with pytest.raises(ValueError, match="positions in \\[0, 16\\)"):
        receptive_field_heatmaps(crp, x[:1], "conv3", 1, [16])


@pytest.mark.parametrize("layer,channel", [("conv2", 1), ("conv2", 7), ("conv3", 5)])
def test_receptive_field_matches_zennit_crp(crp, layer, channel):
    """zennit-crp's receptive-field heatmaps (FeatureVisualization._attribution_on_reference
    with rf=True, EpsilonPlus; tools/make_crp_relmax_reference.py) of a channel's top 4 RelMax
    samples, each started at its most relevant neuron."""
    path = Path(__file__).parent.parent / "data" / "crp" / "relmax.npz"
    with np.load(path) as ref:
        rows = ref[f"rel_{layer}_index"][:4, channel]
        neurons = ref[f"rel_{layer}_neuron"][:4, channel]
        expected = ref[f"rf_{layer}_{channel}_heatmap"]
        x = ref["x"][rows]
    heat = receptive_field_heatmaps(crp, x, layer, channel, neurons)[..., 0]
    scale = np.abs(expected).max()
    np.testing.assert_allclose(heat, expected, atol=1e-5 * scale, rtol=0)
