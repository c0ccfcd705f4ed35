"""sigma="auto": the noise ratio, the sigma it picks, and what a threshold does with it."""

import dask.array as da
import numpy as np
import pytest
import skimage.filters as skf
from scipy import ndimage as ndi

import napari_binseg as nb
from napari_binseg import _threshold_noise as noise
from napari_binseg._threshold_noise import noise_ratio, resolve_sigma, sigma_for_ratio
from napari_binseg.thresholding import apply_threshold, threshold, threshold_value

LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float)


def reference_ratio(image):
    """The definition, spelled out with scipy and scikit-image (Otsu of the data's dtype,
    intensities over the 99.9th percentile counted as it)."""
    x = image.astype(np.float64)
    sigma_n = 1.4826 * np.median(np.abs(ndi.convolve(x, LAPLACE, mode="reflect")[1:-1, 1:-1])) / 6
    top = np.percentile(image, noise.NOISE_CLIP, method="lower").astype(image.dtype)
    t = skf.threshold_otsu(np.minimum(image, top))
    return sigma_n / (t - x[x <= t].mean())


def noisy_nuclei(shape=(512, 512), n=20, sd=0.25, seed=5):
    """Few nuclei on a large background, additive Gaussian noise of ``sd`` x their contrast
    (a low-light camera image), and the true labels."""
    image, labels = nb.synthetic_nuclei(shape, n=n, radius=8, noise=0, dtype=np.float32, seed=seed)
    contrast = np.median(image[labels > 0]) - np.median(image[labels == 0])
    rng = np.random.default_rng(seed)
    return image + rng.normal(0, sd * contrast, shape).astype(np.float32), labels


@pytest.mark.parametrize(
    ("ratio", "sigma"),
    [
        (0.0, 0.0),
        (0.25, 0.0),  # the gate itself: not smoothed
        (0.2501, 1.0),
        (0.7089, 1.0),  # 0.7089 / (2 sqrt(pi)) = 0.19998
        (0.709, 2.0),
        (1.4179, 2.0),
        (1.418, 4.0),
        (10.0, 4.0),  # the largest, even above its target
        (float("nan"), 0.0),
    ],
)
def test_sigma_for_ratio_table(ratio, sigma):
    assert sigma_for_ratio(ratio) == sigma


def test_ratio_equals_its_definition(sample_image):
    rng = np.random.default_rng(0)
    halves = np.zeros((128, 128), np.float32)
    halves[:, 64:] = 1
    halves += rng.normal(0, 0.2, halves.shape).astype(np.float32)
    for image in (sample_image[:256, :256], halves):  # within SAMPLE_PIXELS: every pixel
        # rel 1e-3: the clip percentile of a float image is taken on its histogram.
        assert noise_ratio(image) == pytest.approx(reference_ratio(image), rel=1e-3)
    # A larger image is measured on a sample of its pixels (1/6 of them here).
    assert noise_ratio(sample_image) == pytest.approx(reference_ratio(sample_image), rel=0.05)
    # Dark objects: the background is the bright class; both ends are clipped.
    inverted = 1 - halves
    bottom, top = np.percentile(
        inverted, [100 - noise.NOISE_CLIP, noise.NOISE_CLIP], method="lower"
    )
    t = skf.threshold_otsu(np.clip(inverted, bottom, top))
    x = inverted.astype(np.float64)
    sigma_n = 1.4826 * np.median(np.abs(ndi.convolve(x, LAPLACE, mode="reflect")[1:-1, 1:-1])) / 6
    expected = sigma_n / (inverted[inverted > t].mean() - t)
    assert noise_ratio(inverted, invert=True) == pytest.approx(expected, rel=5e-3)  # binned Otsu


