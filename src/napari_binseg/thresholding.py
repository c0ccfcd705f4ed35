"""Global thresholds (Otsu, Li, Yen, triangle, ISODATA, mean, minimum, multi-Otsu) and masks.

Thresholds equal scikit-image's ``skimage.filters.threshold_<method>`` on the same data: the
histogram is computed by compiled one-pass kernels (``_histogram``) and handed to
scikit-image wherever its function accepts ``hist=``, so the arithmetic after the histogram is
scikit-image's own. Integer images get one bin per grey level over ``[min, max]``, float images
``nbins`` equal bins over ``[min, max]``, exactly as ``skimage.exposure.histogram`` bins them.

Three scopes: one threshold for the whole array (``"image"``, Fiji's "stack histogram"), one per
2D plane (``"slice"``) or one per time point (``"frame"``, axis 0 of (T, Y, X) or (T, Z, Y, X)).
Dask arrays are read chunk by chunk (memory bounded by a chunk) and the mask stays lazy.
"""

import numpy as np

from ._validation import check_image, check_rgb, is_dask

THRESHOLD_METHODS = (
    "otsu",
    "li",
    "yen",
    "triangle",
    "isodata",
    "mean",
    "minimum",
    "multiotsu",
    "manual",
)
SCOPES = ("image", "slice", "frame")

#: Methods whose scikit-image function takes the histogram (``hist=``).
_HIST_METHODS = ("otsu", "yen", "isodata", "minimum", "multiotsu")
#: Integer data with a wider value range than this is binned as a float image
#: (np.bincount-style histograms of 2**24 bins per thread are no longer cheap).
_MAX_INT_LEVELS = 1 << 24
#: Multi-Otsu builds an (L, L) table over L grey levels; beyond this many levels an integer
#: image is binned into ``nbins`` bins (scikit-image would need gigabytes there).
_MAX_MULTIOTSU_LEVELS = 4096
#: Values per piece of a whole-array pass: progress is reported (and can be cancelled) per piece.
#: Large: every parallel kernel call pays thread wake-up and 65536-bin local histograms.
_PIECE = 1 << 26


# --------------------------------------------------------------------------------- checks


def _check_options(image, method, scope, classes, value, sigma, nbins):
    image = check_image(image, name="image", min_ndim=2, max_ndim=4)
    check_rgb(image, name="image")
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"method must be one of {THRESHOLD_METHODS}, got {method!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "frame" and image.ndim < 3:
        raise ValueError(
            f"scope='frame' needs a time axis first, (T, Y, X) or (T, Z, Y, X); "
            f"got shape {image.shape}"
        )
    if method == "multiotsu" and (not isinstance(classes, (int, np.integer)) or classes < 2):
        raise ValueError(f"classes must be an integer >= 2 for multiotsu, got {classes!r}")
    if method == "manual":
        if value is None:
            raise ValueError("method='manual' needs a threshold: pass value=<number>")
        if not np.isscalar(value) or not np.isfinite(float(value)):
            raise ValueError(f"value must be a finite number, got {value!r}")
    if not np.isscalar(sigma) or not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a number >= 0 (pixels), got {sigma!r}")
    if not isinstance(nbins, (int, np.integer)) or nbins < 2:
        raise ValueError(f"nbins must be an integer >= 2, got {nbins!r}")
    if image.dtype == np.float16:
        image = image.astype(np.float32)
    elif image.dtype == bool:
        image = image.view(np.uint8) if not is_dask(image) else image.astype(np.uint8)
    return image


# ----------------------------------------------------------------------- histogram state


