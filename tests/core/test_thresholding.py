"""Core thresholding: equality with scikit-image, scopes, dask, options and bad inputs (no Qt)."""

import csv
import subprocess
import sys
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import skimage.filters as skf
import tifffile
from scipy import ndimage as ndi
from skimage.morphology import remove_small_objects

from napari_binseg import THRESHOLD_METHODS, threshold, threshold_value

METHODS = [m for m in THRESHOLD_METHODS if m != "manual"]
SAMPLE = Path(__file__).parents[2] / "src/napari_binseg/data/nuclei_175dbb364bfefc95.tif"


def as_dtype(image, dtype):
    """The uint8 sample as uint8, uint16 (range x3, so values are not all < 256) or float32."""
    if dtype == "uint8":
        return image
    if dtype == "uint16":
        return image.astype(np.uint16) * 3
    if dtype == "int16":
        return image.astype(np.int16) - 100
    return (image / 255).astype(dtype)


def skimage_threshold(image, method, classes=3):
    func = getattr(skf, f"threshold_{method}")
    return func(image, classes=classes) if method == "multiotsu" else func(image)


def assert_same_threshold(ours, image, method):
    """Ours equals scikit-image's, or both refuse (threshold_minimum without two peaks)."""
    try:
        expected = skimage_threshold(image, method)
    except RuntimeError:
        with pytest.raises(ValueError, match="minimum"):
            ours()
        return
    np.testing.assert_array_equal(np.asarray(ours()), np.asarray(expected, dtype=np.float64))


# ------------------------------------------------------------------ equality with skimage


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_equals_skimage_on_samples(sample_images, method, dtype):
    for image in sample_images.values():
        data = as_dtype(image, dtype)
        assert_same_threshold(lambda: threshold_value(data, method), data, method)  # noqa: B023


@pytest.mark.parametrize("method", ["otsu", "li", "yen", "triangle", "isodata", "mean"])
def test_equals_skimage_full_uint16_range(sample_image, method):
    image = sample_image.astype(np.uint16) * 257  # 65536 grey levels, one bin each
    assert threshold_value(image, method) == skimage_threshold(image, method)


def test_equals_skimage_on_shared_data(shared_data_dir):
    with open(shared_data_dir / "index.csv") as f:
        names = sorted(row["name"] for row in csv.DictReader(f))[::60]  # a spread of ~7 images
    for name in names:
        image = tifffile.imread(shared_data_dir / "images" / f"{name}.tif")
        for data in (image, (image / 255).astype(np.float32)):
            for method in METHODS:
                assert_same_threshold(
                    lambda: threshold_value(data, method),  # noqa: B023 (called at once)
                    data,
                    method,
                )


def test_multiotsu_wide_integer_range_is_binned_like_float():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 200_000, (64, 64)).astype(np.int32)
    expected = skf.threshold_multiotsu(image.astype(np.float64), classes=3)
    np.testing.assert_allclose(threshold_value(image, "multiotsu", sigma=0), expected, rtol=1e-12)


@pytest.mark.parametrize("classes", [2, 3, 4])
def test_multiotsu_classes(sample_image, classes):
    t = threshold_value(sample_image, "multiotsu", classes=classes)
    expected = skf.threshold_multiotsu(sample_image, classes=classes)
    np.testing.assert_array_equal(t, expected)
    labels = threshold(sample_image, "multiotsu", classes=classes)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.digitize(sample_image, bins=expected))
    assert set(np.unique(labels)) == set(range(classes))


# ------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("method", ["otsu", "li", "triangle", "mean"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_mask_is_image_greater_than_value(sample_image, method, dtype):
    image = as_dtype(sample_image, dtype)
    mask, t = threshold(image, method, return_thresholds=True)
    assert isinstance(t, float) and t == threshold_value(image, method)
    assert mask.dtype == np.uint8 and mask.shape == image.shape
    np.testing.assert_array_equal(mask, image > t)
    np.testing.assert_array_equal(threshold(image, method, invert=True), image <= t)


def test_manual_value_and_input_untouched(sample_image):
    image = sample_image.copy()
    mask, t = threshold(image, "manual", value=37.5, return_thresholds=True)
    assert t == 37.5
    np.testing.assert_array_equal(mask, sample_image > 37.5)
    np.testing.assert_array_equal(image, sample_image)


