"""The Count cells widget in a real viewer."""

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops

from napari_binseg._widgets.counting import CountWidget, is_instance_labels
from napari_binseg.counting import count_cells
from tests.widgets._helpers import output_layers, run_and_cancel, run_and_wait


@pytest.fixture
def counted(make_napari_viewer, sample_image, sample_labels):
    viewer = make_napari_viewer()
    image = viewer.add_image(
        sample_image, name="nuclei", scale=(0.5, 0.5), translate=(100.0, -50.0)
    )
    mask = viewer.add_labels(
        (sample_labels > 0).astype(np.uint8),
        name="mask",
        scale=(0.5, 0.5),
        translate=(100.0, -50.0),
        units=("um", "um"),
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-binseg", "Count")
    assert isinstance(widget, CountWidget)
    widget.mask.value = mask
    widget.image.value = image
    return viewer, image, mask, widget


def test_count_widget(counted, qtbot, sample_image, sample_labels, tmp_path, errors):
    viewer, image, mask, widget = counted
    binary = (sample_labels > 0).astype(np.uint8)
    widget.add_points.value = True
    run_and_wait(qtbot, widget)
    assert errors == []

    labels, table = count_cells(binary, sample_image, spacing=(0.5, 0.5))
    (out,) = output_layers(viewer, "count")
    assert out.name == "mask [count]"
    np.testing.assert_array_equal(out.data, labels)
    pd.testing.assert_frame_equal(widget.table, table)
    np.testing.assert_allclose(out.scale, (0.5, 0.5))
    np.testing.assert_allclose(out.translate, (100.0, -50.0))
    assert [str(u) for u in out.units] == ["micrometer", "micrometer"]
    # features: one row per label, keyed by the label value, for napari's hover display.
    np.testing.assert_array_equal(out.features["index"], table["label"])
    np.testing.assert_allclose(out.features["mean_intensity"], table["mean_intensity"])
    meta = out.metadata["napari_binseg"]
    assert meta["count"] == len(table) and meta["intensity_image"] == "nuclei"
    assert meta["parameters"]["spacing"] == [0.5, 0.5]
    assert widget.count_label.text().startswith(f"{len(table)} objects")
    assert widget.table_view.rowCount() == len(table)
    assert widget.table_view.cell_text(2, 0) == str(table["label"].iloc[2])
    np.testing.assert_array_equal(mask.data, binary)  # input untouched

    # Centroid points in world coordinates, checked against scikit-image on the labels.
    (points,) = output_layers(viewer, "count", role="points")
    props = regionprops(labels)
    expected = np.array([p.centroid for p in props]) * 0.5 + np.array([100.0, -50.0])
    world = np.array([points.data_to_world(p) for p in points.data])
    np.testing.assert_allclose(world, expected, atol=1e-9)
    np.testing.assert_allclose(points.scale, (1.0, 1.0))
    # Points land on their objects: napari's world -> data mapping of the labels layer gives
    # the object's own label at its centroid for (nearly) all nuclei, which are convex.
    hits = [out.get_value(q, world=True) == pr.label for q, pr in zip(world, props, strict=True)]
    assert np.mean(hits) > 0.95

    # Units in the column names of the table shown and of the CSV (no index column).
    header = widget.table_view.header_labels()
    assert {"area_um2", "centroid_y_um", "equivalent_diameter_um", "bbox_min_y_px"} <= set(header)
    assert "mean_intensity" in header and header[0] == "label"
    path = widget.save_csv(tmp_path / "objects.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == header
    np.testing.assert_allclose(back["area_um2"], table["area"])
    np.testing.assert_allclose(back["centroid_x_um"], table["centroid_x"])

    # Re-run with a size filter: same layers, fewer objects.
    n_layers = len(viewer.layers)
    widget.min_size.value = 30.0  # um^2
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers
    _, small = count_cells(binary, sample_image, spacing=(0.5, 0.5), min_size=30.0)
    assert len(widget.table) == len(small) < len(table)
    assert out.metadata["napari_binseg"]["count"] == len(small)
    assert len(points.data) == len(small)


def test_count_widget_time_series(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    stack = np.zeros((3, 20, 20), np.uint8)
    stack[:, 2:6, 2:6] = 1
    stack[1, 10:14, 10:14] = 1
    mask = viewer.add_labels(stack, name="movie", scale=(5.0, 2.0, 2.0))
    widget = CountWidget(viewer)
    widget.mask.value = mask
    assert widget.stack.value == "ZYX"  # an unlabeled 3D stack is a z-stack
    assert widget.min_size.label == "min size (µm³)"
    widget.stack.value = "TYX"
    assert widget.min_size.label == "min size (µm²)"  # frames: areas (it kept µm³)
    widget.split_touching.value = False
    run_and_wait(qtbot, widget)
    assert errors == []
    (out,) = output_layers(viewer, "count")
    assert out.metadata["napari_binseg"]["count_per_frame"] == [1, 2, 1]
    assert out.metadata["napari_binseg"]["parameters"]["spacing"] == [2.0, 2.0]
    assert "per frame: 1, 2, 1" in widget.count_label.text()
    np.testing.assert_array_equal(widget.table["frame"], [0, 1, 1, 2])
    np.testing.assert_allclose(widget.table["area"], 16 * 4.0)


def test_count_widget_bad_input(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.random.default_rng(0).random((16, 16)), name="float")
    widget = CountWidget(viewer)
    widget.mask.value = layer
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "float" in errors[0].lower()
    assert len(viewer.layers) == n_layers and widget.table is None


def test_count_widget_intensity_split_asks_for_the_image(make_napari_viewer, qtbot, errors):
    """The valley split without an intensity image says which control to set (the core's
    "split_touching='intensity' needs an image" named no control of the form)."""
    viewer = make_napari_viewer()
    mask = np.zeros((16, 16), np.uint8)
    mask[2:8, 2:8] = 1
    widget = CountWidget(viewer)
    widget.mask.value = viewer.add_labels(mask, name="painted")
    assert widget.image.value is None
    widget.split_touching.value = "intensity"
    assert widget.run() is None and not widget.busy
    assert errors == [
        "napari-binseg count: intensity image: 'distance + intensity valleys' splits nuclei "
        "along the image's dark valleys; choose the image (or split by distance transform)"
    ]


def test_count_widget_cancel(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    stack = np.zeros((6, 32, 32), np.uint8)
    stack[:, 4:12, 4:12] = 1
    mask = viewer.add_labels(stack, name="movie")
    widget = CountWidget(viewer)
    widget.mask.value = mask
    widget.stack.value = "TYX"
    calls = run_and_cancel(qtbot, widget)
    assert errors == [] and widget.status.text() == "Cancelled."
    assert len(calls) == 1 and output_layers(viewer, "count") == []


def test_count_widget_units_and_role_defaults(make_napari_viewer, sample_labels):
    """Labels carry the mask's units; the mask picked is the previous step's output, never a
    preview; a label image of instances (U-Net output) is not split again by default."""
    viewer = make_napari_viewer()
    viewer.add_image(sample_labels.astype(np.uint8), name="nuclei")
    mask = viewer.add_labels(
        (sample_labels > 0).astype(np.uint8),
        name="nuclei [otsu]",
        scale=(0.5, 0.5),
        units=("um", "um"),
        metadata={"napari_binseg": {"widget": "threshold", "source": "nuclei"}},
    )
    viewer.add_labels((sample_labels > 0).astype(np.uint8), name="nuclei [preview]")
    widget = CountWidget(viewer)
    assert widget.mask.value is mask and widget.image.value is viewer.layers["nuclei"]
    assert widget.min_size.label == "min size (µm²)" and widget.diameter.label == "diameter (µm)"
    assert "auto" in widget.min_size.native.specialValueText()
    assert widget.split_touching.value is True and widget.stack.native.isHidden()

    unet = viewer.add_labels(
        sample_labels,
        name="nuclei [unet]",
        metadata={"napari_binseg": {"widget": "predict", "source": "nuclei"}},
    )
    assert widget.mask.value is unet  # the newest output of the previous step
    assert widget.split_touching.value is False  # instances already: not split again
    assert widget.min_size.label == "min size (px²)"
    widget.split_touching.value = "intensity"  # asked for: kept
    widget.mask.value = mask
    assert widget.split_touching.value == "intensity"


def test_count_widget_does_not_resplit_unet_labels(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    labels = np.zeros((40, 60), np.int32)
    yy, xx = np.mgrid[:40, :60]
    labels[(yy - 20) ** 2 + (xx - 18) ** 2 < 100] = 1
    labels[((yy - 20) ** 2 + (xx - 36) ** 2 < 100) & (labels == 0)] = 2  # touching
    viewer.add_labels(
        labels,
        name="cells [unet]",
        metadata={"napari_binseg": {"widget": "predict", "source": "cells"}},
    )
    widget = CountWidget(viewer)
    run_and_wait(qtbot, widget)
    assert errors == [] and len(widget.table) == 2
    (out,) = output_layers(viewer, "count")
    np.testing.assert_array_equal(out.data, labels)


def test_a_0_255_mask_is_a_mask_not_one_label(make_napari_viewer):
    """Masks saved by Fiji (and by the plugin's writer) hold 0/255: they are split and counted."""
    viewer = make_napari_viewer()
    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:6] = mask[10:15, 10:15] = 255
    layer = viewer.add_labels(mask, name="from fiji")
    labels = layer.data.copy()
    labels[10:15, 10:15] = 7
    assert not is_instance_labels(layer)
    assert is_instance_labels(viewer.add_labels(labels, name="two labels"))


def test_count_widget_z_stack_is_3d(make_napari_viewer, qtbot, errors):
    """A z-stack (axis labels z, y, x) is counted as volumes: a nucleus spanning ten planes
    is one object, sizes are volumes, and the result shows in napari's 3D view."""
    zz, yy, xx = np.mgrid[:12, :24, :24]
    ball = ((zz - 6) / 2.0) ** 2 + ((yy - 12) / 5.0) ** 2 + ((xx - 12) / 5.0) ** 2 < 1
    viewer = make_napari_viewer()
    viewer_mask = viewer.add_labels(
        ball.astype(np.uint8), name="stack", scale=(2.0, 0.5, 0.5), axis_labels=("z", "y", "x")
    )
    widget = CountWidget(viewer)
    assert widget.mask.value is viewer_mask and widget.stack.value == "ZYX"
    assert widget.min_size.label == "min size (µm³)"  # a pixel size without a unit: µm
    assert "first and last planes" in widget.exclude_border.tooltip  # 2 of 51 on 8 planes
    widget.split_touching.value = False
    run_and_wait(qtbot, widget)
    assert errors == [] and len(widget.table) == 1 and "volume" in widget.table.columns
    assert viewer.dims.ndisplay == 3


def test_count_widget_in_the_3d_view(make_napari_viewer, qtbot, errors):
    """Counting a z-stack while napari shows 3D adds the Labels layer with its table (napari
    0.9 failed to add a Labels layer with features there: "len() of unsized object")."""
    zz, yy, xx = np.mgrid[:8, :24, :24]
    balls = (((zz - 4) / 2.0) ** 2 + ((yy - 6) / 4.0) ** 2 + ((xx - 6) / 4.0) ** 2 < 1) | (
        ((zz - 4) / 2.0) ** 2 + ((yy - 16) / 4.0) ** 2 + ((xx - 16) / 4.0) ** 2 < 1
    )
    viewer = make_napari_viewer(show=True)
    viewer.add_labels(balls.astype(np.uint8), name="stack", scale=(2.0, 0.5, 0.5))
    viewer.dims.ndisplay = 3
    # Docked from the manifest: the widget sees napari's public-only viewer proxy.
    _, widget = viewer.window.add_plugin_dock_widget("napari-binseg", "Count")
    widget.mask.value = widget.viewer.layers["stack"]
    run_and_wait(qtbot, widget)
    assert errors == []
    (out,) = output_layers(viewer, "count")
    assert out.metadata["napari_binseg"]["count"] == 2
    assert list(out.features["index"]) == [1, 2]
    np.testing.assert_allclose(out.features["volume"], np.bincount(out.data.ravel())[1:] * 0.5)


def test_count_widget_refuses_an_intensity_image_as_mask(
    make_napari_viewer, qtbot, errors, monkeypatch
):
    """A raw image chosen as the mask (the picker's default when no Labels layer exists) gets
    one message, not 100,000 one-grey-level "objects"; an Image layer holding a 0/255 mask
    is counted. The check reads the whole image, in the worker (a large image froze the
    viewer at the press of Count)."""
    import threading

    from napari_binseg import _validation

    threads = []

    def is_mask(data, high=None):
        threads.append(threading.current_thread())
        return real_is_mask(data, high)

    real_is_mask = _validation.is_mask
    monkeypatch.setattr(_validation, "is_mask", is_mask)
    viewer = make_napari_viewer()
    image = np.zeros((32, 32), np.uint8)
    image[4:12, 4:12] = 200
    image[20:28, 20:28] = 90
    image[::3] += 7
    layer = viewer.add_image(image, name="raw")
    widget = CountWidget(viewer)
    assert widget.mask.value is layer
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "'raw' is an Image layer of uint8 intensities" in errors[0]
    assert "Convert to Labels" in errors[0] and output_layers(viewer, "count") == []
    errors.clear()
    widget.mask.value = viewer.add_image(np.where(image > 50, 255, 0).astype(np.uint8), name="m")
    run_and_wait(qtbot, widget)
    assert errors == [] and widget.output.metadata["napari_binseg"]["count"] == 2
    assert threads and threading.main_thread() not in threads


def test_count_widget_measures_the_image_a_mask_was_made_from(make_napari_viewer, qtbot, errors):
    """A Threshold (or U-Net) output as mask brings its image as the intensity image, so the
    table has mean intensities without a second choice; a choice of (none) is kept."""
    from napari_binseg._widgets.thresholding import ThresholdWidget

    viewer = make_napari_viewer()
    image = np.zeros((40, 40), np.uint16)
    image[5:15, 5:15], image[25:35, 22:30] = 2000, 2500
    layer = viewer.add_image(image, name="nuclei", scale=(0.5, 0.5))
    viewer.add_image(image[:20], name="other")  # another shape: never the intensity image
    threshold = ThresholdWidget(viewer)
    threshold.image.value = layer
    widget = CountWidget(viewer)
    assert widget.image.value is None
    run_and_wait(qtbot, threshold)
    assert widget.mask.value is threshold.output and widget.image.value is layer
    widget.split_touching.value = False
    run_and_wait(qtbot, widget)
    assert errors == [] and sorted(widget.table["mean_intensity"]) == [2000.0, 2500.0]
    widget.image.value = None
    widget.mask.value = viewer.add_labels(threshold.output.data.copy(), name="painted")
    widget.mask.value = threshold.output
    assert widget.image.value is None


@pytest.mark.parametrize("scale, unit", [((0.5, 0.5), "µm"), ((1.0, 1.0), "px")])
def test_count_widget_names_the_unit_its_numbers_are_in(
    make_napari_viewer, qtbot, tmp_path, errors, scale, unit
):
    """A layer added with a scale but no unit (napari's "pixel") is measured with its scale:
    the form, the status line and the CSV all say µm (they said px over µm numbers)."""
    viewer = make_napari_viewer()
    mask = np.zeros((40, 40), np.uint8)
    mask[5:15, 5:15] = 1
    widget = CountWidget(viewer)
    widget.mask.value = viewer.add_labels(mask, name="m", scale=scale)
    widget.split_touching.value = False
    run_and_wait(qtbot, widget)
    assert errors == [] and widget.table["area"].tolist() == [100 * scale[0] ** 2]
    assert widget.min_size.label == f"min size ({unit}²)"
    text = widget.count_label.text()
    assert text.endswith(f"{unit}²") and ("µm" in text) == (unit == "µm")
    ascii_unit = {"µm": "um", "px": "px"}[unit]
    assert f"area_{ascii_unit}2" in pd.read_csv(widget.save_csv(tmp_path / "t.csv")).columns


def test_count_widget_refuses_multiotsu_classes(make_napari_viewer, qtbot, errors):
    """Multi-Otsu classes as the mask gave 504 "objects" on the 179-nucleus sample (each
    class region counted); now one message with the threshold that keeps every class."""
    from napari_binseg._widgets.thresholding import ThresholdWidget

    viewer = make_napari_viewer()
    image = np.zeros((40, 40), np.uint8)
    image[5:15, 5:15], image[25:35, 22:30] = 100, 200
    viewer.add_image(image, name="nuclei")
    threshold = ThresholdWidget(viewer)
    threshold.method.value = "multiotsu"
    run_and_wait(qtbot, threshold)
    lowest = threshold.output.metadata["napari_binseg"]["thresholds"][0]
    widget = CountWidget(viewer)
    assert widget.mask.value is threshold.output
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "holds multi-Otsu classes, not a mask" in errors[0]
    assert f"({lowest:.4g})" in errors[0] and output_layers(viewer, "count") == []


def test_outputs_follow_a_rotated_layer(make_napari_viewer, qtbot, errors):
    """A rotated, translated mask (a stage angle in the file's transform): the count and its
    centroid points lie on the mask's objects in the world, not beside them."""
    viewer = make_napari_viewer()
    mask = np.zeros((40, 60), np.uint8)
    mask[5:15, 5:15] = mask[20:32, 30:50] = 1
    layer = viewer.add_labels(mask, name="m", scale=(0.5, 0.5), translate=(10, -4), rotate=30)
    widget = CountWidget(viewer)
    widget.mask.value = layer
    widget.add_points.value = True
    widget.split_touching.value = False
    run_and_wait(qtbot, widget)
    assert errors == []
    out, points = widget.output, widget.points
    np.testing.assert_allclose(out.rotate, layer.rotate)
    corner = (37.0, 55.0)
    np.testing.assert_allclose(out.data_to_world(corner), layer.data_to_world(corner))
    hits = [out.get_value(points.data_to_world(p), world=True) for p in points.data]
    assert hits == [1, 2]
    # The rotation undone and counted again: the outputs, updated in place, lose it too.
    layer.rotate = 0
    run_and_wait(qtbot, widget)
    assert errors == [] and widget.output is out and widget.points is points
    np.testing.assert_allclose(out.rotate, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(out.data_to_world(corner), layer.data_to_world(corner))
    hits = [out.get_value(points.data_to_world(p), world=True) for p in points.data]
    assert hits == [1, 2]
    # The Threshold preview of a rotated image lies on it too.
    from napari_binseg._widgets.thresholding import ThresholdWidget

    image = viewer.add_image(mask * 200, name="img", scale=(0.5, 0.5), translate=(10, -4))
    image.rotate = 30
    threshold = ThresholdWidget(viewer)
    threshold.image.value = image
    threshold.preview.value = True
    threshold.update_preview()
    (preview,) = output_layers(viewer, "threshold", role="preview")
    np.testing.assert_allclose(preview.data_to_world(corner), image.data_to_world(corner))