class _UnitHistogram:
    """Histogram of one unit (whole array, plane or frame), fed piece by piece.

    Integer images of 8 or 16 bits count into a fixed 256 / 65536 bin histogram in one pass
    (min and max come from it); wider integers and floats need a min/max pass first.
    """

    def __init__(self, dtype, nbins, serial=False):
        self.serial = serial  # serial kernels: the caller runs units in parallel threads
        self.dtype = np.dtype(dtype)
        self.nbins = nbins
        self.counts = None
        self.lo, self.hi = np.inf, -np.inf  # exact ints for integer data
        if self.dtype.kind in "iu" and self.dtype.itemsize <= 2:
            self.mode = "fixed"
            self.offset = int(np.iinfo(self.dtype).min)
            self.counts = np.zeros(1 << (8 * self.dtype.itemsize), np.int64)
        else:
            self.mode = "range"  # wide integers or floats: min/max first

    @property
    def needs_range(self):
        return self.mode == "range"

    def add_range(self, flat):
        from . import _histogram

        lo, hi, _ = _histogram.minmax(flat, self.serial)
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)

    def finish_range(self):
        """Choose the bins once min and max are known; False when no histogram is needed."""
        if self.lo > self.hi or self.lo == self.hi:
            self.mode = "degenerate"
            return False
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            raise ValueError("image contains infinite values; replace them (np.nan_to_num) first")
        if self.dtype.kind in "iu" and self.hi - self.lo + 1 <= _MAX_INT_LEVELS:
            self.mode = "int"
            self.offset = int(self.lo)
            self.counts = np.zeros(int(self.hi - self.lo) + 1, np.int64)
        else:
            # np.histogram's edges: linspace in the data's float type (float64 for integers).
            ftype = self.dtype if self.dtype.kind == "f" else np.dtype(np.float64)
            self.mode = "float"
            self.edges = np.linspace(
                ftype.type(self.lo), ftype.type(self.hi), self.nbins + 1, dtype=ftype
            )
            self.counts = np.zeros(self.nbins, np.int64)
        return True

    def add(self, flat):
        from . import _histogram

        if self.mode in ("fixed", "int"):
            self.counts += _histogram.hist_int(flat, self.offset, self.counts.size, self.serial)
        elif self.mode == "float":
            self.counts += _histogram.hist_edges(flat, self.edges, self.serial)

    def result(self):
        """``(counts, centers)`` as ``skimage.exposure.histogram`` gives them.

        None when the unit is constant or all NaN (then ``lo > hi``); sets ``lo`` and ``hi``.
        """
        if self.mode == "fixed":
            nonzero = np.flatnonzero(self.counts)
            if nonzero.size == 0:  # not reached for integers (never NaN), kept for safety
                return None
            first, last = nonzero[0], nonzero[-1]
            self.lo, self.hi = first + self.offset, last + self.offset
            counts = self.counts[first : last + 1]
            centers = np.arange(self.lo, self.hi + 1)
        elif self.mode == "int":
            counts = self.counts
            centers = np.arange(self.lo, self.hi + 1)
        elif self.mode == "float":
            counts = self.counts
            centers = (self.edges[:-1] + self.edges[1:]) / 2.0
        else:
            return None
        if self.lo == self.hi:
            return None
        return counts, centers


# ------------------------------------------------------------------ thresholds from data


def _triangle_from_hist(hist, bin_centers):
    """``skimage.filters.threshold_triangle`` after its histogram (same arithmetic)."""
    nbins = len(hist)
    arg_peak_height = np.argmax(hist)
    peak_height = hist[arg_peak_height]
    arg_low_level, arg_high_level = np.flatnonzero(hist)[[0, -1]]
    flip = arg_peak_height - arg_low_level < arg_high_level - arg_peak_height
    if flip:
        hist = hist[::-1]
        arg_low_level = nbins - arg_high_level - 1
        arg_peak_height = nbins - arg_peak_height - 1
    width = arg_peak_height - arg_low_level
    x1 = np.arange(width)
    y1 = hist[x1 + arg_low_level]
    norm = np.sqrt(peak_height**2 + width**2)
    peak_height = peak_height / norm
    width = width / norm
    length = peak_height * x1 - width * y1
    arg_level = np.argmax(length) + arg_low_level
    if flip:
        arg_level = nbins - arg_level - 1
    return bin_centers[arg_level]


