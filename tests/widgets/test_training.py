"""The "Train" widget in a real viewer: start, stop keeping the best epoch, preview, and
clear messages for unusable layers (tiny network, CPU)."""

import json
import threading

import numpy as np
import pytest

from napari_binseg import synthetic_nuclei
from napari_binseg._widgets.training import TrainWidget
from tests.widgets._helpers import output_layers, run_and_cancel, run_and_wait


@pytest.fixture
def stack():
    """Two 2D synthetic images stacked, the second plane annotated only."""
    (a, la), (b, lb) = (synthetic_nuclei((96, 96), radius=6, seed=s) for s in (3, 4))
    return np.stack([a, b]), np.stack([np.zeros_like(la), lb])


def _widget(viewer, tmp_path, **values):
    widget = TrainWidget(viewer)
    widget.start_from.value = "scratch"
    widget.architecture.value = "mobile"
    widget.epochs.value = 3
    widget.steps_per_epoch.value = 5
    widget.patch_size.value = 64
    widget.batch_size.value = 1
    widget.device.value = "cpu"
    widget.save_to.value = tmp_path / "model"
    for name, value in values.items():
        getattr(widget, name).value = value
    return widget


def test_train_widget_stop_keeps_best_and_previews(
    make_napari_viewer, qtbot, tmp_path, stack, errors
):
    from napari_binseg.unet import load_model, segment

    viewer = make_napari_viewer()
    image = viewer.add_image(stack[0], name="cells")
    labels = viewer.add_labels(stack[1], name="painted")
    widget = _widget(viewer, tmp_path)
    assert not widget.architecture.native.isHidden() and widget.init_path.native.isHidden()
    assert widget.pairs[0][0].value is image and widget.pairs[0][1].value is labels

    calls = run_and_cancel(qtbot, widget, timeout=120_000)  # Stop at the first step
    assert errors == []
    assert calls == [(1, 15)]
    assert [h["step"] for h in widget.history] == [1]  # validated once more on Stop
    assert widget.curves.records == widget.history
    assert "best validation F1@0.5" in widget.status.text() and "(stop)" in widget.status.text()
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())["training"]
    assert cfg["steps_done"] == 1 and cfg["stopped_by"] == "stop"
    assert cfg["data"]["planes"] == 1 and cfg["data"]["nuclei"] == int(stack[1].max())
    assert cfg["config"]["architecture"] == "mobile" and cfg["config"]["init"] is None

    assert widget.preview_button.isEnabled()
    viewer.dims.set_current_step(0, 1)
    widget.preview()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    (preview,) = output_layers(viewer, "train", role="preview")
    expected = segment(stack[0][1], load_model(tmp_path / "model", device="cpu"))
    # Only the previewed plane is held (not a stack of zeros), placed at that plane.
    assert preview.data.shape == (1, *expected.shape) and preview.data.nbytes == expected.nbytes
    np.testing.assert_array_equal(preview.data[0], expected)
    np.testing.assert_array_equal(preview.data_to_world((0, 5, 7)), image.data_to_world((1, 5, 7)))
    assert preview.metadata["napari_binseg"]["plane"] == [1]


def test_train_widget_runs_to_the_end(make_napari_viewer, qtbot, tmp_path, stack, errors):
    viewer = make_napari_viewer()
    viewer.add_image(stack[0], name="cells")
    viewer.add_labels(stack[1], name="painted")
    widget = _widget(viewer, tmp_path, epochs=2, steps_per_epoch=2, export_bundle=True)
    run_and_wait(qtbot, widget, timeout=120_000)
    assert errors == []
    assert [h["step"] for h in widget.history] == [2, 4]
    assert widget.progress_bar.value() == widget.progress_bar.maximum() == 4
    assert (tmp_path / "model_bundle" / "models" / "model.pt").is_file()


