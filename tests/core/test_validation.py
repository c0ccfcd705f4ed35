"""Shared input checks (``napari_binseg._validation``)."""

import dask.array as da
import numpy as np
import pytest

from napari_binseg._validation import check_image, check_labels, check_rgb, native


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
