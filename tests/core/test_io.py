"""TIFF I/O: dtype, axes and pixel size survive a round trip; labels are recognized by rule."""

from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import tifffile

import napari_binseg
from napari_binseg.io import imread, imwrite, is_labels_path, normalize_unit, read_zarr, write_zarr
from napari_binseg.synthetic import synthetic_nuclei

DATA = Path(napari_binseg.__file__).parent / "data"
SAMPLE_NAMES = ("nuclei_175dbb364bfefc95", "nuclei_003cee89357d9fe1")

ALL_DTYPES = ["uint8", "uint16", "float32", "int16", "int32", "uint32", "int64", "float64"]
EXPECTED_FORMAT = {
    "uint8": "imagej",
    "uint16": "imagej",
    "float32": "imagej",
    "int16": "ome",
    "int32": "ome",
    "uint32": "ome",
    "float64": "ome",
    "int64": "tiff",
}


def ramp(shape, dtype):
    return (np.arange(np.prod(shape)) % 97).reshape(shape).astype(dtype)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize(
    ("shape", "axes", "scale"),
    [
        ((6, 7), None, (0.5, 0.25)),
        ((3, 6, 7), None, (2.0, 0.5, 0.25)),
        ((4, 3, 6, 7), "TZYX", (5.0, 2.0, 0.5, 0.5)),
    ],
)
def test_round_trip_keeps_dtype_axes_scale(tmp_path, dtype, shape, axes, scale):
    data = ramp(shape, dtype)
    path = imwrite(tmp_path / "x.tif", data, scale=scale, axes=axes)
    out, meta = imread(path)
    assert out.dtype == data.dtype
    np.testing.assert_array_equal(out, data)
    assert meta["axes"] == (axes or {2: "YX", 3: "ZYX"}[len(shape)])
    assert meta["scale"] == pytest.approx(scale)
    spatial = [u for a, u in zip(meta["axes"], meta["units"], strict=True) if a in "ZYX"]
    assert spatial == ["µm"] * len(spatial)
    assert meta["format"] == EXPECTED_FORMAT[dtype]
    assert meta["is_labels"] is False
    assert meta["name"] == "x"


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "int64"])
def test_lazy_read_equals_eager(tmp_path, dtype):
    data = ramp((5, 8, 9), dtype)
    path = imwrite(tmp_path / "x.tif", data, scale=(3, 1, 1), labels=True)
    lazy, meta = imread(path, lazy=True)
    assert type(lazy).__module__.startswith("dask")
    np.testing.assert_array_equal(lazy.compute(), data)
    assert meta["is_labels"] and meta["scale"] == (3.0, 1.0, 1.0)


def test_imagej_file_readable_by_tifffile_with_calibration(tmp_path):
    path = imwrite(tmp_path / "s.tif", np.zeros((2, 8, 8), np.uint16), scale=(1.5, 0.2, 0.2))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["spacing"] == 1.5
        assert tif.imagej_metadata["unit"] == "micron"
        num, den = tif.pages.first.tags["XResolution"].value
        assert den / num == pytest.approx(0.2)


def test_ome_file_has_physical_sizes(tmp_path):
    path = imwrite(tmp_path / "s.ome.tif", np.zeros((2, 8, 8), np.uint16), scale=(1.5, 0.2, 0.3))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        xml = tif.ome_metadata
    assert 'PhysicalSizeX="0.3"' in xml and 'PhysicalSizeY="0.2"' in xml
    assert 'PhysicalSizeZ="1.5"' in xml
    assert imread(path)[1]["scale"] == (1.5, 0.2, 0.3)


def test_third_party_files(tmp_path):
    # ImageJ file written by tifffile directly, unit "\u00B5m" as Fiji writes it.
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(
        ij,
        np.zeros((3, 4, 5), np.uint8),
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "ZYX", "spacing": 0.8, "unit": "\\u00B5m"},
    )
    meta = imread(ij)[1]
    assert meta["scale"] == (0.8, 0.25, 0.25) and meta["units"] == ("µm",) * 3
    # Plain TIFF with centimetre resolution tags: 0.65 µm pixels.
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(
        plain, np.zeros((5, 6), np.uint8), resolution=(1e4 / 0.65, 1e4 / 0.65),
        resolutionunit="CENTIMETER",
    )  # fmt: skip
    assert imread(plain)[1]["scale"] == pytest.approx((0.65, 0.65))
    # A plain TIFF without calibration: unit scale, no units.
    tifffile.imwrite(tmp_path / "raw.tif", np.zeros((5, 6), np.uint16))
    assert imread(tmp_path / "raw.tif")[1]["scale"] == (1.0, 1.0)
    assert imread(tmp_path / "raw.tif")[1]["units"] == (None, None)
    # RGB: samples axis last.
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((5, 6, 3), np.uint8))
    meta = imread(tmp_path / "rgb.tif")[1]
    assert meta["axes"] == "YXS" and meta["rgb"] is True
    # Channels.
    tifffile.imwrite(
        tmp_path / "c.tif", np.zeros((2, 3, 5, 6), np.uint16), imagej=True,
        metadata={"axes": "ZCYX"},
    )  # fmt: skip
    meta = imread(tmp_path / "c.tif")[1]
    assert meta["axes"] == "ZCYX" and meta["channel_axis"] == 1