def test_nan_is_ignored_and_background():
    rng = np.random.default_rng(0)
    image = np.concatenate([rng.normal(10, 1, 500), rng.normal(30, 2, 300)]).astype(np.float32)
    image = image.reshape(20, 40)
    image[3, :7] = np.nan
    valid = image[~np.isnan(image)]
    assert threshold_value(image, "otsu", sigma=0) == skf.threshold_otsu(valid)
    assert threshold_value(image, "li", sigma=0) == skf.threshold_li(valid)
    assert threshold_value(image, "mean", sigma=0) == np.mean(valid)
    assert threshold(image)[3, :7].sum() == 0
    assert threshold(image, invert=True)[3, :7].sum() == 0


# ------------------------------------------------------------------------------ scopes


def small_stack():
    """(3, 2, 64, 80) uint8 crops of the real sample: (T, Z, Y, X), planes all different."""
    image = tifffile.imread(SAMPLE)
    crops = [image[y : y + 64, x : x + 80] for y in (0, 100, 200) for x in (0, 150)]
    stack = np.stack(crops).reshape(3, 2, 64, 80)
    return stack + np.arange(6, dtype=np.uint8).reshape(3, 2, 1, 1) * 5  # shift some planes


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_slice_scope_equals_loop(method, dtype):
    stack = as_dtype(small_stack(), dtype)
    expected = np.array(
        [[np.reshape(skimage_threshold(p, method), -1) for p in frame] for frame in stack]
    )
    if method != "multiotsu":
        expected = expected[..., 0]
    t = threshold_value(stack, method, scope="slice")
    assert t.shape == expected.shape
    np.testing.assert_array_equal(t, expected)
    mask = threshold(stack[0], method, scope="slice")  # 3D (Z, Y, X): one value per plane
    for z in range(2):
        if method == "multiotsu":
            np.testing.assert_array_equal(mask[z], np.digitize(stack[0, z], expected[0, z]))
        else:
            np.testing.assert_array_equal(mask[z], stack[0, z] > expected[0, z])


@pytest.mark.parametrize("method", ["otsu", "li", "yen", "triangle", "mean", "multiotsu"])
@pytest.mark.parametrize("ndim", [3, 4])
def test_frame_scope_equals_loop(method, ndim):
    stack = small_stack() if ndim == 4 else small_stack()[:, 0]
    t = threshold_value(stack, method, scope="frame")
    expected = np.array([skimage_threshold(frame, method) for frame in stack])
    np.testing.assert_array_equal(t, expected)
    assert t.shape[:1] == (3,)
    mask = threshold(stack, method, scope="frame")
    for i, frame in enumerate(stack):
        if method == "multiotsu":
            np.testing.assert_array_equal(mask[i], np.digitize(frame, expected[i]))
        else:
            np.testing.assert_array_equal(mask[i], frame > expected[i])


def test_image_scope_on_a_stack_is_one_threshold():
    stack = small_stack()
    assert threshold_value(stack, "otsu") == skf.threshold_otsu(stack)
    assert threshold_value(stack, "li") == skf.threshold_li(stack)


def test_blank_plane_in_a_stack_is_background():
    stack = small_stack()[0].copy()
    stack[1] = 7
    t = threshold_value(stack, scope="slice")
    assert t[1] == 7 and t[0] == skf.threshold_otsu(stack[0])
    assert threshold(stack, scope="slice")[1].sum() == 0


# -------------------------------------------------------------------------------- dask


