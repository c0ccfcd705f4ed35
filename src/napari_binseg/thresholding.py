"""Global thresholds (Otsu, Li, Yen, triangle, ISODATA, mean, minimum, multi-Otsu) and masks.

Thresholds equal scikit-image's ``skimage.filters.threshold_<method>`` on the same data: the
histogram is computed by compiled one-pass kernels (``_histogram``) and handed to
scikit-image wherever its function accepts ``hist=``, so the arithmetic after the histogram is
scikit-image's own (Otsu and triangle differ only where a tiny minority of bright
debris is ignored, ``ignore_bright_outliers``, on by default). Integer images get one bin per
grey level over ``[min, max]``, float images ``nbins`` equal bins over ``[min, max]``, exactly
as ``skimage.exposure.histogram`` bins them.

Three scopes: one threshold for the whole array (``"image"``, Fiji's "stack histogram"), one per
2D plane (``"slice"``) or one per time point (``"frame"``, axis 0 of (T, Y, X) or (T, Z, Y, X)).
Dask arrays are read chunk by chunk (memory bounded by a chunk) and the mask stays lazy.
"""

import warnings

import numpy as np

from ._threshold_mask import compare, compare_threaded, mask_block
from ._threshold_methods import where_text
from ._threshold_noise import one_sigma, resolve_sigma, smooth, smooth_numpy, whole_planes
from ._threshold_passes import (
    PIECE,
    Progress,
    dask_passes,
    format_thresholds,
    n_units,
    numpy_units,
    run_units,
    thresholds_dask,
    thresholds_numpy,
    unit_data,
)
from ._validation import check_image, check_rgb, is_dask
from .background import remove_background, resolve_background
from .morphology import fill_holes as fill_mask_holes
from .morphology import remove_small_objects
from .options import SCOPES, THRESHOLD_METHODS, ThresholdOptions

__all__ = ["SCOPES", "THRESHOLD_METHODS", "apply_threshold", "threshold", "threshold_value"]


# --------------------------------------------------------------------------------- checks


def _check_options(image, method, scope, classes, value, sigma, nbins, **mask_options):
    """The image as the passes read it; every option checked (ranges: ``ThresholdOptions``)."""
    image = check_image(image, name="image", min_ndim=2, max_ndim=4)
    check_rgb(image, name="image")
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"method must be one of {THRESHOLD_METHODS}, got {method!r}")
    ThresholdOptions(scope=scope, value=value, sigma=sigma, **mask_options)
    if scope == "frame" and image.ndim < 3:
        raise ValueError(
            f"scope='frame' needs a time axis first, (T, Y, X) or (T, Z, Y, X); "
            f"got shape {image.shape}"
        )
    if method == "multiotsu" and (
        isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2
    ):
        raise ValueError(f"classes must be an integer >= 2 for multiotsu, got {classes!r}")
    if method == "manual" and value is None:
        raise ValueError("method='manual' needs a threshold: pass value=<number>")
    if not isinstance(nbins, (int, np.integer)) or nbins < 2:
        raise ValueError(f"nbins must be an integer >= 2, got {nbins!r}")
    if not image.dtype.isnative:
        # Big-endian data: the kernels read raw bytes (and numba refuses non-native floats).
        image = image.astype(image.dtype.newbyteorder("="))
    if image.dtype == np.float16:
        image = image.astype(np.float32)
    elif image.dtype == bool:
        image = image.view(np.uint8) if not is_dask(image) else image.astype(np.uint8)
    return image


# -------------------------------------------------------------------------- smoothing


def _smoothed(image, sigma):
    """``(data, sigmas)``: the image smoothed with the one sigma of all its units and None, or,
    where the units' sigmas differ, the image (a dask one on whole planes) and the sigmas, for
    the passes to smooth each unit with its own."""
    one = one_sigma(sigma)
    if one is not None:
        return smooth(image, one), None
    return (whole_planes(image) if is_dask(image) else image), sigma


