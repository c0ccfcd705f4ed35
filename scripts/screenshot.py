"""Make docs/screenshot.png: the demo viewer (2D sample, the widgets docked as tabs) after
Threshold and Count ran, the Count tab in front with its measurement table.

Run under a virtual display on a headless machine:

    xvfb-run -a python scripts/screenshot.py
"""

from pathlib import Path

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
    from napari_binseg.demo import open_viewer

    viewer, widgets = open_viewer(show=True)  # the demo: sample and the four widgets as tabs
    viewer.window._qt_window.resize(1600, 1000)
    app = QApplication.instance()
    image = viewer.layers["nuclei_2d"]

    thr = widgets["Threshold"]
    thr.fill_holes.value = True
    thr.update_preview()  # draws the histogram (intensity axis, threshold line)
    thr.run()
    wait_for(thr, app)

    count = widgets["Count"]
    assert count.mask.value.name == thr.output.name  # by role: the previous step's output
    count.image.value = image
    count.add_points.value = True
    count.run()
    wait_for(count, app)
    thr.output.visible = False
    viewer.layers.selection.active = count.output
    viewer.reset_view()
    viewer.window._wrapped_dock_widgets["Count (napari-binseg)"].raise_()  # its table in front
    for w in app.allWidgets():  # start-up toasts hide the image
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
