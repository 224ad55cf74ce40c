"""The concepts demo (keras_lrp.demos.concepts): the synthetic shapes × colours task follows its
definition, its measures equal values worked out by hand, and on the shipped CNN the channels
found for each part highlight that part and find the samples holding it, well above chance.

The margins: a part's region (its pixels dilated by one) covers under 10 % of the image, and
the plain heatmap puts about half its positive relevance there (two or three parts share it);
the conditional heatmap of the part's channel must put at least 0.7 there (measured 0.98,
0.83, 0.76) and beat the plain heatmap's share by 0.2. Each part is in about half the samples;
the top 50 of 200 by the channel's relevance must hold it in at least 90 % (measured 100 %).
Under chance (p = 0.55) 45 or more of 50 has probability below 1e-7.
"""

from pathlib import Path

import numpy as np

from keras_lrp.cli.app import main
from keras_lrp.demos import concepts as cd

MODELS = Path(__file__).resolve().parents[2] / "keras_lrp" / "demos" / "models"


def test_shipped_test_set_is_the_generator_s():
    x, y, masks = cd.load_test(MODELS)
    x2, y2, masks2 = cd.concepts_data(400, seed=2)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(masks, masks2)


def test_concepts_data_follows_its_definition():
    x, y, masks = cd.concepts_data(300, seed=5)
    assert x.shape == (300, 16, 16, 3) and x.dtype == np.float32 and masks.shape == (300, 3, 16, 16)
    assert 0 <= x.min() and x.max() <= 1
    present = masks.any(axis=(2, 3))
    np.testing.assert_array_equal(y, present @ np.array([1, 2, 4]))
    assert 0.35 < present.mean() < 0.65
    for p, (_, shape, colour) in enumerate(cd.PARTS):
        sizes = masks[:, p].sum(axis=(1, 2))[present[:, p]]
        assert np.all(sizes == cd.SHAPES[shape].sum())
        pix = x[masks[:, p]]  # the part's pixels are bright in its own colour only
        assert pix[:, colour].min() > 0.8 and np.delete(pix, colour, axis=1).max() < 0.3
    assert not (masks.sum(axis=1) > 1).any()  # parts never overlap


def test_measures_by_hand():
    heat = np.zeros((2, 16, 16))
    heat[0, 0, 0], heat[0, 5, 5], heat[0, 9, 9] = 3.0, 1.0, -4.0
    region = np.zeros((2, 16, 16), bool)
    region[:, :2, :2] = True
    np.testing.assert_allclose(cd.positive_share(heat, region), [0.75, 0.0])
    assert cd.precision_at(np.array([0.1, 0.9, 0.5, 0.7]), np.array([1, 0, 1, 1]), 2) == 0.5
    mask = np.zeros((1, 16, 16), bool)
    mask[0, 0, 0] = mask[0, 8, 8] = True
    assert cd.regions(mask).sum() == 4 + 9


def test_concepts_demo_on_the_shipped_model(tmp_path, capsys):
    rc = main(["demo", "--task", "concepts", "--out", str(tmp_path / "c"),
               "--models-dir", str(MODELS)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "concepts_cnn on 400 test images (accuracy 0.998)" in out
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "concepts_graph.png", "concepts_heatmaps.png", "concepts_summary.txt"]
    assert (tmp_path / "c" / "concepts_summary.txt").read_text().strip() in out


def test_channels_find_their_parts(tmp_path):
    table = cd.run_concepts_demo(tmp_path, MODELS, verbose=False)
    channels = [row["channel"] for row in table.values()]
    assert len(set(channels)) == 3  # a channel of its own per part
    for name, row in table.items():
        assert row["share (chance)"] < 0.1, name
        assert row["share (conditional)"] >= 0.7, name
        assert row["share (conditional)"] >= row["share (plain)"] + 0.2, name
        assert row[f"RelMax p@{cd.TOP}"] >= 0.9, name
        assert 0.4 < row["p (chance)"] < 0.6, name
