"""The plugin as napari sees it: manifest, discovery, reader, writer and sample data."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_binseg
from napari_binseg._reader import napari_get_reader, read_tiff
from napari_binseg._sample_data import load_sample
from napari_binseg._writer import write_labels
from napari_binseg.io import imread, imwrite

MANIFEST = Path(napari_binseg.__file__).parent / "napari.yaml"
WIDGETS = {"Threshold", "U-Net", "Train", "Count", "Evaluate"}
SAMPLES = {"nuclei_2d", "nuclei_2d_small", "nuclei_3d"}


# --- manifest and discovery -------------------------------------------------------------------


def test_manifest_validates_and_imports():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    manifest.validate_imports()  # every python_name resolves to an existing object
    installed = PluginManifest._from_package_or_name("napari-binseg")  # entry point
    assert installed.name == "napari-binseg"
    assert {c.id for c in installed.contributions.commands} == {
        c.id for c in manifest.contributions.commands
    }


def test_napari_plugin_manager_finds_contributions():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-binseg")
    contrib = manifest.contributions
    assert {w.display_name for w in contrib.widgets} == WIDGETS
    assert {s.key for s in contrib.sample_data} == SAMPLES
    assert [w.layer_types for w in contrib.writers] == [["labels"]]
    assert len(contrib.readers) == 1
    readers = {r.plugin_name for r in pm.iter_compatible_readers(["cells.tif"])}
    assert "napari-binseg" in readers
    writers = {w.command.split(".")[0] for w in pm.iter_compatible_writers(["labels"])}
    assert "napari-binseg" in writers


def test_import_does_not_load_heavy_modules():
    code = (
        "import json, sys, napari_binseg as nb; nb.evaluate; nb.imread; nb.synthetic_nuclei; "
        "heavy = ('torch', 'monai', 'napari', 'qtpy', 'PyQt5', 'PySide2', 'PySide6', 'numba'); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == []


# --- reader and writer without a viewer --------------------------------------------------------


def test_get_reader_accepts_tiff_only(tmp_path):
    assert napari_get_reader(str(tmp_path / "a.tif")) is read_tiff
    assert napari_get_reader(tmp_path / "a.TIFF") is read_tiff
    assert napari_get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tiff")]) is read_tiff
    assert napari_get_reader(str(tmp_path / "a.png")) is None
    assert napari_get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.png")]) is None
    assert napari_get_reader([]) is None


def test_reader_layer_types_and_scale(tmp_path):
    image = imwrite(tmp_path / "img.tif", np.ones((3, 8, 9), np.uint16), scale=(2, 0.5, 0.5))
    labels = imwrite(tmp_path / "seg.tif", np.ones((3, 8, 9), np.int32), labels=True)
    (img_data, img_kw, img_type), (lab_data, lab_kw, lab_type) = read_tiff([image, labels])
    assert (img_type, lab_type) == ("image", "labels")
    assert img_kw["scale"] == (2.0, 0.5, 0.5)
    assert img_kw["units"] == ("µm",) * 3
    assert img_kw["axis_labels"] == ("z", "y", "x")
    assert img_kw["name"] == "img" and img_kw["metadata"]["format"] == "imagej"
    assert lab_data.dtype == np.int32 and lab_kw["units"] == ("pixel",) * 3


def test_reader_names_labels_of_a_dataset_folder(make_napari_viewer, tmp_path):
    """images/a.tif and labels/a.tif (a training set's layout) open as "a" and "a labels"
    (napari named the second "a [1]"), and Evaluate takes the labels as ground truth."""
    from napari_binseg._widgets.evaluation import EvaluateWidget

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    labels = np.zeros((16, 16), np.uint16)
    labels[2:6, 2:6], labels[9:14, 8:12] = 1, 2
    tifffile.imwrite(tmp_path / "images" / "a.tif", (labels * 100).astype(np.uint8))
    tifffile.imwrite(tmp_path / "labels" / "a.tif", labels)
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "images" / "a.tif", plugin="napari-binseg")
    viewer.open(tmp_path / "labels" / "a.tif", plugin="napari-binseg")
    assert [(layer.name, type(layer).__name__) for layer in viewer.layers] == [
        ("a", "Image"),
        ("a labels", "Labels"),
    ]
    assert EvaluateWidget(viewer).ground_truth.value is viewer.layers["a labels"]


def test_reader_channels_and_rgb(tmp_path):
    tifffile.imwrite(
        tmp_path / "c.tif", np.zeros((4, 2, 5, 6), np.uint16), imagej=True,
        resolution=(2.0, 2.0), metadata={"axes": "ZCYX", "spacing": 3.0, "unit": "micron"},
    )  # fmt: skip
    data, kwargs, layer_type = read_tiff(str(tmp_path / "c.tif"))[0]
    assert layer_type == "image" and kwargs["channel_axis"] == 1
    assert kwargs["scale"] == (3.0, 0.5, 0.5) and kwargs["axis_labels"] == ("z", "y", "x")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((5, 6, 3), np.uint8))
    data, kwargs, _ = read_tiff(str(tmp_path / "rgb.tif"))[0]
    assert kwargs["rgb"] is True and kwargs["scale"] == (1.0, 1.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.uint32, np.int64])
@pytest.mark.parametrize("shape", [(12, 10), (3, 12, 10)])
def test_writer_reader_round_trip(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 50, size=shape).astype(dtype)
    scale = (1.5, 0.25, 0.5)[-len(shape) :]
    meta = {"scale": scale, "units": ("micrometer",) * len(shape), "name": "seg"}
    (written,) = write_labels(str(tmp_path / "out"), data, meta)
    assert written.endswith("out.tif")
    ((back, kwargs, layer_type),) = read_tiff(written)
    assert layer_type == "labels"  # marked in the file, not by its name
    assert back.dtype == np.uint8  # the smallest unsigned type holding the labels (< 50)
    np.testing.assert_array_equal(back, data)
    assert kwargs["scale"] == pytest.approx(scale)
    assert kwargs["units"] == ("µm",) * len(shape)


def test_writer_masks_and_label_types(tmp_path):
    """Masks are written 0/255 (white in Fiji), labels in the smallest unsigned type."""
    mask = np.zeros((6, 7), np.uint8)
    mask[2:4, 3:5] = 1
    for data in (mask, mask.astype(bool), mask.astype(np.int32)):
        (path,) = write_labels(str(tmp_path / "m.tif"), data, {"scale": (1.0, 1.0)})
        back, meta = imread(path)
        assert back.dtype == np.uint8 and meta["is_labels"]
        np.testing.assert_array_equal(back, mask * 255)
    for high, dtype in ((255, np.uint8), (300, np.uint16), (70_000, np.uint32)):
        labels = np.array([[0, 2], [high, 1]], np.int32)
        (path,) = write_labels(str(tmp_path / "l.tif"), labels, {})
        back, _ = imread(path)
        assert back.dtype == dtype
        np.testing.assert_array_equal(back, labels)
    negative = np.array([[0, -1], [2, 3]], np.int32)  # not unsigned: kept as it is
    (path,) = write_labels(str(tmp_path / "n.tif"), negative, {})
    assert imread(path)[0].dtype == np.int32


def test_writer_uses_axis_labels(tmp_path):
    meta = {"scale": (10.0, 1.0, 1.0), "units": ("second", "pixel", "pixel"),
            "axis_labels": ("t", "y", "x")}  # fmt: skip
    (path,) = write_labels(str(tmp_path / "t.tif"), np.zeros((2, 4, 5), np.uint16), meta)
    _, m = imread(path)
    assert m["axes"] == "TYX" and m["scale"] == (10.0, 1.0, 1.0)
    # Unknown axis names fall back to the default axes for the dimension.
    meta["axis_labels"] = ("a", "b", "c")
    (path,) = write_labels(str(tmp_path / "u.tif"), np.zeros((2, 4, 5), np.uint16), meta)
    assert imread(path)[1]["axes"] == "ZYX"


# --- sample data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shape", "n"),
    [("nuclei_2d", (520, 696), 179), ("nuclei_2d_small", (256, 256), 36)],
)
def test_real_samples(key, shape, n):
    image, labels, meta = load_sample(key)
    assert image.shape == labels.shape == shape
    assert image.dtype == np.uint8
    assert len(np.unique(labels)) - 1 == n
    assert "Data Science Bowl" in meta["source"] and "CC0" in meta["source"]


def test_synthetic_3d_sample():
    image, labels, meta = load_sample("nuclei_3d")
    assert image.shape == labels.shape == (32, 256, 256)
    assert meta["scale"] == (2.0, 1.0, 1.0)
    assert labels.max() > 30
    with pytest.raises(ValueError, match="unknown sample"):
        load_sample("nope")


# --- through a real viewer ---------------------------------------------------------------------


def test_viewer_open_and_save(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, truth = napari_binseg.synthetic_nuclei((8, 48, 48), n=4, radius=6, seed=0)
    path = imwrite(tmp_path / "cells_seg.tif", truth, scale=(2.0, 0.3, 0.3), labels=True)
    imwrite(tmp_path / "cells.tif", truth * 10, scale=(2.0, 0.3, 0.3))
    (labels,) = viewer.open(str(path), plugin="napari-binseg")
    (image,) = viewer.open(str(tmp_path / "cells.tif"), plugin="napari-binseg")
    assert labels._type_string == "labels" and image._type_string == "image"
    np.testing.assert_array_equal(labels.data, truth)
    np.testing.assert_allclose(labels.scale, (2.0, 0.3, 0.3))
    assert [str(u) for u in labels.units] == ["micrometer"] * 3
    assert tuple(labels.axis_labels) == ("z", "y", "x")

    out = tmp_path / "saved.tif"
    labels.save(str(out), plugin="napari-binseg")
    back, meta = imread(out)
    np.testing.assert_array_equal(back, truth)
    assert back.dtype == np.uint8  # 4 nuclei: the smallest unsigned type
    assert meta["scale"] == pytest.approx((2.0, 0.3, 0.3)) and meta["is_labels"]


@pytest.fixture
def reader_preferences(make_napari_viewer):
    """napari's reader preferences (those of the test's settings), emptied, then restored."""
    from napari.settings import get_settings

    plugins = get_settings().plugins
    saved = dict(plugins.extension2reader)
    plugins.extension2reader = {}
    yield plugins
    plugins.extension2reader = saved


def test_viewer_open_tiff_in_one_step(make_napari_viewer, tmp_path, reader_preferences):
    """Opening a TIFF as the GUI does (File > Open, drag and drop: ``plugin=None``) raises
    MultipleReaderError (the "which reader?" dialog) until a preference exists; once the
    plugin is used it is one step with this reader. A preference the user chose is kept, and
    napari's reader stays available (``viewer.open``'s default in napari 0.9 is
    ``plugin="napari"``)."""
    from napari.errors import MultipleReaderError

    path = imwrite(tmp_path / "cells.tif", np.ones((8, 9), np.uint16), scale=(0.5, 0.5))
    viewer = make_napari_viewer()
    with pytest.raises(MultipleReaderError):
        viewer.open(str(path), plugin=None)  # napari's own reader also claims *.tif
    from napari_binseg._widgets.counting import CountWidget

    CountWidget(viewer)  # docking any widget of the plugin (or a sample) records it
    assert reader_preferences.extension2reader == {
        "*.tif": "napari-binseg",
        "*.tiff": "napari-binseg",
    }
    (layer,) = viewer.open(str(path), plugin=None)
    np.testing.assert_allclose(layer.scale, (0.5, 0.5))  # our reader: the pixel size kept
    (other,) = viewer.open(str(path), plugin="napari")
    assert other.data.shape == (8, 9)

    reader_preferences.extension2reader = {"*.tif": "napari"}  # the user's own choice
    from napari_binseg._reader import prefer_for_tiff

    prefer_for_tiff()
    assert reader_preferences.extension2reader["*.tif"] == "napari"


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_open_sample_in_viewer(make_napari_viewer, key):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-binseg", key)
    assert [layer.name for layer in layers] == [key, f"{key} ground truth"]
    image, truth = layers
    assert image._type_string == "image" and truth._type_string == "labels"
    expected_image, expected_truth, meta = load_sample(key)
    np.testing.assert_array_equal(image.data, expected_image)
    np.testing.assert_array_equal(truth.data, expected_truth)
    for layer in layers:
        np.testing.assert_allclose(layer.scale, meta["scale"])
        assert tuple(layer.axis_labels) == ("z", "y", "x")[-image.ndim :]
    if key == "nuclei_3d":
        np.testing.assert_allclose(image.scale, (2.0, 1.0, 1.0))
        assert tuple(str(u) for u in image.units) == ("micrometer",) * 3
