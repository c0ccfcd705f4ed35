"""Split touching nuclei: distance transform, seeded watershed, merge of shallow splits.

The seeds are all local maxima of the (lightly smoothed) Euclidean distance transform, which
over-splits elongated or irregular nuclei. Neighbouring regions are then merged when the neck
between them is wide compared with the regions themselves: two regions whose distance peaks are
``p1`` and ``p2`` and whose best shared boundary point (the saddle) has distance ``s`` are merged
when ``s >= ratio * min(p1, p2)``, or when either region is smaller than ``min_diameter``. This
is the "dynamics" criterion of Grimaud (1992) made relative to the object size, so one setting
works for small and large nuclei alike.

Out of focus (2D, when the count passes its image): a blur comparable to the nuclei merges
their masks into blobs without necks. Objects whose edges are wide compared with the nucleus
size and their own (:data:`BLUR_EDGE`, :data:`BLUR_DIAMETER`) have their pieces split further
at the maxima of the Laplacian of Gaussian of the image (Lindeberg 1998); sharp images are
left as they were.
"""

import functools

import numpy as np
from scipy import ndimage as ndi

#: Saddle-to-peak ratio above which two regions are one object. 0.98, chosen on development
#: data only, over 0.95: F1 +0.007 (s-bsst265) and +0.002 (DSB) on thresholded masks
#: (``benchmarks/eval_count.py``), +0.014 on synthetic z-stacks, +0.002 on perfect DSB masks
#: (``eval_split.py``, first 150), and out-of-focus nuclei merge less (``eval_split.py
#: --blur``: count error at blur sigma 8 20.7% -> 18.3%); 0.99 loses on DSB.
NECK_RATIO = 0.98
#: Objects larger than this times the disc (ball) of their inscribed radius are split
#: candidates; rounder ones are single nuclei and are left alone.
ROUND = 1.3
#: Smallest piece of a split, as a fraction of the typical nucleus radius (its inscribed
#: radius must reach this). 0.15-0.25 within 0.006 F1 on the 2D development images; 0.2
#: gains 0.016 on dense synthetic z-stacks over 0.25.
MIN_PIECE = 0.2
#: Smoothing of the distance map before seeding, as a fraction of the nucleus radius (0.1-0.3
#: within 0.01 F1 on the development part of benchmarks/eval_count.py; 0.1 best on synthetic
#: z-stacks, 0.2 in 2D).
SMOOTH = 0.15


#: Out-of-focus clumps (2D). Blur merges the masks of small nuclei into blobs whose distance
#: map holds one peak per blob, so the split above cannot see them; their intensity still
#: does. An object is out of focus when its edge width (:func:`_edge_widths`: about 2.5x the
#: blur sigma, plus 4 px on sharp images) is at least ``BLUR_EDGE`` grid pixels and
#: ``BLUR_RATIO`` times its inscribed radius. Widths are measured on a grid where the nucleus
#: is at most ``BLUR_DIAMETER`` pixels across, so the gate follows the magnification. Its
#: pieces are then split further at the maxima of the Laplacian of Gaussian of the image
#: (scale ``BLUR_SCALE`` times the edge width) that stand out by ``BLUR_NOISE`` times the
#: noise of that filter and by ``BLUR_CONTRAST`` of the piece's range of it. Chosen on
#: development data only: synthetic blur seeds 0-2 (``eval_split.py --blur``: all-levels
#: count error within 0.1 point for scale 0.25-0.4, contrast 0.05-0.1, noise 2-3, ratio
#: 0.6-0.7; a smaller scale or edge finds more radius-8 nuclei at blur 8 but over-splits
#: radius 15 at blur 4-6), and the DSB and s-bsst265 development parts (``eval_count.py``:
#: no label changes; DSB edge widths are 6 px median, 11 px at the 99th percentile).
BLUR_EDGE = 11.0
BLUR_RATIO = 0.7
BLUR_SCALE = 0.4
BLUR_NOISE = 3.0
BLUR_CONTRAST = 0.1
#: Candidates whose edge width is measured first: the rest only when their median reaches
#: ``BLUR_FRAME`` grid pixels. A sharp frame stops once more than half of them, the
#: smallest first, are below (5 objects). Not fewer: with 5 sampled, the largest DSB frame
#: median rises from 8.05 to 8.6 px, too near ``BLUR_FRAME`` (labels still all the same).
#: Frames measured on a grid (``BLUR_DIAMETER``) sample ``BLUR_SAMPLE_GRID``: their clumps
#: cost more each, and there the largest frame median stays 8.05 (DSB) and 8.0 grid px
#: (s-bsst265) with 5; a sharp one measures 3 (CPU of the default count on s-bsst265 +3%
#: instead of +10% with 8, ``bench_count.py`` radius 40 ratio 1.08 instead of 1.05).
BLUR_SAMPLE = 8
BLUR_SAMPLE_GRID = 5
BLUR_FRAME = 9.0
#: Nucleus diameter (pixels; the frame's estimate) above which edge widths are measured on
#: a grid of pixel ``diameter / BLUR_DIAMETER`` (bilinear) and the thresholds above are in
#: that grid's pixels; the LoG scale follows in full-resolution pixels. Below it the grid
#: is the image's own: small nuclei keep the gate DSB chose (a sharp DSB frame's median
#: width reaches 8 px, blurred frames of the sweep's radius-8 and -15 nuclei at 0.5x only
#: 7.4-8.8, so these stay unsplit: count errors at 0.5x as before). 32 (2 x
#: ``COARSE_DIAMETER``), chosen on synthetic blur seeds 0-2 at 0.5-3x (``eval_split.py
#: --blur --scales``): 24 loses at 1x (all levels 4.9%, blur 8 16.0%), 36-48 lose 0.1-0.6
#: point at 1.5-3x. Count error at 1x / 1.5x / 2x / 3x, all blur levels: 4.1 / 3.5 / 3.9 /
#: 4.0% (pixel gate: 4.3 / 4.6 / 5.2 / 6.1%); seeds 3-5, not used to choose: 3.3 / 3.2 /
#: 3.2 / 3.2% (3.3 / 3.6 / 3.6 / 4.5%). The packaged sample 175dbb364bfefc95 blurred by
#: sigma 8 px x the scale (truth 179): 138 / 139 / 139 / 141 with the image (pixel gate:
#: 141 / 128 / 128 / 125; 124-128 without the image). Real images keep their labels: the
#: largest frame median on DSB and s-bsst265 is 8.05 grid px.
BLUR_DIAMETER = 32.0


