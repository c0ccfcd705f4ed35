"""Binary and label morphology shared by thresholding, counting and the U-Net: connectivity,
connected components, hole filling and small-object removal.

Connected components come from the run labeller of :mod:`napari_binseg._runs` for 2D and 3D
arrays and from ``scipy.ndimage.label`` (face connectivity) for other dimensions. "Face"
connectivity (4 in 2D, 6 in 3D: :func:`face_connectivity`) is the default everywhere a
background or a foreground is split into regions.
"""

import numpy as np

#: connected-components-3d connectivity for each accepted ``connectivity`` value, per ndim:
#: scikit-image style ranks (1 = faces .. ndim = full) or cc3d's own 4/8 and 6/18/26.
CC3D_CONNECTIVITY = {
    2: {1: 4, 2: 8, 4: 4, 8: 8},
    3: {1: 6, 2: 18, 3: 26, 6: 6, 18: 18, 26: 26},
}
_RANK = {4: 1, 8: 2, 6: 1, 18: 2, 26: 3}


def face_connectivity(ndim):
    """cc3d connectivity through faces only: 4 in 2D, 6 in 3D."""
    return 4 if ndim == 2 else 6


def resolve_connectivity(connectivity, ndim):
    """``(rank, cc3d)`` connectivity of ``connectivity`` in ``ndim`` (2 or 3) dimensions.

    Parameters
    ----------
    connectivity : int or None
        1 (faces) to ``ndim`` (full; the default for None), or equivalently 4/8 in 2D and
        6/18/26 in 3D.
    ndim : {2, 3}

    Returns
    -------
    rank : int
        scikit-image style connectivity (1 .. ndim).
    cc : int
        The same neighbourhood as connected-components-3d names it (4, 8, 6, 18 or 26).

    Examples
    --------
    >>> resolve_connectivity(None, 2), resolve_connectivity(6, 3)
    ((2, 8), (1, 6))
    """
    if connectivity is None:
        connectivity = ndim
    table = CC3D_CONNECTIVITY[ndim]
    if isinstance(connectivity, bool) or connectivity not in table:
        allowed = ", ".join(str(k) for k in table)
        raise ValueError(
            f"connectivity must be one of {allowed} for {ndim}D, got {connectivity!r}"
        )
    cc = table[connectivity]
    return _RANK[cc], cc


def label_dtype(n):
    """The type of a label image of ``n`` objects: the smallest unsigned integer type from
    uint16 up that holds ``n`` (uint16 below 65536 objects, else uint32), as every path of
    napari-binseg gives labels (count, chunked count, U-Net).

    Examples
    --------
    >>> label_dtype(65535), label_dtype(65536)
    (<class 'numpy.uint16'>, <class 'numpy.uint32'>)
    """
    return next(t for t in (np.uint16, np.uint32, np.uint64) if n <= np.iinfo(t).max)


def label(mask, connectivity=None):
    """Connected components of the non-zero pixels of ``mask``.

    Parameters
    ----------
    mask : (M, N[, P, ...]) ndarray
        Foreground is non-zero; never modified.
    connectivity : int, optional
        4/8 in 2D, 6/18/26 in 3D, or scikit-image's 1 .. ndim; face connectivity when None.
        Arrays of other dimensions are always labeled through faces (``scipy.ndimage.label``).

    Returns
    -------
    labels : ndarray of uint16 (fewer than 65536 objects) or uint32 (2D/3D), or int32
        ``1..n`` in raster order of each object's first pixel, 0 is background: the same
        labels as ``skimage.measure.label``.
    n : int
        The number of objects.

    Notes
    -----
    2D and 3D masks are labeled from their runs (:mod:`napari_binseg._runs`): the memory is
    the output plus a few integers per run, with no provisional-label image.

    Examples
    --------
    >>> label(np.array([[1, 0, 1], [1, 0, 0]]))[1]
    2
    """
    mask = np.asarray(mask)
    if mask.ndim in (2, 3):
        from ._runs import find_runs, paint_runs  # numba

        rank = 1 if connectivity is None else resolve_connectivity(connectivity, mask.ndim)[0]
        runs = find_runs(mask, rank)
        return paint_runs(runs), runs.n
    from scipy import ndimage as ndi

    labels, n = ndi.label(mask)
    return labels, int(n)


