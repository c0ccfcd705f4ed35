"""Count and measure cells: label a mask, split touching nuclei, filter, measure.

``count_cells`` turns a binary mask or a label image (from a threshold, the U-Net or another
plugin) into consecutive labels and a table with one row per object. Connected components come
from connected-components-3d, relabeling from a lookup table, and all measurements from
``np.bincount`` over foreground pixels (:func:`napari_binseg.measure_objects`).
"""

import numpy as np
import pandas as pd

from ._validation import check_image, check_labels, check_rgb, is_dask, is_mask
from .measure import check_spacing, measure_labels
from .morphology import fill_label_holes, resolve_connectivity


def _border_labels(labels):
    """Labels present on any face of the array."""
    faces = [np.take(labels, i, axis=ax).ravel() for ax in range(labels.ndim) for i in (0, -1)]
    values = np.unique(np.concatenate(faces))
    return values[values != 0]


#: Default smallest object, as a fraction of the typical nucleus area (2D) or volume (3D):
#: specks and debris below a tenth of a nucleus are dropped at any magnification.
MIN_SIZE_FRACTION = 0.1


def _nucleus_size(diameter, ndim):
    """Area (2D) or volume (3D) of a disc or ball of ``diameter``."""
    r = diameter / 2.0
    return np.pi * r**2 if ndim == 2 else 4.0 / 3.0 * np.pi * r**3


def _widen(buffer):
    """The uint16 values held in the upper half of the int32 ``buffer``, written as int32
    into ``buffer`` itself from the start, in one compiled pass.

    Element ``i`` of the int32 array covers bytes ``4i .. 4i + 4``; the uint16 values not yet
    read start at byte ``2n + 2i`` >= ``4i + 4``: nothing unread is overwritten.
    """
    from ._flood import widen_upper

    n = buffer.size
    widen_upper(buffer, buffer.view(np.uint16)[n:], np.zeros(0, np.int32))
    return buffer


def _relabel(labels, lut, n):
    """``lut[labels]`` (``n`` labels) as uint16 when ``n < 65536``, else as uint32; in place
    when ``labels`` is our own array of that width.

    uint16 labels held in the upper half of the int32 work buffer are returned as they are:
    the buffer's lower half is never touched, so they cost 2 bytes per pixel of memory.
    """
    from ._flood import relabel_nonzero, widen_upper

    labels = np.ascontiguousarray(labels)
    if n <= np.iinfo(np.uint16).max:
        lut = lut.astype(np.uint16)
        if labels.dtype.itemsize <= 2:
            labels = labels.astype(np.uint16, copy=False)
            relabel_nonzero(labels.reshape(-1), lut)  # background (most pixels) skipped
            return labels
        # Widened by the split (its pieces' ids did not fit): a uint16 copy in one pass.
        out = np.empty(labels.shape, np.uint16)
        widen_upper(out.reshape(-1), labels.reshape(-1), lut)
        return out
    if labels.dtype in (np.uint32, np.int32):
        labels = labels.view(np.int32)
    else:
        labels = labels.astype(np.int32)
    relabel_nonzero(labels.reshape(-1), lut)
    return labels.view(np.uint32)