def _adjacent_pairs(seg, value):
    """Return (a, b, saddle) for face-adjacent regions of ``seg`` (a < b, unique pairs).

    ``saddle`` is the largest, over the shared boundary, of the smaller ``value`` on both sides.
    """
    pairs, saddles = [], []
    for ax in range(seg.ndim):
        lo = [slice(None)] * seg.ndim
        hi = [slice(None)] * seg.ndim
        lo[ax] = slice(None, -1)
        hi[ax] = slice(1, None)
        s0, s1 = seg[tuple(lo)], seg[tuple(hi)]
        touch = (s0 != s1) & (s0 != 0) & (s1 != 0)
        a, b = s0[touch], s1[touch]
        pairs.append(np.stack([np.minimum(a, b), np.maximum(a, b)]).astype(np.int64))
        saddles.append(np.minimum(value[tuple(lo)][touch], value[tuple(hi)][touch]))
    pairs = np.concatenate(pairs, axis=1)
    saddles = np.concatenate(saddles)
    if saddles.size == 0:
        return pairs[0], pairs[1], saddles
    n = int(seg.max()) + 1
    key, inverse = np.unique(pairs[0] * n + pairs[1], return_inverse=True)
    best = np.full(key.size, -np.inf)
    np.maximum.at(best, inverse, saddles)
    return key // n, key % n, best


def _merge(n, a, b, saddle, peak, ratio, min_peak, owner):
    """Union-find over region pairs, strongest neck first; return a root for each region."""
    parent = np.arange(n)
    peak = peak.astype(float)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in np.argsort(-saddle, kind="stable"):
        ra, rb = find(a[i]), find(b[i])
        if ra == rb or owner[ra] != owner[rb]:
            continue
        low = min(peak[ra], peak[rb])
        if saddle[i] >= ratio * low or low < min_peak:
            parent[rb] = ra
            peak[ra] = max(peak[ra], peak[rb])
    return np.array([find(i) for i in range(n)])


def _distance(labels, fg, spacing, separate=False):
    """Distance of each object pixel to the nearest pixel of another label or background.

    ``separate``: no two labels touch (connected components of a mask), so the binary
    transform of ``fg`` gives the same distances, twice as fast.
    """
    try:
        import edt
    except ImportError:
        edt = None
    if edt is not None:
        # seung-lab's edt: multi-label aware and ~5x faster than scipy's feature transform.
        if separate and fg.flags.c_contiguous:
            data = fg.view(np.uint8)
        else:
            data = np.ascontiguousarray(labels)
            if data.dtype.kind == "i" or data.dtype.itemsize > 4:
                data = data.astype(np.uint32)
        return edt.edt(
            data, anisotropy=tuple(float(s) for s in spacing), black_border=False, parallel=1
        )
    # Pixels touching another label become background, so the distance also falls to 0
    # where two given instances meet.
    ndim = labels.ndim
    inner = fg.copy()
    for ax in range(ndim):
        lo = [slice(None)] * ndim
        hi = [slice(None)] * ndim
        lo[ax] = slice(None, -1)
        hi[ax] = slice(1, None)
        edge = (labels[tuple(lo)] != labels[tuple(hi)]) & fg[tuple(lo)] & fg[tuple(hi)]
        inner[tuple(lo)] &= ~edge
        inner[tuple(hi)] &= ~edge
    return ndi.distance_transform_edt(inner, sampling=spacing)


class _BoxDistances:
    """Distances of a 2D image's non-round objects, each in its own bounding box.

    ``store[offset[k]:]``: object k's box (``boxes[k]`` = y0, y1, x0, x1, inclusive) in raster
    order, 0 outside the object; ``offset[k]`` -1 for the objects not kept (round ones).
    """

    def __init__(self, store, offset, boxes):
        self.store = store
        self.offset = offset
        self.boxes = boxes


def _object_distances(labels, keep):
    """Per-label peak and count of the binary distance map of a 2D label image whose labels
    never touch (unit spacing), each object transformed in its own box
    (:func:`_flood.object_edt`): no full-size float array, and work in proportion to the
    objects' boxes rather than to the image. The values equal those of the whole image's
    transform bit for bit.

    Returns ``((peak, count), distances)``: ``distances`` a :class:`_BoxDistances` holding at
    least the objects that can be split candidates (``keep``), else None.
    """
    from ._flood import label_boxes_counts, object_edt

    n = int(labels.max()) + 1
    boxes, count = label_boxes_counts(labels, n)
    ids = np.flatnonzero(count)
    # Kept: every object the candidate test of :func:`_split` can select (with a margin for
    # rounding); none when nothing is split.
    peak, store, offset = object_edt(labels, boxes, count, ids, 0.99 * ROUND if keep else np.inf)
    return (peak, count), (_BoxDistances(store, offset, boxes) if keep else None)