def test_specks_beyond_dark_objects_are_clipped():
    """Dark objects: specks darker than the nuclei are clipped as hot pixels are beyond bright
    ones (30 of them, 0.01% of the pixels, measured a noisy image's ~1.15 as 0.001: left
    unsmoothed); saturated specks (bright) stay clipped too."""
    image, _ = noisy_nuclei()
    dark = image.max() - image
    clean = noise_ratio(dark, invert=True)
    where = np.random.default_rng(0).integers(0, dark.size, 30)
    ratios = []
    for value in (-100 * dark.max(), 100 * dark.max()):
        specks = dark.copy()
        specks.ravel()[where] = value
        ratios.append(noise_ratio(specks, invert=True))
    assert clean > 1 and ratios[0] == pytest.approx(clean, rel=0.01)
    assert [sigma_for_ratio(r) for r in [clean, *ratios]] == [2.0] * 3


def test_ratio_is_zero_without_noise_or_contrast():
    blocks = np.zeros((64, 64), np.uint8)
    blocks[16:48, 16:48] = 200
    assert noise_ratio(blocks) == 0.0  # a noiseless image: the Laplacian's median is 0
    assert noise_ratio(np.full((3, 8, 8), np.nan)) == 0.0
    assert resolve_sigma(blocks, "auto") == (0.0, 0.0)
    assert resolve_sigma(blocks, 2.5) == (2.5, None)
    # Two levels but no flat area (single-pixel dots, a 0/255 mask of thin lines): no noise
    # either, not a ratio of 500 smoothed at 4 px into one blob.
    dots = np.zeros((512, 512), np.uint16)
    dots[::2, ::2] = 1000
    assert noise_ratio(dots) == 0.0
    np.testing.assert_array_equal(threshold(dots), dots > 0)


def test_stack_sample_is_eight_evenly_spaced_planes():
    stack = np.broadcast_to(np.arange(20.0)[:, None, None], (20, 16, 16))
    values, tiles, cuts = noise._sample(stack)
    assert [t[0, 0] for t in tiles] == [0, 3, 5, 8, 11, 14, 16, 19] and cuts is None
    assert values.size == 8 * 16 * 16  # small planes: whole
    series = np.broadcast_to(np.arange(6.0).reshape(2, 3, 1, 1), (2, 3, 16, 16))
    assert [t[0, 0] for t in noise._sample(series)[1]] == [0, 1, 2, 3, 4, 5]


