"""Automatic smoothing before a threshold (``sigma="auto"``): how noisy is the image?

The noise ratio ``r = sigma_n / (t - mu_b)`` compares the white-noise standard deviation
``sigma_n`` (Immerkaer's Laplacian-difference mask [1]_, median-absolute-deviation version, so
edges of nuclei barely count) with the contrast between Otsu's threshold ``t`` and the mean
background ``mu_b`` (the pixels at or below ``t``). A background pixel crosses the threshold
with probability ``Phi(-1/r)``: negligible below ``NOISE_GATE``, where the mask of an unsmoothed
image is kept bit for bit. Above it, single-pixel specks fill the mask and outweigh the nuclei
in the size estimate, so the smallest sigma of ``AUTO_SIGMAS`` that brings the ratio expected
after smoothing (a Gaussian of ``s`` px divides white noise by ``2 sqrt(pi) s``) to
``NOISE_AFTER`` is used. Clean real images (DSB 2018, S-BSST265: 420) measure ``r <= 0.14``;
copies with noise of 0.15-0.3x the nucleus contrast measure 0.13-1.3.

Where each plane or frame gets its own threshold, each is measured (on its own sample) and
smoothed alone: a ratio pooled over a time series hides its few noisy or bleached frames (two
of eight at r 1.06 read 0.09 together, and thresholded unsmoothed into thousands of specks).
An empty plane of a z-stack (noise, no nuclei) also reads noisy, but smoothed alone its
noise turns into blobs the count keeps (8 planes of 12 nuclei, the outer 4 empty with noise of
0.1x the contrast, scope "slice": 297 objects, 33 with the pooled sigma; scope "image": 12):
a unit with almost nothing beyond its noise (:data:`NOISE_TAIL`) takes the pooled sigma. Its own
threshold still splits its noise: threshold z-stacks whole.

References
----------
.. [1] J. Immerkaer, "Fast noise variance estimation", Computer Vision and Image
       Understanding 64(2): 300-302, 1996. :DOI:`10.1006/cviu.1996.0060`
"""

import math

import numpy as np

#: Smoothing sigmas (px) the automatic rule chooses from, smallest first.
AUTO_SIGMAS = (1.0, 2.0, 4.0)
#: Noise ratio above which ``"auto"`` smooths (a background pixel crosses the threshold with
#: probability Phi(-4) = 3e-5 at this ratio).
NOISE_GATE = 0.25
#: Noise ratio expected after smoothing that ``"auto"`` aims for.
NOISE_AFTER = 0.2
#: Planes of a stack (evenly spaced) on which the noise is measured.
SAMPLE_PLANES = 8
#: Pixels measured, shared by the sampled planes: for the contrast, an even grid of pixels
#: over each whole plane; for the noise, as many in evenly spaced ``WINDOW``-wide squares.
#: (With all pixels of a 1024 x 1024 image, the measure cost half of its default count.)
SAMPLE_PIXELS = 1 << 16
#: Side of the squares in which the noise is measured (px).
WINDOW = 64
#: Sampled planes of up to this many pixels in all are measured whole (a few ms): a sample of
#: a small image would judge it on a few squares, and near the gate that can flip the answer.
WHOLE_PIXELS = 1 << 18
#: Percentile above which intensities count as it for the contrast's Otsu threshold: a few
#: saturated specks (hot pixels, up to 0.1 % of the pixels) would otherwise lift it far above
#: the nuclei, and the noise would look small against that contrast. (99.5, the debris clip's,
#: smoothed two clean DSB images whose few nuclei cover less than 0.5 %.) Dark objects
#: (``invert``): also below the ``100 - NOISE_CLIP`` percentile, their side.
NOISE_CLIP = 99.9
#: Fewest pixels that can tell noise from the edges of objects (a 32 x 32 image).
MIN_PIXELS = 32 * 32
#: A unit measured noisy with fewer of its sampled values than this beyond Otsu's threshold
#: plus 3 noise sd (the objects' side) is noise alone, not objects: an empty plane of a
#: z-stack (a Gaussian puts 0.13% there, and its ratio reads ~1.25 at any noise level). It
#: takes the stack's pooled sigma, since smoothed alone its noise turns into blobs the count
#: keeps (a stack of 12 nuclei with 4 empty planes of noise 0.1x the contrast, scope slice:
#: 297 objects, 33 with the pooled sigma; their tails 0.11-0.19%). Noisy and bleached frames
#: of sparse nuclei (4% of the frame) put 1.9-2.8% there. Not tuned on real images.
NOISE_TAIL = 0.005
#: Fewest planes or frames of a lazy stack whose samples are read in one compute when each
#: is measured alone (memory: up to ``2 * SAMPLE_PIXELS`` values a unit).
UNIT_BATCH = 16


