"""Touching-nuclei split: scale-aware, never worse than connected components on separate
nuclei, anisotropic in 3D."""

import numpy as np
import pytest
from skimage.measure import label as sk_label

from napari_binseg import count_cells, evaluate, split_touching, threshold
from napari_binseg.synthetic import synthetic_nuclei


def ellipsoid(shape, center, radii, spacing):
    grid = np.indices(shape, dtype=float)
    return (
        sum(
            ((g * s - c) / r) ** 2 for g, c, r, s in zip(grid, center, radii, spacing, strict=True)
        )
        <= 1
    )


@pytest.mark.parametrize("radius", [30.0, 60.0])
def test_separate_large_textured_nuclei_not_split_more_than_components(radius):
    # Large nuclei with chromatin texture and noise, none touching (centres >= 3 radii apart).
    image, truth = synthetic_nuclei(
        (int(10 * radius), int(10 * radius)), radius=radius, min_distance=3.0, seed=1
    )
    mask = threshold(image)
    n_components = int(sk_label(mask, connectivity=2).max())
    labels, table = count_cells(mask, image=image)
    assert len(table) <= n_components
    assert len(table) == int(truth.max())
    assert evaluate(truth, labels, thresholds=[0.5])["f1"].iloc[0] >= 0.95


def test_blurred_large_nuclei_counted():
    # Out of focus: blur sigma 8 px on nuclei of radius 25 px, some touching.
    image, truth = synthetic_nuclei((400, 400), radius=25.0, blur=8.0, seed=4)
    _, table = count_cells(threshold(image), image=image)
    assert abs(len(table) - int(truth.max())) <= 0.1 * int(truth.max())


def test_two_nuclei_touching_only_in_z():
    spacing = (2.0, 0.5, 0.5)
    shape = (16, 48, 48)
    # Same x, y; one above the other; they share a contact face in z.
    a = ellipsoid(shape, (8.0, 12.0, 12.0), (6.0, 9.0, 9.0), spacing)
    b = ellipsoid(shape, (19.0, 12.0, 12.0), (6.0, 9.0, 9.0), spacing)
    mask = a | b
    assert sk_label(mask).max() == 1
    labels, table = count_cells(mask, spacing=spacing)
    assert len(table) == 2
    # The cut is horizontal: each object lies (95 %) on its own side of the contact plane,
    # at z = 13.5 µm (between planes 6 and 7).
    lower = labels[:7]
    for k in (1, 2):
        below = np.count_nonzero(lower == k) / np.count_nonzero(labels == k)
        assert below >= 0.95 or below <= 0.05
    assert labels[2, 24, 24] != labels[12, 24, 24]
    # Physical units in the table: volumes of two ellipsoids of 4/3 pi 6 9 9 µm³.
    expected = 4 / 3 * np.pi * 6 * 9 * 9
    assert table["volume"].to_numpy() == pytest.approx([expected, expected], rel=0.15)
    assert table.attrs["diameter"] > 0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
def test_nucleus_spanning_ten_planes_is_one_object(spacing):
    shape = (14, 60, 60)
    dz = spacing[0]
    # Ten planes deep, with a textured (holey) interior from the threshold.
    mask = ellipsoid(shape, (7 * dz, 15.0, 15.0), (5 * dz, 10.0, 12.0), spacing)
    assert np.any(mask, axis=(1, 2)).sum() >= 9
    rng = np.random.default_rng(0)
    holes = rng.random(shape) < 0.03
    labels, table = count_cells(mask & ~holes, spacing=spacing)
    assert len(table) == 1


def test_split_touching_takes_a_diameter():
    yy, xx = np.mgrid[:40, :60]
    two = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    assert split_touching(two.astype(np.int32)).max() == 2
    # A typical diameter of 80 px: pieces of radius 10 are too small to be nuclei.
    assert split_touching(two.astype(np.int32), diameter=80).max() == 1


def test_intensity_split_with_nan_pixels():
    yy, xx = np.mgrid[:40, :60]
    two = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    image = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    image[20, 20:30] = np.nan  # NaN must never reach the flood's bucket index
    _, table = count_cells(two, image=image, split_touching="intensity")
    assert len(table) == 2


def test_banded_distance_equals_whole_image_transform(monkeypatch):
    """Bands with a small first margin (redone wider where needed) give the whole image's
    distances bit for bit, and the same per-object peaks and counts."""
    import cc3d
    import edt

    from napari_binseg import _split

    image = synthetic_nuclei((300, 220), radius=14, seed=3)
    image = image[0] if isinstance(image, tuple) else image
    labels = cc3d.connected_components(threshold(image) != 0, connectivity=8)
    monkeypatch.setattr(_split, "BAND_PIXELS", 1)
    monkeypatch.setattr(_split, "BAND_ROWS", 16)
    monkeypatch.setattr(_split, "BAND_HALO", 2)
    (peak, count), kept = _split._banded_distance(labels, keep=True)
    whole = edt.edt((labels != 0).view(np.uint8), black_border=False, parallel=1)
    np.testing.assert_array_equal(kept.values, whole[labels != 0])
    n = int(labels.max()) + 1
    expected = np.zeros(n)
    np.maximum.at(expected, labels.ravel(), whole.ravel())
    expected[0] = 0
    np.testing.assert_array_equal(peak, expected)
    np.testing.assert_array_equal(count[1:], np.bincount(labels.ravel(), minlength=n)[1:])
    assert kept.row_off[-1] == np.count_nonzero(labels)


def test_atlas_in_parts_equals_one_pass(monkeypatch):
    """Smoothing and flooding the clumps' atlas shelf by shelf (and the distance map in
    bands) gives the labels and table of one pass."""
    from napari_binseg import _split

    image = synthetic_nuclei((384, 320), radius=9, seed=5)
    image = image[0] if isinstance(image, tuple) else image
    mask = threshold(image)
    labels, table = count_cells(mask, image)
    monkeypatch.setattr(_split, "ATLAS_PART", 1)
    monkeypatch.setattr(_split, "BAND_PIXELS", 1)
    monkeypatch.setattr(_split, "BAND_ROWS", 16)
    monkeypatch.setattr(_split, "BAND_HALO", 2)
    parts, parts_table = count_cells(mask, image)
    np.testing.assert_array_equal(parts, labels)
    assert parts_table.equals(table) and parts_table.attrs == table.attrs
