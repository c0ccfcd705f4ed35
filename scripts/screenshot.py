"""Make docs/screenshot.png: the 2D sample in a viewer with the Threshold and Count widgets run.

Run under a virtual display on a headless machine:

    xvfb-run -a python scripts/screenshot.py
"""

from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"


def wait_for(widget, app, timeout_s=120.0):
    """Process Qt events until the widget's worker has finished."""
    import time

    start = time.perf_counter()
    while widget.busy and time.perf_counter() - start < timeout_s:
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def main():
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1700, 1150)
    viewer.open_sample("napari-binseg", "nuclei_2d")
    image = next(layer for layer in viewer.layers if isinstance(layer, napari.layers.Image))
    app = QApplication.instance()

    _, thr = viewer.window.add_plugin_dock_widget("napari-binseg", "Threshold")
    thr.image.value = image
    thr.preview.value = False
    thr.update_preview()  # draws the histogram with the threshold line
    thr.run()
    wait_for(thr, app)
    mask = thr.output

    _, count = viewer.window.add_plugin_dock_widget("napari-binseg", "Count cells")
    count.mask.value = mask
    count.image.value = image
    count.add_points.value = True
    count.run()
    wait_for(count, app)
    mask.visible = False
    viewer.layers.selection.active = count.output
    viewer.reset_view()
    for w in app.allWidgets():  # start-up toasts (e.g. the PyQt5 deprecation) hide the image
        if type(w).__name__ == "NapariQtNotification":
            w.close()
    for _ in range(20):
        app.processEvents()

    OUT.parent.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(path=str(OUT), canvas_only=False)
    print(f"wrote {OUT} {np.asarray(shot).shape}; {count.count_label.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