def split_touching(
    labels,
    *,
    spacing=None,
    min_diameter=None,
    connectivity=None,
    image=None,
    ratio=NECK_RATIO,
    diameter=None,
):
    """Split touching objects of a label image by a distance-transform watershed.

    Only objects that are not round (area, or volume, above ``ROUND`` times the disc, or ball,
    of their inscribed radius) are flooded: a single nucleus is never cut, and the work is
    proportional to the clumps. Seeds are the maxima of the distance map smoothed at a tenth
    of the nucleus radius; pieces are merged back when the neck between them is wide
    (``ratio``) or when one is narrower than ``min_diameter``.

    Parameters
    ----------
    labels : (M, N[, P]) ndarray of int
        Objects to split, consecutive labels ``1..n``, 0 is background. Distinct labels are
        never merged: a binary mask should be labeled by connected components first.
    spacing : sequence of float, optional
        Pixel size per axis; distances, ``diameter`` and ``min_diameter`` are then in physical
        units (anisotropic stacks are split in physical space).
    min_diameter : float, optional
        Smallest nucleus diameter. Pieces narrower than this are merged back into their
        neighbour. ``None``: ``MIN_PIECE`` times ``diameter``.
    connectivity : int, optional
        Neighbourhood of the watershed, 1 (faces) to ``labels.ndim`` (full; the default).
    image : (M, N[, P]) ndarray, optional
        Intensity image. When given, dark valleys between bright nuclei help the split: the
        distance is weighted by the smoothed, normalized intensity.
    ratio : float
        Saddle-to-peak ratio above which two neighbouring pieces stay one object.
    diameter : float, optional
        Typical nucleus diameter; ``None`` estimates it from the objects
        (:func:`napari_binseg.size.estimate_diameter`).

    Returns
    -------
    split : (M, N[, P]) ndarray of int32
        Consecutive labels; every object lies inside one input object.

    References
    ----------
    .. [1] Beucher S, Lantuejoul C (1979). Use of watersheds in contour detection.
    .. [2] Grimaud M (1992). New measure of contrast: the dynamics. Proc. SPIE 1769.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :60]
    >>> two = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    >>> int(split_touching(two.astype(np.int32)).max())
    2
    """
    from ._validation import check_labels

    labels = np.asarray(check_labels(labels, name="labels"))
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels must be 2D or 3D, got shape {labels.shape}")
    if labels.min() < 0:  # the kernels index by label: a negative one writes out of bounds
        raise ValueError("labels holds negative values; labels must be >= 0")
    spacing = np.ones(labels.ndim) if spacing is None else np.asarray(spacing, dtype=float)
    fg = labels != 0
    if not fg.any():
        return np.zeros(labels.shape, np.int32)
    dist = _distance(labels, fg, spacing)
    split = _split(
        labels,
        fg,
        dist,
        spacing=spacing,
        diameter=diameter,
        min_diameter=min_diameter,
        connectivity=connectivity,
        image=image,
        ratio=ratio,
    )[0]
    return _consecutive(split)


def _split(
    labels,
    fg,
    dist,
    *,
    spacing,
    diameter,
    min_diameter,
    connectivity,
    image,
    ratio,
    peak_count=None,
    in_place=False,
):
    """:func:`split_touching` on a precomputed distance map; returns (labels, diameter).

    The labels are int32 and not consecutive (pieces get ids above ``labels.max()``);
    ``in_place``: written into ``labels`` itself when it is C-contiguous (u)int32, or uint16
    (then returned as uint16) when every piece's id fits. ``dist``
    may come in a one-item list, which is emptied: the map is then freed once the clumps'
    distances are copied out (a full-size float array less at the flood).
    """
    from .size import diameter_from_peaks, object_peaks

    if isinstance(dist, list):
        dist = dist.pop()
    ndim = labels.ndim
    voxel = float(np.prod(spacing))
    peak, count = object_peaks(labels, dist) if peak_count is None else peak_count
    size = count * voxel
    if diameter is None:
        diameter = diameter_from_peaks(peak, size, ndim)
    radius = diameter / 2.0
    min_peak = MIN_PIECE * radius if min_diameter is None else float(min_diameter) / 2.0
    ball = np.pi * peak**2 if ndim == 2 else 4.0 / 3.0 * np.pi * peak**3
    candidate = (size > ROUND * ball) & (peak >= min_peak)
    candidate[0] = False
    if in_place and labels.dtype in (np.int32, np.uint32) and labels.flags.c_contiguous:
        out = labels.view(np.int32)
    elif in_place and labels.dtype == np.uint16 and labels.flags.c_contiguous:
        out = labels  # int32 below if the pieces' ids do not fit
    else:
        out = labels.astype(np.int32, copy=True) if labels.dtype != np.int32 else labels.copy()
    if not candidate.any():
        return out, diameter
    sigma = np.maximum(SMOOTH * radius, spacing.min()) / spacing if SMOOTH else None
    conn = ndim if connectivity is None else connectivity
    from ._flood import flood_padded, label_max, nonzero_index

    if ndim == 2 and image is None:
        # The clumps' own boxes, packed side by side: smoothing and flooding then cost in
        # proportion to the clumps, not to the bounding box of all of them (most of a dense
        # image). The margins keep the smoothing of one clump from reaching another.
        halo = [1 + (int(3.0 * s + 0.5) if SMOOTH else 0) for s in np.broadcast_to(sigma, 2)]
        dist = [dist]  # the caller's reference is gone too when it passed a list
        out, piece_peak, piece_count = _flood_atlas(
            labels, dist, candidate, halo, sigma, conn, ratio, min_peak, out
        )
    else:
        flood = candidate[labels]
        # Work inside the bounding box of the clumps only.
        box = tuple(
            slice(int(i.min()), int(i.max()) + 1)
            for i in (
                np.flatnonzero(flood.any(axis=tuple(a for a in range(ndim) if a != ax)))
                for ax in range(ndim)
            )
        )
        flood = flood[box]
        # Zero-padded value and owner arrays: the flood kernel needs no bounds checks.
        inner = (slice(1, -1),) * ndim
        # One at a time: the frame's map is freed once copied, the padded map once read at
        # the flooded pixels (raw, then smoothed in place), before the owner image is made.
        shape = tuple(s.stop - s.start + 2 for s in box)
        value = np.zeros(shape, np.float32)
        np.copyto(value[inner], dist[box], where=flood)
        del dist
        padded = np.zeros(shape, bool)
        padded[inner] = flood
        pixels = nonzero_index(padded.ravel())  # the flooded pixels, in raster order
        del padded
        raw = value.ravel()[pixels]
        if SMOOTH:
            # Smoothing at a fraction of the radius removes the ridges of a ragged outline
            # at any magnification (at least one pixel).
            ndi.gaussian_filter(value, sigma, truncate=3.0, output=value)
        values = value.ravel()[pixels]
        del value
        if image is not None:
            weight = np.zeros(shape, np.float32)
            weight[inner] = ndi.gaussian_filter(np.asarray(image, dtype=np.float32)[box], 2.0)
            weight = weight.ravel()[pixels]
            hi_val = float(weight.max())
            lo_val = float(weight.min())
            if hi_val > lo_val:
                values *= 0.5 + 0.5 * (weight - lo_val) / (hi_val - lo_val)
            del weight
        owner_img = np.zeros(shape, np.int32)
        np.copyto(owner_img[inner], labels[box], where=flood)
        del flood
        # ``pixels``: the flooded pixels, in the order of ``seg``; ``owner_img`` is ours.
        seg, _, owners, region_peak, a, b, saddle = flood_padded(
            None, owner_img, conn, pixels, in_place=True, values=values
        )
        del owner_img, values
        roots, new_id, _ = _piece_ids(
            seg, owners, region_peak, a, b, saddle, ratio, min_peak, int(labels.max())
        )
        out = _fit(out, new_id)
        # Written a million pixels at a time: coordinate arrays of a chunk, not of the flood.
        chunk = 1 << 20
        for i0 in range(0, pixels.size, chunk):
            coords = np.unravel_index(pixels[i0 : i0 + chunk], shape)
            coords = tuple(c + (s.start - 1) for c, s in zip(coords, box, strict=True))
            out[coords] = new_id[seg[i0 : i0 + chunk]]
        piece_peak, piece_count = label_max(roots[seg], raw, roots.size)
    # The clumps inflate the first estimate (an inscribed ball can straddle two overlapping
    # nuclei): the recorded diameter comes from the pieces and the objects left whole.
    whole = ~candidate
    whole[0] = False
    refined = diameter_from_peaks(
        np.concatenate([peak[whole], piece_peak[1:]]),
        np.concatenate([size[whole], piece_count[1:] * voxel]),
        ndim,
    )
    return out, refined if refined > 0 else diameter


