"""The "Train" dock widget: fine-tune the bundled model (or train one from scratch) on
(Image, Labels) layer pairs painted in napari, with live training curves.

Training runs in a thread worker (:func:`napari_binseg.train`); Stop ends it after the current
step and keeps the best epoch so far, Pause holds it between steps. torch and monai are imported
by the core inside the worker: opening this widget never imports them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit
from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QPushButton

from ..unet.training import ARCHITECTURES, TrainConfig, annotated_planes
from ..unet.training.card import starting_model_kept
from ._base import BinsegWidget
from ._curves import TrainingCurves
from ._form import OptionForm
from ._layers import (
    current_index,
    image_data,
    labels_data,
    same_layer,
    spatial_meta,
    upsert_layer,
)

if TYPE_CHECKING:
    import napari

STARTS = (
    ("fine-tune the bundled model", "nuclei"),
    ("fine-tune a model folder", "folder"),
    ("train from scratch", "scratch"),
)


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
    title = "Train"
    run_text = "Train"

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Image, Labels

        from napari_binseg.options import TrainOptions

        self._layer_types = (Image, (Labels, Image))
        self.pairs: list[tuple[ComboBox, ComboBox]] = []
        self.add_pair()
        self.val_image = self.layer_combo(Image, label="validation image", optional=True)
        self.val_labels = self.layer_combo(
            Labels, label="validation labels", optional=True, prefer=("truth", "input")
        )
        self.start_from = ComboBox(
            label="start",
            choices=list(STARTS),
            value="nuclei",
            tooltip="Fine-tune the bundled nuclei model (fastest), a model of yours, or train "
            "a new network from scratch",
        )
        self.init_path = FileEdit(label="model folder", mode="d")
        self.architecture = ComboBox(
            label="architecture",
            choices=list(ARCHITECTURES),
            value="default",
            tooltip="Network preset of a new network (mobile: smallest and fastest)",
        )
        self.options = OptionForm(TrainOptions, skip=("init", "architecture"))
        for name, widget in self.options.widgets.items():
            setattr(self, name, widget)
        self.save_to = FileEdit(label="save model to", mode="d")
        self.save_to.tooltip = "Folder the trained model is written to (napari-binseg reads it)"
        self.export_bundle = CheckBox(text="also export a MONAI bundle", value=False)
        for name, w in (
            ("start_from", self.start_from),
            ("init_path", self.init_path),
            ("architecture", self.architecture),
            ("save_to", self.save_to),
        ):
            self.add_option(name, w)
        self.add_option("val_image", self.val_image, advanced=True)
        self.add_option("val_labels", self.val_labels, advanced=True)
        self.options.add_to(self, advanced=("steps_per_epoch", "minutes", "device"))
        self.add_option("export_bundle", self.export_bundle, advanced=True)
        self.start_from.changed.connect(self._show_start)
        self._show_start()

        pair_buttons = QHBoxLayout()
        self.add_pair_button = QPushButton("Add pair")
        self.remove_pair_button = QPushButton("Remove")
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
        self.pause_button.setToolTip("Hold training between steps (Stop keeps the best epoch)")
        self.pause_button.toggled.connect(self._pause)
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip(
            "Segment the visible plane of the first image with the trained model"
        )
        self.preview_button.setEnabled(False)
        self.preview_button.clicked.connect(self.preview)
        self.button_row.addWidget(self.pause_button)
        pair_buttons.addWidget(self.preview_button)
        self.cancel_button.setText("Stop")

        # No Qt parent: a late epoch report from the worker never hits a deleted object.
        self._epochs = _EpochRelay()
        self._epochs.epoch.connect(self._gui("_on_epoch"))
        self._training = False
        self.history: list[dict] = []
        self.model = None
        self.model_folder: str | None = None

    # -- form --------------------------------------------------------------------------------
    def add_pair(self, *_):
        """Add an (image, labels) row; the labels list shows Labels layers first."""
        image_type, labels_types = self._layer_types
        n = len(self.pairs) + 1
        suffix = "" if n == 1 else f" {n}"
        image = self.layer_combo(image_type, label=f"image{suffix}")
        labels = self.layer_combo(
            labels_types, label=f"labels{suffix}", prefer=("truth", "input", "count", "labels")
        )
        # Rows of the form itself (a box of pairs in a row left the layer names 11 characters).
        row = 2 * len(self.pairs)
        self.add_option(f"image{suffix}", image, index=row)
        self.add_option(f"labels{suffix}", labels, index=row + 1)
        self.pairs.append((image, labels))
        self.fit_labels()

    def remove_pair(self, *_):
        if len(self.pairs) > 1:
            for w in self.pairs.pop():
                w.disconnect_viewer()
                self._disconnects.remove(w.disconnect_viewer)
                self.form.remove(w)

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
        architecture = self.architecture.value if start == "scratch" else None
        return TrainConfig(init=init, architecture=architecture, **self.options.values())

    def training_layers(self):
        """The chosen (image, labels) layer pairs and the optional validation pair."""
        pairs = []
        for image_combo, labels_combo in self.pairs:
            img_layer, lab_layer = image_combo.value, labels_combo.value
            if img_layer is None or lab_layer is None:
                raise ValueError("pairs: choose an image and a labels layer for every pair")
            if same_layer(img_layer, lab_layer):
                raise ValueError(
                    f"pairs: {img_layer.name!r} is chosen as image and as labels; choose the "
                    "Labels layer of its painted nuclei (File > New Layer > Labels to paint one)"
                )
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
        self.history = []
        self.curves.set_history([])
        control = self._control
        # The core's progress callback holds while paused (RunControl.resume).
        progress = self.progress_callback
        epochs = self._epochs

        def on_epoch(record):
            if not control.closed:
                epochs.epoch.emit(record)

        def work():
            from napari_binseg.unet.training import StartingModelKept, export_bundle, train

            images, labels, validation = training_data(pairs, validation_pair)
            with warnings.catch_warnings():
                # Said by the status line and a notification of its own (_trained).
                warnings.simplefilter("ignore", StartingModelKept)
                model, history = train(
                    images,
                    labels,
                    config=config,
                    validation=validation,
                    out=out,
                    progress=progress,
                    on_epoch=on_epoch,
                    stop=control.stop.is_set,
                )
            if bundle:
                export_bundle(out, bundle)
            return model, history, out

        worker = self.start(work, on_result=self._trained, label="Training")
        if worker is not None:
            self._training = True
            self.pause_button.setEnabled(True)
            self.preview_button.setEnabled(False)
            worker.finished.connect(self._gui("_training_finished"))
        return worker

    def cancel(self):
        """Stop training after the current step, keeping the best epoch (a preview: cancel it).

        A paused run is released at once.
        """
        if self.worker is None:
            return
        if not self._training:  # a preview, not a training run
            super().cancel()
            return
        self._control.stop.set()
        self._control.resume.set()
        self.status.setText("Stopping (keeping the best epoch)...")

    def _close_gracefully(self) -> bool:
        # Closing during training stops it like Stop: the best epoch so far is saved.
        return self._training

    def _pause(self, paused):
        if not self.busy or not self._training:
            paused = False
        if paused:
            self._control.resume.clear()
            self.pause_button.setText("Resume")
            self.status.setText("Paused.")
        else:
            if self.busy:
                self._control.resume.set()
            self.pause_button.setText("Pause")
            if self.busy and self._training and not self._control.stop.is_set():
                self.status.setText("Training...")

    @property
    def paused(self) -> bool:
        return self.busy and not self._control.resume.is_set()

    def _on_epoch(self, record):
        self.history.append(record)
        self.curves.set_history(self.history)
        if record["train_loss"] is None:  # epoch 0 of a fine-tune
            text = "epoch 0 (the starting model): "
        else:
            text = (
                f"epoch {record['epoch']} (step {record['step']}): train loss "
                f"{record['train_loss']:.3f}, "
            )
        text += f"val loss {record['val_loss']:.3f}, val F1 {record['val_f1']:.3f}"
        # An epoch reported just before Pause (or Stop) was pressed must not hide that state.
        if self.paused:
            self.status.setText(f"Paused. Last {text}.")
        elif self._control.stop.is_set():
            self.status.setText(f"Stopping (keeping the best epoch)... Last {text}.")
        else:
            self.status.setText(f"{text}...")

    def _trained(self, result):
        model, history, out = result
        self.model, self.model_folder = model, out
        tr = model.config["training"]
        if tr.get("init_kept"):
            message = starting_model_kept(tr)
            self.status.setText(
                f"Saved to {out} after {tr['steps_done']} steps ({tr['stopped_by']}): {message}."
            )
            show_warning(f"napari-binseg train: {message}")
            return
        self.status.setText(
            f"Saved to {out}: best validation F1@0.5 {tr['best_val_f1']:.3f} at step "
            f"{tr['best_step']} of {tr['steps_done']} ({tr['stopped_by']})."
        )

    def _on_errored(self, exc):
        # A diverged run (non-finite loss) saved its best epoch: keep it for Preview.
        model = getattr(exc, "model", None)
        if model is not None and self._training:
            self.model, self.model_folder = model, str(self.save_to.value)
        super()._on_errored(exc)

    def _training_finished(self):
        self._training = False
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

            return segment(np.asarray(data[index]), model, progress=progress)

        def done(labels):
            n = int(labels.max(initial=0))
            # Only the plane: a one-plane layer placed at it (napari shows it there only),
            # not a stack of zeros as large as the image.
            geometry = spatial_meta(layer)
            scale, translate = geometry["scale"], list(geometry["translate"])
            for axis, i in enumerate(index):
                translate[axis] += i * scale[axis]
            geometry["translate"] = tuple(translate)
            upsert_layer(
                self.viewer,
                labels[(np.newaxis,) * len(index)],
                layer_type="labels",
                source=layer,
                widget=self.widget_id,
                role="preview",
                name=f"{layer.name} [train preview]",
                metadata={"model_path": self.model_folder, "plane": list(index)},
                geometry=geometry,
            )
            self.status.setText(f"Preview: {n} objects on plane {index or '2D'}.")

        return self.start(work, on_result=done, label="Previewing")