def _li_from_int_hist(counts, lo):
    """``skimage.filters.threshold_li`` of an integer image from its histogram (same loop)."""
    hist = counts.astype("float32", copy=False)
    bin_centers = np.arange(counts.size)  # the image shifted to start at 0, as scikit-image does
    tolerance = 0.5
    t_next = float(np.dot(counts, bin_centers)) / int(counts.sum())  # == np.mean, exactly
    t_curr = -2 * tolerance
    while abs(t_next - t_curr) > tolerance:
        t_curr = t_next
        foreground = bin_centers > t_curr
        background = ~foreground
        mean_fore = np.average(bin_centers[foreground], weights=hist[foreground])
        mean_back = np.average(bin_centers[background], weights=hist[background])
        if mean_back == 0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    return t_next + lo


def _multiotsu_hist(counts, centers, nbins):
    """Rebin a very wide integer histogram as ``np.histogram(image.astype(float), nbins)``."""
    if counts.size <= _MAX_MULTIOTSU_LEVELS:
        return counts, centers
    edges = np.linspace(float(centers[0]), float(centers[-1]), nbins + 1)
    index = np.clip(np.searchsorted(edges, centers, side="right") - 1, 0, nbins - 1)
    return np.bincount(index, weights=counts, minlength=nbins), (edges[:-1] + edges[1:]) / 2.0


def _from_histogram(method, hist, classes, nbins):
    """Threshold(s) of one unit from its ``(counts, centers)`` histogram."""
    import skimage.filters as skf

    counts, centers = hist
    if method == "triangle":
        return _triangle_from_hist(counts, centers)
    if method == "mean":  # integer images only: the exact mean from the histogram
        return float(int(np.dot(counts, centers.astype(np.int64)))) / int(counts.sum())
    if method == "li":
        return _li_from_int_hist(counts, centers[0])
    if method == "multiotsu":
        counts, centers = _multiotsu_hist(counts, centers, nbins)
        # scikit-image normalizes its own histogram before the (float32) search; do the same.
        return skf.threshold_multiotsu(hist=(counts / counts.sum(), centers), classes=classes)
    func = getattr(skf, f"threshold_{method}")
    try:
        return func(hist=(counts, centers))
    except RuntimeError as exc:  # threshold_minimum without two histogram peaks
        raise ValueError(f"method {method!r} failed on this image: {exc}") from exc


def _from_values(method, data):
    """Li or mean of float data, which scikit-image computes from the values themselves."""
    import skimage.filters as skf

    data = np.asarray(data)
    nan = np.isnan(data)
    if nan.any():
        data = data[~nan]
    if method == "mean":
        return np.mean(data)
    return skf.threshold_li(data)


# ------------------------------------------------------------------------- units, pieces


def _n_units(shape, scope):
    if scope == "image":
        return ()
    if scope == "slice":
        return tuple(shape[:-2])
    return tuple(shape[:1])


def _numpy_units(image, scope):
    """Yield ``(unit index, unit array)``: the whole array, each plane or each frame."""
    if scope == "image":
        yield (), image
    else:
        for index in np.ndindex(*_n_units(image.shape, scope)):
            yield index, image[index]


def _pieces(unit):
    """Flat contiguous pieces of a numpy unit, at most ``_PIECE`` values each."""
    flat = np.ascontiguousarray(unit).reshape(-1)
    for start in range(0, flat.size, _PIECE):
        yield flat[start : start + _PIECE]


def _dask_pieces(image, scope, after_block=None):
    """Yield ``(unit index, flat numpy piece)`` for each chunk of a dask array, chunk by chunk.

    ``after_block()`` is called once each chunk has been handed out.
    """
    lead = len(_n_units(image.shape, scope))
    starts = [np.cumsum((0,) + c) for c in image.chunks[:lead]]
    for block_index in np.ndindex(*image.numblocks):
        block = np.asarray(image.blocks[block_index])
        if lead == 0:
            yield (), np.ascontiguousarray(block).reshape(-1)
        else:
            offset = tuple(int(starts[a][block_index[a]]) for a in range(lead))
            for local in np.ndindex(*block.shape[:lead]):
                unit = tuple(o + i for o, i in zip(offset, local))
                yield unit, np.ascontiguousarray(block[local]).reshape(-1)
        if after_block is not None:
            after_block()