def test_labels_rule(tmp_path):
    labels = ramp((8, 9), "uint16")
    # 1. the file says so, whatever its name, for each of the three formats
    for dtype in ("uint16", "int32", "int64"):
        path = imwrite(tmp_path / f"anything_{dtype}.tif", labels.astype(dtype), labels=True)
        assert imread(path)[1]["is_labels"], dtype
    # 2. the name says so
    tifffile.imwrite(tmp_path / "cells_masks.tif", labels)
    tifffile.imwrite(tmp_path / "cells_labels.ome.tif", labels)
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "labels" / "cells.tif", labels)
    for name in ("cells_masks.tif", "cells_labels.ome.tif", "labels/cells.tif"):
        assert imread(tmp_path / name)[1]["is_labels"], name
    # 3. otherwise an image, even with few grey values; float never counts as labels
    tifffile.imwrite(tmp_path / "cells.tif", labels)
    assert not imread(tmp_path / "cells.tif")[1]["is_labels"]
    tifffile.imwrite(tmp_path / "prob_mask.tif", labels.astype(np.float32))
    assert not imread(tmp_path / "prob_mask.tif")[1]["is_labels"]
    assert is_labels_path("a/b/x_labels.tiff") and not is_labels_path("a/labels_x.tif")


def test_labels_are_compressed(tmp_path):
    _, labels = synthetic_nuclei((128, 128), n=10, seed=0)
    path = imwrite(tmp_path / "l.tif", labels, labels=True)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.compression == 8  # ADOBE_DEFLATE (zlib)
    assert path.stat().st_size < labels.nbytes / 4
    np.testing.assert_array_equal(imread(path)[0], labels)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_packaged_samples(name):
    image, meta = imread(DATA / f"{name}.tif")
    labels, lmeta = imread(DATA / f"{name}_labels.tif")
    assert image.dtype == np.uint8 and labels.dtype == np.uint16
    assert image.shape == labels.shape and not meta["is_labels"] and lmeta["is_labels"]
    expected = {"nuclei_175dbb364bfefc95": 179, "nuclei_003cee89357d9fe1": 36}[name]
    assert len(np.unique(labels)) - 1 == expected


def test_bool_written_as_uint8(tmp_path):
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    out = imread(imwrite(tmp_path / "m.tif", mask))[0]
    assert out.dtype == np.uint8 and out.sum() == 4


def test_dask_input(tmp_path):
    data = ramp((4, 6, 7), "uint16")
    out = imread(imwrite(tmp_path / "d.tif", da.from_array(data, chunks=2)))[0]
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": (1.0,)}, "one value per axis"),
        ({"scale": (0.0, 1.0, 1.0)}, "positive"),
        ({"axes": "ZY"}, "name each"),
        ({"axes": "YXZ"}, "end with"),
        ({"units": ("µm",)}, "one value per axis"),
    ],
)
def test_imwrite_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        imwrite(tmp_path / "x.tif", np.zeros((2, 3, 4), np.uint8), **kwargs)


def test_imread_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        imread(tmp_path / "missing.tif")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="not a readable TIFF"):
        imread(tmp_path / "bad.tif")


def test_normalize_unit():
    for u in ("micron", "um", "µm", "μm", "\\u00B5m", "micrometer"):
        assert normalize_unit(u) == "µm"
    assert normalize_unit("pixel") is None and normalize_unit(None) is None
    assert normalize_unit("nm") == "nm"


@pytest.mark.parametrize("shape", [(64, 80), (12, 64, 64)])
def test_synthetic_nuclei(shape):
    image, labels = synthetic_nuclei(shape, n=8, radius=7, seed=2)
    assert image.shape == labels.shape == shape
    assert image.dtype == np.uint16 and labels.dtype == np.uint16
    n = int(labels.max())
    assert 1 <= n <= 8
    assert np.array_equal(np.unique(labels), np.arange(n + 1))  # consecutive
    # Nuclei are brighter than background.
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()
    # Deterministic in the seed.
    again, labels_again = synthetic_nuclei(shape, n=8, radius=7, seed=2)
    np.testing.assert_array_equal(again, image)
    np.testing.assert_array_equal(labels_again, labels)
    other = synthetic_nuclei(shape, n=8, radius=7, seed=3)[1]
    assert not np.array_equal(other, labels)