def test_large_plane_sample_spans_the_plane_within_the_budget():
    """A 2048 x 2048 plane: every 8th pixel for the contrast (a nucleus in a corner counts)
    and 64-px squares centred in the cells of a 4 x 4 grid for the noise."""
    plane = np.arange(2048 * 2048, dtype=np.float64).reshape(2048, 2048)
    values, (tile,), cuts = noise._sample(plane)
    np.testing.assert_array_equal(values, plane[::8, ::8].ravel())
    assert tile.shape == (256, 256) and [list(c) for c in cuts] == [[64, 128, 192]] * 2
    starts = [int(tile[i, 0]) // 2048 for i in (0, 64, 128, 192)]
    assert starts == [224, 736, 1248, 1760]  # cell centres 256, 768, ... minus 32
    assert [int(tile[0, j]) % 2048 for j in (0, 64, 128, 192)] == starts
    assert values.size == 16 * 64 * 64 == noise.SAMPLE_PIXELS
    # A stack of 8 such planes: the same budget, two squares a plane (a 2 x 2 grid of cells).
    values, tiles, cuts = noise._sample(np.broadcast_to(plane, (8, 2048, 2048)))
    assert values.size <= noise.SAMPLE_PIXELS and len(tiles) == 8
    assert tiles[0].shape == (128, 128) and [list(c) for c in cuts] == [[64]] * 2


def test_laplace_of_the_tiles_is_that_of_their_squares():
    """The squares' Laplacian values, computed on their tile with the positions across a cut
    dropped: squares of 5, 2 (too thin: none) and 4 rows, 3 and 6 columns."""
    tile = np.random.default_rng(0).normal(size=(11, 9)).astype(np.float32)
    cuts = (np.array([5, 7]), np.array([3]))
    squares = [
        square for band in np.split(tile, cuts[0]) for square in np.split(band, cuts[1], axis=1)
    ]
    expected = np.concatenate([noise._laplace(s).ravel() for s in squares if min(s.shape) >= 3])
    got = noise._noise_laplace([tile], cuts, np.float32)
    assert got.size == expected.size == 3 * 1 + 3 * 4 + 2 * 1 + 2 * 4
    np.testing.assert_array_equal(np.sort(got), np.sort(expected))


def test_small_planes_are_measured_whole():
    """Two 256 x 256 planes (under WHOLE_PIXELS) are measured whole: the stack of the same
    plane twice has that plane's ratio, not that of a few squares of it."""
    image, _ = nb.synthetic_nuclei((256, 256), n=12, radius=9, noise=0.08, seed=3)
    values, tiles, cuts = noise._sample(np.stack([image, image]))
    assert values.size == 2 * 256 * 256 and [t.shape for t in tiles] == [(256, 256)] * 2
    assert cuts is None
    assert noise_ratio(np.stack([image, image])) == pytest.approx(noise_ratio(image), rel=1e-6)


def test_noisy_image_counts_right_by_default_and_explodes_unsmoothed():
    image, labels = noisy_nuclei()
    n_true = int(labels.max())
    mask, info = threshold(image, return_info=True)
    assert info["sigma"] == 2.0 and info["noise_ratio"] > 0.709
    n_auto = len(nb.count_cells(mask, image=image)[1])
    n_raw = len(nb.count_cells(threshold(image, sigma=0), image=image)[1])
    assert abs(n_auto - n_true) <= 0.05 * n_true
    assert n_raw > 10 * n_true


def test_clean_image_mask_is_the_unsmoothed_one(sample_image):
    image, _ = nb.synthetic_nuclei((256, 256), n=12, radius=9, noise=0.05, seed=3)
    for clean in (sample_image, image):
        mask, t, info = threshold(clean, return_thresholds=True, return_info=True)
        assert info["sigma"] == 0.0 and info["noise_ratio"] < 0.25
        np.testing.assert_array_equal(mask, threshold(clean, sigma=0))
        assert t == threshold_value(clean, sigma=0)


@pytest.mark.parametrize(("ratio", "sigma"), [(0.2, 0.0), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0)])
def test_threshold_smooths_with_the_sigma_of_the_ratio(monkeypatch, ratio, sigma):
    image, _ = noisy_nuclei((128, 128), n=4)
    monkeypatch.setattr(noise, "noise_ratio", lambda image, invert=False: ratio)
    mask, info = threshold(image, return_info=True)
    assert (info["sigma"], info["noise_ratio"]) == (sigma, ratio)
    np.testing.assert_array_equal(mask, threshold(image, sigma=sigma))
    t, info = threshold_value(image, "li", return_info=True)
    assert info["sigma"] == sigma and t == threshold_value(image, "li", sigma=sigma)
    np.testing.assert_array_equal(
        apply_threshold(image, 0.5), apply_threshold(image, 0.5, sigma=sigma)
    )


def test_a_number_runs_as_given():
    image, _ = noisy_nuclei((128, 128), n=4)
    _, info = threshold(image, sigma=1.5, return_info=True)
    assert (info["sigma"], info["noise_ratio"]) == (1.5, None)
    _, info = threshold_value(image, sigma=0, return_info=True)
    assert (info["sigma"], info["noise_ratio"]) == (0, None)


def test_dask_equals_numpy_with_one_sigma_for_the_stack():
    stack = np.stack([noisy_nuclei((128, 128), n=4, seed=s)[0] for s in range(3)])
    mask, t, info = threshold(stack, return_thresholds=True, return_info=True)
    assert info["sigma"] > 0
    lazy, t_lazy, info_lazy = threshold(
        da.from_array(stack, chunks=(1, 64, 64)), return_thresholds=True, return_info=True
    )
    assert info_lazy == info
    np.testing.assert_array_equal(lazy.compute(), mask)
    np.testing.assert_array_equal(t_lazy, t)
    # One sigma for all planes (one threshold): the stack's, not each plane's own.
    np.testing.assert_array_equal(mask, threshold(stack, sigma=info["sigma"]))


