"""Model loading: user models of every format, hostile and inconsistent configs (CPU)."""

import json
import time

import numpy as np
import pytest
import torch

from napari_binseg.unet import inference, load_model, predict, segment
from napari_binseg.unet.network import MODELS_DIR

from .conftest import tiny_net as _tiny_net


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
    labels = segment(image, pt, device="cpu", precision="float32", backend="torch")
    np.testing.assert_array_equal(labels, segment(image, sub / "w.safetensors", device="cpu"))
    assert labels.shape == image.shape and labels.max() > 0
    assert not labels[p_pt <= 0.5].any()  # objects lie in the foreground
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
    # The default diameter ("auto") resizes nothing with a 3D model, as None.
    labels = segment(volume, tmp_path / "w3d.pt", device="cpu")
    np.testing.assert_array_equal(
        labels, segment(volume, tmp_path / "w3d.pt", device="cpu", diameter=None)
    )


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
    # a reference nucleus size, cap or confidence floor out of range
    for post, match in (
        ({"diameter": "20"}, "diameter"),
        ({"max_scale": 0.5}, "max_scale"),
        ({"max_scale": 50.0}, "max_scale"),  # a 1024 x 1024 plane would grow 2500x
        ({"max_scale": "3"}, "max_scale"),
        ({"min_confidence": 1.0}, "min_confidence"),  # would remove every object
        ({"min_confidence": "0.85"}, "min_confidence"),
    ):
        (tmp_path / "w.json").write_text(json.dumps({"network": spec, "postprocess": post}))
        with pytest.raises(ValueError, match=f"w.pt.*w.json.*postprocess.{match} must be a num"):
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


def _bundled_copy(tmp_path, change):
    """The bundled model's weights with its config changed by ``change(config)``."""
    import shutil

    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    shutil.copy(MODELS_DIR / "nuclei" / "model.safetensors", folder / "model.safetensors")
    config = json.loads((MODELS_DIR / "nuclei" / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_pretrained_networks_are_refused(tmp_path):
    """Issue 15: a config asking for pretrained weights would download them."""
    spec, net = _tiny_net(0)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    spec["kwargs"]["pretrained"] = True
    (tmp_path / "w.json").write_text(json.dumps({"network": spec}))
    with pytest.raises(ValueError, match="offline only"):
        load_model(tmp_path / "w.pt", device="cpu")
    flexible = {
        "name": "FlexibleUNet",
        "kwargs": {
            "in_channels": 1,
            "out_channels": 2,
            "backbone": "efficientnet-b0",
            "spatial_dims": 2,
            "pretrained": True,
        },
    }
    (tmp_path / "w.json").write_text(json.dumps({"network": flexible}))
    with pytest.raises(ValueError, match="pretrained"):
        load_model(tmp_path / "w.pt", device="cpu")


def test_absurd_channels_are_refused_before_allocating(tmp_path):
    """Issue 15: channels of 65536 allocated ~1 GB before the weights were rejected."""
    folder = _bundled_copy(
        tmp_path,
        lambda c: c["network"]["kwargs"].update(channels=[4096, 8192, 16384, 32768, 65536]),
    )
    t = time.perf_counter()
    with pytest.raises(ValueError, match="do not fit.*parameters"):
        load_model(folder, device="cpu")
    assert time.perf_counter() - t < 5  # the network was never built for real


@pytest.mark.parametrize(
    "section, values, match",
    [
        ("postprocess", {"seed_threshold": 2}, "postprocess.seed_threshold"),
        ("postprocess", {"prob_threshold": "high"}, "postprocess.prob_threshold"),
        ("postprocess", {"min_size": -1}, "postprocess.min_size"),
        ("postprocess", {"diameter": 0}, "postprocess.diameter"),
        ("normalization", {"low": 99, "high": 1}, "normalization low and high"),
        ("normalization", {"kind": "zscore"}, "normalization kind"),
    ],
)
def test_bad_postprocess_and_normalization_fail_at_load(tmp_path, section, values, match):
    folder = _bundled_copy(tmp_path, lambda c: c[section].update(values))
    with pytest.raises(ValueError, match=match):
        load_model(folder, device="cpu")


def test_config_sections_must_be_objects(tmp_path):
    folder = _bundled_copy(tmp_path, lambda c: c.update(postprocess=[0.5]))
    with pytest.raises(ValueError, match="postprocess must be a JSON object"):
        load_model(folder, device="cpu")


@pytest.mark.parametrize(
    ("post", "expected"),
    [({"prob_threshold": 0.9}, 0.9), ({}, 0.5), ({"prob_threshold": 2}, 0.5), (None, 0.5)],
)
def test_config_threshold_is_the_threshold_the_loader_runs(tmp_path, post, expected, monkeypatch):
    """The Predict widget's "one step up from model" (no torch): the config's threshold, else
    the loader's own default (DEFAULT_POSTPROCESS, not a second 0.5 in the widget)."""
    from napari_binseg.unet import network

    folder = tmp_path / "m"
    folder.mkdir()
    config = {"network": {"name": "UNet"}} | ({} if post is None else {"postprocess": post})
    (folder / "config.json").write_text(json.dumps(config))
    assert network.config_threshold(folder) == expected
    assert network.config_threshold(tmp_path / "missing") == 0.5
    monkeypatch.setitem(network.DEFAULT_POSTPROCESS, "prob_threshold", 0.4)
    assert network.config_threshold(folder) == (0.9 if expected == 0.9 else 0.4)


def test_model_config_is_the_config_load_model_runs(tmp_path, sized_model):
    """``model_config`` finds a model folder's config.json, a weights file's ``<stem>.json``
    (else the config.json next to it, else none) and a MONAI bundle's configs, and
    ``load_model`` runs each model with that config."""
    import shutil

    from napari_binseg.unet.network import model_config
    from napari_binseg.unet.training import export_bundle

    from .conftest import SMALL_NET

    post = {"diameter": 200.0, "max_scale": 2.0, "min_size": 4}
    folder = model_config(sized_model)
    assert folder["name"] == "small" and folder["network"] == SMALL_NET
    assert folder["postprocess"] == post and folder["outputs"] == ["foreground", "centre"]
    weights = tmp_path / "w.safetensors"
    shutil.copy(sized_model / "model.safetensors", weights)
    assert model_config(weights) == {}
    (tmp_path / "config.json").write_text(json.dumps({"postprocess": {"min_size": 9}}))
    assert model_config(weights) == {"postprocess": {"min_size": 9}}
    shutil.copy(sized_model / "config.json", tmp_path / "w.json")
    assert model_config(weights) == folder
    bundle = export_bundle(sized_model, tmp_path / "bundle")
    assert model_config(bundle) == {
        "network": SMALL_NET,
        "outputs": ["foreground", "centre"],
        "postprocess": post,
        "activation": "sigmoid",
    }
    defaults = {"prob_threshold": 0.5, "seed_threshold": 0.5}
    for model, kind in (
        (sized_model, "safetensors"),
        (weights, "state_dict"),
        (bundle, "monai_bundle"),
    ):
        lm = load_model(model, device="cpu")
        assert lm.config["kind"] == kind and lm.config["postprocess"] == {**defaults, **post}
        assert lm.config["network"] == SMALL_NET and lm.outputs == ["foreground", "centre"]
