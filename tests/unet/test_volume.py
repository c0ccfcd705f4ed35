"""The 2D U-Net on z-stacks (unet/volume.py): 3D post-processing, stitching, and the bundled
model on small synthetic stacks in both modes (CPU, a few seconds each), and the memory
estimate and guard."""

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from napari_binseg.evaluation import evaluate
from napari_binseg.synthetic import synthetic_stack
from napari_binseg.unet import volume
from napari_binseg.unet.network import MODELS_DIR
from napari_binseg.unet.volume import (
    grow_seeds_3d,
    probabilities_to_labels_3d,
    segment_volume,
    stitch_planes,
)

needs_bundled = pytest.mark.skipif(
    not (MODELS_DIR / "nuclei" / "model.safetensors").is_file(),
    reason="bundled weights not present",
)
CPU = {"device": "cpu", "precision": "float32"}


def _f1(truth, pred):
    return float(evaluate(truth, pred, thresholds=[0.5])["f1"].iloc[0])


@pytest.fixture(scope="module")
def lm():
    from napari_binseg.unet.network import load_model

    return load_model("nuclei", device="cpu")


def _balls(shape, spacing, centres, radius, seed=0):
    """Blurred noisy spheres (physical ``radius``) and their exact labels."""
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    for i, c in enumerate(centres, start=1):
        d = sum((g * s - cc) ** 2 for g, s, cc in zip(grids, spacing, c, strict=True))
        mine = (d <= radius**2) & (d < best)
        labels[mine] = i
        best[mine] = d[mine]
    rng = np.random.default_rng(seed)
    image = (labels > 0).astype(np.float32) * 0.8 + 0.1
    image = ndimage.gaussian_filter(image, (1.5 / spacing[0], 1.0, 1.0))
    image += rng.normal(0, 0.02, shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 4000).astype(np.uint16), labels


# ----------------------------------------------------------------------------- post-processing


def test_grow_seeds_3d_exact():
    seeds = np.zeros((5, 1, 3), np.int32)
    seeds[0, 0, 0] = 1
    seeds[4, 0, 2] = 2
    mask = np.ones((5, 1, 3), bool)
    mask[2, 0, :] = [False, True, False]
    out = grow_seeds_3d(seeds, mask)
    assert out[0].tolist() == [[1, 1, 1]] and out[4].tolist() == [[2, 2, 2]]
    assert out[2, 0, 0] == 0 and out[2, 0, 2] == 0  # outside the mask
    assert seeds.sum() == 3  # input untouched
    with pytest.raises(ValueError, match="3D"):
        grow_seeds_3d(seeds[0], mask[0])


@pytest.mark.parametrize("diameter", [10, 16])  # 16: peaks searched on the 2x coarser grid
def test_centre_saddle_along_z_gives_two_objects(diameter):
    z = np.arange(30)[:, None, None]
    centre = np.exp(-(((z - 8) / 4.0) ** 2)) + np.exp(-(((z - 22) / 4.0) ** 2))
    centre = centre * np.ones((1, 6, 6)) * 0.9
    labels = probabilities_to_labels_3d(np.ones((30, 6, 6)), centre, min_size=1, diameter=diameter)
    assert labels.max() == 2
    # The border lies halfway between the seeds (z = 15 for seeds at the peaks).
    assert (labels[:14] == 1).all() and (labels[18:] == 2).all()


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 3, 1), (3, 1, 1)])
def test_two_peaks_on_a_line_of_voxels(shape):
    # cc3d's 26-connectivity raised on a bool line of voxels with two peaks.
    centre = np.array([1.0, 0, 1]).reshape(shape)
    labels = probabilities_to_labels_3d(np.ones(shape), centre, min_size=1, diameter=3)
    assert labels.ravel()[[0, 2]].tolist() == [1, 2] and labels.ravel()[1] in (1, 2)


