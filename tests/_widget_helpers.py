"""Helpers shared by the widget tests (tests/test_widget_*.py)."""

import pytest


@pytest.fixture
def errors(monkeypatch):
    """Messages the widgets sent to napari's error notification."""
    from napari_binseg._widgets import _common

    shown = []
    monkeypatch.setattr(_common, "show_error", lambda message: shown.append(message))
    return shown


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
