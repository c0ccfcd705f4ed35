"""U-Net core: bundled model quality, tiling, stacks, user models, errors, progress (CPU)."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from napari_binseg.unet import (  # noqa: E402
    inference,
    load_model,
    predict,
    predict_channels,
    segment,
)
from napari_binseg.unet._postprocess import (  # noqa: E402
    grow_seeds,
    probabilities_to_labels,
    remove_small,
)
from napari_binseg.unet.network import MODELS_DIR, build_network, save_model  # noqa: E402

HAS_BUNDLED = (MODELS_DIR / "nuclei" / "model.safetensors").is_file()
needs_bundled = pytest.mark.skipif(not HAS_BUNDLED, reason="bundled weights not present")

SMALL_NET = {
    "name": "UNet",
    "kwargs": {
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 2,
        "channels": [4, 8, 16],
        "strides": [2, 2],
        "num_res_units": 0,
        "norm": "batch",
    },
}


def _object_f1(truth, pred):
    from napari_binseg.evaluation import evaluate

    return float(evaluate(truth, pred, thresholds=[0.5])["f1"].iloc[0])


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A tiny random 2-channel (foreground, centre) U-Net in our folder format."""
    torch.manual_seed(0)
    net = build_network(SMALL_NET).eval()
    # Non-trivial BatchNorm statistics so that eval-mode outputs are not degenerate.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("small_model")
    config = {
        "name": "small",
        "network": SMALL_NET,
        "outputs": ["foreground", "centre"],
        "activation": "sigmoid",
    }
    save_model(net, config, folder)
    return folder, net


# ----------------------------------------------------------------------------- post-processing


def test_grow_seeds_exact():
    seeds = np.zeros((3, 7), np.int32)
    seeds[1, 0] = 1
    seeds[1, 6] = 2
    mask = np.ones((3, 7), bool)
    mask[:, 3] = [False, True, False]  # a one-pixel bridge
    mask[0, 5] = False
    out = grow_seeds(seeds, mask)
    expected = np.array(
        [[1, 1, 1, 0, 2, 0, 2], [1, 1, 1, 1, 2, 2, 2], [1, 1, 1, 0, 2, 2, 2]], np.int32
    )
    # The bridge pixel is 3 steps from seed 1 and 3 from seed 2: either label is right.
    assert out[1, 3] in (1, 2)
    out[1, 3] = 1
    np.testing.assert_array_equal(out, expected)
    assert seeds.sum() == 3  # input untouched


def test_touching_nuclei_are_separated():
    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 < 12**2
    b = (yy - 20) ** 2 + (xx - 40) ** 2 < 12**2
    fg = (a | b).astype(np.float32)
    centre = (
        ((yy - 20) ** 2 + (xx - 20) ** 2 < 5**2) | ((yy - 20) ** 2 + (xx - 40) ** 2 < 5**2)
    ).astype(np.float32)
    labels = probabilities_to_labels(fg, centre)
    assert labels.dtype == np.int32 and labels.max() == 2
    assert labels[20, 20] != labels[20, 40]
    assert np.array_equal(labels > 0, a | b)
    # The split line sits halfway between the centres.
    assert labels[20, 29] == labels[20, 20] and labels[20, 31] == labels[20, 40]