def test_synthetic_3d_anisotropy_and_touching():
    image, labels = synthetic_nuclei((32, 128, 128), n=30, radius=9, seed=0)
    # z spacing 2: a nucleus spans about half as many planes as pixels in y.
    from scipy import ndimage

    boxes = ndimage.find_objects(labels)
    z = np.median([b[0].stop - b[0].start for b in boxes])
    y = np.median([b[1].stop - b[1].start for b in boxes])
    assert 0.35 < z / y < 0.65
    # Some nuclei touch: fewer connected components than nuclei.
    _, n_components = ndimage.label(labels > 0)
    assert n_components < labels.max()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (4,)}, "2D or 3D"),
        ({"spacing": (1.0,)}, "spacing"),
        ({"radius": 0}, "radius"),
        ({"dtype": np.int8}, "dtype"),
    ],
)
def test_synthetic_bad_arguments(kwargs, match):
    kwargs = {"shape": (16, 16), **kwargs}
    with pytest.raises(ValueError, match=match):
        synthetic_nuclei(**kwargs)


def test_damaged_tiffs_are_one_error_naming_the_file(tmp_path):
    path = tmp_path / "good.tif"
    imwrite(path, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    data = path.read_bytes()
    (tmp_path / "header.tif").write_bytes(data[:8])
    with pytest.raises(ValueError, match="header.tif holds no image"):
        imread(tmp_path / "header.tif")
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.tif is truncated or damaged"):
        imread(tmp_path / "cut.tif")
    with pytest.raises(ValueError, match="has 1 image series, not 3"):
        imread(path, series=2)


def test_declared_size_is_checked_before_reading():
    from napari_binseg.io import check_fits_in_memory

    check_fits_in_memory((100, 100), np.uint16, available=20_000)
    with pytest.raises(ValueError, match=r"big.tif declares 200000 x 200000 uint8 .*37.3 GiB"):
        check_fits_in_memory((200000, 200000), np.uint8, name="big.tif", available=2**30)


def test_zarr_stores_every_chunk_and_refuses_missing_ones(tmp_path):
    image = np.zeros((64, 64), np.uint16)
    image[:8, :8] = 7
    store = write_zarr(tmp_path / "s.zarr", da.from_array(image, chunks=32))
    chunks = sorted(p for p in store.rglob("*") if p.is_file() and p.parent.name.isdigit())
    assert len(chunks) == 4  # empty chunks stored too
    chunks[0].unlink()
    with pytest.raises(ValueError, match="s.zarr is missing 1 of its 4 chunks"):
        read_zarr(store)
    data, _ = read_zarr(store, allow_missing_chunks=True)
    assert int(data.sum().compute()) == 0  # the chunk holding the 7s reads as zeros


@pytest.mark.parametrize("kind", ["imagej", "ome"])
def test_a_z_stack_file_is_segmented_as_a_volume(tmp_path, kind):
    """Axes and voxel size of an ImageJ or OME z-stack (written by tifffile, as other
    software does) reach the pipeline: the stack is counted as one volume in µm³."""
    from napari_binseg.batch import segment_file
    from napari_binseg.settings import PipelineSettings

    stack = np.zeros((6, 16, 16), np.uint8)
    stack[1:5, 3:8, 3:8] = 200  # one nucleus over four planes
    stack[2:4, 10:14, 10:14] = 200
    path = tmp_path / "in" / f"zstack.{'ome.' if kind == 'ome' else ''}tif"
    path.parent.mkdir()
    if kind == "imagej":
        tifffile.imwrite(path, stack, imagej=True, resolution=(2.0, 2.0),
                         metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})  # fmt: skip
    else:
        sizes = {"PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.5}
        tifffile.imwrite(path, stack, ome=True, metadata={"axes": "ZYX", **sizes})
    image, meta = imread(path)
    assert meta["axes"] == "ZYX" and meta["scale"] == pytest.approx((2.0, 0.5, 0.5))
    settings = PipelineSettings(
        "otsu", count={"split_touching": False, "fill_holes": False, "min_size": 0.0}
    )
    _, counts = segment_file(path, tmp_path / "out", settings)
    assert counts["count"].tolist() == [2]
    objects = pd.read_csv(tmp_path / "out" / "per_file" / "zstack_objects.csv")
    assert sorted(objects["volume_um3"]) == pytest.approx([2 * 4 * 4 * 0.5, 4 * 5 * 5 * 0.5])
