"""Nucleus size estimate: specks and clumps cannot fool it; it follows the magnification."""

import numpy as np
import pytest

from napari_binseg.size import estimate_diameter
from napari_binseg.synthetic import synthetic_nuclei


def disc(shape, center, radius):
    grid = np.indices(shape, dtype=float)
    return sum((g - c) ** 2 for g, c in zip(grid, center, strict=True)) <= radius**2


def test_specks_do_not_pull_the_estimate_down():
    mask = disc((200, 200), (60, 60), 25) | disc((200, 200), (140, 140), 25)
    clean = estimate_diameter(mask)
    rng = np.random.default_rng(0)
    speckled = mask.copy()
    speckled[rng.integers(0, 200, 300), rng.integers(0, 200, 300)] = True  # 300 specks
    assert 45 <= clean <= 60
    assert estimate_diameter(speckled) == pytest.approx(clean, rel=0.05)


def test_a_clump_has_the_size_of_its_nuclei():
    # Three nuclei of radius 15 in a row, touching: one connected component of length ~90.
    mask = disc((80, 140), (40, 40), 15) | disc((80, 140), (40, 66), 15)
    mask |= disc((80, 140), (40, 92), 15)
    assert 27 <= estimate_diameter(mask) <= 36


@pytest.mark.parametrize("zoom", [1, 2, 4])
def test_follows_magnification_and_spacing(zoom):
    image, labels = synthetic_nuclei((128 * zoom, 128 * zoom), radius=6.0 * zoom, seed=2)
    d = estimate_diameter(labels > 0)
    assert 10 * zoom <= d <= 15 * zoom
    # With the pixel size given, the same nuclei measure the same in physical units.
    um = estimate_diameter(labels > 0, spacing=(0.5 / zoom, 0.5 / zoom))
    assert um == pytest.approx(d * 0.5 / zoom)


def test_label_image_and_anisotropic_stack():
    grid = np.indices((20, 60, 60), dtype=float)
    # A ball of radius 10 µm sampled at (2, 1, 1) µm: 10 planes.
    ball = ((grid[0] - 10) * 2) ** 2 + (grid[1] - 30) ** 2 + (grid[2] - 30) ** 2 <= 100
    d = estimate_diameter(ball.astype(np.uint16) * 5, spacing=(2.0, 1.0, 1.0))
    assert 18 <= d <= 24


def test_empty_and_bad_inputs():
    assert estimate_diameter(np.zeros((10, 10), bool)) == 0.0
    with pytest.raises(ValueError, match="mask must be 2D or 3D"):
        estimate_diameter(np.zeros((2, 2, 2, 2), bool))
    with pytest.raises(ValueError, match="spacing"):
        estimate_diameter(np.ones((4, 4), bool), spacing=(1.0, -1.0))


@pytest.mark.parametrize("shape", [(50, 50), (1, 40), (5, 30, 30), (1, 20, 20)])
def test_all_foreground_has_a_finite_size_and_counts_one(shape):
    from napari_binseg import count_cells

    mask = np.ones(shape, bool)  # no background: every distance is infinite
    d = estimate_diameter(mask)
    assert np.isfinite(d) and d > 0
    labels, table = count_cells(mask)
    assert len(table) == 1 and labels.min() == 1


def test_estimate_diameter_labels_a_bool_mask_exactly():
    # cc3d 4.1.1 labels background pixels of some bool masks with 8-connectivity (here the
    # top one, doubling the estimate); the components must be those of scikit-image.
    from skimage.measure import label as sk_label

    from napari_binseg.size import SHAPE_FACTOR

    mask = np.array([[0], [0], [1]], bool)
    assert estimate_diameter(mask) == pytest.approx(2 * SHAPE_FACTOR * 1.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((rng.integers(1, 12), rng.integers(1, 12))) < 0.5
        expected = estimate_diameter(sk_label(mask, connectivity=2) * 2)  # labels, not a mask
        assert estimate_diameter(mask) == expected