def test_foreground_without_seed_and_small_objects():
    fg = np.zeros((20, 20), np.float32)
    fg[2:8, 2:8] = 0.9  # 36 px, no centre
    fg[15:17, 15:17] = 0.9  # 4 px: removed at min_size 8
    centre = np.zeros_like(fg)
    labels = probabilities_to_labels(fg, centre, min_size=8)
    assert labels.max() == 1 and (labels == 1).sum() == 36
    np.testing.assert_array_equal(
        remove_small(np.array([[1, 1, 2, 3, 3, 3]]), 2), [[1, 1, 0, 2, 2, 2]]
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_percentile_range_matches_numpy(dtype):
    rng = np.random.default_rng(1)
    if dtype is bool:
        x = rng.random((37, 41)) > 0.3
    elif dtype is np.float32:
        x = rng.normal(size=(37, 41)).astype(dtype)
    else:
        x = rng.integers(0, np.iinfo(dtype).max, size=(37, 41), dtype=dtype) // 7
    expected = np.percentile(x.astype(np.float64), [1.0, 99.8])
    np.testing.assert_allclose(inference.percentile_range(x, 1.0, 99.8), expected, rtol=1e-6)


# ----------------------------------------------------------------------------- inference


def test_tiled_equals_full_image(small_model, sample_images):
    folder, _ = small_model
    image = sample_images["nuclei_003cee89357d9fe1"]  # 256 x 256
    full = predict(image, folder, device="cpu", tile_size=256, precision="float32")
    tiled = predict(
        image, folder, device="cpu", tile_size=96, overlap=0.5, batch_size=3, precision="float32"
    )
    assert full.shape == image.shape and full.dtype == np.float32
    diff = np.abs(full - tiled)
    # Tiles see less context near their borders; Gaussian blending keeps the map close.
    assert diff.mean() < 0.01, diff.mean()
    assert np.mean(diff > 0.1) < 0.01


def test_full_image_pass_equals_network(small_model, sample_images):
    folder, net = small_model
    image = sample_images["nuclei_003cee89357d9fe1"][:64, :80]
    probs = predict_channels(image, folder, device="cpu", precision="float32")
    x = inference.normalize_plane(image, {"kind": "percentile", "low": 1.0, "high": 99.8})
    with torch.inference_mode():
        expected = torch.sigmoid(net(torch.from_numpy(x)[None, None]))[0].numpy()
    assert probs.shape == (2, 64, 80)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_array_equal(
        predict(image, folder, device="cpu", precision="float32"), probs[0]
    )


@pytest.mark.parametrize("shape", [(3, 48, 56), (2, 2, 48, 40)])
def test_stack_equals_planes(small_model, shape):
    folder, _ = small_model
    rng = np.random.default_rng(0)
    stack = (rng.random(shape) * 200).astype(np.uint8)
    stack[..., 10:20, 10:20] += 50  # some structure
    prob = predict(stack, folder, device="cpu", precision="float32")
    labels = segment(stack, folder, device="cpu", precision="float32", prob_threshold=0.5)
    assert prob.shape == stack.shape and labels.shape == stack.shape
    assert labels.dtype == np.int32
    offset = 0
    for idx in np.ndindex(*shape[:-2]):
        plane_prob = predict(stack[idx], folder, device="cpu", precision="float32")
        np.testing.assert_allclose(prob[idx], plane_prob, atol=1e-6)
        plane_labels = segment(stack[idx], folder, device="cpu", precision="float32")
        got = labels[idx]
        np.testing.assert_array_equal(got > 0, plane_labels > 0)
        np.testing.assert_array_equal(np.where(got > 0, got - offset, 0), plane_labels)
        offset += int(plane_labels.max())
    assert labels.max() == offset


def test_openvino_backend_equals_torch(small_model, sample_images):
    pytest.importorskip("openvino")
    folder, _ = small_model
    image = sample_images["nuclei_003cee89357d9fe1"]
    kw = dict(device="cpu", precision="float32", tile_size=128, overlap=0.25)
    p_ov = predict_channels(image, folder, backend="openvino", **kw)
    p_torch = predict_channels(image, folder, backend="torch", **kw)
    np.testing.assert_allclose(p_ov, p_torch, atol=1e-4)
    runner = inference._Runner(
        load_model(folder, device="cpu"), precision="float32", progress=None, total=1
    )
    assert runner.backend == "openvino"  # what backend="auto" picks on this CPU


def test_dask_input_equals_numpy(small_model):
    da = pytest.importorskip("dask.array")
    folder, _ = small_model
    rng = np.random.default_rng(3)
    stack = (rng.random((2, 40, 40)) * 1000).astype(np.uint16)
    lazy = da.from_array(stack, chunks=(1, 20, 20))
    np.testing.assert_array_equal(
        predict(lazy, folder, device="cpu", precision="float32"),
        predict(stack, folder, device="cpu", precision="float32"),
    )


def test_progress_reports_and_cancels(small_model):
    folder, _ = small_model
    image = np.random.default_rng(0).random((2, 150, 150)).astype(np.float32)
    calls = []
    predict(
        image,
        folder,
        device="cpu",
        tile_size=64,
        overlap=0.25,
        batch_size=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    dones = [d for d, _ in calls]
    total = calls[-1][1]
    assert dones == sorted(dones) and calls[-1] == (total, total)
    padded, roi, per_plane = inference._plan(
        (150, 150), load_model(folder, device="cpu"), 64, 0.25
    )
    assert roi == (64, 64) and per_plane == inference._n_windows(padded, roi, 0.25) == 9
    assert total == 2 * per_plane
    # MONAI ran exactly the planned windows: the last batch reached the total itself.
    assert calls.count((total, total)) == 2
    assert len(calls) > 4  # several batches per plane

    class Cancelled(Exception):
        pass

    seen = []

    def cancel(done, total):
        seen.append(done)
        raise Cancelled

    with pytest.raises(Cancelled):
        segment(image, folder, device="cpu", tile_size=64, batch_size=2, progress=cancel)
    assert seen == [2]  # stopped after the first batch of tiles


def test_segment_returns_probabilities_of_same_pass(small_model, sample_images):
    folder, _ = small_model
    image = sample_images["nuclei_003cee89357d9fe1"][:96, :96]
    labels, prob = segment(image, folder, device="cpu", return_probabilities=True)
    np.testing.assert_array_equal(prob, predict(image, folder, device="cpu"))
    np.testing.assert_array_equal(labels, segment(image, folder, device="cpu"))


def test_input_not_modified(small_model):
    folder, _ = small_model
    image = np.arange(48 * 48, dtype=np.float32).reshape(48, 48)
    before = image.copy()
    segment(image, folder, device="cpu")
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((0, 5)), "empty"),
        (np.zeros(5), "dimensions"),
        (np.zeros((32, 32, 3), np.uint8), "RGB"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_bad_images(small_model, image, match):
    with pytest.raises(ValueError, match=match):
        predict(image, small_model[0], device="cpu")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tile_size": 4}, "tile_size"),
        ({"overlap": 1.0}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"precision": "half"}, "precision"),
        ({"device": "tpu"}, "device"),
        ({"backend": "tvm"}, "backend"),
    ],
)
def test_bad_options(small_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict(np.zeros((32, 32)), small_model[0], **kwargs)


# ----------------------------------------------------------------------------- rescaling


def test_median_diameter_pools_objects():
    a = np.zeros((30, 30), np.int32)
    a[0:10, 0:10] = 1  # area 100
    a[20:24, 20:24] = 2  # area 16
    b = np.zeros((10, 10), np.int32)
    b[:5, :5] = 7  # area 25; labels need not be consecutive
    assert inference.median_diameter(a) == pytest.approx(2 * np.sqrt(58 / np.pi))
    assert inference.median_diameter([a, b]) == pytest.approx(2 * np.sqrt(25 / np.pi))
    assert inference.median_diameter(np.zeros((4, 4), int)) is None


@pytest.fixture(scope="module")
def sized_model(small_model, tmp_path_factory):
    """``small_model`` with a reference nucleus diameter of 200 pixels (any found is smaller)."""
    folder, net = small_model
    out = tmp_path_factory.mktemp("sized_model")
    config = json.loads((folder / "config.json").read_text())
    config["postprocess"] = {"diameter": 200.0, "max_scale": 2.0, "min_size": 4}
    save_model(net, config, out)
    return out


def test_rescale_factor_rules(sized_model, small_model, monkeypatch):
    lm = load_model(sized_model, device="cpu")  # cached: monkeypatch restores its config
    post = lm.config["postprocess"]
    rr, cc = np.ogrid[:64, :64]
    disk = ((rr - 32) ** 2 + (cc - 32) ** 2 < 25).astype(np.int32)
    found = inference.median_diameter(disk)
    # Reference / found, rounded to a quarter, used from 1.25 on, capped at max_scale 2.
    for ratio, expected in ((1.1, 1.0), (1.2, 1.25), (1.3, 1.25), (1.75, 1.75), (10.0, 2.0)):
        monkeypatch.setitem(post, "diameter", ratio * found)
        assert inference.rescale_factor("auto", lm, disk) == expected, ratio
    monkeypatch.setitem(post, "diameter", 20.0)
    assert inference.rescale_factor(None, lm, disk) == 1.0
    assert inference.rescale_factor(10, lm) == 2.0
    assert inference.rescale_factor(40, lm) == 0.5  # a given diameter may shrink the image
    assert inference.rescale_factor(1, lm) == 4.0  # clipped
    assert inference.rescale_factor("auto", lm, np.zeros((8, 8), int)) == 1.0  # nothing found
    plain = load_model(small_model[0], device="cpu")  # no reference diameter
    assert inference.rescale_factor("auto", plain, disk) == 1.0
    with pytest.raises(ValueError, match="no reference nucleus diameter"):
        segment(disk.astype(np.uint8), plain, device="cpu", diameter=12)
    for bad in (0, -3, "big", True, float("nan")):
        with pytest.raises(ValueError, match="diameter must be"):
            segment(disk.astype(np.uint8), sized_model, device="cpu", diameter=bad)


def test_auto_diameter_is_the_fixed_rescale_it_chose(sized_model, sample_images):
    image = sample_images["nuclei_003cee89357d9fe1"][:96, :112]
    lm = load_model(sized_model, device="cpu")
    kw = dict(device="cpu", precision="float32", tile_size=64, overlap=0.25)
    native = segment(image, lm, diameter=None, **kw)
    assert native.max() > 0
    assert inference.rescale_factor("auto", lm, native) == 2.0  # every object is under 200 px
    calls = []
    auto, prob = segment(
        image, lm, return_probabilities=True, progress=lambda d, t: calls.append((d, t)), **kw
    )
    fixed = segment(image, lm, diameter=100.0, **kw)  # 200 / 100: the same 2x in one pass
    np.testing.assert_array_equal(auto, fixed)
    assert auto.shape == image.shape and auto.dtype == np.int32
    assert np.array_equal(np.unique(auto), np.arange(auto.max() + 1))  # consecutive
    assert not np.array_equal(auto, native)
    # The probability map is the rescaled pass's, brought back to the image's size.
    channels = predict_channels(inference._resize(image, (192, 224)), lm, **kw)
    assert prob.shape == image.shape
    assert np.abs(prob - inference._resize(channels[0], image.shape)).mean() < 0.02
    # Progress counts the tiles of both passes, at 96x112 and at 192x224.
    tiles = [inference._plan(shape, lm, 64, 0.25)[2] for shape in ((96, 112), (192, 224))]
    assert tiles[1] > tiles[0] > 1
    assert calls[-1] == (sum(tiles),) * 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert (tiles[0], tiles[0]) in calls  # the first pass ended before the second was known


def test_labels_resized_keeps_objects_and_renumbers():
    big = np.zeros((8, 8), np.int32)
    big[0:4, 0:4] = 3
    big[4:8, 4:8] = 5
    big[0, 7] = 9  # one pixel: gone at half size
    small = inference._labels_resized(big, (4, 4))
    expected = np.zeros((4, 4), np.int32)
    expected[0:2, 0:2] = 1
    expected[2:4, 2:4] = 2
    np.testing.assert_array_equal(small, expected)


# ----------------------------------------------------------------------------- user models


def _tiny_net(seed=0, **kw):
    torch.manual_seed(seed)
    spec = json.loads(json.dumps(SMALL_NET))
    spec["kwargs"].update(kw)
    return spec, build_network(spec).eval()


def test_torchscript_and_state_dict_round_trip(tmp_path, small_model):
    spec, net = _tiny_net(1, out_channels=1)
    image = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    # TorchScript file
    ts = tmp_path / "net.ts"
    torch.jit.trace(net, torch.zeros(1, 1, 32, 32)).save(str(ts))
    lm = load_model(ts, device="cpu")
    assert lm.spatial_dims == 2 and lm.out_channels == 1 and lm.config["kind"] == "torchscript"
    p_ts = predict(image, ts, device="cpu", precision="float32", backend="torch")
    # state dict (.pt, weights_only) + JSON sidecar
    pt = tmp_path / "weights.pt"
    torch.save(net.state_dict(), pt)
    (tmp_path / "weights.json").write_text(json.dumps({"network": spec}))
    p_pt = predict(image, pt, device="cpu", precision="float32", backend="torch")
    # safetensors + config.json in another folder
    from safetensors.torch import save_file

    sub = tmp_path / "st"
    sub.mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(sub / "w.safetensors"))
    (sub / "config.json").write_text(json.dumps(spec))  # the bare network dict works too
    p_st = predict(
        image, sub / "w.safetensors", device="cpu", precision="float32", backend="torch"
    )
    # MONAI bundle folder
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    network_def = {"_target_": "monai.networks.nets.UNet", **spec["kwargs"]}
    (bundle / "configs" / "inference.json").write_text(
        json.dumps({"network_def": network_def, "postprocessing": {"sigmoid": True}})
    )
    torch.save(net.state_dict(), bundle / "models" / "model.pt")
    p_bundle = predict(image, bundle, device="cpu", precision="float32", backend="torch")
    with torch.inference_mode():
        x = inference.normalize_plane(image, {"kind": "percentile"})
        expected = torch.sigmoid(net(torch.from_numpy(x)[None, None]))[0, 0].numpy()
    for p in (p_ts, p_pt, p_st, p_bundle):
        np.testing.assert_allclose(p, expected, atol=1e-5)
    assert len(segment(image, pt, device="cpu").shape) == 2
    assert load_model(pt, device="cpu") is load_model(pt, device="cpu")  # cached