def noisy_series(shape=(192, 192), n=8):
    """Eight frames of ``n`` nuclei with noise of 0.03x their contrast, but frame 6 with
    0.3x (a noisy frame) and frame 7 with a tenth of the signal (bleached), and the true
    count of each frame."""
    frames, counts = [], []
    for t in range(8):
        image, labels = nb.synthetic_nuclei(
            shape, n=n, radius=8, noise=0, dtype=np.float32, seed=t
        )
        back = np.median(image[labels == 0])
        contrast = np.median(image[labels > 0]) - back
        if t == 7:
            image = back + (image - back) * 0.1
        noise_sd = (0.3 if t == 6 else 0.03) * contrast
        rng = np.random.default_rng(t)
        frames.append(image + rng.normal(0, noise_sd, shape).astype(np.float32))
        counts.append(int(labels.max()))
    return np.stack(frames), counts


@pytest.mark.parametrize("scope", ["frame", "slice"])
def test_each_frame_of_a_series_is_smoothed_as_it_needs(scope):
    """Two noisy frames of eight measure clean pooled (r 0.07); unsmoothed they thresholded
    into 816 and 1313 specks. Each frame is measured and smoothed alone, as on its own."""
    series, counts = noisy_series()
    assert noise_ratio(series) < noise.NOISE_GATE
    mask, t, info = threshold(series, scope=scope, return_thresholds=True, return_info=True)
    table = nb.count_cells(mask, image=series, time_axis=0)[1]
    assert nb.count_summary(table)["count"].tolist() == counts
    np.testing.assert_array_equal(info["sigma"], [0, 0, 0, 0, 0, 0, 2, 2])
    np.testing.assert_array_equal(info["noise_ratio"], [noise_ratio(f) for f in series])
    assert info["noise_ratio"][:6].max() < 0.1 and info["noise_ratio"][6:].min() > 1
    values, value_info = threshold_value(series, scope=scope, return_info=True)
    np.testing.assert_array_equal(values, t)
    np.testing.assert_array_equal(value_info["sigma"], info["sigma"])
    for i, frame in enumerate(series):
        np.testing.assert_array_equal(mask[i], threshold(frame))
        assert t[i] == threshold_value(frame)
        # The sigma a run reported for a frame reproduces it.
        np.testing.assert_array_equal(
            mask[i], apply_threshold(frame, t[i], sigma=info["sigma"][i])
        )


def test_an_empty_noisy_plane_takes_the_stacks_sigma():
    """Planes of noise alone (above and below the cells) read noisy (r ~1.25) but are not
    objects: smoothed alone their noise became blobs the count kept (77, 52, 68, 22 objects);
    they take the pooled sigma, as before per-plane sigmas (20, 20, 24, 8)."""
    stack = empty_noisy_planes_stack()
    assert resolve_sigma(stack[0], "auto")[0] > 0  # alone, an empty plane reads noisy
    mask, info = threshold(stack, scope="slice", return_info=True)
    np.testing.assert_array_equal(info["sigma"], np.zeros(8))
    assert info["noise_ratio"][0] == noise_ratio(stack) < noise.NOISE_GATE
    np.testing.assert_array_equal(mask, threshold(stack, scope="slice", sigma=0))
    counts = nb.count_summary(nb.count_cells(mask, image=stack, time_axis=0)[1])["count"]
    assert counts.tolist()[2:6] == [3, 3, 3, 3]


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
@pytest.mark.parametrize("scope", ["frame", "slice"])
def test_a_clean_stack_is_thresholded_unsmoothed_per_unit(scope, dtype):
    series = noisy_series((96, 96), n=3)[0][:6]
    series = (series * 1000).clip(0, 65535).astype(dtype)
    mask, t, info = threshold(series, scope=scope, return_thresholds=True, return_info=True)
    np.testing.assert_array_equal(info["sigma"], np.zeros(6))
    assert info["noise_ratio"].shape == (6,) and info["noise_ratio"].max() < 0.1
    plain, t_plain = threshold(series, scope=scope, sigma=0, return_thresholds=True)
    np.testing.assert_array_equal(mask, plain)
    np.testing.assert_array_equal(t, t_plain)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
