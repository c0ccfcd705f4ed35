"""Tiling: one pass for planes that fit a tile, MONAI's sliding window for larger ones.

:func:`_plan` gives a unit's padded shape, window size and window count (the count MONAI's
sliding window visits, so progress is exact); :func:`_infer_unit` runs one normalized plane or
volume through a :class:`~napari_binseg.unet.backends._Runner`.
"""

import math

import numpy as np


def _pad_to(x, target):
    """Pad the spatial dims of a (1, 1, *S) ndarray at their ends up to ``target`` (mirrored
    where the padding is shorter than the side, else the edge repeated)."""
    spatial = x.shape[2:]
    pads = [(0, 0), (0, 0)] + [(0, t - s) for s, t in zip(spatial, target, strict=True)]
    if not any(after for _, after in pads):
        return x
    small = all(t - s < s for s, t in zip(spatial, target, strict=True))
    return np.pad(x, pads, mode="reflect" if small else "edge")


def _roi(shape, tile_size, divisor, overlap):
    """Window size per axis: at most ``tile_size``, as small as covers the axis in the same
    number of windows (a 1388-pixel axis takes 2 windows of 800, not 2 of 1024)."""
    tile = max(divisor, (tile_size // divisor) * divisor)
    roi = []
    for s in shape:
        if s <= tile:
            roi.append(s)
            continue
        n = _n_windows((s,), (tile,), overlap)
        r = max(divisor, math.ceil(s / (1 + (n - 1) * (1 - overlap)) / divisor) * divisor)
        while r < tile and _n_windows((s,), (r,), overlap) > n:
            r += divisor
        roi.append(min(r, tile))
    return tuple(roi)


def _n_windows(shape, roi, overlap):
    """Number of windows MONAI's sliding window visits (same scan as its implementation)."""
    n = 1
    for s, r in zip(shape, roi, strict=True):
        if r >= s:
            continue
        step = max(int(r * (1 - overlap)), 1)
        n *= math.ceil((s - r) / step) + 1
    return n


def _plan(spatial, lm, tile_size, overlap):
    """Padded shape, ROI and window count of one unit (plane or volume)."""
    div = lm.config["divisor"]
    padded = tuple(max(math.ceil(s / div) * div, div) for s in spatial)
    roi = _roi(padded, tile_size, div, overlap)
    if all(r >= p for r, p in zip(roi, padded, strict=True)):
        return padded, None, 1
    return padded, roi, _n_windows(padded, roi, overlap)


def _infer_unit(unit, lm, runner, *, tile_size, overlap, batch_size):
    """(C, *spatial) float32 probabilities of one normalized plane/volume (one network call
    on an ndarray where it fits a tile; tiles of a tensor otherwise)."""
    spatial = unit.shape
    padded, roi, _ = _plan(spatial, lm, tile_size, overlap)
    x = _pad_to(np.ascontiguousarray(unit, np.float32)[None, None], padded)
    crop = (0, slice(None)) + tuple(slice(0, s) for s in spatial)
    import torch

    with torch.inference_mode():
        if roi is None:
            y = runner(x)
            return (y if isinstance(y, np.ndarray) else y.float().cpu().numpy())[crop]
        from monai.inferers import sliding_window_inference

        y = sliding_window_inference(
            torch.from_numpy(x).to(lm.device),
            roi_size=roi,
            sw_batch_size=batch_size,
            predictor=runner,
            overlap=overlap,
            mode="gaussian",
            padding_mode="reflect",
        )
        return y[crop].float().cpu().numpy()
