"""The U-Net predict widget in a real viewer (small image, CPU)."""

import threading

import numpy as np
import pytest
from _widget_helpers import errors, output_layers, run_and_wait  # noqa: F401

from napari_binseg._widgets.prediction import PredictWidget

SMALL = "nuclei_003cee89357d9fe1"


def test_all_widgets_dock_from_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    names = {"Threshold": "ThresholdWidget", "U-Net predict": "PredictWidget",
             "Count cells": "CountWidget", "Evaluate segmentation": "EvaluateWidget"}
    for display_name, cls in names.items():
        _, widget = viewer.window.add_plugin_dock_widget("napari-binseg", display_name)
        assert type(widget).__name__ == cls


def test_model_choice_needs_a_path(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32))
    widget = PredictWidget(viewer)
    widget.model_source.value = "file"
    assert not widget.model_path.native.isHidden()
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "model" in errors[0]
    assert len(viewer.layers) == n_layers


@pytest.fixture
def unet():
    unet = pytest.importorskip("napari_binseg.unet")
    for name in ("predict", "segment", "load_model"):
        if not hasattr(unet, name):
            pytest.skip(f"napari_binseg.unet.{name} is not available")
    try:
        unet.load_model("nuclei", device="cpu")
    except (FileNotFoundError, ValueError) as exc:  # weights not bundled yet
        pytest.skip(f"bundled model unavailable: {exc}")
    return unet


@pytest.fixture
def small_image(sample_images):
    return sample_images[SMALL][:128, :128]


def test_predict_widget(unet, make_napari_viewer, qtbot, small_image, errors):
    viewer = make_napari_viewer()
    layer = viewer.add_image(small_image, name="nuclei", scale=(0.4, 0.4), translate=(1, 2))
    widget = PredictWidget(viewer)
    widget.image.value = layer
    widget.device.value = "cpu"
    widget.tile_size.value = 128
    widget.add_probability.value = True
    run_and_wait(qtbot, widget, timeout=300_000)
    assert errors == []

    expected = unet.segment(small_image, "nuclei", device="cpu", tile_size=128, overlap=0.25,
                            batch_size=4, prob_threshold=0.5)
    (out,) = output_layers(viewer, "predict")
    assert out.name == "nuclei [unet]"
    np.testing.assert_array_equal(out.data, expected)
    assert out.data.max() > 5  # the sample holds 36 nuclei; a working model finds many
    np.testing.assert_allclose(out.scale, (0.4, 0.4))
    np.testing.assert_allclose(out.translate, (1, 2))
    meta = out.metadata["napari_binseg"]
    model = unet.load_model("nuclei", device="cpu")
    assert meta["model"] == model.name and meta["weights_sha256"] == model.sha256
    assert meta["parameters"]["tile_size"] == 128 and meta["parameters"]["device"] == "cpu"
    assert meta["n_objects"] == len(np.unique(expected)) - 1
    (prob,) = output_layers(viewer, "predict", role="probability")
    assert prob.name == "nuclei [unet probability]"
    assert prob.data.dtype == np.float32 and 0 <= prob.data.min() <= prob.data.max() <= 1
    assert prob.data.shape[-2:] == small_image.shape
    np.testing.assert_array_equal(layer.data, small_image)  # input untouched

    n_layers = len(viewer.layers)
    widget.prob_threshold.value = 0.7
    run_and_wait(qtbot, widget, timeout=300_000)
    assert len(viewer.layers) == n_layers
    assert out.metadata["napari_binseg"]["parameters"]["prob_threshold"] == 0.7


def test_predict_widget_cancel(unet, make_napari_viewer, qtbot, small_image, errors):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.tile(small_image, (1, 2)), name="nuclei")
    widget = PredictWidget(viewer)
    widget.image.value = layer
    widget.device.value = "cpu"
    widget.tile_size.value = 64
    widget.batch_size.value = 1
    gate = threading.Event()
    original = widget.progress_callback
    calls = []

    def gated(done, total):
        gate.wait(30)
        calls.append((done, total))
        original(done, total)

    widget.progress_callback = gated
    widget.run()
    widget.cancel()
    gate.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=300_000)
    assert errors == [] and widget.status.text() == "Cancelled."
    assert len(calls) == 1 and calls[0][1] > 1  # stopped at the first of several reports
    assert output_layers(viewer, "predict") == []


def test_predict_widget_bad_model_file(unet, make_napari_viewer, qtbot, tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a model")
    widget = PredictWidget(viewer)
    widget.model_source.value = "file"
    widget.model_path.value = bad
    widget.device.value = "cpu"
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(errors) == 1
    assert len(viewer.layers) == n_layers