class _Progress:
    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, max(int(total), 1), 0

    def step(self, n=1):
        self.done += n
        if self.callback is not None:
            self.callback(min(self.done, self.total), self.total)

    def finish(self):
        if self.done < self.total:
            self.step(self.total - self.done)


# ----------------------------------------------------------------------------- core work


def _unit_threshold(method, hist_state, result, values, classes, nbins, where):
    """Threshold(s) of one unit once its histogram is complete."""
    if result is None:
        if hist_state.lo > hist_state.hi:
            raise ValueError(f"{where} has only NaN values: there is nothing to threshold")
        raise ValueError(
            f"{where} is constant (every value is {hist_state.lo:g}): no threshold separates it"
        )
    float_data = hist_state.mode == "float"
    if method in ("li", "mean") and float_data:
        return _from_values(method, values())
    try:
        return _from_histogram(method, result, classes, nbins)
    except ValueError as exc:
        if where == "image":
            raise
        raise ValueError(f"{where}: {exc}") from exc


def _where(scope, index):
    if scope == "image" or not index:  # a 2D image is its own single slice
        return "image"
    return f"{scope} {index if len(index) > 1 else index[0]}"


def _unit_thresholds(unit, index, method, scope, classes, nbins, serial, step):
    """Threshold(s) of one numpy unit, as a (k,) array; ``step()`` after each piece read."""
    k = classes - 1 if method == "multiotsu" else 1
    state = _UnitHistogram(unit.dtype, nbins, serial)
    if state.needs_range:
        for piece in _pieces(unit):
            state.add_range(piece)
            step()
        if state.finish_range():
            for piece in _pieces(unit):
                state.add(piece)
                step()
    else:
        for piece in _pieces(unit):
            state.add(piece)
            step()
    result = state.result()
    if result is None and scope != "image" and index:
        # A blank or all-NaN plane in a stack: everything background, as scikit-image's
        # Otsu returns the constant value itself.
        return np.full(k, state.lo if state.lo <= state.hi else np.nan)
    where = _where(scope, index)
    t = _unit_threshold(method, state, result, lambda: unit, classes, nbins, where)
    return np.reshape(np.asarray(t, np.float64), -1)


def _run_units(work, indices, progress):
    """``work(index)`` for every unit, in parallel threads (the kernels release the GIL).

    Progress is reported in order, unit by unit; an exception (or a cancel raised by the
    progress callback) cancels the units not yet started.
    """
    import numba

    workers = min(len(indices), numba.get_num_threads())
    if workers <= 1:
        results = []
        for index in indices:
            results.append(work(index))
            progress.step()
        return results
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(work, index) for index in indices]
        try:
            results = []
            for future in futures:
                results.append(future.result())
                progress.step()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def _thresholds_numpy(image, method, scope, classes, nbins, progress, per_unit=None):
    """Thresholds of every unit of a numpy image; ``per_unit(index, unit, t, serial)`` after each.

    The whole array runs as pieces through parallel kernels; planes and frames run as units
    through serial kernels, several units at a time.
    """
    units = _n_units(image.shape, scope)
    k = classes - 1 if method == "multiotsu" else 1
    out = np.empty(units + (k,), np.float64)
    if scope == "image":
        out[()] = _unit_thresholds(image, (), method, scope, classes, nbins, False, progress.step)
        if per_unit is not None:
            per_unit((), image, out[()], False)
        return out

    def work(index):
        unit = image[index]
        t = _unit_thresholds(unit, index, method, scope, classes, nbins, True, lambda: None)
        if per_unit is not None:
            per_unit(index, unit, t, True)
        return t

    indices = list(np.ndindex(*units))
    for index, t in zip(indices, _run_units(work, indices, progress)):
        out[index] = t
    return out


def _dask_passes(image):
    """Reads of a dask array for its histograms: one for 8/16-bit integers, else two."""
    return 1 if _UnitHistogram(image.dtype, 2).mode == "fixed" else 2


