"""Exact comparisons of the data with float64 thresholds (``napari_binseg._threshold_mask``)."""

import numpy as np
import pytest

from napari_binseg._threshold_mask import compare, exact_bound


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32", "float64"])
@pytest.mark.parametrize("t", [-1e6, -3.0, 0.1, 7.0, 7.5, 120.3, 1e6])
def test_mask_comparison_is_exact_in_float64(dtype, t):
    values = np.array([-4, -3, 0, 0.1, 7, 7.5, 8, 120, 121, 250], dtype=np.float64)
    if dtype == "uint8":
        values = np.clip(values, 0, None)
    values = values.astype(dtype)
    if dtype[0] == "f":
        values[0] = np.nan
    exact = values.astype(np.float64)
    out = np.empty(values.shape, np.uint8)
    np.testing.assert_array_equal(compare(values, [t], 0, out), exact > t)
    np.testing.assert_array_equal(compare(values, [t], 1, out), exact <= t)
    ts = [t, t + 50.25]
    expected = np.where(np.isnan(exact), 0, np.digitize(exact, ts))
    np.testing.assert_array_equal(compare(values, ts, 2, out), expected)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16"])
def test_exact_bound_outside_an_integer_range_is_infinite(dtype):
    info = np.iinfo(dtype)
    assert exact_bound(float(info.max) + 1.5, dtype, "down") == np.inf
    assert exact_bound(float(info.min) - 1.5, dtype, "up") == -np.inf
    assert exact_bound(7.5, dtype, "down") == 7 and exact_bound(7.5, dtype, "up") == 8
