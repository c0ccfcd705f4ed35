"""Threshold methods of one unit (image, plane or frame) from its histogram.

``UnitHistogram`` counts a unit piece by piece with the compiled kernels of ``_histogram``
(one bin per grey level for integers, ``nbins`` equal bins for floats, as
``skimage.exposure.histogram``); ``unit_threshold`` then runs scikit-image's method on that
histogram, or the same arithmetic where scikit-image's function takes no ``hist=``.
"""

import numpy as np

#: Integer data with a wider value range than this is binned as a float image
#: (np.bincount-style histograms of 2**24 bins per thread are no longer cheap).
_MAX_INT_LEVELS = 1 << 24
#: Multi-Otsu builds an (L, L) table over L grey levels; beyond this many levels an integer
#: image is binned into ``nbins`` bins (scikit-image would need gigabytes there).
_MAX_MULTIOTSU_LEVELS = 4096


# ----------------------------------------------------------------------- histogram state


class UnitHistogram:
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
        from . import _histogram  # numba: imported on first use

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
        from . import _histogram  # numba: imported on first use

        if self.mode in ("fixed", "int"):
            self.counts += _histogram.hist_int(flat, self.offset, self.counts.size, self.serial)
        elif self.mode == "float":
            self.counts += _histogram.hist_edges(flat, self.edges, self.serial)

    def result(self):
        """``(counts, centers)`` as ``skimage.exposure.histogram`` gives them.

        None when the unit is constant or all NaN (then ``lo > hi``); sets ``lo`` and ``hi``.
        """
        if self.mode == "fixed":
            # The first and last filled bins (argmax: 5x cheaper than np.flatnonzero).
            filled = self.counts != 0
            if not filled.any():  # not reached for integers (never NaN), kept for safety
                return None
            first, last = filled.argmax(), filled.size - 1 - filled[::-1].argmax()
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


def triangle_from_hist(hist, bin_centers):
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


def li_from_int_hist(counts, lo):
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


def multiotsu_hist(counts, centers, nbins):
    """Rebin a very wide integer histogram as ``np.histogram(image.astype(float), nbins)``."""
    if counts.size <= _MAX_MULTIOTSU_LEVELS:
        return counts, centers
    edges = np.linspace(float(centers[0]), float(centers[-1]), nbins + 1)
    index = np.clip(np.searchsorted(edges, centers, side="right") - 1, 0, nbins - 1)
    return np.bincount(index, weights=counts, minlength=nbins), (edges[:-1] + edges[1:]) / 2.0


def from_histogram(method, hist, classes, nbins):
    """Threshold(s) of one unit from its ``(counts, centers)`` histogram."""
    import skimage.filters as skf

    counts, centers = hist
    if method == "triangle":
        return triangle_from_hist(counts, centers)
    if method == "mean":  # integer images only: the exact mean from the histogram
        return float(int(np.dot(counts, centers.astype(np.int64)))) / int(counts.sum())
    if method == "li":
        return li_from_int_hist(counts, centers[0])
    if method == "multiotsu":
        counts, centers = multiotsu_hist(counts, centers, nbins)
        # scikit-image normalizes its own histogram before the (float32) search; do the same.
        return skf.threshold_multiotsu(hist=(counts / counts.sum(), centers), classes=classes)
    if method == "otsu" and counts.size > 1 and counts[0] and counts[-1]:
        from . import _histogram  # numba: imported on first use

        return _histogram.otsu(counts, centers)
    func = getattr(skf, f"threshold_{method}")
    try:
        return func(hist=(counts, centers))
    except RuntimeError as exc:  # threshold_minimum without two histogram peaks
        raise ValueError(f"method {method!r} failed on this image: {exc}") from exc


def from_values(method, data):
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


def _clipped_float_histogram(data, percentile, nbins, serial=False):
    """``(counts, centers)`` of float ``data`` with values above its ``percentile``-th
    percentile (``np.percentile``'s ``method="higher"``) counted as that percentile, over
    ``nbins`` bins up to it, as ``np.histogram`` bins them; None when that leaves one value
    only. ``serial``: serial kernels."""
    from . import _histogram  # numba: imported on first use

    data = np.asarray(data).ravel()
    nan = np.isnan(data)
    if nan.any():
        data = data[~nan]
    # np.percentile's rank for "higher", and one partition: its own call costs 4x more.
    rank = int(np.ceil((data.size - 1) * (percentile / 100)))
    top = np.partition(data, rank)[rank]
    lo = data.min()
    if not top > lo:
        return None
    edges = np.histogram_bin_edges(data, nbins, range=(lo, top))
    counts = _histogram.hist_edges(np.minimum(data, top), edges, serial)
    return counts, (edges[:-1] + edges[1:]) / 2.0


def _below(values, hist_state):
    """``below(t)`` of :func:`~napari_binseg.background.ignore_bright_outliers` for float data:
    the values at or below ``t`` binned over their own range, as a float image of them alone.
    The kernel skips values beyond the last edge, so nothing is copied."""

    def below(t):
        data = np.ascontiguousarray(values()).reshape(-1)
        state = UnitHistogram(hist_state.dtype, hist_state.nbins, hist_state.serial)
        state.lo = hist_state.lo
        state.hi = float(np.max(data, where=data <= t, initial=-np.inf))  # NaN: not <= t
        if not state.finish_range():
            return None
        state.add(data)
        counts, centers = state.result()
        return counts, centers, int(hist_state.counts.sum() - counts.sum())

    return below


def unit_threshold(
    method,
    hist_state,
    result,
    values,
    classes,
    nbins,
    where,
    clip=None,
    outliers=False,
    notes=None,
):
    """Threshold(s) of one unit once its histogram is complete.

    ``clip``: a percentile; for the methods of ``background.CLIP_METHODS`` the histogram is
    clipped there first (:func:`napari_binseg.background.clip_histogram`). ``outliers``: for
    the methods of ``background.OUTLIER_METHODS``, a tiny bright minority of debris is ignored
    (:func:`napari_binseg.background.ignore_bright_outliers`); when it is, ``notes[where]``
    says what was ignored.
    """
    if result is None:
        if hist_state.lo > hist_state.hi:
            raise ValueError(f"{where} has only NaN values: there is nothing to threshold")
        raise ValueError(
            f"{where} is constant (every value is {hist_state.lo:g}): no threshold separates it"
        )
    float_data = hist_state.mode == "float"
    if method in ("li", "mean") and float_data:
        return from_values(method, values())
    if clip is not None:
        from .background import CLIP_METHODS, clip_histogram

        if method in CLIP_METHODS and float_data:
            # The bins span up to the brightest speck: a few saturated pixels squeeze every
            # other value into the first bin, so cut the bins (not the histogram) at the clip.
            clipped = _clipped_float_histogram(values(), clip, nbins, hist_state.serial)
            result = clipped or result
        elif method in CLIP_METHODS:
            result = clip_histogram(*result, clip)
    try:
        t = from_histogram(method, result, classes, nbins)
    except ValueError as exc:
        if where == "image":
            raise
        raise ValueError(f"{where}: {exc}") from exc
    if outliers:
        from .background import OUTLIER_METHODS, ignore_bright_outliers

        if method in OUTLIER_METHODS:
            below = _below(values, hist_state) if float_data else None
            t, note = ignore_bright_outliers(
                t, *result, lambda c, x: from_histogram(method, (c, x), classes, nbins), below
            )
            if note is not None and notes is not None:
                notes[where] = note
    return t


def where_text(scope, index):
    if scope == "image" or not index:  # a 2D image is its own single slice
        return "image"
    return f"{scope} {index if len(index) > 1 else index[0]}"