def _thresholds_dask(image, method, scope, classes, nbins, progress):
    """Thresholds of every unit of a dask image, reading it chunk by chunk.

    ``progress`` steps once per chunk and pass (``_dask_passes``), then once at the end.
    """
    units = _n_units(image.shape, scope)
    k = classes - 1 if method == "multiotsu" else 1
    # Planes and frames: serial kernels per piece (many small calls); the whole array: parallel.
    serial = scope != "image"
    states = {index: _UnitHistogram(image.dtype, nbins, serial) for index in np.ndindex(*units)}
    needs_hist = True
    if _dask_passes(image) == 2:
        for unit, piece in _dask_pieces(image, scope, progress.step):
            states[unit].add_range(piece)
        needs_hist = any([state.finish_range() for state in states.values()])
    if needs_hist:
        for unit, piece in _dask_pieces(image, scope, progress.step):
            states[unit].add(piece)
    out = np.empty(units + (k,), np.float64)
    for index, state in states.items():
        result = state.result()
        if result is None and scope != "image" and index:
            t = np.full(k, state.lo if state.lo <= state.hi else np.nan)
        else:
            # li and mean of float data need the values: this loads one unit (documented).
            values = lambda: np.asarray(image[index])  # noqa: E731
            t = _unit_threshold(
                method, state, result, values, classes, nbins, _where(scope, index)
            )
        out[index] = np.reshape(t, -1)
    progress.finish()
    return out


def _format(thresholds, method, scope):
    """Float for one threshold of the whole image, else an array (see ``threshold_value``)."""
    if method != "multiotsu":
        thresholds = thresholds[..., 0]
    if scope == "image":
        return float(thresholds) if method != "multiotsu" else thresholds
    return thresholds


# -------------------------------------------------------------------------- smoothing


def _smooth_numpy(image, sigma):
    """Gaussian of ``sigma`` pixels over the last two axes; NaN-aware (normalized)."""
    from scipy import ndimage as ndi

    sigmas = (0,) * (image.ndim - 2) + (sigma, sigma)
    ftype = np.float64 if image.dtype == np.float64 else np.float32
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


def _smooth(image, sigma):
    if not sigma:
        return image
    if not is_dask(image):
        return _smooth_numpy(image, sigma)
    # Whole planes per chunk, so each chunk is smoothed exactly as the numpy array would be.
    planes = image.rechunk(image.chunks[:-2] + (-1, -1))
    ftype = np.float64 if image.dtype == np.float64 else np.float32
    return planes.map_blocks(_smooth_numpy, sigma, dtype=ftype)


# --------------------------------------------------------------------------- public API


def threshold_value(image, method="otsu", *, scope="image", classes=3, sigma=0.0, nbins=256):
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
    sigma : float
        Gaussian smoothing (pixels) in the last two axes before thresholding; 0 for none.
        Integer images are smoothed into float32.
    nbins : int
        Histogram bins for float images (integer images use one bin per grey level).

    Returns
    -------
    threshold : float or ndarray
        A float for ``scope="image"``; for ``"slice"`` / ``"frame"`` an array with one value
        per plane / frame (shape ``image.shape[:-2]`` / ``image.shape[:1]``). Multi-Otsu adds a
        last axis of ``classes - 1`` thresholds. In a stack, a plane that is constant gets its
        value (nothing above it) and an all-NaN plane gets NaN.

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
    image = _check_options(image, method, scope, classes, None, sigma, nbins)
    if method == "manual":
        raise ValueError("method='manual' has no threshold to compute; pass value= to threshold()")
    image = _smooth(image, sigma)
    if is_dask(image):
        thresholds = _thresholds_dask(image, method, scope, classes, nbins, _Progress(None, 1))
    else:
        thresholds = _thresholds_numpy(image, method, scope, classes, nbins, _Progress(None, 1))
    return _format(thresholds, method, scope)


def _fill_holes(mask):
    """Fill background regions (face-connected) that do not touch the border, in place."""
    if mask.ndim in (2, 3):
        import cc3d

        labels, n = cc3d.connected_components(
            mask == 0, connectivity=4 if mask.ndim == 2 else 6, return_N=True
        )
    else:
        from scipy import ndimage as ndi

        labels, n = ndi.label(mask == 0)
    outside = np.zeros(n + 1, bool)
    outside[0] = True  # label 0: the foreground itself
    for axis in range(mask.ndim):
        for end in (0, -1):
            outside[np.take(labels, end, axis=axis)] = True
    mask[~outside[labels]] = 1


