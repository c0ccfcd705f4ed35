"""Compiled kernels for thresholding: min/max, histograms and the mask, one read pass each.

``np.bincount`` widens its input to int64 before counting, and scikit-image's histogram takes
``min``, ``max`` and ``bincount`` in three passes; on a 64x1024x1024 uint16 stack that is
~30x the cost of reading the data once. These numba kernels read each value once, count into
one local histogram per thread (no atomics, no false sharing) and sum the locals at the end.
(The mask itself is a numpy comparison, see ``thresholding._compare``: numpy's vectorized
``greater`` beats a scalar loop here.)

This module imports numba at the top: import it only inside functions
(``napari_binseg.thresholding`` does), so that ``import napari_binseg`` stays light.
Compiled code is cached on disk when the package folder (or ``NUMBA_CACHE_DIR``) is writable;
when no cache location works the kernels are compiled in memory instead.
"""

import types

import numba
import numpy as np
from numba import prange

#: Below this many values (4 M: ~4 ms serial) a kernel runs on one thread: a parallel region
#: waits for all its threads, tens of ms on a busy machine (measured 48 ms vs 0.9 ms serial on
#: a 1 MP uint16 image, loaded 2-core VM).
_SERIAL_BELOW = 1 << 22


def _jit(func, parallel=True):
    """``njit(parallel, nogil, cache)``, falling back to no disk cache when none is writable."""
    if not parallel:
        # A distinct name: numba's disk cache is keyed by name and signature, not by flags.
        func = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_serial")
        func.__qualname__ = func.__name__
    try:
        return numba.njit(parallel=parallel, nogil=True, cache=True)(func)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(parallel=parallel, nogil=True, cache=False)(func)


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


def _hist_uint(values, nbins, nchunks):
    """Counts of unsigned 8/16-bit ``values`` in ``nbins`` bins, one bin per value."""
    n = values.size
    step = (n + nchunks - 1) // nchunks
    local = np.zeros((nchunks, nbins), np.int64)
    for c in prange(nchunks):
        # Four interleaved uint32 sub-histograms (a chunk holds < 2**31 values): runs of equal
        # values (flat background) then increment different counters, which removes the
        # store-to-load dependency between consecutive increments. Unsigned indices skip
        # numba's negative-index wraparound check.
        h = np.zeros(4 * nbins, np.uint32)
        chunk = values[c * step : min(n, c * step + step)]
        m = chunk.size
        i = 0
        while i + 3 < m:
            h[chunk[i]] += 1
            h[nbins + chunk[i + 1]] += 1
            h[2 * nbins + chunk[i + 2]] += 1
            h[3 * nbins + chunk[i + 3]] += 1
            i += 4
        while i < m:
            h[chunk[i]] += 1
            i += 1
        for j in range(4):
            for b in range(nbins):
                local[c, b] += h[j * nbins + b]
    out = np.zeros(nbins, np.int64)
    for c in range(nchunks):
        for b in range(nbins):
            out[b] += local[c, b]
    return out


def _hist_offset(values, offset, nbins, nchunks):
    """Counts of integer ``values - offset`` in ``nbins`` bins (all values must fall in one)."""
    n = values.size
    step = (n + nchunks - 1) // nchunks
    local = np.zeros((nchunks, nbins), np.int64)
    for c in prange(nchunks):
        h = np.zeros(2 * nbins, np.uint32)
        chunk = values[c * step : min(n, c * step + step)]
        m = chunk.size
        i = 0
        while i + 1 < m:
            h[np.uint64(np.int64(chunk[i]) - offset)] += 1
            h[np.uint64(nbins + np.int64(chunk[i + 1]) - offset)] += 1
            i += 2
        while i < m:
            h[np.uint64(np.int64(chunk[i]) - offset)] += 1
            i += 1
        for j in range(2):
            for b in range(nbins):
                local[c, b] += h[j * nbins + b]
    out = np.zeros(nbins, np.int64)
    for c in range(nchunks):
        for b in range(nbins):
            out[b] += local[c, b]
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
            local[c, np.uint64(b)] += 1
    out = np.zeros(nbins, np.int64)
    for c in range(nchunks):
        for b in range(nbins):
            out[b] += local[c, b]
    return out


