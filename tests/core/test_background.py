"""Threshold robustness (issue 13): a clip for saturated debris, background subtraction."""

import numpy as np
import pytest

from napari_binseg import count_cells, threshold, threshold_value
from napari_binseg.background import clip_histogram, remove_background, subtract_background


def _nuclei(shape=(256, 256), n=40, radius=8, seed=0, gradient=0.0):
    """uint8 nuclei (about 50-60) on a noisy background (about 20); exact count ``n``."""
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
    return np.clip(img, 0, 255).astype(np.uint8), centres


def _with_specks(img, centres, k=6, size=9, seed=1):
    """Six saturated 9x9 specks (0.7 % of a 256x256 image) away from the nuclei."""
    rng = np.random.default_rng(seed)
    out = img.copy()
    placed = 0
    while placed < k:
        y, x = rng.integers(0, np.array(img.shape) - size)
        if all(np.hypot(y + size / 2 - cy, x + size / 2 - cx) > 20 for cy, cx in centres):
            out[y : y + size, x : x + size] = 255
            placed += 1
    return out


def test_saturated_specks_do_not_move_the_clipped_threshold():
    clean, centres = _nuclei()
    dirty = _with_specks(clean, centres)
    # The problem: plain Otsu lands above the nuclei.
    assert threshold_value(dirty) > 60 > threshold_value(clean)
    t_clean, t_dirty = threshold_value(clean, clip=99), threshold_value(dirty, clip=99)
    assert abs(t_dirty - t_clean) <= 3
    specks = dirty == 255
    m_clean = threshold(clean, clip=99).astype(bool)
    m_dirty = threshold(dirty, clip=99).astype(bool)
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
    t_clean = threshold_value(clean.astype(np.float32), clip=99)
    assert abs(threshold_value(dirty, clip=99) - t_clean) <= 3
    n = len(count_cells(threshold(dirty, clip=99).astype(bool) & (dirty < 255))[1])
    assert n == 40


def test_clip_leaves_a_clean_bimodal_image_nearly_unchanged():
    clean, _ = _nuclei(seed=3)
    assert abs(threshold_value(clean, clip=99) - threshold_value(clean)) <= 3
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
