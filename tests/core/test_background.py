"""Threshold robustness (issue 13): a clip for saturated debris, background subtraction."""

import numpy as np
import pytest

from napari_binseg import count_cells, threshold, threshold_value
from napari_binseg.background import (
    BIMODAL_ETA,
    clip_histogram,
    otsu_effectiveness,
    remove_background,
    subtract_background,
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
    plain = len(count_cells(threshold(img), image=img)[1])
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
    assert np.all(remove_background(np.zeros((32, 32), np.uint8), "auto") == 0)
    with pytest.raises(ValueError, match="threshold.clip must be >= 50"):
        threshold(img, clip=10)
    with pytest.raises(ValueError, match="threshold.background"):
        threshold(img, background="yes")
    import dask.array as da

    with pytest.raises(ValueError, match="numpy image"):
        threshold(da.from_array(img), background="auto")


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
    assert info_mask == info_lazy
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