def test_stitch_planes_links_by_overlap():
    planes = np.zeros((4, 6, 6), np.int32)
    planes[0, 1:4, 1:4] = 1
    planes[1, 1:4, 1:5] = 2  # IoU 9/12 with plane 0's object
    planes[2, 1:4, 1:5] = 3
    planes[2, 5, 5] = 4  # new object
    planes[3, 0, 0] = 5  # no overlap: new object
    out = stitch_planes(planes, 0.25)
    assert out.max() == 3
    assert out[0, 2, 2] == out[1, 2, 2] == out[2, 2, 2] == 1
    assert out[2, 5, 5] == 2 and out[3, 0, 0] == 3
    # At 0.8 only the identical objects of planes 1 and 2 link.
    high = stitch_planes(planes, 0.8)
    assert high.max() == 4 and high[0, 2, 2] != high[1, 2, 2] == high[2, 2, 2]
    with pytest.raises(ValueError, match="stitch_threshold"):
        stitch_planes(planes, 0)


# ----------------------------------------------------------------------------- bundled model


@needs_bundled
def test_nuclei_touching_only_in_z_are_two(lm):
    spacing = (2.0, 1.0, 1.0)
    image, truth = _balls((26, 48, 48), spacing, [(14, 24, 24), (34, 24, 24)], radius=10)
    assert truth.max() == 2 and (truth[:, 24, 24] > 0).sum() >= 20  # touch along z
    labels = segment_volume(image, lm, spacing=spacing, mode="accurate", **CPU)
    assert labels.shape == image.shape and labels.dtype == np.uint16  # as count_cells gives
    assert labels.max() == 2
    assert _f1(truth, labels) == 1.0


@needs_bundled
@pytest.mark.parametrize("mode", ["accurate", "fast"])
def test_single_nucleus_spanning_ten_planes_is_one_object(lm, mode):
    spacing = (2.0, 1.0, 1.0)
    image, truth = _balls((16, 40, 40), spacing, [(15, 20, 20)], radius=10)
    assert np.count_nonzero(truth.any(axis=(1, 2))) >= 10
    labels = segment_volume(image, lm, spacing=spacing, mode=mode, **CPU)
    assert labels.max() == 1
    assert np.count_nonzero(labels.any(axis=(1, 2))) >= 9
    assert _f1(truth, labels) == 1.0


@needs_bundled
@pytest.mark.parametrize("mode", ["accurate", "fast"])
def test_synthetic_stack_quality(lm, mode):
    spacing = (2.0, 1.0, 1.0)
    image, truth = synthetic_stack((16, 96, 96), spacing=spacing, seed=4)
    labels, prob = segment_volume(
        image, lm, spacing=spacing, mode=mode, return_probabilities=True, **CPU
    )
    # Labels and probabilities come back on the input grid.
    assert labels.shape == prob.shape == image.shape
    assert prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    assert _f1(truth, labels) >= 0.8
    assert abs(int(labels.max()) - int(truth.max())) <= 0.1 * truth.max()


@pytest.mark.parametrize("mode", ["accurate", "fast"])
def test_stack_runs_at_the_models_own_prob_threshold(strict_model, mode):
    from napari_binseg.unet import segment

    spacing = (2.0, 1.0, 1.0)
    image, _ = _balls((12, 40, 40), spacing, [(12, 20, 20)], radius=9)
    run = dict(spacing=spacing, mode=mode, **CPU)
    labels, info = segment(image, strict_model, return_info=True, **run)
    assert info["prob_threshold"] == 0.9
    np.testing.assert_array_equal(labels, segment(image, "nuclei", prob_threshold=0.9, **run))
    assert 0 < np.count_nonzero(labels) < np.count_nonzero(segment(image, "nuclei", **run))


@needs_bundled
def test_anisotropic_resampling_back_to_input_grid(lm):
    spacing = (3.0, 1.0, 1.0)
    image, truth = synthetic_stack((11, 70, 58), spacing=spacing, radius=9, seed=2)
    labels = segment_volume(image, lm, spacing=spacing, **CPU)
    assert labels.shape == image.shape
    n = int(labels.max())
    np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))
    assert _f1(truth, labels) >= 0.7


