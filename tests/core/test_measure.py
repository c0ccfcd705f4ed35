"""Per-object measurements (``napari_binseg.measure``) against scikit-image, and the one table
builder shared by the in-memory and the chunked (dask) paths."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops_table

from napari_binseg import count_cells, measure_objects
from napari_binseg._chunked_label import label_and_measure
from napari_binseg.measure import check_spacing, object_table, unit_columns


def blobs(shape, seed=0):
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.random(shape), 2.0)
    mask = smooth > np.quantile(smooth, 0.75)
    image = (smooth * 1000).astype(np.uint16)
    return ndi.label(mask)[0], image


@pytest.mark.parametrize("shape", [(80, 90), (10, 40, 50)])
def test_equals_regionprops(shape):
    labels, image = blobs(shape)
    labels[labels == 3] = 0  # a gap in the numbering: no row for it
    table = measure_objects(labels, image)
    ref = regionprops_table(
        labels,
        image,
        properties=("label", "area", "centroid", "intensity_mean", "intensity_min", "bbox"),
    )
    np.testing.assert_array_equal(table["label"], ref["label"])
    measure = "area" if len(shape) == 2 else "volume"
    np.testing.assert_array_equal(table[measure], ref["area"])
    axes = "yx" if len(shape) == 2 else "zyx"
    for i, ax in enumerate(axes):
        np.testing.assert_allclose(table[f"centroid_{ax}"], ref[f"centroid-{i}"])
        np.testing.assert_array_equal(table[f"bbox_min_{ax}"], ref[f"bbox-{i}"])
        np.testing.assert_array_equal(table[f"bbox_max_{ax}"], ref[f"bbox-{i + len(shape)}"])
    np.testing.assert_allclose(table["mean_intensity"], ref["intensity_mean"])
    np.testing.assert_array_equal(table["min_intensity"], ref["intensity_min"])
    assert table.attrs == {"spacing": (1.0,) * len(shape), "unit": "pixel"}


def test_spacing_scales_centroids_and_sizes_not_boxes():
    labels = np.zeros((6, 8), np.int32)
    labels[1:3, 2:6] = 4
    table = measure_objects(labels, spacing=(0.5, 2.0), unit="µm")
    row = table.iloc[0]
    assert (row["centroid_y"], row["centroid_x"]) == (0.75, 7.0)
    assert row["area"] == 8 * 1.0
    assert row["equivalent_diameter"] == pytest.approx(np.sqrt(4 * 8 / np.pi))
    assert (row["bbox_min_x"], row["bbox_max_x"]) == (2, 6)
    assert table.attrs == {"spacing": (0.5, 2.0), "unit": "µm"}


def test_empty_and_boolean_inputs():
    table = measure_objects(np.zeros((4, 4), np.uint8), np.ones((4, 4), bool))
    assert len(table) == 0 and "mean_intensity" in table.columns
    table = measure_objects(np.eye(4, dtype=np.uint8), np.eye(4, dtype=bool))
    assert table["mean_intensity"].tolist() == [1.0]


@pytest.mark.parametrize(
    ("spacing", "match"), [((1.0,), "one value per spatial axis"), ((1.0, 0.0), "positive")]
)
def test_check_spacing_refuses(spacing, match):
    with pytest.raises(ValueError, match=match):
        check_spacing(spacing, 2)
    np.testing.assert_array_equal(check_spacing(None, 3), [1.0, 1.0, 1.0])


def test_object_table_columns():
    table = object_table(
        np.array([2.0, 4.0]),
        [np.array([2.0, 12.0]), np.array([4.0, 8.0])],
        [np.array([0, 2]), np.array([1, 1])],
        [np.array([1, 3]), np.array([2, 3])],
        np.array([1.0, 1.0]),
        labels=np.array([3, 7]),
    )
    assert list(table.columns) == [
        "label", "centroid_y", "centroid_x", "area", "equivalent_diameter",
        "bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x",
    ]  # fmt: skip
    assert table["centroid_y"].tolist() == [1.0, 3.0]
    assert table["bbox_max_x"].tolist() == [3, 4]


@pytest.mark.parametrize("shape", [(90, 100), (12, 40, 44)])
def test_chunked_table_equals_in_memory(shape):
    labels, image = blobs(shape, seed=2)
    mask = (labels > 0).astype(np.uint8)
    ndim = len(shape)
    expected_labels, expected = count_cells(
        mask, image, split_touching=False, fill_holes=False, min_size=0, connectivity=ndim
    )[:2]
    chunks = (25,) * ndim
    got_labels, got = label_and_measure(
        da.from_array(mask, chunks=chunks),
        da.from_array(image, chunks=chunks),
        spacing=np.ones(ndim),
        connectivity=8 if ndim == 2 else 26,
    )
    for name in ("diameter", "diameter_px", "frame_diameters", "min_size"):  # the count's attrs
        expected.attrs.pop(name, None)
    assert got.attrs == expected.attrs
    # Equal up to the numbering (chunked: raster order of first pixels; cc3d: its own order).
    got_labels = got_labels.compute()
    pairs = np.unique(np.stack([got_labels.ravel(), expected_labels.ravel()]), axis=1)
    assert pairs.shape[1] == len(expected) + 1  # one-to-one, plus background
    order = np.argsort(pairs[1])
    lut = np.zeros(len(expected) + 1, np.int64)
    lut[pairs[1][order]] = pairs[0][order]  # expected label -> chunked label
    expected = expected.assign(label=lut[expected["label"].to_numpy()])
    expected = expected.sort_values("label").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_big_endian_and_float_nan_intensities():
    labels = np.zeros((6, 6), ">u2")
    labels[1:3, 1:3] = 2
    image = np.arange(36, dtype=">f4").reshape(6, 6)
    native = measure_objects(labels.astype("u2"), image.astype("f4"))
    pd.testing.assert_frame_equal(measure_objects(labels, image), native)
    image = image.astype("f4")
    image[1, 2] = np.nan  # NaN propagates into mean, min and max, as numpy does
    row = measure_objects(labels, image).iloc[0]
    assert np.isnan(row["mean_intensity"]) and np.isnan(row["min_intensity"])
    assert np.isnan(row["max_intensity"])


def test_unit_columns_name_sizes_with_their_units():
    """The CSV column names of the command and the Count widget (one function for both)."""
    labels, image = blobs((10, 40, 50))
    table = measure_objects(labels, image, spacing=(2.0, 0.5, 0.5), unit="µm")
    named = unit_columns(table, "µm")
    first = ["label", "centroid_z_um", "centroid_y_um", "centroid_x_um", "volume_um3"]
    assert list(named.columns[:5]) == first
    assert {"equivalent_diameter_um", "mean_intensity", "bbox_max_z_px"} <= set(named.columns)
    np.testing.assert_array_equal(named["volume_um3"], table["volume"])
    assert named.attrs == table.attrs and "volume" in table.columns  # a copy
    plane = unit_columns(measure_objects(labels[0]), None)
    assert {"area_px2", "centroid_y_px", "equivalent_diameter_px", "bbox_min_x_px"} <= set(
        plane.columns
    )
    assert plane.attrs["unit"] == "px"  # the unit of the names
    assert "area_nm2" in unit_columns(measure_objects(labels[0]), "nanometer").columns
    # A pixel size given without a unit is in µm (as io.imwrite records it).
    scaled = measure_objects(labels[0], spacing=(0.5, 0.5))
    assert "area_um2" in unit_columns(scaled).columns
