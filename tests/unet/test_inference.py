"""U-Net inference: post-processing, normalization, tiling, stacks, progress, options,
non-finite pixels and the bundled model's quality (CPU)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_binseg.unet import inference, load_model, predict, predict_channels, segment
from napari_binseg.unet._postprocess import (
    grow_seeds,
    probabilities_to_labels,
    remove_small,
    remove_unconfident,
)
from napari_binseg.unet.passes import probabilities_at_scale
from napari_binseg.unet.scale import resize
from napari_binseg.unet.tiling import _n_windows, _plan

from .conftest import bundled_copy, needs_bundled, object_f1

# ----------------------------------------------------------------------------- post-processing


def test_grow_seeds_exact():
    seeds = np.zeros((3, 7), np.int32)
    seeds[1, 0] = 1
    seeds[1, 6] = 2
    mask = np.ones((3, 7), bool)
    mask[:, 3] = [False, True, False]  # a one-pixel bridge
    mask[0, 5] = False
    out = grow_seeds(seeds, mask)
    expected = np.array(
        [[1, 1, 1, 0, 2, 0, 2], [1, 1, 1, 1, 2, 2, 2], [1, 1, 1, 0, 2, 2, 2]], np.int32
    )
    # The bridge pixel is 3 steps from seed 1 and 3 from seed 2: either label is right.
    assert out[1, 3] in (1, 2)
    out[1, 3] = 1
    np.testing.assert_array_equal(out, expected)
    assert seeds.sum() == 3  # input untouched


def test_touching_nuclei_are_separated():
    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 < 12**2
    b = (yy - 20) ** 2 + (xx - 40) ** 2 < 12**2
    fg = (a | b).astype(np.float32)
    centre = (
        ((yy - 20) ** 2 + (xx - 20) ** 2 < 5**2) | ((yy - 20) ** 2 + (xx - 40) ** 2 < 5**2)
    ).astype(np.float32)
    labels = probabilities_to_labels(fg, centre)
    assert labels.dtype == np.int32 and labels.max() == 2
    assert labels[20, 20] != labels[20, 40]
    assert np.array_equal(labels > 0, a | b)
    # The split line sits halfway between the centres.
    assert labels[20, 29] == labels[20, 20] and labels[20, 31] == labels[20, 40]


@pytest.mark.parametrize("n", [0, 1, 65535, 65536, 2**31 - 1])
def test_labels_come_in_the_counts_type(n):
    """segment's int32 labels leave as uint16 up to 65535 objects, else as uint32 (the same
    memory), as count_cells gives them."""
    from napari_binseg.morphology import label_dtype
    from napari_binseg.unet._postprocess import as_count_labels

    labels = np.array([[0, max(n - 1, 0)], [n, 0]], np.int32)
    out = as_count_labels(labels)
    assert out.dtype == label_dtype(n) == (np.uint16 if n < 65536 else np.uint32)
    np.testing.assert_array_equal(out, labels)
    assert np.shares_memory(out, labels) == (n >= 65536)


def test_foreground_without_seed_and_small_objects():
    fg = np.zeros((20, 20), np.float32)
    fg[2:8, 2:8] = 0.9  # 36 px, no centre
    fg[15:17, 15:17] = 0.9  # 4 px: removed at min_size 8
    centre = np.zeros_like(fg)
    labels = probabilities_to_labels(fg, centre, min_size=8)
    assert labels.max() == 1 and (labels == 1).sum() == 36
    np.testing.assert_array_equal(
        remove_small(np.array([[1, 1, 2, 3, 3, 3]]), 2), [[1, 1, 0, 2, 2, 2]]
    )


def test_objects_under_the_confidence_floor_are_removed():
    """Means 0.9, 0.8 (0.7 and 0.9 halves) and 0.95: at 0.85 only the second goes, and the
    third becomes 2 (consecutive); 0 keeps every object, the same array."""
    labels = np.zeros((8, 30), np.int32)
    labels[1:7, 1:7], labels[1:7, 11:17], labels[1:7, 21:27] = 1, 2, 3
    fg = np.where(labels > 0, 0.9, 0.1).astype(np.float32)
    fg[1:7, 11:14] = 0.7
    fg[labels == 3] = 0.95
    before = labels.copy()
    out = remove_unconfident(labels, fg, 0.85)
    np.testing.assert_array_equal(out, np.where(labels == 2, 0, labels - (labels == 3)))
    np.testing.assert_array_equal(labels, before)  # input untouched
    assert remove_unconfident(labels, fg, 0.0) is labels
    assert remove_unconfident(labels, fg, 0.75).max() == 3
    assert remove_unconfident(labels, fg, 0.92).max() == 1


# ----------------------------------------------------------------------------- normalization


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_percentile_range_matches_numpy(dtype):
    rng = np.random.default_rng(1)
    if dtype is bool:
        x = rng.random((37, 41)) > 0.3
    elif dtype is np.float32:
        x = rng.normal(size=(37, 41)).astype(dtype)
    else:
        x = rng.integers(0, np.iinfo(dtype).max, size=(37, 41), dtype=dtype) // 7
    expected = np.percentile(x.astype(np.float64), [1.0, 99.8])
    np.testing.assert_allclose(inference.percentile_range(x, 1.0, 99.8), expected, rtol=1e-6)


def test_nonfinite_pixels_are_background_in_normalization():
    x = np.linspace(0, 100, 400, dtype=np.float32).reshape(20, 20)
    bad = x.copy()
    bad[0, 0], bad[3, 4], bad[5, 5] = np.nan, np.inf, -np.inf
    finite = x[np.isfinite(bad)]
    assert inference.percentile_range(bad) == pytest.approx(
        tuple(np.percentile(finite, [1.0, 99.8]))
    )
    out = inference.normalize_plane(bad, {"kind": "percentile"})
    assert np.isfinite(out).all() and out[0, 0] == out[3, 4] == out[5, 5] == 0
    assert inference.percentile_range(np.full((4, 4), np.nan)) == (0.0, 0.0)


# ----------------------------------------------------------------------------- inference


def test_tiled_equals_full_image(small_model, sample_images):
    folder, _ = small_model
    image = sample_images["nuclei_003cee89357d9fe1"]  # 256 x 256
    full = predict(image, folder, device="cpu", tile_size=256, precision="float32")
    tiled = predict(
        image, folder, device="cpu", tile_size=96, overlap=0.5, batch_size=3, precision="float32"
    )
    assert full.shape == image.shape and full.dtype == np.float32
    diff = np.abs(full - tiled)
    # Tiles see less context near their borders; Gaussian blending keeps the map close.
    assert diff.mean() < 0.01, diff.mean()
    assert np.mean(diff > 0.1) < 0.01


def test_full_image_pass_equals_network(small_model, sample_images):
    folder, net = small_model
    image = sample_images["nuclei_003cee89357d9fe1"][:64, :80]
    probs = predict_channels(image, folder, device="cpu", precision="float32")
    x = inference.normalize_plane(image, {"kind": "percentile", "low": 1.0, "high": 99.8})
    with torch.inference_mode():
        expected = torch.sigmoid(net(torch.from_numpy(x)[None, None]))[0].numpy()
    assert probs.shape == (2, 64, 80)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_array_equal(
        predict(image, folder, device="cpu", precision="float32"), probs[0]
    )


@pytest.mark.parametrize("shape", [(3, 48, 56), (2, 2, 48, 40)])
def test_stack_equals_planes(small_model, shape):
    folder, _ = small_model
    rng = np.random.default_rng(0)
    stack = (rng.random(shape) * 200).astype(np.uint8)
    stack[..., 10:20, 10:20] += 50  # some structure
    prob = predict(stack, folder, device="cpu", precision="float32")
    # Plane by plane: a 3D array as a time series ("TYX"; 4D: its planes as one series).
    planes = stack.reshape((-1,) + shape[-2:])
    labels = segment(
        planes, folder, device="cpu", precision="float32", prob_threshold=0.5, axes="TYX"
    ).reshape(shape)
    assert prob.shape == stack.shape and labels.shape == stack.shape
    assert labels.dtype == np.uint16
    offset = 0
    for idx in np.ndindex(*shape[:-2]):
        plane_prob = predict(stack[idx], folder, device="cpu", precision="float32")
        np.testing.assert_allclose(prob[idx], plane_prob, atol=1e-6)
        plane_labels = segment(stack[idx], folder, device="cpu", precision="float32")
        got = labels[idx]
        np.testing.assert_array_equal(got > 0, plane_labels > 0)
        np.testing.assert_array_equal(np.where(got > 0, got - offset, 0), plane_labels)
        offset += int(plane_labels.max())
    assert labels.max() == offset


def test_openvino_backend_equals_torch(small_model, sample_images):
    pytest.importorskip("openvino")
    folder, _ = small_model
    image = sample_images["nuclei_003cee89357d9fe1"]
    kw = dict(device="cpu", precision="float32", tile_size=128, overlap=0.25)
    p_ov = predict_channels(image, folder, backend="openvino", **kw)
    p_torch = predict_channels(image, folder, backend="torch", **kw)
    np.testing.assert_allclose(p_ov, p_torch, atol=1e-4)
    runner = inference._Runner(
        load_model(folder, device="cpu"), precision="float32", progress=None, total=1
    )
    assert runner.backend == "openvino"  # what backend="auto" picks on this CPU


def test_dask_input_equals_numpy(small_model):
    import dask.array as da

    folder, _ = small_model
    rng = np.random.default_rng(3)
    stack = (rng.random((2, 40, 40)) * 1000).astype(np.uint16)
    lazy = da.from_array(stack, chunks=(1, 20, 20))
    np.testing.assert_array_equal(
        predict(lazy, folder, device="cpu", precision="float32"),
        predict(stack, folder, device="cpu", precision="float32"),
    )


def test_progress_reports_and_cancels(small_model):
    folder, _ = small_model
    image = np.random.default_rng(0).random((2, 150, 150)).astype(np.float32)
    calls = []
    predict(
        image,
        folder,
        device="cpu",
        tile_size=64,
        overlap=0.25,
        batch_size=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    dones = [d for d, _ in calls]
    total = calls[-1][1]
    assert dones == sorted(dones) and calls[-1] == (total, total)
    padded, roi, per_plane = _plan((150, 150), load_model(folder, device="cpu"), 64, 0.25)
    assert roi == (64, 64) and per_plane == _n_windows(padded, roi, 0.25) == 9
    assert total == 2 * per_plane
    # MONAI ran exactly the planned windows: the last batch reached the total itself.
    assert calls.count((total, total)) == 2
    assert len(calls) > 4  # several batches per plane

    class Cancelled(Exception):
        pass

    seen = []

    def cancel(done, total):
        seen.append(done)
        raise Cancelled

    with pytest.raises(Cancelled):
        segment(
            image, folder, device="cpu", tile_size=64, batch_size=2, progress=cancel, axes="TYX"
        )
    assert seen == [2]  # stopped after the first batch of tiles


def test_segment_returns_probabilities_of_same_pass(small_model, sample_images):
    folder, _ = small_model
    image = sample_images["nuclei_003cee89357d9fe1"][:96, :96]
    labels, prob = segment(image, folder, device="cpu", return_probabilities=True)
    np.testing.assert_array_equal(prob, predict(image, folder, device="cpu"))
    np.testing.assert_array_equal(labels, segment(image, folder, device="cpu"))


def test_input_not_modified(small_model):
    folder, _ = small_model
    image = np.arange(48 * 48, dtype=np.float32).reshape(48, 48)
    before = image.copy()
    segment(image, folder, device="cpu")
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((0, 5)), "empty"),
        (np.zeros(5), "dimensions"),
        (np.zeros((32, 32, 3), np.uint8), "RGB"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_bad_images(small_model, image, match):
    with pytest.raises(ValueError, match=match):
        predict(image, small_model[0], device="cpu")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tile_size": 4}, "tile_size"),
        ({"overlap": 1.0}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"precision": "half"}, "precision"),
        ({"device": "tpu"}, "device"),
        ({"backend": "tvm"}, "backend"),
    ],
)
def test_bad_options(small_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict(np.zeros((32, 32)), small_model[0], **kwargs)


def test_probabilities_at_scale_is_the_pass_of_predict(small_model, sample_images):
    folder, _ = small_model
    image = sample_images["nuclei_003cee89357d9fe1"][:96, :112]
    kw = dict(device="cpu", precision="float32")
    np.testing.assert_array_equal(
        inference.probabilities_at_scale(image, folder, 1.0, **kw),
        predict_channels(image, folder, **kw),
    )
    half = inference.probabilities_at_scale(image, folder, 0.5, **kw)
    assert half.shape == (2, 48, 56)
    x = inference.normalize_plane(image, load_model(folder, device="cpu").config["normalization"])
    # predict_channels normalizes the resized plane again: nearly the identity.
    np.testing.assert_allclose(
        half, predict_channels(resize(x, (48, 56)), folder, **kw), atol=2e-3
    )
    with pytest.raises(ValueError, match="scale"):
        inference.probabilities_at_scale(image, folder, 0, **kw)


def test_segment_info_reports_size_and_scale(sized_model, sample_images):
    image = sample_images["nuclei_003cee89357d9fe1"][:96, :112]
    stack = np.stack([image, image])
    kw = dict(device="cpu", precision="float32")
    labels, info = segment(
        stack, sized_model, diameter=50.0, spacing=0.5, return_info=True, axes="TYX", **kw
    )
    assert info["scales"] == [4.0, 4.0] and info["diameters"] == [50.0, 50.0]
    assert info["diameter"] == 50.0 and info["diameter_um"] == 25.0
    assert info["nonfinite_pixels"] == 0 and info["seconds"] > 0
    labels2, prob, info2 = segment(
        image, sized_model, diameter=None, return_probabilities=True, return_info=True, **kw
    )
    assert prob.shape == image.shape and info2["scales"] == [1.0]
    assert info2["diameter"] == pytest.approx(inference.median_diameter(labels2))
    assert info2["diameter_um"] is None
    with pytest.raises(ValueError, match="spacing"):
        segment(image, sized_model, spacing=-1.0, **kw)


def test_nonfinite_pixels_are_background(small_model):
    folder, _ = small_model
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64)) * 100).astype(np.float32)
    image[10:30, 10:30] += 400
    image[12, 12] = np.nan
    image[40, 50] = np.inf
    labels, prob, info = segment(
        image, folder, device="cpu", return_probabilities=True, return_info=True
    )
    assert info["nonfinite_pixels"] == 2
    assert labels[12, 12] == 0 and labels[40, 50] == 0 and prob[12, 12] == 0
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert np.isfinite(predict(image, folder, device="cpu")).all()
    empty = segment(np.full((2, 40, 40), np.nan, np.float32), folder, device="cpu", axes="TYX")
    assert empty.max() == 0


@needs_bundled
def test_one_nan_pixel_does_not_blank_the_image(sample_image, sample_labels):
    """Issue 15: one NaN pixel made the U-Net find nothing."""
    image = sample_image.astype(np.float32)
    clean = segment(image, device="cpu")
    image[0, 0] = np.nan
    labels, info = segment(image, device="cpu", return_info=True)
    assert info["nonfinite_pixels"] == 1
    assert abs(int(labels.max()) - int(clean.max())) <= 2
    assert object_f1(sample_labels, labels) >= 0.85


# ----------------------------------------------------------------------------- bundled model


@needs_bundled
def test_bundled_model_segments_sample(sample_image, sample_labels):
    lm = load_model("nuclei", device="cpu")
    assert lm.name == "nuclei" and len(lm.sha256) == 64
    assert lm.spatial_dims == 2 and lm.outputs == ["foreground", "centre"]
    labels = segment(sample_image, "nuclei", device="cpu")
    assert labels.shape == sample_image.shape
    # The count's type (uint16 below 65536 objects): a count of them keeps it.
    from napari_binseg import count_cells

    assert labels.dtype == count_cells(labels)[0].dtype == np.uint16
    f1 = object_f1(sample_labels, labels)
    assert f1 >= 0.85, f1
    # Otsu + connected components on the same image, the baseline the model must beat.
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    otsu = ndimage.label(sample_image > threshold_otsu(sample_image))[0]
    assert f1 > object_f1(sample_labels, otsu)


@needs_bundled
def test_bundled_model_tiled_equals_full(sample_image, sample_labels):
    full = segment(sample_image, device="cpu", tile_size=768)
    tiled = segment(sample_image, device="cpu", tile_size=256, overlap=0.25)
    assert object_f1(full, tiled) > 0.97
    assert abs(object_f1(sample_labels, full) - object_f1(sample_labels, tiled)) < 0.02


def test_the_models_own_prob_threshold_is_the_default(strict_model, sample_image):
    """A model's config.json ``postprocess.prob_threshold`` is what runs unless a threshold is
    given (it was validated at load, then 0.5 ran whatever it said)."""
    bundled, info = segment(sample_image, "nuclei", device="cpu", return_info=True)
    strict, strict_info = segment(sample_image, strict_model, device="cpu", return_info=True)
    assert (info["prob_threshold"], strict_info["prob_threshold"]) == (0.5, 0.9)
    assert 0 < np.count_nonzero(strict) < 0.95 * np.count_nonzero(bundled)
    at_09 = segment(sample_image, "nuclei", device="cpu", prob_threshold=0.9)
    np.testing.assert_array_equal(strict, at_09)
    # A given threshold overrides the model's.
    given = segment(sample_image, strict_model, device="cpu", prob_threshold=0.5)
    np.testing.assert_array_equal(given, bundled)
    crop = sample_image[:200, :200]  # too small to probe: measured on the full-size pass
    assert inference.estimate_diameter(crop, strict_model, device="cpu") == (
        inference.estimate_diameter(crop, "nuclei", device="cpu", prob_threshold=0.9)
    )
    lm = load_model(strict_model, device="cpu")
    probs = probabilities_at_scale(crop, lm, device="cpu")
    np.testing.assert_array_equal(
        inference.labels_from_probabilities(probs, lm),
        inference.labels_from_probabilities(probs, lm, prob_threshold=0.9),
    )


def test_the_confidence_floor_runs_on_the_result_only(tmp_path, sample_image):
    """The bundled model's floor (0.85) removes the objects of the result whose mean
    foreground probability is lower, and nothing else: the estimate (scale, diameter) is
    untouched; floor 0 and a config without the key give the labels of before the floor."""
    legacy = bundled_copy(tmp_path / "legacy")
    config = json.loads((legacy / "config.json").read_text())
    del config["postprocess"]["min_confidence"]
    (legacy / "config.json").write_text(json.dumps(config))
    crop = sample_image[:192, :192]  # segmented at full size
    kw = dict(device="cpu", return_info=True)
    off, prob, info_off = segment(crop, min_confidence=0, return_probabilities=True, **kw)
    on, info_on = segment(crop, **kw)
    old, info_old = segment(crop, legacy, **kw)
    assert (info_on["min_confidence"], info_off["min_confidence"]) == (0.85, 0)
    assert info_old["min_confidence"] == 0
    np.testing.assert_array_equal(old, off)
    assert info_on["scales"] == info_off["scales"] == [1.0]
    assert info_on["diameter"] == info_off["diameter"]
    np.testing.assert_array_equal(on, remove_unconfident(off.astype(np.int32), prob, 0.85))
    assert 0 < on.max() < off.max()
    np.testing.assert_array_equal(segment(crop, device="cpu", min_confidence=0.85), on)


@pytest.mark.parametrize(
    ("scales", "words"),
    [
        ([3.0], "even upsampled 3x (it sees"),
        ([2.0], "even upsampled 2x, the most the plane's size allows (it"),
        ([1.0], "at their own size, the most the plane's size allows (it"),
    ],
)
def test_too_small_warning_names_the_planes_own_upsampling(scales, words):
    """Nuclei of 3 px: the warning names the upsampling the plane got, which the pixel
    budget lowers on large planes (before: always the config's cap, 3x)."""
    from types import SimpleNamespace

    lm = SimpleNamespace(name="m", config={"postprocess": {"diameter": 19.3, "max_scale": 3}})
    with pytest.warns(inference.NucleiTooSmall, match=r"3\.0 px in 1 of 1 planes") as caught:
        inference._warn_too_small({"diameters": [3.0], "scales": scales}, lm)
    assert words in str(caught[0].message)


def test_import_does_not_load_torch():
    code = (
        "import sys, napari_binseg, napari_binseg.unet as u\n"
        "napari_binseg.predict; napari_binseg.segment; napari_binseg.load_model; u.predict\n"
        "import napari_binseg.unet.training, napari_binseg.unet.network\n"
        "bad = [m for m in ('torch', 'monai', 'numba', 'openvino') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "func",
    [
        inference.predict_channels,
        inference.predict,
        inference.segment,
        inference.estimate_diameter,
        probabilities_at_scale,
    ],
)
def test_keyword_defaults_are_the_options_defaults(func):
    """The functions repeat UNetOptions' defaults in their signatures; they must not drift."""
    import inspect

    from napari_binseg.options import UNetOptions, options_of

    defaults = {opt.name: opt.default for opt in options_of(UNetOptions)}
    params = inspect.signature(func).parameters
    shared = [name for name in params if name in defaults]
    assert {"device", "tile_size", "overlap", "batch_size"} <= set(shared)
    assert {name: params[name].default for name in shared} == {
        name: defaults[name] for name in shared
    }


@needs_bundled
@pytest.mark.parametrize(
    "image",
    [
        np.full((32, 32), 7, np.uint8),
        np.ones((1, 1), np.uint16),
        np.full((32, 32), np.nan, np.float32),
        np.full((300, 300), 5, np.uint16),
    ],
    ids=["constant", "one-pixel", "all-nan", "constant-probed"],
)
def test_segment_featureless_image_gives_no_objects(image):
    """A constant (or all-NaN) plane has no nuclei: 0 objects, no size, like diameter=None
    (too small to probe, it once raised a thresholding error about its normalized values)."""
    labels, info = segment(image, return_info=True)
    assert labels.shape == image.shape and labels.max() == 0 and info["diameter"] is None
    assert segment(image, diameter=None).max() == 0


def test_normalization_clips_hot_pixels():
    from napari_binseg.unet.normalize import CLIP

    x = np.linspace(0, 100, 10_000, dtype=np.float32).reshape(100, 100)
    hot = x.copy()
    hot[2, 2], hot[7, 7] = 1e9, -1e9  # beyond the 1-99.8 percentiles: they stay put
    out = inference.normalize_plane(hot, {"kind": "percentile"})
    assert out[2, 2] == CLIP and out[7, 7] == -CLIP
    mask = np.ones_like(x, bool)
    mask[[2, 7], [2, 7]] = False
    plain = inference.normalize_plane(x, {"kind": "percentile"})
    np.testing.assert_allclose(out[mask], plain[mask], atol=0.02)


@needs_bundled
def test_saturated_specks_do_not_change_the_answer(sample_image, sample_labels):
    """Four 3x3 specks at 1000x the maximum once changed labels across the whole sample
    (F1 0.972 -> 0.853, 2% of pixels): clipped, only the percentiles move a little."""
    image = sample_image.astype(np.float32)
    clean = segment(image, device="cpu")
    specks = [(20, 20), (200, 60), (120, 230), (60, 180)]
    for y, x in specks:
        image[y - 1 : y + 2, x - 1 : x + 2] = 1000.0 * float(sample_image.max())
    labels = segment(image, device="cpu")
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    far = np.all([np.hypot(yy - y, xx - x) > 40 for y, x in specks], axis=0)
    assert np.mean((labels[far] > 0) == (clean[far] > 0)) > 0.999
    assert object_f1(sample_labels, labels) >= object_f1(sample_labels, clean) - 0.01
