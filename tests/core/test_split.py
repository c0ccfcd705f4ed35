"""Touching-nuclei split: scale-aware, never worse than connected components on separate
nuclei, anisotropic in 3D."""

import numpy as np
import pytest
from skimage.measure import label as sk_label

from napari_binseg import count_cells, evaluate, split_touching, threshold
from napari_binseg.synthetic import synthetic_nuclei


def ellipsoid(shape, center, radii, spacing):
    grid = np.indices(shape, dtype=float)
    return (
        sum(
            ((g * s - c) / r) ** 2 for g, c, r, s in zip(grid, center, radii, spacing, strict=True)
        )
        <= 1
    )


@pytest.mark.parametrize("radius", [30.0, 60.0])
def test_separate_large_textured_nuclei_not_split_more_than_components(radius):
    # Large nuclei with chromatin texture and noise, none touching (centres >= 3 radii apart).
    image, truth = synthetic_nuclei(
        (int(10 * radius), int(10 * radius)), radius=radius, min_distance=3.0, seed=1
    )
    mask = threshold(image)
    n_components = int(sk_label(mask, connectivity=2).max())
    labels, table = count_cells(mask, image=image)
    assert len(table) <= n_components
    assert len(table) == int(truth.max())
    assert evaluate(truth, labels, thresholds=[0.5])["f1"].iloc[0] >= 0.95


@pytest.mark.parametrize("radius, size, seed", [(25.0, 400, 4), (40.0, 800, 0)])
def test_blurred_large_nuclei_counted(radius, size, seed):
    # Out of focus: blur sigma 8 px on nuclei of radius 25 and 40 px, some touching (the
    # count before the scale-aware split: 9x too many at radius 40).
    image, truth = synthetic_nuclei((size, size), radius=radius, blur=8.0, seed=seed)
    _, table = count_cells(threshold(image), image=image)
    assert abs(len(table) - int(truth.max())) <= 0.1 * int(truth.max())


def test_blurred_small_nuclei_split_by_intensity(monkeypatch):
    """Blur sigma 6 px on nuclei of radius 15 px: the blurred masks of touching nuclei merge
    into blobs without necks; the Laplacian of Gaussian of the image separates them. Before
    (the same count with the out-of-focus split off): 22 of 25."""
    from napari_binseg import _split

    image, truth = synthetic_nuclei((300, 300), radius=15.0, blur=6.0, seed=0)
    mask = threshold(image)
    n = int(truth.max())
    labels, table = count_cells(mask, image=image)
    assert n == 25 and abs(len(table) - n) <= 1
    monkeypatch.setattr(_split, "BLUR_EDGE", np.inf)
    assert len(count_cells(mask, image=image)[1]) <= n - 3


def test_blurred_radius_8_nuclei_less_under_split(monkeypatch):
    """Blur sigma 8 px on nuclei of radius 8 px (the worst case of ``eval_split.py
    --blur``): 13 of 25 found (14 with the gate in pixels, before ``BLUR_DIAMETER``), 10
    without the out-of-focus split; most merged nuclei stay unresolved."""
    from napari_binseg import _split

    image, truth = synthetic_nuclei((160, 160), radius=8.0, blur=8.0, seed=2)
    mask = threshold(image)
    assert int(truth.max()) == 25
    assert len(count_cells(mask, image=image)[1]) >= 13
    monkeypatch.setattr(_split, "BLUR_EDGE", np.inf)
    assert len(count_cells(mask, image=image)[1]) <= 10


def test_blurred_clumps_counted_alike_at_three_magnifications(monkeypatch):
    """Blur sigma 6 px on nuclei of radius 15 px, and the same image at 2x and 3x (nuclei,
    image and blur scaled alike): 25 of 25 at each (hand-checked). With the gate in pixels
    (before ``BLUR_DIAMETER``) 25, 23, 22; without the out-of-focus split 22, 23, 22."""
    from napari_binseg import _split

    images = [
        synthetic_nuclei((300 * z, 300 * z), radius=15.0 * z, blur=6.0 * z, seed=0)
        for z in (1, 2, 3)
    ]
    masks = [threshold(image) for image, _ in images]
    assert [int(truth.max()) for _, truth in images] == [25, 25, 25]
    counts = [len(count_cells(m, image=im)[1]) for m, (im, _) in zip(masks, images, strict=True)]
    assert max(counts) - min(counts) <= 1 and all(abs(c - 25) <= 1 for c in counts)
    monkeypatch.setattr(_split, "BLUR_EDGE", np.inf)
    off = [len(count_cells(m, image=im)[1]) for m, (im, _) in zip(masks, images, strict=True)]
    assert max(off) <= 23


