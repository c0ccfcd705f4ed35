"""Helpers shared by the widget tests (tests/test_widget_*.py)."""


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
