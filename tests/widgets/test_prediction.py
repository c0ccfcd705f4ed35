"""The U-Net predict widget in a real viewer (small image, CPU)."""

import numpy as np
import pytest

from napari_binseg._widgets.prediction import PredictWidget
from tests.widgets._helpers import output_layers, run_and_cancel, run_and_wait

SMALL = "nuclei_003cee89357d9fe1"


def test_all_widgets_dock_from_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    names = {
        "Threshold": "ThresholdWidget",
        "U-Net": "PredictWidget",
        "Train": "TrainWidget",
        "Count": "CountWidget",
        "Evaluate": "EvaluateWidget",
    }
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


def test_each_option_is_in_the_form_once(make_napari_viewer):
    widget = PredictWidget(make_napari_viewer())
    names = [w.name for w in widget.option_widgets()]
    assert len(names) == len(set(names))
    assert widget.mode is widget.options.widgets["mode"]
    assert widget.mode.native.currentText() == "accurate (XY, XZ, YZ)"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A user model folder (config.json + model.safetensors): a tiny random-weight MONAI
    U-Net with foreground and centre outputs, so the widget runs fast without the bundled
    weights."""
    import torch

    from napari_binseg.unet.network import build_network, save_model

    config = {
        "network": {
            "name": "UNet",
            "kwargs": {
                "spatial_dims": 2,
                "in_channels": 1,
                "out_channels": 2,
                "channels": [4, 8],
                "strides": [2],
                "num_res_units": 0,
            },
        },
        "outputs": ["foreground", "centre"],
        "activation": "sigmoid",
    }
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_unet")
    save_model(build_network(config["network"]), config, folder)
    return folder


@pytest.fixture
def small_image(sample_images):
    return sample_images[SMALL][:128, :128]


def _widget_for(viewer, layer, model_folder, **values):
    widget = PredictWidget(viewer)
    widget.image.value = layer
    widget.model_source.value = "folder"
    widget.model_path.value = model_folder
    widget.device.value = "cpu"
    for name, value in values.items():
        getattr(widget, name).value = value
    return widget


def test_predict_widget_user_model(tiny_model, make_napari_viewer, qtbot, small_image, errors):
    from napari_binseg.unet import load_model, predict, segment

    viewer = make_napari_viewer()
    layer = viewer.add_image(small_image, name="nuclei", scale=(0.4, 0.4), translate=(1, 2))
    widget = _widget_for(viewer, layer, tiny_model, tile_size=64, add_probability=True)
    run_and_wait(qtbot, widget, timeout=300_000)
    assert errors == []

    options = {"device": "cpu", "tile_size": 64, "overlap": 0.25, "batch_size": 4}
    expected = segment(small_image, str(tiny_model), prob_threshold=0.5, **options)
    (out,) = output_layers(viewer, "predict")
    assert out.name == "nuclei [unet]"
    np.testing.assert_array_equal(out.data, expected)
    np.testing.assert_allclose(out.scale, (0.4, 0.4))
    np.testing.assert_allclose(out.translate, (1, 2))
    meta = out.metadata["napari_binseg"]
    model = load_model(str(tiny_model), device="cpu")
    assert meta["model"] == model.name and meta["weights_sha256"] == model.sha256
    assert meta["model_path"] == str(tiny_model)
    expected_params = {**options, "prob_threshold": 0.5, "diameter": "auto", "axes": "YX"}
    # The floor that ran: the model's own (none in its config: 0), not the form's "model".
    expected_params["min_confidence"] = 0.0
    assert meta["parameters"].items() >= expected_params.items()
    assert meta["n_objects"] == len(np.unique(expected)) - 1
    # The same measurement table as Count: one row per nucleus, keyed by its label.
    assert len(out.features) == meta["n_objects"]
    np.testing.assert_array_equal(out.features["index"], np.arange(1, meta["n_objects"] + 1))
    assert {"area", "centroid_y", "equivalent_diameter", "mean_intensity"} <= set(out.features)
    assert widget.stack.native.isHidden() and widget.mode.native.isHidden()  # 2D image
    (prob,) = output_layers(viewer, "predict", role="probability")
    assert prob.name == "nuclei [unet probability]"
    np.testing.assert_allclose(
        prob.data, predict(small_image, str(tiny_model), **options), atol=1e-6
    )
    np.testing.assert_allclose(prob.scale, (0.4, 0.4))
    np.testing.assert_array_equal(layer.data, small_image)  # input untouched
    assert widget.progress_bar.value() == widget.progress_bar.maximum() > 1

    n_layers = len(viewer.layers)
    widget.prob_threshold.value = 0.7
    run_and_wait(qtbot, widget, timeout=300_000)
    assert len(viewer.layers) == n_layers
    assert out.metadata["napari_binseg"]["parameters"]["prob_threshold"] == 0.7
    np.testing.assert_array_equal(
        out.data, segment(small_image, str(tiny_model), prob_threshold=0.7, **options)
    )

    # A user model without a reference nucleus size cannot rescale to a given diameter.
    widget.rescale.value = "diameter"
    run_and_wait(qtbot, widget, timeout=300_000)
    assert len(errors) == 1 and "no reference nucleus diameter" in errors[0]
    assert len(viewer.layers) == n_layers


def test_predict_widget_cancel(tiny_model, make_napari_viewer, qtbot, small_image, errors):
    viewer = make_napari_viewer()
    layer = viewer.add_image(small_image, name="nuclei")
    widget = _widget_for(viewer, layer, tiny_model, tile_size=32, batch_size=1)
    calls = run_and_cancel(qtbot, widget, timeout=300_000)
    assert errors == [] and widget.status.text() == "Cancelled."
    assert len(calls) == 1 and calls[0][1] > 1  # stopped at the first of several tiles
    assert output_layers(viewer, "predict") == []


def test_predict_widget_bad_model_file(make_napari_viewer, qtbot, tmp_path, errors):
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
    assert len(errors) == 1 and "model" in errors[0].lower()
    assert len(viewer.layers) == n_layers


def test_predict_widget_bundled_model(make_napari_viewer, qtbot, small_image, errors):
    from napari_binseg.unet import load_model, segment

    try:
        model = load_model("nuclei", device="cpu")
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(f"bundled model weights unavailable: {exc}")
    viewer = make_napari_viewer()
    layer = viewer.add_image(small_image, name="nuclei")
    widget = PredictWidget(viewer)
    widget.image.value = layer
    widget.device.value = "cpu"
    widget.tile_size.value = 128
    run_and_wait(qtbot, widget, timeout=300_000)
    assert errors == []
    (out,) = output_layers(viewer, "predict")
    np.testing.assert_array_equal(
        out.data, segment(small_image, "nuclei", device="cpu", tile_size=128)
    )
    assert out.data.max() > 5  # 36 nuclei in the full image; a trained model finds many here
    meta = out.metadata["napari_binseg"]
    assert meta["model"] == "nuclei" and meta["weights_sha256"] == model.sha256


def test_predict_widget_shows_the_cores_warning(
    make_napari_viewer, qtbot, sample_images, errors, monkeypatch
):
    """Nuclei of 3 px (the sample at 0.25x): segment() warns that the model cannot see them,
    and the widget shows it as a napari warning (a worker's warnings were dropped before)."""
    import napari_binseg._widgets._base as base
    from napari_binseg.unet.scale import resize

    shown = []
    monkeypatch.setattr(base, "show_warning", shown.append)
    viewer = make_napari_viewer()
    tiny = resize(sample_images[SMALL].astype(np.float32), (64, 64))
    widget = PredictWidget(viewer)
    widget.image.value = viewer.add_image(tiny, name="tiny")
    widget.device.value = "cpu"
    run_and_wait(qtbot, widget, timeout=300_000)
    assert errors == []
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    assert len(shown) == 1 and "too small for model 'nuclei'" in shown[0]


def test_predict_widget_runs_the_models_own_threshold(
    make_napari_viewer, qtbot, small_image, errors, tmp_path
):
    """The form's default threshold is the model's (its config.json says 0.9 here), recorded
    in the layer's parameters as the number that ran; settings saved keep "the model's"."""
    from napari_binseg.settings import PipelineSettings
    from napari_binseg.unet import segment
    from tests.unet.conftest import bundled_copy

    strict = bundled_copy(tmp_path / "strict", prob_threshold=0.9)
    viewer = make_napari_viewer()
    layer = viewer.add_image(small_image, name="nuclei")
    widget = _widget_for(viewer, layer, strict)
    box = widget.prob_threshold
    assert box.value == box.min and box.native.specialValueText() == "model"
    run_and_wait(qtbot, widget, timeout=300_000)
    assert errors == []
    (out,) = output_layers(viewer, "predict")
    expected = segment(small_image, "nuclei", device="cpu", prob_threshold=0.9)
    np.testing.assert_array_equal(out.data, expected)
    assert 0 < np.count_nonzero(expected) < np.count_nonzero(segment(small_image, device="cpu"))
    assert out.metadata["napari_binseg"]["parameters"]["prob_threshold"] == 0.9
    assert widget.settings(PipelineSettings()).unet.prob_threshold is None


def test_predict_widget_z_stack(tiny_model, make_napari_viewer, qtbot, small_image, errors):
    """A z-stack layer (axis labels z, y, x) is segmented as a volume and shown in 3D."""
    from napari_binseg.unet import segment

    viewer = make_napari_viewer()
    stack = np.stack([small_image[:64, :64]] * 4)
    layer = viewer.add_image(stack, name="stack", scale=(2.0, 1.0, 1.0), axis_labels="zyx")
    widget = _widget_for(viewer, layer, tiny_model, tile_size=64, rescale="off")
    assert widget.stack.value == "ZYX" and not widget.stack.native.isHidden()
    assert not widget.mode.native.isHidden()
    widget.mode.value = "fast"
    run_and_wait(qtbot, widget, timeout=300_000)
    assert errors == []
    (out,) = output_layers(viewer, "predict")
    expected = segment(
        stack, str(tiny_model), device="cpu", tile_size=64, diameter=None, axes="ZYX",
        spacing=(2.0, 1.0, 1.0), mode="fast",
    )  # fmt: skip
    np.testing.assert_array_equal(out.data, expected)
    assert viewer.dims.ndisplay == 3
    assert out.metadata["napari_binseg"]["parameters"]["mode"] == "fast"


@pytest.mark.parametrize("value", [7.0, np.nan])
def test_predict_widget_featureless_image(make_napari_viewer, qtbot, errors, value):
    """A constant or all-NaN image gives 0 objects, not a thresholding error about a
    constant image of zeros (the size estimate saw the normalized plane)."""
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.full((32, 32), value, np.float32), name="blank")
    widget = PredictWidget(viewer)
    widget.image.value = layer
    widget.device.value = "cpu"
    run_and_wait(qtbot, widget, timeout=300_000)
    assert errors == [] and widget.output.data.max() == 0
    assert widget.status.text() == "blank [unet]: 0 objects (nuclei)"


def test_predict_widget_says_what_fits_in_the_forms_words(
    tiny_model, make_napari_viewer, qtbot, errors, monkeypatch
):
    """A z-stack the memory cannot hold: the notification names the form's options ("3D
    mode", "nucleus diameter"), not the API's keywords (before: "mode='accurate' needs ...:
    use mode='fast'")."""
    from napari_binseg.unet import volume

    stack = np.zeros((4, 32, 32), np.float32)
    stack[:, 10:20, 10:20] = 1
    fast = volume.memory_need(stack.shape, mode="fast")
    monkeypatch.setattr(volume, "_available_bytes", lambda: fast)
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="stack")
    widget = _widget_for(viewer, layer, tiny_model)
    widget.stack.value = "ZYX"
    run_and_wait(qtbot, widget)
    (message,) = errors
    assert message.startswith("napari-binseg predict: the accurate 3D mode needs about ")
    assert "=" not in message
    assert "use the fast 3D mode (about " in message