@pytest.mark.parametrize("name", ["nuclei_003cee89357d9fe1", "nuclei_175dbb364bfefc95"])
@pytest.mark.parametrize("zoom", [1, 3])
def test_sharp_images_unchanged_by_out_of_focus_split(name, zoom):
    """Sharp images (the packaged DSB samples, also at 3x: nuclei 30-120 px, a sharp
    synthetic one) get the labels of the count without the intensity image: the edge-width
    gate leaves them alone at any magnification."""
    from pathlib import Path

    import tifffile
    from scipy import ndimage as ndi

    import napari_binseg

    data = Path(napari_binseg.__file__).parent / "data"
    image = ndi.zoom(tifffile.imread(data / f"{name}.tif"), zoom, order=1)
    synthetic, _ = synthetic_nuclei((256 * zoom, 256 * zoom), radius=8.0 * zoom, seed=0)
    for img in (image, synthetic):
        mask = threshold(img)
        np.testing.assert_array_equal(count_cells(mask, image=img)[0], count_cells(mask)[0])


def _edge_width_reference(image, labels, k, box):
    """``_split._edge_widths`` of one object with scipy: Gaussian filter, np.gradient,
    Euclidean distance transforms with nearest-pixel indices, np.quantile."""
    from scipy import ndimage as ndi

    y0, x0 = max(0, box[0] - 10), max(0, box[2] - 10)
    sub = labels[y0 : box[1] + 11, x0 : box[3] + 11]
    obj, fg = sub == k, sub != 0
    smooth = ndi.gaussian_filter(image[y0 : box[1] + 11, x0 : box[3] + 11].astype(np.float32), 1)
    grad = np.hypot(*np.gradient(smooth))
    inside = ndi.distance_transform_edt(obj)
    outside = ndi.distance_transform_edt(~fg)
    own = ~fg & (ndi.distance_transform_edt(~obj) <= outside)
    band = obj & (inside <= 2) | own & (outside <= 3)
    ring = own & (outside > 3) & (outside <= 6)
    top, low = np.quantile(smooth[obj], 0.95), np.quantile(smooth[ring], 0.1)
    return (top - low) / np.quantile(grad[band], 0.9)


@pytest.mark.parametrize("blur", [1.0, 8.0])
def test_edge_widths_equal_scipy_reference(blur):
    from scipy import ndimage as ndi

    from napari_binseg._flood import label_boxes
    from napari_binseg._split import _edge_widths

    image, _ = synthetic_nuclei((200, 200), radius=12.0, blur=blur, seed=3)
    labels = ndi.label(threshold(image), np.ones((3, 3)))[0].astype(np.int32)
    ids = np.flatnonzero(np.bincount(labels.ravel()) >= 50)[1:]
    boxes = np.empty((int(labels.max()) + 1, 4), np.int64)
    boxes[:, 0::2], boxes[:, 1::2] = np.iinfo(np.int64).max, -1
    label_boxes(labels, np.ones(boxes.shape[0], bool), boxes)
    got = _edge_widths(image, labels, ids, boxes)
    expected = [_edge_width_reference(image, labels, k, boxes[k]) for k in ids]
    assert ids.size >= 5
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # A blurred step edge is about 2.5 sigma wide, plus 4 px on a sharp image.
    assert 3 < np.median(got) < 7 if blur == 1 else np.median(got) > 11


def test_two_nuclei_touching_only_in_z():
    spacing = (2.0, 0.5, 0.5)
    shape = (16, 48, 48)
    # Same x, y; one above the other; they share a contact face in z.
    a = ellipsoid(shape, (8.0, 12.0, 12.0), (6.0, 9.0, 9.0), spacing)
    b = ellipsoid(shape, (19.0, 12.0, 12.0), (6.0, 9.0, 9.0), spacing)
    mask = a | b
    assert sk_label(mask).max() == 1
    labels, table = count_cells(mask, spacing=spacing)
    assert len(table) == 2
    # The cut is horizontal: each object lies (95 %) on its own side of the contact plane,
    # at z = 13.5 µm (between planes 6 and 7).
    lower = labels[:7]
    for k in (1, 2):
        below = np.count_nonzero(lower == k) / np.count_nonzero(labels == k)
        assert below >= 0.95 or below <= 0.05
    assert labels[2, 24, 24] != labels[12, 24, 24]
    # Physical units in the table: volumes of two ellipsoids of 4/3 pi 6 9 9 µm³.
    expected = 4 / 3 * np.pi * 6 * 9 * 9
    assert table["volume"].to_numpy() == pytest.approx([expected, expected], rel=0.15)
    assert table.attrs["diameter"] > 0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
