"""Helpers shared by the widget tests (tests/widgets/test_*.py)."""

import threading

import numpy as np


def run_and_wait(qtbot, widget, timeout=60_000):
    """Press Run and wait until the worker has finished and its result is applied."""
    worker = widget.run()
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
    return worker


def output_layers(viewer, widget_id, role="main"):
    return [
        layer
        for layer in viewer.layers
        if layer.metadata.get("napari_binseg", {}).get("widget") == widget_id
        and layer.metadata["napari_binseg"].get("role") == role
    ]


def run_and_cancel(qtbot, widget, timeout=20_000):
    """Run, press Cancel while the worker is held at its first progress report, wait.

    Returns the ``(done, total)`` reports the core made; holding the worker at the first one
    until Cancel was pressed makes the test free of timing races.
    """
    gate = threading.Event()
    original = widget.progress_callback
    calls = []

    def gated(done, total):
        gate.wait(timeout / 1000)
        calls.append((done, total))
        original(done, total)

    widget.progress_callback = gated
    widget.run()
    assert widget.busy
    widget.cancel()
    gate.set()
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)
    return calls


def wait_for_preview(qtbot, viewer, expected, timeout=10_000):
    """Wait until the Threshold widget's preview layer shows ``expected``; return the layer."""

    def shown():
        found = output_layers(viewer, "threshold", role="preview")
        return bool(found) and np.array_equal(found[0].data, expected)

    qtbot.waitUntil(shown, timeout=timeout)
    return output_layers(viewer, "threshold", role="preview")[0]