def _piece_ids(seg, owners, peak, a, b, saddle, ratio, min_peak, first):
    """Merge the basins of one flood (:func:`_merge`); returns each basin's root, its piece
    id (``first + root``, 0 for basin 0) and its object."""
    from ._flood import basin_owner

    n = peak.size
    owner = basin_owner(seg, owners, np.zeros(n, np.int64))
    roots = _merge(n, a, b, saddle, peak, ratio, min_peak, owner)
    roots[0] = 0
    # Pieces get ids after the last input label (not consecutive: callers renumber).
    new_id = np.zeros(n, np.int64)
    new_id[1:] = first + roots[1:]
    return roots, new_id, owner


def _fit(out, new_id):
    """``out``, as int32 when it is uint16 and the pieces' ids do not fit."""
    if out.dtype == np.uint16 and int(new_id.max()) > np.iinfo(np.uint16).max:
        return out.astype(np.int32)
    return out


#: Pixels of the clumps' atlas smoothed and flooded at a time (whole shelves of boxes).
ATLAS_PART = 1 << 20


def _flood_atlas(labels, dist, candidate, halo, sigma, conn, ratio, min_peak, out):
    """Split the clumps of a 2D image in their packed atlas, part by part, into ``out``.

    The atlas (:func:`_atlas_layout`) is handled a few shelves of boxes at a time: packed,
    smoothed, flooded with the quantization top of the whole atlas (found by a first pass),
    merged and written to ``out`` before the next part, so the memory is that of one part.
    Basins are numbered in raster order of the whole atlas and a part's pieces are packed
    as their own object's pixels by the later parts (the lookups by label get an entry per
    piece id), so the result equals one pass over the whole atlas. ``dist`` is a one-item
    list, emptied.

    Returns ``(out, piece_peak, piece_count)``: ``out`` (int32 when the pieces' ids outgrow
    its uint16) and the peak of the distances and the pixel count of each merged piece, by
    basin (index 0 unused), as :func:`_flood.write_pieces` over the whole atlas.
    """
    from ._flood import flood_padded, nonzero_index, write_pieces

    dist = dist.pop()
    boxed = isinstance(dist, _BoxDistances)
    ids, boxes, oy, ox, ay, shelves, width = _atlas_layout(
        labels, candidate, halo, dist.boxes if boxed else None
    )
    parts = []  # (first row, last row + 1, objects)
    i = 0
    while i < len(shelves):
        r0 = shelves[i][0]
        j = i + 1
        while j < len(shelves) and (shelves[j][0] + shelves[j][1] - r0) * width <= ATLAS_PART:
            j += 1
        r1 = shelves[j - 1][0] + shelves[j - 1][1]
        parts.append((r0, r1, ids[(ay >= r0) & (ay < r1)]))
        i = j

    def smoothed(r0, r1, part):
        """The part's atlas rows: owner image, flooded pixels, their raw and smoothed values."""
        value, owner = _pack(
            labels, dist, candidate, part, boxes, halo, oy - r0, ox, r1 - r0, width
        )
        local = nonzero_index(owner.ravel())
        flat = value.ravel()
        raw = flat[local]
        if SMOOTH:
            ndi.gaussian_filter(value, sigma, truncate=3.0, output=value)
        values = np.nan_to_num(flat[local], nan=0.0, posinf=0.0, neginf=0.0)
        return owner, local, raw, values

    # The first part, flooded first, is kept from this pass: one part is packed once.
    kept = smoothed(*parts[0])
    vmax = 0.0
    for i, part in enumerate(parts):
        values = kept[3] if i == 0 else smoothed(*part)[3]
        if values.size:
            vmax = max(vmax, float(values.max()))
    first = int(labels.max())  # piece ids of a part: first + its basin number
    peaks, counts = [np.zeros(1)], [np.zeros(1, np.int64)]
    for i, (r0, r1, part) in enumerate(parts):
        owner, local, raw, values = kept if i == 0 else smoothed(r0, r1, part)
        kept = None
        seg, _, owners, peak, a, b, s = flood_padded(
            None, owner, conn, local, in_place=True, values=values, vmax=vmax
        )
        del owner, values
        roots, new_id, objects = _piece_ids(
            seg, owners, peak, a, b, np.asarray(s, np.float64), ratio, min_peak, first
        )
        out = _fit(out, new_id)
        # Written back and measured pixel by pixel: no coordinate arrays.
        piece_peak, piece_count = write_pieces(
            local, seg, owners, width, oy - r0, ox, new_id, roots, raw, out
        )
        peaks.append(piece_peak[1:])
        counts.append(piece_count[1:])
        # The part's piece ids (first + 1 ..) are in ``labels`` now when ``out`` is
        # ``labels``: later parts look them up as their object.
        objects = objects[1:]
        candidate = np.concatenate([candidate, np.ones(objects.size, bool)])
        boxes = np.concatenate([boxes, boxes[objects]])
        if boxed:
            offset = np.concatenate([dist.offset, dist.offset[objects]])
            dist = _BoxDistances(dist.store, offset, boxes)
        first += objects.size
    return out, np.concatenate(peaks), np.concatenate(counts)


