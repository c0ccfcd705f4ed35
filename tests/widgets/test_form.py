"""The arrows of a "0 = auto" number control: from the word to the option's first value."""

import pytest
from qtpy.QtCore import QPoint, QPointF, Qt
from qtpy.QtGui import QWheelEvent
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication, QStyle, QStyleOptionSpinBox

from napari_binseg._widgets._form import OptionForm
from napari_binseg._widgets.prediction import PredictWidget
from napari_binseg._widgets.thresholding import ThresholdWidget
from napari_binseg.options import (
    CountOptions,
    ThresholdOptions,
    TrainOptions,
    UNetOptions,
    options_of,
)

#: Options a widget shows its own way (a text or a model choice, not a form control).
_OWN_WAY = ("model", "init", "architecture")

WORD_OPTIONS = [
    (cls, opt)
    for cls in (ThresholdOptions, UNetOptions, CountOptions, TrainOptions)
    for opt in options_of(cls)
    if opt.nullable and opt.zero_is_none and opt.kind in (int, float) and not opt.choices
]


def click_up_arrow(box):
    option = QStyleOptionSpinBox()
    box.initStyleOption(option)
    up = QStyle.SubControl.SC_SpinBoxUp
    arrow = box.style().subControlRect(QStyle.ComplexControl.CC_SpinBox, option, up, box)
    QTest.mouseClick(box, Qt.MouseButton.LeftButton, pos=arrow.center())


def wheel_down(box):
    at = QPointF(box.rect().center())
    notch = QPoint(0, -120)
    no = Qt.KeyboardModifier.NoModifier
    event = QWheelEvent(
        at, at, QPoint(), notch, Qt.MouseButton.NoButton, no, Qt.ScrollPhase.NoScrollPhase, False
    )
    QApplication.sendEvent(box, event)


def test_every_word_option_is_found():
    names = {f"{cls.section}.{opt.name}" for cls, opt in WORD_OPTIONS}
    assert {"unet.prob_threshold", "threshold.clip", "count.max_size", "train.threads"} <= names


def test_up_from_model_is_the_bundled_threshold_and_steps_on_from_there(make_napari_viewer):
    """One click of the up arrow (or Up, or a wheel step) on "model" gives 0.5 (not 0.01, the
    smallest step); from there the box steps both ways (0.49, 0.51); a typed 0.01 stays 0.01,
    steps by 0.01 and one step below it is "model" again."""
    widget = PredictWidget(make_napari_viewer())
    box = widget.prob_threshold.native
    box.show()
    assert box.text() == "model" and widget.parameters()["prob_threshold"] is None
    click_up_arrow(box)
    assert widget.prob_threshold.value == 0.5
    wheel_down(box)
    assert widget.parameters()["prob_threshold"] == 0.49
    QTest.keyClick(box, Qt.Key.Key_Up)
    QTest.keyClick(box, Qt.Key.Key_Up)
    assert widget.parameters()["prob_threshold"] == 0.51
    box.lineEdit().selectAll()
    QTest.keyClicks(box, "0.01")
    QTest.keyClick(box, Qt.Key.Key_Return)
    assert widget.parameters()["prob_threshold"] == 0.01
    QTest.keyClick(box, Qt.Key.Key_Up)
    assert widget.parameters()["prob_threshold"] == 0.02
    QTest.keyClick(box, Qt.Key.Key_Down)
    QTest.keyClick(box, Qt.Key.Key_Down)
    assert widget.parameters()["prob_threshold"] is None


