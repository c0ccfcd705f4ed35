"""Threshold robustness (issue 13): a clip for saturated debris, background subtraction."""

import numpy as np
import pytest

from napari_binseg import count_cells, threshold, threshold_value
from napari_binseg.background import (
    BIMODAL_ETA,
    UNEVEN_GATE,
    clip_histogram,
    otsu_effectiveness,
    remove_background,
    resolve_background,
    subtract_background,
    unevenness,
)

#: The clip alone, without the bright-outlier rule (on by default), which fixes specks itself.
CLIP = {"clip": 99, "ignore_bright_outliers": False}


def _nuclei(shape=(256, 256), n=40, radius=8, seed=0, gradient=0.0, scale=1, dtype=np.uint8):
    """uint8 nuclei (about 50-60) on a noisy background (about 20); exact count ``n``.

    ``scale`` multiplies the intensities (before the cast to ``dtype``): a 16-bit image.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = 20 + rng.normal(0, 2, shape)
    centres = []
    while len(centres) < n:
        c = rng.integers(radius + 2, np.array(shape) - radius - 2)
        if all(np.hypot(*(c - d)) > 2 * radius + 4 for d in centres):
            centres.append(c)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] += rng.uniform(30, 40)
    img += gradient * xx / shape[1]
    img = img * scale
    top = 255 if dtype == np.uint8 else 65535
    return np.clip(img, 0, top).astype(dtype), centres


def _with_specks(img, centres, k=6, size=9, seed=1, value=255):
    """Six saturated 9x9 specks (0.7 % of a 256x256 image) away from the nuclei."""
    rng = np.random.default_rng(seed)
    out = img.copy()
    placed = 0
    while placed < k:
        y, x = rng.integers(0, np.array(img.shape) - size)
        if all(np.hypot(y + size / 2 - cy, x + size / 2 - cx) > 20 for cy, cx in centres):
            out[y : y + size, x : x + size] = value
            placed += 1
    return out


def test_saturated_specks_do_not_move_the_clipped_threshold():
    clean, centres = _nuclei()
    dirty = _with_specks(clean, centres)
    # The problem: plain Otsu lands above the nuclei.
    assert threshold_value(dirty, ignore_bright_outliers=False) > 60 > threshold_value(clean)
    t_clean, t_dirty = threshold_value(clean, **CLIP), threshold_value(dirty, **CLIP)
    assert abs(t_dirty - t_clean) <= 3
    specks = dirty == 255
    m_clean = threshold(clean, **CLIP).astype(bool)
    m_dirty = threshold(dirty, **CLIP).astype(bool)
    assert np.mean(m_clean[~specks] != m_dirty[~specks]) < 0.002
    n_clean = len(count_cells(m_clean, image=clean)[1])
    n_dirty = len(count_cells(m_dirty & ~specks, image=dirty)[1])
    assert n_clean == n_dirty == 40


def test_clip_works_on_float_images_with_far_brighter_specks():
    # Float bins span min..max: specks at 65535 put every nucleus and the background into
    # the first of 256 bins, so clipping that histogram could not help.
    clean, centres = _nuclei()
    dirty = _with_specks(clean, centres).astype(np.float32)
    dirty[dirty == 255] = 65535.0
    t_clean = threshold_value(clean.astype(np.float32), **CLIP)
    assert abs(threshold_value(dirty, **CLIP) - t_clean) <= 3
    n = len(count_cells(threshold(dirty, **CLIP).astype(bool) & (dirty < 255))[1])
    assert n == 40


def test_clip_leaves_a_clean_bimodal_image_nearly_unchanged():
    clean, _ = _nuclei(seed=3)
    assert abs(threshold_value(clean, **CLIP) - threshold_value(clean)) <= 3
    # Methods outside the Otsu family ignore the clip.
    assert threshold_value(clean, "triangle", clip=99) == threshold_value(clean, "triangle")


def test_clip_histogram_keeps_two_bins_and_the_total():
    counts, centers = np.array([90, 0, 0, 9, 1]), np.arange(5)
    c, x = clip_histogram(counts, centers, 99.0)
    assert c.sum() == counts.sum() and x.tolist() == [0, 1, 2, 3]
    # A clip that would leave one occupied bin is not applied.
    c, x = clip_histogram(np.array([99, 0, 1]), np.arange(3), 50.0)
    assert c.tolist() == [99, 0, 1]


def test_background_auto_recovers_nuclei_on_a_strong_gradient():
    img, _ = _nuclei(seed=2, gradient=60.0)
    plain = len(count_cells(threshold(img, background=None), image=img)[1])
    auto = len(count_cells(threshold(img, background="auto"), image=img)[1])
    assert plain != 40 and auto == 40
    # A radius in pixels works too.
    assert len(count_cells(threshold(img, background=24.0), image=img)[1]) == 40


def test_background_invert_and_stack_and_errors():
    img, _ = _nuclei(seed=4)
    dark = (255 - img).astype(np.uint8)
    a = threshold(img, background=24.0)
    b = threshold(dark, background=24.0, invert=True)
    assert np.mean(a != b) < 0.01
    stack = np.stack([img, img])
    out = remove_background(stack, 24.0)
    assert out.shape == stack.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], subtract_background(img, 16.0))
    # A blank image: no size to measure, returned uncorrected.
    blank, radius = remove_background(np.zeros((32, 32), np.uint8), "auto", return_radius=True)
    assert np.all(blank == 0) and radius is None
    with pytest.raises(ValueError, match="threshold.clip must be >= 50"):
        threshold(img, clip=10)
    with pytest.raises(ValueError, match="threshold.background"):
        threshold(img, background="yes")


# ------------------------------------------------------------- background="uneven" (opt-in)


def test_uneven_counts_a_ramped_image_the_default_undercounts():
    img, _ = _nuclei(seed=2, gradient=60.0)  # a ramp of about twice the nucleus contrast
    off = len(count_cells(threshold(img), image=img)[1])  # the default: off
    mask, info = threshold(img, background="uneven", return_info=True)
    assert off < 35 and len(count_cells(mask, image=img)[1]) == 40
    assert info["unevenness"] > UNEVEN_GATE
    # The subtraction "auto" makes: 1.5 diameters of the 17-px nuclei.
    auto, auto_info = threshold(img, background="auto", return_info=True)
    np.testing.assert_array_equal(mask, auto)
    assert info["background"] == auto_info["background"] == pytest.approx(25, abs=3)
    assert auto_info["unevenness"] is None


def test_auto_radius_of_a_float_image_is_that_of_the_same_integer_image():
    """The size estimate rounds the flattened plane of an integer image only: a float image
    in [0, 0.2] (rounded: all 0, so no estimate and nothing subtracted) gets the radius of
    the same image in 8 bits."""
    img, _ = _nuclei(seed=2, gradient=60.0)
    _, radius = remove_background(img, "auto", return_radius=True)
    as_float = (img / 1275).astype(np.float32)
    _, float_radius = remove_background(as_float, "auto", return_radius=True)
    assert radius == pytest.approx(25, abs=3)
    assert float_radius == pytest.approx(radius, rel=0.1)


@pytest.mark.parametrize("holes", ["one", "dots"])
def test_nan_holes_do_not_spread_through_the_subtraction(holes):
    """A ramped float image with NaN holes: "uneven" subtracts the background around them as
    without them (the opening spread one 20x20 hole over its disc: IoU 0.56; NaN dots every
    few pixels left no size estimate and nothing subtracted: 0.18)."""
    img, centres = _nuclei(seed=2, gradient=60.0)
    truth = threshold(img, background="auto").astype(bool)
    img = img.astype(np.float32)
    if holes == "one":
        img[100:120, 100:120] = np.nan
    else:
        img[::7, ::5] = np.nan
    mask, info = threshold(img, background="uneven", return_info=True)
    assert info["background"] is not None
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9
    corrected = remove_background(img, "auto")
    assert np.array_equal(np.isnan(corrected), np.isnan(img))


def test_auto_radius_of_a_noisy_image_is_that_of_its_smoothed_mask():
    """A noisy image: the size estimate thresholds the smoothed plane it computed the
    threshold on (the raw plane at that threshold gave specks: a radius of half of this)."""
    from napari_binseg.size import estimate_diameter

    from .test_threshold_noise import noisy_nuclei

    image, labels = noisy_nuclei((512, 512))
    _, radius = remove_background(image, "auto", return_radius=True)
    assert radius == pytest.approx(1.5 * estimate_diameter(labels > 0), rel=0.15)


@pytest.mark.parametrize("invert", [False, True])
def test_uneven_default_leaves_a_manual_threshold_on_the_image_intensities(invert):
    """A manual value is read off the image's own histogram: "uneven" must not subtract a
    background under it (a value of the raw intensities on the corrected image gave an empty
    mask, or with invert a full one)."""
    img, _ = _nuclei(seed=2, gradient=60.0)  # background 20-80, nuclei 30-40 above it
    value = 45.0
    if invert:
        img, value = (255 - img).astype(np.uint8), 255 - value
    mask, info = threshold(img, "manual", value=value, invert=invert, return_info=True)
    off = threshold(img, "manual", value=value, invert=invert, background=None)
    np.testing.assert_array_equal(mask, off)
    assert 0 < mask.sum() < mask.size and info["background"] is None
    assert resolve_background(img, "uneven", method="manual") == (None, None)


@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("ndim", [2, 3])
def test_flat_background_is_bit_identical_to_background_off(ndim, invert):
    img, _ = _nuclei(seed=5)
    if invert:
        img = (255 - img).astype(np.uint8)
    if ndim == 3:
        img = np.stack([img, np.roll(img, 40, axis=1)])
    kw = {"invert": invert, "return_thresholds": True}
    mask, t, info = threshold(img, background="uneven", return_info=True, **kw)
    off, t_off = threshold(img, invert=invert, background=None, return_thresholds=True)
    np.testing.assert_array_equal(mask, off)
    assert t == t_off and info["background"] is None
    assert 0 <= info["unevenness"] < 0.2


def _grid_nuclei(shape=(256, 256), period=32, radius=8, contrast=100.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    spots = ((yy % period) - period // 2) ** 2 + ((xx % period) - period // 2) ** 2
    return 20.0 + contrast * (spots < radius**2), yy, xx


def _hand_made(case):
    """Hand-made images of :func:`test_the_gate_decides_on_hand_made_cases`."""
    img, yy, xx = _grid_nuclei()
    if case == "flat":
        return img
    if case == "ramp":  # the background rises by the nucleus contrast across the image
        return img + 100.0 * xx / 256
    if case == "weak ramp":  # by a tenth of it
        return img + 10.0 * xx / 256
    if case == "vignetting":  # a bright centre, falling by 0.8x the contrast to the corners
        return img + 80.0 * (1 - ((yy - 128) ** 2 + (xx - 128) ** 2) / (2 * 128**2))
    if case == "dense":  # nuclei cover ~60 % of the plane, flat background
        dense, _, _ = _grid_nuclei(period=16, radius=7)
        return dense
    if case == "dark ramp":  # dark nuclei on a bright background with a ramp
        return 300.0 - img + 100.0 * yy / 256
    if case == "constant":
        return np.full((64, 64), 7.0)
    if case == "small":  # under 2 x 64 px: blocks no larger than a nucleus tell nothing
        return (img + 100.0 * xx / 256)[:100, :200]
    if case == "wrong polarity":  # bright nuclei (in half the plane) measured as dark ones
        return np.where(xx < 128, img, 20.0)
    if case == "nan":  # NaN holes do not hide the ramp
        out = img + 100.0 * xx / 256
        out[::7, ::5] = np.nan
        return out
    if case == "all nan":
        return np.full((64, 64), np.nan)
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "invert", "decision"),
    [
        ("flat", False, None),
        ("ramp", False, "auto"),
        ("weak ramp", False, None),
        ("vignetting", False, "auto"),
        ("dense", False, None),
        ("dark ramp", True, "auto"),
        ("flat", True, None),
        ("constant", False, None),
        ("small", False, None),
        ("wrong polarity", True, None),
        ("nan", False, "auto"),
        ("all nan", False, None),
    ],
)
def test_the_gate_decides_on_hand_made_cases(case, invert, decision):
    image = _hand_made(case)
    background, measured = resolve_background(image, "uneven", invert=invert)
    assert background == decision
    assert (measured > UNEVEN_GATE) == (decision == "auto")
    if case in ("constant", "small", "wrong polarity", "all nan", "flat", "dense"):
        assert measured == 0.0
    # Other values pass through unmeasured.
    for value in (None, "auto", 12.0):
        assert resolve_background(image, value) == (value, None)


def test_blocks_filled_by_large_nuclei_have_no_background_level(monkeypatch):
    """Two 84-px nuclei each cover a 64-px block but for its corners: that block's 5th
    percentile is a nucleus level. Counted as a background level (the gate before
    ``BLOCK_BACKGROUND``), it read as an uneven background of 0.8x the contrast."""
    import napari_binseg.background as bg

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    img = 20 + rng.normal(0, 2, (256, 256))
    for cy, cx in [(96, 96), (160, 160)]:
        r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / 42**2
        img = np.where(r2 < 1, 100 - 40 * r2 + rng.normal(0, 2, img.shape), img)
    img = img.astype(np.uint8)
    mask, info = threshold(img, background="uneven", return_info=True)
    assert info["background"] is None and info["unevenness"] < 0.05
    np.testing.assert_array_equal(mask, threshold(img, background=None))
    assert len(count_cells(mask, image=img)[1]) == 2
    monkeypatch.setattr(bg, "BLOCK_BACKGROUND", 0.0)
    assert unevenness(img) > 0.7


def test_a_ramp_above_otsus_threshold_is_still_subtracted():
    """A ramp of about the nucleus contrast lifts the right-hand blocks' background above
    Otsu's threshold: they have no level, but the other blocks still span most of the ramp
    (0.71, 1.06 with every block), and subtracting it recovers the count."""
    img, _ = _nuclei(n=12, radius=20, seed=3)
    ramped = np.clip(img + 40.0 * np.mgrid[:256, :256][1] / 256, 0, 255).astype(np.uint8)
    mask, info = threshold(ramped, background="uneven", return_info=True)
    assert info["background"] is not None and info["unevenness"] > UNEVEN_GATE
    assert len(count_cells(mask, image=ramped)[1]) == 12
    assert len(count_cells(threshold(ramped), image=ramped)[1]) < 12


def test_unevenness_of_a_stack_is_the_median_of_its_planes():
    flat = _hand_made("flat")
    ramp = _hand_made("ramp")
    one = unevenness(np.stack([ramp, ramp]))  # sampled as in 3 planes: every other pixel
    assert one > UNEVEN_GATE
    assert unevenness(np.stack([ramp, ramp, flat])) == pytest.approx(one)
    assert unevenness(np.stack([flat, flat, ramp])) == 0.0
    # A 4D (T, Z, Y, X) stack is sampled plane by plane as well.
    assert unevenness(np.stack([ramp, ramp])[:, None]) == pytest.approx(one)


@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize(("gradient", "fires"), [(60.0, True), (0.0, False)])
def test_dask_equals_numpy(gradient, fires, invert):
    import dask.array as da

    img, _ = _nuclei(seed=2, gradient=gradient)
    if invert:
        img = (255 - img).astype(np.uint8)
    stack = np.stack([img, np.roll(img, 50, axis=0), np.roll(img, 90, axis=1)])
    lazy = da.from_array(stack, chunks=(1, 128, 96))
    kw = {"invert": invert, "return_thresholds": True, "return_info": True, "background": "uneven"}
    mask, t, info = threshold(stack, **kw)
    lazy_mask, lazy_t, lazy_info = threshold(lazy, **kw)
    assert isinstance(lazy_mask, da.Array) and lazy_mask.chunks == lazy.chunks
    np.testing.assert_array_equal(lazy_mask.compute(), mask)
    assert lazy_t == t and lazy_info == info
    assert (info["background"] is not None) == fires
    if fires:
        corrected = remove_background(lazy, "auto", invert=invert)
        np.testing.assert_array_equal(
            corrected.compute(), remove_background(stack, "auto", invert=invert)
        )


# ---------------------------------------------------------------- bright outliers (default)


def _specks_case(dtype):
    """Nuclei (16-bit: intensities x200) and the same image with saturated specks: six 9x9
    (uint8, 0.7 % of the pixels) or ten 4x4 at 65535 (0.24 %), away from the nuclei."""
    if dtype == "uint8":
        clean, centres = _nuclei()
        return clean, _with_specks(clean, centres, k=6, size=9, value=255)
    clean, centres = _nuclei(scale=200, dtype=np.uint16)
    dirty = _with_specks(clean, centres, k=10, size=4, value=65535)
    return clean.astype(dtype), dirty.astype(dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_saturated_specks_threshold_like_the_same_image_without_them(dtype):
    from skimage.filters import threshold_otsu

    clean, dirty = _specks_case(dtype)
    specks = dirty != clean
    clean_mask = threshold(clean).astype(bool)
    # The problem: plain Otsu (scikit-image's) puts (nearly) every nucleus below it.
    plain = threshold_value(dirty, ignore_bright_outliers=False)
    assert plain == threshold_otsu(dirty)
    lost = threshold(dirty, ignore_bright_outliers=False).astype(bool) & ~specks
    assert lost.sum() < 0.01 * clean_mask.sum()
    # By default the specks are ignored: the threshold of the clean image, and the mask
    # is the clean mask plus the specks.
    mask, t, info = threshold(dirty, return_thresholds=True, return_info=True)
    t_clean = threshold_value(clean)
    if dtype == "float32":
        # The brightest nucleus pixel lies above the first threshold, so the values below
        # are binned over a slightly shorter range than the clean image's: within a bin.
        assert abs(t - t_clean) < (clean.max() - clean.min()) / 256
        assert np.count_nonzero(mask.astype(bool)[~specks] != clean_mask[~specks]) <= 2
    else:
        assert t == t_clean
        np.testing.assert_array_equal(mask.astype(bool), clean_mask | specks)
    note = info["bright_outliers"]["image"]
    above = dirty > plain  # the specks (and, in float32, one nucleus pixel)
    assert note["first_threshold"] == plain and note["pixels"] == above.sum() >= specks.sum()
    assert note["fraction"] == above.mean()
    # ISODATA (no rule) is hardly moved by these specks: its lowest fixed point stays low.
    iso = threshold(dirty, "isodata").astype(bool)
    assert np.mean(iso[~specks] != threshold(clean, "isodata").astype(bool)[~specks]) < 1e-3
    if dtype == "uint16":
        # Triangle draws its line to the brightest occupied bin: 16-bit specks pull it to 65534.
        assert threshold_value(dirty, "triangle", ignore_bright_outliers=False) == 65534
        assert threshold_value(dirty, "triangle") == threshold_value(clean, "triangle")
    # The count drops the 4x4 specks (under a tenth of a nucleus): the clean image's count.
    if dtype != "uint8":
        assert len(count_cells(mask, image=dirty)[1]) == 40
        assert len(count_cells(clean_mask, image=clean)[1]) == 40


def test_bright_specks_on_dark_nuclei_with_invert():
    clean, centres = _nuclei(scale=200, dtype=np.uint16)
    dark = (16000 - clean.astype(np.int32)).astype(np.uint16)  # bright background
    dirty = _with_specks(dark, centres, k=10, size=4, value=65535)
    # Plain Otsu lands between the background and the specks: all but the specks is "dark".
    plain = threshold(dirty, invert=True, ignore_bright_outliers=False)
    assert plain.mean() > 0.99
    mask = threshold(dirty, invert=True)
    np.testing.assert_array_equal(mask, threshold(dark, invert=True))
    assert len(count_cells(mask, image=dirty)[1]) == 40


@pytest.mark.parametrize("scope", ["slice", "frame", "image"])
def test_bright_outliers_are_ignored_per_unit(scope):
    import dask.array as da

    clean, dirty = _specks_case("uint16")
    # One threshold for the whole stack: specks in both planes.
    stack = np.stack([dirty, dirty] if scope == "image" else [clean, dirty])
    t, info = threshold_value(stack, scope=scope, return_info=True)
    t_clean = threshold_value(clean)
    if scope == "image":
        assert t == threshold_value(np.stack([clean, clean]))
        assert list(info["bright_outliers"]) == ["image"]
    else:
        assert t.tolist() == [t_clean, t_clean]
        assert list(info["bright_outliers"]) == [f"{scope} 1"]
    lazy = da.from_array(stack.astype(np.float32), chunks=(1, 128, 256))
    t_lazy, info_lazy = threshold_value(lazy, scope=scope, return_info=True)
    t_float = threshold_value(stack.astype(np.float32), scope=scope)
    np.testing.assert_array_equal(t_lazy, t_float)
    assert list(info_lazy["bright_outliers"]) == list(info["bright_outliers"])
    mask, info_mask = threshold(lazy, scope=scope, return_info=True)
    # threshold() adds what its background step did; the rest is threshold_value's (a sigma
    # per plane / frame: arrays).
    np.testing.assert_equal({k: info_mask[k] for k in info_lazy}, info_lazy)
    assert info_mask["background"] is None
    np.testing.assert_array_equal(mask.compute(), threshold(stack.astype(np.float32), scope=scope))


def test_a_few_bright_nuclei_on_a_plain_background_keep_the_threshold():
    from skimage.filters import threshold_otsu

    # Three nuclei, 0.9 % of the pixels: below the threshold is the background alone.
    clean, _ = _nuclei(n=3, scale=200, dtype=np.uint16)
    t, info = threshold_value(clean, return_info=True)
    assert t == threshold_otsu(clean) and info["bright_outliers"] == {}
    assert len(count_cells(threshold(clean), image=clean)[1]) == 3
    # A background of two grey levels is one class too, not two.
    rng = np.random.default_rng(0)
    img = rng.integers(10, 12, (256, 256)).astype(np.uint8)
    img[100:110, 100:110] = 200
    t, info = threshold_value(img, sigma=0, return_info=True)  # (noisy to "auto": smoothed)
    assert t == threshold_otsu(img) and info["bright_outliers"] == {}


def test_saturated_nuclei_are_kept():
    from skimage.filters import threshold_otsu

    # Four nuclei with saturated centres and a dimmer rim (0.6 % of the pixels saturated):
    # the rim is no larger a class than the saturated centres, so nothing is ignored.
    yy, xx = np.mgrid[:256, :256]
    rng = np.random.default_rng(0)
    img = 1000 + rng.normal(0, 50, (256, 256))
    for cy, cx in [(50, 50), (50, 200), (200, 50), (200, 200)]:
        r = np.hypot(yy - cy, xx - cx)
        img[r <= 12] = 8000
        img[r <= 8] = 65535
    img = img.astype(np.uint16)
    t, info = threshold_value(img, return_info=True)
    assert t == threshold_otsu(img) and info["bright_outliers"] == {}
    assert len(count_cells(threshold(img), image=img)[1]) == 4
    # Saturated nuclei covering more of the image are no minority at all.
    clean, _ = _nuclei(scale=200, dtype=np.uint16)
    clean[clean > 8000] = 65535
    t, info = threshold_value(clean, return_info=True)
    assert t == threshold_otsu(clean) and info["bright_outliers"] == {}


def test_otsu_effectiveness_separates_one_class_from_two():
    rng = np.random.default_rng(0)

    def eta(values):
        counts = np.bincount(np.rint(values).astype(np.int64))
        return otsu_effectiveness(counts, np.arange(counts.size, dtype=float))

    gauss, uniform = eta(rng.normal(500, 20, 10**5)), eta(rng.uniform(0, 1000, 10**5))
    assert abs(gauss - 2 / np.pi) < 0.01 and abs(uniform - 0.75) < 0.01
    assert eta(rng.exponential(50, 10**5)) < 0.7
    two = eta(np.r_[rng.normal(200, 20, 9 * 10**4), rng.normal(600, 30, 10**4)])
    assert two > 0.9 > BIMODAL_ETA
    # Two equal grey levels: the width of a level counts as spread (0.25 / (0.25 + 1/12)).
    assert otsu_effectiveness(np.array([5, 5]), np.array([0.0, 1.0])) == pytest.approx(0.75)
