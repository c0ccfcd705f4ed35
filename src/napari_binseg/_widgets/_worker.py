"""What a widget shares with its worker thread: the cancel/stop/pause flags, the progress relay,
and the release of every worker at exit (a paused worker must never keep the process alive).

Plain Python and a parentless QObject: safe to use from the worker after the widget is gone.
"""

from __future__ import annotations

import atexit
import threading
import weakref

from qtpy.QtCore import QObject, Signal


class Cancelled(Exception):
    """Raised from the progress callback when the user pressed Cancel or closed the widget."""


class _ProgressRelay(QObject):
    """Carries ``progress(done, total)`` calls from the worker thread to the GUI thread.

    It has no Qt parent: the worker's reference keeps it alive even after the widget is
    deleted, so a late report never hits a deleted C++ object.
    """

    progressed = Signal(int, int)


class RunControl:
    """Flags shared between a widget and its worker thread (plain Python, so they stay safe to
    use from the worker after the widget's Qt object is gone)."""

    def __init__(self):
        self.cancel = threading.Event()  # Cancel pressed or widget closed: abort at next report
        self.stop = threading.Event()  # finish early but cleanly (training keeps its best epoch)
        self.resume = threading.Event()  # cleared while paused
        self.resume.set()
        self.idle = threading.Event()  # no worker running
        self.idle.set()
        self.closed = False  # the widget or its viewer was closed
        self.graceful = False  # closing stops (``stop``) rather than cancels this run

    def release(self, *_):
        """Closing: let a paused worker go and make it end at its next report."""
        self.closed = True
        self.stop.set()
        if not self.graceful:
            self.cancel.set()
        self.resume.set()


#: Widgets alive, released at exit.
LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_all():
    """At interpreter or application exit no worker stays paused (the process would hang)."""
    for widget in list(LIVE):
        try:
            widget._control.release()
        except RuntimeError:  # pragma: no cover - already deleted
            pass
