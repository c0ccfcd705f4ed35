"""The 2D U-Net on z-stacks: 3D nuclei from plane predictions, in two modes.

*accurate* (Cellpose's ``do_3D`` [1]_ with this model's outputs): the stack is resampled to
near-isotropic voxels at the size the model segments best, the 2D network runs on the XY, XZ
and YZ planes (every ``plane_step``-th plane, the maps between interpolated), the three
foreground and centre probability maps are averaged, and 3D centre seeds (local maxima) grow
through the 3D foreground; labels are resampled back to the stack's grid.

*fast*: one pass of the XY planes; their foreground and centre maps, stacked, are turned into
3D objects the same way on the stack's own grid. Linking each plane's 2D objects by overlap
(Cellpose's ``stitch_threshold``) is available with ``stitch_threshold=``, but merges nuclei
stacked along z: on dense synthetic stacks (``synthetic_stack``, z step 2x the pixel) it
scores F1@0.5 0.58 where the 3D seeds score 0.97.

Both normalize the stack once (its own intensity percentiles, so a plane above the tissue stays
dark instead of being stretched to full contrast) and estimate the nucleus size once per stack
(:func:`estimate_diameter`). Memory: the network sees one chunk of planes at a time; the
accurate mode holds the resampled stack and two probability sums (3 float32 copies of the
stack at isotropic voxels: ~12 bytes per isotropic voxel at its peak, :func:`memory_need`),
the fast mode two float32 maps at the stack's size. Where the estimated peak exceeds the
available memory, :func:`segment_volume` raises a ValueError before the work that says what
fits instead (``mode="fast"``, a larger ``diameter``, a crop).
``progress(done, total)`` counts planes over all passes and frames; an exception raised by it
stops the work between planes (cancel).

References
----------
.. [1] Stringer, Wang, Michaelos and Pachitariu, "Cellpose: a generalist algorithm for
   cellular segmentation", Nature Methods 18, 100-106 (2021).
"""

import copy
import functools
import math
import time

import numpy as np

from .._validation import is_dask
from ..axes import iter_frames, resolve_spacing
from ._postprocess import add_seedless, continue_numbering, grow_seeds_3d, remove_small
from .inference import _returned, predict_channels, segment
from .inference import estimate_diameter as _plane_diameter
from .normalize import normalize_plane
from .passes import _foreground, model_threshold
from .scale import labels_resized, max_scale, resize

#: Modes of :func:`segment_volume`.
MODES = ("accurate", "fast")

#: Planes per network call in a pass (bounds the memory of one chunk of probabilities).
_CHUNK_PIXELS = 4 * 1024 * 1024

#: A plane through a ball cuts it at a uniformly distributed height, so the median cross
#: section of a nucleus in single planes has 0.87 of its diameter.
_SECTION = math.sqrt(3) / 2

#: Smallest peak of the averaged centre probability that seeds a 3D nucleus.
_PEAK_MIN = 0.3

#: Peak memory of :func:`segment_volume` in bytes: per voxel of the accurate mode's isotropic
#: stack (the resampled stack and the foreground and centre sums, float32 each, held through
#: the three passes); per voxel of one input stack in either mode (the normalized stack, its
#: labels on the input grid); per input voxel of every frame (the output and its uint16
#: copy); per input voxel the fast mode adds (its two float32 maps); per input voxel of the
#: returned probability; per pixel of one network call. Measured as the peak RSS a call adds
#: (benchmarks/bench_3d.py) on synthetic stacks of 2-34 M isotropic voxels: the estimate is
#: within 0.88-1.08x of it (accurate), 0.84-1.28x (fast).
_BYTES = {"iso": 12, "stack": 8, "output": 8, "fast": 8, "probability": 6, "network": 64}


