"""Per-object measurements of a label image, in one compiled pass over the pixels.

One raster-order pass accumulates per-label counts, coordinate sums, bounding boxes and
intensity sums/extremes (:func:`measure_labels`), where scikit-image's ``regionprops_table``
loops over regions in Python (10-20x slower with tens of thousands of objects). Nothing per
pixel is kept, so the peak memory is that of the label image. :func:`object_table` turns
per-object sums into the table; the chunked (dask) labeler builds its table with it too.
"""

import numpy as np
import pandas as pd

from ._validation import check_labels, native

AXES = ("z", "y", "x")


def check_spacing(spacing, ndim, *, name="spacing"):
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
    labels = np.asarray(check_labels(labels, name="labels"))
    ndim = labels.ndim
    if ndim not in (2, 3):
        raise ValueError(f"labels must be 2D or 3D, got shape {labels.shape}")
    spacing = check_spacing(spacing, ndim)
    if image is not None:
        image = native(np.asarray(image))
        if image.shape != labels.shape:
            raise ValueError(
                f"image shape {image.shape} does not match labels shape {labels.shape}"
            )
    return measure_labels(labels, image, spacing, unit)


_STATS = None


def _stats_kernel():
    """The one-pass per-label statistics kernel (numba, compiled on first use)."""
    global _STATS
    if _STATS is None:
        import numba

        def stats(labels, values, count, sums, lows, highs, isum, ilow, ihigh):
            # Raster order, float64 sums: the same additions in the same order as
            # np.bincount(lab, weights=...) over the foreground, so the same bits.
            depth, rows, cols = labels.shape
            for z in range(depth):
                for y in range(rows):
                    for x in range(cols):
                        lab = labels[z, y, x]
                        if lab == 0:
                            continue
                        count[lab] += 1
                        for a, c in ((0, z), (1, y), (2, x)):
                            sums[a, lab] += np.float64(c)
                            if c < lows[a, lab]:
                                lows[a, lab] = c
                            if c > highs[a, lab]:
                                highs[a, lab] = c
                        if values.size:
                            v = values[z, y, x]
                            isum[lab] += np.float64(v)
                            if v < ilow[lab] or v != v:  # NaN wins, as in np.minimum
                                if not ilow[lab] != ilow[lab]:
                                    ilow[lab] = v
                            if v > ihigh[lab] or v != v:
                                if not ihigh[lab] != ihigh[lab]:
                                    ihigh[lab] = v

        try:
            _STATS = numba.njit(nogil=True, cache=True)(stats)
        except RuntimeError:  # no writable cache location
            _STATS = numba.njit(nogil=True, cache=False)(stats)
    return _STATS


def measure_labels(labels, image, spacing, unit=None):
    """The table of :func:`measure_objects` (inputs already checked), in one pass.

    Memory: a few arrays of one entry per label value; nothing per pixel (no foreground
    index or coordinate arrays), so measuring a large image costs no more than reading it.
    """
    labels = np.asarray(labels)
    ndim = labels.ndim
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if not labels.dtype.isnative:
        labels = labels.astype(labels.dtype.newbyteorder("="))
    if labels.size and labels.dtype.kind == "i" and labels.min() < 0:
        raise ValueError("labels hold negative values; labels must be >= 0")
    size = int(labels.max()) + 1 if labels.size else 1
    as3d = labels.reshape((1,) * (3 - ndim) + labels.shape)
    count = np.zeros(size, np.int64)
    sums = np.zeros((3, size))
    lows = np.full((3, size), np.iinfo(np.int64).max, np.int64)
    highs = np.full((3, size), -1, np.int64)
    if image is None:
        values = np.zeros((0, 0, 0), np.uint8)
        isum = ilow = ihigh = np.zeros(0)
    else:
        values = np.asarray(image)
        if values.dtype.kind == "b":
            values = values.view(np.uint8)
        if not values.dtype.isnative:
            values = values.astype(values.dtype.newbyteorder("="))
        info = np.finfo(values.dtype) if values.dtype.kind == "f" else np.iinfo(values.dtype)
        lo, hi = (np.inf, -np.inf) if values.dtype.kind == "f" else (info.max, info.min)
        isum = np.zeros(size)
        ilow = np.full(size, lo, values.dtype)
        ihigh = np.full(size, hi, values.dtype)
        values = values.reshape(as3d.shape)
    _stats_kernel()(as3d, values, count, sums, lows, highs, isum, ilow, ihigh)
    present = np.flatnonzero(count)
    present = present[present > 0]
    axes = slice(3 - ndim, 3)
    return object_table(
        count[present].astype(float),
        list(sums[axes, present]),
        list(lows[axes, present]),
        list(highs[axes, present]),
        spacing,
        intensity=None if image is None else (isum[present], ilow[present], ihigh[present]),
        labels=present.astype(np.int64),
        unit=unit,
    )


