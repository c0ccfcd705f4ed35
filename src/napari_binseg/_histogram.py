"""Compiled kernels for thresholding: min/max, histograms and the mask, one read pass each.

``np.bincount`` widens its input to int64 before counting, and scikit-image's histogram takes
``min``, ``max`` and ``bincount`` in three passes; on a 64x1024x1024 uint16 stack that is
~30x the cost of reading the data once. These numba kernels read each value once, count into
one local histogram per thread (no atomics, no false sharing) and sum the locals at the end.

This module imports numba at the top: import it only inside functions
(``napari_binseg.thresholding`` does), so that ``import napari_binseg`` stays light.
Compiled code is cached on disk when the package folder (or ``NUMBA_CACHE_DIR``) is writable;
when no cache location works the kernels are compiled in memory instead.
"""

import numba
import numpy as np
from numba import prange

#: Below this many values a kernel runs on one thread (thread start-up would dominate).
_SERIAL_BELOW = 1 << 16


def _jit(func):
    """``njit(parallel, nogil, cache)``, falling back to no disk cache when none is writable."""
    try:
        return numba.njit(parallel=True, nogil=True, cache=True)(func)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(parallel=True, nogil=True, cache=False)(func)


def _minmax(values, nchunks):
    """Min, max, number of NaN and whether an infinite value occurs, of a 1D array.

    NaN values are skipped (integers are never NaN). For an all-NaN array min > max.
    """
    n = values.size
    step = (n + nchunks - 1) // nchunks
    los = np.empty(nchunks, np.float64)
    his = np.empty(nchunks, np.float64)
    nans = np.zeros(nchunks, np.int64)
    for c in prange(nchunks):
        lo = np.inf
        hi = -np.inf
        nan = 0
        for i in range(c * step, min(n, (c + 1) * step)):
            x = values[i]
            if x != x:
                nan += 1
            else:
                if x < lo:
                    lo = x
                if x > hi:
                    hi = x
        los[c] = lo
        his[c] = hi
        nans[c] = nan
    return los.min(), his.max(), nans.sum()


def _minmax_int(values, nchunks):
    """Exact min and max of a 1D integer array (int64, so wide integers keep every digit)."""
    n = values.size
    step = (n + nchunks - 1) // nchunks
    los = np.empty(nchunks, np.int64)
    his = np.empty(nchunks, np.int64)
    for c in prange(nchunks):
        lo = np.int64(values[min(c * step, n - 1)])
        hi = lo
        for i in range(c * step, min(n, (c + 1) * step)):
            x = np.int64(values[i])
            if x < lo:
                lo = x
            if x > hi:
                hi = x
        los[c] = lo
        his[c] = hi
    return los.min(), his.max()


def _hist_int(values, offset, nbins, nchunks):
    """Counts of ``values - offset`` in ``nbins`` bins (every value must fall in a bin)."""
    n = values.size
    step = (n + nchunks - 1) // nchunks
    # Four interleaved uint32 sub-histograms per chunk (chunks hold < 2**32 values): runs of
    # equal values (flat background) then increment different counters, which removes the
    # store-to-load dependency between consecutive increments.
    local = np.zeros((nchunks, 4, nbins), np.uint32)
    for c in prange(nchunks):
        h = local[c]
        start = c * step
        stop = min(n, start + step)
        i = start
        while i + 3 < stop:
            h[0, np.intp(values[i]) - offset] += 1
            h[1, np.intp(values[i + 1]) - offset] += 1
            h[2, np.intp(values[i + 2]) - offset] += 1
            h[3, np.intp(values[i + 3]) - offset] += 1
            i += 4
        while i < stop:
            h[0, np.intp(values[i]) - offset] += 1
            i += 1
    out = np.zeros(nbins, np.int64)
    for c in range(nchunks):
        for j in range(4):
            for b in range(nbins):
                out[b] += local[c, j, b]
    return out