@pytest.mark.parametrize("scope", ["image", "slice", "frame"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("method", ["otsu", "li", "mean", "multiotsu"])
def test_dask_equals_numpy(scope, dtype, method):
    stack = as_dtype(small_stack(), dtype)
    lazy = da.from_array(stack, chunks=(2, 1, 40, 50))  # chunks split planes and frames
    t_np = threshold_value(stack, method, scope=scope)
    t_da = threshold_value(lazy, method, scope=scope)
    np.testing.assert_array_equal(t_da, t_np)
    mask = threshold(lazy, method, scope=scope)
    assert isinstance(mask, da.Array) and mask.chunks == lazy.chunks
    np.testing.assert_array_equal(mask.compute(), threshold(stack, method, scope=scope))


@pytest.mark.parametrize("scope", ["image", "slice", "frame"])
def test_dask_postprocessing_and_sigma_equal_numpy(scope):
    stack = small_stack()
    lazy = da.from_array(stack, chunks=(1, 2, 32, 40))
    options = dict(scope=scope, fill_holes=True, min_size=15, sigma=1.0, invert=False)
    np.testing.assert_array_equal(
        threshold(lazy, **options).compute(), threshold(stack, **options)
    )
    smoothed = threshold(lazy, scope=scope, sigma=1.5)
    assert smoothed.chunks == lazy.chunks
    np.testing.assert_array_equal(smoothed.compute(), threshold(stack, scope=scope, sigma=1.5))


# ---------------------------------------------------------------------------- options


def test_sigma_smooths_only_within_planes():
    stack = np.zeros((3, 21, 21), np.uint16)
    stack[1, 10, 10] = 1000
    smooth = ndi.gaussian_filter(stack.astype(np.float32), (0, 2, 2))
    mask, t = threshold(stack, "manual", value=5.0, sigma=2, return_thresholds=True)
    np.testing.assert_array_equal(mask, smooth > 5.0)
    assert mask[0].sum() == mask[2].sum() == 0 and mask[1].sum() > 1
    assert threshold_value(stack, "otsu", sigma=2) == skf.threshold_otsu(smooth)


def test_sigma_keeps_nan_holes_from_spreading():
    image = np.full((20, 20), 10.0, np.float32)
    image[5:15, 5:15] = 50
    image[0, 0] = np.nan
    mask = threshold(image, "manual", value=30, sigma=1.0)
    assert mask[0, 0] == 0 and mask[10, 10] == 1 and mask[0, 1] == 0
    assert not np.isnan(threshold_value(image, "otsu", sigma=1.0))


def test_invert_dark_objects():
    image = np.full((10, 10), 200, np.uint8)
    image[2:5, 2:5] = 20
    mask = threshold(image, "manual", value=100, invert=True)
    assert mask.sum() == 9 and mask[2:5, 2:5].all()


def ring_image():
    image = np.zeros((12, 12), np.uint8)
    image[2:9, 2:9] = 200
    image[4:7, 4:7] = 0  # a 3x3 hole
    image[10, 10] = 200  # a single pixel object
    return image


def test_fill_holes_and_min_size_handmade():
    image = ring_image()
    assert threshold(image, "manual", value=100).sum() == 49 - 9 + 1
    assert threshold(image, "manual", value=100, fill_holes=True).sum() == 49 + 1
    assert threshold(image, "manual", value=100, fill_holes=True, min_size=2).sum() == 49
    assert threshold(image, "manual", value=100, min_size=41).sum() == 0
    assert threshold(image, "manual", value=100, min_size=40).sum() == 40


def test_fill_holes_and_min_size_match_scipy_skimage(sample_image):
    mask = sample_image > skf.threshold_otsu(sample_image)
    expected = remove_small_objects(ndi.binary_fill_holes(mask), max_size=29)
    ours = threshold(sample_image, fill_holes=True, min_size=30)
    np.testing.assert_array_equal(ours, expected)


def test_postprocessing_unit_follows_scope():
    # A tube open at both ends along Z: in 3D its inside reaches the border (not a hole),
    # in each plane it is a ring with a hole.
    tube = np.zeros((5, 9, 9), np.uint8)
    tube[:, 2:7, 2:7] = 200
    tube[:, 4, 4] = 0
    assert threshold(tube, "manual", value=1, fill_holes=True)[:, 4, 4].sum() == 0
    assert threshold(tube, "manual", value=1, fill_holes=True, scope="slice")[:, 4, 4].all()
    # One object of 2 pixels per plane, 10 pixels in 3D: min_size=5 keeps it only in 3D.
    column = np.zeros((5, 6, 6), np.uint8)
    column[:, 2, 2:4] = 9
    assert threshold(column, "manual", value=1, min_size=5).sum() == 10
    assert threshold(column, "manual", value=1, min_size=5, scope="slice").sum() == 0
    four_d = np.stack([column, column])
    # (T, Z, Y, X): the two frames touch along T, one 4D object of 20 pixels.
    assert threshold(four_d, "manual", value=1, min_size=20).sum() == 20
    assert threshold(four_d, "manual", value=1, min_size=21).sum() == 0
    assert threshold(four_d, "manual", value=1, min_size=11, scope="frame").sum() == 0
    assert threshold(four_d, "manual", value=1, min_size=10, scope="frame").sum() == 20


def test_progress_is_reported_and_can_cancel():
    stack = small_stack()[0]
    calls = []
    threshold(stack, scope="slice", progress=lambda done, total: calls.append((done, total)))
    # sigma "auto" measures each plane first, a step each.
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls.clear()
    threshold(stack, scope="slice", sigma=0, progress=lambda *step: calls.append(step))
    assert calls == [(1, 2), (2, 2)]

    def cancel(done, total):
        raise KeyboardInterrupt

    for sigma in ("auto", 0):  # while measuring / thresholding the planes
        with pytest.raises(KeyboardInterrupt):
            threshold(stack, scope="slice", sigma=sigma, progress=cancel)
    calls.clear()
    threshold(stack, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1]
    # dask: one step per chunk read (two reads for float data), then the thresholds.
    calls.clear()
    lazy = da.from_array(stack.astype(np.float32), chunks=(1, 32, 80))
    threshold(lazy, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 9) for i in range(1, 10)]
    # A sigma per plane: the measure's steps, then the passes over the lazy planes (an
    # estimate of them until the sigmas are known).
    calls.clear()
    threshold(lazy, scope="slice", progress=lambda done, total: calls.append((done, total)))
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1))
    assert calls[:2] == [(1, 11), (2, 11)] and calls[-1][0] == calls[-1][1]


