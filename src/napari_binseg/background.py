"""Threshold-side helpers that follow the nucleus size: background subtraction and a clip of
saturated debris before a global threshold.

- :func:`subtract_background`: an uneven background (vignetting, out-of-focus haze) is the
  grey opening of the image by a disc larger than a nucleus (the rolling-ball idea of
  Sternberg 1983), computed on a grid subsampled to the nucleus size so its cost does not
  grow with the magnification.
- :func:`unevenness` (``background="uneven"``, opt-in): whether the background is uneven
  enough to subtract, measured on a sample of pixels (no filter over the image): the spread of
  block-wise background levels against the nucleus contrast, counting only blocks that hold
  some background. 417 of 420 clean real images keep their mask, but small crops of 63x
  images that are mostly background still read as uneven (and the subtraction then hurts
  them): not the default for that reason.
- :func:`clip_bright`: a few saturated debris particles pull a global Otsu threshold above the
  nuclei; clipping the intensities at a high percentile first leaves the nuclei/background
  split to the bulk of the pixels.
- :func:`ignore_bright_outliers` (on by default): the same problem solved without a fixed
  percentile. When a threshold leaves only a tiny bright minority above it and the pixels
  below it are clearly bimodal, that minority was debris: threshold the rest again.
"""

import numpy as np

#: Radius of the background structuring element, in nucleus diameters: larger than a nucleus
#: (and than two touching ones), smaller than the background's variations.
BACKGROUND_RADIUS = 1.5
#: Default percentile of :func:`clip_bright`: debris may cover up to 0.5 % of the image.
CLIP_PERCENTILE = 99.5