def test_nucleus_spanning_ten_planes_is_one_object(spacing):
    shape = (14, 60, 60)
    dz = spacing[0]
    # Ten planes deep, with a textured (holey) interior from the threshold.
    mask = ellipsoid(shape, (7 * dz, 15.0, 15.0), (5 * dz, 10.0, 12.0), spacing)
    assert np.any(mask, axis=(1, 2)).sum() >= 9
    rng = np.random.default_rng(0)
    holes = rng.random(shape) < 0.03
    labels, table = count_cells(mask & ~holes, spacing=spacing)
    assert len(table) == 1


def test_split_touching_takes_a_diameter():
    yy, xx = np.mgrid[:40, :60]
    two = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    assert split_touching(two.astype(np.int32)).max() == 2
    # A typical diameter of 80 px: pieces of radius 10 are too small to be nuclei.
    assert split_touching(two.astype(np.int32), diameter=80).max() == 1


def test_intensity_split_with_nan_pixels():
    yy, xx = np.mgrid[:40, :60]
    two = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    image = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    image[20, 20:30] = np.nan  # NaN must never reach the flood's bucket index
    _, table = count_cells(two, image=image, split_touching="intensity")
    assert len(table) == 2


@pytest.mark.parametrize("shape", [(300, 220), (3, 1), (40, 40)])
def test_object_distances_equal_whole_image_transform(shape):
    """Each object transformed in its own box gives the whole image's distances bit for
    bit (objects on the image border, a clump larger than the direct search's boxes), the
    same per-object peaks and counts, and keeps exactly the non-round objects."""
    import edt
    from scipy import ndimage as ndi
    from skimage.measure import label as sk_label

    from napari_binseg import _split

    rng = np.random.default_rng(3)
    if shape == (300, 220):
        image, _ = synthetic_nuclei(shape, radius=14, seed=3)
        mask = threshold(image) != 0
        mask[150:290, 20:200] = True  # a 140 x 180 clump: the lower envelope path
    elif shape == (3, 1):
        mask = np.array([[0], [0], [1]], bool)
    else:
        mask = ndi.gaussian_filter(rng.random(shape), 2) > 0.5
    labels = sk_label(mask, connectivity=2).astype(np.uint16)
    (peak, count), kept = _split._object_distances(labels, keep=True)
    whole = edt.edt(mask.view(np.uint8), black_border=False, parallel=1)
    n = int(labels.max()) + 1
    expected = np.zeros(n)
    np.maximum.at(expected, labels.ravel(), whole.ravel())
    expected[0] = 0
    np.testing.assert_array_equal(peak, expected)
    np.testing.assert_array_equal(count[1:], np.bincount(labels.ravel(), minlength=n)[1:])
    non_round = count > _split.ROUND * np.pi * peak**2
    assert non_round.any() or shape == (3, 1)
    for k in range(1, n):
        y0, y1, x0, x1 = kept.boxes[k]
        if not non_round[k]:
            continue
        assert kept.offset[k] >= 0
        box = kept.store[kept.offset[k] :][: (y1 - y0 + 1) * (x1 - x0 + 1)]
        box = box.reshape(y1 - y0 + 1, x1 - x0 + 1)
        inside = labels[y0 : y1 + 1, x0 : x1 + 1] == k
        np.testing.assert_array_equal(box[inside], whole[y0 : y1 + 1, x0 : x1 + 1][inside])
        assert not box[~inside].any()


def test_atlas_in_parts_equals_one_pass(monkeypatch):
    """Smoothing and flooding the clumps' atlas shelf by shelf gives the labels and table
    of one pass."""
    from napari_binseg import _split

    image = synthetic_nuclei((384, 320), radius=9, seed=5)
    image = image[0] if isinstance(image, tuple) else image
    mask = threshold(image)
    labels, table = count_cells(mask, image)
    monkeypatch.setattr(_split, "ATLAS_PART", 1)
    parts, parts_table = count_cells(mask, image)
    np.testing.assert_array_equal(parts, labels)
    assert parts_table.equals(table) and parts_table.attrs == table.attrs


