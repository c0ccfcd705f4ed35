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
ERROR_COLORS = {
    None: "transparent",
    0: "transparent",
    FALSE_POSITIVE: "magenta",
    FALSE_NEGATIVE: "cyan",
    BOTH: "yellow",
}


def error_map(ground_truth, prediction, *, iou_threshold=0.5):
    """Mark unmatched objects: 1 = false positive, 2 = false negative, 3 = both overlap.

    Uses the optimal one-to-one matching of :func:`napari_binseg.evaluation.match_objects`
    (the one :func:`napari_binseg.evaluate` counts with), so the marked objects agree with the
    table's ``fp`` and ``fn`` at that threshold.

    Parameters
    ----------
    ground_truth, prediction : (M, N[, P]) arrays of int or bool, same shape
        Instance labels (0 = background); 0/1 masks are split into connected components.
    iou_threshold : float
        In (0, 1].

    Returns
    -------
    errors : (M, N[, P]) uint8 ndarray
    n_fp, n_fn : int
        Numbers of false-positive and false-negative objects.
    """
    from napari_binseg.evaluation import match_objects

    m = match_objects(ground_truth, prediction, threshold=iou_threshold)
    fp = np.isin(m["prediction"], m["false_positives"]).astype(np.uint8)
    fn = np.isin(m["ground_truth"], m["false_negatives"]).astype(np.uint8)
    errors = fp * FALSE_POSITIVE + fn * FALSE_NEGATIVE
    return errors, int(len(m["false_positives"])), int(len(m["false_negatives"]))


class EvaluateWidget(BinsegWidget):
    """Score a prediction Labels layer against a ground-truth Labels layer."""

    widget_id = "evaluate"
    run_text = "Evaluate"

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Labels

        self.ground_truth = layer_combo(napari_viewer, Labels, label="ground truth")
        self.prediction = layer_combo(napari_viewer, Labels, label="prediction")
        self.iou = FloatSpinBox(label="IoU for error map", min=0.05, max=1.0, step=0.05, value=0.5)
        self.time_series = CheckBox(text="first axis is time (score per frame)", value=False)
        for name, w in (
            ("ground_truth", self.ground_truth),
            ("prediction", self.prediction),
            ("iou", self.iou),
            ("time_series", self.time_series),
        ):
            w.name = name
            self.form.append(w)
        self._default_pair()
        self.table_view = DataFrameTable()
        self.save_button = QPushButton("Save table as CSV")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self._extra.addWidget(self.table_view)
        self._extra.addWidget(self.save_button)
        self.table = None
        self.output = None

    def _default_pair(self):
        """Ground truth: a layer named like one ("truth", "gt", "ground"), else the oldest;
        prediction: the newest other layer."""
        layers = list(self.ground_truth.choices)  # newest first
        if len(layers) < 2:
            return
        named = [
            lay for lay in layers if any(k in lay.name.lower() for k in ("truth", "gt", "ground"))
        ]
        truth = named[0] if named else layers[-1]
        self.ground_truth.value = truth
        self.prediction.value = next(lay for lay in layers if lay is not truth)

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
                self.viewer,
                errors,
                layer_type="labels",
                source=pred_layer,
                widget=self.widget_id,
                name=f"{pred_layer.name} [errors]",
                metadata={
                    "method": "evaluate",
                    "ground_truth": gt_layer.name,
                    "parameters": {"iou_threshold": iou, "time_axis": time_axis},
                    "values": {
                        "1": "false positive",
                        "2": "false negative",
                        "3": "false positive and false negative overlap",
                    },
                    "n_false_positive": n_fp,
                    "n_false_negative": n_fn,
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
    out = {
        k: float(row[k])
        for k in ("threshold", "tp", "fp", "fn", "precision", "recall", "f1", "ap")
        if k in row
    }
    for k in ("pixel_dice", "pixel_iou"):
        if k in table.attrs:
            out[k] = float(table.attrs[k])
    out["text"] = (
        f"IoU {out['threshold']:.2f}: F1 {out['f1']:.3f}, AP {out['ap']:.3f} "
        f"(tp {int(out['tp'])}, fp {int(out['fp'])}, fn {int(out['fn'])})"
    )
    return out
