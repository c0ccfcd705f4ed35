"""Connected components and measurements of a dask mask, chunk by chunk.

Each chunk is labeled with a one-pixel halo borrowed from its neighbours, so an object crossing
a chunk border is seen by both chunks on the same pixels; equal pixels give pairs of local
labels, and a union over those pairs (``scipy.sparse.csgraph.connected_components``) joins them
into global objects. Measurements are per-chunk partial sums merged by object.

The halos come from a first pass that keeps only each chunk's one-pixel border slabs of the
mask; every later task then recomputes its own chunk of the mask and needs no neighbour chunk.
(dask's ``overlap`` would hold whole neighbour chunks until every chunk around them has run: on
a 512 MB stack that held more memory than the stack.) In memory at once: one chunk and its
temporaries per worker thread, the border slabs, one entry per object; the labels are
computed again, chunk by chunk, when written.

Objects are numbered in the raster order of their first pixel, whatever the chunks; labels and
table equal :func:`napari_binseg.count_cells` on the whole array (without splitting or hole
filling) up to that numbering. The automatic ``min_size`` follows a nucleus size measured on the
objects of a few chunks (:func:`sampled_diameter`; per frame of a time series,
:func:`sampled_frame_diameters`), where ``count_cells`` measures all objects.
"""

import itertools

import numpy as np

from .measure import AXES, object_table
from .morphology import label, label_dtype

#: Chunks (with foreground) whose objects give the nucleus size of the automatic min_size.
SAMPLE_CHUNKS = 8
#: Pixels per frame of a sampled chunk of a time series (a central crop of larger chunks):
#: every frame is measured, at a bounded cost.
FRAME_SAMPLE_PIXELS = 2**18


def _label(ext, cc, time):
    """Local labels of a (halo-padded) mask block; frames apart when ``time``."""
    foreground = ext != 0
    if not time:
        return label(foreground, cc)[0].astype(np.uint32, copy=False)
    out = np.zeros(ext.shape, np.uint32)
    offset = 0
    for t in range(ext.shape[0]):
        frame = label(foreground[t], cc)[0].astype(np.uint32)
        out[t] = np.where(frame > 0, frame + offset, 0)
        offset += int(frame.max())
    return out


def _directions(ndim, time):
    """Neighbour offsets with a positive first non-zero entry (each border pair once)."""
    out = []
    for d in itertools.product((-1, 0, 1), repeat=ndim):
        nonzero = [v for v in d if v]
        if nonzero and nonzero[0] > 0 and not (time and d[0]):
            out.append(d)
    return out


def _piece(own, d, outer):
    """Slices of the halo (``outer``) or of the owned border (not ``outer``) towards ``d``."""
    slices = []
    for a, step in enumerate(d):
        lo, hi = own[a].start, own[a].stop
        if step == 0:
            slices.append(own[a])
        elif outer:
            slices.append(slice(hi, hi + 1) if step > 0 else slice(lo - 1, lo))
        else:
            slices.append(slice(hi - 1, hi) if step > 0 else slice(lo, lo + 1))
    return tuple(slices)


def _neighbours(ndim, time):
    """Every neighbour offset of a chunk (none along the time axis)."""
    return [
        d for d in itertools.product((-1, 0, 1), repeat=ndim) if any(d) and not (time and d[0])
    ]


def _slabs(block, neighbours):
    """The one-pixel border of a mask chunk towards each neighbour offset, bit-packed."""
    out = {}
    for d in neighbours:
        region = tuple(
            slice(None) if v == 0 else slice(-1, None) if v > 0 else slice(0, 1) for v in d
        )
        slab = block[region] != 0
        out[d] = (np.packbits(slab), slab.shape)
    return out


def _with_halo(block, slabs, block_id, grid, time):
    """The mask chunk padded with its neighbours' border slabs; and the owned slices."""
    ndim = block.ndim
    halo = [
        (int(not (time and a == 0) and i > 0), int(not (time and a == 0) and i < n - 1))
        for a, (i, n) in enumerate(zip(block_id, grid, strict=True))
    ]
    shape = tuple(s + lo + hi for s, (lo, hi) in zip(block.shape, halo, strict=True))
    own = tuple(slice(lo, lo + s) for s, (lo, _) in zip(block.shape, halo, strict=True))
    ext = np.zeros(shape, block.dtype)
    ext[own] = block
    for d in _neighbours(ndim, time):
        other = tuple(i + v for i, v in zip(block_id, d, strict=True))
        if not all(0 <= o < n for o, n in zip(other, grid, strict=True)):
            continue
        back = tuple(-v for v in d)
        region = tuple(
            own[a] if v == 0 else slice(-1, None) if v > 0 else slice(0, 1)
            for a, v in enumerate(d)
        )
        packed, shape = slabs[int(np.ravel_multi_index(other, grid))][back]
        ext[region] = np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape)
    return ext, own, tuple(halo)