@needs_bundled
def test_time_series_of_stacks_per_frame(lm):
    spacing = (2.0, 1.0, 1.0)
    image, truth = synthetic_stack((2, 12, 64, 64), spacing=spacing, seed=1)
    labels = segment_volume(image, lm, axes="TZYX", spacing=spacing, mode="fast", **CPU)
    assert labels.shape == image.shape
    ids = [set(np.unique(labels[t])) - {0} for t in range(2)]
    assert ids[0] and ids[1] and not ids[0] & ids[1]  # numbers continue, no shared object
    for t in range(2):
        true_n = len(np.unique(truth[t])) - 1
        assert abs(len(ids[t]) - true_n) <= 0.15 * true_n
        assert _f1(truth[t], labels[t]) >= 0.75


@needs_bundled
@pytest.mark.parametrize("mode", ["accurate", "fast"])
def test_progress_over_all_passes_and_cancel(lm, mode):
    spacing = (2.0, 1.0, 1.0)
    image, _ = synthetic_stack((8, 48, 48), spacing=spacing, radius=8, seed=0)
    calls = []
    segment_volume(
        image, lm, spacing=spacing, mode=mode, progress=lambda d, t: calls.append((d, t)), **CPU
    )
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1]
    assert len({t for _, t in calls}) == 1
    if mode == "accurate":
        # The three views: more planes than the stack's own.
        assert calls[-1][1] > 2 * image.shape[0]

    class Stop(Exception):
        pass

    seen = []

    def cancel(done, total):
        seen.append(done)
        if done >= 4:
            raise Stop

    with pytest.raises(Stop):
        segment_volume(image, lm, spacing=spacing, mode=mode, progress=cancel, **CPU)
    assert seen[-1] < calls[-1][1]


@needs_bundled
def test_progress_total_is_the_planes_the_accurate_passes_walk(lm, monkeypatch):
    """Pixels of 0.5 x 1 µm: the isotropic stack the passes walk is 23 x 91 in-plane for a
    32 x 64 stack; the bar's total counts exactly those planes (before: 32 x 64, so the bar
    stood at its end through the last pass)."""
    walked = []
    chunk_maps = volume._chunk_maps

    def counting(planes, *args):
        walked.append(len(planes))
        return chunk_maps(planes, *args)

    monkeypatch.setattr(volume, "_chunk_maps", counting)
    spacing = (2.0, 0.5, 1.0)
    image, _ = synthetic_stack((6, 32, 64), spacing=(2.0, 1.0, 1.0), radius=6, seed=0)
    calls = []
    segment_volume(
        image, lm, spacing=spacing, diameter=None, progress=lambda d, t: calls.append((d, t)),
        **CPU,
    )  # fmt: skip
    assert calls[-1][1] == 3 + sum(walked)  # 3: the size estimate's share


def test_bad_options():
    image = np.zeros((4, 16, 16), np.uint16)
    with pytest.raises(ValueError, match="mode"):
        segment_volume(image, None, mode="best")
    with pytest.raises(ValueError, match="stitch_threshold"):
        segment_volume(image, None, mode="fast", stitch_threshold=1.5)
    with pytest.raises(ValueError, match="plane_step"):
        segment_volume(image, None, plane_step=0)
    with pytest.raises(ValueError, match="spacing"):
        segment_volume(image, None, spacing=(1.0, 1.0))


def test_fast_stitch_numbers_planes_on_past_uint16(monkeypatch):
    """Plane labels (uint16 from segment) are numbered on in the int32 stack: 2 planes of
    39999 objects give 79998, not numbers wrapped at 65536."""
    plane = np.arange(200 * 200, dtype=np.uint16).reshape(200, 200)

    class Model:
        config = {"postprocess": {}, "normalization": {}}

    zeros = np.zeros(plane.shape, np.float32)
    monkeypatch.setattr(volume, "segment", lambda *a, **k: (plane.copy(), zeros))
    monkeypatch.setattr(volume, "stitch_planes", lambda labels, threshold: labels)
    labels, _ = volume._fast(
        np.zeros((2, 200, 200), np.float32), Model(), (1.0, 1.0, 1.0), None, options={},
        prob_threshold=0.5, stitch_threshold=0.25, progress=volume._Progress(None, 2),
    )  # fmt: skip
    assert labels.max() == 79998
    expected = np.where(plane > 0, plane.astype(np.int32) + 39999, 0)
    np.testing.assert_array_equal(labels[1], expected)