def _count_frame(
    mask,
    image,
    *,
    is_labels,
    spacing,
    conn,
    min_size,
    max_size,
    split,
    min_diameter,
    diameter,
    exclude_border,
    fill_holes,
    step,
):
    """Label, split, filter and measure one 2D or 3D frame; labels from 1, table, diameter."""
    import fastremap

    from ._runs import find_runs, paint_runs, run_boxes  # numba
    from ._split import NECK_RATIO, split_frame

    buffer = runs = boxes = None

    def widen():
        """The uint16 labels held in ``buffer`` as int32 in ``buffer``."""
        return _widen(buffer).reshape(mask.shape)

    if is_labels:
        # Consecutive ids for any label values (large or sparse), input untouched.
        labels, _ = fastremap.renumber(np.asarray(mask), in_place=False, preserve_zero=True)
        if labels.dtype.itemsize > 4 or labels.dtype.kind == "i" and labels.dtype.itemsize < 4:
            labels = labels.astype(np.int32)
    else:
        mask = np.asarray(mask)
        # A 0/1 byte mask is already boolean data: avoid a comparison pass.
        foreground = mask.view(bool) if mask.dtype.itemsize == 1 else mask != 0
        runs = find_runs(foreground, conn[0])
        del foreground
        if mask.size and runs.n <= np.iinfo(np.uint16).max:
            # The work in uint16, painted into the upper half of an int32 buffer: widened in
            # place (:func:`_widen`) only if the split's ids outgrow uint16, its lower half
            # untouched (not resident) otherwise.
            buffer = np.empty(mask.size, np.int32)
            labels = paint_runs(runs, buffer.view(np.uint16)[mask.size :].reshape(mask.shape))
        else:
            labels = paint_runs(runs)
    step()
    ndim = labels.ndim
    # Holes are filled before the split: a textured nucleus's holes would otherwise cut its
    # distance map into pieces (on s-bsst265 and DSB development images this also matches or
    # beats filling after the split, which protected gaps enclosed by touching nuclei).
    filled = bool(fill_holes)
    if filled:
        # Our own array (never the input); the mask's runs bound its background.
        labels = fill_label_holes(labels, in_place=True, runs=runs)
    if runs is not None and ndim == 2 and split:
        # Boxes of the split's cut objects, from the runs (holes lie inside their object's).
        boxes = run_boxes(runs)
    del runs
    if labels.any() and (split or min_size is None and not is_labels):
        labels, estimate = split_frame(
            labels,
            spacing=spacing,
            diameter=diameter,
            min_diameter=min_diameter,
            connectivity=conn[0],
            image=image if split == "intensity" else None,
            ratio=NECK_RATIO,
            split=bool(split),
            separate=not is_labels,
            widen=widen if buffer is not None else None,
            intensity=image,
            object_boxes=boxes,
        )
        diameter = estimate if diameter is None else diameter
    if min_size is None:
        # A label image's objects were made on purpose (by a model or a person): kept all.
        min_size = 0.0 if is_labels else MIN_SIZE_FRACTION * _nucleus_size(diameter or 0.0, ndim)
    step()
    # One pass over the labels, nothing per pixel kept (no foreground index): low peak memory.
    table = measure_labels(labels, image, spacing)
    size = table["area" if labels.ndim == 2 else "volume"].to_numpy()
    keep = size >= min_size
    if max_size is not None:
        keep &= size <= max_size
    if exclude_border:
        keep &= ~np.isin(table["label"].to_numpy(), _border_labels(labels))
    lut = np.zeros(int(table["label"].max()) + 1 if len(table) else 1, np.int32)
    new = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    lut[table["label"].to_numpy()[keep]] = new
    # ``labels`` is our own array here (never the input): relabel its foreground in place,
    # which is cheaper than filling a new image.
    labels = _relabel(labels, lut, len(new))
    attrs = dict(table.attrs)
    table = table[keep].reset_index(drop=True)
    table["label"] = new.astype(np.int64)
    attrs["diameter"] = None if diameter is None else float(diameter)
    # The same in lateral pixels (x), for a display in px and µm.
    attrs["diameter_px"] = None if diameter is None else float(diameter) / float(spacing[-1])
    attrs["min_size"] = float(min_size)
    table.attrs.update(attrs)
    step()
    return labels, table


