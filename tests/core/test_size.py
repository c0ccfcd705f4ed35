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


@pytest.mark.parametrize("tile", [1 << 12, 1 << 16])
def test_tiled_distance_peaks_equal_the_whole_map(monkeypatch, tile):
    # Tiles (a few planes deep, with halos, redone around fat objects) give the peaks and
    # counts of one transform of the whole stack, bit for bit, and the diameter of scipy's
    # exact transform; the blob of radius 26 is fatter than the first halo (16 px).
    from scipy import ndimage as ndi

    from napari_binseg import size
    from napari_binseg.morphology import label
    from napari_binseg.synthetic import synthetic_stack

    shape = (8, 256, 320)
    image, truth = synthetic_stack(shape, radius=8.0, seed=3)
    mask = image > np.percentile(image, 70)
    mask |= disc(shape, (4, 128, 160), 26)  # z radius over the stack: a thick slab
    spacing = np.array([2.0, 1.0, 1.0])
    labels = label(mask, 26)[0]
    whole = size.object_peaks(labels, size._distance_map(labels, spacing))
    exact = ndi.distance_transform_edt(mask, sampling=spacing)
    peak = ndi.maximum(exact, labels, np.arange(1, labels.max() + 1))
    counts = np.bincount(labels.ravel())[1:]
    scipy_diameter = size.diameter_from_peaks(peak, counts * 2.0, 3)
    monkeypatch.setattr(size, "TILE_PIXELS", tile)
    tiled = size.distance_peaks(labels, spacing)
    assert np.array_equal(tiled[0], whole[0]) and np.array_equal(tiled[1], whole[1])
    assert whole[0].max() > 16 and np.array_equal(whole[1][1:], counts)
    assert estimate_diameter(mask, spacing=spacing) == pytest.approx(scipy_diameter, rel=1e-6)
    truth_tiled = size.distance_peaks(truth, spacing)  # touching labels: their shared face
    truth_whole = size.object_peaks(truth, size._distance_map(truth, spacing))
    assert np.array_equal(truth_tiled[0], truth_whole[0])


def test_tiles_without_background_fall_back_to_one_transform(monkeypatch):
    from napari_binseg import size

    monkeypatch.setattr(size, "TILE_PIXELS", 1 << 10)
    labels = np.ones((3, 80, 90), np.uint16)
    labels[1, 5, 5] = 0
    peak, count = size.distance_peaks(labels, np.array([2.0, 1.0, 1.0]))
    assert count[1] == labels.size - 1
    assert peak[1] == pytest.approx(np.sqrt(2**2 + 74**2 + 84**2), rel=1e-6)  # far corner
    peak, count = size.distance_peaks(np.ones((3, 80, 90), np.uint16), np.ones(3))
    assert np.isinf(peak[1]) and count[1] == 3 * 80 * 90


def test_tiled_distances_binary(monkeypatch):
    # Two labels touching face to face: binary distances ignore their shared face, as the
    # split's transform of a mask's components (``separate``).
    from napari_binseg import size
    from napari_binseg._split import _distance

    labels = np.zeros((4, 200, 260), np.uint16)
    labels[:, 20:180, 30:130] = 1
    labels[:, 20:180, 130:240] = 2
    labels[:, 90:100, 5:20] = 3
    spacing = np.array([3.0, 1.0, 1.0])
    monkeypatch.setattr(size, "TILE_PIXELS", 1 << 12)
    for binary in (False, True):
        whole = _distance(labels, labels != 0, spacing, separate=binary)
        peak, count = size.distance_peaks(labels, spacing, binary=binary)
        assert np.array_equal(peak, size.object_peaks(labels, whole)[0])
        assert np.array_equal(count, size.object_peaks(labels, whole)[1])
        assert peak[1] == (80 if binary else 50) and peak[2] == (80 if binary else 55)


def test_tiled_estimate_is_the_count_s_diameter_on_a_stack(monkeypatch):
    # The count's automatic size (peaks of the whole stack's transform) and the tiled
    # estimate agree to the last bit on an anisotropic stack of touching nuclei.
    from napari_binseg import count_cells, size
    from napari_binseg.synthetic import synthetic_stack

    image, truth = synthetic_stack((12, 192, 224), radius=7.0, seed=4)
    mask = image > np.percentile(image, 72)
    spacing = (2.0, 1.0, 1.0)
    labels, table = count_cells(mask, spacing=spacing, split_touching=False)
    monkeypatch.setattr(size, "TILE_PIXELS", 1 << 13)
    assert estimate_diameter(mask, spacing=spacing) == table.attrs["diameter"] > 0
    assert len(table) == labels.max() > 10