# -------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((8, 8, 3), np.uint8), {}, "RGB"),
        (np.full((8, 8), np.nan), {}, "only NaN"),
        (np.full((8, 8), 3, np.uint16), {}, "constant"),
        (np.full((8, 8), 0.5, np.float32), {"method": "li"}, "constant"),
        (np.zeros((0, 8)), {}, "empty"),
        (np.arange(16.0).reshape(4, 4), {"method": "magic"}, "method must be one of"),
        (np.arange(16.0).reshape(4, 4), {"scope": "plane"}, "scope must be one of"),
        (np.arange(16.0).reshape(4, 4), {"scope": "frame"}, "time axis"),
        (np.arange(16.0).reshape(4, 4), {"method": "multiotsu", "classes": 1}, "classes"),
        (np.arange(16.0).reshape(4, 4), {"sigma": -1}, "sigma"),
        (np.array([[0, np.inf], [1, 2]]), {}, "infinite"),
        (np.arange(10), {}, "dimensions"),
    ],
)
def test_bad_inputs_raise_clear_errors(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        threshold(image, **kwargs)
    if kwargs.get("method") != "manual":
        with pytest.raises(ValueError, match=match):
            threshold_value(image, **kwargs)


def test_manual_needs_a_value():
    with pytest.raises(ValueError, match="value="):
        threshold(np.arange(16.0).reshape(4, 4), "manual")
    with pytest.raises(ValueError, match="value"):
        threshold(np.arange(16.0).reshape(4, 4), "manual", value=float("nan"))
    with pytest.raises(ValueError, match="multiotsu"):
        threshold(np.arange(16.0).reshape(4, 4), "multiotsu", min_size=3)


# ------------------------------------------------------------------------- imports


def test_import_is_light():
    code = (
        "import sys, napari_binseg.thresholding; "
        "print(any(m in sys.modules for m in ('numba', 'torch', 'napari', 'qtpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("method", ["otsu", "li", "multiotsu"])
def test_slice_scope_of_a_2d_image_is_the_image_threshold(sample_image, method):
    np.testing.assert_array_equal(
        threshold(sample_image, method, scope="slice"), threshold(sample_image, method)
    )
    with pytest.raises(ValueError, match="constant"):
        threshold(np.full((8, 8), 3, np.uint8), method, scope="slice")


# ------------------------------------------------------------ byte order, preview, options


@pytest.mark.parametrize("dtype", ["u2", "i2", "f4", "f8"])
def test_big_endian_equals_native(sample_image, dtype):
    native = (sample_image.astype(dtype) * 3).astype(dtype)
    big = native.astype(">" + dtype)
    for method in ("otsu", "li", "multiotsu"):
        assert np.array_equal(threshold_value(big, method), threshold_value(native, method))
    mask, t = threshold(big, return_thresholds=True)
    np.testing.assert_array_equal(mask, threshold(native))
    lazy = da.from_array(big, chunks=(200, 300))
    np.testing.assert_array_equal(threshold(lazy).compute(), threshold(native))


def test_apply_threshold_equals_a_run(sample_image):
    from napari_binseg.thresholding import apply_threshold

    options = {"sigma": 1.5, "invert": True, "fill_holes": True, "min_size": 12}
    mask, t = threshold(sample_image, "li", **options, return_thresholds=True)
    np.testing.assert_array_equal(apply_threshold(sample_image, t, **options), mask)
    classes, ts = threshold(sample_image, "multiotsu", sigma=1.0, return_thresholds=True)
    np.testing.assert_array_equal(
        apply_threshold(sample_image, ts, classes=True, sigma=1.0), classes
    )


def test_apply_threshold_on_a_plane_of_a_float64_nan_stack():
    """The widget's preview: stack thresholds on one plane give that plane of the run."""
    from napari_binseg.thresholding import apply_threshold

    rng = np.random.default_rng(5)
    stack = ndi.gaussian_filter(rng.random((3, 40, 50)), (0, 2, 2))  # float64
    stack[1, 5:9, 5:9] = np.nan
    classes, ts = threshold(stack, "multiotsu", sigma=1.0, return_thresholds=True)
    mask, t = threshold(stack, "otsu", sigma=1.0, return_thresholds=True)
    for z in range(3):
        plane = apply_threshold(stack[z], ts, classes=True, sigma=1.0)
        np.testing.assert_array_equal(plane, classes[z])
        np.testing.assert_array_equal(apply_threshold(stack[z], t, sigma=1.0), mask[z])
    assert (classes[1, 5:9, 5:9] == 0).all()


def test_apply_threshold_refuses_bad_options():
    from napari_binseg.thresholding import apply_threshold

    image = np.arange(16.0).reshape(4, 4)
    with pytest.raises(ValueError, match="one number"):
        apply_threshold(image, [1.0, 2.0])
    with pytest.raises(ValueError, match="multiotsu"):
        apply_threshold(image, [1.0, 2.0], classes=True, fill_holes=True)
    assert apply_threshold(image, np.nan).sum() == 0  # an all-NaN plane's threshold


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 1e5}, r"sigma \('auto' or px\) must be <= 100"),
        ({"min_size": -1}, "min_size"),
        ({"invert": "yes"}, "invert"),
        ({"method": "manual", "value": float("inf")}, "value must be finite"),
    ],
)
def test_options_are_checked_by_threshold_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        threshold(np.arange(16.0).reshape(4, 4), **kwargs)