def _block_pass(block, image, slabs, *, block_id, grid, origin, shape, cc, time, directions):
    """Label one chunk (with halo); its partial measurements and its border pieces.

    Returns ``(n, stats, outer, inner)``: ``n`` local labels (halo-only ones included),
    per-label sums indexed by local label, the labels of the foreground halo pixels towards
    each direction and of the owned foreground border pixels towards each opposite direction
    (in the smallest dtype that holds n).
    """
    ext, own, halo = _with_halo(np.asarray(block), slabs, block_id, grid, time)
    labels = _label(ext, cc, time)
    del ext
    n = int(labels.max())
    owned = labels[own]
    index = np.flatnonzero(owned)
    lab = owned.ravel()[index].astype(np.intp)
    coords = [c + o for c, o in zip(np.unravel_index(index, owned.shape), origin, strict=True)]
    size = n + 1
    stats = {"count": np.bincount(lab, minlength=size)}
    for a, c in enumerate(coords):
        stats[f"sum{a}"] = np.bincount(lab, weights=c, minlength=size)
        stats[f"min{a}"] = _reduce(np.minimum, lab, c, size, np.iinfo(np.int64).max)
        stats[f"max{a}"] = _reduce(np.maximum, lab, c, size, -1)
    first = np.ravel_multi_index(coords, shape) if index.size else np.zeros(0, np.int64)
    stats["first"] = _reduce(np.minimum, lab, first, size, np.iinfo(np.int64).max)
    if image is not None:
        values = np.asarray(image).ravel()[index]
        stats["isum"] = np.bincount(lab, weights=values, minlength=size)
        kind = values.dtype
        lo, hi = (
            (np.inf, -np.inf) if kind.kind == "f" else (np.iinfo(kind).max, np.iinfo(kind).min)
        )
        stats["imin"] = _reduce(np.minimum, lab, values, size, lo, kind)
        stats["imax"] = _reduce(np.maximum, lab, values, size, hi, kind)
    # Both blocks see the same mask on a shared border, so their labels at its foreground
    # pixels, in raster order, pair up one to one: only those labels are kept.
    outer, inner = {}, {}
    small = np.min_scalar_type(n)
    for d in directions:
        if all((halo[a][1] if v > 0 else halo[a][0]) for a, v in enumerate(d) if v):
            piece = labels[_piece(own, d, True)]
            outer[d] = piece[piece != 0].astype(small)
        back = tuple(-v for v in d)
        if all((halo[a][1] if v > 0 else halo[a][0]) for a, v in enumerate(back) if v):
            piece = labels[_piece(own, back, False)]
            inner[d] = piece[piece != 0].astype(small)
    return n, stats, outer, inner


def _reduce(ufunc, lab, values, size, initial, dtype=np.int64):
    out = np.full(size, initial, dtype=dtype)
    ufunc.at(out, lab, values)
    return out


def _pairs(outer, inner):
    """Unique (label in block A, label in block B) pairs on the same foreground pixels."""
    if outer.size == 0:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.stack([outer, inner], axis=1).astype(np.int64), axis=0)