def _remove_small(mask, min_size):
    """Remove face-connected objects of fewer than ``min_size`` pixels, in place."""
    if mask.ndim in (2, 3):
        import cc3d

        cc3d.dust(mask, threshold=min_size, connectivity=4 if mask.ndim == 2 else 6, in_place=True)
        return
    from scipy import ndimage as ndi

    labels, _ = ndi.label(mask)
    small = np.bincount(labels.reshape(-1)) < min_size
    small[0] = False
    mask[small[labels]] = 0


def _postprocess(mask, fill_holes, min_size):
    if fill_holes:
        _fill_holes(mask)
    if min_size > 1:
        _remove_small(mask, int(min_size))
    return mask


def _postprocess_units(mask, scope, fill_holes, min_size):
    """Post-process a numpy mask unit by unit (planes, frames or the whole array)."""
    for _, unit in _numpy_units(mask, scope):
        _postprocess(unit, fill_holes, min_size)  # unit is a view: in place
    return mask


def _exact_bound(t, dtype, side):
    """A bound in ``dtype`` with the same comparisons against ``dtype`` values as float ``t``.

    side "down": the largest representable value <= t, so ``x > t`` iff ``x > bound`` and
    ``x <= t`` iff ``x <= bound``; side "up": the smallest >= t, so ``x >= t`` iff
    ``x >= bound``. Returns -inf / +inf (as Python floats) when t is outside the dtype's range.
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        bound = np.floor(t) if side == "down" else np.ceil(t)
        if bound < info.min:
            return -np.inf
        if bound > info.max:
            return np.inf
        return dtype.type(int(bound))
    bound = dtype.type(t)
    # float(bound): compared with a Python float, a float32 scalar would round t to float32.
    if side == "down" and float(bound) > t:
        bound = np.nextafter(bound, dtype.type(-np.inf))
    elif side == "up" and float(bound) < t:
        bound = np.nextafter(bound, dtype.type(np.inf))
    return bound


def _compare(values, thresholds, mode, out):
    """Mask or classes of ``values`` into uint8 ``out`` (same shape), exactly as in float64.

    mode 0: ``values > t``; 1: ``values <= t``; 2: the number of thresholds ``<= values``
    (``np.digitize``). NaN gives 0 in every mode. The comparison runs in the data's own dtype
    against an exactly equivalent bound (no float64 copy of the data).
    """
    flags = out.view(bool)
    thresholds = np.reshape(thresholds, -1)
    if mode in (0, 1):
        bound = _exact_bound(float(thresholds[0]), values.dtype, "down")
        if np.isnan(thresholds[0]):
            out[...] = 0
        elif np.isinf(bound):
            # t below (above) every representable value: x > t is all (no) non-NaN pixels.
            above = bound < 0
            if values.dtype.kind == "f":
                np.logical_not(np.isnan(values), out=flags)
                if above == (mode == 1):
                    out[...] = 0
            else:
                out[...] = int(above != (mode == 1))
        elif mode == 0:
            np.greater(values, bound, out=flags)
        else:
            np.less_equal(values, bound, out=flags)
        return out
    out[...] = 0
    for t in thresholds:
        bound = _exact_bound(float(t), values.dtype, "up")
        if np.isinf(bound) and bound > 0:
            continue
        if np.isinf(bound):  # every non-NaN value is >= t
            out += ~np.isnan(values) if values.dtype.kind == "f" else np.uint8(1)
        else:
            out += values >= bound
    return out


def _compare_threaded(values, thresholds, mode, out):
    """``_compare`` over flat pieces in threads (numpy releases the GIL in comparisons)."""
    values, target = values.reshape(-1), out.reshape(-1)
    step = _PIECE // 16
    starts = range(0, values.size, step)
    if len(starts) <= 1:
        return _compare(values, thresholds, mode, target)
    from concurrent.futures import ThreadPoolExecutor

    import numba

    with ThreadPoolExecutor(numba.get_num_threads()) as pool:
        list(
            pool.map(
                lambda s: _compare(values[s : s + step], thresholds, mode, target[s : s + step]),
                starts,
            )
        )
    return out


def _mask_block(block, thresholds, scope, mode, block_info=None):
    """Mask of one dask block, with the thresholds of the units it covers.

    Unthreaded: dask already runs blocks in parallel threads.
    """
    out = np.empty(block.shape, np.uint8)
    if scope == "image" or block_info is None:
        return _compare(block, thresholds.reshape(-1, thresholds.shape[-1])[0], mode, out)
    location = block_info[0]["array-location"]
    lead = thresholds.ndim - 1
    for local in np.ndindex(*block.shape[:lead]):
        unit = tuple(location[a][0] + i for a, i in enumerate(local))
        _compare(block[local], thresholds[unit], mode, out[local])
    return out


def threshold(
    image,
    method="otsu",
    *,
    scope="image",
    value=None,
    classes=3,
    sigma=0.0,
    invert=False,
    fill_holes=False,
    min_size=0,
    return_thresholds=False,
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
    sigma : float
        Gaussian smoothing (pixels) in the last two axes before thresholding.
    invert : bool
        Foreground is ``image <= t`` (dark objects on a bright background).
    fill_holes : bool
        Fill background regions enclosed by foreground (face connectivity).
    min_size : int
        Remove foreground objects (face connectivity) of fewer than ``min_size`` pixels.
    return_thresholds : bool
        Also return the threshold(s), as ``threshold_value`` gives them.
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
    image = _check_options(image, method, scope, classes, value, sigma, 256)
    if method == "multiotsu" and (fill_holes or min_size):
        raise ValueError("fill_holes and min_size apply to binary masks, not multiotsu classes")
    if not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise ValueError(f"min_size must be an integer >= 0 (pixels), got {min_size!r}")
    mode = 2 if method == "multiotsu" else (1 if invert else 0)
    post = bool(fill_holes) or min_size > 1
    data = _smooth(image, sigma)
    units = _n_units(image.shape, scope)
    n_units = int(np.prod(units)) if units else 1

    if is_dask(data):
        reads = 0 if method == "manual" else _dask_passes(data) * int(np.prod(data.numblocks))
        progress_ = _Progress(progress, reads + 1)
        if method == "manual":
            thresholds = np.full(units + (1,), float(value))
        else:
            thresholds = _thresholds_dask(data, method, scope, classes, 256, progress_)
        mask = data.map_blocks(_mask_block, thresholds, scope, mode, dtype=np.uint8)
        if not post and mask.chunks != image.chunks:  # smoothing worked on whole planes
            mask = mask.rechunk(image.chunks)
        if post:
            lead = len(units)
            whole = mask.chunks[:lead] + (-1,) * (mask.ndim - lead)
            mask = mask.rechunk(whole).map_blocks(
                _postprocess_units, scope, fill_holes, min_size, dtype=np.uint8
            )
        result = mask
    else:
        mask = np.empty(image.shape, np.uint8)
        if scope == "image":
            pieces = -(-data.size // _PIECE)
            passes = _dask_passes(data)  # same rule: 8/16-bit integers need one read
            total = (0 if method == "manual" else passes * pieces) + 1 + post
        else:
            total = n_units
        progress_ = _Progress(progress, total)

        def per_unit(index, unit, t, serial):
            target = mask[index]
            if serial:  # already one of several threads
                _compare(unit, t, mode, target)
            else:
                _compare_threaded(unit, t, mode, target)
            if post:
                _postprocess(target, fill_holes, min_size)

        if method == "manual":
            thresholds = np.full(units + (1,), float(value))
            if scope == "image":
                per_unit((), data, thresholds[()], False)
            else:
                indices = list(np.ndindex(*units))
                _run_units(lambda i: per_unit(i, data[i], thresholds[i], True), indices, progress_)
        else:
            thresholds = _thresholds_numpy(
                data, method, scope, classes, 256, progress_, per_unit=per_unit
            )
        progress_.finish()
        result = mask
    if return_thresholds:
        return result, _format(thresholds, method if method == "multiotsu" else "", scope)
    return result
