"""Nucleus size: the automatic estimate, rescale rules and resizing (CPU)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_binseg.unet import load_model, predict_channels, segment
from napari_binseg.unet import scale as sc
from napari_binseg.unet.inference import estimate_diameter
from napari_binseg.unet.normalize import normalize_plane
from napari_binseg.unet.tiling import _plan

from .conftest import bundled_copy, needs_bundled, object_f1


def test_median_diameter_pools_objects():
    a = np.zeros((30, 30), np.int32)
    a[0:10, 0:10] = 1  # area 100
    a[20:24, 20:24] = 2  # area 16
    b = np.zeros((10, 10), np.int32)
    b[:5, :5] = 7  # area 25; labels need not be consecutive
    assert sc.median_diameter(a) == pytest.approx(2 * np.sqrt(58 / np.pi))
    assert sc.median_diameter([a, b]) == pytest.approx(2 * np.sqrt(25 / np.pi))
    assert sc.median_diameter(np.zeros((4, 4), int)) is None


def test_specks_do_not_count_in_an_estimate():
    """Ten nuclei of 16-169 px and six 1-px specks: the specks pull the plain median down to
    the small nuclei (30.5 px); left out under SPECK times that median, the nuclei's median is
    72.5 px. A merged blob moves it by one object only (its area does not weigh)."""
    labels = np.zeros((64, 200), np.int32)
    for i, side in enumerate(range(4, 14)):
        labels[2 : 2 + side, 2 + 16 * i : 2 + 16 * i + side] = i + 1
    for i in range(6):
        labels[30, 2 + 3 * i] = 11 + i
    assert sc.median_diameter(labels) == pytest.approx(2 * np.sqrt(30.5 / np.pi))
    assert sc.median_diameter(labels, sc.SPECK) == pytest.approx(2 * np.sqrt(72.5 / np.pi))
    labels[40:64, :] = 30  # one blob of 4800 px, most of the foreground
    assert sc.median_diameter(labels, sc.SPECK) == pytest.approx(2 * np.sqrt(81 / np.pi))


def test_rescale_factor_rules(sized_model, small_model, monkeypatch):
    lm = load_model(sized_model, device="cpu")  # cached: monkeypatch restores its config
    post = lm.config["postprocess"]
    rr, cc = np.ogrid[:64, :64]
    disk = ((rr - 32) ** 2 + (cc - 32) ** 2 < 25).astype(np.int32)
    found = sc.median_diameter(disk)
    # Reference / found, rounded to a quarter, used from 1.25 on, capped at max_scale 2.
    for ratio, expected in ((1.1, 1.0), (1.2, 1.25), (1.3, 1.25), (1.75, 1.75), (10.0, 2.0)):
        monkeypatch.setitem(post, "diameter", ratio * found)
        assert sc.rescale_factor("auto", lm, disk) == expected, ratio
    monkeypatch.setitem(post, "diameter", 20.0)
    assert sc.rescale_factor(None, lm, disk) == 1.0
    assert sc.rescale_factor(10, lm) == 2.0
    assert sc.rescale_factor(40, lm) == 0.5  # a given diameter may shrink the image
    assert sc.rescale_factor(1, lm) == 4.0  # clipped
    assert sc.rescale_factor("auto", lm, np.zeros((8, 8), int)) == 1.0  # nothing found
    plain = load_model(small_model[0], device="cpu")  # no reference diameter
    assert sc.rescale_factor("auto", plain, disk) == 1.0
    with pytest.raises(ValueError, match="no reference nucleus diameter"):
        segment(disk.astype(np.uint8), plain, device="cpu", diameter=12)
    for bad in (0, -3, "big", True, float("nan")):
        with pytest.raises(ValueError, match=r"diameter.*must be"):
            segment(disk.astype(np.uint8), sized_model, device="cpu", diameter=bad)


def test_auto_diameter_is_the_fixed_rescale_it_chose(sized_model, sample_images, monkeypatch):
    image = sample_images["nuclei_003cee89357d9fe1"][:96, :112]
    lm = load_model(sized_model, device="cpu")
    # The tiny model's nuclei (reference 200 px) may exceed half of this 96-px crop.
    monkeypatch.setattr(sc, "PLANE_MAX", 4.0)
    norm = lm.config["normalization"]
    kw = dict(device="cpu", precision="float32", tile_size=64, overlap=0.25)
    native = segment(image, lm, diameter=None, **kw)
    assert native.max() > 0
    assert sc.rescale_factor("auto", lm, native) == 2.0  # every object is under 200 px
    calls = []
    auto, prob = segment(
        image, lm, return_probabilities=True, progress=lambda d, t: calls.append((d, t)), **kw
    )
    fixed = segment(image, lm, diameter=100.0, **kw)  # 200 / 100: the same 2x in one pass
    np.testing.assert_array_equal(auto, fixed)
    assert auto.shape == image.shape and auto.dtype == np.uint16
    assert np.array_equal(np.unique(auto), np.arange(auto.max() + 1))  # consecutive
    assert not np.array_equal(auto, native)
    # The probability map is the rescaled pass's, brought back to the image's size.
    channels = predict_channels(sc.resize(image, (192, 224)), lm, **kw)
    assert prob.shape == image.shape
    assert np.abs(prob - sc.resize(channels[0], image.shape)).mean() < 0.02
    # The probe (24x28) chose the 2x pass (192x224) alone: progress counts their tiles; the
    # full-size pass (96x112), planned from the start, was dropped once the probe ended.
    tiles = [_plan(shape, lm, 64, 0.25)[2] for shape in ((24, 28), (96, 112), (192, 224))]
    assert tiles[2] > tiles[1] > 1
    assert calls[-1] == (tiles[0] + tiles[2],) * 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert (tiles[0], tiles[0] + tiles[1]) in calls
    # A plane too small to probe: its Otsu mask's nuclei choose 2x, in one pass.
    monkeypatch.setattr("napari_binseg.unet.passes.probe_shape_ok", lambda *a: False)
    calls.clear()
    again, info = segment(
        image, lm, return_info=True, progress=lambda d, t: calls.append((d, t)), **kw
    )
    np.testing.assert_array_equal(again, fixed)
    assert info["scales"] == [2.0] and info["probe_seconds"] == info["remeasured"] == 0
    assert info["diameter"] == pytest.approx(sc.mask_diameter(normalize_plane(image, norm)))
    assert calls[-1] == (tiles[2],) * 2
    assert estimate_diameter(image, lm, **kw) == pytest.approx(info["diameter"])
    # Nothing in the mask either: the full-size pass measures the nuclei and the plane runs
    # again at 2x, that first pass counted as the estimate.
    monkeypatch.setattr("napari_binseg.unet.passes.mask_diameter", lambda unit: None)
    calls.clear()
    again, info = segment(
        image, lm, return_info=True, progress=lambda d, t: calls.append((d, t)), **kw
    )
    np.testing.assert_array_equal(again, fixed)
    assert info["scales"] == [2.0] and info["probe_seconds"] == 0 < info["estimate_seconds"]
    assert info["remeasured"] == 1
    assert info["diameter"] == pytest.approx(sc.median_diameter(native))
    assert calls[-1] == (tiles[1] + tiles[2],) * 2


def test_labels_resized_keeps_objects_and_renumbers():
    big = np.zeros((8, 8), np.int32)
    big[0:4, 0:4] = 3
    big[4:8, 4:8] = 5
    big[0, 7] = 9  # one pixel: gone at half size
    small = sc.labels_resized(big, (4, 4))
    expected = np.zeros((4, 4), np.int32)
    expected[0:2, 0:2] = 1
    expected[2:4, 2:4] = 2
    np.testing.assert_array_equal(small, expected)
    # A volume: every axis resampled the same way (here 2 planes become 4).
    volume = sc.labels_resized(np.stack([big, big]), (4, 4, 4))
    np.testing.assert_array_equal(volume, np.stack([expected] * 4))


def test_downsample_factor_rule():
    ref = 19.3
    assert sc.downsample_factor(None, ref) == 1.0
    assert sc.downsample_factor(100.0, None) == 1.0
    assert sc.downsample_factor(sc.NATIVE_MAX * ref, ref) == 1.0  # up to 48 px: full size
    assert sc.downsample_factor(50.0, ref) == 0.5
    assert sc.downsample_factor(80.0, ref) == 0.5  # 40 px is closer to 29 than 20 px
    assert sc.downsample_factor(90.0, ref) == 0.25
    assert sc.downsample_factor(sc.COARSE_FROM * ref, ref) == 0.25  # up to 193 px: 0.25x
    assert sc.downsample_factor(194.0, ref) == 0.125
    assert sc.downsample_factor(400.0, ref) == 0.125
    assert sc.downsample_factor(400.0, ref, scales=(0.5, 0.25)) == 0.25  # no look possible
    assert sc.probe_shape_ok((128, 128), 16) and not sc.probe_shape_ok((120, 400), 16)
    assert sc.probe_shape_ok((256, 300), 16, sc.LOOK_SCALE)
    assert not sc.probe_shape_ok((250, 300), 16, sc.LOOK_SCALE)
    # The estimate alone downsamples and upsamples (its value times 0.9); None: the
    # full-size pass decides (mid-sized nuclei, or none seen by the probe).
    assert sc.probe_scale(90.0, ref) == 0.25
    assert sc.probe_scale(200.0, ref) == 0.125
    assert sc.probe_scale(18.0, ref) == 1.25  # 16.2 px after the 0.9
    assert sc.probe_scale(5.0, ref, max_scale=2.0) == 2.0
    # Nuclei of 5 px go to 15 (3x) unless a model's config caps them lower.
    assert sc.probe_scale(5.0, ref) == sc.upsample_factor(5.0, ref) == 3.0
    assert sc.max_scale({"max_scale": 1.5}) == 1.5
    assert sc.max_scale({}) == sc.LEGACY_MAX_SCALE == 2.0  # the cap before 3x
    bundled = Path(sc.__file__).parents[1] / "models" / "nuclei" / "config.json"
    assert json.loads(bundled.read_text())["postprocess"]["max_scale"] == sc.MAX_SCALE
    assert sc.probe_scale(21.0, ref) is None and sc.probe_scale(None, ref) is None


def test_look_rule_on_hand_made_estimates():
    """When the probe gets a 0.125x look, and when the look's estimate replaces the probe's."""
    ref = 19.3
    # A look where the probe's foreground (inscribed nucleus diameter) is over 2x its
    # objects' size (pieces of larger nuclei), over 1.35x for estimates above 2.5x the
    # model's diameter (48 px: whole at 0.25x unless larger still), or where a foreground
    # kept no object.
    assert sc.needs_look(14.0, 200.0, ref) and sc.needs_look(None, 150.0, ref)
    assert not sc.needs_look(14.0, 28.0, ref) and sc.needs_look(14.0, 28.5, ref)
    assert not sc.needs_look(30.0, 40.0, ref) and not sc.needs_look(None, None, ref)
    assert sc.look_limit(40.0, ref) == 80.0 and sc.look_limit(60.0, ref) == 81.0
    assert sc.needs_look(60.0, 82.0, ref) and not sc.needs_look(60.0, 80.0, ref)
    assert not sc.needs_look(60.0, 82.0, ref, native_max=4.0)  # 60 px is mid-sized there
    assert not sc.needs_look(300.0, 1000.0, None)  # a model without a reference size
    # The look wins when it saw nuclei 1.4x larger that are >= 0.8 x 19.3 px at 0.125x.
    assert sc.checked_estimate(14.0, 202.0, ref) == 202.0  # fragments of 202-px nuclei
    assert sc.checked_estimate(63.0, 202.0, ref) == 202.0
    assert sc.checked_estimate(100.0, 139.0, ref) == 100.0  # agreement: the probe's
    assert sc.checked_estimate(100.0, 141.0, ref) == 141.0
    assert sc.checked_estimate(10.0, 123.0, ref) == 10.0  # 15.4 px at 0.125x: specks
    assert sc.checked_estimate(10.0, 124.0, ref) == 124.0
    # A dense plane of 17-px nuclei, rotated 90 degrees: its look's clumps measured 112 px.
    assert sc.checked_estimate(37.5, 112.4, ref) == 37.5
    assert sc.checked_estimate(None, 130.0, ref) == 130.0
    assert sc.checked_estimate(None, 120.0, ref) is None
    assert sc.checked_estimate(40.0, None, ref) == 40.0
    # Together: the fine-tuned probe's 14 px for 202-px nuclei upsampled the plane (1.5x);
    # the look's 202 px send it to 0.125x. A probe that agrees keeps its scale.
    assert sc.probe_scale(14.0, ref) == 1.5
    assert sc.probe_scale(sc.checked_estimate(14.0, 202.0, ref), ref) == 0.125
    assert sc.probe_scale(sc.checked_estimate(60.0, 66.0, ref), ref) == 0.5
    # A blob over half the plane's shorter side (a sheet of merged small nuclei) is no size.
    assert sc.plausible(300.0, (603, 1272)) == 300.0
    assert sc.plausible(305.0, (603, 1272)) is None and sc.plausible(None, (64, 64)) is None
    assert sc.checked_estimate(33.0, sc.plausible(680.0, (603, 1272)), ref) == 33.0


def test_size_rule_per_model(sized_model, tmp_path):
    """A config's postprocess.native_max / down_target replace the defaults; bad ones refused."""
    assert sc.size_rule({}) == {"native_max": sc.NATIVE_MAX, "down_target": sc.DOWN_TARGET}
    rule = sc.size_rule({"native_max": 4.0, "down_target": 2.5})
    assert sc.downsample_factor(70.0, 19.3, **rule) == 1.0  # 70 <= 4 * 19.3
    assert sc.downsample_factor(80.0, 19.3, **rule) == 0.5  # 40 px is closer to 48 than 20 px
    assert sc.downsample_factor(200.0, 19.3, **rule) == 0.125  # over COARSE_FROM
    assert sc.downsample_factor(200.0, 19.3, scales=(0.5, 0.25), **rule) == 0.25
    for bad in (0, -1.0, "2", True):
        config = json.loads((sized_model / "config.json").read_text())
        config["postprocess"]["down_target"] = bad
        shutil.copytree(sized_model, tmp_path / str(bad))
        (tmp_path / str(bad) / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match="postprocess.down_target must be a positive"):
            load_model(tmp_path / str(bad), device="cpu")


