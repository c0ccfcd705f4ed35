"""The main job: napari with the plugin and a sample, or a headless demo that writes its outputs.

``napari-binseg demo`` opens napari with the 2D sample and the plugin's widgets docked when a
display is available; without one (``--headless``, or no ``DISPLAY`` on Linux) it runs the whole
pipeline on the packaged sample and writes masks, labels and tables to ``--out``.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

#: The widgets of the demo, in the order of the workflow (the first one is shown on start).
WIDGETS = ("Threshold", "U-Net", "Count", "Evaluate")


def has_display():
    """Return True when a GUI can be shown (always on macOS/Windows, ``DISPLAY`` on Linux)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_headless(out_dir):
    """Segment, count and evaluate the packaged sample; write the results to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created).

    Returns
    -------
    summary : dict
        Counts, F1 scores and timings written to ``summary.json``.
    """
    import napari_binseg as nb
    from napari_binseg._sample_data import load_sample
    from napari_binseg.measure import unit_columns

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image, ground_truth, meta = load_sample("nuclei_2d")
    scale = meta.get("scale")
    summary = {"image": meta.get("name", "nuclei_2d"), "shape": list(image.shape)}

    start = time.perf_counter()
    mask, otsu = nb.threshold(image, "otsu", fill_holes=True, return_thresholds=True)
    otsu_labels, otsu_table = nb.count_cells(mask, image, spacing=scale)
    summary["otsu"] = {"threshold": float(otsu), "seconds": time.perf_counter() - start}

    start = time.perf_counter()
    unet_labels = nb.segment(image, "nuclei", device="cpu")
    _, unet_table = nb.count_cells(unet_labels, image, spacing=scale, split_touching=False)
    summary["unet"] = {"seconds": time.perf_counter() - start}

    nb.imwrite(out / "otsu_mask.tif", mask, scale=scale)
    nb.imwrite(out / "otsu_labels.tif", otsu_labels, scale=scale, labels=True)
    nb.imwrite(out / "unet_labels.tif", unet_labels, scale=scale, labels=True)
    unit_columns(otsu_table).to_csv(out / "otsu_objects.csv", index=False)
    unit_columns(unet_table).to_csv(out / "unet_objects.csv", index=False)
    for name, labels, table in (
        ("otsu", otsu_labels, otsu_table),
        ("unet", unet_labels, unet_table),
    ):
        scores = nb.evaluate(ground_truth, labels)
        scores.to_csv(out / f"{name}_evaluation.csv", index=False)
        at_half = scores.loc[scores["threshold"].sub(0.5).abs().idxmin()]
        summary[name].update(
            count=len(table), f1_at_0_5=float(at_half["f1"]), ap_at_0_5=float(at_half["ap"])
        )
    summary["ground_truth_count"] = int(np.count_nonzero(np.unique(ground_truth)))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def open_viewer(show=True):
    """napari with the 2D sample and the plugin's widgets docked as tabs, the first step of the
    workflow (Threshold) in front. Returns the viewer and the docked widgets by name."""
    import napari

    viewer = napari.Viewer(title="napari-binseg demo", show=show)
    viewer.open_sample("napari-binseg", "nuclei_2d")
    docks, widgets = {}, {}
    for name in WIDGETS:
        docks[name], widgets[name] = viewer.window.add_plugin_dock_widget(
            "napari-binseg", name, tabify=True
        )
    docks[WIDGETS[0]].raise_()  # tabified docks show the last one added otherwise
    return viewer, widgets


def run_viewer():
    """Open napari with the 2D sample and the plugin's widgets docked (blocks until closed)."""
    import napari

    open_viewer()
    napari.run()


def main(out_dir="demo_output", *, headless=None):
    """Run the demo in the viewer, or headless when there is no display."""
    if headless is None:
        headless = not has_display()
        if headless:
            print(
                "napari-binseg demo: no display found (DISPLAY/WAYLAND_DISPLAY unset), so the "
                "headless demo runs instead of napari; its outputs go to "
                f"{Path(out_dir).resolve()}. On a desktop, run it there to see the viewer.",
                file=sys.stderr,
            )
    if not headless:
        run_viewer()
        return 0
    summary = run_headless(out_dir)
    print(json.dumps(summary, indent=2))
    print(f"outputs written to {Path(out_dir).resolve()}")
    return 0
