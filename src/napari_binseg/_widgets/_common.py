"""Pieces every napari-binseg widget shares: layer pickers, the run/cancel/progress bar, the
thread worker plumbing and the output-layer bookkeeping.

Widgets stay thin: they read layers, call a core function in a worker and write one output
layer per (widget, input layer), updated in place on every re-run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import FunctionWorker

from napari_binseg import __version__

if TYPE_CHECKING:
    import napari

METADATA_KEY = "napari_binseg"


class Cancelled(Exception):
    """Raised from the progress callback when the user pressed Cancel."""


class _ProgressRelay(QObject):
    """Carries ``progress(done, total)`` calls from the worker thread to the GUI thread."""

    progressed = Signal(int, int)


def layer_combo(viewer, layer_types: type | tuple, *, label: str, optional=False) -> ComboBox:
    """A ComboBox listing the viewer's layers of ``layer_types``, kept in sync with the viewer.

    The choices are recomputed when layers are added, removed, reordered or renamed, so the
    widget works whether or not it is docked.
    """
    layer_types = layer_types if isinstance(layer_types, tuple) else (layer_types,)

    def choices(_widget=None):
        # Layers of the first type first (e.g. Labels before Image for a mask), newest first.
        found = [
            (layer.name, layer)
            for kind in layer_types
            for layer in reversed(viewer.layers)
            if isinstance(layer, kind)
        ]
        seen = set()
        found = [c for c in found if not (id(c[1]) in seen or seen.add(id(c[1])))]
        return ([("(none)", None)] if optional else []) + found

    combo = ComboBox(label=label, choices=choices, nullable=optional)

    def refresh(event=None):
        current = combo.value
        combo.reset_choices()
        if current is not None and current in [v for _, v in choices()]:
            combo.value = current

    def watch_name(event):
        layer = event.value
        layer.events.name.connect(refresh)
        refresh()

    viewer.layers.events.inserted.connect(watch_name)
    viewer.layers.events.removed.connect(refresh)
    viewer.layers.events.reordered.connect(refresh)
    for layer in viewer.layers:
        layer.events.name.connect(refresh)
    combo.reset_choices()
    return combo


def spatial_meta(layer) -> dict:
    """Layer geometry to copy onto an output layer: scale, translate, units, axis labels."""
    meta = {"scale": tuple(layer.scale), "translate": tuple(layer.translate)}
    for attr in ("units", "axis_labels"):
        if hasattr(layer, attr):  # napari >= 0.6
            meta[attr] = tuple(getattr(layer, attr))
    return meta


def jsonable(value):
    """Metadata values as plain Python (floats, lists, str) so they survive saving."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def find_output(viewer, *, widget: str, source: str, role: str = "main", layer_type=None):
    """The output layer a widget made earlier for the input layer named ``source``, or None."""
    for layer in viewer.layers:
        meta = layer.metadata.get(METADATA_KEY) if isinstance(layer.metadata, dict) else None
        if (
            meta
            and meta.get("widget") == widget
            and meta.get("source") == source
            and meta.get("role", "main") == role
            and (layer_type is None or isinstance(layer, layer_type))
        ):
            return layer
    return None


def upsert_layer(
    viewer,
    data,
    *,
    layer_type: str,
    source,
    widget: str,
    name: str,
    metadata: dict,
    role: str = "main",
    geometry: dict | None = None,
    **kwargs,
):
    """Add an output layer, or update the one this widget made before for ``source``.

    Parameters
    ----------
    viewer : napari.Viewer
    data : array
        Layer data.
    layer_type : {"labels", "image", "points"}
    source : napari.layers.Layer
        The input layer: the output is named after it and takes its scale, translate, units
        and axis labels (unless ``geometry`` is given).
    widget : str
        Which widget made the output; with ``source.name`` and ``role`` it identifies the layer
        to update on a re-run.
    name : str
        Layer name, e.g. ``"nuclei [otsu]"``.
    metadata : dict
        Method, parameters and results, stored under ``layer.metadata["napari_binseg"]``.
    role : str
        Distinguishes several outputs of one widget (e.g. ``"points"``, ``"probability"``).
    **kwargs
        Extra keyword arguments for ``viewer.add_<layer_type>`` (e.g. ``features``); on an
        update, they are set as attributes.

    Returns
    -------
    layer : napari.layers.Layer
    """
    import napari.layers

    cls = {
        "labels": napari.layers.Labels,
        "image": napari.layers.Image,
        "points": napari.layers.Points,
    }[layer_type]
    meta = {
        METADATA_KEY: jsonable(
            {"widget": widget, "source": source.name, "role": role, "version": __version__}
            | metadata
        )
    }
    geometry = spatial_meta(source) if geometry is None else geometry
    layer = find_output(viewer, widget=widget, source=source.name, role=role, layer_type=cls)
    if layer is None:
        add = getattr(viewer, f"add_{layer_type}")
        return add(data, name=name, metadata=meta, **geometry, **kwargs)
    if np.ndim(data) != layer.ndim and layer_type != "points":
        # A different dimensionality cannot be set in place; replace the layer at its index.
        index = viewer.layers.index(layer)
        viewer.layers.remove(layer)
        new = getattr(viewer, f"add_{layer_type}")(
            data, name=name, metadata=meta, **geometry, **kwargs
        )
        viewer.layers.move(viewer.layers.index(new), index)
        return new
    layer.data = data
    for attr, value in geometry.items():
        setattr(layer, attr, value)
    for attr, value in kwargs.items():
        setattr(layer, attr, value)
    layer.metadata = meta
    layer.name = name
    layer.refresh()
    return layer