@needs_bundled
def test_bundled_model_upsamples_small_nuclei(sample_image, sample_labels):
    """At half the pixel size (nuclei ~14 px) the automatic rescale beats the native pass."""
    h, w = (s // 2 for s in sample_image.shape)
    small = sample_image[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    truth = sample_labels[: 2 * h : 2, : 2 * w : 2]
    lm = load_model("nuclei", device="cpu")
    native = segment(small, lm, diameter=None)
    assert sc.rescale_factor("auto", lm, native) > 1
    auto, info = segment(small, lm, return_info=True)
    # The probe alone chose the upsampling, in one pass (no full-size pass first: the model
    # card's speed section).
    assert info["scales"] == [2.5] and info["remeasured"] == 0
    f1_auto = object_f1(truth, auto)
    f1_native = object_f1(truth, native)
    assert f1_auto >= 0.93 and f1_auto > f1_native + 0.01, (f1_auto, f1_native)
    # The full-size sample (nuclei ~28 px) is left at its pixel size, chosen by the probe
    # alone: its estimate is within 15% of the nuclei measured at full size.
    full = segment(sample_image, lm, diameter=None)
    labels, info = segment(sample_image, lm, return_info=True)
    assert info["scales"] == [1.0]
    np.testing.assert_array_equal(labels, full)
    assert info["diameter"] == pytest.approx(sc.median_diameter(full), rel=0.15)
    assert 0 < info["estimate_seconds"] == info["probe_seconds"]
    assert estimate_diameter(sample_image, lm) == pytest.approx(info["diameter"])


@needs_bundled
def test_nuclei_too_small_even_upsampled_are_warned(sample_images):
    """The 256x256 sample at 0.25x (nuclei of 3 px, 9 px at the 3x cap): nothing is found,
    and segment says so; at 0.5x (6.5 px) it finds them without a warning."""
    import warnings

    from napari_binseg.unet.inference import NucleiTooSmall

    from ..conftest import DATA, SAMPLE_NAMES

    lm = load_model("nuclei", device="cpu")
    image = sample_images[SAMPLE_NAMES[1]].astype(np.float32)
    sample_labels = tifffile.imread(DATA / f"{SAMPLE_NAMES[1]}_labels.tif")
    with pytest.warns(NucleiTooSmall, match="nuclei of about 3.0 px in 1 of 1 planes"):
        labels = segment(sc.resize(image, (64, 64)), lm)
    assert labels.max() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", NucleiTooSmall)
        half = segment(sc.resize(image, (128, 128)), lm)
    truth = sc.labels_resized(sample_labels, (128, 128))
    assert object_f1(truth, half) > 0.9


@needs_bundled
def test_nuclei_with_too_few_pixels_are_warned_though_upsampling_reaches_the_size(
    sample_images,
):
    """The 256x256 sample at 0.3x (nuclei measured 4.2 px, 12.6 px after 3x: within the
    model's sizes): one nucleus of 36 found, and segment says so (before: silently)."""
    from napari_binseg.unet.inference import NucleiTooSmall

    from ..conftest import DATA, SAMPLE_NAMES

    image = sc.resize(sample_images[SAMPLE_NAMES[1]].astype(np.float32), (77, 77))
    truth = sc.labels_resized(tifffile.imread(DATA / f"{SAMPLE_NAMES[1]}_labels.tif"), (77, 77))
    with pytest.warns(NucleiTooSmall, match="4.2 px in 1 of 1 planes") as caught:
        labels, info = segment(image, load_model("nuclei", device="cpu"), return_info=True)
    assert info["scales"] == [3.0] and 4.2 * 3 > sc.SMALLEST * 19.3
    message = next(str(w.message) for w in caught if w.category is NucleiTooSmall)
    assert "nuclei under 4.3 px have too few pixels" in message
    assert object_f1(truth, labels) < 0.1


@needs_bundled
def test_nuclei_too_small_are_warned_without_upsampling(sample_images, tmp_path):
    """A config that allows no upsampling (max_scale 1): the 3-px nuclei of the 64x64 plane
    (too small to probe) give no object at full size, and the mask's estimate still says why
    (it was dropped for the full-size pass's nothing: no warning, no diameter)."""
    from napari_binseg.unet.inference import NucleiTooSmall

    from ..conftest import SAMPLE_NAMES

    folder = bundled_copy(tmp_path / "m", max_scale=1.0)
    image = sc.resize(sample_images[SAMPLE_NAMES[1]].astype(np.float32), (64, 64))
    with pytest.warns(NucleiTooSmall, match="nuclei of about 3.0 px in 1 of 1 planes"):
        labels, info = segment(image, load_model(folder, device="cpu"), return_info=True)
    assert labels.max() == 0 and info["scales"] == [1.0]
    assert info["diameter"] == pytest.approx(3.0, abs=0.05)


@needs_bundled
def test_large_planes_are_upsampled_within_the_pixel_budget(sample_image, monkeypatch):
    """Nuclei of ~7 px go up 2.75x; a plane that would exceed MAX_UPSAMPLED_PIXELS less."""
    h, w = (s // 4 for s in sample_image.shape)
    tiny = sample_image[: 4 * h, : 4 * w].reshape(h, 4, w, 4).mean(axis=(1, 3))
    lm = load_model("nuclei", device="cpu")
    assert segment(tiny, lm, return_info=True)[1]["scales"][0] > 2.0
    monkeypatch.setattr(sc, "MAX_UPSAMPLED_PIXELS", 4 * tiny.size)
    assert sc.plane_cap(tiny.shape, lm.config["postprocess"]) == 2.0
    assert segment(tiny, lm, return_info=True)[1]["scales"] == [2.0]


def test_a_config_without_max_scale_upsamples_as_the_release_that_made_it(sample_image, tmp_path):
    """Nuclei of ~7 px, bundled weights: its config's 3x cap upsamples them 2.75x; the same
    config without ``max_scale`` (hand-written or foreign, run at 2x by every release before
    the 3x cap) stays at 2x (before: 2.75x, unlike the release that made it)."""
    h, w = (s // 4 for s in sample_image.shape)
    tiny = sample_image[: 4 * h, : 4 * w].reshape(h, 4, w, 4).mean(axis=(1, 3))
    folder = bundled_copy(tmp_path / "no_cap")
    config = json.loads((folder / "config.json").read_text())
    del config["postprocess"]["max_scale"]
    (folder / "config.json").write_text(json.dumps(config))
    assert segment(tiny, "nuclei", return_info=True)[1]["scales"] == [2.75]
    assert segment(tiny, folder, return_info=True)[1]["scales"] == [2.0]


@needs_bundled
def test_large_nuclei_are_not_fragments(big_nuclei):
    """Nuclei ~110 px: the probe finds their size (its foreground agrees: no look) and the
    plane is segmented at 0.25x, the probe's pass being the result."""
    image, truth = big_nuclei
    lm = load_model("nuclei", device="cpu")
    labels, info = segment(image, lm, return_info=True)
    true_d = sc.median_diameter(truth)
    assert info["scales"] == [0.25]
    assert info["diameter"] == pytest.approx(true_d, rel=0.25)
    assert info["looked"] == 0 and info["estimate_seconds"] == info["probe_seconds"]
    assert estimate_diameter(image, lm) == pytest.approx(info["diameter"])
    f1 = object_f1(truth, labels)
    # Unscaled, the nuclei come out in pieces (F1 0.68 with every object kept; the confidence
    # floor drops many of the pieces: 0.84).
    unscaled = segment(image, lm, diameter=None, min_confidence=0)
    assert f1 >= 0.85 and f1 > object_f1(truth, unscaled) + 0.2


@needs_bundled
def test_same_count_at_three_magnifications(sample_image):
    """The same nuclei at 1x, 2x and 4x (~28, ~56, ~110 px) give the same count."""
    crop = sample_image[:256, :256]
    counts = [
        int(segment(np.kron(crop, np.ones((k, k), crop.dtype)), device="cpu").max())
        for k in (1, 2, 4)
    ]
    assert max(counts) - min(counts) <= 0.1 * counts[0], counts


@needs_bundled
def test_synthetic_large_nuclei_counted_and_a_fragmenting_probe_is_caught(monkeypatch):
    """Nuclei of ~170 px: the default count is the truth's, at 0.25x (the probe's pass); a
    probe that saw ~14-px pieces (what a fine-tuned model's probe gave for 202-px nuclei) is
    overruled by the look, which is then the result (0.125x), instead of upsampling."""
    from napari_binseg.synthetic import synthetic_nuclei
    from napari_binseg.unet import passes

    image, truth = synthetic_nuclei((1024, 1024), 20, radius=90, seed=2)
    true_d = sc.median_diameter(truth)
    assert 150 < true_d < 200 and truth.max() == 20
    lm = load_model("nuclei", device="cpu")
    labels, info = segment(image, lm, return_info=True)
    assert info["scales"] == [0.25] and info["looked"] == 0  # whole at 0.25x: no look
    assert info["diameter"] == pytest.approx(true_d, rel=0.1)
    assert abs(int(labels.max()) - 20) <= 2
    assert object_f1(truth, labels) >= 0.9
    assert segment(image, lm, diameter=None).max() > 24  # full size: fragments (27; was 35)

    coarse_pass = passes._coarse_pass

    def fragmenting_probe(x, lm, runner, prob_threshold, resize_by, plane_scale, *a, **kw):
        out = coarse_pass(x, lm, runner, prob_threshold, resize_by, plane_scale, *a, **kw)
        return out[:3] + ((14.0,) if plane_scale == sc.PROBE_SCALE else out[3:4]) + out[4:]

    monkeypatch.setattr(passes, "_coarse_pass", fragmenting_probe)
    labels, info = segment(image, lm, return_info=True)
    assert info["scales"] == [0.125] and info["looked"] == 1
    assert info["diameter"] == pytest.approx(true_d, rel=0.1)
    assert abs(int(labels.max()) - 20) <= 2
    monkeypatch.setattr(passes, "needs_look", lambda *a: False)  # no guard: upsampled
    labels, info = segment(image, lm, return_info=True)
    assert info["scales"] == [1.5] and labels.max() > 30


def test_mask_diameter_of_a_noisy_plane_is_that_of_its_smoothed_mask():
    """The threshold of a smoothed (noisy) plane applied to the smoothed plane, not to the raw
    one (specks: 6.6 px for nuclei of 16)."""
    from napari_binseg.size import estimate_diameter

    from ..core.test_threshold_noise import noisy_nuclei

    image, labels = noisy_nuclei((128, 128), n=4)
    assert sc.mask_diameter(image) == pytest.approx(estimate_diameter(labels > 0), rel=0.15)