def _mask_units_block(block, thresholds, sigmas, mode, block_info=None):
    """:func:`mask_block` of a dask block of whole planes whose units are each smoothed with
    their own sigma first."""
    out = np.zeros(block.shape, np.uint8)
    if block_info is None:  # dask's probe of the output type
        return out
    location = block_info[0]["array-location"]
    for local in np.ndindex(*block.shape[: sigmas.ndim]):
        unit = tuple(location[a][0] + i for a, i in enumerate(local))
        compare(smooth_numpy(block[local], sigmas[unit]), thresholds[unit], mode, out[local])
    return out


# --------------------------------------------------------------------------- public API


def threshold_value(
    image,
    method="otsu",
    *,
    scope="image",
    classes=3,
    sigma="auto",
    nbins=256,
    clip=None,
    ignore_bright_outliers=True,
    return_info=False,
):
    """Global threshold(s) of an image, equal to scikit-image's ``threshold_<method>``.

    Parameters
    ----------
    image : (Y, X), (Z, Y, X), (T, Y, X) or (T, Z, Y, X) array-like
        Intensity image, numpy or dask (read chunk by chunk). NaN values are ignored.
    method : {"otsu", "li", "yen", "triangle", "isodata", "mean", "minimum", "multiotsu"}
        Thresholding method (``"manual"`` has no value to compute; see ``threshold``).
    scope : {"image", "slice", "frame"}
        One threshold for the whole array, one per 2D plane (last two axes), or one per index
        of axis 0 (time).
    classes : int
        Number of classes for ``"multiotsu"`` (it returns ``classes - 1`` thresholds).
    sigma : "auto" or float
        Gaussian smoothing (pixels) in the last two axes before thresholding; 0 for none.
        Integer images are smoothed into float32. ``"auto"`` (default): 1, 2 or 4 px where
        the image is noisy against its contrast, else none (a clean image thresholds as with
        0) (``napari_binseg._threshold_noise``). Scope ``"image"``: one sigma, measured on
        the whole image or on up to 8 evenly spaced planes of a stack; ``"slice"`` /
        ``"frame"``: each plane / frame measured and smoothed alone, as it would be on its
        own (a noisy or bleached frame of a clean time series is smoothed, the others not).
    nbins : int
        Histogram bins for float images (integer images use one bin per grey level).
    clip : float, optional
        A percentile (e.g. 99): for Otsu, multi-Otsu and ISODATA, intensities above it count
        as that percentile, so a few saturated particles cannot pull the threshold above the
        nuclei. Works on the histogram of an integer image (no extra pass); a float image
        is binned again up to the percentile. None (default): off.
    ignore_bright_outliers : bool
        Otsu and triangle, per unit: when at most 1 % of the pixels lie above the
        threshold, the pixels below it are clearly two classes and the foreground found among
        them is at least twice as large, those few were bright debris (saturated specks):
        the threshold is that of the pixels below
        (:func:`napari_binseg.background.ignore_bright_outliers`). A few bright nuclei on a
        plain background keep the plain threshold. Works on the histogram; a float image
        where the rule applies is binned again below the first threshold (one more pass).
        Default on.
    return_info : bool
        Also return a dict: ``bright_outliers`` maps each unit where the rule fired
        (``"image"``, ``"slice 3"``, ``"frame 0"``) to its ``first_threshold`` and the
        ``pixels`` and ``fraction`` above it; empty when it never fired. ``sigma``: the
        smoothing that ran (px); ``noise_ratio``: what ``"auto"`` measured (None for a
        number). With ``"auto"`` and scope ``"slice"`` / ``"frame"`` of a stack both are
        arrays of one value per plane / frame, shaped as the thresholds.

    Returns
    -------
    threshold : float or ndarray
        A float for ``scope="image"``; for ``"slice"`` / ``"frame"`` an array with one value
        per plane / frame (shape ``image.shape[:-2]`` / ``image.shape[:1]``). Multi-Otsu adds a
        last axis of ``classes - 1`` thresholds. In a stack, a plane that is constant gets its
        value (nothing above it) and an all-NaN plane gets NaN.
    info : dict
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        Unknown method or scope, RGB, empty, constant or all-NaN images, infinite values.

    Notes
    -----
    Integer images get one histogram bin per grey level over ``[min, max]`` and float images
    ``nbins`` equal bins, as ``skimage.exposure.histogram``; the counting runs in a compiled
    one-pass kernel and the method itself is scikit-image's, given that histogram. Li and mean
    of float images use the values themselves (as scikit-image does), which loads a dask
    array one unit at a time. Multi-Otsu on integer images spanning more than 4096 grey levels
    uses ``nbins`` bins (scikit-image's table would need gigabytes).

    References
    ----------
    .. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans.
           Syst. Man Cybern. 9(1): 62-66, 1979. :DOI:`10.1109/TSMC.1979.4310076`
    .. [2] M. Sezgin and B. Sankur, "Survey over image thresholding techniques and
           quantitative performance evaluation", J. Electron. Imaging 13(1): 146-165, 2004.
           :DOI:`10.1117/1.1631315`

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((8, 8), np.uint8); image[2:5, 2:5] = 200; image[0, 0] = 20
    >>> threshold_value(image)
    20.0
    """
    image = _check_options(
        image,
        method,
        scope,
        classes,
        None,
        sigma,
        nbins,
        clip=clip,
        ignore_bright_outliers=ignore_bright_outliers,
    )
    if method == "manual":
        raise ValueError("method='manual' has no threshold to compute; pass value= to threshold()")
    sigma, ratio = resolve_sigma(image, sigma, scope=scope)
    image, sigmas = _smoothed(image, sigma)
    notes = {}
    rules = {"clip": clip, "outliers": ignore_bright_outliers, "notes": notes, "sigmas": sigmas}
    passes = thresholds_dask if is_dask(image) else thresholds_numpy
    thresholds = passes(image, method, scope, classes, nbins, Progress(None, 1), **rules)
    thresholds = format_thresholds(thresholds, method, scope)
    return (thresholds, _info(notes, sigma, ratio)) if return_info else thresholds


