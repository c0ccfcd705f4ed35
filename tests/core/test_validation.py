"""Shared input checks (``napari_binseg._validation``)."""

import dask.array as da
import numpy as np
import pytest

from napari_binseg._validation import check_image, check_labels, check_rgb, is_mask, native


def test_native_byte_order_only_copies_swapped_data():
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert native(a) is a
    swapped = a.astype(">u2")
    out = native(swapped)
    assert out.dtype == np.dtype("u2") and out.dtype.isnative
    np.testing.assert_array_equal(out, a)
    assert swapped.dtype == np.dtype(">u2")  # the input keeps its bytes
    lazy = native(da.from_array(swapped, chunks=2))
    assert lazy.dtype.isnative and np.array_equal(lazy.compute(), a)
    assert check_image(swapped).dtype.isnative and check_labels(swapped).dtype.isnative


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.zeros((0, 3)), "empty"),
        (np.zeros(4), "dimensions"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_check_image_names_the_argument(data, match):
    with pytest.raises(ValueError, match=f"picture .*{match}|{match}"):
        check_image(data, name="picture")


def test_check_labels_and_rgb():
    with pytest.raises(ValueError, match="mask holds floating point data"):
        check_labels(np.ones((4, 4), np.float32), name="mask")
    with pytest.raises(ValueError, match="looks like an RGB"):
        check_rgb(np.zeros((8, 8, 3), np.uint8))
    check_rgb(np.zeros((8, 8, 5), np.uint8))  # five planes: a stack


@pytest.mark.parametrize("lazy", [False, True])
def test_is_mask_takes_any_single_foreground_value(lazy):
    mask = np.zeros((6, 6), np.uint8)
    mask[1:3, 1:3] = 255
    mask[4:, 4:] = 255
    labels = mask.copy()
    labels[4:, 4:] = 2
    wrap = (lambda a: da.from_array(a, chunks=3)) if lazy else (lambda a: a)
    assert is_mask(wrap(mask)) and is_mask(wrap(mask // 255)) and is_mask(wrap(mask > 0))
    assert not is_mask(wrap(labels))
    assert is_mask(wrap(np.zeros((4, 4), np.int32)))