def test_a_mask_left_empty_by_a_speck_is_said():
    # Dense small nuclei (Otsu effectiveness 0.72 < BIMODAL_ETA): the bright-outlier rule
    # cannot vouch for the rest, and one float speck 1000x brighter squeezes every nucleus
    # into Otsu's lowest bin. The mask is then the speck alone: a warning, not a silent count.
    from napari_binseg import synthetic_stack
    from napari_binseg.thresholding import FewForegroundPixels

    image, _ = synthetic_stack((6, 64, 64), spacing=(2, 1, 1), radius=4.0, seed=1)
    image = image.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = threshold(image)
    image[2, 5, 5] = image.max() * 1000
    with pytest.warns(FewForegroundPixels, match="leaves 1 of 24576 pixels"):
        assert threshold(image).sum() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clipped = threshold(image, clip=99.9)
    assert abs(int(clipped.sum()) - int(clean.sum())) < 0.01 * clean.sum()


@pytest.mark.parametrize("blank", [np.nan, 0.0, 300.0])
def test_a_blank_plane_is_not_said_to_be_set_by_bright_pixels(blank):
    """A blank (dropped, padded or all-NaN) plane thresholded alone has no foreground and no
    speck: FewForegroundPixels, whose advice is to clip bright pixels, stays silent (a
    speck's own pixels are foreground: test_a_mask_left_empty_by_a_speck_is_said)."""
    from napari_binseg import synthetic_stack

    image, _ = synthetic_stack((6, 64, 64), spacing=(2, 1, 1), radius=4.0, seed=1)
    image = image.astype(np.float32)
    image[1] = blank
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask = threshold(image, scope="slice")
    assert mask[1].sum() == 0 and mask.sum() > 0