def _enclosed(labels):
    """Background regions (face-connected) of ``labels`` that touch no face of the array.

    Returns ``(regions, enclosed)``: the background region of every pixel (0 on objects) and a
    boolean lookup, True for regions that are holes; None when there is no hole.
    """
    regions, n = label(labels == 0)
    if n == 0:
        return None
    outside = np.zeros(n + 1, bool)
    outside[0] = True  # region 0: the objects themselves
    for axis in range(labels.ndim):
        for end in (0, -1):
            outside[np.take(regions, end, axis=axis)] = True
    if outside.all():
        return None
    return regions, ~outside


def fill_holes(mask):
    """Fill background regions enclosed by foreground, in place.

    Background is connected through faces (4 in 2D, 6 in 3D), as in
    ``scipy.ndimage.binary_fill_holes``.

    Parameters
    ----------
    mask : (M, N[, ...]) ndarray of uint8 or bool
        Binary mask; holes are set to 1 (True).

    Returns
    -------
    mask : the same array, filled.

    Examples
    --------
    >>> ring = np.ones((3, 3), np.uint8); ring[1, 1] = 0
    >>> int(fill_holes(ring).sum())
    9
    """
    if mask.ndim in (2, 3):
        from ._flood import fill_runs, hole_runs  # numba

        # Background runs merged by union-find (as fill_label_holes): no labeled background.
        data = mask.view(np.uint8) if mask.dtype == bool else mask
        data = data.reshape((1,) * (3 - mask.ndim) + mask.shape)
        row, start, stop, fill = hole_runs(data, mask.ndim == 3)
        fill_runs(data, row, start, stop, np.ones_like(fill))
        return mask
    found = _enclosed(mask)
    if found is not None:
        regions, enclosed = found
        mask[enclosed[regions]] = 1
    return mask


def fill_label_holes(labels, *, in_place=False, runs=None):
    """Fill background regions enclosed by one object with that object's label.

    Background is connected through faces, as in :func:`fill_holes`; a hole bordered by two
    or more objects stays background (a gap between touching nuclei is not a hole).

    Parameters
    ----------
    labels : (M, N) or (M, N, P) ndarray of int
        Label image; modified only with ``in_place``.
    in_place : bool
        Fill ``labels`` itself (no copy: the peak memory of a large image is lower).
    runs : napari_binseg._runs.Runs, optional
        The runs of ``labels != 0`` when known (2D or 3D): the background is then found
        between them, without reading the image.

    Returns
    -------
    filled : ndarray
        A filled copy, or ``labels`` itself when it has no hole or with ``in_place``.

    Examples
    --------
    >>> labels = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0]])
    >>> fill_label_holes(labels)[1, 1]
    np.int64(1)
    """
    if labels.ndim in (2, 3):
        from ._flood import fill_runs, gaps, hole_runs  # numba

        # Background runs along x, merged by union-find: no full-size temporary (the labeled
        # background would be 4-5 bytes per pixel).
        lab3 = labels.reshape((-1,) + labels.shape[-2:])
        nx = labels.shape[-1]
        background = None if runs is None else gaps(runs.offsets, runs.starts, runs.ends, nx)
        holes = hole_runs(lab3, labels.ndim == 3, background)
        if holes[0].size == 0:
            return labels
        filled = labels if in_place else labels.copy()
        fill_runs(filled.reshape(lab3.shape), *holes)
        return filled
    found = _enclosed(labels)
    if found is None:
        return labels
    regions, enclosed = found
    # Holes never touch a face, so every face neighbour of a hole pixel exists and, in flat
    # indices, is the pixel +- the axis stride: the work is proportional to hole pixels only.
    if regions.flags.c_contiguous:
        from ._flood import select_where  # numba: one pass, no full-size temporary

        index = select_where(regions.reshape(-1), enclosed)
    else:
        index = np.flatnonzero(enclosed[regions])
    hole_id = regions.ravel()[index].astype(np.int64)
    del regions, found  # the background regions (4 bytes per pixel) are no longer needed
    flat = labels.ravel()
    strides = np.cumprod((1,) + labels.shape[:0:-1])[::-1]
    ids, neighbours = [], []
    for stride in strides:
        for step in (-stride, stride):
            value = flat[index + step]
            sel = value != 0
            ids.append(hole_id[sel])
            neighbours.append(value[sel].astype(np.int64))
    pairs = np.unique(np.stack([np.concatenate(ids), np.concatenate(neighbours)]), axis=1)
    n_neighbours = np.bincount(pairs[0], minlength=enclosed.size)
    # A hole bordered by one object only is part of it.
    single = pairs[:, n_neighbours[pairs[0]] == 1]
    fill = np.zeros(enclosed.size, np.int64)
    fill[single[0]] = single[1]
    value = fill[hole_id]
    filled = labels if in_place else labels.copy()
    filled.ravel()[index[value != 0]] = value[value != 0]
    return filled


