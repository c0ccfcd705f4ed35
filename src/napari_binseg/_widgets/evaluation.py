"""The "Evaluate segmentation" dock widget: ground-truth Labels and prediction Labels in, the
score table in the widget, and a Labels layer marking false positives and false negatives."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, FloatSpinBox
from qtpy.QtWidgets import QPushButton

from ._common import (
    BinsegWidget,
    ask_save_path,
    labels_data,
    layer_combo,
    save_table_csv,
    upsert_layer,
)
from ._table import DataFrameTable

if TYPE_CHECKING:
    import napari

#: Values of the error layer.
FALSE_POSITIVE, FALSE_NEGATIVE, BOTH = 1, 2, 3
ERROR_COLORS = {None: "transparent", 0: "transparent", FALSE_POSITIVE: "magenta",
                FALSE_NEGATIVE: "cyan", BOTH: "yellow"}


def _instances(labels):
    """Consecutive instance labels; a 0/1 mask is split into face-connected components, as
    :func:`napari_binseg.evaluate` does."""
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    values = np.unique(labels)
    if len(values) <= 2 and set(values.tolist()) <= {0, 1}:
        from scipy import ndimage

        return ndimage.label(labels)
    lut_values, inverse = np.unique(labels.ravel(), return_inverse=True)
    inverse = inverse.reshape(labels.shape)
    if lut_values[0] != 0:
        inverse = inverse + 1
    return inverse, int(np.count_nonzero(lut_values))


def error_map(ground_truth, prediction, *, iou_threshold=0.5):
    """Mark unmatched objects: 1 = false positive, 2 = false negative, 3 = both overlap.

    Objects match when their IoU is at least ``iou_threshold``; at 0.5 and above every object
    has at most one partner, so the result agrees with the ``fp`` and ``fn`` counts of
    :func:`napari_binseg.evaluate` at that threshold.

    Parameters
    ----------
    ground_truth, prediction : (M, N[, P]) arrays of int or bool, same shape
        Instance labels (0 = background); 0/1 masks are split into connected components.
    iou_threshold : float
        In [0.5, 1].

    Returns
    -------
    errors : (M, N[, P]) uint8 ndarray
    n_fp, n_fn : int
        Numbers of false-positive and false-negative objects.
    """
    if not 0.5 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0.5, 1], got {iou_threshold}")
    truth = np.asarray(ground_truth)
    pred = np.asarray(prediction)
    if truth.shape != pred.shape:
        raise ValueError(
            f"ground_truth and prediction must have the same shape, got {truth.shape} and "
            f"{pred.shape}"
        )
    t, n_t = _instances(truth)
    p, n_p = _instances(pred)
    t = t.ravel().astype(np.int64)
    p = p.ravel().astype(np.int64)
    area_t = np.bincount(t, minlength=n_t + 1)
    area_p = np.bincount(p, minlength=n_p + 1)
    both = (t > 0) & (p > 0)
    pairs, inter = np.unique(t[both] * (n_p + 1) + p[both], return_counts=True)
    pt, pp = pairs // (n_p + 1), pairs % (n_p + 1)
    iou = inter / (area_t[pt] + area_p[pp] - inter)
    good = iou >= iou_threshold
    matched_t = np.zeros(n_t + 1, bool)
    matched_p = np.zeros(n_p + 1, bool)
    matched_t[pt[good]] = True
    matched_p[pp[good]] = True
    fp_objects = ~matched_p
    fp_objects[0] = False
    fn_objects = ~matched_t
    fn_objects[0] = False
    errors = (fp_objects[p].astype(np.uint8) * FALSE_POSITIVE
              + fn_objects[t].astype(np.uint8) * FALSE_NEGATIVE)
    return errors.reshape(truth.shape), int(fp_objects.sum()), int(fn_objects.sum())


class EvaluateWidget(BinsegWidget):
    """Score a prediction Labels layer against a ground-truth Labels layer."""

    widget_id = "evaluate"
    run_text = "Evaluate"

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Labels

        self.ground_truth = layer_combo(napari_viewer, Labels, label="ground truth")
        self.prediction = layer_combo(napari_viewer, Labels, label="prediction")
        self.iou = FloatSpinBox(label="IoU for error map", min=0.5, max=1.0, step=0.05,
                                value=0.5)
        self.time_series = CheckBox(text="first axis is time (score per frame)", value=False)
        for name, w in (("ground_truth", self.ground_truth), ("prediction", self.prediction),
                        ("iou", self.iou), ("time_series", self.time_series)):
            w.name = name
            self.form.append(w)
        if len(self.prediction.choices) > 1:
            self.prediction.value = self.prediction.choices[-1]
        self.table_view = DataFrameTable()
        self.save_button = QPushButton("Save table as CSV")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self._extra.addWidget(self.table_view)
        self._extra.addWidget(self.save_button)
        self.table = None
        self.output = None

    def run(self):
        gt_layer, pred_layer = self.ground_truth.value, self.prediction.value
        try:
            truth = labels_data(gt_layer, name="ground truth")
            pred = labels_data(pred_layer, name="prediction")
            if gt_layer is pred_layer:
                raise ValueError("choose two different layers for ground truth and prediction")
        except ValueError as exc:
            self.report_error(exc)
            return None
        iou = float(self.iou.value)
        time_axis = 0 if self.time_series.value else None
        progress = self.progress_callback

        def work():
            from napari_binseg.evaluation import evaluate

            progress(0, 2)
            table = evaluate(truth, pred, time_axis=time_axis)
            progress(1, 2)
            t, p = np.asarray(truth), np.asarray(pred)
            if time_axis is None:
                errors, n_fp, n_fn = error_map(t, p, iou_threshold=iou)
            else:
                frames = [error_map(a, b, iou_threshold=iou) for a, b in zip(t, p)]
                errors = np.stack([f[0] for f in frames])
                n_fp, n_fn = sum(f[1] for f in frames), sum(f[2] for f in frames)
            progress(2, 2)
            return table, errors, n_fp, n_fn

        def done(result):
            table, errors, n_fp, n_fn = result
            self.table = table
            self.table_view.set_dataframe(table)
            self.save_button.setEnabled(True)
            summary = _summary(table, iou)
            self.output = upsert_layer(
                self.viewer, errors, layer_type="labels", source=pred_layer,
                widget=self.widget_id, name=f"{pred_layer.name} [errors]",
                metadata={
                    "method": "evaluate", "ground_truth": gt_layer.name,
                    "parameters": {"iou_threshold": iou, "time_axis": time_axis},
                    "values": {"1": "false positive", "2": "false negative",
                               "3": "false positive and false negative overlap"},
                    "n_false_positive": n_fp, "n_false_negative": n_fn,
                    "scores": summary,
                },
                colormap=ERROR_COLORS,
            )
            self.status.setText(
                f"{summary.get('text', '')}; error map: {n_fp} false positives (magenta), "
                f"{n_fn} false negatives (cyan)"
            )

        return self.start(work, on_result=done, label="Evaluating")

    def save_csv(self, path) -> str:
        """Write the last table to ``path`` (the dialog-free part of "Save table as CSV")."""
        if self.table is None:
            raise ValueError("nothing to save yet: run the evaluation first")
        return save_table_csv(self.table, path)

    def _save_dialog(self):
        pred = self.prediction.value
        path = ask_save_path(self, f"{pred.name if pred else 'evaluation'}_scores.csv")
        if path:
            self.status.setText(f"Saved {self.save_csv(path)}")


def _summary(table, iou) -> dict:
    """Scores at the row closest to ``iou`` (aggregated rows for time series)."""
    rows = table
    if "frame" in table.columns:
        rows = table[table["frame"].astype(str) == "all"]
    if len(rows) == 0:
        return {}
    row = rows.iloc[int(np.argmin(np.abs(rows["threshold"].to_numpy(float) - iou)))]
    out = {k: float(row[k]) for k in ("threshold", "tp", "fp", "fn", "precision", "recall",
                                      "f1", "ap") if k in row}
    for k in ("pixel_dice", "pixel_iou"):
        if k in table.attrs:
            out[k] = float(table.attrs[k])
    out["text"] = (f"IoU {out['threshold']:.2f}: F1 {out['f1']:.3f}, AP {out['ap']:.3f} "
                   f"(tp {int(out['tp'])}, fp {int(out['fp'])}, fn {int(out['fn'])})")
    return out