def sigma_for_ratio(ratio):
    """The smoothing sigma (px) of ``"auto"`` for a noise ratio: 0 up to ``NOISE_GATE``.

    Examples
    --------
    >>> [sigma_for_ratio(r) for r in (0.1, 0.25, 0.3, 0.8, 1.5, 5.0)]
    [0.0, 0.0, 1.0, 2.0, 4.0, 4.0]
    """
    if not ratio > NOISE_GATE:
        return 0.0
    for sigma in AUTO_SIGMAS:
        if ratio / (2 * math.sqrt(math.pi) * sigma) <= NOISE_AFTER:
            return sigma
    return AUTO_SIGMAS[-1]


def _laplace(plane):
    """``|plane * M|`` inside the plane, M = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]: the
    product of two second differences (separable, so two passes)."""
    rows = plane[:, :-2] - 2 * plane[:, 1:-1] + plane[:, 2:]
    return np.abs(rows[:-2] - 2 * rows[1:-1] + rows[2:])


def _inside(cuts, size):
    """Which of the ``size - 2`` positions of :func:`_laplace` along an axis of ``size``
    pixels, cut into squares at ``cuts``, see three pixels of one square."""
    keep = np.ones(max(size - 2, 0), bool)
    for cut in cuts:
        keep[max(cut - 2, 0) : cut] = False
    return keep


def _median(values):
    """Median of a 1D array; one partition (two kth make numpy's median ~20x slower)."""
    k = values.size // 2
    part = np.partition(values, k)
    return float(part[k]) if values.size % 2 else (float(part[:k].max()) + float(part[k])) / 2


def _cells(n, side, size):
    """Starts of ``n`` windows of ``side``, each centred in one of ``n`` equal cells of an axis
    of ``size`` (one window: the middle)."""
    centres = (np.arange(n) + 0.5) * size / n
    return np.unique((centres - side / 2).clip(0, max(size - side, 0)).round().astype(int))


def load(pieces):
    """``pieces`` (slices of one array) as numpy arrays; a dask array's in one compute, so a
    chunk that several of them share is read once, not once per piece."""
    from ._validation import is_dask

    if pieces and is_dask(pieces[0]):
        import dask

        return list(dask.compute(*pieces))
    return [np.asarray(piece) for piece in pieces]


def _pieces(image, whole=WHOLE_PIXELS):
    """``(values, tiles, cuts)``, unread slices of ``image``: up to ``SAMPLE_PLANES`` evenly
    spaced planes, whole (values and tiles; ``cuts`` None) when they hold ``whole`` pixels or
    fewer in all; otherwise each plane's pixels on an even grid (``SAMPLE_PIXELS`` in all: the
    contrast sees the whole plane, a sparse nucleus included) and one tile of
    ``WINDOW``-wide squares centred in the cells of a grid (as many pixels in all: the noise
    needs neighbouring pixels), side by side, cut apart at ``cuts`` (row and column offsets;
    :func:`_noise_laplace`). One slice per plane: a dask array reads it as one task, not one a
    square."""
    lead = image.shape[:-2]
    n = int(np.prod(lead)) if lead else 1
    flat = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_PLANES)).round().astype(int))
    planes = [image[tuple(np.unravel_index(i, lead)) if lead else ()] for i in flat]
    h, w = image.shape[-2:]
    if h * w * len(flat) <= whole:
        return planes, planes, None
    step = math.ceil(math.sqrt(h * w * len(flat) / SAMPLE_PIXELS))
    per_axis = math.ceil(math.sqrt(SAMPLE_PIXELS / WINDOW**2 / len(flat)))
    spans = [
        [(start, min(start + WINDOW, size)) for start in _cells(per_axis, WINDOW, size)]
        for size in (h, w)
    ]
    rows, cols = (np.concatenate([np.arange(a, b) for a, b in span]) for span in spans)
    cuts = tuple(np.cumsum([b - a for a, b in span])[:-1] for span in spans)
    values = [plane[::step, ::step] for plane in planes]
    return values, [plane[rows][:, cols] for plane in planes], cuts