@pytest.mark.parametrize(
    ("scope", "chunks"), [("frame", (3, 96, 48)), ("slice", (1, 96, 96)), ("frame", -1)]
)
def test_dask_equals_numpy_with_a_sigma_per_unit(scope, chunks, dtype):
    series = noisy_series((96, 96), n=3)[0]
    series = ((series - series.min()) * 1000).astype(dtype)
    lazy = da.from_array(series, chunks=chunks)
    for options in ({}, {"fill_holes": True, "min_size": 5}, {"method": "li"}):
        mask, t, info = threshold(
            series, scope=scope, return_thresholds=True, return_info=True, **options
        )
        assert info["sigma"][:6].max() == 0 and info["sigma"][6:].min() > 0
        lazy_mask, lazy_t, lazy_info = threshold(
            lazy, scope=scope, return_thresholds=True, return_info=True, **options
        )
        np.testing.assert_array_equal(lazy_mask.compute(), mask)
        np.testing.assert_array_equal(lazy_t, t)
        for key in ("sigma", "noise_ratio"):
            np.testing.assert_array_equal(lazy_info[key], info[key])
    for method in ("otsu", "li"):
        expected = threshold_value(series, method, scope=scope)
        np.testing.assert_array_equal(threshold_value(lazy, method, scope=scope), expected)


def test_time_series_of_z_stacks_per_frame_and_per_plane():
    """(T, Z, Y, X): with scope "frame" a frame's sigma is measured on its planes (as the frame
    alone); with "slice" each plane's own, shaped (T, Z)."""
    series = noisy_series((64, 64), n=2)[0]
    stacks = series.reshape(2, 4, 64, 64)  # frame 1 holds the noisy and the bleached plane
    _, info = threshold(stacks, scope="slice", return_info=True)
    own = [[resolve_sigma(plane, "auto")[0] for plane in frame] for frame in stacks]
    np.testing.assert_array_equal(info["sigma"], own)
    assert info["sigma"][1, 2:].min() > 0 and info["sigma"].sum() == info["sigma"][1, 2:].sum()
    mask, info = threshold(stacks, scope="frame", return_info=True)
    assert info["sigma"].shape == (2,)
    for i, frame in enumerate(stacks):
        frame_mask, frame_info = threshold(frame, return_info=True)
        np.testing.assert_array_equal(mask[i], frame_mask)
        assert info["sigma"][i] == frame_info["sigma"]
        assert info["noise_ratio"][i] == frame_info["noise_ratio"]


def test_per_unit_measure_reads_each_chunk_once():
    """Planes measured alone, in batches that split no chunk: 40 planes in chunks of 10 are
    read once each (in two computes), not once per plane."""
    reads = []

    def read(block):
        if block.size:  # not dask's meta probe
            reads.append(block.shape)
        return block

    data = np.stack([noisy_nuclei((64, 64), n=2, seed=s)[0] for s in range(40)])
    lazy = da.from_array(data, chunks=(10, 64, 64)).map_blocks(read, dtype=data.dtype)
    sigma, ratio = resolve_sigma(lazy, "auto", scope="slice")
    assert len(reads) == 4
    np.testing.assert_array_equal(ratio, [noise_ratio(plane) for plane in data])
    np.testing.assert_array_equal(sigma, [noise.sigma_for_ratio(r) for r in ratio])


def test_auto_is_measured_after_background_and_with_invert():
    image, _ = noisy_nuclei((128, 128), n=4)
    dark = image.max() - image
    mask, info = threshold(dark, invert=True, return_info=True)
    assert info["sigma"] == threshold(image, return_info=True)[1]["sigma"] > 0
    np.testing.assert_array_equal(mask, threshold(dark, invert=True, sigma=info["sigma"]))