def clip_bright(image, percentile=CLIP_PERCENTILE):
    """The image with values above the ``percentile``-th percentile set to it.

    Parameters
    ----------
    image : ndarray
        Intensity image (any dimensionality); not modified.
    percentile : float
        In (0, 100].

    Returns
    -------
    clipped : ndarray, same dtype and shape

    Examples
    --------
    >>> import numpy as np
    >>> img = np.arange(1000, dtype=np.uint16); img[-3:] = 65535
    >>> int(clip_bright(img).max())
    995
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    image = np.asarray(image)
    # A subsample is enough for a high percentile of a large image, and 10x cheaper.
    flat = image.ravel()
    sample = flat[:: max(1, flat.size // 1_000_000)]
    top = np.percentile(sample, percentile, method="higher")
    return np.minimum(image, np.asarray(top, image.dtype))


def _linear_weights(n_small, f, n):
    """Indices and weights of linear interpolation from block centres to ``n`` pixels."""
    pos = np.clip((np.arange(n) + 0.5) / f - 0.5, 0, n_small - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_small - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def _upsample_linear(small, f, h, w):
    """``scipy.ndimage.zoom(small, f, order=1, mode="nearest", grid_mode=True)[:h, :w]``,
    separably and in float32 (a few times faster)."""
    ylo, yhi, wy = _linear_weights(small.shape[0], f, h)
    xlo, xhi, wx = _linear_weights(small.shape[1], f, w)
    rows = small[ylo] * (1 - wy)[:, None] + small[yhi] * wy[:, None]
    return rows[:, xlo] * (1 - wx) + rows[:, xhi] * wx


def _nan_block_means(blocks):
    """Means of the (m, f, n, f) ``blocks`` over their pixels that are not NaN; a block of
    NaN only takes the largest mean, which the opening's erosion passes over (a NaN would
    spread over the disc and blank the threshold around a hole)."""
    valid = ~np.isnan(blocks)
    counts = valid.sum(axis=(1, 3))
    means = np.where(valid, blocks, 0).sum(axis=(1, 3)) / np.maximum(counts, 1)
    means[counts == 0] = means[counts > 0].max() if counts.any() else 0
    return means


def subtract_background(image, diameter, *, spacing=None, radius=None):
    """Remove a smooth, uneven background whose scale follows the nucleus size.

    Parameters
    ----------
    image : (M, N) or (P, M, N) ndarray
        Intensity image; 3D stacks are processed plane by plane. Not modified.
    diameter : float
        Typical nucleus diameter (pixels, or physical units with ``spacing``), e.g. from
        :func:`napari_binseg.size.estimate_diameter` on a first threshold.
    spacing : sequence of float, optional
        Pixel size ``(dy, dx)`` or ``(dz, dy, dx)``; only y and x are used.
    radius : float, optional
        Radius of the opening disc, same units as ``diameter``; default
        ``BACKGROUND_RADIUS * diameter``.

    Returns
    -------
    corrected : ndarray of float32, same shape
        ``image - background`` (>= 0); NaN where the image is NaN (left out of the
        background).

    References
    ----------
    .. [1] Sternberg SR (1983). Biomedical image processing. Computer 16(1): 22-34.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = (xx / 2.0 + 100 * ((yy - 64) ** 2 + (xx - 64) ** 2 < 64)).astype(np.float32)
    >>> out = subtract_background(img, 16)
    >>> bool(out[64, 64] > 90 and out[10, 40] < 5)
    True
    """
    from scipy import ndimage as ndi

    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2D or 3D, got shape {image.shape}")
    if not (np.isfinite(diameter) and diameter > 0):
        raise ValueError(f"diameter must be > 0, got {diameter!r}")
    dx = 1.0 if spacing is None else float(np.asarray(spacing, float)[-1])
    r_px = (BACKGROUND_RADIUS * diameter if radius is None else radius) / dx
    # Work where the disc is ~8 px across: the background is smooth at that scale.
    f = max(1, int(r_px // 4))
    r_small = max(1, int(round(r_px / f)))
    yy, xx = np.mgrid[-r_small : r_small + 1, -r_small : r_small + 1]
    disc = yy**2 + xx**2 <= r_small**2
    planes = image[None] if image.ndim == 2 else image
    out = np.empty(planes.shape, np.float32)
    for i, plane in enumerate(planes):
        plane = plane.astype(np.float32)
        h, w = plane.shape
        ph, pw = -(-h // f) * f, -(-w // f) * f
        padded = np.pad(plane, ((0, ph - h), (0, pw - w)), mode="edge")
        # Block means: the opening below removes the nuclei, whatever their blocks hold.
        blocks = padded.reshape(ph // f, f, pw // f, f)
        small = blocks.mean(axis=(1, 3))
        if np.isnan(small).any():
            small = _nan_block_means(blocks)
        bg = ndi.grey_opening(small, footprint=disc, mode="nearest")
        bg = ndi.uniform_filter(bg, size=3, mode="nearest")
        if f > 1:
            bg = _upsample_linear(bg, f, h, w)
        out[i] = np.maximum(plane - bg[:h, :w], 0)
    return out[0] if image.ndim == 2 else out


#: Methods whose threshold a few very bright pixels can move (between-class variance or class
#: means): their histogram is clipped by :func:`clip_histogram` when ``clip`` is on.
CLIP_METHODS = ("otsu", "multiotsu", "isodata")


def clip_histogram(counts, centers, percentile):
    """A histogram with the values above its ``percentile``-th percentile moved to that bin.

    The histogram form of :func:`clip_bright`: no pass over the image, same effect on a
    threshold computed from the histogram. The histogram is returned unchanged when the clip
    would leave fewer than two occupied bins.

    Parameters
    ----------
    counts : (n,) ndarray of int
        Histogram counts.
    centers : (n,) ndarray
        Bin centres, increasing.
    percentile : float
        In (0, 100].

    Returns
    -------
    counts, centers : ndarrays, truncated after the percentile's bin.

    Examples
    --------
    >>> import numpy as np
    >>> c, x = clip_histogram(np.array([50, 40, 9, 0, 1]), np.arange(5), 99)
    >>> c.tolist(), x.tolist()
    ([50, 40, 10], [0, 1, 2])
    """
    counts = np.asarray(counts)
    cum = np.cumsum(counts)
    total = cum[-1]
    k = int(np.searchsorted(cum, percentile / 100.0 * total))
    if k >= counts.size - 1 or np.count_nonzero(counts[: k + 1]) < 2:
        return counts, centers
    clipped = counts[: k + 1].copy()
    clipped[k] += total - cum[k]
    return clipped, centers[: k + 1]


#: The ``"auto"`` size estimate first flattens the plane with a disc of this fraction of its
#: larger side: a strong gradient would otherwise make one huge first-mask object.
FLATTEN_FRACTION = 1 / 8


def _levels(corrected):
    """``corrected`` (>= 0, of an integer image) rounded to uint16 when it fits: its histogram
    is then one bin per grey level, counted in one pass (the size estimate's first mask needs
    no more)."""
    if corrected.size and float(corrected.max()) <= 65535:
        return np.rint(corrected).astype(np.uint16)
    return corrected


def _plane_diameter(image, *, integer=False):
    """Typical nucleus diameter (pixels) of the middle plane's Otsu mask (smoothed as
    ``sigma="auto"`` decides); 0.0 if none. Only that plane is read (a dask stack stays lazy).
    ``integer``: the values were integers (rounding the flattened plane loses nothing)."""
    from .size import estimate_diameter
    from .thresholding import threshold

    lead = image.shape[:-2]
    index = np.unravel_index(int(np.prod(lead)) // 2, lead) if lead else ()
    plane = np.asarray(image[index])
    radius = FLATTEN_FRACTION * max(plane.shape)
    plane = subtract_background(plane, radius / BACKGROUND_RADIUS, radius=radius)
    if integer:
        plane = _levels(plane)
    try:
        # The mask of the image the threshold was computed on (smoothed where noisy).
        mask = threshold(plane, background=None)
    except ValueError:  # a constant plane
        return 0.0
    return estimate_diameter(mask.view(bool))


def _subtract_planes(block, diameter, radius):
    """:func:`subtract_background` of every (Y, X) plane of ``block`` (any leading axes)."""
    planes = block.reshape((-1,) + block.shape[-2:])
    return subtract_background(planes, diameter, radius=radius).reshape(block.shape)


def remove_background(image, background, *, invert=False, return_radius=False):
    """The image a global threshold sees when ``background`` subtraction is on.

    Parameters
    ----------
    image : (Y, X), (Z, Y, X), (T, Y, X) or (T, Z, Y, X) ndarray or dask array
        Intensity image; not modified. Planes are corrected one by one (a dask array lazily,
        in whole-plane chunks, with the values numpy gives).
    background : "auto" or float
        ``"auto"``: the disc radius is ``BACKGROUND_RADIUS`` times the nucleus diameter
        estimated on the Otsu mask of the middle plane; a number: the radius in pixels.
    invert : bool
        Dark objects on a bright background: the image is negated first (its maximum minus
        it), so the result has bright objects on a flat, zero background.
    return_radius : bool
        Also return the radius (px) that ran, None when nothing was subtracted.

    Returns
    -------
    corrected : ndarray or dask array of float32, same shape
        Bright objects over a background near 0 (see :func:`subtract_background`). An image
        with no measurable nucleus size (``"auto"`` on a blank plane) is returned as float32,
        uncorrected.
    radius : float or None
        Only with ``return_radius=True``.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = (xx // 2 + 100 * ((yy - 64) ** 2 + (xx - 64) ** 2 < 64)).astype(np.uint16)
    >>> out = remove_background(img, 24.0)
    >>> bool(out[64, 64] > 90 and out[10, 40] < 5)
    True
    """
    from ._validation import is_dask

    lazy = is_dask(image)
    data = (image if lazy else np.asarray(image)).astype(np.float32)
    if invert:
        top = np.nanmax(data)
        data = (top.compute() if lazy else top) - data
    if isinstance(background, str):
        if background != "auto":
            raise ValueError(
                f"background must be 'uneven', 'auto', a radius or None, got {background!r}"
            )
        diameter = _plane_diameter(data, integer=np.dtype(image.dtype).kind in "biu")
        radius = BACKGROUND_RADIUS * diameter if diameter > 0 else None
    else:
        radius = float(background)
        if not (np.isfinite(radius) and radius > 0):
            raise ValueError(f"background radius must be > 0, got {background!r}")
        diameter = radius / BACKGROUND_RADIUS
    if radius is None:
        out = data
    elif lazy:
        planes = data.rechunk(data.chunks[:-2] + (-1, -1))
        out = planes.map_blocks(_subtract_planes, diameter, radius, dtype=np.float32)
    else:
        out = _subtract_planes(data, diameter, radius)
    return (out, radius) if return_radius else out


#: ``background="uneven"`` subtracts (with the ``"auto"`` radius) where :func:`unevenness`
#: exceeds this. Chosen on DSB 2018 training images outside the bundled model's validation
#: split and the S-BSST265 even rows (344), before ``BLOCK_BACKGROUND``. With it, of all 420
#: clean real images 3 measure above the gate, all better subtracted (F1 +0.11 to +0.54);
#: of copies with a linear ramp of 0.5-1x the nucleus contrast, 410 of 420.
UNEVEN_GATE = 0.3
#: The sampled plane is cut into ``UNEVEN_BLOCKS`` x ``UNEVEN_BLOCKS`` blocks ...
UNEVEN_BLOCKS = 4
#: ... whose background level is this percentile (a block mostly covered by nuclei still
#: holds a few background pixels).
UNEVEN_PERCENTILE = 5
#: A block's level counts only where at least this share of its values are background (at or
#: below Otsu's threshold of the plane); a block filled by a nucleus has none (R2's rule).
#: Without it, nuclei large against the blocks read as uneven: of 760 256 x 256 tiles of the
#: S-BSST265 63x images 570 measured above the gate, now 133; of 152 512 x 512 tiles 60, now 4
#: (pooled F1 of the count 0.224 -> 0.346 and 0.664 -> 0.798; 0.577 and 0.797 without
#: subtraction). Ramped copies: the same F1 (DSB validation 0.788, S-BSST265 even rows 0.826).
#: Clean real images: 3 of 420 above the gate, not 8 (5 DSB images the subtraction helped,
#: F1 0 -> 0.02-0.87, now measure below it: pooled 0.809 -> 0.797, 0.795 without).
BLOCK_BACKGROUND = 0.2
#: Side of the squares of sampled pixels averaged before the levels are taken.
UNEVEN_POOL = 4
#: Fewest pixels along a block's side: fewer blocks on a smaller plane, none under 2 x 2
#: (a block no larger than a nucleus may hold no background at all).
BLOCK_PX = 64
#: Fewest local means along a block's side for a level to mean anything.
MIN_BLOCK = 4
#: Least share of the pixels the background class must hold: a minority (bright nuclei
#: measured with ``invert``, or nuclei filling the frame) has no level in most blocks.
MIN_BACKGROUND = 1 / 3


def _sampled_planes(image):
    """Up to ``SAMPLE_PLANES`` evenly spaced planes, each as an even grid of its pixels
    (``SAMPLE_PIXELS`` in all, as numpy arrays; only those pixels are read)."""
    import math

    from ._threshold_noise import SAMPLE_PIXELS, SAMPLE_PLANES, load

    lead = image.shape[:-2]
    n = int(np.prod(lead)) if lead else 1
    flat = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_PLANES)).round().astype(int))
    h, w = image.shape[-2:]
    step = max(1, math.ceil(math.sqrt(h * w / (SAMPLE_PIXELS // len(flat)))))
    planes = (image[tuple(np.unravel_index(i, lead)) if lead else ()] for i in flat)
    return load([plane[::step, ::step] for plane in planes])


def _plane_unevenness(grid, invert, k):
    """Spread of the block-wise background levels of one sampled plane over the contrast
    ``mu_f - mu_b`` (the means above and at or below Otsu's threshold), all measured on
    local means of ``UNEVEN_POOL`` x ``UNEVEN_POOL`` sampled pixels."""
    from ._threshold_passes import unit_thresholds

    f = UNEVEN_POOL
    if k < 2 or min(grid.shape) < k * f * MIN_BLOCK:
        return 0.0
    ftype = np.float64 if grid.dtype.itemsize > 2 and grid.dtype != np.float32 else np.float32
    # Local means: the noise of single pixels would otherwise spread the levels (a block
    # mostly covered by nuclei takes its level from the middle of the background's noise, a
    # block of background from its low tail). 16x fewer values: a cheap threshold too.
    h, w = grid.shape[0] // (k * f) * k, grid.shape[1] // (k * f) * k
    crop = grid[: h * f, : w * f].astype(ftype)
    # Sums of strided slices: 4x faster than a mean over axes of a reshaped strided sample.
    rows = sum(crop[i::f] for i in range(f))
    pooled = sum(rows[:, i::f] for i in range(f)) / (f * f)
    if invert:
        pooled = -pooled
    finite = pooled.ravel()
    if np.isnan(finite.sum()):  # NaN holes: measure around them
        finite = finite[np.isfinite(finite)]
    if finite.size == 0 or finite.min() == finite.max():
        return 0.0
    (t,) = unit_thresholds(
        finite[None], (), "otsu", "image", 2, 256, False, lambda: None,
        clip=None, outliers=False, notes={},
    )  # fmt: skip
    background = finite <= t
    n = int(np.count_nonzero(background))
    if n == finite.size or n < MIN_BACKGROUND * finite.size:
        return 0.0
    low = finite[background].sum(dtype=np.float64)
    contrast = (finite.sum(dtype=np.float64) - low) / (finite.size - n) - low / n
    blocks = pooled.reshape(k, h // k, k, w // k).swapaxes(1, 2).reshape(k * k, -1)
    # A block mostly covered by nuclei (large against the blocks) takes its 5th percentile
    # from inside a nucleus: it has no background level.
    blocks = blocks[np.count_nonzero(blocks <= t, axis=1) >= BLOCK_BACKGROUND * blocks.shape[1]]
    if len(blocks) < 2:
        return 0.0
    # One partition (NaN sorts last): 10x faster than np.percentile's interpolation.
    rank = int(UNEVEN_PERCENTILE / 100 * (blocks.shape[1] - 1))
    levels = np.partition(blocks, rank, axis=1)[:, rank]
    spread = float(np.nanmax(levels) - np.nanmin(levels))
    return spread / contrast if contrast > 0 and np.isfinite(spread) else 0.0


def unevenness(image, *, invert=False):
    """How uneven the background is against the nucleus contrast (0 when it cannot say).

    Each sampled plane is cut into ``UNEVEN_BLOCKS`` x ``UNEVEN_BLOCKS`` blocks (fewer where
    they would be under ``BLOCK_PX`` pixels wide); a block's background level is its
    ``UNEVEN_PERCENTILE``-th percentile, counted only where at least ``BLOCK_BACKGROUND`` of
    the block is at or below Otsu's threshold. The spread of the levels
    (largest minus smallest) is divided by the contrast ``mu_f - mu_b`` between the mean
    foreground and background of Otsu's threshold. Clean real images measure a median of 0.04
    (90 % below 0.13), copies with a linear ramp of 0.5-1x the nucleus contrast a median of
    0.57 (0.18-1.3).

    Parameters
    ----------
    image : (..., Y, X) ndarray or dask array
        Measured on up to 8 evenly spaced planes, 65536 sampled pixels in all (an even grid
        over each plane; only those pixels are read). The result is the median of the planes'.
    invert : bool
        Dark objects: the background is the bright class and its levels the dark percentile
        of the negated image.

    Returns
    -------
    float
        0 where it cannot say: a constant or all-NaN image, one under ``2 * BLOCK_PX`` pixels
        on a side, a plane whose background class holds under ``MIN_BACKGROUND`` of
        the pixels, and one with fewer than 2 blocks that have a level.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:256, :256]
    >>> nuclei = 100.0 * (((yy % 32) - 16) ** 2 + ((xx % 32) - 16) ** 2 < 36)
    >>> round(unevenness(nuclei), 2), round(unevenness(nuclei + xx * 0.4), 2)
    (0.0, 0.81)
    """
    k = min(UNEVEN_BLOCKS, min(image.shape[-2:]) // BLOCK_PX)
    return float(np.median([_plane_unevenness(g, invert, k) for g in _sampled_planes(image)]))


def resolve_background(image, background, *, invert=False, method=None):
    """``(background, unevenness)``: ``"uneven"`` decided on ``image`` (``"auto"`` when
    :func:`unevenness` exceeds ``UNEVEN_GATE``, else None); anything else as it is (None).
    ``"uneven"`` is off for ``method="manual"``: its value is read off the image's own
    intensities, not those of a corrected image.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:128, :128]
    >>> nuclei = 100.0 * (((yy % 32) - 16) ** 2 + ((xx % 32) - 16) ** 2 < 36)
    >>> resolve_background(nuclei, "uneven")
    (None, 0.0)
    >>> resolve_background(nuclei + xx * 0.8, "uneven")[0]
    'auto'
    >>> resolve_background(nuclei, 30.0)
    (30.0, None)
    """
    if not (isinstance(background, str) and background == "uneven"):
        return background, None
    if method == "manual":
        return None, None
    measured = unevenness(image, invert=invert)
    return ("auto" if measured > UNEVEN_GATE else None), measured


#: Methods whose threshold a few far brighter pixels pull up: a between-class variance (Otsu)
#: or a line to the brightest occupied bin (triangle; 16-bit specks at 65535 put it at 65534).
#: :func:`ignore_bright_outliers` applies to them. Not ISODATA: scikit-image's lowest fixed
#: point stays below the nuclei with specks, and on a background with a long dim tail it lands
#: inside the background (2 DSB images F1 0.55 -> 0 and 0.36 -> 0 with the rule).
OUTLIER_METHODS = ("otsu", "triangle")
#: The bright outliers are at most this share of the pixels (debris, not a class of nuclei).
OUTLIER_FRACTION = 0.01
#: ... and the foreground found below them holds at least this many times as many pixels.
OUTLIER_MINORITY = 2.0
#: Otsu's effectiveness the pixels below the outliers need to count as two classes: that of a
#: uniform histogram (a Gaussian gives 2/pi = 0.64, an exponential 0.65). A peak with a long
#: flat tail can pass too; OUTLIER_MINORITY then keeps the threshold unless the outliers are
#: few. Chosen on DSB images with added specks (16-bit: 309 of 377 recovered, 232 at 0.8).
BIMODAL_ETA = 0.75


def otsu_effectiveness(counts, centers):
    """Otsu's effectiveness of a histogram: the best between-class variance over the total.

    Each bin counts as values spread evenly over its width (variance ``width**2 / 12``), so a
    background of two or three grey levels does not pass for two classes.

    Parameters
    ----------
    counts : (n,) ndarray of int
        Histogram counts.
    centers : (n,) ndarray
        Equally spaced bin centres, increasing.

    Returns
    -------
    eta : float
        In [0, 1): about 0.64 for a Gaussian, 0.75 for a uniform histogram, near 1 for two
        well separated classes; 0 for fewer than two bins.

    References
    ----------
    .. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans.
           Syst. Man Cybern. 9(1): 62-66, 1979. :DOI:`10.1109/TSMC.1979.4310076`

    Examples
    --------
    >>> import numpy as np
    >>> round(otsu_effectiveness(np.array([50, 0, 0, 0, 50]), np.arange(5.0)), 3)
    0.98
    """
    p = np.asarray(counts, np.float64)
    x = np.asarray(centers, np.float64)
    if p.size < 2:
        return 0.0
    p = p / p.sum()
    mean = float(p @ x)
    width = (x[-1] - x[0]) / (x.size - 1)
    total = float(p @ (x - mean) ** 2) + width**2 / 12
    w0 = np.cumsum(p)[:-1]
    m0 = np.cumsum(p * x)[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        between = (mean * w0 - m0) ** 2 / (w0 * (1 - w0))
    return float(np.nanmax(between, initial=0.0) / total)


def ignore_bright_outliers(t, counts, centers, threshold_of, below=None):
    """The threshold with a tiny bright minority above ``t`` ignored, if it was debris.

    A few saturated particles pull Otsu's threshold (and triangle's) above every
    nucleus. The pixels above ``t`` count as such outliers when (1) they are at most
    ``OUTLIER_FRACTION`` of the pixels, (2) the pixels at or below ``t`` are clearly two
    classes (Otsu's effectiveness at least ``BIMODAL_ETA``), and (3) the foreground that the
    method finds among them holds at least ``OUTLIER_MINORITY`` times as many pixels as the
    outliers. Then the threshold of the pixels at or below ``t`` is returned; the outliers
    stay foreground.
    A few bright nuclei on a unimodal background fail (2), an image of few nuclei with
    saturated centres fails (3): both keep ``t``.

    Parameters
    ----------
    t : float
        The method's threshold of the whole histogram.
    counts, centers : (n,) ndarrays
        The histogram (equally spaced bin centres).
    threshold_of : callable
        ``threshold_of(counts, centers)``: the method's threshold of a histogram.
    below : callable, optional
        ``below(t)``: ``(counts, centers, n_above)``, the histogram of the values at or below
        ``t`` binned again over their own range, and the number of values above ``t`` (float
        data, whose bins span up to the brightest outlier). None: the histogram is cut at ``t``.

    Returns
    -------
    threshold : float
        ``t``, or the threshold of the pixels at or below it.
    outliers : dict or None
        When the rule fired: ``first_threshold`` (``t``), ``pixels`` and ``fraction`` above it.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.exposure import histogram
    >>> from skimage.filters import threshold_otsu
    >>> rng = np.random.default_rng(0)
    >>> img = np.r_[rng.normal(200, 20, 9000), rng.normal(600, 30, 1000)].astype(np.uint16)
    >>> img[:20] = 65535  # saturated specks: 0.2 % of the pixels
    >>> counts, centers = histogram(img)
    >>> t = threshold_otsu(hist=(counts, centers))
    >>> otsu = lambda c, x: threshold_otsu(hist=(c, x))
    >>> t2, info = ignore_bright_outliers(t, counts, centers, otsu)
    >>> int(t), int(t2), int(threshold_otsu(img[20:])), info["pixels"]
    (704, 265, 265, 20)
    """
    counts = np.asarray(counts)
    centers = np.asarray(centers)
    total = int(counts.sum())
    cut = int(np.searchsorted(centers, t, side="right"))  # bins at or below t
    n_above = int(counts[cut:].sum())
    if not 0 < n_above <= OUTLIER_FRACTION * total:
        return t, None
    if below is None:
        keep = np.flatnonzero(counts[:cut])
        if keep.size < 2:
            return t, None
        sub_counts, sub_centers = counts[: keep[-1] + 1], centers[: keep[-1] + 1]
    else:
        sub = below(t)
        if sub is None:
            return t, None
        sub_counts, sub_centers, n_above = sub
        if not 0 < n_above <= OUTLIER_FRACTION * total:
            return t, None
    if otsu_effectiveness(sub_counts, sub_centers) < BIMODAL_ETA:
        return t, None
    t2 = threshold_of(sub_counts, sub_centers)
    if int(sub_counts[sub_centers > t2].sum()) < OUTLIER_MINORITY * n_above:
        return t, None
    return t2, {"first_threshold": float(t), "pixels": n_above, "fraction": n_above / total}