def probabilities_to_labels_3d(
    foreground, centre, *, prob_threshold=0.5, seed_threshold=0.3, min_size=8, diameter=19.3
):
    """Instance labels of a volume from foreground and centre probabilities.

    Seeds are the local maxima of the centre probability (smoothed with a Gaussian of a
    tenth of ``diameter``, maxima over a cube a third of ``diameter`` wide, above
    ``seed_threshold``) inside the foreground; they grow through the foreground (6-connected
    breadth-first flood); a seed whose region stays under a ball of 0.4 ``diameter`` is
    dropped and the others grow again; seedless foreground components are objects of their
    own; objects under ``min_size`` voxels, or under that ball, are removed. Averaged over
    three views, the centre map of two nuclei touching along z has a saddle between them but
    rarely a gap, so thresholded components (the 2D rule) merge them where maxima do not.

    Parameters
    ----------
    foreground, centre : (P, M, N) ndarray of float
        Probabilities in [0, 1].
    prob_threshold, seed_threshold : float
        Foreground threshold; smallest centre peak that seeds a nucleus.
    min_size : float
        Smallest object kept, in voxels.
    diameter : float or (3,) tuple of float
        Typical nucleus diameter in voxels, per axis for anisotropic voxels.

    Returns
    -------
    labels : (P, M, N) ndarray of int32
        0 = background, 1..n consecutive.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.arange(24)[:, None, None]
    >>> centre = np.exp(-(((z - 6) / 3.0) ** 2)) + np.exp(-(((z - 17) / 3.0) ** 2))
    >>> labels = probabilities_to_labels_3d(
    ...     np.ones((24, 3, 3)), centre * np.ones((1, 3, 3)), min_size=1, diameter=10
    ... )
    >>> labels[:, 1, 1].tolist() == [1] * 12 + [2] * 12
    True
    """
    mask, coords, values = _seeds_3d(foreground, centre, prob_threshold, seed_threshold, diameter)
    return _grow_3d(mask, coords, values, min_size=min_size, diameter=diameter)


def _seeds_3d(foreground, centre, prob_threshold, seed_threshold, diameter):
    """The foreground mask and the centre peaks inside it (coordinates, seed numbers): the
    part of :func:`probabilities_to_labels_3d` that reads the probabilities, so a caller can
    free them before the growth."""
    mask = foreground > prob_threshold
    diameter = np.broadcast_to(np.asarray(diameter, float), (3,))
    coords, values = _centre_peaks(centre, diameter, seed_threshold)
    inside = mask[coords]
    return mask, tuple(c[inside] for c in coords), values[inside]


def _grow_3d(mask, coords, values, *, min_size, diameter):
    """Seeds grown through ``mask``, side peaks dropped, seedless components and small objects
    handled: the rest of :func:`probabilities_to_labels_3d`."""
    diameter = np.broadcast_to(np.asarray(diameter, float), (3,))

    def grow(values):
        seeds = np.zeros(mask.shape, np.int32)
        seeds[coords] = values
        return grow_seeds_3d(seeds, mask)

    n_seeds = int(values.max()) if values.size else 0
    labels = grow(values) if n_seeds else np.zeros(mask.shape, np.int32)
    least = 4 / 3 * math.pi * float(np.prod(0.2 * diameter))
    if n_seeds:
        # A seed whose region stays under a ball of 0.4 diameters is a side peak of a
        # nucleus's centre map (a flat or textured nucleus has several): drop it and grow
        # again, so its neighbours take its voxels.
        sizes = np.bincount(labels.ravel(), minlength=n_seeds + 1)
        keep = sizes >= least
        keep[0] = False
        if not keep[np.unique(values)].all():
            del labels  # not kept alongside the second growth's seeds and labels
            lut = np.zeros(n_seeds + 1, np.int32)
            lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
            values = lut[values]
            n_seeds = int(keep.sum())
            labels = grow(values) if n_seeds else np.zeros(mask.shape, np.int32)
    # Seedless specks that small are rims and halos of the three views, not nuclei.
    return remove_small(add_seedless(labels, mask, n_seeds), max(min_size, least))


