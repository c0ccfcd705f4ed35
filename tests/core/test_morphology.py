"""Connectivity, labeling, hole filling and small-object removal (``napari_binseg.morphology``)."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as sk_label
from skimage.morphology import remove_small_objects as sk_remove_small

from napari_binseg.morphology import (
    face_connectivity,
    fill_holes,
    fill_label_holes,
    label,
    remove_small_labels,
    remove_small_objects,
    resolve_connectivity,
)


def random_mask(shape, density=0.45, seed=0):
    rng = np.random.default_rng(seed)
    return (ndi.gaussian_filter(rng.random(shape), 1.0) > 1 - density).astype(np.uint8)


def test_face_connectivity():
    assert (face_connectivity(2), face_connectivity(3)) == (4, 6)


@pytest.mark.parametrize(
    ("connectivity", "ndim", "expected"),
    [(None, 2, (2, 8)), (1, 2, (1, 4)), (4, 2, (1, 4)), (None, 3, (3, 26)), (18, 3, (2, 18))],
)
def test_resolve_connectivity(connectivity, ndim, expected):
    assert resolve_connectivity(connectivity, ndim) == expected


@pytest.mark.parametrize(("connectivity", "ndim"), [(3, 2), (6, 2), (8, 3), (True, 2), ("4", 2)])
def test_resolve_connectivity_refuses(connectivity, ndim):
    with pytest.raises(ValueError, match="connectivity must be one of"):
        resolve_connectivity(connectivity, ndim)


@pytest.mark.parametrize("shape", [(60, 70), (12, 30, 40), (3, 4, 20, 25)])
def test_label_equals_scipy_face_connectivity(shape):
    mask = random_mask(shape)
    labels, n = label(mask)
    expected, n_expected = ndi.label(mask)
    assert n == n_expected
    # Same partition, numbered in raster order of first pixels by both.
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize(
    ("shape", "connectivity"), [((60, 70), 8), ((12, 30, 40), 18), ((12, 30, 40), 26)]
)
def test_label_equals_skimage_wider_connectivity(shape, connectivity):
    mask = random_mask(shape)
    labels, n = label(mask, connectivity)
    expected = sk_label(mask, connectivity=resolve_connectivity(connectivity, len(shape))[0])
    assert labels.dtype == np.uint16 and n == expected.max() > 1
    np.testing.assert_array_equal(labels, expected)


def test_label_full_connectivity_and_read_only_input():
    mask = np.eye(5, dtype=np.uint8)
    mask.flags.writeable = False
    assert label(mask)[1] == 5
    assert label(mask, 8)[1] == 1


@pytest.mark.parametrize("shape", [(60, 70), (12, 30, 40), (3, 4, 20, 25)])
def test_fill_holes_equals_scipy(shape):
    mask = random_mask(shape, density=0.6)
    expected = ndi.binary_fill_holes(mask)
    out = fill_holes(mask)
    assert out is mask  # in place
    np.testing.assert_array_equal(mask, expected)


def test_fill_label_holes_keeps_shared_gaps():
    labels = np.zeros((7, 12), np.int32)
    labels[1:6, 1:6] = 1
    labels[3, 3] = 0  # a hole inside object 1
    labels[1:6, 6:11] = 2
    labels[3, 5:7] = 0  # a gap bordered by objects 1 and 2
    original = labels.copy()
    filled = fill_label_holes(labels)
    np.testing.assert_array_equal(labels, original)  # input untouched
    assert filled[3, 3] == 1
    assert (filled[3, 5:7] == 0).all()
    none = np.zeros((4, 4), np.int32)
    assert fill_label_holes(none) is none


@pytest.mark.parametrize("shape", [(60, 70), (12, 30, 40), (3, 4, 20, 25)])
@pytest.mark.parametrize("min_size", [2, 9, 40])
def test_remove_small_objects_equals_skimage(shape, min_size):
    mask = random_mask(shape, density=0.4, seed=1)
    expected = sk_remove_small(mask.astype(bool), max_size=min_size - 1, connectivity=1)
    remove_small_objects(mask, min_size)
    np.testing.assert_array_equal(mask.astype(bool), expected)


def test_remove_small_labels_renumbers():
    labels = np.array([[1, 1, 2, 3, 3, 3, 0, 5]])
    out = remove_small_labels(labels, 2)
    assert out.dtype == np.int32
    assert out.tolist() == [[1, 1, 0, 2, 2, 2, 0, 0]]
    assert remove_small_labels(labels, 1).tolist() == [[1, 1, 2, 3, 3, 3, 0, 4]]  # gap closed
    consecutive = np.array([[1, 2, 2]], np.uint16)
    np.testing.assert_array_equal(remove_small_labels(consecutive, 1), consecutive)
    assert remove_small_labels(np.zeros((2, 2), np.uint8), 5).dtype == np.int32


@pytest.mark.parametrize("shape", [(9, 11), (5, 7, 6)])
def test_fill_label_holes_runs_equal_labeled_background(shape):
    """The run-based filling fills exactly the face-connected background regions that touch
    no face and border one label only (2D and 3D, random labels), also with the background
    found between the runs of the foreground (rows that start, end or are all foreground)."""
    from napari_binseg._runs import find_runs

    rng = np.random.default_rng(1)
    for _ in range(200):
        labels = ((rng.random(shape) < 0.7) * rng.integers(1, 3, shape)).astype(np.int32)
        background, n = ndi.label(labels == 0)
        expected = labels.copy()
        for region in range(1, n + 1):
            where = background == region
            if any(np.take(where, i, axis=a).any() for a in range(len(shape)) for i in (0, -1)):
                continue
            grown = ndi.binary_dilation(where, ndi.generate_binary_structure(len(shape), 1))
            around = np.unique(labels[grown & ~where])
            around = around[around != 0]
            if around.size == 1:
                expected[where] = around[0]
        np.testing.assert_array_equal(fill_label_holes(labels), expected)
        runs = find_runs(labels != 0, 1)
        np.testing.assert_array_equal(fill_label_holes(labels, runs=runs), expected)


@pytest.mark.parametrize("dtype", [np.uint8, bool])
def test_fill_holes_and_remove_small_objects_on_views(dtype):
    """Both work in place through a strided view, on uint8 and bool masks."""
    base = random_mask((50, 80), density=0.6, seed=2).astype(dtype)
    expected = base.copy()
    expected[:, ::2] = ndi.binary_fill_holes(base[:, ::2])
    fill_holes(base[:, ::2])
    np.testing.assert_array_equal(base, expected)
    expected[::2] = sk_remove_small(expected[::2].astype(bool), max_size=19, connectivity=1)
    remove_small_objects(base[::2], 20)
    np.testing.assert_array_equal(base, expected)
