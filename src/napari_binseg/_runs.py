"""Connected components of a 2D or 3D mask from its runs, compiled.

A run is a maximal stretch of foreground along the last axis. Runs are merged with the runs
of the neighbouring rows already scanned (union-find over runs, each root the earliest run of
its component), numbered in raster order of each object's first pixel (as
``skimage.measure.label``) and only then painted into an output of the smallest unsigned
type that holds the count. The memory is the output plus a few integers per run: no
provisional-label image. Imports numba at the top: import this module inside functions only.

References
----------
.. [1] L. He, Y. Chao and K. Suzuki, "A run-based two-scan labeling algorithm", IEEE Trans.
       Image Process. 17(5): 749-756, 2008. :DOI:`10.1109/TIP.2008.919369`
"""

from typing import NamedTuple

import numba
import numpy as np

from .morphology import label_dtype


def _jit(func):
    try:
        return numba.njit(nogil=True, cache=True)(func)
    except RuntimeError:  # no writable cache location
        return numba.njit(nogil=True, cache=False)(func)


@_jit
def _row_offsets(mask):
    """Index of the first run of every row of ``mask`` (z, y, x), and the run count last."""
    nz, ny, nx = mask.shape
    offsets = np.empty(nz * ny + 1, np.int64)
    n = 0
    for z in range(nz):
        for y in range(ny):
            offsets[z * ny + y] = n
            inside = False
            for x in range(nx):
                value = mask[z, y, x] != 0
                if value and not inside:
                    n += 1
                inside = value
    offsets[nz * ny] = n
    return offsets


@_jit
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving keeps parent[i] <= i
        i = parent[i]
    return i


@_jit
def _merge(starts, ends, parent, offsets, row, other, reach):
    """Union the runs of ``row`` with the overlapping runs of the earlier row ``other``; runs
    touch when they overlap after widening by ``reach`` (0 or 1) pixels."""
    a, a_end = offsets[row], offsets[row + 1]
    b, b_end = offsets[other], offsets[other + 1]
    while a < a_end and b < b_end:
        if ends[a] + reach <= starts[b]:
            a += 1
        elif ends[b] + reach <= starts[a]:
            b += 1
        else:
            ra = _find(parent, a)
            rb = _find(parent, b)
            if ra < rb:
                parent[rb] = ra
            elif rb < ra:
                parent[ra] = rb
            if ends[a] < ends[b]:
                a += 1
            else:
                b += 1


@_jit
def _label_runs(mask, offsets, rank, starts, ends, parent):
    """Runs of ``mask`` (z, y, x) into ``starts``/``ends``, and their labels into ``parent``.

    ``rank``: 1 = faces .. 3 = full connectivity. Returns the number of objects.
    """
    nz, ny, nx = mask.shape
    row_reach = 1 if rank >= 2 else 0  # x-diagonals towards a row differing in one axis
    corner_reach = 1 if rank >= 3 else 0  # ... and in two axes (z and y)
    i = 0
    for z in range(nz):
        for y in range(ny):
            x = 0
            while x < nx:
                if mask[z, y, x] != 0:
                    starts[i] = x
                    while x < nx and mask[z, y, x] != 0:
                        x += 1
                    ends[i] = x
                    parent[i] = i
                    i += 1
                else:
                    x += 1
            row = z * ny + y
            if offsets[row] == offsets[row + 1]:
                continue
            if y > 0:
                _merge(starts, ends, parent, offsets, row, row - 1, row_reach)
            if z > 0:
                _merge(starts, ends, parent, offsets, row, row - ny, row_reach)
                if rank >= 2 and y > 0:
                    _merge(starts, ends, parent, offsets, row, row - ny - 1, corner_reach)
                if rank >= 2 and y < ny - 1:
                    _merge(starts, ends, parent, offsets, row, row - ny + 1, corner_reach)
    # Every root is the first run of its component and parent[i] < i otherwise: one pass in
    # raster order turns parents into labels (the parent's label is already final).
    n = 0
    for i in range(parent.size):
        p = parent[i]
        if p == i:
            n += 1
            parent[i] = n
        else:
            parent[i] = parent[p]
    return n


