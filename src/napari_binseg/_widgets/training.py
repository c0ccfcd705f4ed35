"""The "Train U-Net" dock widget: fine-tune the bundled model (or train one from scratch) on
(Image, Labels) layer pairs painted in napari, with live training curves.

Training runs in a thread worker (:func:`napari_binseg.train`); Stop ends it after the current
step and keeps the best epoch so far, Pause holds it between steps. torch and monai are imported
by the core inside the worker: opening this widget never imports them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, SpinBox
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QPushButton

from ..unet.training import ARCHITECTURES, AUGMENTATIONS, LOSSES, TrainConfig, annotated_planes
from ._common import (
    BinsegWidget,
    current_index,
    image_data,
    labels_data,
    layer_combo,
    upsert_layer,
)
from ._curves import TrainingCurves

if TYPE_CHECKING:
    import napari

STARTS = (
    ("fine-tune the bundled model", "nuclei"),
    ("fine-tune a model folder", "folder"),
    ("train from scratch", "scratch"),
)
DEVICES = ("auto", "cpu", "cuda", "mps")


class _EpochRelay(QObject):
    """Carries ``on_epoch(record)`` calls from the worker thread to the GUI thread."""

    epoch = Signal(object)


def training_data(pairs, validation):
    """Arrays of the layer pairs, checked (ValueError names the layers).

    Runs in the worker: it reads whole layers (a lazy stack is loaded) and checks every plane.
    """
    images, labels = [], []
    for img_layer, lab_layer in pairs:
        image = image_data(img_layer, name="image")
        lab = np.asarray(labels_data(lab_layer, name="labels"))
        annotated_planes(image, lab, name=f"{img_layer.name!r} with {lab_layer.name!r}")
        images.append(image)
        labels.append(lab)
    if validation is not None:
        img_layer, lab_layer = validation
        validation = (
            image_data(img_layer, name="validation image"),
            np.asarray(labels_data(lab_layer, name="validation labels")),
        )
        annotated_planes(*validation, name="validation pair")
    return images, labels, validation


class TrainWidget(BinsegWidget):
    """Train a U-Net on annotated layers; the model is saved to the chosen folder."""

    widget_id = "train"
    run_text = "Train"

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Image, Labels

        defaults = TrainConfig()
        self._layer_types = (Image, (Labels, Image))
        self.pairs: list[tuple[ComboBox, ComboBox]] = []
        self.pairs_box = Container(labels=True)
        self.add_pair()
        self.val_image = layer_combo(napari_viewer, Image, label="validation image", optional=True)
        self.val_labels = layer_combo(
            napari_viewer, Labels, label="validation labels", optional=True
        )
        self.val_fraction = FloatSpinBox(
            label="validation share", min=0.0, max=0.9, step=0.05, value=defaults.val_fraction
        )
        self.start_from = ComboBox(label="start", choices=list(STARTS), value="nuclei")
        self.init_path = FileEdit(label="model folder", mode="d")
        self.architecture = ComboBox(
            label="architecture", choices=list(ARCHITECTURES), value="default"
        )
        self.loss = ComboBox(label="loss", choices=list(LOSSES), value=defaults.loss)
        self.epochs = SpinBox(label="epochs", min=1, max=10_000, value=defaults.epochs)
        self.steps_per_epoch = SpinBox(
            label="steps per epoch", min=1, max=10_000, value=defaults.steps_per_epoch
        )
        self.lr = FloatSpinBox(
            label="learning rate", min=1e-6, max=0.5, step=1e-4, value=defaults.lr
        )
        self.lr.native.setDecimals(6)
        self.patch_size = SpinBox(
            label="patch size", min=32, max=1024, step=32, value=defaults.patch_size
        )
        self.batch_size = SpinBox(label="batch size", min=1, max=64, value=defaults.batch_size)
        self.augment = {name: CheckBox(text=name, value=True) for name in AUGMENTATIONS}
        augment_box = Container(
            label="augment", layout="horizontal", labels=False, widgets=list(self.augment.values())
        )
        self.device = ComboBox(label="device", choices=list(DEVICES), value="auto")
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.save_to = FileEdit(label="save model to", mode="d")
        self.export_bundle = CheckBox(text="also export a MONAI bundle", value=False)
        for name, w in (
            ("pairs", self.pairs_box),
            ("val_image", self.val_image),
            ("val_labels", self.val_labels),
            ("val_fraction", self.val_fraction),
            ("start_from", self.start_from),
            ("init_path", self.init_path),
            ("architecture", self.architecture),
            ("loss", self.loss),
            ("epochs", self.epochs),
            ("steps_per_epoch", self.steps_per_epoch),
            ("lr", self.lr),
            ("patch_size", self.patch_size),
            ("batch_size", self.batch_size),
            ("augment", augment_box),
            ("device", self.device),
            ("seed", self.seed),
            ("save_to", self.save_to),
            ("export_bundle", self.export_bundle),
        ):
            w.name = name
            self.form.append(w)
        self.start_from.changed.connect(self._show_start)
        self._show_start()

        pair_buttons = QHBoxLayout()
        self.add_pair_button = QPushButton("Add pair")
        self.remove_pair_button = QPushButton("Remove pair")
        self.add_pair_button.clicked.connect(self.add_pair)
        self.remove_pair_button.clicked.connect(self.remove_pair)
        pair_buttons.addWidget(self.add_pair_button)
        pair_buttons.addWidget(self.remove_pair_button)
        self._extra.addLayout(pair_buttons)
        self.curves = TrainingCurves()
        self._extra.addWidget(self.curves)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setEnabled(False)
        self.pause_button.toggled.connect(self._pause)
        self.preview_button = QPushButton("Preview on the visible plane")
        self.preview_button.setEnabled(False)
        self.preview_button.clicked.connect(self.preview)
        self._extra.addWidget(self.pause_button)
        self._extra.addWidget(self.preview_button)
        self.cancel_button.setText("Stop")

        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._epochs = _EpochRelay(self)
        self._epochs.epoch.connect(self._on_epoch)
        self.history: list[dict] = []
        self.model = None
        self.model_folder: str | None = None

    # -- form --------------------------------------------------------------------------------
    def add_pair(self, *_):
        """Add an (image, labels) row; the labels list shows Labels layers first."""
        image_type, labels_types = self._layer_types
        n = len(self.pairs) + 1
        suffix = "" if n == 1 else f" {n}"
        image = layer_combo(self.viewer, image_type, label=f"image{suffix}")
        labels = layer_combo(self.viewer, labels_types, label=f"labels{suffix}")
        self.pairs.append((image, labels))
        self.pairs_box.extend([image, labels])

    def remove_pair(self, *_):
        if len(self.pairs) > 1:
            for w in self.pairs.pop():
                self.pairs_box.remove(w)

    def _show_start(self, *_):
        start = self.start_from.value
        self.init_path.visible = start == "folder"
        self.architecture.visible = start == "scratch"

    def config(self) -> TrainConfig:
        """The :class:`TrainConfig` of the form (ValueError for missing choices)."""
        start = self.start_from.value
        init = {"nuclei": "nuclei", "scratch": None}.get(start)
        if start == "folder":
            init = str(self.init_path.value or "")
            if init in ("", "."):
                raise ValueError("model folder: choose the model to fine-tune")
        return TrainConfig(
            init=init,
            architecture=self.architecture.value if start == "scratch" else None,
            loss=self.loss.value,
            epochs=int(self.epochs.value),
            steps_per_epoch=int(self.steps_per_epoch.value),
            lr=float(self.lr.value),
            patch_size=int(self.patch_size.value),
            batch_size=int(self.batch_size.value),
            augment=tuple(name for name, box in self.augment.items() if box.value),
            val_fraction=float(self.val_fraction.value),
            device=self.device.value,
            seed=int(self.seed.value),
        )

    def training_layers(self):
        """The chosen (image, labels) layer pairs and the optional validation pair."""
        pairs = []
        for image_combo, labels_combo in self.pairs:
            img_layer, lab_layer = image_combo.value, labels_combo.value
            if img_layer is None or lab_layer is None:
                raise ValueError("pairs: choose an image and a labels layer for every pair")
            pairs.append((img_layer, lab_layer))
        if (self.val_image.value is None) != (self.val_labels.value is None):
            raise ValueError("validation: choose both a validation image and its labels, or none")
        validation = None
        if self.val_image.value is not None:
            validation = (self.val_image.value, self.val_labels.value)
        return pairs, validation

    # -- running -----------------------------------------------------------------------------
    def run(self):
        try:
            config = self.config()
            pairs, validation_pair = self.training_layers()
            out = str(self.save_to.value or "")
            if out in ("", "."):
                raise ValueError("save model to: choose a folder for the trained model")
        except ValueError as exc:
            self.report_error(exc)
            return None
        bundle = out.rstrip("/\\") + "_bundle" if self.export_bundle.value else None
        self._stop.clear()
        self._running.set()
        self.history = []
        self.curves.set_history([])
        progress = self.progress_callback
        running = self._running

        def paused_progress(done, total):
            running.wait()
            progress(done, total)

        def work():
            from napari_binseg.unet.training import export_bundle, train

            images, labels, validation = training_data(pairs, validation_pair)
            model, history = train(
                images,
                labels,
                config=config,
                validation=validation,
                out=out,
                progress=paused_progress,
                on_epoch=self._epochs.epoch.emit,
                stop=self._stop.is_set,
            )
            if bundle:
                export_bundle(out, bundle)
            return model, history, out

        worker = self.start(work, on_result=self._trained, label="Training")
        if worker is not None:
            self.pause_button.setEnabled(True)
            self.preview_button.setEnabled(False)
            worker.finished.connect(self._training_finished)
        return worker

    def cancel(self):
        """Stop training after the current step, keeping the best epoch (a preview: cancel it)."""
        if self.worker is None:
            return
        if not self.pause_button.isEnabled():  # a preview, not a training run
            super().cancel()
            return
        self._stop.set()
        self._running.set()
        self.status.setText("Stopping (keeping the best epoch)...")

    def _pause(self, paused):
        if paused:
            self._running.clear()
            self.pause_button.setText("Resume")
            self.status.setText("Paused.")
        else:
            self._running.set()
            self.pause_button.setText("Pause")
            self.status.setText("Training...")

    def _on_epoch(self, record):
        self.history.append(record)
        self.curves.set_history(self.history)
        self.status.setText(
            f"epoch {record['epoch']} (step {record['step']}): train loss "
            f"{record['train_loss']:.3f}, val loss {record['val_loss']:.3f}, "
            f"val F1 {record['val_f1']:.3f}..."
        )

    def _trained(self, result):
        model, history, out = result
        self.model, self.model_folder = model, out
        tr = model.config["training"]
        self.status.setText(
            f"Saved to {out}: best validation F1@0.5 {tr['best_val_f1']:.3f} at step "
            f"{tr['best_step']} of {tr['steps_done']} ({tr['stopped_by']})."
        )

    def _training_finished(self):
        self.pause_button.setChecked(False)
        self.pause_button.setEnabled(False)
        self.preview_button.setEnabled(self.model is not None)

    def preview(self, *_):
        """Segment the visible plane of the first pair's image with the trained model."""
        layer = self.pairs[0][0].value
        if self.model is None or layer is None:
            return None
        data = image_data(layer)
        index = current_index(self.viewer, layer)
        model = self.model
        progress = self.progress_callback

        def work():
            from napari_binseg.unet import segment

            labels = segment(np.asarray(data[index]), model, progress=progress)
            if not index:
                return labels
            full = np.zeros(data.shape, labels.dtype)  # a Labels layer over the whole stack
            full[index] = labels
            return full

        def done(full):
            n = int(full[index].max(initial=0))
            upsert_layer(
                self.viewer,
                full,
                layer_type="labels",
                source=layer,
                widget=self.widget_id,
                role="preview",
                name=f"{layer.name} [train preview]",
                metadata={"model_path": self.model_folder, "plane": list(index)},
            )
            self.status.setText(f"Preview: {n} objects on plane {index or '2D'}.")

        return self.start(work, on_result=done, label="Previewing")
