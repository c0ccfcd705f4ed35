"""Seeded watershed of the split, compiled: local maxima, priority flood, saddles in one pass.

scikit-image's ``watershed`` spends most of its time on arrays of the whole image; the split
floods only the pixels of non-round objects, so this kernel works on their flat indices, finds
the maxima of the distance map itself and records, while flooding, the highest saddle between
every pair of adjacent basins (what the merge step needs). Imports numba at the top: import
this module inside functions only.
"""

import numba
import numpy as np

from ._runs import _find


def _jit(func):
    try:
        return numba.njit(nogil=True, cache=True)(func)
    except RuntimeError:  # no writable cache location
        return numba.njit(nogil=True, cache=False)(func)


def _flood_impl(value, pos, owner, pixels, offsets, flood_offsets, n_levels, nxt, basin, vmax):
    """Watershed of ``-value`` from its local maxima, within each object.

    The flooded pixels are numbered ``i = 0..K-1``: ``pixels[i]`` is the flat index of pixel
    i in ``pos`` (a flat, zero-padded array, so every neighbour offset of a flooded pixel is
    inside), ``pos[pixels[i]] == i + 1`` (0: not flooded), ``owner[i]`` its object and
    ``value[i]`` its value. ``offsets``: flat offsets of the full neighbourhood (maxima);
    ``flood_offsets``: those of the flooding connectivity. Values are quantized to
    ``n_levels`` levels for a bucket queue (Meyer's hierarchical queue): linear time instead
    of a heap's n log n.
    ``nxt`` (filled with -1) and ``basin`` (zeros) hold a value per flooded pixel: the queue's
    links and the result, so the memory is in proportion to the flooded pixels. ``vmax``:
    the top of the quantization (negative: the largest of ``value`` and 0).

    Returns (basin of each pixel of ``pixels`` (1..n), peak per basin (index 0 unused),
    pair a, pair b, saddle): every pair of adjacent basins (a < b, sorted) once, with its
    highest saddle, a saddle being min(value) of two adjacent pixels of the two basins.
    """
    n = pixels.size
    if vmax < 0:
        vmax = 0.0
        for i in range(n):
            vmax = max(vmax, value[i])
    scale = (n_levels - 1) / vmax if vmax > 0 else 0.0
    head = np.full(n_levels, -1, np.int64)
    tail = np.full(n_levels, -1, np.int64)
    peaks = [0.0]
    n_basins = 0
    n_owners = 1
    for i in range(n):
        n_owners = max(n_owners, owner[i] + 1)
    seeds = np.zeros(n_owners, np.int64)  # seeds per object, and the basin of its first
    first = np.zeros(n_owners, np.int64)
    for i in range(n):
        p = pixels[i]
        v = value[i]
        o = owner[i]
        is_max = True
        for off in offsets:
            q = p + off
            j = pos[q] - 1
            if j >= 0 and owner[j] == o and value[j] > v:
                is_max = False
                break
        if is_max:
            n_basins += 1
            basin[i] = n_basins
            peaks.append(v)
            if seeds[o] == 0:
                first[o] = n_basins
            seeds[o] += 1
    # An object with one seed is one basin, without a flood (most non-round objects are
    # single elongated nuclei): with the full neighbourhood the seed would reach all of it.
    # The seeds of the others are queued in raster order.
    whole = flood_offsets.size == offsets.size
    for i in range(n):
        o = owner[i]
        if whole and seeds[o] == 1:
            basin[i] = first[o]
        elif basin[i] != 0:
            lv = min(max(int(value[i] * scale), 0), n_levels - 1)
            if tail[lv] < 0:
                head[lv] = i
            else:
                nxt[tail[lv]] = i
            tail[lv] = i
    # The highest saddle per pair of basins, kept as the flood meets it: memory in proportion
    # to the pairs, not to the (many more) pixels where two basins touch.
    n_keys = np.int64(n_basins + 1)
    saddles = numba.typed.Dict.empty(numba.types.int64, numba.types.float64)
    for level in range(n_levels - 1, -1, -1):
        i = head[level]
        while i >= 0:
            b = basin[i]
            o = owner[i]
            p = pixels[i]
            for off in flood_offsets:
                q = p + off
                j = pos[q] - 1
                if j < 0 or owner[j] != o:
                    continue
                bq = basin[j]
                if bq == 0:
                    basin[j] = b
                    lq = min(max(int(value[j] * scale), 0), level)
                    if tail[lq] < 0:
                        head[lq] = j
                    else:
                        nxt[tail[lq]] = j
                    tail[lq] = j
                elif bq != b:
                    key = min(b, bq) * n_keys + max(b, bq)
                    s = np.float64(min(value[i], value[j]))
                    if key not in saddles or s > saddles[key]:
                        saddles[key] = s
            i = nxt[i]
    keys = np.empty(len(saddles), np.int64)
    best = np.empty(len(saddles), np.float64)
    k = 0
    for key, s in saddles.items():
        keys[k] = key
        best[k] = s
        k += 1
    order = np.argsort(keys)
    keys = keys[order]
    return basin, np.array(peaks), keys // n_keys, keys % n_keys, best[order]


