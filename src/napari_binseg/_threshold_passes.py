"""Histogram passes over numpy and dask arrays: units, pieces, threads and progress.

A numpy array is read as pieces of at most ``PIECE`` values through parallel kernels (scope
"image") or as planes / frames, several at a time in threads through serial kernels; a dask
array chunk by chunk (one read for 8/16-bit integers, two for wider integers and floats).
"""

import numpy as np

from ._threshold_methods import UnitHistogram, unit_threshold, where_text
from ._threshold_noise import smooth_dtype, smooth_numpy

#: Values per piece of a whole-array pass: progress is reported (and can be cancelled) per piece.
#: Large: every parallel kernel call pays thread wake-up and 65536-bin local histograms.
PIECE = 1 << 26


def n_units(shape, scope):
    if scope == "image":
        return ()
    if scope == "slice":
        return tuple(shape[:-2])
    return tuple(shape[:1])


def numpy_units(image, scope):
    """Yield ``(unit index, unit array)``: the whole array, each plane or each frame."""
    if scope == "image":
        yield (), image
    else:
        for index in np.ndindex(*n_units(image.shape, scope)):
            yield index, image[index]


def pieces(unit):
    """Flat contiguous pieces of a numpy unit, at most ``PIECE`` values each."""
    flat = np.ascontiguousarray(unit).reshape(-1)
    for start in range(0, flat.size, PIECE):
        yield flat[start : start + PIECE]


def unit_data(image, index, sigmas=None):
    """Unit ``index`` of a numpy image as it is thresholded: smoothed with its own sigma where
    ``sigmas`` (an array of one per unit) is given."""
    unit = image[index]
    return unit if sigmas is None else smooth_numpy(unit, sigmas[index])


def unit_dtype(dtype, index, sigmas=None):
    """The dtype of unit ``index`` as it is thresholded (:func:`unit_data`)."""
    return dtype if sigmas is None or not sigmas[index] else smooth_dtype(dtype)


def dask_pieces(image, scope, after_block=None, sigmas=None):
    """Yield ``(unit index, flat numpy piece)`` for each chunk of a dask array, chunk by chunk.

    ``after_block()`` is called once each chunk has been handed out. ``sigmas``: each unit's
    part of a chunk (whole planes) is smoothed with its own sigma.
    """
    lead = len(n_units(image.shape, scope))
    starts = [np.cumsum((0,) + c) for c in image.chunks[:lead]]
    for block_index in np.ndindex(*image.numblocks):
        block = np.asarray(image.blocks[block_index])
        if lead == 0:
            yield (), np.ascontiguousarray(block).reshape(-1)
        else:
            offset = tuple(int(starts[a][block_index[a]]) for a in range(lead))
            for local in np.ndindex(*block.shape[:lead]):
                unit = tuple(o + i for o, i in zip(offset, local, strict=True))
                part = block[local] if sigmas is None else smooth_numpy(block[local], sigmas[unit])
                yield unit, np.ascontiguousarray(part).reshape(-1)
        if after_block is not None:
            after_block()


class Progress:
    def __init__(self, callback, total):
        self.callback, self.total, self.done = callback, max(int(total), 1), 0

    def step(self, n=1):
        self.done += n
        if self.callback is not None:
            self.callback(min(self.done, self.total), self.total)

    def more(self, total):
        """``total`` steps still to come, after those done (a stage whose count was not known
        before the first one ran)."""
        self.total = self.done + max(int(total), 1)

    def finish(self):
        if self.done < self.total:
            self.step(self.total - self.done)


# ----------------------------------------------------------------------------- core work


def unit_thresholds(unit, index, method, scope, classes, nbins, serial, step, **rules):
    """Threshold(s) of one numpy unit, as a (k,) array; ``step()`` after each piece read.

    ``rules``: ``clip``, ``outliers`` and ``notes`` of :func:`unit_threshold`.
    """
    k = classes - 1 if method == "multiotsu" else 1
    state = UnitHistogram(unit.dtype, nbins, serial)
    if state.needs_range:
        for piece in pieces(unit):
            state.add_range(piece)
            step()
        if state.finish_range():
            for piece in pieces(unit):
                state.add(piece)
                step()
    else:
        for piece in pieces(unit):
            state.add(piece)
            step()
    result = state.result()
    if result is None and scope != "image" and index:
        # A blank or all-NaN plane in a stack: everything background, as scikit-image's
        # Otsu returns the constant value itself.
        return np.full(k, state.lo if state.lo <= state.hi else np.nan)
    where = where_text(scope, index)
    t = unit_threshold(method, state, result, lambda: unit, classes, nbins, where, **rules)
    return np.reshape(np.asarray(t, np.float64), -1)


