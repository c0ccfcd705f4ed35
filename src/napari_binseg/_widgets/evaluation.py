"""The "Evaluate" dock widget: ground-truth Labels and prediction Labels in, the
score table in the widget, and a Labels layer marking false positives and false negatives."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import QPushButton

from napari_binseg.evaluation import BOTH, FALSE_NEGATIVE, FALSE_POSITIVE
from napari_binseg.options import DEFAULT_THRESHOLDS, EvaluateOptions

from ._axes import axes_combo, update_axes_combo
from ._base import BinsegWidget
from ._files import ask_save_path, save_table_csv
from ._form import OptionForm, number_control
from ._layers import labels_data, layer_role, layer_shape, same_layer, upsert_layer
from ._table import DataFrameTable

if TYPE_CHECKING:
    import napari

#: The matched prediction, drawn grey under the errors: a neutral rendering of the prediction,
#: so the error colours never meet random label colours.
MATCHED = 4
ERROR_COLORS = {
    None: "transparent",
    0: "transparent",
    FALSE_POSITIVE: "magenta",
    FALSE_NEGATIVE: "cyan",
    BOTH: "yellow",
    MATCHED: "#7f7f7f",
}

#: What each value of the error map means, for its metadata.
ERROR_VALUES = {
    str(FALSE_POSITIVE): "false positive",
    str(FALSE_NEGATIVE): "false negative",
    str(BOTH): "false positive and false negative overlap",
    str(MATCHED): "matched prediction",
}


class EvaluateWidget(BinsegWidget):
    """Score a prediction Labels layer against a ground-truth Labels layer."""

    widget_id = "evaluate"
    title = "Evaluate"
    run_text = "Evaluate"

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Labels

        self.ground_truth = self.layer_combo(
            Labels,
            label="ground truth",
            prefer=("truth", "input"),
            avoid=lambda: [self.prediction.value] if hasattr(self, "prediction") else [],
        )
        self.prediction = self.layer_combo(
            Labels,
            label="prediction",
            optional=True,
            auto=True,
            prefer=("count", ("labels", "mask"), "input"),
            avoid=self._not_a_prediction,
        )
        # One of EvaluateOptions.thresholds, the first the table scores to begin with.
        self.iou = number_control(
            EvaluateOptions, "thresholds", DEFAULT_THRESHOLDS[0], label="IoU for error map"
        )
        self.stack = axes_combo(
            "z-stack: objects are 3D and scored as volumes; time series: each frame is scored "
            "on its own (rows per frame, then all frames)"
        )
        self.options = OptionForm(EvaluateOptions, skip=("thresholds", "time_axis"))
        for name, w in (
            ("ground_truth", self.ground_truth),
            ("prediction", self.prediction),
            ("stack", self.stack),
            ("iou", self.iou),
        ):
            self.add_option(name, w)
        self.options.add_to(self, advanced=("label_masks",))
        self.ground_truth.changed.connect(
            lambda *_: update_axes_combo(self.stack, self.ground_truth.value)
        )
        update_axes_combo(self.stack, self.ground_truth.value)
        self.ground_truth.changed.connect(lambda *_: self.prediction.refresh_default())
        self.table_view = DataFrameTable()
        self.save_button = QPushButton("Save CSV...")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self._extra.addWidget(self.table_view)
        self.grow_extra()
        self._extra.addWidget(self.save_button)
        self.table = None
        self.output = None

    def _not_a_prediction(self):
        """Layers the prediction picker never chooses by itself: the ground truth, another
        ground truth, and layers of another shape (with two samples open, it chose the other
        sample's ground truth)."""
        from napari.layers import Labels

        truth = self.ground_truth.value
        shape = None if truth is None else layer_shape(truth)
        return [truth] + [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Labels)
            and (layer_role(layer) == "truth" or layer_shape(layer) != (shape or ()))
        ]

    def run(self):
        gt_layer, pred_layer = self.ground_truth.value, self.prediction.value
        try:
            truth = labels_data(gt_layer, name="ground truth")
            pred = labels_data(pred_layer, name="prediction")
            if same_layer(gt_layer, pred_layer):
                raise ValueError("choose two different layers for ground truth and prediction")
        except ValueError as exc:
            self.report_error(exc)
            return None
        iou = float(self.iou.value)
        axes = self.stack.value if gt_layer.ndim > 2 else "YX"
        time_axis = 0 if "T" in axes else None
        label_masks = bool(self.options.read().label_masks)
        progress = self.progress_callback

        def work():
            from napari_binseg.evaluation import evaluate
            from napari_binseg.options import DEFAULT_THRESHOLDS

            progress(0, 1)
            thresholds = tuple(sorted(set(DEFAULT_THRESHOLDS) | {round(iou, 4)}))
            table, errors = evaluate(
                truth,
                pred,
                thresholds=thresholds,
                time_axis=time_axis,
                label_masks=label_masks,
                return_error_map=True,
                error_threshold=iou,
            )
            row = _row_at(table, iou)
            n_fp, n_fn = int(row["fp"]), int(row["fn"])
            # Under the errors, the rest of the prediction in one neutral colour.
            errors[(errors == 0) & (np.asarray(pred) != 0)] = MATCHED
            progress(1, 1)
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
                    "parameters": {
                        "iou_threshold": iou,
                        "time_axis": time_axis,
                        "label_masks": label_masks,
                    },
                    "values": ERROR_VALUES,
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


def _row_at(table, iou):
    """The table row at the threshold closest to ``iou`` (aggregated rows for time series)."""
    rows = table
    if "frame" in table.columns:
        rows = table[table["frame"].astype(str) == "all"]
    if len(rows) == 0:
        return None
    return rows.iloc[int(np.argmin(np.abs(rows["threshold"].to_numpy(float) - iou)))]


def _summary(table, iou) -> dict:
    """Scores at the row closest to ``iou`` (aggregated rows for time series)."""
    row = _row_at(table, iou)
    if row is None:
        return {}
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