def _positions_impl(flat_owner, pixels, owner):
    """``owner[i] = flat_owner[p]``, then ``flat_owner[p] = i + 1``, for ``p = pixels[i]``."""
    for i in range(pixels.size):
        p = pixels[i]
        owner[i] = flat_owner[p]
        flat_owner[p] = i + 1
    return owner


_positions = _jit(_positions_impl)


def _label_max_impl(lab, values, n):
    out = np.zeros(n, np.float64)
    counts = np.zeros(n, np.int64)
    for i in range(lab.size):
        k = lab[i]
        counts[k] += 1
        if values[i] > out[k]:
            out[k] = values[i]
    return out, counts


#: Per-label maximum (of non-negative values) and pixel count, in one pass.
label_max = _jit(_label_max_impl)
_flood = _jit(_flood_impl)


def _offsets(shape, rank):
    """Flat offsets of the neighbours within ``rank`` (1: faces .. ndim: full) of a C array."""
    strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]
    out = []
    for step in np.ndindex(*(3,) * len(shape)):
        d = np.asarray(step) - 1
        k = int(np.abs(d).sum())
        if 0 < k <= rank:
            out.append(int((d * strides).sum()))
    return np.asarray(out, np.int64)


def flood_padded(
    value, owner, connectivity, pixels=None, *, in_place=False, values=None, vmax=None
):
    """Basins of ``value`` (local maxima flooded downwards) inside each ``owner`` object.

    Parameters
    ----------
    value : ndarray of float32
        The (smoothed) distance map, with a border of one zero pixel on every side.
    owner : ndarray of int32, same shape
        Object of each pixel (0: not flooded, and on the border); basins never cross objects.
    connectivity : int
        Rank of the flooding neighbourhood, 1..ndim.
    pixels : ndarray, optional
        ``nonzero_index(owner.ravel())``, when the caller has it already.
    in_place : bool
        ``owner`` (C-contiguous) may be overwritten (with the flood's pixel numbers): no
        full-size int32 array of its own.
    values : (K,) ndarray of float32, optional
        ``value.ravel()[pixels]``, in place of ``value`` (then None): the caller can free
        the padded map before the flood.
    vmax : float, optional
        Top of the value quantization (default: the largest value, and at least 0); a flood
        in parts passes that of the whole.

    Returns
    -------
    basins : (K,) ndarray of int32
        Basin id (1..n) of each owned pixel, in raster order (``owner.ravel() != 0``).
    pixels : (K,) ndarray of int32 or int64
        Flat index of each owned pixel (``np.flatnonzero(owner)``, int32 when it fits).
    owners : (K,) ndarray of int32
        ``owner`` of each owned pixel.
    peak : (n + 1,) ndarray
        Value at each basin's seed (index 0 unused).
    a, b, saddle : ndarrays
        For every pair of adjacent basins (a < b), the highest saddle between them.
    """
    ndim = owner.ndim
    flat_owner = owner.ravel()
    # Flat indices in int32 where they fit: the flood's per-pixel arrays are half as large.
    itype = np.int32 if owner.size < 2**31 else np.int64
    if pixels is None:
        pixels = nonzero_index(flat_owner)
    if values is None:
        values = value.ravel()[pixels]
    del value
    if not np.isfinite(values).all():  # NaN intensities, no background: never index with them
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    full = _offsets(owner.shape, ndim)
    face = _offsets(owner.shape, connectivity)
    # Flooded pixels by number: a map of those numbers (in ``owner``'s place when allowed)
    # and arrays per flooded pixel, not per pixel of the padded box.
    pos = flat_owner if in_place and owner.flags.c_contiguous else flat_owner.copy()
    owners = _positions(pos, pixels, np.empty(pixels.size, np.int32))
    nxt = np.full(pixels.size, -1, itype)
    basin = np.zeros(pixels.size, np.int32)
    top = -1.0 if vmax is None else float(vmax)
    basin, peak, a, b, s = _flood(values, pos, owners, pixels, full, face, 1024, nxt, basin, top)
    return basin, pixels, owners, peak, a, b, s


def _nonzero_impl(values, out):
    """``out[:] = np.flatnonzero(values)`` (``out`` sized by ``np.count_nonzero``)."""
    j = 0
    for i in range(values.size):
        if values[i] != 0:
            out[j] = i
            j += 1
    return out


_nonzero = _jit(_nonzero_impl)


def nonzero_index(values):
    """``np.flatnonzero(values)`` of a flat array, int32 when its size allows (half the memory)."""
    out = np.empty(np.count_nonzero(values), np.int32 if values.size < 2**31 else np.int64)
    return _nonzero(values, out)


