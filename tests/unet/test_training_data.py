"""napari_binseg.unet.training.data: annotated planes and their checks, reading pairs,
foreground/centre targets, upsampling like segment(diameter="auto"), the crop sampler."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.optimize import minimize_scalar

import napari_binseg as nb
from napari_binseg.evaluation import evaluate
from napari_binseg.unet import inference
from napari_binseg.unet._postprocess import probabilities_to_labels
from napari_binseg.unet.training import AUGMENTATIONS, annotated_planes, read_pairs
from napari_binseg.unet.training.data import (
    Sampler,
    at_segment_scale,
    make_targets,
    segment_scale,
    split_planes,
    upsample_to,
)


def test_targets_separate_touching_nuclei():
    labels = np.zeros((20, 30), np.uint16)
    labels[5:15, 3:15] = 1
    labels[5:15, 15:27] = 2  # touching along column 14/15
    fg, centre = make_targets(labels)
    assert fg.dtype == np.uint8 and np.array_equal(fg, labels > 0)
    assert not centre[:, 14:16].any()  # the shared border is never a centre
    seeds = probabilities_to_labels(fg.astype(np.float32), centre.astype(np.float32), min_size=1)
    assert seeds.max() == 2 and np.array_equal(seeds > 0, labels > 0)
    assert not (centre.astype(bool) & ~fg.astype(bool)).any()
    for lab in (1, 2):
        assert centre[labels == lab].any()
    assert float(evaluate(labels, seeds, thresholds=[0.5])["f1"].iloc[0]) == 1.0


def test_upsamples_small_nuclei_like_segment():
    image, labels = nb.synthetic_nuclei((64, 80), n=6, radius=4.0, seed=1)
    found = inference.median_diameter(labels)
    assert 6 < found < 10
    # Nuclei 1.5x smaller than the reference: 1.5x upsampled, every nucleus kept.
    post = {"diameter": 1.5 * found, "max_scale": 3.0}
    big_image, big_labels = upsample_to(image.astype(np.float32), labels, post)
    assert big_image.shape == big_labels.shape == (96, 120)
    assert big_labels.max() == labels.max() == len(np.unique(labels)) - 1
    assert inference.median_diameter(big_labels) == pytest.approx(1.5 * found, rel=0.1)
    np.testing.assert_allclose(big_image.mean(), image.mean(), rtol=0.02)
    # Within 12% of the reference (rounds to 1x): untouched, the same arrays.
    same_image, same_labels = upsample_to(image, labels, post | {"diameter": 1.1 * found})
    assert same_image is image and same_labels is labels


def test_upsampling_for_training_follows_the_models_cap_and_the_pixel_budget(monkeypatch):
    """Nuclei 3x under the reference go up as segment() would for that model: at most its
    max_scale (2x for a config without one), within MAX_UPSAMPLED_PIXELS (before: 3x
    whatever the model's cap or the plane's size)."""
    from napari_binseg.unet import scale

    image, labels = nb.synthetic_nuclei((64, 80), n=6, radius=4.0, seed=1)
    image = image.astype(np.float32)
    reference = 3 * inference.median_diameter(labels)
    for post, shape in (
        ({"diameter": reference, "max_scale": 3.0}, (192, 240)),
        ({"diameter": reference, "max_scale": 1.5}, (96, 120)),
        ({"diameter": reference}, (128, 160)),
    ):
        big_image, big_labels = upsample_to(image, labels, post)
        assert big_image.shape == big_labels.shape == shape
    monkeypatch.setattr(scale, "MAX_UPSAMPLED_PIXELS", 4 * image.size)
    big_image, _ = upsample_to(image, labels, {"diameter": reference, "max_scale": 3.0})
    assert big_image.shape == (128, 160)


@pytest.mark.parametrize(
    "diameter, shape, post, expected",
    [
        (100.0, (1024, 1280), {"diameter": 19.3}, 0.25),  # 63x nuclei, the bundled model
        (60.0, (1024, 1280), {"diameter": 19.3}, 0.5),
        (250.0, (1024, 1280), {"diameter": 19.3}, 0.125),  # over COARSE_FROM x reference
        (250.0, (200, 200), {"diameter": 19.3}, 0.25),  # no room for the 0.125x look
        (100.0, (100, 100), {"diameter": 19.3}, 1.0),  # too small to probe: only upsampled
        (10.0, (256, 256), {"diameter": 19.3}, 2.0),
        (5.0, (256, 256), {"diameter": 19.3, "max_scale": 3.0}, 3.0),
        (5.0, (256, 256), {"diameter": 19.3}, 2.0),  # a config without a cap: the old 2x
        (5.0, (4096, 4096), {"diameter": 19.3, "max_scale": 3.0}, 2.0),  # the pixel budget
        (10.0, (256, 256), {"diameter": 19.3, "max_scale": 1.5}, 1.5),
        (14.0, (64, 64), {"diameter": 19.3}, 1.5),
        (40.0, (1024, 1280), {"diameter": 19.3}, 1.0),
        (40.0, (1024, 1280), {"diameter": 19.3, "native_max": 1.5}, 0.5),  # the model's rule
        (100.0, (1024, 1280), {"diameter": None}, 1.0),  # no reference: no resize
        (None, (1024, 1280), {"diameter": 19.3}, 1.0),
    ],
)
def test_segment_scale_is_the_auto_rule_at_the_true_size(diameter, shape, post, expected):
    assert segment_scale(diameter, shape, post, 16) == expected


def test_at_segment_scale_resizes_a_plane_and_its_labels_together():
    image, labels = nb.synthetic_nuclei((128, 160), radius=12, seed=0)
    image = image.astype(np.float32)
    found = inference.median_diameter(labels)
    # Nuclei 4x the reference: 0.5x brings them nearer DOWN_TARGET (1.5x) than 0.25x.
    small, small_labels, scale = at_segment_scale(image, labels, {"diameter": found / 4}, 2)
    assert scale == 0.5 and small.shape == small_labels.shape == (64, 80)
    assert small_labels.dtype == np.int32 and small_labels.max() == labels.max()
    assert inference.median_diameter(small_labels) == pytest.approx(found / 2, rel=0.1)
    np.testing.assert_allclose(small.mean(), image.mean(), rtol=0.02)
    same = at_segment_scale(image, labels, {"diameter": found}, 2)
    assert same[0] is image and same[1] is labels and same[2] == 1.0


def test_split_is_seeded_and_keeps_one_of_each():
    assert split_planes(10, 0.2, 0) == split_planes(10, 0.2, 0)
    train, val = split_planes(10, 0.2, 0)
    assert len(val) == 2 and sorted(train + val) == list(range(10))
    assert split_planes(2, 0.1, 0)[1] != []  # at least one validation plane
    assert split_planes(1, 0.5, 0) == ([0], [])  # a single plane only trains
    assert split_planes(5, 0.0, 0) == ([0, 1, 2, 3, 4], [])


def test_sampler_crops_are_seeded_and_augment_only_as_asked():
    image = np.random.default_rng(0).random((40, 50), dtype=np.float32)
    labels = np.zeros((40, 50), np.int32)
    labels[10:20, 10:20] = 1
    targets = make_targets(labels)
    a = Sampler([image], [targets], crop=32, seed=3).batch(2)
    b = Sampler([image], [targets], crop=32, seed=3).batch(2)
    assert a[0].shape == (2, 1, 32, 32) and a[1].shape == (2, 2, 32, 32)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    # No augmentation: a crop is a plain window of the image and of its targets.
    x, y = Sampler([image], [targets], crop=32, seed=0, augment=()).batch(1)
    windows = np.lib.stride_tricks.sliding_window_view(image, (32, 32)).reshape(-1, 32, 32)
    assert any(np.array_equal(x[0, 0].numpy(), w) for w in windows)
    assert set(np.unique(y.numpy())) <= {0.0, 1.0}
    assert set(AUGMENTATIONS) == {
        "scale",
        "rotations",
        "flips",
        "blur",
        "intensity",
        "gamma",
        "noise",
    }


def test_blur_augmentation_blurs_the_image_only():
    rng = np.random.default_rng(1)
    image = ndi.zoom(rng.random((8, 8)), 4, order=1).astype(np.float32)  # 32 x 32
    labels = np.zeros((32, 32), np.int32)
    labels[8:20, 6:18] = 1
    targets = make_targets(labels)
    sampler = Sampler([image], [targets], crop=32, seed=0, augment=("blur",))
    sigmas = []
    for _ in range(60):
        x, y = sampler.batch(1)
        x = x[0, 0].numpy()
        np.testing.assert_array_equal(y[0].numpy(), targets)  # targets never blurred
        if np.array_equal(x, image):
            continue
        fit = minimize_scalar(
            lambda s, x=x: np.abs(ndi.gaussian_filter(image, s) - x).max(),
            bounds=(0.3, 4.0),
            method="bounded",
        )
        assert fit.fun < 1e-4  # a Gaussian blur of the crop, same in y and x
        sigmas.append(fit.x)
    assert 10 <= len(sigmas) <= 35  # a third of 60 crops
    assert 0.5 - 1e-3 <= min(sigmas) and max(sigmas) <= 3.5 + 1e-3


def test_training_pairs_are_checked():
    image = np.zeros((2, 32, 32), np.uint8)
    labels = np.zeros((2, 32, 32), np.uint16)
    labels[1, 4:9, 4:9] = 7
    planes = annotated_planes(image, labels)  # only the painted plane counts
    assert len(planes) == 1 and planes[0][2] == "pair, plane 1"
    np.testing.assert_array_equal(planes[0][1], labels[1])
    cases = [
        ((image, labels[..., :16]), r"image shape \(2, 32, 32\) and labels shape \(2, 32, 16\)"),
        ((image, np.zeros_like(labels)), "pair: the labels are empty; paint some nuclei"),
        ((image, labels.astype(np.float32)), "labels are float32 .* must be integers"),
        ((np.zeros((32, 32, 3), np.uint8), labels[1]), r"RGB\(A\) \(shape \(32, 32, 3\)\)"),
        (([image, image], [labels, np.zeros_like(labels)]), "pair 1: the labels are empty"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            annotated_planes(*args)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_naming_the_plane(bad):
    image = np.ones((2, 32, 32), np.float32)
    labels = np.zeros((2, 32, 32), np.uint16)
    labels[:, 4:9, 4:9] = 1
    image[1, 0, 0] = bad
    before = image.copy()
    with pytest.raises(ValueError, match=r"cells, plane 1: the image holds 1 NaN or infinite"):
        annotated_planes(image, labels, name="cells")
    np.testing.assert_array_equal(image, before)
    # A NaN in a plane without labels is never trained on: accepted.
    labels[1] = 0
    assert len(annotated_planes(image, labels)) == 1


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (8, 64)])
def test_tiny_planes_are_refused(shape):
    with pytest.raises(ValueError, match=r"pair: the image is \d+ x \d+ pixels; .* 16 x 16"):
        annotated_planes(np.zeros(shape, np.uint8), np.ones(shape, np.uint16))


def test_read_pairs_names_an_unreadable_file(tmp_path):
    for name in ("a", "b"):
        image, labels = nb.synthetic_nuclei((32, 32), radius=4, seed=0)
        nb.imwrite(tmp_path / "img" / f"{name}.tif", image)
        nb.imwrite(tmp_path / "lab" / f"{name}_labels.tif", labels, labels=True)
    images, labels = read_pairs(tmp_path / "img", tmp_path / "lab")
    assert len(images) == len(labels) == 2 and images[0].shape == (32, 32)
    data = (tmp_path / "img" / "b.tif").read_bytes()
    (tmp_path / "img" / "b.tif").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match=r"image b\.tif: cannot read it"):
        read_pairs(tmp_path / "img", tmp_path / "lab")


def test_label_values_negative_refused_huge_relabelled():
    image = np.zeros((32, 32), np.uint8)
    labels = np.zeros((32, 32), np.int64)
    labels[2:6, 2:6] = -3
    with pytest.raises(ValueError, match="pair: labels must be >= 0, got -3"):
        annotated_planes(image, labels)
    labels[2:6, 2:6] = 10**12  # sparse huge ids: relabelled, same objects
    labels[10:15, 10:15] = 7
    ((_, plane, _),) = annotated_planes(image, labels)
    assert plane.dtype == np.int32 and sorted(np.unique(plane)) == [0, 1, 2]
    np.testing.assert_array_equal(plane > 0, labels > 0)
    assert plane[3, 3] == 2 and plane[12, 12] == 1
    np.testing.assert_array_equal(make_targets(plane), make_targets(labels.clip(0, 8) * 1))
