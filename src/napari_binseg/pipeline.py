"""The segment-and-count pipeline as one function.

:func:`run_pipeline` runs a :class:`~napari_binseg.settings.PipelineSettings` on a numpy array
in memory or on a dask array chunk by chunk (bigger than memory, or on a dask.distributed
cluster: the work is a dask graph, computed by whatever scheduler is active). The settings
live in :mod:`napari_binseg.settings`, the batch over files in :mod:`napari_binseg.batch`;
their public names are importable from here too, as in napari-binseg 0.1.
"""

import numpy as np

from ._validation import is_dask
from .axes import resolve_axes, resolve_spacing
from .batch import open_image, output_names, processing_chunks, segment_file, segment_files
from .options import PIPELINE_METHODS
from .settings import (
    SETTINGS_VERSION,
    CountSettings,
    PipelineSettings,
    ThresholdSettings,
    UNetSettings,
    migrate_settings,
)

__all__ = [
    "PIPELINE_METHODS",
    "SETTINGS_VERSION",
    "CountSettings",
    "PipelineSettings",
    "ThresholdSettings",
    "UNetSettings",
    "migrate_settings",
    "open_image",
    "outliers_note",
    "output_names",
    "processing_chunks",
    "resolve_image_axes",
    "run_pipeline",
    "segment_file",
    "segment_files",
]


def resolve_image_axes(settings, ndim, axes=None):
    """``(axes, time_axis)`` of an ``ndim``-D image run with ``settings``.

    ``axes`` (else ``settings.axes``, else the default for ``ndim``) says what each axis is;
    the legacy ``count.time_axis`` names the time axis of settings without axes.

    Raises
    ------
    ValueError
        Axes that do not fit the image, or a ``count.time_axis`` that contradicts them.
    """
    given = axes if axes is not None else settings.axes
    time_axis = settings.count.time_axis
    if time_axis is not None and not -ndim <= time_axis < ndim:
        raise ValueError(f"count.time_axis {time_axis} is not an axis of a {ndim}D image")
    if given is None and time_axis is not None:
        return None, time_axis % ndim
    axes = resolve_axes(given, ndim)
    if time_axis is not None and time_axis % ndim != axes.find("T"):
        raise ValueError(f"count.time_axis {time_axis} contradicts axes {axes!r}")
    return axes, (0 if axes.startswith("T") else None)


def run_pipeline(image, settings=None, *, axes=None, spacing=None):
    """Segment and count the nuclei of one image: labels and a table of objects.

    A threshold method thresholds ``image`` and counts the mask with
    :func:`napari_binseg.count_cells`; ``"unet"`` segments it with
    :func:`napari_binseg.segment` and measures (and size/border filters) the instances.

    A **dask** image is processed chunk by chunk with a threshold method: a global histogram,
    connected components joined across chunk borders, per-chunk measurements; memory follows
    the chunk size, and the returned labels stay lazy (store them with
    :func:`napari_binseg.io.write_zarr`). Splitting touching nuclei and hole filling need whole
    objects in memory and are refused there; the labels equal those of a numpy run up to their
    numbering. The U-Net reads a dask image plane by plane, but its labels and the measurement
    need the image in memory (``segment_file`` refuses it above its memory limit).

    Parameters
    ----------
    image : (Y, X), (Z, Y, X), (T, Y, X) or (T, Z, Y, X) ndarray or dask array
        Single-channel intensities; never modified.
    settings : PipelineSettings, optional
        Default ``PipelineSettings()`` (Otsu, then ``count_cells`` defaults).
    axes : str, optional
        ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``; default ``settings.axes``, else 2D
        ``"YX"``, 3D ``"ZYX"`` (a z-stack), 4D ``"TZYX"``. Frames of a time series are
        counted on their own.
    spacing : sequence of float, optional
        Pixel size of the spatial axes (a value for the time axis is dropped).

    Returns
    -------
    labels : ndarray or dask array (lazy, for a dask image with a threshold method)
        Objects ``1..n``, uint16 below 65536 objects, else uint32 (as
        :func:`napari_binseg.count_cells`).
    table : pandas.DataFrame
        One row per object, as :func:`napari_binseg.count_cells` gives it (its ``attrs``
        hold the estimated nucleus ``diameter`` where the count gives one and, for a
        threshold method, ``bright_outliers``: where the threshold ignored a few bright
        pixels, ``threshold_sigma``: the smoothing that ran and ``noise_ratio``: what
        ``sigma="auto"`` measured (lists, one value a plane / frame, with scope ``"slice"`` /
        ``"frame"``), ``threshold_background``: the radius of the background subtraction
        that ran (None: none) and ``unevenness``: what ``background="uneven"`` measured, as
        ``threshold(..., return_info=True)`` reports them).

    Raises
    ------
    ValueError
        Invalid settings or image, or options a chunked run cannot honour.

    Examples
    --------
    >>> from napari_binseg import synthetic_nuclei
    >>> image = synthetic_nuclei((64, 64), n=6, seed=1)[0]
    >>> s = PipelineSettings("otsu", count={"split_touching": False})
    >>> labels, table = run_pipeline(image, s)
    >>> int(labels.max()) == len(table)
    True
    """
    from .counting import count_cells
    from .thresholding import threshold

    settings = PipelineSettings() if settings is None else settings
    if not isinstance(settings, PipelineSettings):
        raise ValueError(f"settings must be PipelineSettings, got {type(settings).__name__}")
    c = settings.count
    axes, time_axis = resolve_image_axes(settings, np.ndim(image), axes)
    if spacing is not None:
        spacing = resolve_spacing(spacing, axes or ("T" + "ZYX"[-(np.ndim(image) - 1) :]))
    # The count's own time_axis (or axes) argument says which axis is time.
    count_kwargs = {**c.to_dict(), "time_axis": time_axis}

    if settings.method == "unet":
        from .unet.inference import segment

        u = settings.unet.to_dict()
        if axes is not None:
            u |= {"axes": axes, "spacing": spacing}
        instances = segment(image, **u)
        count_kwargs |= {"split_touching": False, "fill_holes": False}
        return count_cells(instances, np.asarray(image), spacing=spacing, **count_kwargs)

    t = settings.threshold
    chunked = is_dask(image)
    if chunked and (c.split_touching or c.fill_holes):
        raise ValueError(
            "count.split_touching and count.fill_holes need whole objects in memory: set both "
            "to false to process an image in chunks"
        )
    if chunked and t.scope == "image" and (t.fill_holes or t.min_size > 1):
        raise ValueError(
            "threshold.fill_holes and threshold.min_size with scope 'image' need the whole "
            "image in memory: use scope 'slice' or count.min_size to process it in chunks"
        )
    mask, info = threshold(image, settings.method, **t.to_dict(), return_info=True)
    if not chunked:
        labels, table = count_cells(mask, image, spacing=spacing, **count_kwargs)
    else:
        labels, table = _count_chunked(mask, image, c, spacing, time_axis)
    table.attrs["bright_outliers"] = info["bright_outliers"]
    # Per plane or frame ("auto" with scope slice / frame): lists (JSON, and tables whose
    # attrs pandas compares on concat).
    table.attrs["threshold_sigma"] = np.asarray(info["sigma"]).tolist()
    table.attrs["noise_ratio"] = np.asarray(info["noise_ratio"]).tolist()
    table.attrs["threshold_background"] = info["background"]
    table.attrs["unevenness"] = info["unevenness"]
    return labels, table


