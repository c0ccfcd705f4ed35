"""Shared fixtures of the U-Net tests: tiny random networks in the package's model format."""

import json

import numpy as np
import pytest

from napari_binseg.unet.network import MODELS_DIR, build_network, save_model

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

# The smallest trainable U-Net: the training tests fit it on CPU in seconds.
TINY = {
    "name": "UNet",
    "kwargs": {
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 2,
        "channels": [8, 16],
        "strides": [2],
        "num_res_units": 0,
    },
}


def object_f1(truth, pred):
    """Pooled object F1 at IoU 0.5."""
    from napari_binseg.evaluation import evaluate

    return float(evaluate(truth, pred, thresholds=[0.5])["f1"].iloc[0])


def tiny_net(seed=0, **kw):
    """(network dict, random MONAI UNet in eval mode) of ``SMALL_NET`` with ``kw`` changed."""
    import torch

    torch.manual_seed(seed)
    spec = json.loads(json.dumps(SMALL_NET))
    spec["kwargs"].update(kw)
    return spec, build_network(spec).eval()


@pytest.fixture(scope="package")
def small_model(tmp_path_factory):
    """A tiny random 2-channel (foreground, centre) U-Net in our folder format."""
    import torch

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


@pytest.fixture(scope="package")
def sized_model(small_model, tmp_path_factory):
    """``small_model`` with a reference nucleus diameter of 200 pixels (any found is smaller)."""
    folder, net = small_model
    out = tmp_path_factory.mktemp("sized_model")
    config = json.loads((folder / "config.json").read_text())
    config["postprocess"] = {"diameter": 200.0, "max_scale": 2.0, "min_size": 4}
    save_model(net, config, out)
    return out


@pytest.fixture(scope="package")
def big_nuclei(sample_image, sample_labels):
    """A 256x256 crop of the packaged sample (nuclei ~28 px) and its labels, both 4x larger
    (nuclei ~110 px, the size of 63x images)."""
    crop, truth = sample_image[:256, :256], sample_labels[:256, :256]
    return np.kron(crop, np.ones((4, 4), crop.dtype)), np.kron(truth, np.ones((4, 4), truth.dtype))


def bundled_copy(folder, **postprocess):
    """A copy of the bundled model folder at ``folder`` with ``postprocess`` keys of its
    config.json changed; skips the test where the bundled weights are absent."""
    import shutil

    if not HAS_BUNDLED:
        pytest.skip("bundled weights not present")
    shutil.copytree(MODELS_DIR / "nuclei", folder)
    config = json.loads((folder / "config.json").read_text())
    config["postprocess"].update(postprocess)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="package")
def strict_model(tmp_path_factory):
    """The bundled model with ``prob_threshold`` 0.9 in its config.json (0.5 in the bundled)."""
    return bundled_copy(tmp_path_factory.mktemp("strict") / "strict", prob_threshold=0.9)
