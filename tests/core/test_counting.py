"""Core tests of the cell counter: hand-made masks with known answers, agreement with skimage."""

import numpy as np
import pandas as pd
import pytest
from skimage.measure import label as sk_label
from skimage.measure import regionprops_table

from napari_binseg import count_cells, count_summary, measure_objects, split_touching


def ball(shape, center, radius, spacing=None):
    """Boolean disc (2D) or ball (3D); radius in physical units when spacing is given."""
    spacing = np.ones(len(shape)) if spacing is None else np.asarray(spacing)
    grid = np.indices(shape, dtype=float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, center, spacing, strict=True))
    return d2 <= radius**2


def two_touching(ndim):
    """Two equal discs/balls overlapping a little: a dumbbell with a clear neck."""
    shape = (40, 70) if ndim == 2 else (30, 30, 60)
    c = [s // 2 for s in shape]
    a, b = list(c), list(c)
    a[-1], b[-1] = c[-1] - 9, c[-1] + 9
    return ball(shape, a, 10) | ball(shape, b, 10)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int32])
def test_touching_pair_is_split(ndim, dtype):
    mask = two_touching(ndim).astype(dtype)
    assert sk_label(mask).max() == 1  # one blob for plain connected components
    labels, table = count_cells(mask)
    assert labels.dtype == np.uint16
    assert len(table) == 2 and set(np.unique(labels)) == {0, 1, 2}
    # The cut runs through the neck: each half keeps about half of the pixels.
    sizes = np.bincount(labels.ravel())[1:]
    assert abs(int(sizes[0]) - int(sizes[1])) <= 0.05 * sizes.sum()
    assert (labels > 0).sum() == mask.astype(bool).sum()
    # Without the split, one object.
    _, table1 = count_cells(mask, split_touching=False)
    assert len(table1) == 1


@pytest.mark.parametrize("ndim", [2, 3])
def test_separate_round_objects_not_oversplit(ndim):
    rng = np.random.default_rng(0)
    shape = (120, 120) if ndim == 2 else (40, 60, 60)
    mask = np.zeros(shape, bool)
    centers = (
        [(30, 30), (30, 90), (90, 30), (90, 90)]
        if ndim == 2
        else [(20, 15, 15), (20, 15, 45), (20, 45, 15), (20, 45, 45)]
    )
    for c in centers:
        r = rng.uniform(8, 12)
        mask |= ball(shape, c, r)
    # An ellipse, elongated: still one nucleus.
    grid = np.indices(shape)
    if ndim == 2:
        mask |= ((grid[0] - 60) / 5.0) ** 2 + ((grid[1] - 60) / 14.0) ** 2 <= 1
    else:
        mask |= ((grid[0] - 20) / 4.0) ** 2 + ((grid[1] - 30) / 3.0) ** 2 + (
            (grid[2] - 30) / 10.0
        ) ** 2 <= 1
    labels, table = count_cells(mask)
    assert len(table) == sk_label(mask).max() == 5


def test_exclude_border():
    mask = np.zeros((50, 50), bool)
    mask[0:5, 10:15] = True  # top edge
    mask[20:25, 45:50] = True  # right edge
    mask[20:26, 20:26] = True  # inside
    labels, table = count_cells(mask, exclude_border=True, split_touching=False)
    assert len(table) == 1
    assert table.loc[0, "area"] == 36
    assert labels[22, 22] == 1 and labels[2, 12] == 0 and labels[22, 47] == 0
    _, all_table = count_cells(mask, exclude_border=False, split_touching=False)
    assert len(all_table) == 3


def test_exclude_border_3d_top_slice():
    mask = np.zeros((10, 30, 30), bool)
    mask[0:3, 10:15, 10:15] = True  # touches z = 0
    mask[4:7, 10:15, 10:15] = True
    _, table = count_cells(mask, exclude_border=True, split_touching=False)
    assert len(table) == 1 and table.loc[0, "bbox_min_z"] == 4