def _atlas_layout(labels, candidate, halo, boxes=None):
    """The candidate objects of a 2D image laid out, shelf by shelf, in one small image.

    Each object's bounding box, grown by ``halo`` = (hy, hx) pixels, is placed in rows of the
    image's width (:func:`_pack` fills it with the distances of all candidate pixels there, a
    neighbouring clump's too, so smoothing sees what it would see on the whole image, and
    the object's own label); a pixel (y, x) of object k sits at ``(y + oy[k], x + ox[k])``.

    Returns ``(ids, boxes, oy, ox, ay, shelves, width)``: ``ay`` the atlas row of each box of
    ``ids``, ``shelves`` a list of (first row, rows). ``boxes``: those of every label, when
    known.
    """
    n = candidate.size
    if boxes is None:
        from ._flood import label_boxes

        boxes = np.empty((n, 4), np.int64)
        boxes[:, 0::2] = np.iinfo(np.int64).max
        boxes[:, 1::2] = -1
        label_boxes(labels, candidate, boxes)
    ids = np.flatnonzero(candidate)
    hy, hx = halo
    heights = (boxes[ids, 1] - boxes[ids, 0] + 1 + 2 * hy).tolist()
    widths = (boxes[ids, 3] - boxes[ids, 2] + 1 + 2 * hx).tolist()
    width = max(labels.shape[1] + 2 * hx, max(widths))
    ay, ax = [0] * ids.size, [0] * ids.size
    shelves = []
    y = x = shelf = 0
    for i in sorted(range(ids.size), key=lambda i: -heights[i]):
        if x + widths[i] > width:
            shelves.append((y, shelf))
            y, x, shelf = y + shelf, 0, 0
        ay[i], ax[i] = y, x
        x += widths[i]
        shelf = max(shelf, heights[i])
    shelves.append((y, shelf))
    oy = np.zeros(n, np.int64)
    ox = np.zeros(n, np.int64)
    oy[ids] = np.asarray(ay) - boxes[ids, 0] + hy
    ox[ids] = np.asarray(ax) - boxes[ids, 2] + hx
    return ids, boxes, oy, ox, np.asarray(ay, np.int64), shelves, width


def _pack(labels, dist, candidate, ids, boxes, halo, oy, ox, rows, width):
    """Atlas rows ``0..rows`` holding the boxes of ``ids`` (placed by ``oy``, ``ox``)."""
    from ._flood import pack_boxes, pack_store

    hy, hx = halo
    value = np.zeros((rows, width), np.float32)
    owner = np.zeros(value.shape, np.int32)
    if isinstance(dist, _BoxDistances):
        pack_store(
            labels,
            dist.store,
            dist.offset,
            candidate,
            ids,
            boxes,
            hy,
            hx,
            oy,
            ox,
            value,
            owner,
        )
    else:
        d32 = np.asarray(dist, np.float32)
        pack_boxes(labels, d32, candidate, ids, boxes, hy, hx, oy, ox, value, owner)
    return value, owner


def _consecutive(labels):
    import fastremap

    labels, _ = fastremap.renumber(labels, in_place=True, preserve_zero=True)
    return labels.astype(np.int32, copy=False)


#: The split and the size estimate run on a grid where a nucleus is at least this many pixels
#: across (subsampled in y and x when nuclei are larger): the cost then does not grow with the
#: magnification, and a 100-pixel nucleus is split as fast as a 20-pixel one (16: development
#: F1 as at full resolution; 12 loses 0.02 on DSB).
COARSE_DIAMETER = 16.0