def _noise_laplace(tiles, cuts, ftype):
    """``|Laplacian|`` (:func:`_laplace`, in ``ftype``) of every pixel of the tiles of
    :func:`_pieces` whose 3 x 3 neighbourhood lies in one of their squares, flat, in no
    particular order (for a median)."""
    out = []
    for tile in tiles:
        # Whole tiles, the positions across a cut dropped after: the same values as square
        # by square, without a dozen numpy calls per square.
        laplace = _laplace(tile.astype(ftype))
        if cuts is not None:
            rows, cols = (_inside(c, n) for c, n in zip(cuts, tile.shape, strict=True))
            laplace = laplace[rows][:, cols]  # 4x faster than np.ix_
        out.append(laplace.ravel())
    return np.concatenate(out) if out else np.empty(0, ftype)


def _sample(image, whole=WHOLE_PIXELS):
    """``(values, tiles, cuts)`` of :func:`_pieces` as numpy arrays, the values as one flat
    array (only these pixels are read)."""
    values, tiles, cuts = _pieces(image, whole)
    pieces = load(values + tiles)
    flat = np.concatenate([v.ravel() for v in pieces[: len(values)]])
    return flat, pieces[len(values) :], cuts


def noise_ratio(image, *, invert=False):
    """Noise over contrast, ``sigma_n / |t - mu_b|``, of an image (0 when it cannot say).

    Parameters
    ----------
    image : (..., Y, X) ndarray or dask array
        Measured on up to ``SAMPLE_PLANES`` evenly spaced planes, ``SAMPLE_PIXELS`` in all
        (:func:`_sample`; only those pixels are loaded).
    invert : bool
        Dark objects: the background is the pixels above Otsu's threshold, and the clip
        (:data:`NOISE_CLIP`) cuts the dark end too.

    Returns
    -------
    float
        0 for an image without noise or contrast (constant, of two values, all NaN) and for
        one too small to tell (under ``MIN_PIXELS`` pixels measured).
    """
    return _ratio(*_sample(image), invert)


def _ratio(values, tiles, cuts, invert, serial=False):
    """:func:`noise_ratio` of a sample (:func:`_sample`); ``serial``: serial kernels."""
    return _measure(values, tiles, cuts, invert, serial)[0]


def _clipped_otsu(values, finite, serial):
    """Otsu's threshold (np.float64) of a sample, intensities above its ``NOISE_CLIP``
    percentile counted as it, as ``threshold_value(clip=NOISE_CLIP)`` finds it; ``finite``:
    the sample holds no infinite value."""
    from ._threshold_methods import _clipped_float_histogram, from_histogram
    from ._threshold_passes import unit_thresholds

    if values.dtype.kind == "f" and finite:
        # The clipped histogram at once: a pass of unit_thresholds would first bin the
        # whole range (a third of this measure's cost), only to replace it.
        hist = _clipped_float_histogram(values, NOISE_CLIP, 256, serial)
        if hist is not None:
            return np.float64(from_histogram("otsu", hist, 2, 256))
    (t,) = unit_thresholds(
        values[None], (), "otsu", "image", 2, 256, serial, lambda: None,
        clip=NOISE_CLIP, outliers=False, notes={},
    )  # fmt: skip
    return t


