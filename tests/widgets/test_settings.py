"""Settings saved by the widgets reproduce their result through ``napari-binseg segment``."""

import json

import numpy as np
import pandas as pd
import pytest

from napari_binseg._widgets.counting import CountWidget
from napari_binseg._widgets.prediction import PredictWidget
from napari_binseg._widgets.thresholding import ThresholdWidget
from napari_binseg.cli import main
from napari_binseg.io import imread, imwrite
from napari_binseg.pipeline import PipelineSettings
from tests.widgets._helpers import output_layers, run_and_wait


def test_threshold_then_count_settings_reproduce_through_cli(
    make_napari_viewer, qtbot, sample_image, tmp_path, errors
):
    viewer = make_napari_viewer()
    image = viewer.add_image(sample_image, name="nuclei", scale=(0.5, 0.5))
    threshold = ThresholdWidget(viewer)
    threshold.image.value = image
    threshold.method.value = "li"
    threshold.sigma.value = 1.0
    threshold.fill_holes.value = True
    run_and_wait(qtbot, threshold)
    (mask,) = output_layers(viewer, "threshold")

    count = CountWidget(viewer)
    count.mask.value = mask
    count.image.value = image
    count.min_size.value = 10.0
    count.exclude_border.value = True
    run_and_wait(qtbot, count)
    assert errors == []
    (counted,) = output_layers(viewer, "count")
    assert len(count.table) > 100

    path = tmp_path / "settings.json"
    threshold.save_settings(path)
    count.save_settings(path)  # adds its part, keeps the threshold's
    saved = PipelineSettings.from_json(path)
    assert saved.method == "li" and saved.threshold.sigma == 1.0 and saved.threshold.fill_holes
    assert saved.count.min_size == 10.0 and saved.count.exclude_border

    imwrite(tmp_path / "in" / "nuclei.tif", sample_image, scale=(0.5, 0.5))
    out = tmp_path / "out"
    rc = main(["segment", str(tmp_path / "in"), "--out", str(out), "--settings", str(path), "-q"])
    assert rc == 0
    labels, meta = imread(out / "nuclei_labels.tif")
    np.testing.assert_array_equal(labels, counted.data)
    assert meta["scale"] == (0.5, 0.5)
    # The command's objects.csv and the widget's CSV: same columns (units in the names), rows.
    objects = pd.read_csv(out / "objects.csv")
    saved_csv = pd.read_csv(count.save_csv(tmp_path / "widget_objects.csv"))
    assert "area_um2" in saved_csv.columns
    pd.testing.assert_frame_equal(
        objects.drop(columns="file"), saved_csv, check_dtype=False, rtol=1e-9
    )

    # Loading the file into fresh widgets gives back the same forms.
    for cls, original in ((ThresholdWidget, threshold), (CountWidget, count)):
        fresh = cls(viewer)
        fresh.load_settings(path)
        if cls is CountWidget:
            assert fresh.parameters(mask) == original.parameters(mask)
        else:
            assert fresh.parameters() == original.parameters()


def test_predict_widget_settings_round_trip(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = PredictWidget(viewer)
    widget.device.value = "cpu"
    widget.tile_size.value = 256
    widget.prob_threshold.value = 0.35
    assert widget.parameters()["diameter"] == "auto" and widget.diameter.native.isHidden()
    widget.rescale.value = "diameter"
    widget.diameter.value = 12.0
    path = tmp_path / "unet.json"
    widget.save_settings(path)
    data = json.loads(path.read_text())
    assert data["method"] == "unet"
    assert data["unet"]["model"] == "nuclei"
    assert (data["unet"]["device"], data["unet"]["tile_size"]) == ("cpu", 256)
    assert data["unet"]["diameter"] == 12.0
    fresh = PredictWidget(viewer)
    fresh.load_settings(path)
    assert fresh.parameters() == widget.parameters()
    assert fresh.model() == "nuclei"
    assert fresh.rescale.value == "diameter" and not fresh.diameter.native.isHidden()
    widget.rescale.value = "off"
    widget.save_settings(path)
    assert json.loads(path.read_text())["unet"]["diameter"] is None
    fresh.load_settings(path)
    assert fresh.rescale.value == "off" and fresh.parameters()["diameter"] is None


def test_loading_a_bad_settings_file_is_reported(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = CountWidget(viewer)
    path = tmp_path / "bad.json"
    path.write_text('{"count": {"split_touching": "maybe"}}')
    with pytest.raises(ValueError, match="count.split_touching"):
        widget.load_settings(path)
    assert widget.split_touching.value is True  # form untouched


def test_settings_the_form_cannot_show_leave_it_unchanged(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = ThresholdWidget(viewer)
    before = {w.name: w.value for w in widget.option_widgets()}
    path = tmp_path / "wide.json"
    # Allowed by the options (no upper bound) but beyond what a spin box holds.
    PipelineSettings("manual", threshold={"value": 3.0, "min_size": 2**40}).to_json(path)
    with pytest.raises(ValueError, match="wide.json: this form cannot show these settings"):
        widget.load_settings(path)
    assert {w.name: w.value for w in widget.option_widgets()} == before


def test_widgets_load_a_params_json_of_the_command(make_napari_viewer, tmp_path):
    settings = PipelineSettings("li", count={"min_size": 7.0})
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"settings": settings.to_dict(), "inputs": ["a.tif"]}))
    assert PipelineSettings.from_json(path) == settings
    widget = CountWidget(make_napari_viewer())
    widget.load_settings(path)
    assert widget.min_size.value == 7.0


