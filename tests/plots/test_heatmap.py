"""keras_lrp.plots.heatmap: exact colours, normalisation, and PNGs that show red where R > 0."""

import os

import matplotlib.image as mpimg
import numpy as np
import pytest

from keras_lrp.plots import heatmap as hm


def _png(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[-1] in (3, 4)
    return img[..., :3]


def _red(img):
    return (img[..., 0] > 0.9) & (img[..., 1] < 0.1) & (img[..., 2] < 0.1)


def _blue(img):
    return (img[..., 0] < 0.1) & (img[..., 1] < 0.1) & (img[..., 2] > 0.9)


def _size_px(fig, dpi):
    w, h = fig.get_size_inches() * dpi
    return int(round(h)), int(round(w))


# ----------------------------------------------------------------- colour map


def test_known_colours():
    r = np.array([[[4.0, -4.0, 0.0, 2.0, -1.0]]])  # (1, 1, 5); max |R| = 4
    rgb = hm.heatmap(r)
    assert rgb.shape == (1, 1, 5, 3)
    np.testing.assert_array_equal(rgb[0, 0, 0], [1, 0, 0])     # +max → pure red
    np.testing.assert_array_equal(rgb[0, 0, 1], [0, 0, 1])     # -max → pure blue
    np.testing.assert_array_equal(rgb[0, 0, 2], [1, 1, 1])     # 0 → white
    np.testing.assert_array_equal(rgb[0, 0, 3], [1, .5, .5])   # +max/2
    np.testing.assert_allclose(rgb[0, 0, 4], [.75, .75, 1])    # -max/4


def test_map_is_linear_and_in_range():
    t = np.linspace(-1, 1, 21)[None, None, :]
    rgb = hm.heatmap(t, normalize=None)
    assert rgb.min() >= 0 and rgb.max() <= 1
    pos, neg = t[0, 0] >= 0, t[0, 0] < 0
    np.testing.assert_allclose(rgb[0, 0, pos], np.stack(
        [np.ones(pos.sum()), 1 - t[0, 0, pos], 1 - t[0, 0, pos]], -1), atol=1e-12)
    np.testing.assert_allclose(rgb[0, 0, neg], np.stack(
        [1 + t[0, 0, neg], 1 + t[0, 0, neg], np.ones(neg.sum())], -1), atol=1e-12)


def test_sample_vs_global_normalisation():
    r = np.zeros((2, 1, 2))
    r[0, 0] = [1.0, 0.5]
    r[1, 0] = [4.0, 2.0]
    per_sample = hm.heatmap(r, normalize="sample")
    np.testing.assert_array_equal(per_sample[0], per_sample[1])  # each scaled by its own max
    np.testing.assert_array_equal(per_sample[0, 0, 1], [1, .5, .5])
    glob = hm.heatmap(r, normalize="global")  # one max = 4 for the batch
    np.testing.assert_array_equal(glob[0, 0, 0], [1, .75, .75])
    np.testing.assert_array_equal(glob[0, 0, 1], [1, .875, .875])
    np.testing.assert_array_equal(glob[1, 0, 0], [1, 0, 0])


def test_no_normalisation_clips():
    rgb = hm.heatmap(np.array([[[3.0, -0.5, 0.25]]]), normalize=None)
    np.testing.assert_array_equal(rgb[0, 0], [[1, 0, 0], [.5, .5, 1], [1, .75, .75]])


def test_channel_reduction_sums_channels():
    r = np.zeros((1, 2, 2, 3))
    r[0, 0, 0] = [1.0, 1.0, -0.5]    # sum 1.5 = max → red
    r[0, 1, 1] = [-1.0, 0.5, -0.25]  # sum -0.75 → half blue
    r[0, 0, 1] = [1.0, -1.0, 0.0]    # sum 0 → white, although the channels are not zero
    rgb = hm.heatmap(r)
    np.testing.assert_array_equal(rgb[0, 0, 0], [1, 0, 0])
    np.testing.assert_array_equal(rgb[0, 1, 1], [.5, .5, 1])
    np.testing.assert_array_equal(rgb[0, 0, 1], [1, 1, 1])
    # channels first: the same maps with reduce_axis=1
    np.testing.assert_array_equal(hm.heatmap(np.moveaxis(r, -1, 1), reduce_axis=1), rgb)
    # a single channel needs no reduction, also with reduce_axis=None
    np.testing.assert_array_equal(hm.heatmap(r.sum(-1, keepdims=True), reduce_axis=None), rgb)


def test_all_zero_sample_is_white_without_nan():
    r = np.zeros((2, 3, 3, 1))
    r[1, 0, 0, 0] = -2.0
    for normalize in ("sample", "global"):
        rgb = hm.heatmap(r, normalize=normalize)
        assert not np.isnan(rgb).any()
        np.testing.assert_array_equal(rgb[0], np.ones((3, 3, 3)))
        np.testing.assert_array_equal(rgb[1, 0, 0], [0, 0, 1])


def test_bad_shapes_and_values_raise():
    with pytest.raises(ValueError, match=r"\(5, 4\)"):
        hm.heatmap(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 3\).*reduce_axis"):
        hm.heatmap(np.zeros((1, 2, 2, 3)), reduce_axis=None)
    with pytest.raises(ValueError, match="normalize"):
        hm.heatmap(np.zeros((1, 2, 2)), normalize="max")
    with pytest.raises(ValueError, match="NaN"):
        hm.heatmap(np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match="nosuchmap"):
        hm.heatmap(np.zeros((1, 2, 2)), cmap="nosuchmap")


def test_overlay_blends_onto_grey():
    rgb = hm.heatmap(np.array([[[1.0, 0.0]]]))             # red, white
    x = np.array([[[0.0, 10.0]]])                          # grey → 0 (black), 1 (white)
    out = hm.overlay(rgb, x, alpha=0.5)
    np.testing.assert_allclose(out[0, 0], [[.5, 0, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match=r"\(1, 1, 3\)"):
        hm.overlay(rgb, np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match="alpha"):
        hm.overlay(rgb, x, alpha=2)


# ----------------------------------------------------------------- figures


def _left_right(n=2, size=8):
    """Positive relevance on the left half, negative on the right, for every sample."""
    r = np.zeros((n, size, size, 3))
    r[:, :, : size // 2] = 1.0
    r[:, :, size // 2:] = -1.0
    return r


def test_plot_grid_png_shows_red_left_blue_right(tmp_path):
    path = tmp_path / "grid.png"
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3))
    fig = hm.plot_grid({"lrp.z": _left_right(), "lrp.epsilon": -_left_right()}, inputs=x,
                       row_titles=["a", "b"], path=str(path), dpi=40)
    img = _png(path)
    assert img.shape[:2] == _size_px(fig, 40) == (int(round((2 * 2 + .4) * 40)), 3 * 2 * 40)
    # column 2 (lrp.z): red left of blue; column 3 (lrp.epsilon, negated): blue left of red
    width = img.shape[1]
    red_x, blue_x = np.nonzero(_red(img))[1], np.nonzero(_blue(img))[1]
    col2 = lambda xs: xs[(xs > width / 3) & (xs < 2 * width / 3)]  # noqa: E731
    col3 = lambda xs: xs[xs > 2 * width / 3]  # noqa: E731
    assert col2(red_x).size > 100 and col2(blue_x).size > 100
    assert col2(red_x).mean() < col2(blue_x).mean()
    assert col3(blue_x).mean() < col3(red_x).mean()
    assert not _red(img)[:, : width // 3].any()  # the input column holds no pure red
    assert sorted(os.listdir(tmp_path)) == ["grid.png"]  # no temp file left


def test_plot_grid_rows_follow_samples(tmp_path):
    r = np.zeros((2, 6, 6))
    r[0] = 1.0    # sample 0 all red
    r[1] = -1.0   # sample 1 all blue
    hm.plot_grid({"a": r}, path=str(tmp_path / "rows.png"), dpi=30)
    img = _png(tmp_path / "rows.png")
    red_y, blue_y = np.nonzero(_red(img))[0], np.nonzero(_blue(img))[0]
    assert red_y.size > 100 and blue_y.size > 100
    assert red_y.max() < blue_y.min()


def test_plot_grid_overlay_and_errors(tmp_path):
    r, x = _left_right(1), np.ones((1, 8, 8, 3))
    fig = hm.plot_grid({"a": r}, inputs=x, overlay=True)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="overlay=True needs inputs"):
        hm.plot_grid({"a": r}, overlay=True)
    with pytest.raises(ValueError, match=r"\(1, 8, 8\).*\(1, 4, 4\)"):
        hm.plot_grid({"a": r, "b": np.zeros((1, 4, 4))})
    with pytest.raises(ValueError, match=r"\(1, 8, 7, 3\)"):
        hm.plot_grid({"a": r}, inputs=np.zeros((1, 8, 7, 3)))
    with pytest.raises(ValueError, match="row_titles has 2 entries for 1"):
        hm.plot_grid({"a": r}, row_titles=["a", "b"])
    with pytest.raises(ValueError, match="at least one column"):
        hm.plot_grid({})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hm.plot_grid({"a": r}, path=str(tmp_path / "missing" / "x.png"))


def test_plot_features_bars(tmp_path):
    r = np.array([[2.0, -1.0, 0.5], [-3.0, 0.0, 1.0]])
    fig = hm.plot_features(r, feature_names=["age", "bmi", "bp"], path=str(tmp_path / "f.png"),
                           titles=["s0", "s1"], dpi=50)
    img = _png(tmp_path / "f.png")
    assert img.shape[:2] == _size_px(fig, 50)
    assert _red(img).sum() > 50 and _blue(img).sum() > 50
    ax0 = fig.axes[0]
    heights = [p.get_height() for p in ax0.patches]
    colours = [tuple(p.get_facecolor()[:3]) for p in ax0.patches]
    assert heights == [2.0, -1.0, 0.5]
    assert colours == [(1, 0, 0), (0, 0, 1), (1, 0, 0)]
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 4\)"):
        hm.plot_features(np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="feature_names has 2 entries for 3"):
        hm.plot_features(r, feature_names=["a", "b"])


def test_plot_comparison_images_share_scale(tmp_path):
    bias = _left_right(1)
    ib = 0.5 * bias  # IB half as strong: shares bias's scale, so it is pale, not pure
    fig = hm.plot_comparison(bias, ib, path=str(tmp_path / "c.png"), dpi=40)
    assert [ax.get_title() for ax in fig.axes] == ["bias", "IB"]
    img = _png(tmp_path / "c.png")
    half = img.shape[1] // 2
    assert _red(img[:, :half]).sum() > 100 and _blue(img[:, :half]).sum() > 100
    assert not _red(img[:, half:]).any() and not _blue(img[:, half:]).any()
    pale = (np.abs(img[:, half:, 0] - 1) < .02) & (np.abs(img[:, half:, 1] - .5) < .02)
    assert pale.sum() > 100  # (1, .5, .5): half the shared maximum


def test_plot_comparison_tabular_and_errors(tmp_path):
    a = np.array([[1.0, -2.0]])
    fig = hm.plot_comparison(a, a * 0.5, names=("with", "without"), path=str(tmp_path / "t.png"))
    bars = fig.axes[0].patches
    assert [p.get_height() for p in bars] == [1.0, -2.0, 0.5, -1.0]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["with", "without"]
    assert _red(_png(tmp_path / "t.png")).any()
    with pytest.raises(ValueError, match=r"\(1, 2\).*\(1, 3\)"):
        hm.plot_comparison(a, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="names"):
        hm.plot_comparison(a, a, names=("x", "x"))


def test_saved_png_has_the_usual_permissions(tmp_path):
    """The atomic save must not leave mkstemp's private 0600 mode on the user's figure."""
    import os
    import stat

    from keras_lrp.plots.heatmap import plot_features

    path = tmp_path / "bars.png"
    plot_features(np.array([[1.0, -1.0]]), path=path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask


# ----------------------------------------------------------------- colour bar and captions


def _colour_bar(fig):
    """The colour bar: the one child (inset) axes of the panels; fig.axes holds only panels."""
    children = [c for ax in fig.axes for c in ax.child_axes]
    assert len(children) == 1, children
    return children[0]


def _heat_panels(fig, n, ncols, first):
    """fig.axes row by row as an (n, ncols) list, then only the heatmap columns."""
    assert len(fig.axes) == n * ncols
    return [fig.axes[i * ncols + first:(i + 1) * ncols] for i in range(n)]


def _peaked(n=3, size=6, peaks=(0.8312, 1234.5, 2e-5), seed=1):
    """(n, size, size, 2) relevance whose channel sum has max |R| = peaks[i] in sample i."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(-0.4, 0.4, (n, size, size, 2)) * np.array(peaks)[:n, None, None, None]
    r[np.arange(n), 1, 2, 0] = -np.array(peaks)[:n]  # the extreme, negative, in channel 0
    r[np.arange(n), 1, 2, 1] = 0.0
    return r


@pytest.mark.parametrize("normalize, label", [
    ("sample", "R / max|R| of each panel"), ("global", "R / max|R| of the batch"),
    (None, "R (clipped to [-1, 1])")])
def test_plot_grid_colour_bar_is_the_heatmap_map_with_its_meaning(normalize, label):
    fig = hm.plot_grid({"a": _peaked(), "b": -_peaked()}, normalize=normalize)
    cax = _colour_bar(fig)
    assert cax.get_ylabel() == label
    assert cax.get_ylim() == (-1.0, 1.0)
    np.testing.assert_array_equal(cax.get_yticks(), [-1, 0, 1])
    from matplotlib.collections import QuadMesh

    mesh, = [c for c in cax.collections if isinstance(c, QuadMesh)]  # the colour bar's bins
    assert mesh.get_array().size == 255
    t = np.linspace(-1, 1, 41)
    rgb = mesh.get_cmap()(mesh.norm(t))[:, :3]
    np.testing.assert_allclose(rgb, hm.heatmap(t[None, None], normalize=None)[0, 0],
                               atol=1.01 / 255)
    np.testing.assert_array_equal(rgb[[0, 20, -1]].round(2), [[0, 0, 1], [1, 1, 1], [1, 0, 0]])


def test_plot_grid_sample_captions_give_each_panel_its_max():
    r, x = _peaked(), np.zeros((3, 6, 6))
    fig = hm.plot_grid({"a": r, "b": 3 * r[..., ::-1]}, inputs=x, row_titles=["p", "q", "s"])
    expected = {"a": np.abs(r.sum(-1)).max(axis=(1, 2)),
                "b": np.abs(3 * r.sum(-1)).max(axis=(1, 2))}
    np.testing.assert_allclose(expected["a"], [0.8312, 1234.5, 2e-5])
    panels = _heat_panels(fig, 3, 3, first=1)
    for i in range(3):
        assert [ax.get_xlabel() for ax in panels[i]] == [
            f"max|R| {expected['a'][i]:.3g}", f"max|R| {expected['b'][i]:.3g}"]
        assert fig.axes[3 * i].get_xlabel() == ""  # the input column has no caption
        assert fig.axes[3 * i].get_ylabel() == "pqs"[i]
    assert [ax.get_xlabel() for ax in panels[1]] == ["max|R| 1.23e+03", "max|R| 3.7e+03"]
    assert panels[0][0].get_xlabel() == "max|R| 0.831"


def test_plot_grid_global_states_each_columns_max_once_and_none_states_none():
    r = _peaked()
    fig = hm.plot_grid({"a": r, "b": -0.5 * r}, normalize="global")
    captions = [[ax.get_xlabel() for ax in row] for row in _heat_panels(fig, 3, 2, first=0)]
    top = np.abs(r.sum(-1)).max()  # the batch's max |R|, sample 1's 1234.5
    assert captions == [["", ""], ["", ""],
                        [f"batch max|R| {top:.3g}", f"batch max|R| {0.5 * top:.3g}"]]
    assert captions[2] == ["batch max|R| 1.23e+03", "batch max|R| 617"]
    fig = hm.plot_grid({"a": r}, normalize=None)
    assert [ax.get_xlabel() for ax in fig.axes] == ["", "", ""]


def test_plot_grid_scales_caption_every_row_and_label_overrides():
    r = _left_right(2)
    fig = hm.plot_grid({"a": r, "b": r}, normalize=None, scales=[0.25, 40.0],
                       scale_label="R / my scale")
    assert [[ax.get_xlabel() for ax in row] for row in _heat_panels(fig, 2, 2, first=0)] == [
        ["max|R| 0.25", "max|R| 0.25"], ["max|R| 40", "max|R| 40"]]
    assert _colour_bar(fig).get_ylabel() == "R / my scale"
    with pytest.raises(ValueError, match="normalize=None"):
        hm.plot_grid({"a": r}, scales=[1.0, 1.0])
    with pytest.raises(ValueError, match="2 finite values"):
        hm.plot_grid({"a": r}, normalize=None, scales=[1.0])
    with pytest.raises(ValueError, match="2 finite values"):
        hm.plot_grid({"a": r}, normalize=None, scales=[1.0, -1.0])


@pytest.mark.parametrize("normalize", ["sample", "global", None])
def test_plot_grid_panels_still_show_exactly_the_heatmap(normalize):
    r = _peaked()
    fig = hm.plot_grid({"a": r}, inputs=np.zeros((3, 6, 6)), normalize=normalize)
    for i in range(3):
        np.testing.assert_array_equal(fig.axes[2 * i + 1].images[0].get_array(),
                                      hm.heatmap(r, normalize=normalize)[i])


@pytest.mark.parametrize("n, inputs, titles, compare", [
    (3, True, True, False), (3, False, True, False), (3, False, False, False),
    (1, False, True, True), (1, True, True, True), (2, False, False, True)])
def test_colour_bar_captions_and_row_labels_do_not_overlap(n, inputs, titles, compare):
    """In the drawn figure, the colour bar with its ticks and label, the captions and the row
    labels each stay clear of every panel and of one another, inside the figure."""
    x = np.zeros((n, 6, 6)) if inputs else None
    labels = ["3 → 3", "1 → 7", "0 → 0"][:n] if titles else None
    if compare:
        fig = hm.plot_comparison(_peaked(n), _peaked(n, seed=2), inputs=x, row_titles=labels)
    else:
        fig = hm.plot_grid({"lrp.z": _peaked(n), "lrp.epsilon": _peaked(n)}, inputs=x,
                           row_titles=labels)
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    panels = [ax.get_window_extent(renderer) for ax in fig.axes]
    bar = _colour_bar(fig).get_tightbbox(renderer)
    texts = [ax.xaxis.label for ax in fig.axes if ax.get_xlabel()]
    texts += [ax.yaxis.label for ax in fig.axes if ax.get_ylabel()]
    assert len(texts) == 2 * n + n * titles
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(bar.overlaps(p) for p in panels)
    assert not any(b.overlaps(p) for b in boxes for p in panels)
    assert not any(b.overlaps(bar) for b in boxes)
    width, height = fig.bbox.width, fig.bbox.height
    for box in [bar, *boxes, *panels]:  # everything inside the figure
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height


def test_plot_comparison_captions_the_shared_row_scale_and_labels_rows():
    a = _peaked(2, peaks=(2.0, 0.5))
    b = _peaked(2, peaks=(1.0, 8.0), seed=2)
    x = np.zeros((2, 6, 6))
    fig = hm.plot_comparison(a, b, inputs=x, row_titles=["3 → 3", "1 → 7"])
    shared = np.maximum(np.abs(a.sum(-1)).max(axis=(1, 2)), np.abs(b.sum(-1)).max(axis=(1, 2)))
    np.testing.assert_allclose(shared, [2.0, 8.0])  # row 0's from bias, row 1's from IB
    panels = _heat_panels(fig, 2, 3, first=1)
    assert [[ax.get_xlabel() for ax in row] for row in panels] == [
        [f"max|R| {shared[0]:.3g}"] * 2, [f"max|R| {shared[1]:.3g}"] * 2]
    assert [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["3 → 3", "1 → 7"]
    assert _colour_bar(fig).get_ylabel() == "R / max|R| shared by the row"
    # the pixels: each variant divided by the row's shared scale
    np.testing.assert_array_equal(panels[1][1].images[0].get_array(),
                                  hm.heatmap(b.sum(-1) / 8.0, normalize=None)[1])
    with pytest.raises(ValueError, match="row_titles has 1 entries for 2"):
        hm.plot_comparison(a, b, row_titles=["x"])


def test_plot_comparison_tabular_row_titles_are_the_panel_titles():
    a = np.array([[1.0, -2.0], [0.5, 0.5]])
    fig = hm.plot_comparison(a, a * 0.5, row_titles=["0 → 0", "1 → 0"])
    assert [ax.get_title() for ax in fig.axes] == ["0 → 0", "1 → 0"]


# ----------------------------------------------------------------- the difference column


def test_plot_comparison_difference_column_has_its_own_scale_and_the_moved_share():
    a = _peaked(2, peaks=(2.0, 0.5))
    b = _peaked(2, peaks=(1.0, 8.0), seed=2)
    fig = hm.plot_comparison(a, b, inputs=np.zeros((2, 6, 6)), row_titles=["3 → 3", "1 → 7"],
                             difference=True)
    panels = _heat_panels(fig, 2, 4, first=1)
    assert [ax.get_title() for ax in panels[0]] == ["bias", "IB", "difference"]
    d = a.sum(-1) - b.sum(-1)
    dpeak = np.abs(d).max(axis=(1, 2))
    pa, pb = a.sum(-1).reshape(2, -1), b.sum(-1).reshape(2, -1)
    moved = 0.5 * np.abs(pa / np.abs(pa).sum(1, keepdims=True)
                         - pb / np.abs(pb).sum(1, keepdims=True)).sum(1)
    for i in range(2):
        assert panels[i][2].get_xlabel() == (f"max|ΔR| {dpeak[i]:.3g}, moved "
                                             f"{100 * moved[i]:.0f}%")
        np.testing.assert_array_equal(panels[i][2].images[0].get_array(),
                                      hm.heatmap(d / dpeak[i], normalize=None)[i])
    bars = [c for ax in fig.axes for c in ax.child_axes]
    assert [c.get_ylabel() for c in bars] == ["R / max|R| shared by the row",
                                              "ΔR / max|ΔR| of each panel"]
    titles = [t.get_text() for t in fig.texts]
    assert titles == [f"bias − IB: {100 * moved.mean():.0f}% of the relevance moved (mean over "
                      "the rows)"]
    # the second colour bar sits between the IB column and the difference column
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    box = bars[1].get_tightbbox(renderer)
    assert panels[0][1].get_window_extent(renderer).x1 < box.x0
    assert box.x1 < panels[0][2].get_window_extent(renderer).x0
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)


def test_plot_comparison_difference_without_it_is_unchanged_and_tabular_gets_bars():
    a = np.array([[1.0, -2.0], [0.5, 0.5]])
    b = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert len(hm.plot_comparison(_peaked(1), _peaked(1)).axes) == 2
    fig = hm.plot_comparison(a, b, names=("eps", "eps_IB"), row_titles=["0 → 0", "1 → 0"],
                             difference=True)
    assert [p.get_height() for p in fig.axes[0].patches] == [1.0, -2.0, 1.0, 0.0, 0.0, -2.0]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "eps", "eps_IB", "eps − eps_IB"]
    # sample 0: p = (1/3, −2/3), q = (1, 0): ½(2/3 + 2/3) = 67%; sample 1: the same map
    assert [ax.get_title() for ax in fig.axes] == ["0 → 0 · moved 67%", "1 → 0 · moved 0%"]