def object_table(
    n, coord_sums, bbox_min, bbox_max, spacing, *, intensity=None, labels=None, unit=None
):
    """The measurement table from per-object sums (one builder for every path).

    Parameters
    ----------
    n : (K,) float ndarray
        Pixels per object.
    coord_sums : sequence of (K,) ndarray, one per spatial axis (z, y, x order)
        Sums of the pixel coordinates per object.
    bbox_min, bbox_max : sequence of (K,) int ndarray, one per spatial axis
        Smallest and largest pixel coordinate per object (the table's max is exclusive).
    spacing : (ndim,) ndarray
        Pixel size per spatial axis.
    intensity : tuple of (K,) ndarray, optional
        ``(sum, min, max)`` of the intensities per object.
    labels : (K,) int ndarray, optional
        The first column, ``label``.
    unit : str, optional
        Stored in ``attrs["unit"]``; ``"pixel"`` when every spacing is 1, else ``"unit"``.

    Returns
    -------
    table : pandas.DataFrame
        The columns of :func:`measure_objects`; ``attrs`` holds ``spacing`` and ``unit``.
    """
    ndim = len(coord_sums)
    axes = AXES[3 - ndim :]
    columns = {} if labels is None else {"label": labels}
    for ax, total, dx in zip(axes, coord_sums, spacing, strict=True):
        columns[f"centroid_{ax}"] = total / n * dx
    voxel = float(np.prod(spacing))
    measure = "area" if ndim == 2 else "volume"
    columns[measure] = n * voxel
    if ndim == 2:
        columns["equivalent_diameter"] = np.sqrt(4.0 * columns[measure] / np.pi)
    else:
        columns["equivalent_diameter"] = np.cbrt(6.0 * columns[measure] / np.pi)
    if intensity is not None:
        total, lo, hi = intensity
        columns["mean_intensity"] = total / n
        columns["min_intensity"], columns["max_intensity"] = lo, hi
    for ax, lo in zip(axes, bbox_min, strict=True):
        columns[f"bbox_min_{ax}"] = lo.astype(np.int64)
    for ax, hi in zip(axes, bbox_max, strict=True):
        columns[f"bbox_max_{ax}"] = hi.astype(np.int64) + 1
    table = pd.DataFrame(columns)
    table.attrs["spacing"] = tuple(float(s) for s in spacing)
    if unit is None:
        unit = "pixel" if np.all(np.asarray(spacing) == 1) else "unit"
    table.attrs["unit"] = unit
    return table


_ASCII_UNITS = {"µm": "um", "μm": "um", "micrometer": "um", "micron": "um", "nanometer": "nm"}


def unit_columns(table, unit=None):
    """A copy of a measurement table whose column names carry their unit, for CSV files.

    Parameters
    ----------
    table : pandas.DataFrame
        A table of :func:`measure_objects` (or ``count_cells``).
    unit : str, optional
        The length unit of the spacing the table was measured with (``"µm"``). None: µm for
        a pixel size given without a unit (as :func:`napari_binseg.io.imwrite` records it),
        pixels for a table measured in pixels (``attrs["spacing"]`` all 1).

    Returns
    -------
    pandas.DataFrame
        ``area_um2``, ``volume_um3``, ``centroid_y_um``, ``equivalent_diameter_um`` in µm,
        ``_px``/``_px2`` in pixels; bounding boxes are always ``_px``; label, frame and
        intensity columns keep their names. ``attrs`` are kept, ``attrs["unit"]`` the unit
        of the names (``"µm"``, ``"px"``).

    Examples
    --------
    >>> import pandas as pd
    >>> list(unit_columns(pd.DataFrame(columns=["label", "area", "bbox_min_y"]), "µm"))
    ['label', 'area_um2', 'bbox_min_y_px']
    """
    if unit is None:
        unit = "µm" if np.any(np.asarray(table.attrs.get("spacing", 1.0)) != 1) else "px"
    u = _ASCII_UNITS.get(unit, unit)
    names = {}
    for column in table.columns:
        name = str(column)
        if name == "area":
            names[column] = f"area_{u}2"
        elif name == "volume":
            names[column] = f"volume_{u}3"
        elif name.startswith("centroid_") or name == "equivalent_diameter":
            names[column] = f"{name}_{u}"
        elif name.startswith("bbox_"):
            names[column] = f"{name}_px"
    out = table.rename(columns=names)
    out.attrs = dict(table.attrs, unit=unit)
    return out
