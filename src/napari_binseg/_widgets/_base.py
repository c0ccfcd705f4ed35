"""The base of every napari-binseg dock widget: the form (main options, a collapsible
"Advanced options" section), Run / Cancel, a progress bar, a status line, settings files, and
the thread worker plumbing.

A worker never outlives its widget's reach: Cancel (or Stop), closing the widget and closing the
viewer all release it, paused or not, and nothing it reports afterwards touches a deleted Qt
object.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from magicgui.widgets import Container
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible
from superqt.utils import FunctionWorker, create_worker

from .._own import own_warning
from ._layers import layer_combo
from ._worker import LIVE, Cancelled, RunControl, _ProgressRelay

if TYPE_CHECKING:
    import napari

#: Every widget's minimum height (advanced options folded) stays under this, so the five widgets
#: docked as tabs fit a 1080-pixel screen with napari's canvas.
MAX_MIN_HEIGHT = 450
#: How long closing a widget waits for its worker to end (it goes on in the background after).
CLOSE_WAIT_S = 5.0


def _narrow(widget):
    """Choice lists as narrow as a few characters (the open list shows them in full) and a
    short file button: long choices and layer names must not widen the dock."""
    from qtpy.QtWidgets import QComboBox

    button = getattr(widget, "choose_btn", None)  # a FileEdit's "Choose directory" button
    if button is not None:
        button.text = "Browse..."
        button.tooltip = "Choose a file or folder"
    native = getattr(widget, "native", None)
    if isinstance(native, QComboBox):
        native.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        native.setMinimumContentsLength(6)


class BinsegWidget(QWidget):
    """Base dock widget: a parameter form, Run / Cancel buttons, a progress bar, a status line.

    Subclasses put their options in ``self.form`` (main) and ``self.advanced`` (folded away)
    with :meth:`add_option`, and implement ``run``, which calls :meth:`start` with the core
    function to execute in a thread worker. Everything sits in a scroll area, so the dock can
    be as short as the screen needs.
    """

    widget_id = "base"
    #: Tab title when docked (napari's "<name> (napari-binseg)" is cut in a tab).
    title = "napari-binseg"
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
        self._on_result: Callable | None = None
        self._control = RunControl()
        self._cancel = self._control.cancel
        self._disconnects: list[Callable] = []

        self.form = Container(labels=True)
        self.advanced = Container(labels=True)
        self.advanced_section = QCollapsible("Advanced options")
        self.advanced_section.addWidget(self.advanced.native)
        self.advanced_section.setVisible(False)  # until an advanced option is added
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

        self._relay = _ProgressRelay()
        self._relay.progressed.connect(self._gui("_on_progress"))

        buttons = self.button_row = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.content = QWidget()
        layout = QVBoxLayout(self.content)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.form.native)
        layout.addWidget(self.advanced_section)
        self._extra = QVBoxLayout()
        layout.addLayout(self._extra)
        layout.addLayout(buttons)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        if self.has_settings:
            # Beside the progress bar (a row of four buttons would widen the dock).
            self.save_settings_button = QPushButton("Save...")
            self.load_settings_button = QPushButton("Load...")
            self.save_settings_button.setToolTip(
                "Save these settings to a JSON file (napari-binseg segment --settings reads it)"
            )
            self.load_settings_button.setToolTip("Load settings from a JSON file")
            self.save_settings_button.clicked.connect(self._save_settings_dialog)
            self.load_settings_button.clicked.connect(self._load_settings_dialog)
            progress_row.addWidget(self.save_settings_button)
            progress_row.addWidget(self.load_settings_button)
        layout.addLayout(progress_row)
        layout.addWidget(self.status)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # only vertical
        scroll.setWidget(self.content)
        self.scroll_area = scroll
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        from napari_binseg._reader import prefer_for_tiff

        prefer_for_tiff()  # users of the plugin open TIFFs with its reader in one step
        # Closing: the widget (closeEvent), its Qt object (destroyed), the viewer's window, or
        # the application all release the worker.
        self.destroyed.connect(self._control.release)
        LIVE.add(self)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._control.release)
        # The viewer's window is found through the widget's parents once it is docked (napari
        # 0.10 removes the private Window._qt_window).
        self._watch_parents()

    def minimumSizeHint(self):
        """As wide as the content (it scrolls vertically only), as short as a few rows."""
        hint = super().minimumSizeHint()
        bar = self.scroll_area.verticalScrollBar().sizeHint().width()
        hint.setWidth(self.content.minimumSizeHint().width() + bar + 2)
        return hint

    def sizeHint(self):
        hint = super().sizeHint()
        hint.setWidth(self.minimumSizeHint().width())
        hint.setHeight(min(self.content.sizeHint().height(), MAX_MIN_HEIGHT))
        return hint

    # -- form --------------------------------------------------------------------------------
    def add_option(self, name: str, widget, *, advanced: bool = False, index: int | None = None):
        """Put ``widget`` in the main form (at row ``index``, else last) or in the folded
        "Advanced options" section."""
        widget.name = name
        _narrow(widget)
        if advanced:
            self.advanced.append(widget)
            self.advanced_section.setVisible(True)
        elif index is not None:
            self.form.insert(index, widget)
        else:
            self.form.append(widget)
        # After magicgui's own handler, which sets the label widths again in its measure.
        widget.label_changed.connect(self.fit_labels)
        if hasattr(widget, "changed"):
            widget.changed.connect(self._forget_error)
        return widget

    def _forget_error(self, *_):
        """A changed input or option makes the last run's error message stale."""
        if self.last_error is not None and not self.busy:
            self.last_error = None
            self.status.setText("")

    def fit_labels(self, *_):
        """Make each form's label column as wide as its longest label in the font it is drawn
        with. magicgui measures labels in the application's font, narrower than napari's
        stylesheet font, and a narrow dock then cuts them ("diameter (µ")."""
        columns: dict = {}
        for label in self.content.findChildren(QLabel):
            # magicgui's row labels are the QLabels with a minimum width (its label column).
            row = label.parentWidget()
            if label.minimumWidth() > 0 and row is not None and row.parentWidget() is not None:
                label.ensurePolished()
                columns.setdefault(id(row.parentWidget()), []).append(label)
        for labels in columns.values():
            width = max(label.sizeHint().width() for label in labels)
            for label in labels:
                if label.minimumWidth() != width:
                    label.setMinimumWidth(width)
        self.updateGeometry()

    def showEvent(self, event):
        self.fit_labels()  # the stylesheet's font is known once the widget is shown
        super().showEvent(event)

    def option_widgets(self):
        """Every value widget of the form and of the advanced section."""
        return [w for box in (self.form, self.advanced) for w in box if hasattr(w, "value")]

    def grow_extra(self):
        """Give the extra widgets (a table) the height the dock has to spare."""
        layout = self.content.layout()
        last = layout.itemAt(layout.count() - 1)
        if last is not None and last.spacerItem() is not None:
            layout.takeAt(layout.count() - 1)  # the trailing stretch
        layout.setStretchFactor(self._extra, 1)

    def layer_combo(self, layer_types, **kwargs):
        """A layer picker (:func:`._layers.layer_combo`) disconnected from the viewer on close."""
        combo = layer_combo(self.viewer, layer_types, **kwargs)
        _narrow(combo)
        self._disconnects.append(combo.disconnect_viewer)
        return combo

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
        before = [(w, w.value) for w in self.option_widgets()]
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

    def _gui(self, name: str, *bound, fallback: Callable | None = None) -> Callable:
        """The method ``name`` (called with ``*bound`` first) for a signal from a worker.

        Skipped (``fallback`` runs instead) once the widget is closed, so a late signal never
        touches a deleted Qt object; holds the widget weakly, so a connection kept by a relay
        does not keep the widget (and its viewer) alive.
        """
        control = self._control
        ref = weakref.ref(self)

        def call(*args):
            widget = ref()
            if control.closed or widget is None:
                if fallback is not None:
                    fallback()
                return None
            try:
                return getattr(widget, name)(*bound, *args)
            except RuntimeError as exc:  # the Qt object went away between check and call
                if "deleted" not in str(exc):
                    raise
                return None

        return call

    def _gui_call(self, func: Callable) -> Callable:
        """``func`` for a signal of a helper worker: skipped once the widget is closed."""
        control = self._control

        def call(*args):
            if not control.closed:
                return func(*args)
            return None

        return call

    def progress_callback(self, done, total):
        """The ``progress(done, total)`` callback handed to the core (runs in the worker).

        Holds while paused; raises :class:`Cancelled` after Cancel or close.
        """
        control = self._control
        control.resume.wait()
        if control.cancel.is_set():
            raise Cancelled("closed" if control.closed else "cancelled by the user")
        if not control.closed:
            self._relay.progressed.emit(int(done), int(total))

    def start(self, func: Callable, *args, on_result: Callable, label: str = "", **kwargs):
        """Run ``func(*args, **kwargs)`` in a thread worker; ``on_result`` gets its return value
        on the GUI thread. ``func`` should call :meth:`progress_callback` from time to time."""
        if self.busy:
            show_info("napari-binseg: a run is already in progress")
            return None
        control = self._control
        control.cancel.clear()
        control.stop.clear()
        control.resume.set()
        control.closed = False
        control.graceful = False
        control.idle.clear()
        self.last_error = None

        # The worker's objects may outlive the run (Qt deletes them later): they hold the
        # function and the result handler only until the run ends, so they never keep the
        # widget (and its viewer) alive.
        call = [func, args, kwargs]
        self._on_result = on_result

        def job():
            f, a, k = call
            call.clear()
            try:
                return f(*a, **k)
            finally:
                control.idle.set()

        ref = weakref.ref(self)

        def forget():
            widget = ref()
            if widget is not None:
                widget.worker = widget._on_result = None

        # superqt's worker class: errors go to our handler only, not to a second traceback
        # notification from napari's own worker mixin.
        worker = create_worker(
            job,
            _worker_class=FunctionWorker,
            _start_thread=False,
            _connect={
                "returned": self._gui("_on_returned"),
                "errored": self._gui("_on_errored"),  # (no re-raise in the GUI thread)
                "warned": self._gui("_on_warned"),
                "finished": self._gui("_on_finished", fallback=forget),
            },
        )
        self.worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the first progress report
        self.status.setText(f"{label or 'Running'}...")
        worker.start()
        return worker

    def cancel(self):
        """Ask the running worker to stop at its next progress report (a paused one at once)."""
        if self.worker is not None:
            self._control.cancel.set()
            self._control.resume.set()
            self.worker.quit()
            self.status.setText("Cancelling...")

    def shutdown(self, wait_s: float = CLOSE_WAIT_S) -> bool:
        """Release the worker and disconnect from the viewer (the widget or viewer is closing).

        Waits up to ``wait_s`` seconds for the worker to end; returns True when none runs.
        """
        self._control.graceful = self._close_gracefully()
        self._control.release()
        for disconnect in self._disconnects:
            disconnect()
        self._disconnects = []
        self._disconnect_viewer()
        return self._control.idle.wait(wait_s)

    def _close_gracefully(self) -> bool:
        """Whether closing stops the current run cleanly (keeping its result) instead of
        cancelling it."""
        return False

    def _disconnect_viewer(self):
        """Disconnect the subclass's own viewer events (the pickers are done by the base)."""

    def _title_dock(self):
        """Tabified docks show their window title: the short name fits a tab."""
        from qtpy.QtWidgets import QDockWidget

        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parentWidget()
        if parent is not None and parent.windowTitle() != self.title:
            parent.setWindowTitle(self.title)

    def _watch_parents(self):
        """Filter the events of every parent up to the window: a dock is put in napari's
        window after the widget is put in the dock, so each parent change looks again. The
        filters hold no reference to the parents (the widget must not keep the viewer alive)."""
        parent = self.parentWidget()
        while parent is not None:
            parent.installEventFilter(self)
            parent = parent.parentWidget()

    def event(self, event):
        if event.type() in (QEvent.ParentChange, QEvent.Show):
            self._title_dock()
        if event.type() == QEvent.ParentChange:
            self._watch_parents()
        return super().event(event)

    def closeEvent(self, event):
        self.shutdown()
        super().closeEvent(event)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.ParentChange:  # the dock went into a window
            self._watch_parents()
        elif event.type() == QEvent.Close and isinstance(obj, QMainWindow):  # napari closes
            self.shutdown()
        return False

    def _on_progress(self, done, total):
        self.progress_bar.setRange(0, max(int(total), 1))
        self.progress_bar.setValue(min(int(done), max(int(total), 1)))

    def _on_returned(self, result):
        on_result, self._on_result = self._on_result, None
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

    def _on_warned(self, args):
        """A warning of this package's core raised in the worker (``warnings.showwarning``
        arguments): shown as a napari warning, as a script would print it. Other libraries'
        warnings stay out of the user's notifications."""
        message, category = args[0], args[1]
        if own_warning(category):
            show_warning(f"napari-binseg: {message}")

    def report_error(self, exc):
        """Show ``exc`` as a napari error notification and in the status line."""
        # The core's ValueErrors are written for users; name the type of anything else.
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.last_error = message
        self.status.setText(f"Error: {message}")
        show_error(f"napari-binseg {self.widget_id}: {message}")

    def _on_finished(self):
        self.worker = None
        self._on_result = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(1 if self.last_error is None else 0)
        if self.status.text().endswith("..."):
            self.status.setText("Done." if self.last_error is None else self.status.text())
