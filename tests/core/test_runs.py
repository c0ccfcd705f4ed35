"""Run labeller (``napari_binseg._runs``): exactly ``skimage.measure.label``, less memory."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as sk_label

from napari_binseg._runs import find_runs, paint_runs, run_boxes


def runs_label(mask, rank):
    runs = find_runs(mask, rank)
    return paint_runs(runs), runs.n


def blobs(shape, density, seed, sigma=0.8):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), sigma) > 1 - density


@pytest.mark.parametrize("shape", [(57, 64), (9, 23, 31)])
@pytest.mark.parametrize("density", [0.2, 0.5, 0.8])
def test_equals_skimage_on_random_masks(shape, density):
    rng = np.random.default_rng(0)
    for seed in range(5):
        smooth = blobs(shape, density, seed)
        noise = rng.random(shape) < density
        for mask in (smooth, noise):
            for rank in range(1, len(shape) + 1):
                labels, n = runs_label(mask, rank)
                expected = sk_label(mask, connectivity=rank)
                assert n == expected.max()
                np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize(
    ("mask", "expected_4", "expected_8"),
    [
        # Two arms joined below: numbered by the first pixel, not by where they meet.
        ([[1, 0, 1], [1, 0, 1], [1, 1, 1]], [[1, 0, 1], [1, 0, 1], [1, 1, 1]], None),
        # Diagonal neighbours: apart through faces, one object through corners.
        ([[0, 1, 0], [1, 0, 1]], [[0, 1, 0], [2, 0, 3]], [[0, 1, 0], [1, 0, 1]]),
        # Numbered by each object's first pixel in raster order.
        ([[0, 0, 1], [1, 0, 1], [1, 0, 0]], [[0, 0, 1], [2, 0, 1], [2, 0, 0]], None),
        (
            [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
            [[0, 0, 1], [0, 2, 0], [3, 0, 0]],
            [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
        ),
        ([[1, 1, 0, 0, 1]], [[1, 1, 0, 0, 2]], None),
        ([[1], [0], [1], [1]], [[1], [0], [2], [2]], None),
    ],
)
def test_hand_made_cases(mask, expected_4, expected_8):
    mask = np.array(mask, np.uint8)
    assert runs_label(mask, 1)[0].tolist() == expected_4
    assert runs_label(mask, 2)[0].tolist() == (expected_8 or expected_4)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (1, 1), (1, 9), (9, 1), (4, 0, 3)])
def test_degenerate_shapes(shape):
    for fill in (0, 1):
        mask = np.full(shape, fill, np.uint8)
        labels, n = runs_label(mask, 1)
        assert labels.shape == shape and labels.dtype == np.uint16
        assert n == (1 if fill and mask.size else 0)
        np.testing.assert_array_equal(labels, mask)


def test_3d_corner_connectivity():
    mask = np.zeros((2, 2, 2), np.uint8)
    mask[0, 0, 0] = mask[1, 1, 1] = 1  # corner neighbours
    mask[0, 1, 1] = 1  # a face neighbour of (1, 1, 1), an edge neighbour of (0, 0, 0)
    assert [runs_label(mask, rank)[1] for rank in (1, 2, 3)] == [2, 1, 1]
    mask[0, 1, 1] = 0
    assert [runs_label(mask, rank)[1] for rank in (1, 2, 3)] == [2, 2, 1]


def test_any_layout_dtype_and_read_only():
    mask = blobs((40, 50), 0.5, seed=3)
    read_only = mask.copy()
    read_only.flags.writeable = False
    cases = [read_only, mask[::2, ::3], mask.T, np.asfortranarray(mask), mask * np.uint16(7)]
    cases += [mask.astype(np.float32), mask.astype(np.int8) * -1]
    for case in cases:
        before = case.copy()
        np.testing.assert_array_equal(runs_label(case, 2)[0], sk_label(case != 0, connectivity=2))
        np.testing.assert_array_equal(case, before)


def test_output_type_holds_the_count():
    mask = np.zeros((600, 600), bool)
    mask[::2, ::2] = True  # 90000 single pixels, apart even through corners
    labels, n = runs_label(mask, 2)
    assert n == 90000 and labels.dtype == np.uint32
    assert labels[::2, ::2].ravel().tolist() == list(range(1, n + 1))


def test_paints_into_a_given_array_clearing_it():
    mask = blobs((30, 40), 0.5, seed=4)
    buffer = np.full(mask.size, -1, np.int32)  # garbage everywhere
    out = buffer.view(np.uint16)[mask.size :].reshape(mask.shape)  # its upper half
    assert paint_runs(find_runs(mask, 1), out) is out
    np.testing.assert_array_equal(out, sk_label(mask, connectivity=1))
    assert (buffer.view(np.uint16)[: mask.size] == 0xFFFF).all()  # the lower half untouched


def test_boxes_from_runs_equal_those_of_the_labels():
    from napari_binseg._flood import label_boxes

    for seed in range(5):
        for mask in (blobs((57, 64), 0.3, seed), blobs((40, 33), 0.4, seed)):
            runs = find_runs(mask, 2)
            expected = np.empty((runs.n + 1, 4), np.int64)
            expected[:, 0::2] = np.iinfo(np.int64).max
            expected[:, 1::2] = -1
            label_boxes(paint_runs(runs), np.ones(runs.n + 1, bool), expected)
            assert runs.n > 3
            np.testing.assert_array_equal(run_boxes(runs), expected)
