"""The compiled histogram kernels against numpy (``napari_binseg._histogram``)."""

import numpy as np
import pytest

from napari_binseg import _histogram


def test_float_histogram_kernel_matches_numpy():
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        values = (rng.standard_normal(200_003) * 1e3).astype(dtype)
        values[::97] = values[5]  # repeated values, some right on bin edges below
        counts, edges = np.histogram(values, bins=256)
        values[:256] = edges[:256]
        counts, edges = np.histogram(values, bins=256)
        np.testing.assert_array_equal(_histogram.hist_edges(values, edges), counts)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.int32, np.int64])
def test_integer_histogram_kernel_matches_bincount(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(4)
    lo, hi = max(info.min, -300), min(info.max, 300)
    values = rng.integers(lo, hi, 100_001).astype(dtype)
    assert _histogram.minmax(values)[:2] == (int(values.min()), int(values.max()))
    offset = int(values.min())
    np.testing.assert_array_equal(
        _histogram.hist_int(values, offset, int(values.max()) - offset + 1),
        np.bincount(values.astype(np.int64) - offset),
    )


def test_jit_falls_back_without_a_cache_location(monkeypatch):
    import numba

    real = numba.njit

    def njit(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(**options)

    monkeypatch.setattr(numba, "njit", njit)
    square_sum = _histogram._jit(lambda a: (a * a).sum())
    assert square_sum(np.arange(4)) == 14
