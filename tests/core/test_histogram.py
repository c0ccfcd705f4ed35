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


@pytest.mark.parametrize("kind", ["uint16", "float32", "float64", "sparse"])
def test_otsu_kernel_is_scikit_image_bit_for_bit(kind):
    """Otsu of many histograms: integer bin centres (float64 products), float32 and float64
    ones, and a few spikes among empty bins (ties between their gaps)."""
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(2, 3000))
        counts = rng.poisson(rng.uniform(0.5, 3000), n)
        if kind == "uint16":
            centers = np.arange(n) + int(rng.integers(0, 60000))
        elif kind == "sparse":
            counts = np.zeros(n, np.int64)
            counts[rng.integers(0, n, 4)] = rng.integers(1, 10**6, 4)
            centers = np.arange(n)
        else:
            centers = np.sort(rng.normal(0, rng.uniform(1, 1e5), n)).astype(kind)
        counts[[0, -1]] = np.maximum(counts[[0, -1]], 1)
        expected = threshold_otsu(hist=(counts, centers))
        got = _histogram.otsu(counts, centers)
        assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_clipped_float_histogram_is_its_numpy_definition(dtype):
    """The clip's percentile (one partition) and histogram (the kernel) against
    ``np.percentile(method="higher")`` and ``np.histogram``: sizes whose rank is an exact
    integer or just above one, bright specks, NaN holes, values on the edges."""
    from napari_binseg._threshold_methods import _clipped_float_histogram

    rng = np.random.default_rng(6)
    for size, percentile in [(1001, 99.9), (2001, 99.5), (65536, 99.9), (40_000, 99)]:
        data = (rng.normal(100, 20, size) * (1 if dtype is np.int64 else 1.37)).astype(dtype)
        data[rng.integers(0, size, size // 500)] = 5000  # saturated specks
        if dtype is not np.int64:
            data[::257] = np.nan
        clean = data[~np.isnan(data)]
        top = np.percentile(clean, percentile, method="higher")
        counts, edges = np.histogram(np.minimum(clean, top), 256, range=(clean.min(), top))
        got_counts, got_centers = _clipped_float_histogram(data, percentile, 256)
        np.testing.assert_array_equal(got_counts, counts)
        np.testing.assert_array_equal(got_centers, (edges[:-1] + edges[1:]) / 2.0)
        assert got_centers.dtype == edges.dtype
    assert _clipped_float_histogram(np.r_[np.zeros(1999), 1.0], 99.9, 256) is None  # all 0


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