def outliers_note(outliers: dict) -> str:
    """ "ignored 288 bright pixels above 60: debris" where a threshold ignored a few bright
    outliers (the ``bright_outliers`` of ``threshold(..., return_info=True)``), else ""."""
    if not outliers:
        return ""
    if list(outliers) == ["image"]:
        pixels, above = outliers["image"]["pixels"], outliers["image"]["first_threshold"]
        return f"ignored {pixels} bright pixels above {above:.4g}: debris"
    units = ", ".join(list(outliers)[:4]) + (" ..." if len(outliers) > 4 else "")
    return f"ignored bright debris in {units}"


def smoothing_note(sigma, ratio, scope="image") -> str:
    """ "smoothed with sigma 2 px (noise ratio 0.81)" where ``sigma="auto"`` smoothed a noisy
    image (the ``sigma`` and ``noise_ratio`` of ``threshold(..., return_info=True)``), else
    "". Per plane or frame (sequences; ``scope`` names them), which ones (the first 4):
    "smoothed 2 of 8 frames with sigma 1-2 px (noise ratio 0.62-1.07): frames 6, 7"; a plane
    of a time series of z-stacks is named (frame, plane)."""
    if ratio is None:
        return ""
    if np.ndim(sigma) == 0:
        return f"smoothed with sigma {sigma:g} px (noise ratio {ratio:.2f})" if sigma else ""
    where = np.argwhere(np.asarray(sigma) > 0).tolist()
    names = [str(i[0] if len(i) == 1 else tuple(i)) for i in where]
    sigma, ratio = np.ravel(sigma), np.ravel(ratio)
    smoothed = sigma > 0
    if not smoothed.any():
        return ""
    units = "frames" if scope == "frame" else "planes"
    sigmas = "-".join(dict.fromkeys(f"{s:g}" for s in np.sort(sigma[smoothed])[[0, -1]]))
    ratios = "-".join(dict.fromkeys(f"{r:.2f}" for r in np.sort(ratio[smoothed])[[0, -1]]))
    named = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    return (
        f"smoothed {smoothed.sum()} of {sigma.size} {units} with sigma {sigmas} px "
        f"(noise ratio {ratios}): {units} {named}"
    )


def background_note(radius, unevenness) -> str:
    """ "background subtracted (radius 42 px, unevenness 0.83)" where ``background="uneven"``
    subtracted an uneven background (the ``background`` and ``unevenness`` of
    ``threshold(..., return_info=True)``), else ""."""
    if radius is None or unevenness is None:
        return ""
    return f"background subtracted (radius {radius:.0f} px, unevenness {unevenness:.2f})"


def _count_chunked(mask, image, c, spacing, time_axis):
    from ._chunked_label import label_and_measure
    from .measure import check_spacing
    from .morphology import resolve_connectivity

    mask = mask.rechunk(image.chunks)
    if time_axis is not None:
        mask, image = np.moveaxis(mask, time_axis, 0), np.moveaxis(image, time_axis, 0)
    spatial = mask.ndim - (time_axis is not None)
    if spatial not in (2, 3):
        raise ValueError(
            f"image must be 2D or 3D (plus count.time_axis), got shape {tuple(mask.shape)}"
        )
    labels, table = label_and_measure(
        mask,
        image,
        spacing=check_spacing(spacing, spatial),
        connectivity=resolve_connectivity(c.connectivity, spatial)[1],
        min_size=c.min_size,  # None: a tenth of a nucleus, its size measured on a few chunks
        max_size=c.max_size,
        exclude_border=c.exclude_border,
        time=time_axis is not None,
        diameter=c.diameter,
    )
    if time_axis is not None:
        labels = np.moveaxis(labels, 0, time_axis)
    return labels, table
