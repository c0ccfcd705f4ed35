"""Masks and classes from thresholds, compared exactly in the data's own dtype."""

import numpy as np

from ._threshold_passes import PIECE


def exact_bound(t, dtype, side):
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


def compare(values, thresholds, mode, out):
    """Mask or classes of ``values`` into uint8 ``out`` (same shape), exactly as in float64.

    mode 0: ``values > t``; 1: ``values <= t``; 2: the number of thresholds ``<= values``
    (``np.digitize``). NaN gives 0 in every mode. The comparison runs in the data's own dtype
    against an exactly equivalent bound (no float64 copy of the data).
    """
    flags = out.view(bool)
    thresholds = np.reshape(thresholds, -1)
    if mode in (0, 1):
        bound = exact_bound(float(thresholds[0]), values.dtype, "down")
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
        bound = exact_bound(float(t), values.dtype, "up")
        if np.isinf(bound) and bound > 0:
            continue
        if np.isinf(bound):  # every non-NaN value is >= t
            out += ~np.isnan(values) if values.dtype.kind == "f" else np.uint8(1)
        else:
            out += values >= bound
    return out


def compare_threaded(values, thresholds, mode, out):
    """``compare`` over flat pieces in threads (numpy releases the GIL in comparisons)."""
    values, target = values.reshape(-1), out.reshape(-1)
    step = PIECE // 16
    starts = range(0, values.size, step)
    if len(starts) <= 1:
        return compare(values, thresholds, mode, target)
    from concurrent.futures import ThreadPoolExecutor

    import numba

    with ThreadPoolExecutor(numba.get_num_threads()) as pool:
        list(
            pool.map(
                lambda s: compare(values[s : s + step], thresholds, mode, target[s : s + step]),
                starts,
            )
        )
    return out


def mask_block(block, thresholds, scope, mode, block_info=None):
    """Mask of one dask block, with the thresholds of the units it covers.

    Unthreaded: dask already runs blocks in parallel threads.
    """
    out = np.empty(block.shape, np.uint8)
    if scope == "image" or block_info is None:
        return compare(block, thresholds.reshape(-1, thresholds.shape[-1])[0], mode, out)
    location = block_info[0]["array-location"]
    lead = thresholds.ndim - 1
    for local in np.ndindex(*block.shape[:lead]):
        unit = tuple(location[a][0] + i for a, i in enumerate(local))
        compare(block[local], thresholds[unit], mode, out[local])
    return out