def _measure(values, tiles, cuts, invert, serial=False):
    """``(noise ratio, tail)`` of a sample (:func:`_sample`): ``tail`` is the fraction of its
    values beyond Otsu's threshold plus 3 noise sd on the objects' side (NaN where the ratio
    cannot say)."""
    wide = values.dtype.itemsize > 2 and values.dtype != np.float32
    ftype = np.float64 if wide else np.float32
    laplace = _noise_laplace(tiles, cuts, ftype)
    if values.dtype.kind == "f" and np.isnan(values.sum()):  # NaN holes: measure around them
        values, laplace = values[np.isfinite(values)], laplace[np.isfinite(laplace)]
    if laplace.size == 0 or values.size < MIN_PIXELS:
        return 0.0, np.nan
    low, high = values.min(), values.max()
    if not np.any((values > low) & (values < high)):  # one or two levels (a 0/255 mask)
        return 0.0, np.nan
    if values.dtype == bool:
        values = values.view(np.uint8)
    elif values.dtype.itemsize > 1:
        values = values.astype(ftype)  # 256 bins: a 16-bit image's Otsu needs no 65536
    sigma_n = 1.4826 * _median(laplace) / 6
    clipped = values
    if invert:
        # Dark objects: their side, the dark end, is clipped too (30 specks darker than the
        # nuclei, 0.01% of the pixels, read a noisy image's 1.15 as 0.001: left unsmoothed).
        # The bright end stays clipped: saturation is bright whatever the objects.
        floor = np.percentile(values, 100 - NOISE_CLIP, method="lower")
        clipped = np.maximum(values, floor.astype(values.dtype))
    t = _clipped_otsu(clipped, np.isfinite(low) and np.isfinite(high), serial)
    background = values > t if invert else values <= t
    n = np.count_nonzero(background)
    # np.where: no branch per pixel, several times faster than indexing by the mask.
    mean = np.where(background, values, 0).sum(dtype=np.float64) / max(n, 1)
    contrast = abs(t - mean) if n else 0.0
    beyond = values < t - 3 * sigma_n if invert else values > t + 3 * sigma_n
    tail = np.count_nonzero(beyond) / values.size
    return (float(sigma_n / contrast), tail) if contrast > 0 else (0.0, np.nan)


def unit_ratios(image, units, *, invert=False, progress=None):
    """Noise ratio of each unit (plane or frame; the first ``len(units)`` axes index them),
    each measured alone as :func:`noise_ratio` measures a large image (on ``SAMPLE_PIXELS``,
    whole up to that many: cheap per unit), and the tail of its sample beyond Otsu's threshold
    (:func:`_measure`): two arrays of shape ``units``.

    Units are measured in parallel threads; ``progress.step()`` (a ``Progress``) after
    each. A dask array is read in batches of at least ``UNIT_BATCH`` units that split no
    chunk of its first axis, each in one compute: a chunk that several units share is read
    once.
    """
    from ._threshold_passes import Progress, run_units
    from ._validation import is_dask

    def ratio(sample):
        return _measure(*sample, invert, serial=True)  # serial kernels: already in threads

    progress = Progress(None, 1) if progress is None else progress
    indices = list(np.ndindex(*units))
    if not is_dask(image):
        ratios = run_units(lambda i: ratio(_sample(image[i], SAMPLE_PIXELS)), indices, progress)
        return _split(ratios, units)
    ratios = []
    for batch in _batches(indices, image.chunks[0]):
        samples = [_pieces(image[index], SAMPLE_PIXELS) for index in batch]
        pieces = iter(load([p for values, tiles, _ in samples for p in values + tiles]))
        samples = [
            (
                np.concatenate([next(pieces).ravel() for _ in values]),
                [next(pieces) for _ in tiles],
                cuts,
            )
            for values, tiles, cuts in samples
        ]
        ratios += run_units(ratio, samples, progress)
    return _split(ratios, units)


def _split(measures, units):
    """``(ratios, tails)`` arrays of shape ``units`` from a list of :func:`_measure` pairs."""
    ratios, tails = np.array(measures, np.float64).reshape(-1, 2).T
    return ratios.reshape(units), tails.reshape(units)


def _batches(indices, chunks):
    """``indices`` (in order) in consecutive batches of at least ``UNIT_BATCH`` that split no
    chunk (``chunks``: the chunk sizes along the first axis)."""
    ends = np.cumsum(chunks)
    batches, chunk = [[]], 0
    for index in indices:
        if index[0] >= ends[chunk]:
            chunk = int(np.searchsorted(ends, index[0], side="right"))
            if len(batches[-1]) >= UNIT_BATCH:
                batches.append([])
        batches[-1].append(index)
    return batches