def test_user_3d_model_on_volume(tmp_path):
    spec, net = _tiny_net(2, spatial_dims=3, out_channels=1)
    torch.save(net.state_dict(), tmp_path / "w3d.pt")
    (tmp_path / "w3d.json").write_text(json.dumps({"network": spec}))
    volume = (np.random.default_rng(0).random((10, 20, 24)) * 255).astype(np.uint8)
    prob = predict(volume, tmp_path / "w3d.pt", device="cpu", precision="float32", backend="torch")
    x = inference.normalize_plane(volume, {"kind": "percentile"})
    with torch.inference_mode():
        xt = torch.nn.functional.pad(
            torch.from_numpy(x)[None, None], (0, 0, 0, 0, 0, 2), mode="reflect"
        )
        expected = torch.sigmoid(net(xt))[0, 0, :10].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    with pytest.raises(ValueError, match="3D"):
        predict(volume[0], tmp_path / "w3d.pt", device="cpu")


def test_corrupt_and_mismatched_models(tmp_path):
    spec, net = _tiny_net(0)
    # corrupt safetensors
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    (tmp_path / "bad.json").write_text(json.dumps({"network": spec}))
    with pytest.raises(ValueError, match="safetensors"):
        load_model(bad, device="cpu")
    # corrupt .pt
    (tmp_path / "bad.pt").write_bytes(b"not a zip")
    (tmp_path / "bad.json").write_text(json.dumps({"network": spec}))
    with pytest.raises(ValueError, match="state dict"):
        load_model(tmp_path / "bad.pt", device="cpu")
    # weights that do not fit the config
    torch.save(net.state_dict(), tmp_path / "w.pt")
    other = json.loads(json.dumps(spec))
    other["kwargs"]["channels"] = [8, 16, 32]
    (tmp_path / "w.json").write_text(json.dumps({"network": other}))
    with pytest.raises(ValueError, match="do not fit"):
        load_model(tmp_path / "w.pt", device="cpu")
    # three input channels
    rgb = json.loads(json.dumps(spec))
    rgb["kwargs"]["in_channels"] = 3
    (tmp_path / "w.json").write_text(json.dumps({"network": rgb}))
    with pytest.raises(ValueError, match="input channels"):
        load_model(tmp_path / "w.pt", device="cpu")
    # a reference nucleus size that is not one
    for post, match in (({"diameter": "20"}, "diameter"), ({"max_scale": 0.5}, "max_scale")):
        (tmp_path / "w.json").write_text(json.dumps({"network": spec, "postprocess": post}))
        with pytest.raises(ValueError, match=f"postprocess.{match} must be a number"):
            load_model(tmp_path / "w.pt", device="cpu")
    # unknown class, expressions, missing config, missing path, bad JSON
    (tmp_path / "w.json").write_text(json.dumps({"network": {"name": "os.system", "kwargs": {}}}))
    with pytest.raises(ValueError, match="not a known MONAI network"):
        load_model(tmp_path / "w.pt", device="cpu")
    expr = json.loads(json.dumps(spec))
    expr["kwargs"]["channels"] = "$__import__('os').getcwd()"
    (tmp_path / "w.json").write_text(json.dumps({"network": expr}))
    with pytest.raises(ValueError, match="not evaluated"):
        load_model(tmp_path / "w.pt", device="cpu")
    (tmp_path / "w.json").write_text("{not json")
    with pytest.raises(ValueError, match="config"):
        load_model(tmp_path / "w.pt", device="cpu")
    (tmp_path / "w.json").unlink()
    with pytest.raises(ValueError, match="JSON config"):
        load_model(tmp_path / "w.pt", device="cpu")
    with pytest.raises(ValueError, match="neither a bundled model"):
        load_model(tmp_path / "missing.pt", device="cpu")
    # a pickled Python object is refused by weights_only loading
    torch.save({"obj": Exception("x")}, tmp_path / "pickle.pt")
    (tmp_path / "pickle.json").write_text(json.dumps({"network": spec}))
    with pytest.raises(ValueError, match="weights_only"):
        load_model(tmp_path / "pickle.pt", device="cpu")