def _centre_peaks(centre, diameter, threshold):
    """Voxel coordinates and seed numbers of the local maxima of the smoothed centre map.

    Where nuclei span 12 voxels or more along every axis (the near-isotropic stack of the
    accurate mode), maxima are searched on a grid twice as coarse (2x2x2 block means: 8x
    fewer voxels to smooth and filter), each coarse peak seeding the fine voxel at its block's
    centre. Connected maxima (plateaus) share a number.
    """
    from scipy import ndimage

    from ..morphology import label

    centre = np.asarray(centre, np.float32)
    coarse = min(diameter) >= 12 and min(centre.shape) >= 4
    factor = (2, 2, 2) if coarse else (1, 1, 1)
    if coarse:
        crop = tuple(n // f * f for n, f in zip(centre.shape, factor, strict=True))
        block = centre[tuple(slice(0, c) for c in crop)]
        shape = []
        for c, f in zip(crop, factor, strict=True):
            shape += [c // f, f]
        centre = block.reshape(shape).mean(axis=(1, 3, 5), dtype=np.float32)
    d = np.asarray(diameter, float) / np.asarray(factor)
    sigma = tuple(max(x / 10, 0.3) for x in d)
    size = tuple(max(3, int(round(x / 3)) | 1) for x in d)
    smooth = ndimage.gaussian_filter(centre, sigma, truncate=3.0)
    peaks = ndimage.maximum_filter(smooth, size=size) == smooth
    peaks &= smooth > threshold
    del smooth
    # Not cc3d: 26-connectivity on a bool array raises on lines of voxels (a (1, 1, 3) [1, 0, 1]).
    numbers = label(peaks, connectivity=3)[0]
    at = np.nonzero(numbers)
    values = numbers[at].astype(np.int32)
    coords = tuple((c * f + f // 2).astype(np.intp) for c, f in zip(at, factor, strict=True))
    return coords, values


def stitch_planes(labels, stitch_threshold=0.25):
    """Link 2D objects of consecutive planes into 3D objects by overlap (in place).

    Cellpose's ``stitch3D``: an object of plane ``z + 1`` takes the label of the object of
    plane ``z`` it overlaps with the highest IoU when that IoU is at least
    ``stitch_threshold`` and no other object of plane ``z + 1`` overlaps that one more;
    otherwise it starts a new 3D object.

    Parameters
    ----------
    labels : (P, M, N) ndarray of int
        Plane labels, objects numbered apart across planes (as ``segment(axes="TYX")`` gives).
    stitch_threshold : float
        Minimum IoU to link two objects, in (0, 1].

    Returns
    -------
    labels : (P, M, N) ndarray of int32
        Consecutive 3D labels.

    Examples
    --------
    >>> import numpy as np
    >>> planes = np.zeros((3, 1, 4), np.int32)
    >>> planes[0, 0, :2] = 1; planes[1, 0, :3] = 2; planes[2, 0, 3] = 3
    >>> stitch_planes(planes)[:, 0]
    array([[1, 1, 0, 0],
           [1, 1, 1, 0],
           [0, 0, 0, 2]], dtype=int32)
    """
    if not 0 < stitch_threshold <= 1:
        raise ValueError(f"stitch_threshold must be in (0, 1], got {stitch_threshold!r}")
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.int32)
    prev = None
    top = 0
    for z in range(labels.shape[0]):
        cur = labels[z]
        ids, inverse = np.unique(cur, return_inverse=True)
        inverse = inverse.reshape(cur.shape)
        if ids[0] != 0:
            ids = np.concatenate([[0], ids])
            inverse = inverse + 1
        n = len(ids) - 1
        new = np.zeros(n + 1, np.int32)
        if n and prev is not None and prev.max() > 0:
            pids, pinv = np.unique(prev, return_inverse=True)
            pinv = pinv.reshape(prev.shape)
            m = len(pids)
            overlap = np.bincount(
                (inverse.ravel() * m + pinv.ravel()), minlength=(n + 1) * m
            ).reshape(n + 1, m)
            area_cur = overlap.sum(axis=1)
            area_prev = overlap.sum(axis=0)
            iou = overlap / np.maximum(area_cur[:, None] + area_prev[None, :] - overlap, 1)
            iou = iou[1:, 1:] if pids[0] == 0 else iou[1:]
            pids = pids[1:] if pids[0] == 0 else pids
            iou[iou < stitch_threshold] = 0
            if iou.size:
                iou[iou < iou.max(axis=0, keepdims=True)] = 0
                best = iou.argmax(axis=1)
                linked = iou[np.arange(n), best] > 0
                new[1:][linked] = pids[best[linked]]
                fresh = ~linked
            else:
                fresh = np.ones(n, bool)
        else:
            fresh = np.ones(n, bool)
        k = int(fresh.sum())
        new[1:][fresh] = np.arange(top + 1, top + k + 1)
        top += k
        out[z] = new[inverse]
        prev = out[z]
    return remove_small(out, 1)


def _unnormalized(lm):
    """The model with normalization turned off (the stack is normalized once, as a whole);
    it shares the network and the compiled backends."""
    clone = copy.copy(lm)
    clone.config = {**lm.config, "normalization": {"kind": "none"}}
    return clone


def _chunk_maps(planes, lm, options, progress):
    """Foreground and centre maps of a ``(K, M, N)`` chunk of normalized planes (through
    ``lm`` without normalization); the progress moves one plane at a time."""
    base = progress.done
    probs = predict_channels(planes, lm, progress=progress.within(len(planes)), **options)
    progress.done = base
    progress.step(len(planes))
    fg = _foreground(probs, lm)
    centre = probs[lm.outputs.index("centre")] if lm.has_centres else fg
    return fg, centre


def _chunk(plane_pixels):
    """Planes per network call for planes of ``plane_pixels`` pixels."""
    return max(1, _CHUNK_PIXELS // max(plane_pixels, 1))


def _lateral(spacing):
    """In-plane pixel size of ``(dz, dy, dx)``: the geometric mean of dy and dx."""
    return float(np.sqrt(spacing[1] * spacing[2]))


def _reference(lm):
    """The model's nucleus diameter in pixels (the bundled model's for a model without one)."""
    return float(lm.config["postprocess"].get("diameter") or 19.3)


class _Progress:
    """Planes done over all passes of all frames; the user callback may raise to cancel."""

    def __init__(self, callback, total):
        self.callback = callback
        self.total = max(int(total), 1)
        self.done = 0

    def step(self, planes):
        self.done = min(self.done + planes, self.total)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def finish(self):
        self.step(self.total - self.done)

    def within(self, planes):
        """Callback for one network call over ``planes`` planes: its tile progress moves
        this one plane by plane (a cancel stops it between planes)."""
        base = self.done

        def report(done, total):
            now = min(base + int(planes * done / max(total, 1)), self.total)
            if now > self.done:
                self.done = now
                if self.callback is not None:
                    self.callback(self.done, self.total)

        return report


def _resize3d(volume, shape):
    """Trilinear resize of a float32 ``(P, M, N)`` volume (antialiased axes when shrinking
    are smoothed first by the interpolation's footprint only: shrink factors here stay
    within 2x, where trilinear sampling suffices)."""
    import torch
    import torch.nn.functional as F

    if tuple(volume.shape) == tuple(shape):
        return np.ascontiguousarray(volume, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    return F.interpolate(x, size=tuple(shape), mode="trilinear", align_corners=False)[0, 0].numpy()


def estimate_diameter(volume, lm, spacing, *, options, progress=None):
    """Typical nucleus diameter of a normalized stack in physical units (once per stack).

    :func:`napari_binseg.unet.inference.estimate_diameter` (the size ``segment`` finds with
    ``diameter="auto"``: a 0.25x probe, then the full-size pass where nuclei are mid-sized)
    measures a few XY planes: the middle one and those a quarter of the stack above and
    below. A plane cuts a ball at a uniformly distributed height, so the median section has
    0.87 of the nucleus diameter: the planes' median is divided by it.

    Returns
    -------
    diameter : float or None
        In the units of ``spacing``; ``None`` when the planes hold no nucleus.
    """
    nz = volume.shape[0]
    plain = _unnormalized(lm)
    found = []
    for z in sorted({nz // 2, nz // 4, (3 * nz) // 4}):
        d = _plane_diameter(volume[z], plain, **options)
        if d:
            found.append(d)
        if progress is not None:
            progress.step(1)
    if not found:
        return None
    return float(np.median(found)) / _SECTION * _lateral(spacing)


def _scale_of(diameter, lm, spacing):
    """Lateral resize factor that brings nuclei of ``diameter`` (physical) to the model's size."""
    post = lm.config["postprocess"]
    reference = post.get("diameter")
    if diameter is None or reference is None:
        return 1.0
    pixels = diameter / _lateral(spacing)
    cap = max_scale(post)
    scale = float(np.clip(reference / pixels, 0.25, cap))
    # Within 25% of the model's size the plane is kept as it is, as segment(diameter="auto").
    return 1.0 if 0.8 < scale < 1.25 else min(round(4 * scale) / 4, cap)


def _iso_shape(shape, spacing, scale):
    """Shape of the accurate mode's isotropic stack: voxels of the lateral pixel / ``scale``."""
    voxel = _lateral(spacing) / scale
    return tuple(max(1, round(s * sp / voxel)) for s, sp in zip(shape, spacing, strict=True))


def memory_need(
    shape, spacing=(1.0, 1.0, 1.0), scale=1.0, *, mode="accurate", frames=1,
    probabilities=False, batch_size=4,
):  # fmt: skip
    """Estimated peak memory of :func:`segment_volume` in bytes, above what the caller holds.

    Parameters
    ----------
    shape : (3,) tuple of int
        ``(Z, Y, X)`` of one stack.
    spacing : (dz, dy, dx) tuple of float
    scale : float
        Lateral resize factor (the nucleus size over the model's; :func:`_scale_of`).
    mode : {"accurate", "fast"}
    frames : int
        Stacks of a time series (one stack's work at a time, all frames' output).
    probabilities : bool
        With the returned foreground probability.
    batch_size : int
        Planes or tiles per network call.

    Returns
    -------
    need : int
        Bytes. The accurate mode's grows with the isotropic stack (:data:`_BYTES`).

    Examples
    --------
    A 20 x 1024 x 1024 widefield stack (0.65 µm pixels, 2 µm steps) of 8-pixel nuclei,
    upsampled 2.5x to 154 x 2560 x 2560 voxels, in GB:

    >>> round(memory_need((20, 1024, 1024), (2.0, 0.65, 0.65), 2.5) / 1e9, 1)
    12.7
    """
    nz, ny, nx = shape
    if mode == "accurate":
        iso = _iso_shape(shape, spacing, scale)
        work = _BYTES["iso"] * math.prod(iso)
        plane = max(iso[0] * iso[1], iso[0] * iso[2], iso[1] * iso[2])
    else:
        work = _BYTES["fast"] * nz * ny * nx
        plane = max(1, round(ny * scale)) * max(1, round(nx * scale))
    network = _BYTES["network"] * min(batch_size * plane, _CHUNK_PIXELS)
    per_frame = _BYTES["output"] + (_BYTES["probability"] if probabilities else 0)
    return int(work + network + (_BYTES["stack"] + per_frame * frames) * nz * ny * nx)


def _available_bytes():
    """Memory the system can give without swapping."""
    import psutil

    return int(psutil.virtual_memory().available)


def _gb(n):
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _check_memory(shape, spacing, scale, lm, *, mode, held=0, **kw):
    """Raise a one-line ValueError before the work where its estimated peak memory
    (:func:`memory_need`) exceeds the available memory, saying what fits instead: in words
    that name the options as every front shows them (the Predict widget's "3D mode" and
    "nucleus diameter", the CLI's ``--mode`` and ``--diameter``, the API's keywords).

    ``scale``: the lateral resize (:func:`_scale_of`); None before the size estimate that
    chooses it: the need is then the least of any resize the estimate can choose (the need
    grows with the resize), so a stack that fits at none is refused before it is read and
    its nuclei measured, and one that may fit is checked again once the estimate is known.
    ``held``: bytes of that need already in use (the output of a series' earlier frames),
    which the available memory no longer includes (the normalized stack, checked after it
    is made); less memory that no part of the need will take (a dask frame's data, checked
    before it is read)."""
    reference = lm.config["postprocess"].get("diameter")
    # The resize of the largest nuclei is the least (1x for a model without a reference).
    bound = scale is None and reference is not None
    if scale is None:
        scale = _scale_of(math.inf, lm, spacing)
    available = _available_bytes() + held
    need = memory_need(shape, spacing, scale, mode=mode, **kw)
    if need <= available:
        return
    size = " x ".join(map(str, shape))
    frames = kw.get("frames", 1)
    size = f"this {size} stack" if frames == 1 else f"{frames} stacks of {size}"
    about = "at least about" if bound else "about"
    if mode == "fast":
        raise ValueError(
            f"the fast 3D mode needs {about} {_gb(need)} of memory for {size} but "
            f"{_gb(available)} is available: segment a crop of the stack"
        )
    iso = " x ".join(map(str, _iso_shape(shape, spacing, scale)))
    if bound:
        resampled = f"resampled to at least {iso} isotropic voxels, whatever its nuclei's size"
    else:
        resized = f", resized {scale:g}x" if scale != 1 else ""
        resampled = f"resampled to {iso} isotropic voxels{resized}"
    hints = []
    # Before the estimate, the fast mode's need at the largest resize it can choose (that of
    # the smallest nuclei).
    most = _scale_of(1e-9, lm, spacing) if bound else scale
    fast = memory_need(shape, spacing, most, mode="fast", **kw)
    if fast <= available:
        hints.append(f"use the fast 3D mode ({'at most ' if bound else ''}about {_gb(fast)})")
    # The largest resize (in quarters, as _scale_of rounds) that fits, as the diameter that
    # asks for it; never one that shrinks small nuclei (8-px nuclei at 0.5x: 4 px, nothing
    # found) or brings large ones under half the model's size.
    least = 1.0 if scale > 1 else scale / 2
    smaller = [k / 4 for k in range(1, 13) if least <= k / 4 < scale]
    fits = [s for s in smaller if memory_need(shape, spacing, s, mode=mode, **kw) <= available]
    if reference and fits:
        s = max(fits)
        need_s = memory_need(shape, spacing, s, mode=mode, **kw)
        hints.append(
            f"give a nucleus diameter of {reference / s:.1f} px (resize {s:g}x, about "
            f"{_gb(need_s)})"
        )
    hints.append("segment a crop of the stack")
    raise ValueError(
        f"the accurate 3D mode needs {about} {_gb(need)} of memory for {size} "
        f"({resampled}) but {_gb(available)} is available: " + ", or ".join(hints)
    )


def _positions(n, step):
    """Sampled planes of an axis of ``n`` planes: every ``step``-th and the last."""
    positions = list(range(0, n, step))
    if positions[-1] != n - 1:
        positions.append(n - 1)
    return positions


def _view_pass(volume, axis, step, lm, options, fg_sum, centre_sum, progress):
    """Add the foreground and centre maps of the planes normal to ``axis`` into the sums.

    Only every ``step``-th plane goes through the network; the maps of the planes between are
    interpolated linearly (the planes normal to y and x of a stack upsampled in z carry
    ``step``-fold redundant detail across them).
    """
    n = volume.shape[axis]
    positions = _positions(n, step)
    chunk = _chunk(volume.size // n)
    prev = None  # the last sampled plane of the previous chunk: (position, fg, centre)
    fg_view = np.moveaxis(fg_sum, axis, 0)
    centre_view = np.moveaxis(centre_sum, axis, 0)
    for start in range(0, len(positions), chunk):
        pos = positions[start : start + chunk]
        planes = np.ascontiguousarray(np.moveaxis(np.take(volume, pos, axis=axis), axis, 0))
        fg_all, centre_all = _chunk_maps(planes, lm, options, progress)
        if prev is not None:
            pos = [prev[0], *pos]
            fg_all = np.concatenate([prev[1][None], fg_all])
            centre_all = np.concatenate([prev[2][None], centre_all])
        first = pos[0] + 1 if prev is not None else pos[0]
        out = np.arange(first, pos[-1] + 1)
        # Linear interpolation between the sampled planes around each output plane.
        j = np.clip(np.searchsorted(pos, out, side="right") - 1, 0, max(len(pos) - 2, 0))
        if len(pos) > 1:
            gap = np.asarray(pos)[j + 1] - np.asarray(pos)[j]
            w = ((out - np.asarray(pos)[j]) / gap).astype(np.float32)
            # Plane by plane: the chunk's interpolated planes at once were 3 temporaries of
            # `step` times the chunk's size (the pass's peak on stacks upsampled in z).
            for total, maps in ((fg_view, fg_all), (centre_view, centre_all)):
                for k, (jk, wk) in enumerate(zip(j, w, strict=True)):
                    plane = maps[jk + 1] - maps[jk]
                    plane *= wk
                    plane += maps[jk]
                    total[first + k] += plane
        else:
            fg_view[first : pos[-1] + 1] += fg_all[j]
            centre_view[first : pos[-1] + 1] += centre_all[j]
        prev = (pos[-1], fg_all[-1].copy(), centre_all[-1].copy())
        del fg_all, centre_all


def _accurate(
    volume, lm, spacing, diameter, *, options, prob_threshold, plane_step, progress,
    keep_probability=True,
):  # fmt: skip
    """Labels (at the input grid) and foreground probability (on the isotropic grid; ``None``
    without ``keep_probability``) of one normalized stack."""
    scale = _scale_of(diameter, lm, spacing)
    lateral = _lateral(spacing)
    # Nucleus diameter in voxels of the resampled stack.
    nucleus = diameter / lateral * scale if diameter else _reference(lm)
    shape = _iso_shape(volume.shape, spacing, scale)
    iso = _resize3d(volume, shape)
    zoom = shape[0] / volume.shape[0]
    step = max(1, int(plane_step)) if plane_step is not None else max(1, int(math.floor(zoom)))
    fg_sum = np.zeros(shape, np.float32)
    centre_sum = np.zeros(shape, np.float32)
    plain = _unnormalized(lm)
    # XY planes: every step-th (about the input's planes); XZ and YZ: every step-th row and
    # column, so each pass costs about one plane-by-plane pass of the input.
    for axis in range(3):
        _view_pass(iso, axis, step, plain, options, fg_sum, centre_sum, progress)
    del iso
    fg_sum /= 3
    centre_sum /= 3
    seeds = _seeds_3d(fg_sum, centre_sum, prob_threshold, _PEAK_MIN, nucleus)
    # The sums are freed before the growth (its seeds, labels and queue are the peak).
    del centre_sum
    if not keep_probability:
        fg_sum = None
    post = lm.config["postprocess"]
    # The model's smallest object (an area at its scale) as a ball.
    radius = math.sqrt(post["min_size"] / math.pi)
    labels = _grow_3d(*seeds, min_size=4 / 3 * math.pi * radius**3, diameter=nucleus)
    del seeds
    if labels.shape != volume.shape:
        labels = labels_resized(labels, volume.shape)
    return labels, fg_sum


def _resize_planes(planes, shape):
    """Bilinear resize of the last two axes of a float32 ``(K, M, N)`` stack."""
    return planes if tuple(planes.shape[1:]) == tuple(shape) else resize(planes, shape)


def _fast(
    volume, lm, spacing, diameter, *, options, prob_threshold, stitch_threshold, progress,
    keep_probability=True,
):  # fmt: skip
    """One pass of XY planes; 3D seeds grown through the stacked maps, or (with a
    ``stitch_threshold``) plane labels linked by overlap. Labels and foreground probability
    (``None`` without ``keep_probability``)."""
    plain = _unnormalized(lm)
    scale = _scale_of(diameter, lm, spacing)
    lateral = _lateral(spacing)
    pixels = diameter / lateral if diameter else _reference(lm) / scale
    post = lm.config["postprocess"]
    nz, ny, nx = volume.shape
    if stitch_threshold is not None:
        labels = np.zeros(volume.shape, np.int32)
        prob = np.zeros(volume.shape, np.float32)
        offset = 0
        for z in range(nz):
            lab, p = segment(
                volume[z],
                plain,
                diameter=None if scale == 1.0 else pixels,
                prob_threshold=prob_threshold,
                # A z-stack keeps every object, as in the 3D modes (no floor on its planes).
                min_confidence=0.0,
                return_probabilities=True,
                **options,
            )
            labels[z] = lab
            # Numbered on in the int32 stack: ``lab`` is uint16 with few objects.
            offset = continue_numbering(labels[z], offset)
            prob[z] = p
            progress.step(1)
        return stitch_planes(labels, stitch_threshold), prob
    shape = (max(1, round(ny * scale)), max(1, round(nx * scale)))
    chunk = _chunk(shape[0] * shape[1])
    fg_vol = np.empty(volume.shape, np.float32)
    centre_vol = np.empty(volume.shape, np.float32)
    for start in range(0, nz, chunk):
        stop = min(start + chunk, nz)
        fg, centre = _chunk_maps(
            _resize_planes(volume[start:stop], shape), plain, options, progress
        )
        fg_vol[start:stop] = _resize_planes(fg, (ny, nx))
        centre_vol[start:stop] = _resize_planes(centre, (ny, nx))
        del fg, centre
    voxels = tuple(pixels * lateral / sp for sp in spacing)
    radius = math.sqrt(post["min_size"] / math.pi) / scale  # at the input's lateral pixels
    seeds = _seeds_3d(fg_vol, centre_vol, prob_threshold, _PEAK_MIN, voxels)
    del centre_vol
    if not keep_probability:
        fg_vol = None
    labels = _grow_3d(
        *seeds, min_size=4 / 3 * math.pi * radius**3 * lateral / spacing[0], diameter=voxels
    )
    return labels, fg_vol


def _check(mode, stitch_threshold, plane_step):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if stitch_threshold is not None and not 0 < stitch_threshold <= 1:
        raise ValueError(f"stitch_threshold must be in (0, 1], got {stitch_threshold!r}")
    if plane_step is not None and (
        isinstance(plane_step, bool)
        or not isinstance(plane_step, (int, np.integer))
        or plane_step < 1
    ):
        raise ValueError(f"plane_step must be None or a positive integer, got {plane_step!r}")


def segment_volume(
    image,
    lm,
    *,
    axes="ZYX",
    spacing=None,
    mode="accurate",
    diameter="auto",
    prob_threshold=None,
    stitch_threshold=None,
    plane_step=None,
    return_probabilities=False,
    return_info=False,
    progress=None,
    **options,
):
    """3D nuclei of a z-stack (or of each stack of a time series) from a 2D U-Net.

    Reached through :func:`napari_binseg.unet.inference.segment` with ``axes="ZYX"`` (the
    default for a 3D array) or ``"TZYX"``; see there for the shared options.

    Parameters
    ----------
    image : (Z, Y, X) or (T, Z, Y, X) ndarray
        Checked intensity stack (numpy or dask; a dask stack is read one frame at a time).
    lm : LoadedModel
        A 2D model.
    axes : {"ZYX", "TZYX"}
    spacing : (dz, dy, dx) tuple of float, optional
        Voxel size (µm, say); default 1 each. Sets the isotropic resampling of the accurate
        mode and the units of ``diameter``.
    mode : {"accurate", "fast"}
        ``"accurate"``: XY, XZ and YZ predictions of the near-isotropic stack averaged, 3D
        seeds grown in 3D (about 3 plane-by-plane passes). ``"fast"``: the XY planes' maps
        stacked and 3D seeds grown through them (about one pass; see ``stitch_threshold``).
    diameter : "auto", float or None
        Typical nucleus diameter in lateral pixels; ``"auto"`` estimates it once per stack
        (:func:`estimate_diameter`); ``None`` keeps the pixel size as it is.
    prob_threshold : float, optional
        Foreground probability threshold; default: the model's (its config's
        ``postprocess.prob_threshold``).
    stitch_threshold : float, optional
        Fast mode: ``None`` (default) stacks the XY planes' foreground and centre maps and
        grows 3D seeds through them (as the accurate mode, from one view); a number links the
        planes' 2D objects by overlap instead, at this minimum IoU (Cellpose's
        ``stitch_threshold``; 0.25 is its usual value), which merges nuclei stacked along z.
    plane_step : int, optional
        Accurate mode: run the network on every ``plane_step``-th plane of each view and
        interpolate between them; default: the z upsampling factor rounded down (each view
        then costs about one pass over the input's planes). 1 runs every plane.
    return_probabilities : bool
        Also return the foreground probability on the input grid.
    return_info : bool
        Also return a dict: ``prob_threshold`` (the one used), ``min_confidence`` (0: 3D
        objects keep every object, whatever the model's floor; the bundled 0.85 on them
        took bench_3d's accurate F1 0.979 -> 0.963, fast unchanged), ``diameter`` (px) and
        ``diameter_um`` (with ``spacing``) of the first frame's estimate (``diameters``: every
        frame's), ``mode``, ``seconds``.
    progress : callable, optional
        ``progress(done, total)`` in planes over all passes; raising in it cancels.
    **options
        ``device``, ``tile_size``, ``overlap``, ``batch_size``, ``precision``, ``backend``,
        passed to the plane predictions.

    Returns
    -------
    labels : ndarray of uint16 (fewer than 65536 nuclei) or uint32
        Same shape as ``image``; nuclei numbered 1..n, numbers continuing over frames.
    probability : ndarray of float32
        Only with ``return_probabilities=True``.
    info : dict
        Only with ``return_info=True`` (last).

    Raises
    ------
    ValueError
        Bad options; or, before the work, where the estimated peak memory
        (:func:`memory_need`) exceeds the available memory: the message gives both and what
        fits (the fast mode's need, the largest ``diameter``-driven resize that fits, a crop).
        With ``diameter="auto"``, a stack that fits at no resize the size estimate can
        choose is refused before it is read and measured, the others once it is measured.
    """
    t0 = time.perf_counter()
    _check(mode, stitch_threshold, plane_step)
    spacing = resolve_spacing(spacing, axes)
    prob_threshold = model_threshold(prob_threshold, lm)
    frames = list(iter_frames(image, axes))
    nz, ny, nx = image.shape[-3:]
    lateral = _lateral(spacing)
    if mode == "accurate":
        # Planes of the three views at scale 1 (a resized stack moves the bar unevenly).
        iso = _iso_shape((nz, ny, nx), spacing, 1.0)
        step = plane_step or max(1, int(math.floor(iso[0] / nz)))
        per_frame = 3 + sum(len(_positions(n, step)) for n in iso)
        run = functools.partial(_accurate, plane_step=plane_step)
    else:
        per_frame = 3 + nz
        run = functools.partial(_fast, stitch_threshold=stitch_threshold)
    tracker = _Progress(progress, per_frame * len(frames))
    diameters = []
    options = {k: v for k, v in options.items() if v is not None}
    out = np.zeros(tuple(image.shape), np.int32)
    prob = np.zeros(tuple(image.shape), np.float32) if return_probabilities else None
    offset = 0
    start = 0
    check = functools.partial(
        _check_memory, (nz, ny, nx), spacing, lm=lm, mode=mode, frames=len(frames),
        probabilities=prob is not None, batch_size=options.get("batch_size", 4),
    )  # fmt: skip
    for done, (index, frame) in enumerate(frames):
        held = sum(x[index].nbytes for x in (out, prob) if x is not None) * done
        # Before the frame is read and normalized (and its nuclei measured). A dask frame's
        # data will be in use and is no part of the need; the normalized stack is.
        read = frame.nbytes if is_dask(frame) else 0
        if diameter == "auto":
            check(None, held=held - read)
        else:
            found = None if diameter is None else float(diameter) * lateral
            check(_scale_of(found, lm, spacing), held=held - read)
        if is_dask(frame):
            frame = frame.compute()
        volume = normalize_plane(np.asarray(frame), lm.config["normalization"])
        if diameter == "auto":
            plane = options | {"prob_threshold": prob_threshold}
            found = estimate_diameter(volume, lm, spacing, options=plane, progress=tracker)
            check(_scale_of(found, lm, spacing), held=held + volume.nbytes)
        else:
            tracker.step(3)
        diameters.append(None if found is None else found / lateral)
        labels, fg = run(
            volume,
            lm,
            spacing,
            found,
            options=options,
            prob_threshold=prob_threshold,
            progress=tracker,
            keep_probability=prob is not None,
        )
        if prob is not None:
            # The accurate mode's map is on the isotropic grid, the fast mode's on the stack's.
            prob[index] = _resize3d(fg, volume.shape)
        del fg
        offset = continue_numbering(labels, offset)
        out[index] = labels
        start += per_frame
        tracker.done = max(tracker.done, min(start, tracker.total))
    tracker.finish()
    info = None
    if return_info:
        first = diameters[0] if diameters else None
        info = {
            "prob_threshold": prob_threshold,
            "min_confidence": 0.0,
            "diameter": first,
            "diameter_um": None if first is None else first * lateral,
            "diameters": diameters,
            "mode": mode,
            "seconds": time.perf_counter() - t0,
        }
    return _returned(out, prob, info)