@pytest.mark.parametrize(
    "case, message",
    [
        ("shape", r"'cells' with 'painted': image shape (2, 96, 96) and labels shape (96, 96)"),
        ("empty", "'cells' with 'painted': the labels are empty; paint some nuclei first"),
        ("float", "labels are float32 (floating point); instance labels must be integers"),
        ("rgb", "layer 'cells' is RGB(A)"),
    ],
)
def test_train_widget_unusable_layers(
    make_napari_viewer, qtbot, tmp_path, stack, errors, case, message
):
    viewer = make_napari_viewer()
    image, labels = stack
    if case == "rgb":
        image = np.stack([image[1]] * 3, axis=-1).astype(np.uint8)
        labels = labels[1]
    viewer.add_image(image, name="cells", rgb=case == "rgb")
    if case == "float":
        viewer.add_image(labels.astype(np.float32), name="painted")
    else:
        labels = {"shape": labels[1], "empty": np.zeros_like(labels)}.get(case, labels)
        viewer.add_labels(labels, name="painted")
    widget = _widget(viewer, tmp_path)
    widget.pairs[0][0].value = viewer.layers["cells"]
    widget.pairs[0][1].value = viewer.layers["painted"]
    run_and_wait(qtbot, widget)  # the layers are read and checked in the worker
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "model").exists() and widget.history == []


def _hold_first_report(widget):
    """Hold the worker at its first progress report until ``gate`` is set; ``arrived`` tells
    that it got there (training has started: torch loaded, one step done)."""
    arrived, gate = threading.Event(), threading.Event()
    original = widget.progress_callback

    def held(done, total):
        if not arrived.is_set():
            arrived.set()
            gate.wait(120)
        original(done, total)

    widget.progress_callback = held
    return arrived, gate


def _start_paused(widget):
    """Run, press Pause while the worker is held at the report of step 1, then let it go on:
    the paused report holds it there (no race with the epoch reported at step 5)."""
    arrived, gate = _hold_first_report(widget)
    widget.run()
    assert arrived.wait(120)
    widget.pause_button.setChecked(True)
    gate.set()


def test_train_widget_pause_holds_then_stop(make_napari_viewer, qtbot, tmp_path, stack, errors):
    viewer = make_napari_viewer()
    viewer.add_image(stack[0], name="cells")
    viewer.add_labels(stack[1], name="painted")
    widget = _widget(viewer, tmp_path)
    _start_paused(widget)
    qtbot.wait(1000)  # ~10 steps of this tiny network would run unpaused
    assert widget.busy and widget.paused and widget.status.text() == "Paused."
    assert widget.progress_bar.value() == 0 and widget.history == []
    widget.cancel()  # Stop releases the paused worker
    qtbot.waitUntil(lambda: not widget.busy, timeout=120_000)
    assert errors == [] and len(widget.history) == 1
    # Step 1 (held at its report) is finished; Stop validates right after it.
    assert widget.history[0]["step"] == 1 and widget.progress_bar.value() == 1
    assert not widget.pause_button.isChecked() and "(stop)" in widget.status.text()


def test_train_widget_epoch_report_keeps_paused_status(make_napari_viewer, tmp_path, stack):
    viewer = make_napari_viewer()
    widget = _widget(viewer, tmp_path)
    widget.worker = object()  # as while a training run is held
    widget._training = True
    widget.pause_button.setEnabled(True)
    widget.pause_button.setChecked(True)
    record = {"epoch": 1, "step": 5, "train_loss": 0.5, "val_loss": 0.4, "val_f1": 0.3}
    widget._on_epoch(record)  # an epoch queued before Pause was pressed arrives after it
    assert widget.status.text().startswith("Paused.") and "epoch 1" in widget.status.text()
    widget.worker = None


@pytest.mark.parametrize("close", ["viewer", "widget"])
def test_train_widget_closing_while_paused_stops_and_saves(
    make_napari_viewer, qtbot, tmp_path, stack, errors, close
):
    """Closing napari (or the widget) while training is paused releases the worker: it ends
    like Stop, the best epoch is saved, and nothing touches the deleted widget."""
    viewer = make_napari_viewer()
    viewer.add_image(stack[0], name="cells")
    viewer.add_labels(stack[1], name="painted")
    widget = _widget(viewer, tmp_path)
    if close == "viewer":
        viewer.window.add_dock_widget(widget)
    _start_paused(widget)
    qtbot.wait(200)
    control = widget._control
    if close == "viewer":
        viewer.close()
    else:
        widget.close()
        widget.deleteLater()
    assert control.idle.wait(120), "the paused worker was not released"
    qtbot.wait(200)  # late signals of the worker are delivered (and ignored)
    assert errors == []
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())["training"]
    assert cfg["stopped_by"] == "stop" and cfg["steps_done"] == 1