def relabel(labels, lut, *, block=1 << 22):
    """``lut[labels]`` written into ``labels`` itself, a block at a time (little memory).

    Parameters
    ----------
    labels : C-contiguous ndarray of int
        Label image, modified in place; its dtype must hold every value of ``lut``.
    lut : (n,) ndarray of int
        New value of every label value ``0 .. n - 1``.
    block : int
        Pixels per block: the temporary memory is one block.

    Returns
    -------
    labels : the same array.

    Examples
    --------
    >>> relabel(np.array([[0, 2, 2, 1]], np.int32), np.array([0, 0, 1])).tolist()
    [[0, 1, 1, 0]]
    """
    if not labels.flags.c_contiguous:
        raise ValueError("relabel works in place on a C-contiguous label image")
    flat = labels.reshape(-1)  # a view
    for start in range(0, flat.size, block):
        part = flat[start : start + block]
        part[...] = lut[part]
    return labels


def remove_small_objects(mask, min_size):
    """Remove face-connected objects of fewer than ``min_size`` pixels from a mask, in place.

    Parameters
    ----------
    mask : (M, N[, ...]) ndarray of uint8 or bool
        Binary mask.
    min_size : int
        Smallest object kept, in pixels.

    Returns
    -------
    mask : the same array.

    Examples
    --------
    >>> mask = np.array([[1, 1, 0, 1]], np.uint8)
    >>> remove_small_objects(mask, 2).tolist()
    [[1, 1, 0, 0]]
    """
    if mask.ndim in (2, 3):
        from ._runs import remove_small_runs  # numba

        return remove_small_runs(mask, 1, min_size)
    labels, _ = label(mask)
    small = np.bincount(labels.reshape(-1)) < min_size
    small[0] = False
    mask[small[labels]] = 0
    return mask


def remove_small_labels(labels, min_size):
    """Drop objects of fewer than ``min_size`` pixels and renumber ``1..n``.

    Parameters
    ----------
    labels : ndarray of non-negative int
        Label image; never modified.
    min_size : int
        Smallest object kept, in pixels (at least 1).

    Returns
    -------
    labels : ndarray of int32
        ``labels`` itself (as int32) when nothing is dropped, else a renumbered copy.

    Examples
    --------
    >>> remove_small_labels(np.array([[1, 1, 2, 3, 3, 3]]), 2).tolist()
    [[1, 1, 0, 2, 2, 2]]
    """
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        return labels.astype(np.int32, copy=False)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    keep = counts >= max(int(min_size), 1)
    keep[0] = False
    if keep[1:].all():
        return labels.astype(np.int32, copy=False)
    lut = np.zeros(counts.size, np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]