def count_cells(
    mask,
    image=None,
    *,
    spacing=None,
    connectivity=None,
    min_size=None,
    max_size=None,
    split_touching=True,
    min_diameter=None,
    diameter=None,
    exclude_border=False,
    fill_holes=True,
    time_axis=None,
    axes=None,
    progress=None,
):
    """Count, separate and measure the objects of a binary mask or label image.

    Steps, per frame: connected components of the mask (a label image keeps its instances),
    fill holes enclosed by one object, estimate the typical nucleus diameter
    (:func:`napari_binseg.size.estimate_diameter`), split touching nuclei (distance transform +
    seeded watershed, at a scale that follows that diameter), drop objects outside
    ``[min_size, max_size]`` or touching the border, relabel ``1..n``, measure. Defaults follow
    the nucleus size, so the same call counts 10-px and 100-px nuclei.

    Parameters
    ----------
    mask : (M, N) or (P, M, N) array of bool or int, or with a time axis
        Binary mask (any non-zero is foreground) or label image (values above 1: each value one
        object; touching different labels are never merged). Float data raises ``ValueError``.
        Numpy, dask or array-like; dask is read frame by frame.
    image : array of the same shape, optional
        Intensity image for ``mean_intensity``, ``min_intensity``, ``max_intensity``; in 2D
        it also lets the split separate out-of-focus nuclei whose masks merged.
    spacing : sequence of float, optional
        Pixel size per spatial axis, ``(dy, dx)`` or ``(dz, dy, dx)``. When given, the table,
        ``min_size``, ``max_size`` and ``min_diameter`` are in these physical units; otherwise
        in pixels.
    connectivity : int, optional
        Neighbourhood of the connected components: 1 (faces) to ndim (full; the default), or
        equivalently 4/8 in 2D and 6/18/26 in 3D.
    min_size, max_size : float, optional
        Keep objects whose area (2D) or volume (3D) is within ``[min_size, max_size]``.
        ``min_size=None`` (default): a tenth of the disc (ball) of the typical diameter for a
        binary mask, so specks and debris go at any magnification; 0 for a label image.
    split_touching : bool or "intensity"
        Split touching nuclei by a distance-transform watershed. ``"intensity"`` also uses the
        dark valleys of ``image`` between bright nuclei (requires ``image``).
    min_diameter : float, optional
        Smallest nucleus diameter: split pieces narrower than this are merged back. ``None``:
        a fifth of the typical diameter.
    diameter : float, optional
        Typical nucleus diameter (physical units with ``spacing``). ``None`` estimates it per
        frame from the mask, in a way specks and clumps cannot fool.
    exclude_border : bool
        Drop objects touching any face of the image (or of each frame).
    fill_holes : bool
        Fill background regions fully enclosed by one object (before the split, so a
        textured nucleus is not cut along its holes).
    time_axis : int, optional
        Axis of a time series; each frame is counted on its own. Labels are unique over the
        whole series (frame 1 continues after the last label of frame 0) and the table gets a
        ``frame`` column.
    axes : str, optional
        ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"`` (:mod:`napari_binseg.axes`); a ``T``
        counts per frame (as ``time_axis``). Default: an unlabeled 3D array is a z-stack.
    progress : callable, optional
        Called as ``progress(done, total)`` after every step of every frame; an exception raised
        by it stops the work (the widget cancels this way).

    Returns
    -------
    labels : ndarray of uint16 (fewer than 65536 objects) or uint32, same shape as ``mask``
        Objects numbered ``1..n``, 0 is background.
    table : pandas.DataFrame
        One row per object: ``label``, (``frame``), ``centroid_[z]/y/x``, ``area`` or
        ``volume``, ``equivalent_diameter``, intensities, ``bbox_min_*``/``bbox_max_*``
        (see :func:`napari_binseg.measure_objects`). ``table.attrs`` holds ``spacing``,
        ``unit``, ``diameter`` (the typical nucleus diameter used, physical units with
        ``spacing``; None when neither estimated nor given), ``diameter_px`` (the same in x
        pixels), ``min_size`` and, for a time series, ``n_frames`` and ``frame_diameters``.

    Raises
    ------
    ValueError
        Float or empty masks, a mask not 2D/3D (plus time), mismatched ``image``, bad
        ``spacing``, ``connectivity``, sizes or ``time_axis``.

    References
    ----------
    .. [1] Beucher S, Meyer F (1993). The morphological approach to segmentation: the
           watershed transformation. Mathematical Morphology in Image Processing, 433-481.
    .. [2] Silversmith W (2021). connected-components-3d. https://github.com/seung-lab/cc3d

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :60]
    >>> mask = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    >>> labels, table = count_cells(mask)
    >>> len(table), int(table["area"].sum()) == int(mask.sum())
    (2, True)
    """
    from .axes import resolve_axes
    from .options import CountOptions

    opts = CountOptions(
        connectivity=connectivity,
        split_touching=split_touching,
        min_diameter=min_diameter,
        diameter=diameter,
        min_size=min_size,
        max_size=max_size,
        exclude_border=exclude_border,
        fill_holes=fill_holes,
        time_axis=time_axis,
    )
    min_size, max_size, diameter = opts.min_size, opts.max_size, opts.diameter
    mask = check_labels(mask, name="mask")
    ndim = mask.ndim
    if axes is not None:
        axes = resolve_axes(axes, ndim)
        if time_axis is not None and time_axis % ndim != axes.find("T"):
            raise ValueError(f"time_axis={time_axis!r} contradicts axes={axes!r}")
        if "T" in axes:
            time_axis = axes.index("T")
    if time_axis is not None:
        if not -ndim <= time_axis < ndim:
            raise ValueError(f"time_axis must be an axis of mask (ndim {ndim}), got {time_axis!r}")
        time_axis = int(time_axis) % ndim
    spatial = ndim - (time_axis is not None)
    if spatial not in (2, 3):
        raise ValueError(
            f"mask must be 2D or 3D (plus time_axis for a time series), got shape {mask.shape}"
            + ("" if time_axis is not None else "; pass time_axis=0 for a time series")
        )
    if time_axis is None and axes is None:
        check_rgb(mask, name="mask")  # (Y, X, 3) is colour, not a z-stack, as napari guesses
    if image is not None:
        image = check_image(image, name="image", min_ndim=ndim, max_ndim=ndim)
        if image.shape != mask.shape:
            raise ValueError(f"image shape {image.shape} does not match mask shape {mask.shape}")
    if split_touching == "intensity" and image is None:
        raise ValueError("split_touching='intensity' needs an image")
    spacing = check_spacing(spacing, spatial)
    conn = resolve_connectivity(connectivity, spatial)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be callable as progress(done, total)")

    if is_dask(mask):
        import dask

        lo, hi = dask.compute(mask.min(), mask.max())
    else:
        lo, hi = mask.min(), mask.max()
    if lo < 0:
        raise ValueError("mask holds negative values; labels must be >= 0")
    is_labels = not is_mask(mask, hi)

    n_frames = 1 if time_axis is None else mask.shape[time_axis]
    total = 3 * n_frames
    done = [0]

    def step():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    options = dict(
        is_labels=is_labels,
        spacing=spacing,
        conn=conn,
        min_size=min_size,
        max_size=max_size,
        split=split_touching,
        min_diameter=min_diameter,
        diameter=diameter,
        exclude_border=exclude_border,
        fill_holes=fill_holes,
        step=step,
    )
    if time_axis is None:
        return _count_frame(
            np.asarray(mask), None if image is None else np.asarray(image), **options
        )

    # uint16 while the series' ids fit, widened once when they outgrow it: 2 bytes per pixel
    # of the series, no uint32 image and its uint16 copy.
    out = np.zeros(mask.shape, np.uint16)
    tables, offset = [], 0
    for t in range(n_frames):
        frame = np.asarray(np.take(mask, t, axis=time_axis))
        img = None if image is None else np.asarray(np.take(image, t, axis=time_axis))
        labels, table = _count_frame(frame, img, **options)
        if offset + len(table) > np.iinfo(out.dtype).max:
            out = out.astype(np.uint32)
        out_frame = np.moveaxis(out, time_axis, 0)[t]
        np.add(labels, out.dtype.type(offset), out=out_frame, where=labels > 0)
        table["label"] += offset
        table.insert(1, "frame", t)
        offset += len(table)
        tables.append(table)
    attrs = dict(tables[0].attrs)
    diameters = [t.attrs["diameter"] for t in tables if t.attrs.get("diameter")]
    attrs["diameter"] = float(np.median(diameters)) if diameters else None
    dx = float(spacing[-1])
    attrs["diameter_px"] = None if attrs["diameter"] is None else attrs["diameter"] / dx
    attrs["frame_diameters"] = [t.attrs.get("diameter") for t in tables]
    attrs.pop("min_size", None)
    table = pd.concat(tables, ignore_index=True)
    table.attrs.update(attrs, n_frames=n_frames)
    return out, table