def run_units(work, indices, progress):
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


def thresholds_numpy(
    image, method, scope, classes, nbins, progress, per_unit=None, sigmas=None, **rules
):
    """Thresholds of every unit of a numpy image; ``per_unit(index, unit, t, serial)`` after each.

    The whole array runs as pieces through parallel kernels; planes and frames run as units
    through serial kernels, several units at a time. ``sigmas`` (planes and frames): each
    unit is smoothed with its own sigma first (:func:`unit_data`).
    """
    units = n_units(image.shape, scope)
    k = classes - 1 if method == "multiotsu" else 1
    out = np.empty(units + (k,), np.float64)
    if scope == "image":
        out[()] = unit_thresholds(
            image, (), method, scope, classes, nbins, False, progress.step, **rules
        )
        if per_unit is not None:
            per_unit((), image, out[()], False)
        return out

    def work(index):
        unit = unit_data(image, index, sigmas)
        t = unit_thresholds(
            unit, index, method, scope, classes, nbins, True, lambda: None, **rules
        )
        if per_unit is not None:
            per_unit(index, unit, t, True)
        return t

    indices = list(np.ndindex(*units))
    for index, t in zip(indices, run_units(work, indices, progress), strict=True):
        out[index] = t
    return out


def dask_passes(image, sigmas=None):
    """Reads of a dask array for its histograms: one for 8/16-bit integers, else two (also
    where ``sigmas`` smooths some units into floats)."""
    dtype = image.dtype if sigmas is None or not np.any(sigmas) else smooth_dtype(image.dtype)
    return 1 if UnitHistogram(dtype, 2).mode == "fixed" else 2


def thresholds_dask(image, method, scope, classes, nbins, progress, sigmas=None, **rules):
    """Thresholds of every unit of a dask image, reading it chunk by chunk.

    ``progress`` steps once per chunk and pass (``dask_passes``), then once at the end.
    ``sigmas`` (planes and frames; chunks of whole planes): each unit is smoothed with its own
    sigma first.
    """
    units = n_units(image.shape, scope)
    k = classes - 1 if method == "multiotsu" else 1
    # Planes and frames: serial kernels per piece (many small calls); the whole array: parallel.
    serial = scope != "image"
    states = {
        index: UnitHistogram(unit_dtype(image.dtype, index, sigmas), nbins, serial)
        for index in np.ndindex(*units)
    }
    ranged = [state for state in states.values() if state.needs_range]
    needs_hist = len(ranged) < len(states)  # 8/16-bit integer units
    if ranged:
        for unit, piece in dask_pieces(image, scope, progress.step, sigmas):
            if states[unit].needs_range:
                states[unit].add_range(piece)
        needs_hist = any([state.finish_range() for state in ranged]) or needs_hist
    if needs_hist:
        for unit, piece in dask_pieces(image, scope, progress.step, sigmas):
            states[unit].add(piece)
    out = np.empty(units + (k,), np.float64)
    for index, state in states.items():
        result = state.result()
        if result is None and scope != "image" and index:
            t = np.full(k, state.lo if state.lo <= state.hi else np.nan)
        else:
            # li, mean, a clip and ignored outliers of float data need the values: this
            # loads one unit.
            sigma = 0 if sigmas is None else sigmas[index]
            values = lambda i=index, s=sigma: smooth_numpy(np.asarray(image[i]), s)  # noqa: E731
            t = unit_threshold(
                method, state, result, values, classes, nbins, where_text(scope, index), **rules
            )
        out[index] = np.reshape(t, -1)
    progress.finish()
    return out


def format_thresholds(thresholds, method, scope):
    """Float for one threshold of the whole image, else an array (see ``threshold_value``)."""
    if method != "multiotsu":
        thresholds = thresholds[..., 0]
    if scope == "image":
        return float(thresholds) if method != "multiotsu" else thresholds
    return thresholds