def _info(notes, sigma, ratio):
    """The ``info`` dict of :func:`threshold_value` and :func:`threshold`."""
    return {"bright_outliers": dict(sorted(notes.items())), "sigma": sigma, "noise_ratio": ratio}


def _steps(data, sigmas, method, scope, n_unit_count, post):
    """Progress steps of the threshold passes over ``data`` and of its mask."""
    if is_dask(data):
        blocks = int(np.prod(data.numblocks))
        return (0 if method == "manual" else dask_passes(data, sigmas) * blocks) + 1
    if scope != "image":
        return n_unit_count
    pieces = -(-data.size // PIECE)
    passes = dask_passes(data)  # same rule: 8/16-bit integers need one read
    return (0 if method == "manual" else passes * pieces) + 1 + post


#: A unit whose foreground is under this share of its pixels was likely thresholded by a few
#: very bright pixels (a speck 1000x brighter than 16-bit nuclei squeezes them all into Otsu's
#: lowest bin when the bright-outlier rule cannot tell the rest apart): said, not silent.
FEW_FOREGROUND = 1e-4


class FewForegroundPixels(UserWarning):
    """The threshold left almost no foreground: a few very bright pixels probably set it."""


def _warn_few(few, method):
    """Warn once for the units of ``few`` (``{where: (threshold, pixels, size)}``)."""
    if not few:
        return
    where = ", ".join(sorted(few)[:5]) + (f" and {len(few) - 5} more" if len(few) > 5 else "")
    t, n, size = next(iter(few.values()))
    warnings.warn(
        f"{where}: the {method} threshold ({t:g}) leaves {n} of {size} pixels as foreground: "
        "a few very bright pixels probably set it; clip 99.9 (--clip 99.9) ignores them",
        FewForegroundPixels,
        stacklevel=3,
    )


def _postprocess(mask, fill_holes, min_size):
    """Fill holes and remove small objects of one mask unit, in place."""
    if fill_holes:
        fill_mask_holes(mask)
    if min_size > 1:
        remove_small_objects(mask, int(min_size))
    return mask


def _postprocess_units(mask, scope, fill_holes, min_size):
    """Post-process a numpy mask unit by unit (planes, frames or the whole array)."""
    for _, unit in numpy_units(mask, scope):
        _postprocess(unit, fill_holes, min_size)  # unit is a view: in place
    return mask


def threshold(
    image,
    method="otsu",
    *,
    scope="image",
    value=None,
    classes=3,
    sigma="auto",
    invert=False,
    fill_holes=False,
    min_size=0,
    clip=None,
    ignore_bright_outliers=True,
    background=None,
    return_thresholds=False,
    return_info=False,
    progress=None,
):
    """Binary mask (or multi-Otsu classes) of an image by a global threshold.

    Parameters
    ----------
    image : (Y, X), (Z, Y, X), (T, Y, X) or (T, Z, Y, X) array-like
        Intensity image, numpy or dask. It is never modified.
    method : str
        One of ``THRESHOLD_METHODS``; ``"manual"`` uses ``value``.
    scope : {"image", "slice", "frame"}
        One threshold for the whole array, one per 2D plane, or one per time point (axis 0).
        Hole filling and small-object removal work per unit too: per plane, per frame, or on
        the whole N-D array.
    value : float, optional
        The threshold for ``method="manual"``.
    classes : int
        Number of classes for ``"multiotsu"``.
    sigma : "auto" or float
        Gaussian smoothing (pixels) in the last two axes before thresholding, 0 for none;
        ``"auto"`` (default) as in :func:`threshold_value` (per plane / frame with scope
        ``"slice"`` / ``"frame"``), measured on the image to threshold (after
        ``background``; with ``invert``, the background is the bright class).
    invert : bool
        Foreground is ``image <= t`` (dark objects on a bright background).
    fill_holes : bool
        Fill background regions enclosed by foreground (face connectivity).
    min_size : int
        Remove foreground objects (face connectivity) of fewer than ``min_size`` pixels.
    clip : float, optional
        A percentile (e.g. 99): for Otsu, multi-Otsu and ISODATA, intensities above it count
        as that percentile, so a few saturated particles cannot pull the threshold above the
        nuclei. Works on the histogram of an integer image (no extra pass); a float image
        is binned again up to the percentile. None (default): off.
    ignore_bright_outliers : bool
        Otsu and triangle: a tiny bright minority of debris above the threshold is ignored,
        as in :func:`threshold_value` (default on); the debris stays foreground.
    background : "uneven", "auto", float or None
        Subtract an uneven background first: a grey opening by a disc
        (:func:`napari_binseg.background.remove_background`), plane by plane; ``"auto"`` sizes
        the disc at 1.5 nucleus diameters estimated on a first Otsu mask, a number is its
        radius in pixels, None (default) is off. ``"uneven"``: ``"auto"`` where the background
        measured on a sample of pixels is uneven against the nucleus contrast
        (:func:`napari_binseg.background.unevenness`), else off (the mask bit-identical), and
        off for ``"manual"`` (its ``value`` is in the image's intensities). The threshold
        (``return_thresholds``) is then one of the corrected image.
    return_thresholds : bool
        Also return the threshold(s), as ``threshold_value`` gives them.
    return_info : bool
        Also return (last) the ``info`` dict of :func:`threshold_value`: where bright
        outliers were ignored, the ``sigma`` that ran and the ``noise_ratio`` measured (per
        plane / frame, as there), the ``background`` radius (px) subtracted (None: none) and
        the ``unevenness`` that ``"uneven"`` measured (None for the other values).
    progress : callable, optional
        ``progress(done, total)``, called per piece, plane or frame; raise in it to cancel.

    Returns
    -------
    mask : uint8 ndarray or dask array, shape of ``image``
        1 where ``image > t`` (``image <= t`` if ``invert``), else 0; NaN is 0. Multi-Otsu
        gives class labels ``0 .. classes - 1`` (``np.digitize(image, thresholds)``). A dask
        input gives a lazy dask mask with the same chunks (rechunked to whole units when
        ``fill_holes`` or ``min_size`` are used).
    thresholds : float or ndarray
        Only with ``return_thresholds=True``.
    info : dict
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        Bad options, RGB, empty, constant or all-NaN images.

    References
    ----------
    .. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans.
           Syst. Man Cybern. 9(1): 62-66, 1979. :DOI:`10.1109/TSMC.1979.4310076`

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((6, 6), np.uint8); image[1:5, 1:5] = 200; image[2, 2] = 10
    >>> int(threshold(image, fill_holes=True).sum())
    16
    """
    image = _check_options(
        image,
        method,
        scope,
        classes,
        value,
        sigma,
        256,
        invert=invert,
        fill_holes=fill_holes,
        min_size=min_size,
        clip=clip,
        ignore_bright_outliers=ignore_bright_outliers,
        background=background,
    )
    chunks = image.chunks if is_dask(image) else None
    background, uneven = resolve_background(image, background, invert=invert, method=method)
    radius = None
    if background is not None:
        image, radius = remove_background(image, background, invert=invert, return_radius=True)
        invert = False  # bright objects now
    if method == "multiotsu" and (fill_holes or min_size):
        raise ValueError("fill_holes and min_size apply to binary masks, not multiotsu classes")
    mode = 2 if method == "multiotsu" else (1 if invert else 0)
    post = bool(fill_holes) or min_size > 1
    units = n_units(image.shape, scope)
    n_unit_count = int(np.prod(units)) if units else 1
    # A step per plane / frame that "auto" measures alone (a lazy stack: all of it is read),
    # then those of the passes (for a lazy stack estimated until its sigmas are known).
    measured = n_unit_count if units and sigma == "auto" else 0
    steps = (method, scope, n_unit_count, post)
    progress_ = Progress(progress, measured + _steps(image, None, *steps))
    sigma, ratio = resolve_sigma(image, sigma, invert=invert, scope=scope, progress=progress_)
    data, sigmas = _smoothed(image, sigma)
    progress_.more(_steps(data, sigmas, *steps))
    notes = {}
    rules = {"clip": clip, "outliers": ignore_bright_outliers, "notes": notes, "sigmas": sigmas}

    if is_dask(data):
        if method == "manual":
            thresholds = np.full(units + (1,), float(value))
        else:
            thresholds = thresholds_dask(data, method, scope, classes, 256, progress_, **rules)
        if sigmas is None:
            mask = data.map_blocks(mask_block, thresholds, scope, mode, dtype=np.uint8)
        else:
            mask = data.map_blocks(_mask_units_block, thresholds, sigmas, mode, dtype=np.uint8)
        if not post and mask.chunks != chunks:  # smoothing worked on whole planes
            mask = mask.rechunk(chunks)
        if post:
            lead = len(units)
            whole = mask.chunks[:lead] + (-1,) * (mask.ndim - lead)
            mask = mask.rechunk(whole).map_blocks(
                _postprocess_units, scope, fill_holes, min_size, dtype=np.uint8
            )
        result = mask
    else:
        mask = np.empty(image.shape, np.uint8)
        few = {}

        def per_unit(index, unit, t, serial):
            target = mask[index]
            if serial:  # already one of several threads
                compare(unit, t, mode, target)
            else:
                compare_threaded(unit, t, mode, target)
            n = np.count_nonzero(target)
            # n 0: no speck either (a blank or all-NaN plane or frame has nothing to find).
            if method not in ("manual", "multiotsu") and 0 < n < FEW_FOREGROUND * target.size:
                few[where_text(scope, index)] = (float(np.ravel(t)[0]), n, target.size)
            if post:
                _postprocess(target, fill_holes, min_size)

        if method == "manual":
            thresholds = np.full(units + (1,), float(value))
            if scope == "image":
                per_unit((), data, thresholds[()], False)
            else:
                indices = list(np.ndindex(*units))
                run_units(
                    lambda i: per_unit(i, unit_data(data, i, sigmas), thresholds[i], True),
                    indices,
                    progress_,
                )
        else:
            thresholds = thresholds_numpy(
                data, method, scope, classes, 256, progress_, per_unit=per_unit, **rules
            )
        progress_.finish()
        _warn_few(few, method)
        result = mask
    out = (result,)
    if return_thresholds:
        out += (format_thresholds(thresholds, method if method == "multiotsu" else "", scope),)
    if return_info:
        out += (_info(notes, sigma, ratio) | {"background": radius, "unevenness": uneven},)
    return out if len(out) > 1 else result


def apply_threshold(
    image,
    thresholds,
    *,
    classes=False,
    sigma="auto",
    invert=False,
    fill_holes=False,
    min_size=0,
):
    """Mask (or classes) of an image at given threshold(s), made as :func:`threshold` makes it.

    For thresholds computed elsewhere, e.g. on a whole stack and applied to the one plane on
    screen (the Threshold widget's preview): the same smoothing (float32, or float64 for
    float64 data; NaN-aware), the same exact comparison in the data's dtype, NaN as
    background, and the same hole filling and small-object removal.

    Parameters
    ----------
    image : (Y, X), (Z, Y, X), (T, Y, X) or (T, Z, Y, X) array-like
        Intensity image (a dask array is loaded). It is never modified.
    thresholds : float or sequence of float
        One threshold, or the ``classes - 1`` thresholds of multi-Otsu.
    classes : bool
        Class labels ``0 .. len(thresholds)`` (``np.digitize``) instead of a binary mask.
    sigma, invert, fill_holes, min_size
        As in :func:`threshold`; ``"auto"`` measures ``image`` itself: pass the ``sigma`` a
        run reported to smooth a plane of a stack as that run did (``info["sigma"]``, or
        ``info["sigma"][i]`` for plane / frame ``i`` where the run measured each alone).

    Returns
    -------
    mask : uint8 ndarray, shape of ``image``
        1 where ``image > t`` (``image <= t`` if ``invert``), else 0; or the classes.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.array([[0.0, 1.0, 2.0, np.nan]])
    >>> apply_threshold(image, 0.5).tolist()
    [[0, 1, 1, 0]]
    >>> apply_threshold(image, [0.5, 1.5], classes=True).tolist()
    [[0, 1, 2, 0]]
    """
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or t.size == 0 or (not classes and t.size != 1):
        raise ValueError(
            f"thresholds must be one number (or a list with classes=True), got {thresholds!r}"
        )
    if classes and (fill_holes or min_size):
        raise ValueError("fill_holes and min_size apply to binary masks, not multiotsu classes")
    image = _check_options(
        image,
        "multiotsu" if classes else "manual",
        "image",
        t.size + 1,
        float(t[0]) if np.isfinite(t[0]) else 0.0,  # NaN (an all-NaN plane): all background
        sigma,
        256,
        invert=invert,
        fill_holes=fill_holes,
        min_size=min_size,
    )
    image = np.asarray(image)
    data = smooth_numpy(image, resolve_sigma(image, sigma, invert=invert)[0])
    mask = np.empty(data.shape, np.uint8)
    compare_threaded(data, t, 2 if classes else (1 if invert else 0), mask)
    if not classes:
        _postprocess(mask, fill_holes, min_size)
    return mask