@_jit
def _paint(out, offsets, starts, ends, labels, clear):
    """Write the label of each run into ``out`` (z, y, x), and 0 elsewhere with ``clear``."""
    nz, ny, nx = out.shape
    for z in range(nz):
        for y in range(ny):
            row = z * ny + y
            line = out[z, y]
            done = 0
            for i in range(offsets[row], offsets[row + 1]):
                if clear:
                    line[done : starts[i]] = 0
                line[starts[i] : ends[i]] = labels[i]
                done = ends[i]
            if clear:
                line[done:nx] = 0


@_jit
def _clear(mask, offsets, starts, ends, drop):
    """Zero the runs of ``mask`` (z, y, x) whose label is flagged in ``drop``."""
    nz, ny, _ = mask.shape
    for z in range(nz):
        for y in range(ny):
            row = z * ny + y
            for i in range(offsets[row], offsets[row + 1]):
                if drop[i]:
                    mask[z, y, starts[i] : ends[i]] = 0


@_jit
def _boxes(offsets, starts, ends, labels, boxes):
    """Extend ``boxes`` (y0, y1, x0, x1, inclusive) by the runs of every row of a 2D mask."""
    for y in range(offsets.size - 1):
        for i in range(offsets[y], offsets[y + 1]):
            k = labels[i]
            boxes[k, 0] = min(boxes[k, 0], y)
            boxes[k, 1] = max(boxes[k, 1], y)
            boxes[k, 2] = min(boxes[k, 2], starts[i])
            boxes[k, 3] = max(boxes[k, 3], ends[i] - 1)


class Runs(NamedTuple):
    """The labeled runs of a mask: :func:`find_runs`, painted by :func:`paint_runs`."""

    shape: tuple
    offsets: np.ndarray  # first run of every row (z, y), the run count last
    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray  # label of every run, 1..n
    n: int


def find_runs(mask, rank):
    """Runs of the non-zero pixels of a 2D or 3D ``mask`` and the label of each.

    Parameters
    ----------
    mask : (M, N) or (P, M, N) ndarray
        Foreground is non-zero; never modified (read-only or non-contiguous is fine).
    rank : int
        Connectivity as in scikit-image: 1 (faces) .. ``mask.ndim`` (full).

    Returns
    -------
    Runs
        Labels ``1..n`` in raster order of each object's first pixel; ``n`` objects.
    """
    mask = np.asarray(mask)
    if mask.dtype.itemsize != 1:
        mask = mask != 0
    data = mask.view(np.uint8).reshape((1,) * (3 - mask.ndim) + mask.shape)
    offsets = _row_offsets(data)
    n_runs = int(offsets[-1])
    starts = np.empty(n_runs, np.int32 if mask.shape[-1] < 2**31 else np.int64)
    ends = np.empty_like(starts)
    labels = np.empty(n_runs, np.int32 if n_runs < 2**31 else np.int64)
    n = int(_label_runs(data, offsets, rank, starts, ends, labels))
    return Runs(mask.shape, offsets, starts, ends, labels, n)


def paint_runs(runs, out=None):
    """The label image of ``runs``, into ``out`` (any array of ``runs.shape`` whose integer
    type holds ``runs.n``) or a new array of the smallest unsigned type (uint16 at least)."""
    clear = out is not None
    if out is None:
        out = np.zeros(runs.shape, label_dtype(runs.n))  # zero pages: only the runs are written
    if out.size:
        view = out.reshape((1,) * (3 - out.ndim) + out.shape)
        _paint(view, runs.offsets, runs.starts, runs.ends, runs.labels, clear)
    return out


def run_boxes(runs):
    """Bounding boxes (y0, y1, x0, x1, inclusive) of the labels ``0..n`` of 2D ``runs``, from
    the runs alone (no pass over the image); label 0 has none (y0 > y1)."""
    boxes = np.empty((runs.n + 1, 4), np.int64)
    boxes[:, 0::2] = np.iinfo(np.int64).max
    boxes[:, 1::2] = -1
    _boxes(runs.offsets, runs.starts, runs.ends, runs.labels, boxes)
    return boxes


def remove_small_runs(mask, rank, min_size):
    """Zero the objects of fewer than ``min_size`` pixels of a writable 2D/3D ``mask``, in
    place, from its runs (no label image). Returns ``mask``."""
    runs = find_runs(mask, rank)
    sizes = np.bincount(runs.labels, weights=runs.ends - runs.starts, minlength=runs.n + 1)
    drop = sizes < min_size
    drop[0] = False
    if drop.any():
        _clear(mask.reshape((1,) * (3 - mask.ndim) + mask.shape), *runs[1:4], drop[runs.labels])
    return mask