def _otsu_index(counts, products):
    """Index of Otsu's threshold in a histogram of float32 ``counts`` (two bins or more) and
    ``products`` (counts times bin centres), with scikit-image's arithmetic: the same
    cumulative sums, in the same order and types, and the first maximum (or NaN) of the same
    between-class variance."""
    n = counts.size
    weight2 = np.empty(n, counts.dtype)
    mean2 = np.empty(n, products.dtype)
    w = counts[n - 1]
    total = products[n - 1]
    weight2[n - 1] = w
    mean2[n - 1] = total / w
    for i in range(n - 2, -1, -1):
        w += counts[i]
        total += products[i]
        weight2[i] = w
        mean2[i] = total / w
    w = counts[0]
    total = products[0]
    best = -np.inf
    index = 0
    for i in range(n - 1):
        if i > 0:
            w += counts[i]
            total += products[i]
        d = total / w - mean2[i + 1]
        variance = (w * weight2[i + 1]) * (d * d)
        if variance != variance:  # np.argmax returns the first NaN
            return i
        if variance > best:
            best = variance
            index = i
    return index


_otsu_index_serial = _jit(_otsu_index, parallel=False)


def otsu(counts, centers):
    """``skimage.filters.threshold_otsu(hist=(counts, centers))``, bit for bit, for a
    histogram of two bins or more whose first and last bins are not empty. Its numpy
    version passes a dozen times over the bins: 1 ms for a 16-bit image's tens of
    thousands, ~10x this kernel."""
    counts = counts.astype(np.float32, copy=False)
    # Multiplied by numpy: numba would keep float32 * int64 in float32.
    return centers[_otsu_index_serial(counts, counts * centers)]


_KERNELS = {
    parallel: {
        name: _jit(func, parallel)
        for name, func in [
            ("minmax", _minmax),
            ("minmax_int", _minmax_int),
            ("hist_uint", _hist_uint),
            ("hist_offset", _hist_offset),
            ("hist_edges", _hist_edges),
        ]
    }
    for parallel in (True, False)
}


def _kernel(name, n, serial):
    """The kernel and its number of chunks for ``n`` values.

    Serial for small inputs and when the caller runs several kernels in its own threads: on a
    busy machine every parallel region waits for all its threads to be scheduled, which costs
    milliseconds per call.
    """
    if serial or n < _SERIAL_BELOW:
        return _KERNELS[False][name], max(1, -(-n // (1 << 31)))
    chunks = max(numba.get_num_threads(), -(-n // (1 << 31)))
    return _KERNELS[True][name], chunks


def minmax(values, serial=False):
    """``(min, max, n_nan)`` of a 1D array; min and max are exact ints for integer data.

    For floats NaN is skipped; an all-NaN array gives ``min = inf > max = -inf``.
    """
    if values.dtype.kind in "biu":
        kernel, chunks = _kernel("minmax_int", values.size, serial)
        lo, hi = kernel(values.view(np.uint8) if values.dtype == bool else values, chunks)
        return int(lo), int(hi), 0
    kernel, chunks = _kernel("minmax", values.size, serial)
    lo, hi, nan = kernel(values, chunks)
    return float(lo), float(hi), int(nan)


def hist_int(values, offset, nbins, serial=False):
    """int64 counts of ``values - offset`` (1D integer array, all in ``[0, nbins)``)."""
    offset, nbins = int(offset), int(nbins)
    kind, bits = values.dtype.kind, 8 * values.dtype.itemsize
    if bits <= 16 and nbins == 1 << bits and offset == (0 if kind == "u" else -(nbins // 2)):
        unsigned = values.view(np.uint8 if bits == 8 else np.uint16)
        kernel, chunks = _kernel("hist_uint", values.size, serial)
        counts = kernel(unsigned, nbins, chunks)
        # Signed data: the two's complement bit pattern of v is v mod 2**bits; shift it back.
        return counts if kind == "u" else np.roll(counts, nbins // 2)
    kernel, chunks = _kernel("hist_offset", values.size, serial)
    return kernel(values, offset, nbins, chunks)


def hist_edges(values, edges, serial=False):
    """int64 counts of 1D ``values`` in the uniform bins ``edges``, as ``np.histogram``."""
    kernel, chunks = _kernel("hist_edges", values.size, serial)
    return kernel(values, edges, chunks)