def test_train_widget_defaults_by_role(make_napari_viewer, tmp_path, stack):
    """The pair is the image and the painted labels, never the U-Net probability map or an
    error map made later; the optional validation pair stays empty."""
    viewer = make_napari_viewer()
    image = viewer.add_image(stack[0], name="cells")
    painted = viewer.add_labels(stack[1], name="painted")
    viewer.add_image(
        stack[0].astype(np.float32),
        name="cells [unet probability]",
        metadata={
            "napari_binseg": {"widget": "predict", "source": "cells", "role": "probability"}
        },
    )
    viewer.add_labels(
        stack[1] > 0,
        name="painted [errors]",
        metadata={"napari_binseg": {"widget": "evaluate", "source": "painted"}},
    )
    widget = TrainWidget(viewer)
    assert widget.pairs[0][0].value is image and widget.pairs[0][1].value is painted
    assert widget.val_image.value is None and widget.val_labels.value is None


def test_train_widget_refuses_the_image_as_its_own_labels(make_napari_viewer, tmp_path, errors):
    """With no Labels layer yet, both pickers show the image: one message says what to do,
    before any worker starts."""
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((32, 32), np.uint8), name="cells")
    widget = _widget(viewer, tmp_path)
    assert widget.pairs[0][0].value is layer and widget.pairs[0][1].value is layer
    assert widget.run() is None and not widget.busy
    assert len(errors) == 1 and "'cells' is chosen as image and as labels" in errors[0]


def test_train_widget_pairs_are_rows_of_the_form(make_napari_viewer, qtbot, tmp_path):
    """Image and labels pickers are full rows (in a box of their own they were as narrow as
    "nuclei_2d_s" for both the image and its ground truth at 1366x768); Add pair puts the
    second pair under the first, Remove takes it away."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    viewer.open_sample("napari-binseg", "nuclei_2d_small")
    _, widget = viewer.window.add_plugin_dock_widget("napari-binseg", "Train")
    qtbot.wait(50)
    names = [w.name for w in widget.form]
    assert names[:3] == ["image", "labels", "start_from"]
    image, labels = widget.pairs[0]
    assert labels.value.name == "nuclei_2d_small ground truth"
    assert labels.native.width() >= widget.start_from.native.width() - 2
    widget.add_pair()
    assert [w.name for w in widget.form][:5] == [
        "image",
        "labels",
        "image 2",
        "labels 2",
        "start_from",
    ]
    widget.remove_pair()
    assert [w.name for w in widget.form] == names


def test_train_widget_says_the_starting_model_was_kept(
    make_napari_viewer, qtbot, tmp_path, stack, errors, monkeypatch
):
    """A fine-tune of a good model at lr 0.5 only gets worse: the curves start at epoch 0
    (the starting model), the status line and a warning say the saved model is the
    starting model."""
    import napari_binseg as nb
    from napari_binseg._widgets import training
    from tests.unet.conftest import TINY

    good = tmp_path / "good"
    options = dict(architecture=TINY, init=None, epochs=2, steps_per_epoch=10, lr=2e-2)
    options |= dict(patch_size=64, batch_size=2, device="cpu", threads=1)
    nb.train(stack[0][1], stack[1][1], config=options, out=good)
    shown = []
    monkeypatch.setattr(training, "show_warning", shown.append)
    viewer = make_napari_viewer()
    viewer.add_image(stack[0], name="cells")
    viewer.add_labels(stack[1], name="painted")
    widget = _widget(viewer, tmp_path, epochs=2, steps_per_epoch=2, lr=0.5)
    widget.start_from.value = "folder"
    widget.init_path.value = good
    run_and_wait(qtbot, widget, timeout=120_000)
    assert errors == []
    assert [(h["epoch"], h["step"]) for h in widget.history] == [(0, 0), (1, 2), (2, 4)]
    widget.curves.grab()  # paints epoch 0, which has no train loss
    start = widget.history[0]["val_f1"]
    assert start > max(h["val_f1"] for h in widget.history[1:])
    text = widget.status.text()
    assert text.startswith(f"Saved to {tmp_path / 'model'} after 4 steps (steps): no epoch")
    assert f"(validation F1@0.5 {start:.4f} at epoch 0" in text
    assert text.endswith("the model written is the starting model, unchanged.")
    assert len(shown) == 1 and "no epoch beat the starting model" in shown[0]