def test_forms_come_from_the_options(make_napari_viewer):
    """Each widget's controls are built from napari_binseg.options: labels with units,
    tooltips from the help text, ranges, "0 = auto", advanced options folded."""
    from napari_binseg.options import CountOptions, ThresholdOptions, UNetOptions, options_of

    viewer = make_napari_viewer()
    count, threshold, predict = CountWidget(viewer), ThresholdWidget(viewer), PredictWidget(viewer)
    for widget, cls in (
        (count, CountOptions),
        (threshold, ThresholdOptions),
        (predict, UNetOptions),
    ):
        for opt in options_of(cls):
            control = widget.options.widgets.get(opt.name)
            if control is None:
                continue
            assert control.tooltip.startswith(opt.help)
            in_advanced = control in list(widget.advanced)
            assert in_advanced or not opt.advanced, opt.name
    assert threshold.sigma.label == "sigma (px)" and threshold.sigma.value == "auto"
    threshold.sigma.value = 100.0  # a number within the option's range; above is refused
    with pytest.raises(ValueError, match="outside"):
        threshold.sigma.value = 101.0
    assert threshold.options.read().sigma == 100.0
    assert predict.tile_size.min == 32 and predict.tile_size in list(predict.advanced)
    assert count.max_size.value == 0 and "0 = no limit" in count.max_size.tooltip
    assert count.parameters(viewer.add_labels(np.zeros((4, 4), np.uint8)))["max_size"] is None
    count.min_size.value = count.min_size.min  # the lowest value reads as "auto"
    assert count.options.read().min_size is None
    count.min_size.value = 0.0  # a real 0: keep every object
    assert count.options.read().min_size == 0.0


def test_diameter_and_iou_boxes_take_the_options_range(make_napari_viewer):
    """The U-Net's typed diameter and Evaluate's IoU are numbers of UNetOptions.diameter and
    EvaluateOptions.thresholds: the box's range is the option's (the lowest and highest values
    it shows are accepted, one displayed step beyond them is not), and its start is the
    option's default."""
    from napari_binseg._widgets.evaluation import EvaluateWidget
    from napari_binseg.options import DEFAULT_THRESHOLDS, EvaluateOptions, UNetOptions, options_of

    viewer = make_napari_viewer()
    predict, evaluate = PredictWidget(viewer), EvaluateWidget(viewer)
    for box, cls, name in (
        (predict.diameter, UNetOptions, "diameter"),
        (evaluate.iou, EvaluateOptions, "thresholds"),
    ):
        opt = next(o for o in options_of(cls) if o.name == name)
        step = 10.0 ** -box.native.decimals()
        check = opt.check if not opt.multiple else lambda v, o=opt: o.check((v,))
        check(box.min), check(box.max)
        with pytest.raises(ValueError):
            check(box.min - step)
        if opt.high is not None:
            with pytest.raises(ValueError):
                check(box.max + step)
    assert predict.rescale.value == UNetOptions().diameter == "auto"
    assert evaluate.iou.value == DEFAULT_THRESHOLDS[0]
    # A 63x image's nuclei (over the former 1000-px ceiling) round-trip through a settings file.
    predict.apply_settings(PipelineSettings(unet={"diameter": 1500.0}))
    assert predict.parameters()["diameter"] == 1500.0


def test_background_off_auto_or_a_radius_round_trips(make_napari_viewer, tmp_path):
    """A number option that also takes words (ThresholdOptions.background: None, "auto",
    "uneven" or a radius) has a choice and a number box; each value goes through a settings
    file."""
    viewer = make_napari_viewer()
    widget = ThresholdWidget(viewer)
    assert widget.background.value is None and widget.parameters()["background"] is None
    for value in ("auto", 12.5, None, "uneven"):
        widget.background.value = value
        path = widget.save_settings(tmp_path / f"{value}.json")
        assert PipelineSettings.from_json(path).threshold.background == value
        fresh = ThresholdWidget(viewer)
        fresh.load_settings(path)
        assert fresh.parameters()["background"] == value
    with pytest.raises(ValueError, match="background"):
        widget.background.value = -1.0
