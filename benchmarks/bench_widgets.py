"""Widget overhead and GUI responsiveness while a worker runs.

For the Threshold (Otsu, slice scope, with preview) and Count widgets on a 16x512x512 uint8
stack: wall time of a full run through the widget (worker, progress signals, layer update)
against the core function called directly, and the longest gap between GUI event-loop ticks
during the run (a 5 ms QTimer; a frozen viewer shows up as a long gap).

The viewer window is hidden, so the numbers are the widgets' own cost: with the window shown
under Xvfb, software OpenGL repaints of the new layer add seconds of GUI time that a real
display with a GPU does not have.

    xvfb-run -a python benchmarks/bench_widgets.py
"""

import time

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from scipy import ndimage

from napari_binseg._widgets.counting import CountWidget
from napari_binseg._widgets.thresholding import ThresholdWidget

REPEATS = 4  # the first widget run creates the output layer


def stack(shape=(16, 512, 512), seed=0):
    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.random(shape, np.float32), (0, 4, 4))
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.astype(np.uint8)


def timed_widget_run(app, widget):
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(5)
    start = time.perf_counter()
    widget.run()
    while widget.busy:
        app.processEvents()
        time.sleep(0.001)
    app.processEvents()
    elapsed = time.perf_counter() - start
    timer.stop()
    gaps = np.diff([start, *ticks]) if ticks else np.array([elapsed])
    return elapsed, float(gaps.max())


def main():
    from napari_binseg import count_cells, threshold

    viewer = napari.Viewer(show=False)
    app = QApplication.instance()
    data = stack()
    layer = viewer.add_image(data, name="stack")
    thr = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(thr)
    thr.image.value = layer
    thr.scope.value = "slice"
    results = {}

    core = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        mask = threshold(data, scope="slice")
        core.append(time.perf_counter() - t0)
    runs = [timed_widget_run(app, thr) for _ in range(REPEATS)]
    results["threshold"] = (
        np.median(core),
        np.median([r[0] for r in runs[1:]]),
        runs[0][1],
        max(r[1] for r in runs[1:]),
    )

    cnt = CountWidget(viewer)
    viewer.window.add_dock_widget(cnt)
    cnt.mask.value = thr.output
    core = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        count_cells(mask, split_touching=True)
        core.append(time.perf_counter() - t0)
    runs = [timed_widget_run(app, cnt) for _ in range(REPEATS)]
    results["count"] = (
        np.median(core),
        np.median([r[0] for r in runs[1:]]),
        runs[0][1],
        max(r[1] for r in runs[1:]),
    )
    viewer.close()

    print(f"stack {data.shape} {data.dtype}, medians of {REPEATS}")
    print("widget s: re-runs (layer updated in place); GUI gap: longest event-loop stall, on the")
    print("first run (napari creates the layer's vispy visual) and on re-runs")
    print(
        f"{'widget':10s} {'core s':>8s} {'widget s':>9s} {'ratio':>6s} "
        f"{'gap 1st ms':>11s} {'gap re-run ms':>14s}"
    )
    for name, (c, w, gap0, gap) in results.items():
        print(f"{name:10s} {c:8.3f} {w:9.3f} {w / c:6.2f} {gap0 * 1000:11.1f} {gap * 1000:14.1f}")


if __name__ == "__main__":
    main()