def _write_pieces_impl(pixels, seg, owners, width, oy, ox, piece_id, roots, raw, out):
    """Write the pieces of a packed 2D atlas back to the image, and measure them.

    Pixel ``pixels[i]`` of the atlas (row width ``width``), owned by object
    ``k = owners[i]``, is image pixel ``(row - oy[k], col - ox[k])``; it gets
    ``piece_id[seg[i]]``. Returns the peak of ``raw`` (a value per pixel of ``pixels``) and the
    pixel count per merged piece (``roots[seg]``), as ``label_max`` over the same pixels.
    """
    n = roots.size
    peak = np.zeros(n, np.float64)
    counts = np.zeros(n, np.int64)
    for i in range(pixels.size):
        p = pixels[i]
        k = owners[i]
        y = p // width - oy[k]
        x = p % width - ox[k]
        s = seg[i]
        out[y, x] = piece_id[s]
        r = roots[s]
        counts[r] += 1
        v = raw[i]
        if v > peak[r]:
            peak[r] = v
    return peak, counts


write_pieces = _jit(_write_pieces_impl)


def _basin_owner_impl(seg, owners, owner):
    """``owner[seg[i]] = owners[i]``: the object of each basin."""
    for i in range(seg.size):
        owner[seg[i]] = owners[i]
    return owner


basin_owner = _jit(_basin_owner_impl)