def test_fast_stitch_keeps_every_object(monkeypatch):
    """The stitched planes are not floored by the model's object confidence (z-stacks keep
    every object; before, each plane ran at the bundled 0.85)."""
    seen = []

    class Model:
        config = {"postprocess": {"min_confidence": 0.85}, "normalization": {}}

    def plane_segment(*args, **kwargs):
        seen.append(kwargs.get("min_confidence"))
        return np.zeros((8, 8), np.uint16), np.zeros((8, 8), np.float32)

    monkeypatch.setattr(volume, "segment", plane_segment)
    volume._fast(
        np.zeros((2, 8, 8), np.float32), Model(), (1.0, 1.0, 1.0), None, options={},
        prob_threshold=0.5, stitch_threshold=0.25, progress=volume._Progress(None, 2),
    )  # fmt: skip
    assert seen == [0.0, 0.0]


def test_scale_follows_nucleus_size():
    class Model:
        config = {"postprocess": {"diameter": 20.0, "max_scale": 2.0}}

    assert volume._scale_of(20.0, Model, (2.0, 1.0, 1.0)) == 1.0
    assert volume._scale_of(10.0, Model, (2.0, 1.0, 1.0)) == 2.0
    # 40 µm nuclei at 0.5 µm pixels are 80 pixels: shrink 4x.
    assert volume._scale_of(40.0, Model, (2.0, 0.5, 0.5)) == 0.25
    assert volume._scale_of(None, Model, (1.0, 1.0, 1.0)) == 1.0
    # A cap between quarters holds as in 2D (before: 2.9 rounded up to 3x).
    Model.config = {"postprocess": {"diameter": 20.0, "max_scale": 2.9}}
    assert volume._scale_of(5.0, Model, (1.0, 1.0, 1.0)) == 2.9


@needs_bundled
def test_segment_defaults_to_volumes_for_3d_arrays(lm):
    from napari_binseg.unet import segment

    spacing = (2.0, 1.0, 1.0)
    image, truth = _balls((16, 40, 40), spacing, [(15, 20, 20)], radius=10)
    labels, info = segment(image, lm, spacing=spacing, return_info=True, **CPU)
    assert labels.max() == 1 and info["mode"] == "accurate"
    assert info["min_confidence"] == 0  # the bundled floor (0.85) is for planes only
    assert info["diameter"] == pytest.approx(20, rel=0.25) and info["diameter_um"] > 0
    fast = segment(image, lm, spacing=spacing, mode="fast", **CPU)
    assert fast.max() == 1
    # axes="TYX": the planes one by one, objects never spanning two planes.
    planes = segment(image, lm, axes="TYX", diameter=None, **CPU)
    assert planes.max() >= 9
    with pytest.raises(ValueError, match="axes"):
        segment(image, lm, axes="ZY", **CPU)


@needs_bundled
def test_dask_stack_equals_numpy(lm):
    import dask.array as da

    spacing = (2.0, 1.0, 1.0)
    image, _ = synthetic_stack((2, 8, 48, 48), spacing=spacing, radius=7, seed=3)
    lazy = da.from_array(image, chunks=(1, 4, 48, 48))
    np.testing.assert_array_equal(
        segment_volume(lazy, lm, axes="TZYX", spacing=spacing, **CPU),
        segment_volume(image, lm, axes="TZYX", spacing=spacing, **CPU),
    )


# ----------------------------------------------------------------------------- memory