def test_nan_holes_are_ignored_by_the_measure():
    image, _ = noisy_nuclei((128, 128), n=4)
    holed = image.copy()
    holed[10:20, 10:20] = np.nan
    ratio = noise_ratio(holed)
    assert np.isfinite(ratio) and ratio == pytest.approx(noise_ratio(image), rel=0.05)


@pytest.mark.parametrize("shape", [(2048, 2048), (3, 256, 256)])
def test_the_measures_read_each_chunk_of_a_lazy_image_once(shape):
    """A lazily read image (one chunk: a file read by its reader) is read once by each
    measure, not once per sampled square (17 reads of a 2048 x 2048 plane)."""
    from napari_binseg.background import unevenness

    reads = []

    def read(block):
        if block.size:  # not dask's meta probe
            reads.append(block.shape)
        return block

    image = noisy_nuclei(shape[-2:], n=4)[0]
    data = np.broadcast_to(image, shape)
    lazy = da.from_array(data, chunks=shape).map_blocks(read, dtype=image.dtype)
    assert noise_ratio(lazy) == noise_ratio(data) and len(reads) == 1
    assert unevenness(lazy) == unevenness(data) and len(reads) == 2


def test_saturated_specks_do_not_hide_the_noise():
    """A noisy 16-bit image with seven saturated 3x3 specks (0.1 % of its pixels) measures the
    noise of the same image without them (the contrast's Otsu threshold clips the top 0.1 %),
    so it is smoothed alike (without the clip: r 0.1, unsmoothed)."""
    image, labels = noisy_nuclei((256, 256), n=12)
    image = (image - image.min()) / (image.max() - image.min()) * 4000 + 1000
    clean = image.astype(np.uint16)
    dirty = clean.copy()
    for y, x in np.random.default_rng(0).integers(0, 250, (7, 2)):
        dirty[y : y + 3, x : x + 3] = 65535
    assert noise_ratio(dirty) == pytest.approx(noise_ratio(clean), rel=0.1)
    assert resolve_sigma(dirty, "auto")[0] == resolve_sigma(clean, "auto")[0] > 0


def empty_noisy_planes_stack():
    """8 planes of 3 nuclei, the outer 4 empty with noise of 0.1x the contrast."""
    rng = np.random.default_rng(0)
    planes = []
    for z in range(8):
        image, labels = nb.synthetic_nuclei(
            (128, 128), n=3, radius=8, noise=0, dtype=np.float32, seed=z
        )
        back = np.median(image[labels == 0])
        contrast = np.median(image[labels > 0]) - back
        empty = z in (0, 1, 6, 7)
        if empty:
            image = np.full_like(image, back)
        noise_sd = (0.1 if empty else 0.03) * contrast
        planes.append(image + rng.normal(0, noise_sd, image.shape).astype(np.float32))
    return np.stack(planes)


@pytest.mark.parametrize("case", ["empty planes", "noisy frames", "lazy"])
def test_unit_sigma_is_the_runs_sigma_of_that_unit(case):
    """unit_sigma (the preview's measure of the displayed plane) gives each unit the sigma
    resolve_sigma gives it in a run: an empty noisy plane the stack's pooled sigma (0 here),
    not the 1-2 px that plane alone reads (the preview then differed from the run)."""
    stack = (
        noisy_series((96, 96), n=3)[0] if case == "noisy frames" else empty_noisy_planes_stack()
    )
    if case == "lazy":
        stack = da.from_array(stack, chunks=(3, 64, 64))
    sigmas, ratios = resolve_sigma(stack, "auto", scope="slice")
    if case != "noisy frames":
        assert resolve_sigma(np.asarray(stack[0])[None], "auto", scope="slice")[0][0] > 0
        assert not sigmas.any()
    else:
        assert sigmas.any() and not sigmas.all()
    for z in range(len(stack)):
        assert noise.unit_sigma(stack, (z,)) == (sigmas[z], ratios[z])
    with pytest.raises(ValueError, match="does not index"):
        noise.unit_sigma(stack, (0, 1))