def count_summary(labels_or_table, *, per="frame", time_axis=None):
    """Number of objects per frame of a time series, or per z-slice of a stack.

    Parameters
    ----------
    labels_or_table : ndarray of int or pandas.DataFrame
        The labels or the table returned by :func:`count_cells`.
    per : {"frame", "slice"}
        ``"frame"``: one row per frame (a table's ``frame`` column, or ``time_axis`` of
        labels; one row for data without time). ``"slice"``: one row per z-slice (axis -3) of
        3D labels, counting the objects with at least one pixel in that slice; needs labels.
    time_axis : int, optional
        Time axis of ``labels`` (ignored for a table).

    Returns
    -------
    summary : pandas.DataFrame
        Columns ``frame`` and/or ``z``, then ``count``. Frames or slices without objects are
        listed with 0.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((3, 4, 4), int)
    >>> labels[0, 0, 0] = 1; labels[0:2, 2, 2] = 2
    >>> count_summary(labels, per="slice")["count"].tolist()
    [2, 1, 0]
    """
    if per not in ("frame", "slice"):
        raise ValueError(f"per must be 'frame' or 'slice', got {per!r}")
    if isinstance(labels_or_table, pd.DataFrame):
        table = labels_or_table
        if per == "slice":
            raise ValueError("per='slice' needs the label image, not the table")
        if "frame" not in table.columns:
            return pd.DataFrame({"frame": [0], "count": [len(table)]})
        n_frames = table.attrs.get("n_frames")
        n_frames = int(n_frames) if n_frames is not None else int(table["frame"].max()) + 1
        counts = np.bincount(table["frame"].to_numpy(np.int64), minlength=n_frames)
        return pd.DataFrame({"frame": np.arange(n_frames), "count": counts})

    import fastremap

    labels = check_labels(labels_or_table, name="labels")
    if time_axis is not None:
        labels = np.moveaxis(labels, time_axis, 0)
    frames = [labels] if time_axis is None else list(labels)

    def n_objects(a):
        values = fastremap.unique(np.asarray(a))
        if values[0] < 0:  # as count_cells: a negative id is no object
            raise ValueError("labels holds negative values; labels must be >= 0")
        return int(np.count_nonzero(values))

    if per == "frame":
        return pd.DataFrame(
            {"frame": np.arange(len(frames)), "count": [n_objects(f) for f in frames]}
        )
    if frames[0].ndim != 3:
        raise ValueError(
            f"per='slice' needs 3D labels (plus time_axis), got shape {labels_or_table.shape}"
        )
    rows = [(t, z, n_objects(f[z])) for t, f in enumerate(frames) for z in range(f.shape[0])]
    summary = pd.DataFrame(rows, columns=["frame", "z", "count"])
    return summary if time_axis is not None else summary.drop(columns="frame")
