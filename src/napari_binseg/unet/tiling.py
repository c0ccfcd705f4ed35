"""Tiling: one pass for planes that fit a tile, MONAI's sliding window for larger ones.

:func:`_plan` gives a unit's padded shape, window size and window count (the count MONAI's
sliding window visits, so progress is exact); :func:`_infer_unit` runs one normalized plane or
volume through a :class:`~napari_binseg.unet.backends._Runner`.
"""

import math

import numpy as np


def _pad_to(x, target):
    """Pad the spatial dims of (1, 1, *S) at their ends up to ``target`` (mirrored where the
    padding is shorter than the side, else the edge repeated)."""
    import torch.nn.functional as F

    spatial = x.shape[2:]
    pads = []
    for s, t in zip(reversed(spatial), reversed(target), strict=True):
        pads += [0, t - s]
    if not any(pads):
        return x
    small = all(t - s < s for s, t in zip(spatial, target, strict=True))
    mode = "reflect" if small else "replicate"
    return F.pad(x, pads, mode=mode)


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
    """(C, *spatial) float32 probabilities of one normalized plane/volume."""
    import torch

    spatial = unit.shape
    padded, roi, _ = _plan(spatial, lm, tile_size, overlap)
    x = torch.from_numpy(np.ascontiguousarray(unit))[None, None].to(lm.device)
    x = _pad_to(x, padded)
    with torch.inference_mode():
        if roi is None:
            y = runner(x)
        else:
            from monai.inferers import sliding_window_inference

            y = sliding_window_inference(
                x,
                roi_size=roi,
                sw_batch_size=batch_size,
                predictor=runner,
                overlap=overlap,
                mode="gaussian",
                padding_mode="reflect",
            )
        crop = (0, slice(None)) + tuple(slice(0, s) for s in spatial)
        return y[crop].float().cpu().numpy()