@pytest.mark.parametrize("dtype", [np.int32, np.uint16])
def test_upsample_per_box_equals_whole_image(dtype):
    """The 2D upsampling of a coarse split, object by object in their boxes, gives the
    labels of the whole-image kernel (seeds under their own piece, breadth-first growth)."""
    from skimage.measure import label as sk_label

    from napari_binseg._flood import label_boxes, upsample_pieces, upsample_pieces_2d

    image, _ = synthetic_nuclei((240, 200), radius=16, seed=7)
    labels = sk_label(threshold(image) != 0, connectivity=2).astype(dtype)
    f = 3
    coarse = labels[::f, ::f].astype(np.int32)
    # Pieces: each coarse object cut in two by a vertical line through its middle column.
    pieces = np.zeros_like(coarse)
    owner = [0]
    for k in range(1, int(coarse.max()) + 1):
        ys, xs = np.nonzero(coarse == k)
        if xs.size == 0:
            continue
        mid = np.median(xs)
        for side in (xs < mid, xs >= mid):
            if side.any():
                owner.append(k)
                pieces[ys[side], xs[side]] = len(owner) - 1
    owner = np.asarray(owner, np.int32)
    cut = np.bincount(owner[1:], minlength=int(labels.max()) + 1) > 1
    cut[0] = False
    n = int(labels.max())
    expected = np.empty(labels.shape, np.int32)
    upsample_pieces(labels[None].astype(np.int32), pieces[None], owner, cut, f, n, expected[None])
    boxes = np.empty((cut.size, 4), np.int64)
    boxes[:, 0::2] = np.iinfo(np.int64).max
    boxes[:, 1::2] = -1
    label_boxes(labels, cut, boxes)
    got = labels.copy()
    upsample_pieces_2d(got, pieces, owner, boxes, np.flatnonzero(cut), f, n, got)
    assert cut.sum() >= 5
    assert np.count_nonzero(got > n) > 0.3 * np.count_nonzero(labels)  # pieces written
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("conn", [1, 3])
def test_flood_saddles_are_the_highest_per_pair_of_basins(conn):
    # Every pair of adjacent basins once (a < b, sorted) with the highest min(value) over its
    # touching pixel pairs: a brute-force reference over all neighbour pairs of a 3D flood.
    from scipy import ndimage as ndi

    from napari_binseg._flood import _offsets, flood_padded

    rng = np.random.default_rng(0)
    value = np.zeros((12, 22, 26), np.float32)
    value[1:-1, 1:-1, 1:-1] = ndi.gaussian_filter(rng.random((10, 20, 24)), 1.5) + 0.1
    owner = np.zeros(value.shape, np.int32)
    owner[1:-1, 1:-1, 1:13], owner[1:-1, 1:-1, 13:-1] = 1, 2
    seg, pixels, owners, peak, a, b, s = flood_padded(value, owner.copy(), conn)
    basin = np.zeros(value.size, np.int64)
    basin[pixels] = seg
    flat, own = value.ravel(), owner.ravel()
    best = {}
    for off in _offsets(value.shape, conn):
        for p in pixels:
            q = p + off
            if own[q] == own[p] and basin[q] not in (0, basin[p]):
                key = (min(basin[p], basin[q]), max(basin[p], basin[q]))
                best[key] = max(best.get(key, -np.inf), float(min(flat[p], flat[q])))
    assert len(best) > 5 and peak.size - 1 == seg.max()
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == sorted(best)
    assert s.tolist() == [best[k] for k in sorted(best)]


def test_stack_of_touching_pairs_counted_exactly():
    # Five pairs of touching ellipsoids and two single ones, anisotropic: 12 nuclei, each
    # piece inside its own ellipsoid; the valley split with an image counts the same.
    spacing = (2.0, 1.0, 1.0)
    shape = (14, 60, 200)
    truth = np.zeros(shape, np.int32)
    k = 0
    for i in range(5):
        for dx in (0.0, 15.0):
            k += 1
            truth[ellipsoid(shape, (13.0, 30.0, 20.0 + 36 * i + dx), (8.0, 9.0, 8.5), spacing)] = k
    for x in (60.0, 150.0):
        k += 1
        truth[ellipsoid(shape, (13.0, 52.0, x), (7.0, 6.0, 6.0), spacing)] = k
    mask = truth > 0
    assert sk_label(mask).max() == 7
    image = (mask * 1000 + 100).astype(np.uint16)
    for split in (True, "intensity"):
        labels, table = count_cells(mask, image, spacing=spacing, split_touching=split)
        assert len(table) == 12
        for piece in range(1, 13):
            inside = np.bincount(truth[labels == piece], minlength=k + 1)
            assert inside.max() >= 0.9 * inside.sum()