def test_up_from_model_is_the_chosen_models_own_threshold(make_napari_viewer, tmp_path):
    """One step up from "model" gives the threshold of the model chosen, read from its config
    (a model folder's config.json, a MONAI bundle's metadata, a weights file's JSON), and
    follows the choice; 0.5 where a model names none (before: 0.5, the bundled model's, for
    every model). The tooltip says the same."""
    import json

    def write(path, data):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    write(tmp_path / "strict" / "config.json", {"postprocess": {"prob_threshold": 0.9}})
    meta = {"napari_binseg": {"postprocess": {"prob_threshold": 0.35}}}
    write(tmp_path / "bundle" / "configs" / "metadata.json", meta)
    write(tmp_path / "w.json", {"postprocess": {"prob_threshold": 0.7}})
    (tmp_path / "w.safetensors").write_bytes(b"")
    write(tmp_path / "plain" / "config.json", {"network": {"name": "UNet"}})
    widget = PredictWidget(make_napari_viewer())
    box = widget.prob_threshold.native
    box.show()

    def first(source, path=None):
        widget.model_source.value = source
        if path is not None:
            widget.model_path.value = tmp_path / path
        widget.prob_threshold.value = 0
        click_up_arrow(box)
        return widget.parameters()["prob_threshold"]

    assert first("folder", "strict") == 0.9
    assert "one step up from model: 0.9." in widget.prob_threshold.tooltip
    box.stepBy(-1)
    assert widget.parameters()["prob_threshold"] == 0.89
    assert first("folder", "bundle") == 0.35
    assert first("file", "w.safetensors") == 0.7
    assert first("folder", "plain") == 0.5
    assert first("folder", "strict") == 0.9
    assert first("nuclei") == 0.5
    assert "one step up from model: 0.5." in widget.prob_threshold.tooltip


@pytest.mark.parametrize(
    ("cls", "opt"), WORD_OPTIONS, ids=[f"{c.section}.{o.name}" for c, o in WORD_OPTIONS]
)
def test_one_step_from_the_word_gives_the_first_value_and_back(qtbot, cls, opt):
    """Every "0 = word" number option: one step up gives its declared first value (a float
    option must declare one; an int one starts at its lowest number), a value the option
    accepts; a step down from there gives a smaller number, and one from the lowest number
    gives the word (None) again. The box shows the word."""
    form = OptionForm(cls, skip=_OWN_WAY)
    control = form.widgets[opt.name]
    assert form.values()[opt.name] is None
    if opt.kind is float:
        assert opt.first is not None, f"{cls.section}.{opt.name} declares no first value"
    first = opt.first if opt.first is not None else opt.low
    assert control.native.text() == opt.none_label
    control.native.stepBy(1)
    value = form.values()[opt.name]
    assert value == first == opt.check(first) and type(value) is opt.kind
    control.native.stepBy(-1)
    below = form.values()[opt.name]
    assert below is None if first == opt.low else 0 < below < first
    control.native.stepBy(-1000)  # down past the lowest number: the word, never below
    assert form.values()[opt.name] is None and control.native.text() == opt.none_label


def test_a_step_below_the_range_is_the_word(qtbot):
    """ThresholdOptions.clip takes 50..100 or off: down from 51 gives 50, then off (not 49,
    which the option would refuse); Page Up from off steps on from 99."""
    form = OptionForm(ThresholdOptions)
    box = form.widgets["clip"].native
    form.widgets["clip"].value = 51
    box.stepBy(-1)
    assert form.read().clip == 50
    box.stepBy(-1)
    assert form.read().clip is None
    box.stepBy(3)
    assert form.read().clip == 100  # 99, 100, then the box's ceiling


def test_a_radius_chosen_after_off_starts_at_the_first_value(make_napari_viewer):
    """Choosing "value" for the background radius shows 30 px (its first value), not the
    box's lowest number."""
    widget = ThresholdWidget(make_napari_viewer())
    widget.background._mode.value = widget.background._NUMBER
    assert widget.parameters()["background"] == 30.0


def test_min_confidence_model_off_and_numbers(make_napari_viewer):
    """The object-confidence floor: "model" (None, the model's own) by default, 0 is off (0,
    not "model", unlike the probability threshold), a number is that number; settings set it."""
    from napari_binseg.settings import PipelineSettings

    widget = PredictWidget(make_napari_viewer())
    box = widget.min_confidence.native
    assert box.text() == "model" and widget.parameters()["min_confidence"] is None
    widget.min_confidence.value = 0.0
    assert widget.parameters()["min_confidence"] == 0.0
    widget.min_confidence.value = 0.9
    assert widget.settings(PipelineSettings()).unet.min_confidence == 0.9
    widget.apply_settings(PipelineSettings("unet", unet={"min_confidence": 0.0}))
    assert widget.parameters()["min_confidence"] == 0.0
    widget.apply_settings(PipelineSettings("unet"))
    assert widget.parameters()["min_confidence"] is None