def resolve_sigma(image, sigma, *, invert=False, scope="image", progress=None):
    """``(sigma, ratio)``: ``"auto"`` measured on ``image``, a number as it is (ratio None).

    Where each plane or frame of a stack gets its own threshold (``scope`` ``"slice"`` or
    ``"frame"``), ``"auto"`` measures each one alone (:func:`unit_ratios`; a noisy frame of a
    clean time series is smoothed, the others not): ``sigma`` and ``ratio`` are then arrays
    with one value per unit, shaped as the thresholds. (A unit of more than ``SAMPLE_PIXELS``
    and at most ``WHOLE_PIXELS`` pixels is sampled, where the image alone is measured whole.)
    ``progress``: a ``Progress`` stepped once per unit measured.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((32, 32)); image[8:24, 8:24] = 1
    >>> resolve_sigma(image, "auto")
    (0.0, 0.0)
    >>> resolve_sigma(image, 1.5)
    (1.5, None)
    >>> resolve_sigma(np.stack([image, image]), "auto", scope="slice")
    (array([0., 0.]), array([0., 0.]))
    """
    if sigma != "auto":
        return sigma, None
    from ._threshold_passes import n_units

    units = n_units(image.shape, scope)
    if not units:
        ratio = noise_ratio(image, invert=invert)
        return sigma_for_ratio(ratio), ratio
    ratio, tail = unit_ratios(image, units, invert=invert, progress=progress)
    noise_only = _noise_only(ratio, tail)
    if noise_only.any():
        ratio = np.where(noise_only, noise_ratio(image, invert=invert), ratio)
    return np.vectorize(sigma_for_ratio, otypes=[np.float64])(ratio), ratio


def _noise_only(ratio, tail):
    """Which units measured (:func:`_measure`) are noise alone (:data:`NOISE_TAIL`)."""
    return (ratio > NOISE_GATE) & (tail < NOISE_TAIL)


def unit_sigma(image, unit, *, invert=False, scope="slice"):
    """``(sigma, ratio)`` that ``resolve_sigma(image, "auto", scope=scope)`` gives the one
    plane or frame ``unit`` (an index of the units), measuring only that unit (and, where it
    is noise alone, the whole image's sample, as the run does): a preview of one plane
    smoothed as the run smooths it.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.zeros((3, 64, 64), np.float32)
    >>> stack[:, 20:40, 20:40] = 1
    >>> unit_sigma(stack, (1,))
    (0.0, 0.0)
    """
    from ._threshold_passes import n_units

    unit = tuple(unit)
    if len(unit) != len(n_units(image.shape, scope)):
        raise ValueError(f"unit {unit} does not index the units of scope {scope!r}")
    ratio, tail = _measure(*_sample(image[unit], SAMPLE_PIXELS), invert, serial=True)
    if _noise_only(ratio, tail):
        ratio = noise_ratio(image, invert=invert)
    return sigma_for_ratio(ratio), ratio


def one_sigma(sigma):
    """The sigma of every unit (``sigma`` itself where it is one number), or None where the
    units of a per-unit ``sigma`` (:func:`resolve_sigma`) differ."""
    if np.ndim(sigma) == 0:
        return sigma
    first = float(np.ravel(sigma)[0])
    return first if np.all(sigma == first) else None


def smooth_dtype(dtype):
    """The float type an image of ``dtype`` is smoothed into."""
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


def smooth_numpy(image, sigma):
    """Gaussian of ``sigma`` pixels over the last two axes; NaN-aware (normalized). 0: the
    image itself."""
    if not sigma:
        return image
    from scipy import ndimage as ndi

    sigmas = (0,) * (image.ndim - 2) + (sigma, sigma)
    ftype = smooth_dtype(image.dtype)
    data = image.astype(ftype)  # a copy: the input is never modified
    nan = np.isnan(data) if data.dtype.kind == "f" else None
    if nan is None or not nan.any():
        return ndi.gaussian_filter(data, sigmas, output=ftype)
    # Normalized convolution: NaN holes neither spread nor darken their surroundings.
    data[nan] = 0
    weight = ndi.gaussian_filter((~nan).astype(ftype), sigmas)
    smooth = ndi.gaussian_filter(data, sigmas)
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth /= weight
    smooth[nan] = np.nan
    return smooth


def whole_planes(image):
    """A dask image rechunked to whole planes (last two axes), so that each chunk is smoothed
    exactly as the numpy array would be."""
    return image.rechunk(image.chunks[:-2] + (-1, -1))


def smooth(image, sigma):
    """:func:`smooth_numpy` of a numpy or (lazily, on whole planes) a dask image."""
    from ._validation import is_dask

    if not sigma or not is_dask(image):
        return smooth_numpy(image, sigma)
    ftype = smooth_dtype(image.dtype)
    return whole_planes(image).map_blocks(smooth_numpy, sigma, dtype=ftype)