def _sample_edge_widths(z, blur, zoom):
    from scipy import ndimage as ndi

    from napari_binseg._flood import label_boxes
    from napari_binseg._split import _edge_widths

    image, _ = synthetic_nuclei((200 * z, 200 * z), radius=12.0 * z, blur=blur * z, seed=3)
    labels = ndi.label(threshold(image), np.ones((3, 3)))[0].astype(np.int32)
    ids = np.flatnonzero(np.bincount(labels.ravel()) >= 50 * z * z)[1:]
    boxes = np.empty((int(labels.max()) + 1, 4), np.int64)
    boxes[:, 0::2], boxes[:, 1::2] = np.iinfo(np.int64).max, -1
    label_boxes(labels, np.ones(boxes.shape[0], bool), boxes)
    return _edge_widths(image, labels, ids, boxes, zoom)


@pytest.mark.parametrize("blur", [1.0, 8.0])
@pytest.mark.parametrize("z", [2, 3])
def test_edge_widths_on_a_grid_follow_the_magnification(blur, z):
    """The same nuclei at z times the magnification, measured on a grid of pixel z: the
    widths of 1x, times z (medians within 6%; measured 1-5%). Measured in full-resolution
    pixels, a nearly sharp edge is not z times wider (its 4-px floor): 24-33% short."""
    base = np.median(_sample_edge_widths(1, blur, 1.0))
    grid = _sample_edge_widths(z, blur, float(z))
    full = _sample_edge_widths(z, blur, 1.0)
    np.testing.assert_allclose(np.median(grid) / z, base, rtol=0.06)
    if blur == 1.0:
        assert np.median(full) / z < 0.8 * base


def test_non_finite_pixels_keep_the_out_of_focus_split():
    """A few NaN or infinite pixels in a float image (0.2% of the nuclei) leave the count of
    a blurred image as it was: a NaN edge width made the frame pass for sharp (25 -> 22)."""
    image, truth = synthetic_nuclei((300, 300), radius=15.0, blur=6.0, seed=0)
    mask = threshold(image)
    clean = count_cells(mask, image=image)[0]
    holed = image.astype(np.float32)
    ys, xs = np.nonzero(mask)
    pick = np.random.default_rng(1).choice(ys.size, ys.size // 500, replace=False)
    holed[ys[pick], xs[pick]] = np.nan
    holed[ys[pick[:3]], xs[pick[:3]]] = np.inf
    before = holed.copy()
    labels, table = count_cells(mask, image=holed)
    assert int(truth.max()) == 25 and labels.max() == clean.max() >= 24
    np.testing.assert_array_equal(labels, clean)
    np.testing.assert_array_equal(holed, before)  # the caller's image is not written


@pytest.mark.parametrize("zoom", [1.0, 2.5])
def test_sharp_frame_early_stop_decides_as_the_sample_median(monkeypatch, zoom):
    """``_blurred_objects`` measures the smallest half-plus-one of its sample first and stops
    when all are below ``BLUR_FRAME``: the frame is called sharp exactly when the median of
    the whole sample is below it (widths drawn around the threshold, 1-12 clumps, boxes of
    random sizes so the smallest are not the first ids), measuring the sample only;
    otherwise every clump is measured and gated."""
    from napari_binseg import _split

    rng = np.random.default_rng(0)
    frame, edge = _split.BLUR_FRAME * zoom, _split.BLUR_EDGE * zoom
    for _ in range(200):
        n = int(rng.integers(1, 13))
        labels = np.zeros((40, 40 * n), np.int32)
        for k in range(1, n + 1):
            h, w = rng.integers(3, 30, 2)
            labels[2 : 2 + h, 40 * (k - 1) + 2 : 40 * (k - 1) + 2 + w] = k
        width = rng.choice([0.5, 0.99, 1.0, 1.01, 1.3], n + 1) * frame
        measured = []

        def fake(image, labels, ids, boxes, zoom, width=width, measured=measured):
            measured.extend(ids.tolist())
            return width[ids]

        monkeypatch.setattr(_split, "_edge_widths", fake)
        count = np.bincount(labels.ravel(), minlength=n + 1)
        peak = np.ones(n + 1)  # every box is far from round: all are candidates
        out = _split._blurred_objects(labels, labels, peak, count, np.ones(2), 1, zoom=zoom)
        n_sample = _split.BLUR_SAMPLE if zoom <= 1.0 else _split.BLUR_SAMPLE_GRID
        ids = np.arange(1, n + 1)
        sample = ids[np.unique(np.linspace(0, n - 1, n_sample).astype(np.int64))]
        smallest = sample[np.argsort(count[sample], kind="stable")][: sample.size // 2 + 1]
        if np.all(width[smallest] < frame):
            assert out == {} and sorted(measured) == sorted(smallest.tolist())
        elif np.median(width[sample]) < frame:
            assert out == {} and sorted(measured) == sample.tolist()
        else:
            assert sorted(out) == ids[width[ids] >= edge].tolist()
            assert sorted(measured) == ids.tolist()