def test_bundle_expressions_and_wrong_torchscript(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    torch.save({"w": torch.zeros(1)}, bundle / "models" / "model.pt")
    (bundle / "configs" / "inference.yaml").write_text(
        "network_def:\n  _target_: UNet\n  spatial_dims: '@dims'\n  in_channels: 1\n"
    )
    with pytest.raises(ValueError, match="not evaluated"):
        load_model(bundle, device="cpu")
    (bundle / "configs" / "inference.yaml").write_text(
        "network_def:\n  _target_: '$exec(\"1\")'\n"
    )
    with pytest.raises(ValueError, match="known MONAI network"):
        load_model(bundle, device="cpu")
    # TorchScript taking three channels
    _, net = _tiny_net(0, in_channels=3)
    ts = tmp_path / "rgb.ts"
    torch.jit.trace(net, torch.zeros(1, 3, 32, 32)).save(str(ts))
    with pytest.raises(ValueError, match="single-channel"):
        load_model(ts, device="cpu")


# ----------------------------------------------------------------------------- bundled model


@needs_bundled
def test_bundled_model_segments_sample(sample_image, sample_labels):
    lm = load_model("nuclei", device="cpu")
    assert lm.name == "nuclei" and len(lm.sha256) == 64
    assert lm.spatial_dims == 2 and lm.outputs == ["foreground", "centre"]
    labels = segment(sample_image, "nuclei", device="cpu")
    assert labels.shape == sample_image.shape and labels.dtype == np.int32
    f1 = _object_f1(sample_labels, labels)
    assert f1 >= 0.85, f1
    # Otsu + connected components on the same image, the baseline the model must beat.
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    otsu = ndimage.label(sample_image > threshold_otsu(sample_image))[0]
    assert f1 > _object_f1(sample_labels, otsu)


@needs_bundled
def test_bundled_model_upsamples_small_nuclei(sample_image, sample_labels):
    """At half the pixel size (nuclei ~14 px) the automatic rescale beats the native pass."""
    h, w = (s // 2 for s in sample_image.shape)
    small = sample_image[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    truth = sample_labels[: 2 * h : 2, : 2 * w : 2]
    lm = load_model("nuclei", device="cpu")
    native = segment(small, lm, diameter=None)
    assert inference.rescale_factor("auto", lm, native) > 1
    f1_auto = _object_f1(truth, segment(small, lm))
    f1_native = _object_f1(truth, native)
    assert f1_auto >= 0.93 and f1_auto > f1_native + 0.01, (f1_auto, f1_native)
    # The full-size sample (nuclei ~28 px) is left at its pixel size.
    assert inference.rescale_factor("auto", lm, segment(sample_image, lm, diameter=None)) == 1


@needs_bundled
def test_bundled_model_tiled_equals_full(sample_image, sample_labels):
    full = segment(sample_image, device="cpu", tile_size=768)
    tiled = segment(sample_image, device="cpu", tile_size=256, overlap=0.25)
    assert _object_f1(full, tiled) > 0.97
    assert abs(_object_f1(sample_labels, full) - _object_f1(sample_labels, tiled)) < 0.02


def test_import_does_not_load_torch():
    code = (
        "import sys, napari_binseg, napari_binseg.unet as u\n"
        "napari_binseg.predict; napari_binseg.segment; napari_binseg.load_model; u.predict\n"
        "import napari_binseg.unet.training, napari_binseg.unet.network\n"
        "bad = [m for m in ('torch', 'monai', 'numba', 'openvino') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