def _hist_edges(values, edges, nchunks):
    """Counts of ``values`` in the uniform bins ``edges`` as ``np.histogram`` assigns them.

    Bin ``b`` holds ``edges[b] <= x < edges[b + 1]``, the last bin also ``x == edges[-1]``;
    values outside the edges and NaN are not counted. The bin is first guessed from the value
    and then corrected against ``edges`` (compared in the dtype of the data), as numpy does.
    """
    n = values.size
    nbins = edges.size - 1
    first = np.float64(edges[0])
    last = np.float64(edges[-1])
    scale = nbins / (last - first)
    step = (n + nchunks - 1) // nchunks
    local = np.zeros((nchunks, nbins), np.int64)
    for c in prange(nchunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            x = values[i]
            if not (x >= edges[0] and x <= edges[nbins]):  # NaN or outside
                continue
            b = np.int64((np.float64(x) - first) * scale)
            if b > nbins - 1:
                b = nbins - 1
            if b < 0:
                b = 0
            while b > 0 and x < edges[b]:
                b -= 1
            while b < nbins - 1 and x >= edges[b + 1]:
                b += 1
            local[c, b] += 1
    out = np.zeros(nbins, np.int64)
    for c in range(nchunks):
        for b in range(nbins):
            out[b] += local[c, b]
    return out


def _apply(values, thresholds, mode, out, nchunks):
    """Write the mask or class labels of 1D ``values`` into uint8 ``out``.

    mode 0: ``x > t``; mode 1: ``x <= t`` (inverted); mode 2: the number of thresholds
    ``<= x`` (``np.digitize``). NaN is 0 (background) in every mode. Comparisons are exact
    (the threshold is float64; numba promotes the value).
    """
    n = values.size
    k = thresholds.size
    t = thresholds[0]
    step = (n + nchunks - 1) // nchunks
    for c in prange(nchunks):
        stop = min(n, (c + 1) * step)
        if mode == 0:
            for i in range(c * step, stop):
                out[i] = values[i] > t
        elif mode == 1:
            for i in range(c * step, stop):
                out[i] = values[i] <= t
        else:
            for i in range(c * step, stop):
                x = values[i]
                label = 0
                if x == x:
                    for j in range(k):
                        if thresholds[j] <= x:
                            label += 1
                out[i] = label


_minmax_jit = _jit(_minmax)
_minmax_int_jit = _jit(_minmax_int)
_hist_int_jit = _jit(_hist_int)
_hist_edges_jit = _jit(_hist_edges)
_apply_jit = _jit(_apply)


def _chunks(n, per_thread=1):
    """Independent chunks for ``n`` values: one per thread, each under 2**31 values."""
    if n < _SERIAL_BELOW:
        return 1
    return max(per_thread * numba.get_num_threads(), -(-n // (1 << 31)))


def minmax(values):
    """``(min, max, n_nan)`` of a 1D array; min and max are exact ints for integer data.

    For floats NaN is skipped; an all-NaN array gives ``min = inf > max = -inf``.
    """
    if values.dtype.kind in "biu":
        lo, hi = _minmax_int_jit(values.view(np.uint8) if values.dtype == bool else values,
                                 _chunks(values.size))
        return int(lo), int(hi), 0
    lo, hi, nan = _minmax_jit(values, _chunks(values.size))
    return float(lo), float(hi), int(nan)


def hist_int(values, offset, nbins):
    """int64 counts of ``values - offset`` (1D integer array, all in ``[0, nbins)``)."""
    return _hist_int_jit(values, int(offset), int(nbins), _chunks(values.size))


def hist_edges(values, edges):
    """int64 counts of 1D ``values`` in the uniform bins ``edges``, as ``np.histogram``."""
    return _hist_edges_jit(values, edges, _chunks(values.size))


def apply(values, thresholds, mode, out):
    """Mask (mode 0: ``> t``, 1: ``<= t``) or class labels (2) of 1D ``values`` into ``out``."""
    thresholds = np.ascontiguousarray(thresholds, dtype=np.float64).reshape(-1)
    _apply_jit(values, thresholds, int(mode), out, _chunks(values.size, per_thread=8))
    return out
