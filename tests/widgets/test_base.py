"""The worker plumbing every widget shares: Cancel, pause, and closing the widget or the viewer
while a worker runs or is paused (no hang, no call into a deleted Qt object)."""

import threading

import pytest

from napari_binseg._widgets._base import BinsegWidget


class _Counter(BinsegWidget):
    """A widget whose core function reports progress until it is told to end."""

    widget_id = "counter"

    def __init__(self, viewer):
        super().__init__(viewer)
        self.reports = []
        self.results = []
        self.ended = threading.Event()
        self.raised = []

    def run(self):
        def work():
            try:
                for i in range(10_000):
                    self.reports.append(i)
                    self.progress_callback(i, 10_000)
                    threading.Event().wait(0.005)
            except BaseException as exc:
                self.raised.append(type(exc).__name__)
                raise
            return "finished"

        return self.start(work, on_result=self.results.append)


def test_cancel_releases_a_paused_worker(make_napari_viewer, qtbot, errors):
    widget = _Counter(make_napari_viewer())
    widget.run()
    qtbot.waitUntil(lambda: len(widget.reports) > 2, timeout=10_000)
    widget._control.resume.clear()  # paused
    qtbot.wait(200)
    held = len(widget.reports)
    qtbot.wait(200)
    assert len(widget.reports) == held
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert widget.raised == ["Cancelled"] and widget.results == [] and errors == []
    assert widget.status.text() == "Cancelled."


@pytest.mark.parametrize("paused", [False, True])
@pytest.mark.parametrize("close", ["widget", "delete", "viewer"])
def test_closing_releases_the_worker(make_napari_viewer, qtbot, errors, close, paused):
    viewer = make_napari_viewer()
    widget = _Counter(viewer)
    if close == "viewer":
        viewer.window.add_dock_widget(widget)
    widget.run()
    qtbot.waitUntil(lambda: len(widget.reports) > 2, timeout=10_000)
    if paused:
        widget._control.resume.clear()
    control, raised, results = widget._control, widget.raised, widget.results
    if close == "widget":
        widget.close()
    elif close == "delete":
        widget.deleteLater()  # the Qt object goes; the worker still holds its callbacks
        qtbot.wait(50)
    else:
        viewer.close()
    assert control.idle.wait(10), "the worker was not released"
    qtbot.wait(100)  # its late signals arrive and are ignored
    assert raised == ["Cancelled"] and results == [] and errors == []