def _coarse_factor(labels, spacing):
    """Subsampling step in y and x from the area-weighted median object diameter.

    Clumps make this an over-estimate of the nucleus size; the step is kept small enough
    that a nucleus of a quarter of that size still spans several pixels.
    """
    # Areas from every 4th pixel in y and x (x16): enough for a median over large objects.
    sub = labels[..., ::4, ::4]
    count = np.bincount(sub.ravel())[1:].astype(float) * 16
    count = count[count > 0]
    if count.size == 0:
        return 1
    # Equivalent diameter in x pixels of each object (y and x assumed of similar spacing).
    ndim = labels.ndim
    if ndim == 2:
        d = np.sqrt(4 * count / np.pi)
    else:
        d = np.cbrt(6 * count * spacing[0] / spacing[-1] / np.pi)
    order = np.argsort(d)
    cum = np.cumsum(count[order])
    median = d[order][np.searchsorted(cum, 0.5 * cum[-1])]
    return max(1, int(median // COARSE_DIAMETER))


def split_frame(
    labels,
    *,
    spacing,
    diameter,
    min_diameter,
    connectivity,
    image,
    ratio,
    split,
    separate=False,
    widen=None,
    intensity=None,
    object_boxes=None,
):
    """Estimate the nucleus diameter and (``split``) split the touching objects of one frame.

    ``separate``: the labels are connected components of a mask (no two touch).
    Returns (labels, diameter): int32 labels (or ``labels`` itself, uint16, when the pieces
    fit), not necessarily consecutive. ``labels`` must be the caller's own array: at full
    resolution the pieces are written into it. ``widen``: for uint16 ``labels``, a callable
    returning them as int32 in place (before pieces are upsampled into them).
    ``intensity``: the frame's image, for the out-of-focus clumps of a 2D frame
    (:data:`BLUR_EDGE`); ``image`` weights the split itself. ``object_boxes``: the bounding
    boxes (y0, y1, x0, x1, inclusive) of every label of a 2D ``labels`` when known (from
    their runs): the cut objects' are then not searched for in the image.
    """
    from .size import diameter_from_peaks, distance_peaks, object_peaks

    ndim = labels.ndim
    spacing = np.asarray(spacing, float)
    f = _coarse_factor(labels, spacing)
    given = diameter
    while True:
        step = (slice(None),) * (ndim - 2) + (slice(None, None, f),) * 2
        coarse = labels[step] if f > 1 else labels
        cspacing = spacing.copy()
        cspacing[-2:] *= f
        boxed = separate and ndim == 2 and image is None and np.all(cspacing == 1.0)
        if f == 1 and boxed:
            # Each object in its own box, distances kept for the clumps only (for their
            # atlas): the same values without a full-size float map (4 bytes per pixel).
            fg = None
            peak_count, dist = _object_distances(coarse, keep=bool(split))
        elif not split:
            # Peaks only (the size estimate): tile by tile, no map of the whole frame.
            fg = dist = None
            peak_count = distance_peaks(coarse, cspacing, binary=separate and f == 1)
        else:
            fg = coarse != 0
            # Subsampling can bring two components into contact: binary distances at full
            # scale only.
            dist = _distance(coarse, fg, cspacing, separate=separate and f == 1)
            peak_count = object_peaks(coarse, dist)
        diameter = given
        if diameter is None:
            diameter = diameter_from_peaks(
                peak_count[0], peak_count[1] * float(np.prod(cspacing)), ndim
            )
        # Clumps (dense tissue, a 3D mesh of touching nuclei) can make the first guess far
        # too coarse: redo on the grid the estimated nucleus size calls for.
        needed = max(1, int(diameter / spacing[-1] // COARSE_DIAMETER))
        if needed >= f:
            break
        f = needed
    if not split:
        return labels, diameter
    if f == 1:
        del fg  # only the upsampling of a coarse split needs it (1 byte per pixel)
    blurred = None
    if intensity is not None and ndim == 2:
        intensity = _finite(intensity)
        boxes = dist.boxes if isinstance(dist, _BoxDistances) else None
        zoom = max(1.0, diameter / spacing[-1] / BLUR_DIAMETER)
        widths = _blurred_objects(
            labels, intensity, *peak_count[:2], cspacing, f, boxes, zoom=zoom, coarse=coarse
        )
        # Their pixels before the split writes its pieces into ``labels``.
        blurred = _object_masks(labels, widths) if widths else None

    def finish(out):
        return out if blurred is None else _split_blurred(out, intensity, blurred, widen)

    dist = [dist]  # emptied by ``_split``: the map is freed before the flood
    pieces, refined = _split(
        coarse,
        None,
        dist,
        spacing=cspacing,
        diameter=diameter,
        min_diameter=min_diameter,
        connectivity=connectivity,
        image=None if image is None else np.asarray(image)[step],
        ratio=ratio,
        peak_count=peak_count,
        in_place=f == 1,  # ``coarse`` is then ``labels``, the caller's own array
    )
    if given is None:
        diameter = refined
    if f == 1:
        return finish(pieces), diameter
    # Back to full resolution: objects cut into several pieces take the piece of the coarse
    # pixel above them where it belongs to the same object; the rest of their pixels grow
    # from there. Other objects keep their full-resolution shape.
    n_pieces = int(pieces.max()) + 1
    owner = np.zeros(n_pieces, np.int64)
    owner[pieces[fg]] = coarse[fg]
    per_owner = np.bincount(owner[1:], minlength=int(labels.max()) + 1)
    cut = per_owner > 1
    cut[0] = False
    if not cut.any():
        return finish(labels), diameter
    from ._flood import label_boxes, upsample_pieces, upsample_pieces_2d

    n_labels = int(labels.max())
    owner = owner.astype(np.int32)
    if ndim == 2 and labels.flags.c_contiguous and labels.dtype.kind in "ui":
        # In place, each cut object in its own box; uint16 labels stay uint16 when the
        # pieces' ids fit (widened once, at the count's relabel).
        if labels.dtype == np.uint16 and n_labels + n_pieces - 1 > np.iinfo(np.uint16).max:
            labels = widen() if widen is not None else labels.astype(np.int32)
        elif labels.dtype.itemsize < 4 and labels.dtype != np.uint16:
            labels = labels.astype(np.int32)
        boxes = object_boxes
        if boxes is None:
            boxes = np.empty((cut.size, 4), np.int64)
            boxes[:, 0::2] = np.iinfo(np.int64).max
            boxes[:, 1::2] = -1
            label_boxes(labels, cut, boxes)
        upsample_pieces_2d(labels, pieces, owner, boxes, np.flatnonzero(cut), f, n_labels, labels)
        return finish(labels), diameter
    if widen is not None and labels.dtype == np.uint16:
        labels = widen()  # ``coarse`` and ``fg`` are no longer read
    lab3 = labels.reshape((-1,) + labels.shape[-2:])
    if lab3.dtype in (np.int32, np.uint32) and lab3.flags.c_contiguous:
        out = lab3 = lab3.view(np.int32)  # in place: ``labels`` is the caller's own array
    else:
        lab3 = lab3.astype(np.int32)
        out = np.empty(lab3.shape, np.int32)
    upsample_pieces(
        lab3,
        pieces.reshape((-1,) + pieces.shape[-2:]),
        owner,
        cut,
        f,
        n_labels,
        out,
    )
    # Not renumbered: the count relabels 1..n after its size filter anyway.
    return finish(out.reshape(labels.shape)), diameter


@functools.lru_cache(maxsize=1)
def _edge_kernel():
    """The smoothing kernel of :func:`_edge_widths` (scipy's ``gaussian_filter(sigma=1)``)."""
    kernel = np.exp(-0.5 * np.arange(-4, 5) ** 2)
    return kernel / kernel.sum()


def _edge_widths(image, labels, ids, boxes, zoom=1.0):
    """Edge width of each object ``ids`` of a 2D label image, in pixels: its contrast (95th
    percentile of the intensity inside, less the 10th percentile of a ring 3-6 px outside)
    over its steepest gradients (90th percentile within 2 px inside and 3 px outside its
    outline), on the intensity smoothed by a Gaussian of sigma 1 px. About 2.5 times the
    sigma of a Gaussian blur of a step edge, plus 4 px on sharp images.

    ``boxes``: bounding boxes (y0, y1, x0, x1, inclusive) by label. ``zoom`` > 1: measured on
    each object's box sampled on a grid of pixel ``zoom`` (bilinear), so that every distance
    of the measure above is in grid pixels; returned in full-resolution pixels.
    """
    from ._flood import edge_widths

    kernel = _edge_kernel()
    ids = np.asarray(ids, np.int64)
    out = np.zeros(ids.size)
    if zoom <= 1.0:
        return edge_widths(image, labels, ids, boxes, 10, kernel, out)
    # Each object alone in its box, its neighbours one label (2): all the measure tells
    # apart. Sampled, not smoothed first: the noise of a grid pixel is that of a pixel, as
    # at full resolution (the measure's own smoothing then acts alike at every zoom).
    margin = int(np.ceil(10 * zoom)) + 1
    ny, nx = labels.shape
    one, box, width = np.ones(1, np.int64), np.empty((2, 4), np.int64), np.zeros(1)
    for i, k in enumerate(ids.tolist()):
        y0, y1, x0, x1 = (int(v) for v in boxes[k])
        y0, x0 = max(0, y0 - margin), max(0, x0 - margin)
        y1, x1 = min(ny, y1 + margin + 1), min(nx, x1 + margin + 1)
        # Grid pixel centres in the box: the nearest label, bilinear intensity.
        ys = np.arange(0.5 * zoom - 0.5, y1 - y0 - 1, zoom)
        xs = np.arange(0.5 * zoom - 0.5, x1 - x0 - 1, zoom)
        sub = labels[y0:y1, x0:x1][
            (ys + 0.5).astype(np.int64)[:, None], (xs + 0.5).astype(np.int64)
        ]
        small = (sub != 0).view(np.uint8) << (sub != k)  # 1: the object, 2: another
        inside = np.flatnonzero((small == 1).any(axis=1)), np.flatnonzero((small == 1).any(axis=0))
        if inside[0].size == 0:
            continue
        box[1] = inside[0][0], inside[0][-1], inside[1][0], inside[1][-1]
        iy, ix = ys.astype(np.int64), xs.astype(np.int64)
        ty, tx = (ys - iy).astype(np.float32)[:, None], (xs - ix).astype(np.float32)
        crop = image[y0:y1, x0:x1]
        top, bottom = crop[iy].astype(np.float32), crop[iy + 1].astype(np.float32)
        top = top[:, ix] + (top[:, ix + 1] - top[:, ix]) * tx
        bottom = bottom[:, ix] + (bottom[:, ix + 1] - bottom[:, ix]) * tx
        edge_widths(top + (bottom - top) * ty, small, one, box, 10, kernel, width)
        out[i] = zoom * width[0]
    return out


def _blurred_objects(labels, image, peak, count, spacing, f, boxes=None, zoom=1.0, coarse=None):
    """Out-of-focus candidates of a 2D frame (``BLUR_EDGE``, ``BLUR_RATIO``).

    ``labels`` and ``image`` at full resolution; ``peak`` and ``count`` of each label
    measured on ``coarse``, the labels subsampled by ``f``, whose pixel size is ``spacing``;
    ``boxes``: every label's bounding box (y0, y1, x0, x1, inclusive), when known; ``zoom``:
    the nucleus diameter over ``BLUR_DIAMETER`` (at least 1), the pixel size of the grid on
    which edge widths are measured and gated. Returns ``{label: edge width in pixels}``,
    empty when the frame is sharp.
    """
    from ._flood import label_boxes

    size = count * float(np.prod(spacing))
    # Sized for every label: a small object can be missing from the subsampled grid.
    candidate = np.zeros(max(peak.size, int(labels.max()) + 1), bool)
    candidate[: peak.size] = size > ROUND * np.pi * peak**2
    candidate[0] = False
    ids = np.flatnonzero(candidate)
    if ids.size == 0:
        return {}
    if boxes is None:
        boxes = np.empty((candidate.size, 4), np.int64)
        boxes[:, 0::2] = np.iinfo(np.int64).max
        boxes[:, 1::2] = -1
        if f > 1 and coarse is not None:
            # From the subsampled grid, f² times fewer pixels: each box grown by the f - 1
            # pixels an object can reach between two samples (a protrusion thinner than f
            # pixels may still stick out: boxes only bound the work, not the labels).
            label_boxes(coarse, candidate, boxes)
            grown = boxes[ids] * f + np.array([1 - f, f - 1, 1 - f, f - 1])
            boxes[ids] = np.clip(grown, 0, np.repeat(np.array(labels.shape) - 1, 2))
        else:
            label_boxes(labels, candidate, boxes)
    image = np.asarray(image)
    n_sample = BLUR_SAMPLE if zoom <= 1.0 else BLUR_SAMPLE_GRID
    sample = np.flatnonzero(
        np.bincount(np.linspace(0, ids.size - 1, n_sample).astype(np.int64), minlength=ids.size)
    )
    width = np.zeros(ids.size)
    # The frame is sharp when the median of the sample is below ``BLUR_FRAME``; it is so
    # whenever more than half of the sample is: a sharp frame measures that many only, the
    # smallest (the cost is per pixel of their boxes).
    b = boxes[ids[sample]]
    sample = sample[np.argsort((b[:, 1] - b[:, 0] + 1) * (b[:, 3] - b[:, 2] + 1), kind="stable")]
    first, second = sample[: sample.size // 2 + 1], sample[sample.size // 2 + 1 :]
    width[first] = _edge_widths(image, labels, ids[first], boxes, zoom)
    if np.all(width[first] < BLUR_FRAME * zoom):
        return {}
    width[second] = _edge_widths(image, labels, ids[second], boxes, zoom)
    if np.median(width[sample]) < BLUR_FRAME * zoom:
        return {}
    rest = np.setdiff1d(np.arange(ids.size), sample, assume_unique=True)
    width[rest] = _edge_widths(image, labels, ids[rest], boxes, zoom)
    radius = peak[ids] * f / spacing[-1]  # inscribed radius in full-resolution pixels
    gated = (width >= BLUR_EDGE * zoom) & (width >= BLUR_RATIO * radius)
    return dict(zip(ids[gated].tolist(), width[gated].tolist(), strict=True))


def _object_masks(labels, widths):
    """``(mask, box, width)`` of each object of ``widths`` ({label: edge width}) in the
    full-resolution ``labels``."""
    from ._flood import label_boxes

    chosen = np.zeros(int(labels.max()) + 1, bool)
    chosen[list(widths)] = True
    boxes = np.empty((chosen.size, 4), np.int64)
    boxes[:, 0::2] = np.iinfo(np.int64).max
    boxes[:, 1::2] = -1
    label_boxes(labels, chosen, boxes)
    objects = []
    for k, width in widths.items():
        box = (slice(boxes[k, 0], boxes[k, 1] + 1), slice(boxes[k, 2], boxes[k, 3] + 1))
        objects.append((labels[box] == k, box, width))
    return objects


def _finite(image):
    """``image``, or a copy whose NaN and infinite pixels take the value of the nearest finite
    one: a few such pixels would make an object's edge width NaN, and the frame's median
    with it (the frame then passed for sharp)."""
    from .unet.normalize import nonfinite_mask

    bad = nonfinite_mask(image)
    if bad is None:
        return np.asarray(image)
    if bad.all():
        return np.zeros(bad.shape, np.float32)
    nearest = ndi.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return np.asarray(image)[tuple(nearest)]


def _noise_sd(image):
    """Noise standard deviation from the median absolute difference of neighbours along x
    (every 4th row)."""
    d = np.diff(np.asarray(image[::4], np.float32), axis=-1).ravel()
    return 1.4826 * float(np.nanmedian(np.abs(d - np.nanmedian(d)))) / np.sqrt(2.0)


def _split_blurred(labels, image, objects, widen=None):
    """Split the pieces of the out-of-focus objects further at their Laplacian-of-Gaussian
    maxima (:data:`BLUR_EDGE`); returns the labels (int32 when new ids outgrow uint16).

    ``objects``: ``(mask, box, width)`` of each, its pixels (``labels[box][mask]``) as they
    were before the split. New pieces get ids above ``labels.max()``.
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    image = np.asarray(image)
    noise = _noise_sd(image)
    nxt = int(labels.max()) + 1
    for mask, box, width in objects:
        t = max(1.0, BLUR_SCALE * width)
        margin = int(3 * t) + 1
        outer = tuple(slice(max(0, b.start - margin), b.stop + margin) for b in box)
        log = -ndi.gaussian_laplace(np.asarray(image[outer], np.float32), t)
        inner = tuple(
            slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer, strict=True)
        )
        log = log[inner]
        region = labels[box]
        # The LoG of white noise of unit sd has sd 1 / (sqrt(2 pi) t^3).
        floor = BLUR_NOISE * noise / (np.sqrt(2 * np.pi) * t**3)
        # Maxima of the filter over the whole box, not of each piece alone: a piece's
        # border where the filter rises towards a neighbour is no seed, nor is the edge of a
        # maximum that lies mostly in the neighbour.
        span = float(log.max() - log.min())
        # Each seed holds a local maximum: a piece with fewer than two stays whole.
        top = log == ndi.maximum_filter(log, size=3)
        for piece in np.unique(region[mask]):
            obj = mask & (region == piece)
            if np.count_nonzero(top & obj) < 2:
                continue
            values = log[obj]
            h = max(floor, BLUR_CONTRAST * (float(values.max()) - min(0.0, float(values.min()))))
            peaks, n = ndi.label(h_maxima(log - log.min(), max(h, 1e-3 * span + 1e-9)))
            inside = np.ones(n + 1, bool)
            inside[peaks[~obj]] = False
            inside[0] = False
            if inside.sum() < 2:
                continue
            seeds = np.zeros(n + 1, np.int32)
            seeds[inside] = np.arange(1, int(inside.sum()) + 1)
            seeds, n = seeds[peaks], int(inside.sum())
            if labels.dtype == np.uint16 and nxt + n > np.iinfo(np.uint16).max:
                labels = widen() if widen is not None else labels.astype(np.int32)
                region = labels[box]
            cut = watershed(-log, seeds, mask=obj, connectivity=2)
            grown = cut > 0  # all of a connected piece; anything unreached keeps its id
            region[grown] = cut[grown] + (nxt - 1)
            nxt += n
    return labels