@pytest.mark.parametrize("ndim", [2, 3])
def test_fill_holes(ndim):
    shape = (30, 30) if ndim == 2 else (20, 30, 30)
    c = [s // 2 for s in shape]
    mask = ball(shape, c, 8) & ~ball(shape, c, 3)
    n_hole = int(ball(shape, c, 3).sum())
    _, filled = count_cells(mask, split_touching=False)
    _, kept = count_cells(mask, split_touching=False, fill_holes=False)
    size = "area" if ndim == 2 else "volume"
    assert filled.loc[0, size] == mask.sum() + n_hole
    assert kept.loc[0, size] == mask.sum()


def test_fill_holes_label_image_keeps_labels_and_skips_shared_holes():
    labels = np.zeros((20, 30), np.uint16)
    labels[2:9, 2:9] = 5
    labels[5, 5] = 0  # a hole inside label 5
    labels[10:18, 2:20] = 7
    labels[10:18, 20:28] = 9
    labels[13:15, 19:21] = 0  # a hole shared by labels 7 and 9
    out, table = count_cells(labels, split_touching=False)
    assert out[5, 5] == out[3, 3] != 0
    assert out[13, 19] == 0 and out[13, 20] == 0
    assert len(table) == 3
    assert labels[5, 5] == 0  # input untouched


def test_min_max_size_pixels_and_physical():
    mask = np.zeros((40, 60), bool)
    mask[2:4, 2:4] = True  # 4 px
    mask[10:20, 10:20] = True  # 100 px
    mask[25:39, 30:50] = True  # 280 px
    _, t = count_cells(mask, min_size=50, split_touching=False)
    assert sorted(t["area"]) == [100, 280]
    _, t = count_cells(mask, min_size=4, max_size=100, split_touching=False)
    assert sorted(t["area"]) == [4, 100]
    # 0.5 um pixels: 100 px = 25 um^2
    _, t = count_cells(mask, spacing=(0.5, 0.5), min_size=20, max_size=30, split_touching=False)
    assert t["area"].tolist() == [25.0]
    assert t.attrs["spacing"] == (0.5, 0.5)


def test_relabel_consecutive_after_filter():
    mask = np.zeros((30, 30), bool)
    mask[1:3, 1:3] = True
    mask[10:15, 10:15] = True
    mask[20:25, 20:25] = True
    labels, table = count_cells(mask, min_size=10, split_touching=False)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert table["label"].tolist() == [1, 2]
    assert labels[12, 12] == 1 and labels[22, 22] == 2


@pytest.mark.parametrize("spacing", [(2.0, 0.5, 0.5), (3.0, 1.0, 0.25)])
def test_anisotropic_spacing_matches_regionprops(spacing):
    shape = (16, 40, 48)
    mask = np.zeros(shape, bool)
    mask[2:8, 5:15, 5:20] = True
    mask |= ball(shape, (10, 28, 32), 6, spacing=spacing)
    image = np.random.default_rng(1).integers(0, 1000, shape).astype(np.uint16)
    labels, table = count_cells(mask, image, spacing=spacing, split_touching=False)
    ref = pd.DataFrame(
        regionprops_table(
            labels,
            image,
            properties=(
                "label",
                "area",
                "centroid",
                "intensity_mean",
                "intensity_min",
                "intensity_max",
                "bbox",
            ),
        )
    )
    assert len(table) == len(ref) == 2
    voxel = np.prod(spacing)
    np.testing.assert_allclose(table["volume"], ref["area"] * voxel)
    for k, ax in enumerate("zyx"):
        np.testing.assert_allclose(table[f"centroid_{ax}"], ref[f"centroid-{k}"] * spacing[k])
        np.testing.assert_array_equal(table[f"bbox_min_{ax}"], ref[f"bbox-{k}"])
        np.testing.assert_array_equal(table[f"bbox_max_{ax}"], ref[f"bbox-{k + 3}"])
    np.testing.assert_allclose(table["mean_intensity"], ref["intensity_mean"])
    np.testing.assert_array_equal(table["min_intensity"], ref["intensity_min"])
    np.testing.assert_array_equal(table["max_intensity"], ref["intensity_max"])
    np.testing.assert_allclose(
        table["equivalent_diameter"], np.cbrt(6 * ref["area"] * voxel / np.pi)
    )


def test_touching_spheres_split_with_anisotropic_spacing():
    spacing = (2.0, 0.5, 0.5)
    shape = (20, 60, 100)
    mask = ball(shape, (10, 30, 32), 9, spacing) | ball(shape, (10, 30, 68), 9, spacing)
    assert sk_label(mask).max() == 1
    labels, table = count_cells(mask, spacing=spacing)
    assert len(table) == 2
    np.testing.assert_allclose(sorted(table["centroid_x"]), [16.0, 34.0], atol=0.5)


@pytest.mark.parametrize("time_axis", [0, 1])
def test_time_series_counted_per_frame(time_axis):
    frames = []
    for n in (1, 3, 0, 2):
        f = np.zeros((30, 40), bool)
        for i in range(n):
            f[5:12, 3 + 12 * i : 10 + 12 * i] = True
        frames.append(f)
    mask = np.stack(frames, axis=time_axis)
    calls = []
    labels, table = count_cells(
        mask, time_axis=time_axis, split_touching=False, progress=lambda d, t: calls.append((d, t))
    )
    assert labels.shape == mask.shape
    assert table["frame"].tolist() == [0, 1, 1, 1, 3, 3]
    # Labels unique over the series, each row's label found in its frame.
    assert table["label"].tolist() == [1, 2, 3, 4, 5, 6]
    for _, row in table.iterrows():
        frame = np.take(labels, int(row["frame"]), axis=time_axis)
        assert (frame == row["label"]).sum() == row["area"] == 49
    summary = count_summary(table)
    assert summary["count"].tolist() == [1, 3, 0, 2]
    assert count_summary(labels, time_axis=time_axis)["count"].tolist() == [1, 3, 0, 2]
    assert calls[-1] == (12, 12) and len(calls) == 12


def test_progress_exception_stops():
    mask = np.zeros((3, 20, 20), bool)

    def stop(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        count_cells(mask, time_axis=0, progress=stop)


def test_labels_in_the_smallest_unsigned_type():
    """uint16 below 65536 objects, else uint32: for masks, label images and time series."""
    plain = dict(split_touching=False, fill_holes=False, min_size=0)
    dots = np.zeros((600, 600), bool)
    dots[::2, ::2] = True  # 90000 single pixels, apart even through corners
    labels, table = count_cells(dots, **plain)
    assert labels.dtype == np.uint32 and len(table) == labels.max() == 90000
    assert labels[::2, ::2].ravel().tolist() == list(range(1, 90001))
    # 90000 components, 100 of them kept (4 pixels each): relabeled 1..100 into uint16.
    dots[:40, :40] = False
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        dots[dy:40:4, dx:40:4] = True
    labels, table = count_cells(dots, **{**plain, "min_size": 2})
    assert labels.dtype == np.uint16 and len(table) == labels.max() == 100
    assert (np.bincount(labels.ravel())[1:] == 4).all()
    series, table = count_cells(np.stack([dots[:, :300], dots[:, 300:]]), time_axis=0, **plain)
    n_left = sk_label(dots[:, :300], connectivity=2).max()
    assert series.dtype == np.uint32 and series.max() == len(table) == n_left + 45000
    assert table.groupby("frame")["label"].min().tolist() == [1, n_left + 1]
    assert series[1, ::2, ::2].ravel().tolist() == list(range(n_left + 1, n_left + 45001))
    # Frame 0 was written while the series still fit uint16, then widened with it.
    assert np.array_equal(series[0], count_cells(dots[:, :300], **plain)[0])
    small = np.zeros((10, 10), np.uint8)
    small[2:5, 2:5] = 200
    assert count_cells(small, split_touching=False)[0].dtype == np.uint16
    wide = np.arange(70000, dtype=np.int64).reshape(280, 250)  # a label image, 69999 objects
    assert count_cells(wide, split_touching=False)[0].dtype == np.uint32
    signed = np.zeros((20, 30), np.int16)  # worked on as int32, returned as uint16
    signed[2:8, 2:8], signed[10:15, 10:20], signed[0:2, 25:30] = 5, 300, 7
    out, table = count_cells(signed, split_touching=False, min_size=20)
    assert out.dtype == np.uint16 and table["area"].tolist() == [36.0, 50.0]
    assert out[4, 4] == 1 and out[12, 12] == 2 and out[0, 27] == 0


def test_label_image_input_kept():
    # Two touching squares with different labels stay two objects, even without a split.
    labels = np.zeros((20, 30), np.int64)
    labels[5:15, 2:12] = 40
    labels[5:15, 12:22] = 1000
    before = labels.copy()
    out, table = count_cells(labels, split_touching=False, min_size=5)
    np.testing.assert_array_equal(labels, before)
    assert len(table) == 2
    assert out[10, 5] != out[10, 15] and out[10, 5] > 0
    out, table = count_cells(labels, split_touching=True)
    assert len(table) == 2 and (out > 0).sum() == 200
    # A label given to two touching discs is split when asked, never merged with others.
    pair = two_touching(2).astype(np.uint16) * 3
    pair[0:4, 0:4] = 7
    out, table = count_cells(pair)
    assert len(table) == 3


def test_binary_int_mask_of_ones_is_binary():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:6] = 1
    mask[10:15, 10:15] = 1
    _, table = count_cells(mask, split_touching=False)
    assert len(table) == 2


@pytest.mark.parametrize("connectivity, expected", [(1, 2), (2, 1), (4, 2), (8, 1)])
def test_connectivity(connectivity, expected):
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    mask[4:6, 4:6] = True  # diagonal contact only
    _, table = count_cells(mask, connectivity=connectivity, split_touching=False)
    assert len(table) == expected


def test_invalid_inputs():
    with pytest.raises(ValueError, match="mask"):
        count_cells(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="mask"):
        count_cells(np.zeros((2, 3, 10, 10), bool))
    with pytest.raises(ValueError, match="image shape"):
        count_cells(np.zeros((10, 10), bool), np.zeros((10, 11)))
    with pytest.raises(ValueError, match="spacing"):
        count_cells(np.zeros((10, 10), bool), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        count_cells(np.zeros((10, 10), bool), spacing=(0.0, 1.0))
    with pytest.raises(ValueError, match="connectivity"):
        count_cells(np.zeros((10, 10), bool), connectivity=6)
    with pytest.raises(ValueError, match="max_size"):
        count_cells(np.zeros((10, 10), bool), min_size=10, max_size=5)
    with pytest.raises(ValueError, match="time_axis"):
        count_cells(np.zeros((3, 10, 10), bool), time_axis=3)
    with pytest.raises(ValueError, match="negative"):
        count_cells(-np.ones((10, 10), np.int32))
    with pytest.raises(ValueError, match="image"):
        count_cells(np.zeros((10, 10), bool), split_touching="intensity")


def test_input_not_modified():
    mask = two_touching(2)
    before = mask.copy()
    count_cells(mask)
    np.testing.assert_array_equal(mask, before)


def test_empty_mask():
    labels, table = count_cells(np.zeros((20, 20), bool), np.ones((20, 20)))
    assert labels.max() == 0 and len(table) == 0
    assert "mean_intensity" in table.columns


def test_count_summary_per_slice():
    labels = np.zeros((4, 10, 10), np.int32)
    labels[0:2, 1:3, 1:3] = 1
    labels[1:3, 5:8, 5:8] = 2
    labels[1, 8, 0] = 3
    summary = count_summary(labels, per="slice")
    assert summary.columns.tolist() == ["z", "count"]
    assert summary["count"].tolist() == [1, 3, 1, 0]
    assert count_summary(labels)["count"].tolist() == [3]
    with pytest.raises(ValueError, match="per"):
        count_summary(labels, per="row")
    with pytest.raises(ValueError, match="slice"):
        count_summary(labels[0], per="slice")


def test_dask_input_matches_numpy():
    import dask.array as da

    mask = np.stack([two_touching(2)] * 3)
    lab_np, tab_np = count_cells(mask, time_axis=0)
    lab_da, tab_da = count_cells(da.from_array(mask, chunks=(1, 20, 70)), time_axis=0)
    np.testing.assert_array_equal(lab_np, lab_da)
    pd.testing.assert_frame_equal(tab_np, tab_da)


def test_table_matches_regionprops_on_sample(sample_image, sample_labels):
    spacing = (0.3, 0.2)
    labels, table = count_cells(
        sample_labels, sample_image, spacing=spacing, split_touching=False, fill_holes=False
    )
    assert len(table) == int(sample_labels.max()) == 179
    ref = pd.DataFrame(
        regionprops_table(
            labels,
            sample_image,
            properties=(
                "label",
                "area",
                "centroid",
                "intensity_mean",
                "intensity_min",
                "intensity_max",
                "bbox",
                "equivalent_diameter_area",
            ),
        )
    )
    np.testing.assert_array_equal(table["label"], ref["label"])
    np.testing.assert_allclose(table["area"], ref["area"] * 0.06)
    np.testing.assert_allclose(table["centroid_y"], ref["centroid-0"] * 0.3)
    np.testing.assert_allclose(table["centroid_x"], ref["centroid-1"] * 0.2)
    np.testing.assert_allclose(table["mean_intensity"], ref["intensity_mean"])
    np.testing.assert_array_equal(table["min_intensity"], ref["intensity_min"])
    np.testing.assert_array_equal(table["max_intensity"], ref["intensity_max"])
    np.testing.assert_array_equal(table["bbox_max_x"], ref["bbox-3"])
    np.testing.assert_allclose(
        table["equivalent_diameter"], ref["equivalent_diameter_area"] * np.sqrt(0.06)
    )
    # The instances are kept: each output object is exactly one ground-truth object.
    pairs = np.unique(np.stack([labels.ravel(), sample_labels.ravel()]), axis=1)
    assert pairs.shape[1] == 180


def test_split_recovers_sample_nuclei(sample_labels):
    # Binary union of the true nuclei: touching ones are merged; the split must do better than
    # connected components at counting them.
    mask = sample_labels > 0
    n_cc = sk_label(mask, connectivity=2).max()
    labels, table = count_cells(mask)
    n_true = int(sample_labels.max())
    assert n_cc < 0.8 * n_true
    assert abs(len(table) - n_true) <= 0.3 * (n_true - n_cc)
    # Objects matched one-to-one with a true nucleus at IoU > 0.5 (F1 0.96 when written).
    inter = np.zeros((n_true + 1, len(table) + 1))
    np.add.at(inter, (sample_labels.ravel(), labels.ravel()), 1)
    union = inter.sum(1)[:, None] + inter.sum(0)[None, :] - inter
    tp = int((inter[1:, 1:] / union[1:, 1:] > 0.5).sum())
    assert 2 * tp / (n_true + len(table)) >= 0.94


def test_measure_objects_non_consecutive_labels():
    labels = np.zeros((5, 8), np.uint8)
    labels[1:3, 1:4] = 9
    labels[4, 7] = 2
    table = measure_objects(labels)
    assert table["label"].tolist() == [2, 9]
    assert table["area"].tolist() == [1.0, 6.0]
    assert table["centroid_y"].tolist() == [4.0, 1.5]
    assert table["bbox_min_x"].tolist() == [7, 1]
    assert table.attrs["unit"] == "pixel"


def test_split_touching_function_consecutive_output():
    mask = two_touching(2).astype(np.int32)
    out = split_touching(mask)
    assert out.dtype == np.int32 and set(np.unique(out)) == {0, 1, 2}
    # min_diameter larger than the nuclei: pieces are merged back.
    assert split_touching(mask, min_diameter=40).max() == 1


@pytest.mark.parametrize("ndim", [2, 3])
def test_split_without_edt_package(monkeypatch, ndim):
    # The optional fast distance transform (edt) and scipy's fallback give the same split.
    import sys

    mask = two_touching(ndim)
    with_edt, _ = count_cells(mask)
    monkeypatch.setitem(sys.modules, "edt", None)
    without, _ = count_cells(mask)
    assert without.max() == 2
    assert (with_edt == without).mean() > 0.97


def test_min_diameter_in_physical_units():
    # Discs of radius 10 px; with 0.5 um pixels they are 10 um wide.
    mask = two_touching(2)
    assert len(count_cells(mask, spacing=(0.5, 0.5), min_diameter=4.0)[1]) == 2
    # A smallest nucleus of 25 um (50 px) is wider than either half: merged back.
    assert len(count_cells(mask, spacing=(0.5, 0.5), min_diameter=25.0)[1]) == 1
    # 12 is wider than a half (10 um) in um, narrower (20 px) in pixels.
    assert len(count_cells(mask, spacing=(0.5, 0.5), min_diameter=12.0)[1]) == 1
    assert len(count_cells(mask, min_diameter=12.0)[1]) == 2


@pytest.mark.parametrize("ndim", [2, 3])
def test_nucleus_with_hole_not_split_and_filled(ndim):
    shape = (40, 40) if ndim == 2 else (30, 40, 40)
    c = [s // 2 for s in shape]
    mask = ball(shape, c, 12) & ~ball(shape, c, 4)
    labels, table = count_cells(mask)
    assert len(table) == 1
    assert labels[tuple(c)] == 1  # hole filled


def test_read_only_mask_and_rgb_refused(tmp_path):
    """Issue 15: a read-only memmap is counted; a (Y, X, 3) mask is refused as RGB."""
    import tifffile

    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 5:15] = 1
    mask[20:30, 25:45] = 1
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    read_only = tifffile.memmap(tmp_path / "mask.tif", mode="r")
    labels, table = count_cells(read_only, min_size=0)[:2]
    assert len(table) == 2 and labels.max() == 2
    with pytest.raises(ValueError, match="RGB"):
        count_cells(np.zeros((32, 32, 3), np.uint8))
    assert count_cells(np.zeros((32, 32, 3), np.uint8), axes="ZYX", min_size=0)[1].empty


# Scale-aware defaults (issue 13) and axes (issue 14).


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_count_at_three_magnifications(seed):
    from napari_binseg import threshold
    from napari_binseg.synthetic import synthetic_nuclei

    counts = []
    for zoom in (1, 3, 8):  # nuclei ~12, ~36 and ~100 px across
        image, truth = synthetic_nuclei(
            (96 * zoom, 96 * zoom), radius=6.0 * zoom, blur=zoom, seed=seed
        )
        labels, table = count_cells(threshold(image), image=image)
        counts.append(len(table))
        assert table.attrs["diameter"] == pytest.approx(12 * zoom, rel=0.3)
    # The same count at every magnification (one nucleus of slack for the pixel grid), and
    # close to the truth (16 nuclei, a few touching).
    assert max(counts) - min(counts) <= 1
    assert all(abs(c - int(truth.max())) <= 2 for c in counts)


def test_saturated_specks_count_like_the_clean_image():
    from napari_binseg import threshold
    from napari_binseg.synthetic import synthetic_nuclei

    image, truth = synthetic_nuclei((256, 256), radius=10, seed=3, dtype=np.float32)
    clean = np.round(image / image.max() * 60).astype(np.uint8)  # dim nuclei, 8-bit
    specks = clean.copy()
    for y, x in np.random.default_rng(0).integers(10, 245, (6, 2)):
        specks[y - 2 : y + 3, x - 2 : x + 3] = 255  # saturated debris
    _, t_clean = threshold(clean, return_thresholds=True)
    _, t_specks = threshold(specks, return_thresholds=True)
    assert abs(float(t_specks) - float(t_clean)) <= 3
    _, clean_table = count_cells(threshold(clean), image=clean)
    _, speck_table = count_cells(threshold(specks), image=specks)
    assert len(clean_table) == int(truth.max())
    # The specks are far smaller than a nucleus: the scale-aware minimum size drops them.
    assert abs(len(speck_table) - len(clean_table)) <= 1


def test_min_size_auto_drops_specks_and_is_recorded():
    mask = two_touching(2)
    mask[0:2, 0:2] = True  # a 4-pixel speck
    _, table = count_cells(mask)
    assert len(table) == 2
    assert table.attrs["diameter"] == pytest.approx(20, rel=0.2)
    assert table.attrs["min_size"] == pytest.approx(0.1 * np.pi * table.attrs["diameter"] ** 2 / 4)
    # min_size=0 keeps everything (0.1's default); a label image keeps its objects too.
    assert len(count_cells(mask, min_size=0)[1]) == 3
    assert len(count_cells(sk_label(mask).astype(np.uint16), split_touching=False)[1]) == 2


def test_diameter_given_in_physical_units():
    mask = two_touching(2)
    _, t = count_cells(mask, spacing=(0.5, 0.5), diameter=10.0)
    assert len(t) == 2 and t.attrs["diameter"] == 10.0 and t.attrs["diameter_px"] == 20.0
    # Estimated: the same nuclei measure the same in pixels, whatever the calibration.
    _, px = count_cells(mask)
    _, um = count_cells(mask, spacing=(0.5, 0.5))
    assert um.attrs["diameter"] == pytest.approx(px.attrs["diameter"] / 2)
    assert um.attrs["diameter_px"] == pytest.approx(px.attrs["diameter"])
    with pytest.raises(ValueError, match="count.diameter must be > 0"):
        count_cells(mask, diameter=-1.0)


def test_tzyx_counts_per_frame_with_axes():
    from napari_binseg.synthetic import synthetic_stack

    spacing = (2.0, 1.0, 1.0)
    image, truth = synthetic_stack((3, 16, 96, 96), spacing=spacing, fill=0.1, seed=5)
    from napari_binseg import threshold

    mask = threshold(image, scope="frame")
    labels, table = count_cells(mask, image=image, spacing=spacing, axes="TZYX")
    assert labels.shape == image.shape
    assert table.attrs["n_frames"] == 3 and len(table.attrs["frame_diameters"]) == 3
    summary = count_summary(table)
    for t in range(3):
        n_true = len(np.unique(truth[t])) - 1
        assert abs(summary["count"][t] - n_true) <= max(1, 0.15 * n_true)
        # Labels restart per frame only through the offset: frame t's labels are its rows.
        assert set(np.unique(labels[t])) - {0} == set(table["label"][table["frame"] == t])
    assert {"volume", "centroid_z", "equivalent_diameter", "mean_intensity"} <= set(table)
    # axes="TYX" reads a 3D array as a time series of 2D frames.
    _, t2 = count_cells(mask[:, 8], axes="TYX")
    assert set(t2["frame"]) <= {0, 1, 2} and "area" in t2
    with pytest.raises(ValueError, match="contradicts"):
        count_cells(mask[:, 8], axes="TYX", time_axis=1)


def test_a_0_255_mask_is_counted_as_a_mask():
    """Fiji and the plugin's writer save masks as 0/255: not one object of label 255."""
    mask = two_touching(1).astype(np.uint8)
    expected, table = count_cells(mask)
    got, table_255 = count_cells(mask * np.uint8(255))
    np.testing.assert_array_equal(got, expected)
    assert len(table_255) == len(table) == 2