def _block_peaks(block, spacing, cc, time, pixels=None):
    """Inscribed radius (distance peak), pixel count and frame in the chunk (0 without
    ``time``) of each object of one mask chunk, or of its central crop of at most ``pixels``
    pixels per frame."""
    from .size import _distance_map, object_peaks

    block = np.asarray(block)
    if pixels is not None:
        first = int(time)
        shape = block.shape[first:]
        fraction = min(1.0, (pixels / np.prod(shape)) ** (1 / len(shape)))
        crop = [max(1, int(n * fraction)) for n in shape]
        box = tuple(
            slice((n - m) // 2, (n - m) // 2 + m) for n, m in zip(shape, crop, strict=True)
        )
        block = block[(slice(None),) * first + box]
    labels = _label(block, cc, time)
    if not labels.any():
        return np.zeros(0), np.zeros(0), np.zeros(0, np.intp)
    # Frames are measured one by one (the distance map has no time axis).
    frames = labels if time else labels[np.newaxis]
    peak, count = object_peaks(labels, np.stack([_distance_map(f, spacing) for f in frames]))
    frame = np.zeros(len(peak), np.intp)
    for t, f in enumerate(frames):
        frame[f] = t  # frames never share a label (see _label)
    return peak[1:], count[1:], frame[1:]


def _spread(items, n):
    """Up to ``n`` of ``items``, spread evenly over them."""
    picks = np.unique(np.linspace(0, len(items) - 1, min(n, len(items))).round())
    return [items[int(i)] for i in picks]


def sampled_diameter(mask_blocks, filled, spacing, cc, time, n_chunks=SAMPLE_CHUNKS):
    """Typical nucleus diameter of a chunked mask, from the objects of a few of its chunks.

    The estimate of :func:`napari_binseg.count_cells` on a whole mask (the size-weighted median
    inscribed diameter, :func:`.size.diameter_from_peaks`), pooled over ``n_chunks`` chunks
    holding foreground, spread evenly over the array (``filled``: foreground pixels per chunk,
    in the order of ``mask_blocks``' ``np.ndindex``). As at the image's border, an object cut
    by a chunk border keeps its inscribed radius (the border is not background) and weighs
    its pixels in the chunk. 0.0 for an empty mask.
    """
    import dask

    from .size import diameter_from_peaks

    indices = list(np.ndindex(*mask_blocks.shape))
    nonempty = [idx for idx, n in zip(indices, filled, strict=True) if n]
    if not nonempty:
        return 0.0
    tasks = [
        dask.delayed(_block_peaks)(mask_blocks[i], spacing, cc, time)
        for i in _spread(nonempty, n_chunks)
    ]
    peaks, counts, _ = zip(*dask.compute(*tasks), strict=True)
    size = np.concatenate(counts) * float(np.prod(spacing))
    return diameter_from_peaks(np.concatenate(peaks), size, len(spacing))


def sampled_frame_diameters(
    mask_blocks, filled, spacing, cc, frame_chunks, n_chunks=SAMPLE_CHUNKS
):
    """Typical nucleus diameter of every frame of a chunked time series (axis 0 is time).

    As :func:`sampled_diameter`, per frame: every time chunk (``frame_chunks``, the mask's
    chunk lengths along axis 0) gives ``max(1, n_chunks // len(frame_chunks))`` of its chunks
    holding foreground, spread evenly, each cropped to its central
    :data:`FRAME_SAMPLE_PIXELS` pixels per frame; a frame pools its objects there. A frame
    without a sampled object (its objects all elsewhere) takes the diameter of every sampled
    object; 0.0 for all frames of an empty mask.

    Returns
    -------
    (n_frames,) ndarray of float
    """
    import dask

    from .size import diameter_from_peaks

    starts = np.cumsum((0, *frame_chunks))
    per_block = max(1, n_chunks // len(frame_chunks))
    indices = list(np.ndindex(*mask_blocks.shape))
    chosen = []
    for t in range(len(frame_chunks)):
        nonempty = [i for i, n in zip(indices, filled, strict=True) if n and i[0] == t]
        chosen += _spread(nonempty, per_block)
    out = np.zeros(int(starts[-1]))
    if not chosen:
        return out
    tasks = [
        dask.delayed(_block_peaks)(mask_blocks[i], spacing, cc, True, FRAME_SAMPLE_PIXELS)
        for i in chosen
    ]
    peaks, counts, frames = zip(*dask.compute(*tasks), strict=True)
    peak = np.concatenate(peaks)
    size = np.concatenate(counts) * float(np.prod(spacing))
    frame = np.concatenate([f + starts[i[0]] for f, i in zip(frames, chosen, strict=True)])
    out[:] = diameter_from_peaks(peak, size, len(spacing))
    for t in np.unique(frame):
        here = frame == t
        out[t] = diameter_from_peaks(peak[here], size[here], len(spacing))
    return out


def label_and_measure(
    mask, image=None, *, spacing, connectivity, min_size=0, max_size=None,
    exclude_border=False, time=False, diameter=None,
):  # fmt: skip
    """Label a dask mask across chunks, measure and filter the objects.

    Parameters
    ----------
    mask : dask array of uint8 or bool
        Foreground is non-zero. With ``time``, axis 0 is time and frames never connect.
    image : dask array, optional
        Intensities, same shape and chunks as ``mask``.
    spacing : (ndim_spatial,) ndarray
        Pixel size of the spatial axes.
    connectivity : int
        connected-components-3d connectivity (4/8 in 2D, 6/18/26 in 3D).
    min_size, max_size : float
        Kept sizes (area or volume in physical units). ``min_size=None``: a tenth of the
        nucleus of ``diameter``, as :func:`napari_binseg.count_cells` sets it for a mask;
        with ``diameter`` None, estimated on a few chunks (:func:`sampled_diameter`), per
        frame of a time series (:func:`sampled_frame_diameters`).
    exclude_border : bool
        Drop objects touching a spatial face.
    time : bool
        Axis 0 is time: one object never spans two frames, the table gets a ``frame`` column.
    diameter : float, optional
        Typical nucleus diameter (physical units) for the automatic ``min_size``.

    Returns
    -------
    labels : dask array of uint16 (fewer than 65536 objects) or uint32
        Lazy labels ``1..n`` (computed chunk by chunk when stored), typed as
        :func:`napari_binseg.count_cells` types them.
    table : pandas.DataFrame
        The table of :func:`napari_binseg.count_cells`; with ``min_size=None`` its ``attrs``
        hold ``diameter``, ``diameter_px`` and ``min_size`` as there; for a time series with
        an estimated diameter, ``frame_diameters`` (each frame's) and the median of those
        above 0 as ``diameter``, without ``min_size`` (as ``count_cells``).
    """
    import dask
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ndim = mask.ndim
    directions = _directions(ndim, time)
    grid = mask.numblocks
    blocks = list(np.ndindex(*grid))
    mask_blocks = mask.to_delayed()
    neighbours = _neighbours(ndim, time)
    slabs, filled = dask.compute(
        [dask.delayed(_slabs)(mask_blocks[i], neighbours) for i in blocks],
        [dask.delayed(np.count_nonzero)(mask_blocks[i]) for i in blocks],
    )
    auto = {}
    if min_size is None:
        from .counting import MIN_SIZE_FRACTION, _nucleus_size

        if diameter is None and time:
            frames = sampled_frame_diameters(
                mask_blocks, filled, spacing, connectivity, mask.chunks[0]
            )
            min_size = MIN_SIZE_FRACTION * _nucleus_size(frames, len(spacing))
            diameter = float(np.median(frames[frames > 0])) if frames.any() else 0.0
            auto = {"frame_diameters": frames.tolist()}
        else:
            if diameter is None:
                diameter = sampled_diameter(mask_blocks, filled, spacing, connectivity, time)
            min_size = MIN_SIZE_FRACTION * _nucleus_size(diameter, len(spacing))
            auto = {"min_size": float(min_size)}
        auto |= {
            "diameter": float(diameter),
            "diameter_px": float(diameter) / float(spacing[-1]),
        }
    slabs = dask.delayed(slabs, traverse=False)
    image_blocks = None if image is None else image.to_delayed()
    starts = [np.cumsum((0,) + c)[:-1] for c in mask.chunks]

    passes = {}
    for idx in blocks:
        passes[idx] = dask.delayed(_block_pass, nout=4)(
            mask_blocks[idx],
            None if image_blocks is None else image_blocks[idx],
            slabs,
            block_id=idx,
            grid=grid,
            origin=tuple(int(starts[a][idx[a]]) for a in range(ndim)),
            shape=mask.shape,
            cc=connectivity,
            time=time,
            directions=directions,
        )
    pair_tasks, pair_blocks = [], []
    for idx in blocks:
        for d in directions:
            other = tuple(i + v for i, v in zip(idx, d, strict=True))
            if all(0 <= o < nb for o, nb in zip(other, grid, strict=True)):
                pair_tasks.append(dask.delayed(_pairs)(passes[idx][2][d], passes[other][3][d]))
                pair_blocks.append((idx, other))
    counts, stats, pairs = dask.compute(
        [passes[i][0] for i in blocks], [passes[i][1] for i in blocks], pair_tasks
    )

    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = {idx: k for k, idx in enumerate(blocks)}
    n_nodes = int(offsets[-1])
    edges = [
        np.stack([p[:, 0] - 1 + offsets[flat[a]], p[:, 1] - 1 + offsets[flat[b]]])
        for p, (a, b) in zip(pairs, pair_blocks, strict=True)
        if len(p)
    ]
    edges = np.concatenate(edges, axis=1) if edges else np.zeros((2, 0), np.int64)
    graph = coo_matrix(
        (np.ones(edges.shape[1], np.int8), (edges[0], edges[1])), shape=(n_nodes, n_nodes)
    )
    _, component = connected_components(graph, directed=False)

    merged = {}
    for key in list(stats[0]) if stats else ():
        merged[key] = np.concatenate([s.pop(key)[1:] for s in stats])
    del stats, pairs, edges, graph
    n_comp = int(component.max()) + 1 if n_nodes else 0
    agg = {"count": np.bincount(component, weights=merged.get("count"), minlength=n_comp)}
    for key, values in merged.items():
        if key.startswith("sum") or key == "isum":
            agg[key] = np.bincount(component, weights=values, minlength=n_comp)
        elif key != "count":
            lo = key.startswith("min") or key in ("first", "imin")
            init = values.max() if lo and values.size else values.min() if values.size else 0
            out = np.full(n_comp, init, dtype=values.dtype)
            (np.minimum if lo else np.maximum).at(out, component, values)
            agg[key] = out
    present = np.flatnonzero(agg["count"] > 0)
    order = present[np.argsort(agg["first"][present], kind="stable")]
    table, keep = _table(agg, order, mask.shape, spacing, time, min_size, max_size,
                         exclude_border)  # fmt: skip
    n = int(keep.sum())
    # The in-memory count's type (uint16 below 65536 objects), known before any label is made.
    dtype = label_dtype(n)
    final = np.zeros(n_comp, dtype)
    final[order[keep]] = np.arange(1, n + 1, dtype=dtype)
    lut = final[component] if n_nodes else np.zeros(0, dtype)

    table.attrs.update(auto)
    labels = mask.map_blocks(
        _final_block,
        slabs,
        dask.delayed(lut),
        dask.delayed(offsets),
        grid=grid,
        cc=connectivity,
        time=time,
        dtype=dtype,
    )
    return labels, table


def _final_block(block, slabs, lut, offsets, *, grid, cc, time, block_id=None):
    """Global labels of one chunk: its local labels through the lookup table."""
    ext, own, _ = _with_halo(block, slabs, block_id, grid, time)
    labels = _label(ext, cc, time)[own]
    k = int(np.ravel_multi_index(block_id, grid))
    table = np.concatenate([[0], lut[offsets[k] : offsets[k + 1]]]).astype(lut.dtype)
    return table[labels]


def _table(agg, order, shape, spacing, time, min_size, max_size, exclude_border):
    """The object table (as ``count_cells`` gives it) and which objects pass the filters."""
    spatial = list(range(1, len(shape))) if time else list(range(len(shape)))
    intensity = None
    if "isum" in agg:
        intensity = (agg["isum"][order], agg["imin"][order], agg["imax"][order])
    table = object_table(
        agg["count"][order],
        [agg[f"sum{a}"][order] for a in spatial],
        [agg[f"min{a}"][order] for a in spatial],
        [agg[f"max{a}"][order] for a in spatial],
        spacing,
        intensity=intensity,
    )
    axes = AXES[3 - len(spatial) :]
    size = table["area" if len(spatial) == 2 else "volume"].to_numpy()
    if np.ndim(min_size):  # one per frame
        min_size = np.asarray(min_size)[agg["min0"][order]]
    keep = size >= min_size
    if max_size is not None:
        keep &= size <= max_size
    if exclude_border:
        for ax, a in zip(axes, spatial, strict=True):
            keep &= (table[f"bbox_min_{ax}"] > 0).to_numpy()
            keep &= (table[f"bbox_max_{ax}"] < shape[a]).to_numpy()
    attrs = dict(table.attrs)
    table = table[keep].reset_index(drop=True)
    table.insert(0, "label", np.arange(1, len(table) + 1, dtype=np.int64))
    table.attrs = {}
    if time:
        table.insert(1, "frame", agg["min0"][order][keep].astype(np.int64))
        table.attrs["n_frames"] = shape[0]
    table.attrs.update(attrs)
    return table, keep