def _upsample_impl(labels, pieces, owner, cut, f, offset, out):
    """Full-resolution pieces of the cut objects from the pieces of a subsampled grid.

    ``labels``, ``out``: (Z, Y, X); ``pieces``: (Z, ceil(Y/f), ceil(X/f)). A pixel of a cut
    object takes the piece above it when that piece belongs to its object; the rest grow from
    those (breadth first, faces). Other pixels keep their label. Pieces become ``offset + id``.
    """
    nz, ny, nx = labels.shape
    sy = nx + 2
    sz = (ny + 2) * sy
    zp = 1 if nz > 1 else 0  # a single plane needs no z padding (a third of the memory)
    assign = np.zeros((nz + 2 * zp) * sz, np.int32)
    own = np.zeros((nz + 2 * zp) * sz, np.int32)
    n_cut = 0
    column = np.arange(nx) // f
    for z in range(nz):
        for y in range(ny):
            row = labels[z, y]
            prow = pieces[z, y // f]
            outrow = out[z, y]
            base = (z + zp) * sz + (y + 1) * sy + 1
            for x in range(nx):
                lab = row[x]
                outrow[x] = lab
                if lab != 0 and cut[lab]:
                    own[base + x] = lab
                    n_cut += 1
    # Seeds of the growth: pixels under a piece of their own object.
    queue = np.empty(n_cut, np.int64)
    n = 0
    for z in range(nz):
        for y in range(ny):
            prow = pieces[z, y // f]
            base = (z + zp) * sz + (y + 1) * sy + 1
            for x in range(nx):
                lab = own[base + x]
                if lab != 0:
                    p = prow[column[x]]
                    if owner[p] == lab:
                        assign[base + x] = p
                        queue[n] = base + x
                        n += 1
    offsets = np.array([-sz, sz, -sy, sy, -1, 1], np.int64)
    if nz == 1:
        offsets = offsets[2:]
    i = 0
    while i < n:
        p = queue[i]
        i += 1
        o = own[p]
        a = assign[p]
        for off in offsets:
            q = p + off
            if own[q] == o and assign[q] == 0:
                assign[q] = a
                queue[n] = q
                n += 1
    flat = out.reshape(-1)
    for k in range(n):
        p = queue[k]
        z = p // sz - zp
        rem = p % sz
        y = rem // sy - 1
        x = rem % sy - 1
        flat[(z * ny + y) * nx + x] = offset + assign[p]
    return out


upsample_pieces = _jit(_upsample_impl)


def _upsample_2d_impl(labels, pieces, owner, boxes, ids, f, offset, out):
    """:func:`upsample_pieces` of a 2D image, each cut object of ``ids`` in its own box
    (``boxes``: y0, y1, x0, x1 inclusive): no full-size arrays, work in proportion to the
    cut objects. Growth in raster-order seeds and breadth first, per object as the whole
    image's queue does for it. ``out`` may be ``labels``; other pixels are not written."""
    for i in range(ids.size):
        k = ids[i]
        y0, y1, x0, x1 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
        h = y1 - y0 + 1
        w = x1 - x0 + 1
        sy = w + 2
        assign = np.zeros((h + 2) * sy, np.int32)
        own = np.zeros((h + 2) * sy, np.bool_)
        queue = np.empty(h * w, np.int64)
        n = 0
        for y in range(h):
            row = labels[y0 + y]
            prow = pieces[(y0 + y) // f]
            base = (y + 1) * sy + 1
            for x in range(w):
                if row[x0 + x] == k:
                    own[base + x] = True
                    p = prow[(x0 + x) // f]
                    if owner[p] == k:
                        assign[base + x] = p
                        queue[n] = base + x
                        n += 1
        j = 0
        while j < n:
            p = queue[j]
            j += 1
            a = assign[p]
            for q in (p - sy, p + sy, p - 1, p + 1):
                if own[q] and assign[q] == 0:
                    assign[q] = a
                    queue[n] = q
                    n += 1
        for j in range(n):
            p = queue[j]
            out[y0 + p // sy - 1, x0 + p % sy - 1] = offset + assign[p]
    return out


upsample_pieces_2d = _jit(_upsample_2d_impl)


def _boxes_impl(labels, candidate, boxes):
    """Bounding boxes (y0, y1, x0, x1, inclusive) of the ``candidate`` labels of a 2D image."""
    ny, nx = labels.shape
    for y in range(ny):
        row = labels[y]
        for x in range(nx):
            k = row[x]
            if k != 0 and candidate[k]:
                if y < boxes[k, 0]:
                    boxes[k, 0] = y
                if y > boxes[k, 1]:
                    boxes[k, 1] = y
                if x < boxes[k, 2]:
                    boxes[k, 2] = x
                if x > boxes[k, 3]:
                    boxes[k, 3] = x
    return boxes


label_boxes = _jit(_boxes_impl)


def _relabel_impl(flat, lut):
    """``flat[i] = lut[flat[i]]`` where ``flat[i] != 0``, in place (background skipped)."""
    for i in range(flat.size):
        v = flat[i]
        if v != 0:
            flat[i] = lut[v]
    return flat


def _select_impl(values, lut):
    """Flat indices ``i`` where ``lut[values[i]]`` is True (``np.flatnonzero(lut[values])``
    without the full-size temporary)."""
    n = 0
    for i in range(values.size):
        if lut[values[i]]:
            n += 1
    out = np.empty(n, np.int64)
    j = 0
    for i in range(values.size):
        if lut[values[i]]:
            out[j] = i
            j += 1
    return out


def _widen_impl(wide, narrow, lut):
    """``wide[i] = lut[narrow[i]]`` (``narrow[i]`` itself without ``lut``; background
    skipped), from the start: ``narrow`` may be the upper half of ``wide``'s own bytes,
    each value read before the write that could cover it."""
    if lut.size == 0:
        for i in range(wide.size):
            wide[i] = narrow[i]
    else:
        for i in range(wide.size):
            v = narrow[i]
            wide[i] = lut[v] if v != 0 else 0
    return wide


widen_upper = _jit(_widen_impl)
relabel_nonzero = _jit(_relabel_impl)
select_where = _jit(_select_impl)


def _pack_boxes_impl(labels, dist, candidate, ids, boxes, hy, hx, oy, ox, value, owner):
    """Copy, for each object k of ``ids``, its box grown by (hy, hx) to ``+ (oy[k], ox[k])``:
    the distances of every ``candidate`` pixel there (neighbouring clumps included, as a
    smoothing of the whole image would see them) and ``owner`` k on k's own pixels."""
    ny, nx = labels.shape
    for i in range(ids.size):
        k = ids[i]
        for y in range(max(0, boxes[k, 0] - hy), min(ny, boxes[k, 1] + hy + 1)):
            row = labels[y]
            drow = dist[y]
            ty = y + oy[k]
            for x in range(max(0, boxes[k, 2] - hx), min(nx, boxes[k, 3] + hx + 1)):
                lab = row[x]
                if lab != 0 and candidate[lab]:
                    value[ty, x + ox[k]] = drow[x]
                    if lab == k:
                        owner[ty, x + ox[k]] = k
    return value


pack_boxes = _jit(_pack_boxes_impl)


def _background_runs_impl(labels):
    """The background (0) runs along x of a (P, M, N) label image: ``(row_ptr, start,
    stop)``, the runs of row ``r`` (z * M + y) at ``row_ptr[r]:row_ptr[r + 1]``."""
    nz, ny, nx = labels.shape
    n_rows = nz * ny
    row_ptr = np.zeros(n_rows + 1, np.int64)
    for r in range(n_rows):
        row = labels[r // ny, r % ny]
        k = 0
        prev = 1
        for x in range(nx):
            v = row[x]
            if v == 0 and prev != 0:
                k += 1
            prev = v
        row_ptr[r + 1] = row_ptr[r] + k
    n = row_ptr[n_rows]
    start = np.empty(n, np.int32)
    stop = np.empty(n, np.int32)
    for r in range(n_rows):
        row = labels[r // ny, r % ny]
        j = row_ptr[r]
        x = 0
        while x < nx:
            if row[x] == 0:
                s = x
                while x < nx and row[x] == 0:
                    x += 1
                start[j] = s
                stop[j] = x
                j += 1
            else:
                x += 1
    return row_ptr, start, stop


def _gaps_impl(offsets, starts, ends, nx):
    """:func:`background_runs` from the foreground runs (``offsets``, ``starts``, ``ends`` of
    :func:`napari_binseg._runs.find_runs`) of rows of ``nx`` pixels: their gaps."""
    n_rows = offsets.size - 1
    row_ptr = np.zeros(n_rows + 1, np.int64)
    for r in range(n_rows):
        k = 0
        done = 0
        for i in range(offsets[r], offsets[r + 1]):
            if starts[i] > done:
                k += 1
            done = ends[i]
        if done < nx:
            k += 1
        row_ptr[r + 1] = row_ptr[r] + k
    start = np.empty(row_ptr[n_rows], np.int32)
    stop = np.empty(row_ptr[n_rows], np.int32)
    for r in range(n_rows):
        j = row_ptr[r]
        done = 0
        for i in range(offsets[r], offsets[r + 1]):
            if starts[i] > done:
                start[j] = done
                stop[j] = starts[i]
                j += 1
            done = ends[i]
        if done < nx:
            start[j] = done
            stop[j] = nx
    return row_ptr, start, stop


def _holes_impl(labels, z_faces, row_ptr, start, stop):
    """Background holes of a (P, M, N) label image as runs along x, and the label to fill,
    from its background runs (:func:`background_runs`).

    Background (0) is connected through faces; a region is a hole when it touches no face
    of the array (the z faces only with ``z_faces``). Runs of one row are merged with the
    overlapping runs of the row above (y - 1) and of the plane before (z - 1) by union-find.
    Returns ``(row, start, stop, fill)`` of the hole runs: ``fill`` is the label of the one
    object bordering the run's hole through faces, 0 when two or more do. Memory is in
    proportion to the runs, not to the pixels.
    """
    nz, ny, nx = labels.shape
    n_rows = nz * ny
    n = row_ptr[n_rows]
    parent = np.arange(n).astype(np.int64)
    for r in range(n_rows):
        z = r // ny
        y = r % ny
        for other in (r - 1 if y > 0 else -1, r - ny if z > 0 else -1):
            if other < 0:
                continue
            i, i_end = row_ptr[r], row_ptr[r + 1]
            j, j_end = row_ptr[other], row_ptr[other + 1]
            while i < i_end and j < j_end:
                if start[i] < stop[j] and start[j] < stop[i]:
                    a = _find(parent, i)
                    b = _find(parent, j)
                    if a != b:
                        if a < b:
                            parent[b] = a
                        else:
                            parent[a] = b
                if stop[i] < stop[j]:
                    i += 1
                else:
                    j += 1
    outside = np.zeros(n, np.bool_)
    for r in range(n_rows):
        z = r // ny
        y = r % ny
        face_row = y == 0 or y == ny - 1 or (z_faces and (z == 0 or z == nz - 1))
        for i in range(row_ptr[r], row_ptr[r + 1]):
            if face_row or start[i] == 0 or stop[i] == nx:
                outside[_find(parent, i)] = True
    n_holes = 0
    for i in range(n):
        if not outside[_find(parent, i)]:
            n_holes += 1
    hole_row = np.empty(n_holes, np.int64)
    hole_run = np.empty(n_holes, np.int64)
    # The one bordering label of each hole's root (0: none yet), and whether it has two.
    first = np.zeros(n, np.int64)
    multi = np.zeros(n, np.bool_)
    h = 0
    for r in range(n_rows):
        z = r // ny
        y = r % ny
        row = labels[z, y]
        for i in range(row_ptr[r], row_ptr[r + 1]):
            root = _find(parent, i)
            if outside[root]:
                continue
            hole_row[h] = r
            hole_run[h] = i
            h += 1
            if multi[root]:
                continue
            # A hole touches no face: its row neighbours and both run ends exist.
            for x in (np.int64(start[i]) - 1, np.int64(stop[i])):
                v = np.int64(row[x])
                if first[root] == 0:
                    first[root] = v
                elif first[root] != v:
                    multi[root] = True
            for zz, yy in ((z, y - 1), (z, y + 1), (z - 1, y), (z + 1, y)):
                if zz < 0 or zz >= nz:
                    continue
                nrow = labels[zz, yy]
                for x in range(start[i], stop[i]):
                    v = np.int64(nrow[x])
                    if v != 0:
                        if first[root] == 0:
                            first[root] = v
                        elif first[root] != v:
                            multi[root] = True
                            break
    fill = np.zeros(n_holes, np.int64)
    for h in range(n_holes):
        root = _find(parent, hole_run[h])
        if not multi[root]:
            fill[h] = first[root]
    return hole_row, start[hole_run], stop[hole_run], fill


background_runs = _jit(_background_runs_impl)
gaps = _jit(_gaps_impl)
_holes = _jit(_holes_impl)


def hole_runs(labels, z_faces, background=None):
    """:func:`_holes_impl` of a (P, M, N) label image; ``background``: its background runs
    when known (:func:`gaps` of its foreground runs: no pass over the image), else read."""
    if background is None:
        background = background_runs(labels)
    return _holes(labels, z_faces, *background)


def _fill_runs_impl(labels, row, start, stop, fill):
    """``labels[z, y, start:stop] = fill`` for every run with a non-zero ``fill``."""
    ny = labels.shape[1]
    for h in range(row.size):
        if fill[h] != 0:
            line = labels[row[h] // ny, row[h] % ny]
            for x in range(start[h], stop[h]):
                line[x] = fill[h]
    return labels


fill_runs = _jit(_fill_runs_impl)


def _pack_store_impl(labels, store, offset, candidate, ids, boxes, hy, hx, oy, ox, value, owner):
    """:func:`pack_boxes` from the distances of the candidates kept in their own boxes
    (``store``, ``offset`` from :func:`object_edt`; every candidate kept)."""
    ny, nx = labels.shape
    for i in range(ids.size):
        k = ids[i]
        x0 = max(0, boxes[k, 2] - hx)
        x1 = min(nx, boxes[k, 3] + hx + 1)
        for y in range(max(0, boxes[k, 0] - hy), min(ny, boxes[k, 1] + hy + 1)):
            row = labels[y]
            ty = y + oy[k]
            for x in range(x0, x1):
                lab = row[x]
                if lab != 0 and candidate[lab]:
                    w = boxes[lab, 3] - boxes[lab, 2] + 1
                    p = offset[lab] + (y - boxes[lab, 0]) * w + x - boxes[lab, 2]
                    value[ty, x + ox[k]] = store[p]
                    if lab == k:
                        owner[ty, x + ox[k]] = k
    return value


pack_store = _jit(_pack_store_impl)


def _boxes_counts_impl(labels, n):
    """Bounding boxes (y0, y1, x0, x1, inclusive) and pixel counts of labels ``0..n-1`` of a
    2D image, in one pass (a label without pixels keeps ``y0 > y1``)."""
    ny, nx = labels.shape
    boxes = np.empty((n, 4), np.int64)
    boxes[:, 0] = ny
    boxes[:, 1] = -1
    boxes[:, 2] = nx
    boxes[:, 3] = -1
    counts = np.zeros(n, np.int64)
    for y in range(ny):
        row = labels[y]
        for x in range(nx):
            k = row[x]
            if k != 0:
                counts[k] += 1
                if y < boxes[k, 0]:
                    boxes[k, 0] = y
                boxes[k, 1] = y
                if x < boxes[k, 2]:
                    boxes[k, 2] = x
                if x > boxes[k, 3]:
                    boxes[k, 3] = x
    counts[0] = 0
    return boxes, counts


label_boxes_counts = _jit(_boxes_counts_impl)


#: Boxes up to this size (their shorter side) get the direct search along rows; larger ones
#: the lower envelope of parabolas (linear, but slower per pixel on small boxes).
EDT_DIRECT = 64


def _object_edt_impl(labels, boxes, counts, ids, keep):
    """Euclidean distance of each pixel of the objects ``ids`` of a 2D image to the nearest
    pixel outside its object (unit spacing; the image border is not background).

    Each object is transformed in its own bounding box: the pixel nearest to one of its
    pixels outside the object is always within one pixel of that box (clamping a farther
    one to the box grown by one brings it closer, and every pixel of that ring lies outside
    the object). For connected components (no two objects touch) the nearest pixel outside
    is background: the values equal those of the binary transform of the whole mask, bit for
    bit (squared distances are exact integers; one float32 square root, as ``edt``).
    Vertical distances down and up the columns, then along each row either a direct search
    (bounded by the best distance so far: a few steps per pixel in a small box) or the lower
    envelope of parabolas (Felzenszwalb and Huttenlocher 2012; linear in a large box).

    Scratch memory: 4 bytes per pixel of the largest box (vertical distances, then the
    distances of its rows), plus the store.

    Returns ``(peak, store, offset)``: the largest distance of each label (float32 values as
    float64; inf when nothing outside the object exists in the image), and the distances of
    the objects larger than ``keep`` times the disc of their peak (non-round ones, the
    split's candidates): object k's box, in raster order (0 outside the object), at
    ``store[offset[k]:]`` (``offset[k]`` -1 when not kept).
    """
    ny, nx = labels.shape
    n = counts.size
    big = np.int64(2**31 - 1)  # no pixel outside the object in the column
    inf = big * big
    area = 0
    width = 0
    for i in range(ids.size):
        k = ids[i]
        h = boxes[k, 1] - boxes[k, 0] + 1
        w = boxes[k, 3] - boxes[k, 2] + 1
        area = max(area, h * w)
        width = max(width, w)
    # Vertical distances (int32), replaced row by row by the float32 distances.
    g = np.empty(area, np.int32)
    gf = g.view(np.float32)
    run = np.empty(width, np.int64)
    line = np.empty(width, np.int64)
    v = np.empty(width + 2, np.int64)
    fv = np.empty(width + 2, np.int64)
    zn = np.empty(width + 2, np.int64)
    zd = np.empty(width + 2, np.int64)
    peak = np.zeros(n, np.float64)
    offset = np.full(n, -1, np.int64)
    store = np.empty(max(area, 1024), np.float32)
    used = 0
    for i in range(ids.size):
        k = ids[i]
        y0, y1, x0, x1 = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
        h = y1 - y0 + 1
        w = x1 - x0 + 1
        # Vertical distance to the nearest pixel outside k in the column (big: none), down
        # then up the columns, a row at a time.
        start = 1 if y0 > 0 else big
        for x in range(w):
            run[x] = start
        for y in range(h):
            row = labels[y0 + y]
            for x in range(w):
                if row[x0 + x] == k:
                    d = run[x] + 1 if run[x] < big else big
                    run[x] = d
                    g[y * w + x] = d - 1 if d < big else big
                else:
                    run[x] = 1
                    g[y * w + x] = 0
        start = 1 if y1 < ny - 1 else big
        for x in range(w):
            run[x] = start
        for y in range(h - 1, -1, -1):
            for x in range(w):
                gx = g[y * w + x]
                if gx == 0:
                    run[x] = 1
                elif run[x] < big:
                    d = run[x] + 1
                    run[x] = d
                    if d - 1 < gx:
                        g[y * w + x] = d - 1
        # The columns just outside the box, when in the image, are at vertical distance 0.
        left = x0 > 0
        right = x1 < nx - 1
        direct = min(h, w) <= EDT_DIRECT
        top = np.int64(0)
        for y in range(h):
            base = y * w
            row = labels[y0 + y]
            m = -1
            if not direct:
                # Lower envelope of the parabolas (x - c)^2 + g(c)^2 over the columns c of
                # finite g: parabola m is lowest from zn[m] / zd[m] (integer fractions).
                for c in range(-1, w + 1):
                    if c == -1:
                        if not left:
                            continue
                        f = np.int64(1)
                    elif c == w:
                        if not right:
                            continue
                        f = np.int64(w) * w
                    else:
                        gc = np.int64(g[base + c])
                        if gc >= big:
                            continue
                        f = gc * gc + c * c
                    while m > 0 and (f - fv[m]) * zd[m] <= zn[m] * (2 * (c - v[m])):
                        m -= 1
                    if m >= 0:
                        zn[m + 1] = f - fv[m]
                        zd[m + 1] = 2 * (c - v[m])
                    m += 1
                    v[m] = c
                    fv[m] = f
            j = 0
            for x in range(w):
                if row[x0 + x] != k:
                    line[x] = -1
                    continue
                if direct:
                    gx = np.int64(g[base + x])
                    best = gx * gx
                    dx = 1
                    while dx * dx < best:
                        xl = x - dx
                        xr = x + dx
                        if xl >= 0:
                            gl = np.int64(g[base + xl])
                            best = min(best, dx * dx + gl * gl)
                        elif xl == -1 and left:
                            best = min(best, dx * dx)
                        if xr < w:
                            gr = np.int64(g[base + xr])
                            best = min(best, dx * dx + gr * gr)
                        elif xr == w and right:
                            best = min(best, dx * dx)
                        elif xl < -1:
                            break
                        dx += 1
                elif m < 0:
                    best = inf
                else:
                    while j < m and zn[j + 1] < x * zd[j + 1]:
                        j += 1
                    best = fv[j] - 2 * x * v[j] + x * x  # (x - c)^2 + g(c)^2
                line[x] = best
                if best > top:
                    top = best
            for x in range(w):
                d2 = line[x]
                if d2 < 0:
                    gf[base + x] = -1.0
                elif d2 >= inf:
                    gf[base + x] = np.inf
                else:
                    gf[base + x] = np.sqrt(np.float32(d2))
        peak[k] = np.inf if top >= inf else np.float64(np.sqrt(np.float32(top)))
        if counts[k] > keep * np.pi * peak[k] ** 2:
            if used + h * w > store.size:
                grown = np.empty(max(2 * store.size, used + h * w), np.float32)
                grown[:used] = store[:used]
                store = grown
            offset[k] = used
            for p in range(h * w):
                store[used + p] = max(gf[p], np.float32(0))
            used += h * w
    return peak, store[:used], offset


object_edt = _jit(_object_edt_impl)


def _reflect_impl(i, n):
    """Index ``i`` mirrored into ``0..n - 1`` as scipy's mode "reflect" (d c b a | a b c d)."""
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - i - 1
    return i


_reflect = _jit(_reflect_impl)


def _quantile_impl(values, n, q):
    """``np.quantile(values[:n], q)`` (linear interpolation), sorting ``values[:n]``."""
    v = np.sort(values[:n])
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    return np.float64(v[lo]) + (np.float64(v[hi]) - np.float64(v[lo])) * (pos - lo)


_quantile = _jit(_quantile_impl)


def _edge_widths_impl(image, labels, ids, boxes, margin, kernel, out):
    """Edge width of each object ``ids[i]`` of a 2D label image, into ``out[i]``: see
    ``_split._edge_widths``. Each in its bounding box (``boxes``, inclusive) grown by
    ``margin``: the intensity smoothed by ``kernel`` along y then x (scipy's mode
    "reflect" at the box's edges), its gradient as ``np.gradient``, and exact Euclidean
    distances (squared, integers) to the nearest object pixel and to the nearest of k."""
    ny, nx = labels.shape
    r = kernel.size // 2
    for i in range(ids.size):
        k = ids[i]
        y0 = max(0, boxes[k, 0] - margin)
        y1 = min(ny, boxes[k, 1] + margin + 1)
        x0 = max(0, boxes[k, 2] - margin)
        x1 = min(nx, boxes[k, 3] + margin + 1)
        h = y1 - y0
        w = x1 - x0
        near_y0 = max(0, boxes[k, 0] - y0 - 6)
        near_y1 = boxes[k, 1] - y0 + 7
        near_x0 = max(0, boxes[k, 2] - x0 - 6)
        near_x1 = boxes[k, 3] - x0 + 7
        tmp = np.empty((h, w), np.float32)
        sm = np.empty((h, w), np.float32)
        for y in range(h):
            for x in range(w):
                acc = 0.0
                for j in range(-r, r + 1):
                    acc += kernel[j + r] * np.float32(image[y0 + _reflect(y + j, h), x0 + x])
                tmp[y, x] = acc
        for y in range(h):
            for x in range(w):
                acc = 0.0
                for j in range(-r, r + 1):
                    acc += kernel[j + r] * tmp[y, _reflect(x + j, w)]
                sm[y, x] = acc
        # Squared distance of every box pixel to the nearest object pixel (col_fg) and
        # pixel of k (col_k) in its column, from a sweep down and one up; the nearest over
        # x follows (separable: exact, 2x cheaper than scanning the offsets within 6 px).
        far = 1 << 20
        col_fg = np.empty((h, w), np.int64)
        col_k = np.empty((h, w), np.int64)
        for x in range(w):
            last_fg = -far
            last_k = -far
            for y in range(h):
                v = labels[y0 + y, x0 + x]
                if v != 0:
                    last_fg = y
                    if v == k:
                        last_k = y
                col_fg[y, x] = (y - last_fg) ** 2
                col_k[y, x] = (y - last_k) ** 2
            last_fg = far
            last_k = far
            for y in range(h - 1, -1, -1):
                v = labels[y0 + y, x0 + x]
                if v != 0:
                    last_fg = y
                    if v == k:
                        last_k = y
                col_fg[y, x] = min(col_fg[y, x], (last_fg - y) ** 2)
                col_k[y, x] = min(col_k[y, x], (last_k - y) ** 2)
        band = np.empty(h * w, np.float32)
        inner = np.empty(h * w, np.float32)
        ring = np.empty(h * w, np.float32)
        nb = ni = nr = 0
        low = np.inf
        half = np.float32(2.0)
        for y in range(h):
            for x in range(w):
                lab = labels[y0 + y, x0 + x]
                if h < 2:
                    gy = np.float32(0.0)
                elif y == 0:
                    gy = sm[1, x] - sm[0, x]
                elif y == h - 1:
                    gy = sm[h - 1, x] - sm[h - 2, x]
                else:
                    gy = (sm[y + 1, x] - sm[y - 1, x]) / half
                if w < 2:
                    gx = np.float32(0.0)
                elif x == 0:
                    gx = sm[y, 1] - sm[y, 0]
                elif x == w - 1:
                    gx = sm[y, w - 1] - sm[y, w - 2]
                else:
                    gx = (sm[y, x + 1] - sm[y, x - 1]) / half
                grad = np.float32(np.sqrt(np.float32(gy * gy + gx * gx)))
                if lab == k:
                    inner[ni] = sm[y, x]
                    ni += 1
                    edge = False  # a pixel of another label or of background within 2 px
                    for dy in range(-2, 3):
                        for dx in range(-2, 3):
                            if dy * dy + dx * dx <= 4 and 0 <= y + dy < h and 0 <= x + dx < w:
                                if labels[y0 + y + dy, x0 + x + dx] != k:
                                    edge = True
                    if edge:
                        band[nb] = grad
                        nb += 1
                elif lab == 0:
                    low = min(low, np.float64(sm[y, x]))
                    if not (near_y0 <= y < near_y1 and near_x0 <= x < near_x1):
                        continue  # over 6 px from every pixel of k
                    # Exact squared distances to the nearest object pixel and to the
                    # nearest pixel of k: the column distances, then the nearest over x.
                    d_fg = far
                    d_k = far
                    for dx in range(max(-6, -x), min(6, w - 1 - x) + 1):
                        d_fg = min(d_fg, dx * dx + col_fg[y, x + dx])
                        d_k = min(d_k, dx * dx + col_k[y, x + dx])
                    if d_k <= d_fg:
                        if d_fg <= 9:
                            band[nb] = grad
                            nb += 1
                        elif d_fg <= 36:
                            ring[nr] = sm[y, x]
                            nr += 1
        if nb == 0 or ni == 0:
            out[i] = 0.0
            continue
        steep = _quantile(band, nb, 0.9)
        top = _quantile(inner, ni, 0.95)
        if nr:
            low = _quantile(ring, nr, 0.1)
        elif low == np.inf:
            low = np.float64(sm.min())
        out[i] = (top - low) / steep if steep > 0 else 0.0
    return out


edge_widths = _jit(_edge_widths_impl)