def current_index(viewer, layer) -> tuple[int, ...]:
    """Indices of the leading (non-plane) axes of ``layer`` at the viewer's current point.

    Through the layer's own transform, so layers of another scale or translate get their own
    plane, not the viewer's step number.
    """
    if layer.ndim <= 2:
        return ()
    point = np.asarray(viewer.dims.point)[-layer.ndim :]
    coords = np.asarray(layer.world_to_data(point))[: layer.ndim - 2]
    data = layer.data[0] if layer.multiscale else layer.data
    shape = data.shape[: layer.ndim - 2]
    return tuple(int(np.clip(np.round(c), 0, s - 1)) for c, s in zip(coords, shape, strict=True))


class BinsegWidget(QWidget):
    """Base dock widget: a parameter form, Run / Cancel buttons, a progress bar, a status line.

    Subclasses fill ``self.form`` (a magicgui Container) and implement ``run``, which calls
    :meth:`start` with the core function to execute in a thread worker.
    """

    widget_id = "base"
    run_text = "Run"
    #: Widgets whose parameters are a part of the pipeline settings get Save/Load buttons and
    #: implement ``settings(base)`` (``base`` with their part set from the form) and
    #: ``apply_settings(settings)`` (the form from their part).
    has_settings = False

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.worker: FunctionWorker | None = None
        self.last_error: str | None = None
        self._cancel = threading.Event()

        self.form = Container(labels=True)
        self.run_button = QPushButton(self.run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v / %m")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)

        self._relay = _ProgressRelay(self)
        self._relay.progressed.connect(self._on_progress)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        self._extra = QVBoxLayout()
        layout.addLayout(self._extra)
        layout.addLayout(buttons)
        if self.has_settings:
            self.save_settings_button = QPushButton("Save settings...")
            self.load_settings_button = QPushButton("Load settings...")
            self.save_settings_button.clicked.connect(self._save_settings_dialog)
            self.load_settings_button.clicked.connect(self._load_settings_dialog)
            row = QHBoxLayout()
            row.addWidget(self.save_settings_button)
            row.addWidget(self.load_settings_button)
            layout.addLayout(row)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- to be implemented -------------------------------------------------------------------
    def run(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- settings files ----------------------------------------------------------------------
    def save_settings(self, path):
        """Write the form's settings to ``path``, the JSON ``napari-binseg segment`` reads.

        An existing settings file keeps the other widgets' parts, so saving from Threshold
        and then from Count cells into one file gives the whole pipeline.
        """
        from napari_binseg.pipeline import PipelineSettings

        path = str(path)
        base = PipelineSettings.from_json(path) if os.path.isfile(path) else PipelineSettings()
        self.settings(base).to_json(path)
        self.status.setText(f"Settings saved to {path}")
        return path

    def load_settings(self, path):
        """Set the form from a settings file (saved by a widget or the command, or by hand).

        All or nothing: a value the form cannot show (a choice it lacks, a number beyond a
        field's range) leaves the form as it was and raises ValueError naming the file.
        """
        from napari_binseg.pipeline import PipelineSettings

        settings = PipelineSettings.from_json(path)
        before = [(w, w.value) for w in self.form if hasattr(w, "value")]
        try:
            self.apply_settings(settings)
        except (ValueError, TypeError) as exc:
            for w, value in before:
                if w.value != value:
                    w.value = value
            raise ValueError(f"{path}: this form cannot show these settings: {exc}") from None
        self.status.setText(f"Settings loaded from {path}")

    def _save_settings_dialog(self):
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self, "Save settings", "settings.json", "JSON files (*.json)"
        )
        if path:
            try:
                self.save_settings(path)
            except (OSError, ValueError) as exc:
                self.report_error(exc)

    def _load_settings_dialog(self):
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Load settings", "", "JSON files (*.json)")
        if path:
            try:
                self.load_settings(path)
            except ValueError as exc:
                self.report_error(exc)

    # -- worker plumbing ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.worker is not None

    def progress_callback(self, done, total):
        """The ``progress(done, total)`` callback handed to the core (runs in the worker)."""
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")
        self._relay.progressed.emit(int(done), int(total))

    def start(self, func: Callable, *args, on_result: Callable, label: str = "", **kwargs):
        """Run ``func(*args, **kwargs)`` in a thread worker; ``on_result`` gets its return value
        on the GUI thread. ``func`` should call :meth:`progress_callback` from time to time."""
        if self.busy:
            show_info("napari-binseg: a run is already in progress")
            return None
        self._cancel.clear()
        self.last_error = None
        # superqt's worker class: errors go to our handler only, not to a second traceback
        # notification from napari's own worker mixin.
        worker = create_worker(
            func,
            *args,
            _worker_class=FunctionWorker,
            _start_thread=False,
            _connect={
                "returned": lambda result: self._on_returned(on_result, result),
                "errored": self._on_errored,  # (no re-raise in the GUI thread)
                "finished": self._on_finished,
            },
            **kwargs,
        )
        self.worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the first progress report
        self.status.setText(f"{label or 'Running'}...")
        worker.start()
        return worker

    def cancel(self):
        """Ask the running worker to stop at its next progress report."""
        if self.worker is not None:
            self._cancel.set()
            self.worker.quit()
            self.status.setText("Cancelling...")

    def _on_progress(self, done, total):
        self.progress_bar.setRange(0, max(int(total), 1))
        self.progress_bar.setValue(min(int(done), max(int(total), 1)))

    def _on_returned(self, on_result, result):
        try:
            on_result(result)
        except Exception as exc:  # writing the layer failed: report it like a worker error
            self._on_errored(exc)

    def _on_errored(self, exc):
        if isinstance(exc, Cancelled):
            self.status.setText("Cancelled.")
            show_info("napari-binseg: cancelled")
            return
        self.report_error(exc)

    def report_error(self, exc):
        """Show ``exc`` as a napari error notification and in the status line."""
        # The core's ValueErrors are written for users; name the type of anything else.
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.last_error = message
        self.status.setText(f"Error: {message}")
        show_error(f"napari-binseg {self.widget_id}: {message}")

    def _on_finished(self):
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(1 if self.last_error is None else 0)
        if self.status.text().endswith("..."):
            self.status.setText("Done." if self.last_error is None else self.status.text())


def image_data(layer, *, name="image"):
    """The data of an Image layer for a core function, or a ValueError for unusable layers.

    Multiscale layers use the full-resolution level; RGB layers are refused (choose a channel).
    """
    import napari.layers

    if not isinstance(layer, napari.layers.Image):
        kind = type(layer).__name__ if layer is not None else "nothing"
        raise ValueError(f"{name}: choose an Image layer (got {kind})")
    if getattr(layer, "rgb", False):
        raise ValueError(
            f"{name}: layer {layer.name!r} is RGB(A) (shape {layer.data.shape}); choose one "
            "channel first (Layers > Split RGB) and run on that layer"
        )
    data = layer.data[0] if layer.multiscale else layer.data
    return data


def labels_data(layer, *, name="labels"):
    """Data of a Labels layer (or an integer Image layer used as a mask)."""
    if layer is None:
        raise ValueError(f"{name}: choose a layer")
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if getattr(layer, "rgb", False):
        raise ValueError(f"{name}: layer {layer.name!r} is RGB(A); choose a mask layer")
    return data


def save_table_csv(table, path) -> str:
    """Write a pandas table as CSV (no index); returns the path. Tested without a dialog."""
    path = str(path)
    if not path.lower().endswith(".csv"):
        path += ".csv"
    table.to_csv(path, index=False)
    return path


def ask_save_path(parent, default_name: str) -> str | None:
    """A Save-as dialog for a CSV file; None when the user cancels."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(
        parent, "Save table as CSV", default_name, "CSV files (*.csv)"
    )
    return path or None