class _SizedModel:
    """A model config alone: the memory guard runs before any network call."""

    config = {
        "postprocess": {"diameter": 19.3, "max_scale": 3.0, "prob_threshold": 0.5},
        "normalization": {"kind": "none"},
    }


def test_memory_guard_refuses_the_accurate_mode_and_says_what_fits(monkeypatch):
    # 8-px nuclei upsampled 2.5x: a 16 x 64 x 64 stack becomes 50 x 160 x 160 voxels.
    shape, spacing = (16, 64, 64), (2.0, 0.65, 0.65)
    need = volume.memory_need(shape, spacing, 2.5)
    fits = volume.memory_need(shape, spacing, 1.5)
    assert volume._iso_shape(shape, spacing, 2.5) == (123, 160, 160)
    assert fits < volume.memory_need(shape, spacing, 1.75) < need
    available = fits + 1000
    monkeypatch.setattr(volume, "_available_bytes", lambda: available)
    image = np.zeros(shape, np.float32)
    with pytest.raises(ValueError) as raised:
        segment_volume(image, _SizedModel(), spacing=spacing, diameter=8, mode="accurate")
    message = str(raised.value)
    assert "\n" not in message
    assert f"needs about {volume._gb(need)} of memory" in message and "MB" in volume._gb(need)
    assert "(resampled to 123 x 160 x 160 isotropic voxels, resized 2.5x)" in message
    assert f"but {volume._gb(available)} is available" in message
    fast = volume.memory_need(shape, spacing, 2.5, mode="fast")
    # In words of every front (the widget shows it too), not the API's keywords.
    assert message.startswith("the accurate 3D mode needs about ") and "=" not in message
    assert f"use the fast 3D mode (about {volume._gb(fast)})" in message
    # The largest resize that fits, as the diameter that asks for it (19.3 / 1.5).
    assert "or give a nucleus diameter of 12.9 px (resize 1.5x" in message
    assert volume._scale_of(12.9 * 0.65, _SizedModel(), spacing) == 1.5

    # The fast mode fits in the same memory: the guard lets it through to the network.
    class Reached(Exception):
        pass

    def network(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(volume, "_chunk_maps", network)
    monkeypatch.setattr(volume, "_available_bytes", lambda: fast)
    with pytest.raises(Reached):
        segment_volume(image, _SizedModel(), spacing=spacing, diameter=8, mode="fast")
    # Where the fast mode does not fit, it is not offered; the model's own size (no resize) is.
    no_resize = volume.memory_need(shape, spacing, 1.0)
    assert no_resize < volume.memory_need(shape, spacing, 1.25) < fast
    monkeypatch.setattr(volume, "_available_bytes", lambda: no_resize)
    with pytest.raises(ValueError, match=r"available: give a nucleus diameter of 19\.3 px \("):
        segment_volume(image, _SizedModel(), spacing=spacing, diameter=8, mode="accurate")
    monkeypatch.setattr(volume, "_available_bytes", lambda: fast - 1)
    with pytest.raises(ValueError, match="^the fast 3D mode needs about .* segment a crop"):
        segment_volume(image, _SizedModel(), spacing=spacing, diameter=8, mode="fast")
    # Small nuclei are never offered a shrink (0.75x: 8-px nuclei at 6 px), large ones not
    # under half the model's size (26-px nuclei, resize 0.75x: 0.25x fits, 6 px; 0.5x not).
    monkeypatch.setattr(volume, "_available_bytes", lambda: no_resize - 1)
    assert volume.memory_need(shape, spacing, 0.75) < no_resize - 1
    with pytest.raises(ValueError, match="is available: segment a crop of the stack$"):
        segment_volume(image, _SizedModel(), spacing=spacing, diameter=8, mode="accurate")
    assert volume._scale_of(26 * 0.65, _SizedModel(), spacing) == 0.75
    half = volume.memory_need(shape, spacing, 0.5)
    assert volume.memory_need(shape, spacing, 0.25) < half - 1
    monkeypatch.setattr(volume, "_available_bytes", lambda: half - 1)
    with pytest.raises(ValueError) as raised:
        segment_volume(image, _SizedModel(), spacing=spacing, diameter=26, mode="accurate")
    assert "diameter" not in str(raised.value)
    monkeypatch.setattr(volume, "_available_bytes", lambda: half)
    with pytest.raises(ValueError, match=r"diameter of 38\.6 px \(resize 0\.5x"):
        segment_volume(image, _SizedModel(), spacing=spacing, diameter=26, mode="accurate")


def test_memory_guard_refuses_before_the_size_estimate_what_fits_at_no_resize(monkeypatch):
    """diameter="auto": a stack that fits at no resize the estimate can choose (the least is
    0.25x, that of the largest nuclei) is refused before its nuclei are measured, the need
    said as a bound (before: after the estimate's network passes); one that fits at 0.25x is
    measured, then checked at the resize it asks for (8-px nuclei: 2.5x)."""
    shape, spacing = (16, 64, 64), (2.0, 0.65, 0.65)
    measured = []

    def estimate(volume_, *args, **kwargs):
        measured.append(volume_.shape)
        return 8 * 0.65

    monkeypatch.setattr(volume, "estimate_diameter", estimate)
    image = np.zeros(shape, np.float32)
    least = volume.memory_need(shape, spacing, 0.25)
    assert least < volume.memory_need(shape, spacing, 0.5)
    monkeypatch.setattr(volume, "_available_bytes", lambda: least - 1)
    with pytest.raises(ValueError) as raised:
        segment_volume(image, _SizedModel(), spacing=spacing, mode="accurate")
    assert measured == []
    assert volume._iso_shape(shape, spacing, 0.25) == (12, 16, 16)
    assert str(raised.value) == (
        f"the accurate 3D mode needs at least about {volume._gb(least)} of memory for this "
        "16 x 64 x 64 stack (resampled to at least 12 x 16 x 16 isotropic voxels, whatever "
        f"its nuclei's size) but {volume._gb(least - 1)} is available: segment a crop of the "
        "stack"
    )
    fast = volume.memory_need(shape, spacing, 0.25, mode="fast")
    monkeypatch.setattr(volume, "_available_bytes", lambda: fast - 1)
    with pytest.raises(ValueError, match="^the fast 3D mode needs at least about"):
        segment_volume(image, _SizedModel(), spacing=spacing, mode="fast")
    assert measured == []
    monkeypatch.setattr(volume, "_available_bytes", lambda: least)
    with pytest.raises(ValueError, match=r"^the accurate 3D mode needs about .* resized 2\.5x"):
        segment_volume(image, _SizedModel(), spacing=spacing, mode="accurate")
    assert measured == [shape]


def test_memory_guard_counts_the_frame_as_the_need_does(monkeypatch):
    """The need counts the normalized stack (memory_need is the peak a call adds) and not a
    dask frame's data: a frame read from dask is counted as taken before it is read, and the
    check after the size estimate adds back the normalized stack it sees taken (before: the
    dask frame fitted at the given diameter; the estimated one was refused for 4 B a voxel)."""
    import dask.array as da

    shape, spacing = (8, 32, 32), (1.0, 1.0, 1.0)
    ran = []

    def run(volume_, *args, **kwargs):
        ran.append(volume_.shape)
        return np.ones(volume_.shape, np.int32), None

    monkeypatch.setattr(volume, "_accurate", run)
    monkeypatch.setattr(volume, "estimate_diameter", lambda *args, **kwargs: 19.3)
    need = volume.memory_need(shape, spacing, 1.0)
    frame_bytes = math.prod(shape) * 2  # uint16
    lazy = da.zeros(shape, dtype=np.uint16, chunks=(4, 32, 32))
    monkeypatch.setattr(volume, "_available_bytes", lambda: need + frame_bytes - 1)
    with pytest.raises(ValueError, match="the accurate 3D mode needs about"):
        segment_volume(lazy, _SizedModel(), spacing=spacing, diameter=19.3)
    monkeypatch.setattr(volume, "_available_bytes", lambda: need + frame_bytes)
    segment_volume(lazy, _SizedModel(), spacing=spacing, diameter=19.3)
    # diameter="auto": the same need, checked after the normalized stack (4 B a voxel) exists.
    monkeypatch.setattr(volume, "_available_bytes", lambda: need - 4 * math.prod(shape))
    segment_volume(np.zeros(shape, np.uint16), _SizedModel(), spacing=spacing)
    assert ran == [shape, shape]


def test_memory_need_grows_with_the_isotropic_stack():
    assert volume._gb(2.54e9) == "2.5 GB" and volume._gb(3.4e7) == "34 MB"
    # 12 bytes per isotropic voxel: 4 um z steps at 1 um pixels add 96 planes.
    flat = volume.memory_need((32, 512, 512), (1.0, 1.0, 1.0), 1.0)
    deep = volume.memory_need((32, 512, 512), (4.0, 1.0, 1.0), 1.0)
    assert deep - flat == 12 * 96 * 512 * 512
    assert volume.memory_need((32, 512, 512), (4.0, 1.0, 1.0), 1.0, mode="fast") < flat
    # A series holds one stack's work at a time, every frame's output (int32 and its copy).
    series = volume.memory_need((32, 512, 512), (1.0, 1.0, 1.0), 1.0, frames=3)
    assert series - flat == 2 * 8 * 32 * 512 * 512


def test_memory_guard_counts_a_series_output_once(monkeypatch):
    """Each frame's check adds back the output the earlier frames already wrote (it is in the
    need and no longer in the available memory): a series that fits is not refused midway."""
    shape, frames = (4, 32, 32), 5
    need = volume.memory_need(shape, mode="fast", frames=frames)
    written = []

    def run(volume_, *args, **kwargs):
        written.append(volume_.shape)
        return np.ones(volume_.shape, np.int32), None

    frame_bytes = math.prod(shape) * 4  # the int32 output
    monkeypatch.setattr(volume, "_fast", run)
    monkeypatch.setattr(volume, "_available_bytes", lambda: need - frame_bytes * len(written))
    image = np.zeros((frames, *shape), np.float32)
    labels = segment_volume(image, _SizedModel(), axes="TZYX", diameter=None, mode="fast")
    assert len(written) == frames and labels.shape == image.shape
    monkeypatch.setattr(volume, "_available_bytes", lambda: need - 1 - frame_bytes * len(written))
    written.clear()
    with pytest.raises(ValueError, match=r"fast 3D mode needs about .* for 5 stacks of 4 x 32 x"):
        segment_volume(image, _SizedModel(), axes="TZYX", diameter=None, mode="fast")
    assert written == []


_PEAK_CHILD = """
import re
from napari_binseg.synthetic import synthetic_stack
from napari_binseg.unet import load_model, segment

def peak():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\\s+(\\d+)", f.read()).group(1)) * 1024

spacing = (3.0, 1.0, 1.0)
image, _ = synthetic_stack((24, 256, 256), spacing=spacing, seed=0)
lm = load_model("nuclei", device="cpu")
segment(image[12, :128, :128], lm, device="cpu", precision="float32")  # warm-up
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak RSS starts again from the current RSS (the warm-up's peak is higher)
before = peak()
segment(image, lm, spacing=spacing, diameter=18, device="cpu", precision="float32")
print(peak() - before)
"""


@needs_bundled
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_memory_need_is_near_the_measured_peak():
    """The accurate mode's estimate is within 1.5x of the peak RSS it adds, measured in a
    fresh process (72 x 256 x 256 isotropic voxels; measured 99 MB, estimated 94 MB)."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_CHILD], capture_output=True, text=True, check=True
    )
    measured = int(out.stdout.strip().splitlines()[-1])
    estimate = volume.memory_need((24, 256, 256), (3.0, 1.0, 1.0), 1.0)
    assert measured / 1.5 < estimate < measured * 1.5, (estimate, measured)
