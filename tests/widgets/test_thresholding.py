"""The Threshold widget in a real viewer: output layer, preview, histogram, errors, cancel."""

import subprocess
import sys

import numpy as np
import pytest
from skimage import filters

from napari_binseg._widgets.thresholding import ThresholdWidget
from tests.widgets._helpers import (
    output_layers,
    run_and_cancel,
    run_and_wait,
    wait_for_preview,
)


@pytest.fixture
def viewer_and_widget(make_napari_viewer, sample_image):
    viewer = make_napari_viewer()
    layer = viewer.add_image(
        sample_image,
        name="nuclei",
        scale=(0.5, 0.25),
        translate=(10.0, 20.0),
        units=("um", "um"),
        axis_labels=("y", "x"),
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-binseg", "Threshold")
    assert isinstance(widget, ThresholdWidget)
    widget.image.value = layer
    assert not widget.preview.value and widget.run_button.text() == "Run"  # 2D: no "stack"
    return viewer, layer, widget


def test_threshold_widget_runs_and_updates(viewer_and_widget, qtbot, sample_image, errors):
    viewer, layer, widget = viewer_and_widget
    widget.preview.value = False
    run_and_wait(qtbot, widget)
    assert errors == []
    (out,) = output_layers(viewer, "threshold")
    t = filters.threshold_otsu(sample_image)
    assert out.name == "nuclei [otsu]"
    np.testing.assert_array_equal(out.data, (sample_image > t).astype(out.data.dtype))
    np.testing.assert_allclose(out.scale, (0.5, 0.25))
    np.testing.assert_allclose(out.translate, (10.0, 20.0))
    assert tuple(str(u) for u in out.units) == tuple(str(u) for u in layer.units)
    assert tuple(out.axis_labels) == ("y", "x")
    meta = out.metadata["napari_binseg"]
    assert meta["method"] == "otsu" and meta["source"] == "nuclei"
    assert meta["parameters"]["scope"] == "image" and meta["parameters"]["min_size"] == 0
    np.testing.assert_allclose(meta["thresholds"], t)
    np.testing.assert_array_equal(layer.data, sample_image)  # input untouched
    assert widget.progress_bar.value() == widget.progress_bar.maximum()
    np.testing.assert_allclose(widget.histogram.thresholds, [t])  # marked after the run

    # A re-run with other parameters updates the same layer.
    n_layers = len(viewer.layers)
    widget.method.value = "li"
    widget.invert.value = True
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert out.name == "nuclei [li]"
    t_li = filters.threshold_li(sample_image)
    np.testing.assert_array_equal(out.data, (sample_image <= t_li).astype(out.data.dtype))
    assert out.metadata["napari_binseg"]["parameters"]["invert"] is True
    np.testing.assert_allclose(out.metadata["napari_binseg"]["thresholds"], t_li, rtol=1e-6)


def test_threshold_widget_multiotsu_and_manual(viewer_and_widget, qtbot, sample_image, errors):
    viewer, layer, widget = viewer_and_widget
    widget.preview.value = False
    widget.method.value = "multiotsu"
    widget.classes.value = 3
    run_and_wait(qtbot, widget)
    (out,) = output_layers(viewer, "threshold")
    ts = filters.threshold_multiotsu(sample_image, classes=3)
    np.testing.assert_array_equal(out.data, np.digitize(sample_image, ts))
    np.testing.assert_allclose(out.metadata["napari_binseg"]["thresholds"], ts)

    widget.method.value = "manual"
    widget.value.value = 40
    run_and_wait(qtbot, widget)
    assert errors == []
    np.testing.assert_array_equal(out.data, (sample_image > 40).astype(out.data.dtype))
    assert out.metadata["napari_binseg"]["parameters"]["value"] == 40


def test_preview_follows_parameters_and_slider(make_napari_viewer, qtbot, sample_image):
    viewer = make_napari_viewer()
    # Three planes of different brightness: per-slice thresholds differ from the stack's.
    stack = np.stack([sample_image // 2, sample_image, np.minimum(sample_image * 2, 255)])
    stack = stack.astype(np.uint8)
    layer = viewer.add_image(stack, name="stack", scale=(2.0, 0.5, 0.5))
    widget = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image.value = layer
    widget.preview.value = True  # off by default: docking adds no layer

    def preview():
        found = output_layers(viewer, "threshold", role="preview")
        return found[0] if found else None

    def preview_at(index):
        p = preview()
        return p is not None and p.metadata["napari_binseg"]["plane"] == list(index)

    viewer.dims.set_current_step(0, 2)
    widget.scope.value = "image"
    qtbot.waitUntil(lambda: preview_at((2,)), timeout=10_000)
    t_stack = filters.threshold_otsu(stack)
    qtbot.waitUntil(lambda: np.array_equal(preview().data, stack[2] > t_stack), timeout=10_000)
    np.testing.assert_allclose(preview().scale, (0.5, 0.5))
    np.testing.assert_allclose(widget.histogram.thresholds, [t_stack])

    widget.scope.value = "slice"
    t2 = filters.threshold_otsu(stack[2])
    qtbot.waitUntil(lambda: np.array_equal(preview().data, stack[2] > t2), timeout=10_000)
    viewer.dims.set_current_step(0, 0)
    t0 = filters.threshold_otsu(stack[0])
    qtbot.waitUntil(lambda: preview_at((0,)), timeout=10_000)
    np.testing.assert_array_equal(preview().data, stack[0] > t0)
    np.testing.assert_allclose(widget.histogram.thresholds, [t0])
    # The histogram shows the displayed plane's grey levels (one bin per level).
    assert widget.histogram.counts.sum() == stack[0].size
    widget.log_counts.value = False
    assert not widget.histogram.log
    assert len(viewer.layers) == 2  # the image and one preview layer, updated in place

    # Full run with slice scope: one threshold per plane.
    run_and_wait(qtbot, widget)
    (out,) = output_layers(viewer, "threshold")
    expected = np.stack([p > filters.threshold_otsu(p) for p in stack])
    np.testing.assert_array_equal(out.data, expected.astype(out.data.dtype))
    assert len(out.metadata["napari_binseg"]["thresholds"]) == 3
    np.testing.assert_allclose(widget.histogram.thresholds, [t0])  # the displayed plane's
    assert not preview().visible


@pytest.mark.parametrize("case", ["rgb", "constant", "nan"])
def test_bad_input_notifies_without_output(make_napari_viewer, qtbot, errors, case):
    viewer = make_napari_viewer()
    if case == "rgb":
        layer = viewer.add_image(np.random.default_rng(0).random((32, 32, 3)), rgb=True)
    elif case == "constant":
        layer = viewer.add_image(np.full((32, 32), 7, np.uint8))
    else:
        layer = viewer.add_image(np.full((32, 32), np.nan, np.float32))
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(errors) == 1
    expected = {"rgb": "RGB", "constant": "constant", "nan": "NaN"}[case]
    assert expected.lower() in errors[0].lower()
    # napari has Split RGB in the layer list's right-click menu only (not in Layers).
    assert case != "rgb" or "(right-click the layer > Split RGB)" in errors[0]
    qtbot.wait(100)  # let the preview timer fire too: it must not add a layer either
    assert output_layers(viewer, "threshold") == []
    assert output_layers(viewer, "threshold", role="preview") == []
    assert len(viewer.layers) == n_layers
    assert widget.status.text().startswith(("Error:", "Preview:"))
    # Another image chosen: the message about the first one goes (it read as this one's).
    widget.image.value = viewer.add_image(np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert widget.status.text() == "" and widget.last_error is None


def test_cancel_stops_worker(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    stack = np.random.default_rng(1).integers(0, 255, (16, 64, 64), dtype=np.uint8)
    layer = viewer.add_image(stack, name="noise")
    widget = ThresholdWidget(viewer)
    widget.preview.value = False
    widget.image.value = layer
    widget.scope.value = "slice"
    calls = run_and_cancel(qtbot, widget)
    assert errors == []
    assert widget.status.text() == "Cancelled."
    assert output_layers(viewer, "threshold") == []
    assert len(calls) == 1  # the core stopped at the first report
    assert widget.run_button.isEnabled()


def test_opening_widgets_does_not_import_torch():
    code = (
        "import sys, napari\n"
        "from napari_binseg._widgets.thresholding import ThresholdWidget\n"
        "from napari_binseg._widgets.prediction import PredictWidget\n"
        "from napari_binseg._widgets.counting import CountWidget\n"
        "from napari_binseg._widgets.evaluation import EvaluateWidget\n"
        "from napari_binseg._widgets.training import TrainWidget\n"
        "v = napari.Viewer(show=False)\n"
        "v.add_image(__import__('numpy').arange(64, dtype='uint8').reshape(8, 8))\n"
        "v.add_labels(__import__('numpy').zeros((8, 8), dtype='uint8'))\n"
        "widgets = (ThresholdWidget, PredictWidget, CountWidget, EvaluateWidget, TrainWidget)\n"
        "ws = [W(v) for W in widgets]\n"
        "ws[0].update_preview()\n"
        "from napari_binseg.unet.network import MODELS_DIR\n"
        "ws[1].model_source.value = 'folder'\n"  # its threshold read from its config.json
        "ws[1].model_path.value = MODELS_DIR / 'nuclei'\n"
        "bad = [m for m in ('torch', 'monai') if m in sys.modules]\n"
        "v.close()\n"
        "print('IMPORTED', bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180
    )
    assert "IMPORTED []" in result.stdout, result.stdout + result.stderr


def test_dask_stack_slice_scope(make_napari_viewer, qtbot, sample_image, errors):
    import dask.array as da

    viewer = make_napari_viewer()
    stack = np.stack([sample_image[:128, :128], sample_image[128:256, :128] // 3])
    layer = viewer.add_image(da.from_array(stack, chunks=(1, 64, 64)), name="lazy")
    widget = ThresholdWidget(viewer)
    widget.preview.value = False
    widget.image.value = layer
    widget.scope.value = "slice"
    widget.sigma.value = 1.0
    run_and_wait(qtbot, widget)
    assert errors == []
    (out,) = output_layers(viewer, "threshold")
    expected = np.stack(
        [
            filters.gaussian(p, 1.0, preserve_range=True)
            > filters.threshold_otsu(filters.gaussian(p, 1.0, preserve_range=True))
            for p in stack.astype(np.float32)
        ]
    )
    assert np.mean(np.asarray(out.data) == expected) > 0.999  # float smoothing may differ
    from napari_binseg import threshold

    np.testing.assert_array_equal(out.data, threshold(stack, scope="slice", sigma=1.0))
    assert len(out.metadata["napari_binseg"]["thresholds"]) == 2


def test_histogram_counts():
    from napari_binseg._widgets._histogram import histogram

    image = np.array([[3, 3, 5], [7, 7, 7]], np.uint8)
    counts, edges = histogram(image)
    np.testing.assert_array_equal(counts, [2, 0, 1, 0, 3])  # one bin per grey level 3..7
    np.testing.assert_allclose(edges, np.arange(3, 9) - 0.5)
    values = np.array([0.0, np.nan, 1.0, 0.5, np.inf], np.float32)
    counts, edges = histogram(values, bins=4)
    assert counts.sum() == 3 and edges[0] == 0.0 and edges[-1] == 1.0


@pytest.mark.parametrize("big", [False, True], ids=["sync", "background"])
def test_frame_scope_preview(make_napari_viewer, qtbot, sample_image, monkeypatch, big):
    from napari_binseg._widgets import thresholding

    if big:  # any frame counts as big: its threshold is computed in a worker
        monkeypatch.setattr(thresholding, "PREVIEW_SYNC_LIMIT", 0)
    viewer = make_napari_viewer()
    tile = sample_image[:64, :64]
    movie = np.stack([np.stack([tile, tile // 2]), np.stack([tile // 4, tile // 4])])  # T,Z,Y,X
    layer = viewer.add_image(movie.astype(np.uint8), name="movie")
    widget = ThresholdWidget(viewer)
    in_background = []
    compute = widget._compute_in_background
    monkeypatch.setattr(
        widget,
        "_compute_in_background",
        lambda key, *a, **k: in_background.append(key) or compute(key, *a, **k),
    )
    widget.image.value = layer
    widget.preview.value = True
    widget.scope.value = "frame"
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 0)
    t1 = filters.threshold_otsu(movie[1])

    def shown():
        found = output_layers(viewer, "threshold", role="preview")
        return bool(found) and found[0].metadata["napari_binseg"]["plane"] == [1, 0]

    qtbot.waitUntil(shown, timeout=10_000)
    (preview,) = output_layers(viewer, "threshold", role="preview")
    np.testing.assert_allclose(widget.histogram.thresholds, [t1])
    np.testing.assert_array_equal(preview.data, movie[1, 0] > t1)
    assert widget._pending == {} and bool(in_background) == big


def test_stack_threshold_for_preview_computed_in_background(
    make_napari_viewer, qtbot, sample_image, monkeypatch
):
    from napari_binseg._widgets import thresholding

    monkeypatch.setattr(thresholding, "PREVIEW_SYNC_LIMIT", 0)  # any stack counts as big
    viewer = make_napari_viewer()
    stack = np.stack([sample_image, sample_image // 2])
    layer = viewer.add_image(stack, name="stack")
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    widget.preview.value = True
    viewer.dims.set_current_step(0, 1)
    t = filters.threshold_otsu(stack)

    def preview_ready():
        found = output_layers(viewer, "threshold", role="preview")
        return bool(found) and found[0].metadata["napari_binseg"]["plane"] == [1]

    qtbot.waitUntil(preview_ready, timeout=20_000)
    (preview,) = output_layers(viewer, "threshold", role="preview")
    np.testing.assert_array_equal(preview.data, stack[1] > t)
    assert widget._pending == {}


def test_no_image_layer(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="labels only")
    widget = ThresholdWidget(viewer)
    assert widget.image.value is None  # Labels are not offered as images
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "choose an Image layer" in errors[0]
    assert len(viewer.layers) == 1


def test_docking_adds_no_layer_and_preview_uses_the_core(make_napari_viewer, qtbot, sample_image):
    """Docking Threshold adds nothing; turning the preview on shows the displayed plane as the
    core's apply_threshold makes it (float64 data with NaN included)."""
    from napari_binseg.thresholding import apply_threshold, threshold_value

    viewer = make_napari_viewer()
    stack = np.stack([sample_image, sample_image // 2]).astype(np.float64)
    stack[1, :5, :5] = np.nan
    layer = viewer.add_image(stack, name="stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-binseg", "Threshold")
    qtbot.wait(100)  # the preview timer fires: it must not add a layer
    assert [lay.name for lay in viewer.layers] == ["stack"]
    assert len(widget.histogram.thresholds) == 1  # the threshold line, without a layer
    assert widget.histogram.ticks().size >= 2  # an intensity axis with ticks
    assert widget.image.value is layer and widget.run_button.text() == "Run on full stack"
    widget.sigma.value = 1.5
    widget.fill_holes.value = True
    viewer.dims.set_current_step(0, 1)
    widget.preview.value = True
    t = threshold_value(stack, "otsu", sigma=1.5)
    expected = apply_threshold(stack[1], t, sigma=1.5, fill_holes=True)

    wait_for_preview(qtbot, viewer, expected)


def test_preview_and_run_apply_the_bright_outlier_rule(make_napari_viewer, qtbot, errors):
    """A few saturated specks on dim nuclei: the preview's threshold (stack and plane) is the
    run's, with ThresholdOptions.ignore_bright_outliers on and off; the run says it fired."""
    import napari_binseg as nb
    from napari_binseg.thresholding import threshold_value

    nuclei = nb.synthetic_nuclei((128, 128), n=12, radius=6, seed=0)[0]
    plane = (nuclei / nuclei.max() * 60).astype(np.uint8)
    for y, x in [(2, 2), (2, 120), (120, 2), (120, 120), (60, 2), (2, 60)]:
        plane[y : y + 4, x : x + 4] = 255
    stack = np.stack([plane] * 3)
    viewer = make_napari_viewer()
    layer = viewer.add_image(stack, name="specks")
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    for rule, expected in ((True, 21.0), (False, 60.0)):
        widget.ignore_bright_outliers.value = rule
        for scope in ("image", "slice"):
            widget.scope.value = scope
            widget.update_preview()
            assert threshold_value(stack, ignore_bright_outliers=rule) == expected
            np.testing.assert_allclose(widget.preview_thresholds, expected, err_msg=scope)
    widget.scope.value = "image"
    widget.ignore_bright_outliers.value = True
    run_and_wait(qtbot, widget)
    (out,) = output_layers(viewer, "threshold")
    assert errors == [] and out.metadata["napari_binseg"]["thresholds"] == 21.0
    note = out.metadata["napari_binseg"]["bright_outliers"]["image"]
    assert note["first_threshold"] == 60.0 and note["pixels"] == 3 * 6 * 16
    assert "(ignored 288 bright pixels above 60: debris)" in widget.status.text()


def test_background_subtraction_in_the_form_and_the_preview(make_napari_viewer, qtbot, errors):
    """ThresholdOptions.background is off, auto or a radius in the form; with it on, the
    preview of a 2D image is the run's mask (the threshold is on the corrected intensities,
    so no line on the raw histogram); a stack with scope "image" says Run corrects it."""
    import napari_binseg as nb
    from napari_binseg.thresholding import threshold

    nuclei = nb.synthetic_nuclei((128, 128), n=12, radius=6, seed=0)[0].astype(np.float32)
    image = nuclei + np.linspace(0, 1.5 * nuclei.max(), 128, dtype=np.float32)[None, :]
    viewer = make_napari_viewer()
    layer = viewer.add_image(image, name="ramp")
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    widget.preview.value = True

    def preview():
        found = output_layers(viewer, "threshold", role="preview")
        return found[0] if found else None

    for background in ("auto", 20.0):
        widget.background.value = background  # the control's change redraws the preview
        expected = threshold(image, background=background)
        assert not np.array_equal(expected, threshold(image, background=None))  # the ramp
        qtbot.waitUntil(
            lambda e=expected: preview() is not None and np.array_equal(preview().data, e),
            timeout=10_000,
        )
        assert widget.histogram.thresholds == []
    run_and_wait(qtbot, widget)
    (out,) = output_layers(viewer, "threshold")
    np.testing.assert_array_equal(out.data, threshold(image, background=20.0))
    assert out.metadata["napari_binseg"]["parameters"]["background"] == 20.0
    widget.background.value = None
    qtbot.waitUntil(lambda: len(widget.histogram.thresholds) == 1, timeout=10_000)

    stack = viewer.add_image(np.stack([image, image]), name="stack")
    widget.image.value = stack
    widget.background.value = "auto"
    qtbot.waitUntil(lambda: "only scope 'slice' previews" in widget.status.text(), timeout=10_000)
    assert errors == []


def test_preview_of_the_image_chosen_before_is_hidden(make_napari_viewer, qtbot, sample_image):
    """Choosing another image shows its preview only: the first image's preview layer no
    longer lies over it."""
    viewer = make_napari_viewer()
    first = viewer.add_image(sample_image, name="first")
    second = viewer.add_image(sample_image[::2, ::2], name="second")
    widget = ThresholdWidget(viewer)
    widget.image.value = first
    widget.preview.value = True
    widget.update_preview()
    widget.image.value = second
    widget.update_preview()
    previews = {
        p.metadata["napari_binseg"]["source"]: p.visible
        for p in output_layers(viewer, "threshold", role="preview")
    }
    assert previews == {"first": False, "second": True}
    widget.preview.value = False
    widget.update_preview()
    assert not any(p.visible for p in output_layers(viewer, "threshold", role="preview"))


def test_calibrated_tiff_to_counted_labels(make_napari_viewer, qtbot, tmp_path, errors):
    """An ImageJ z-stack (z step 2 µm, 0.325 µm pixels) opened with the plugin's reader:
    the mask and the counted labels keep its scale, translate, units and axes, and name the
    file they come from; volumes are voxels x 2 x 0.325 x 0.325 µm³."""
    import tifffile

    from napari_binseg._widgets.counting import CountWidget

    stack = np.zeros((6, 40, 40), np.uint16)
    stack[1:4, 5:15, 5:15] = 1000
    stack[2:5, 22:34, 20:30] = 1500
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 0.325, 1 / 0.325),
        metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"},
    )
    viewer = make_napari_viewer()
    (layer,) = viewer.open(path, plugin="napari-binseg")
    layer.translate = (4.0, 1.0, 2.0)
    threshold = ThresholdWidget(viewer)
    run_and_wait(qtbot, threshold)
    count = CountWidget(viewer)
    count.split_touching.value = False
    run_and_wait(qtbot, count)
    assert errors == []
    for out in (threshold.output, count.output):
        np.testing.assert_allclose(out.scale, (2.0, 0.325, 0.325))
        np.testing.assert_allclose(out.translate, (4.0, 1.0, 2.0))
        assert [str(u) for u in out.units] == ["micrometer"] * 3
        assert tuple(out.axis_labels) == ("z", "y", "x")
        assert out.metadata["napari_binseg"]["source_path"] == str(path)
    assert count.image.value is layer and count.stack.value == "ZYX"
    np.testing.assert_allclose(
        sorted(count.table["volume"]), np.array([300, 360]) * 2.0 * 0.325**2
    )
    np.testing.assert_allclose(sorted(count.table["mean_intensity"]), [1000, 1500])


def test_manual_value_shows_the_decimals_of_the_image(make_napari_viewer, qtbot, sample_image):
    """The manual value's step and decimals follow the grey-level range of the image, both
    ways: 1e-7 steps for an image in [0, 1e-4], two decimals again for a 16-bit one."""
    viewer = make_napari_viewer()
    tiny = viewer.add_image(sample_image.astype(np.float32) / 255 * 1e-4, name="tiny")
    widget = ThresholdWidget(viewer)
    widget.image.value = tiny
    widget.update_preview()
    widget.method.value = "manual"
    assert widget.value.step == pytest.approx(1e-7) and widget.value.native.decimals() == 9
    sixteen = sample_image.astype(np.uint16) * 100
    widget.image.value = viewer.add_image(sixteen, name="sixteen bit")
    widget.method.value = "otsu"
    widget.update_preview()
    widget.method.value = "manual"
    assert widget.value.step == 1.0 and widget.value.native.decimals() == 2
    assert widget.value.value == pytest.approx(filters.threshold_otsu(sixteen), abs=100)


@pytest.mark.parametrize("lazy", [False, True])
def test_auto_sigma_preview_smooths_a_plane_as_the_run_does(
    make_napari_viewer, qtbot, errors, lazy
):
    """sigma "auto" on a noisy stack: the preview of a plane uses the stack's sigma (measured
    on the whole stack, as the run; for a lazy stack in a worker, not while the viewer waits),
    and the run's layer records it."""
    import dask.array as da

    import napari_binseg as nb
    from napari_binseg.thresholding import threshold

    from ..core.test_threshold_noise import noisy_nuclei

    viewer = make_napari_viewer()
    clean = nb.synthetic_nuclei((128, 128), n=4, noise=0, dtype=np.float32, seed=4)[0]
    stack = np.stack([noisy_nuclei((128, 128), n=4, seed=s)[0] for s in (1, 2, 3)] + [clean])
    mask, info = threshold(stack, return_info=True)
    assert info["sigma"] > 0 and threshold(clean, return_info=True)[1]["sigma"] == 0
    layer = viewer.add_image(
        da.from_array(stack, chunks=(1, 128, 128)) if lazy else stack, name="noisy"
    )
    widget = ThresholdWidget(viewer)
    widget.image.value = layer
    assert widget.sigma.value == "auto"
    viewer.dims.set_current_step(0, 3)
    widget.preview.value = True
    if lazy:  # the stack's planes are read in a worker: the viewer is told, not frozen
        widget.update_preview()
        assert widget.status.text() == "Preview: measuring the stack..."

    wait_for_preview(qtbot, viewer, mask[3])
    run_and_wait(qtbot, widget)
    assert errors == []
    out = next(lay for lay in output_layers(viewer, "threshold") if lay.name == "noisy [otsu]")
    np.testing.assert_array_equal(out.data, mask)
    meta = out.metadata["napari_binseg"]
    assert meta["sigma"] == info["sigma"] and meta["noise_ratio"] == info["noise_ratio"]
    assert f"smoothed with sigma {info['sigma']:g} px" in widget.status.text()


@pytest.mark.parametrize(("scope", "lazy"), [("frame", False), ("slice", False), ("frame", True)])
def test_auto_sigma_preview_of_a_frame_smooths_it_as_the_run_does(
    make_napari_viewer, qtbot, errors, scope, lazy
):
    """sigma "auto" with a threshold per frame (or plane): each is measured alone (a lazy
    frame in a worker), so the preview of the noisy frame of a clean series is smoothed and
    that of a clean frame not, as in the run, whose layer records a sigma per frame."""
    import dask.array as da

    from napari_binseg.thresholding import threshold

    from ..core.test_threshold_noise import noisy_series

    viewer = make_napari_viewer()
    series = noisy_series((96, 96), n=3)[0]
    mask, info = threshold(series, scope=scope, return_info=True)
    widget = ThresholdWidget(viewer)
    data = da.from_array(series, chunks=(1, 96, 96)) if lazy else series
    widget.image.value = viewer.add_image(data, name="movie")
    widget.scope.value = scope
    widget.preview.value = True
    for frame in (6, 0):
        viewer.dims.set_current_step(0, frame)

        wait_for_preview(qtbot, viewer, mask[frame])
    run_and_wait(qtbot, widget)
    assert errors == []
    out = next(lay for lay in output_layers(viewer, "threshold") if lay.name == "movie [otsu]")
    np.testing.assert_array_equal(out.data, mask)
    np.testing.assert_array_equal(out.metadata["napari_binseg"]["sigma"], [0] * 6 + [2, 2])
    units = "frames" if scope == "frame" else "planes"
    assert f"smoothed 2 of 8 {units} with sigma 2 px" in widget.status.text()


def test_uneven_background_preview_subtracts_as_the_run_does(make_napari_viewer, qtbot, errors):
    """background "uneven" on a ramped image: the preview subtracts the background as the run
    decides (measured on the whole image), and the run's layer records the radius."""
    import napari_binseg as nb
    from napari_binseg.thresholding import threshold

    viewer = make_napari_viewer()
    flat, truth = nb.synthetic_nuclei((256, 256), n=20, seed=1)
    contrast = float(np.median(flat[truth > 0]) - np.median(flat[truth == 0]))
    ramp = np.clip(flat + contrast * np.mgrid[:256, :256][1] / 256, 0, 65535).astype(flat.dtype)
    mask, info = threshold(ramp, background="uneven", return_info=True)
    assert info["background"] is not None and not np.array_equal(
        mask, threshold(ramp, background=None)
    )
    layer = viewer.add_image(ramp, name="ramp")
    widget = ThresholdWidget(viewer)
    widget.background.value = "uneven"
    widget.image.value = layer
    widget.preview.value = True

    wait_for_preview(qtbot, viewer, mask)
    run_and_wait(qtbot, widget)
    assert errors == []
    out = next(lay for lay in output_layers(viewer, "threshold") if lay.name == "ramp [otsu]")
    np.testing.assert_array_equal(out.data, mask)
    meta = out.metadata["napari_binseg"]
    assert meta["background"] == info["background"] and meta["unevenness"] == info["unevenness"]
    assert f"background subtracted (radius {info['background']:.0f} px" in widget.status.text()


def test_uneven_background_on_a_stack_at_scope_image_says_why_it_cannot_preview(
    make_napari_viewer, qtbot, errors
):
    """background "uneven" on a stack at scope "image": where the measure finds the
    background uneven, the preview says so and that Run subtracts it (before: "with
    background subtraction only scope 'slice' previews", a subtraction the user never
    chose); where it does not (the clean stack), the preview is the run's plane."""
    import napari_binseg as nb
    from napari_binseg.thresholding import threshold

    viewer = make_napari_viewer()
    flat, truth = nb.synthetic_nuclei((256, 256), n=20, seed=1)
    contrast = float(np.median(flat[truth > 0]) - np.median(flat[truth == 0]))
    ramp = np.clip(flat + contrast * np.mgrid[:256, :256][1] / 256, 0, 65535).astype(flat.dtype)
    ramps, flats = np.stack([ramp, ramp]), np.stack([flat, flat])
    _, info = threshold(ramps, background="uneven", return_info=True)
    assert info["background"] is not None
    widget = ThresholdWidget(viewer)
    widget.scope.value = "image"
    widget.background.value = "uneven"
    widget.preview.value = True
    widget.image.value = viewer.add_image(ramps, name="ramps")
    said = (
        f"Preview: the background is uneven here (unevenness {info['unevenness']:.2f} > 0.3), "
        "so Run subtracts it, and with a subtraction only scope 'slice' previews a stack"
    )
    qtbot.waitUntil(lambda: widget.status.text().startswith(said), timeout=10_000)
    widget.image.value = viewer.add_image(flats, name="flats")
    expected = threshold(flats, background="uneven", scope="image")[0]

    def shown():
        found = [lay for lay in viewer.layers if lay.name == "flats [preview]"]
        return bool(found) and found[0].visible and np.array_equal(found[0].data, expected)

    qtbot.waitUntil(shown, timeout=10_000)
    assert widget.status.text() == "" and errors == []


def test_auto_sigma_preview_of_an_empty_noisy_plane_is_the_runs(make_napari_viewer, qtbot, errors):
    """scope "slice", sigma "auto": an empty plane of noise takes the stack's pooled sigma in
    the run (0 here); its preview did not smooth it with the 1-2 px it reads alone."""
    from napari_binseg.thresholding import threshold

    from ..core.test_threshold_noise import empty_noisy_planes_stack

    viewer = make_napari_viewer()
    stack = empty_noisy_planes_stack()
    mask = threshold(stack, scope="slice")
    assert not np.array_equal(mask[0], threshold(stack[0], sigma="auto"))
    widget = ThresholdWidget(viewer)
    widget.image.value = viewer.add_image(stack, name="stack")
    widget.scope.value = "slice"
    widget.preview.value = True
    for z in (0, 3):
        viewer.dims.set_current_step(0, z)
        wait_for_preview(qtbot, viewer, mask[z])
    assert errors == []
