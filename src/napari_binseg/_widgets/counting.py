"""The "Count cells" dock widget: a mask (Labels or Image layer) in, counted and measured
objects out as a Labels layer whose ``features`` hold the measurement table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox
from qtpy.QtWidgets import QLabel, QPushButton

from ._common import (
    BinsegWidget,
    ask_save_path,
    image_data,
    labels_data,
    layer_combo,
    save_table_csv,
    upsert_layer,
)
from ._table import DataFrameTable

if TYPE_CHECKING:
    import napari

CONNECTIVITY = (("full (8 / 26 neighbours)", None), ("faces (4 / 6 neighbours)", 1))
SPLIT = (
    ("no", False),
    ("distance transform", True),
    ("distance + intensity valleys", "intensity"),
)


def centroid_columns(table, ndim: int) -> list[str]:
    """Names of the centroid columns of a count table, in axis order (physical units)."""
    names = [c for c in table.columns if str(c).startswith("centroid")]
    if len(names) < ndim:
        raise ValueError(f"the count table has no {ndim}D centroid columns: {list(table.columns)}")
    return names[-ndim:]


def centroid_points(table, *, translate, time_axis=None, frame_scale=1.0) -> np.ndarray:
    """Centroids in world coordinates: the table's physical centroids plus the layer offset.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`napari_binseg.count_cells` table (centroids in physical units).
    translate : sequence of float
        The mask layer's translate (world offset), one value per layer axis.
    time_axis : int or None
        0 when the first layer axis is time: the ``frame`` column becomes that coordinate.
    frame_scale : float
        Layer scale of the time axis.

    Returns
    -------
    points : (n_objects, ndim) float64 ndarray
    """
    translate = np.asarray(translate, dtype=np.float64)
    spatial_ndim = len(translate) - (1 if time_axis is not None else 0)
    coords = table[centroid_columns(table, spatial_ndim)].to_numpy(np.float64)
    if time_axis is not None:
        frames = table["frame"].to_numpy(np.float64)[:, None] * frame_scale
        coords = np.concatenate([frames, coords], axis=1)
    return coords + translate


class CountWidget(BinsegWidget):
    """Count and measure the objects of a mask; results in a Labels layer ``"<mask> [count]"``."""

    widget_id = "count"
    run_text = "Count"
    has_settings = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Image, Labels

        self.mask = layer_combo(napari_viewer, (Labels, Image), label="mask")
        self.image = layer_combo(napari_viewer, Image, label="intensity image", optional=True)
        self.connectivity = ComboBox(label="connectivity", choices=list(CONNECTIVITY), value=None)
        self.split_touching = ComboBox(label="split touching", choices=list(SPLIT), value=True)
        self.min_diameter = FloatSpinBox(
            label="min diameter (0 = auto)", min=0.0, max=1e6, step=0.5, value=0.0
        )
        self.min_size = FloatSpinBox(label="min size", min=0.0, max=1e12, step=1.0, value=0.0)
        self.max_size = FloatSpinBox(
            label="max size (0 = none)", min=0.0, max=1e12, step=1.0, value=0.0
        )
        self.fill_holes = CheckBox(text="fill holes", value=True)
        self.exclude_border = CheckBox(text="drop objects touching the border", value=False)
        self.time_series = CheckBox(text="first axis is time (count per frame)", value=False)
        self.add_points = CheckBox(text="add centroid points", value=False)
        for name, w in (
            ("mask", self.mask),
            ("image", self.image),
            ("connectivity", self.connectivity),
            ("split_touching", self.split_touching),
            ("min_diameter", self.min_diameter),
            ("min_size", self.min_size),
            ("max_size", self.max_size),
            ("fill_holes", self.fill_holes),
            ("exclude_border", self.exclude_border),
            ("time_series", self.time_series),
            ("add_points", self.add_points),
        ):
            w.name = name
            self.form.append(w)
        self.count_label = QLabel("")
        self.count_label.setWordWrap(True)
        self.table_view = DataFrameTable()
        self.save_button = QPushButton("Save table as CSV")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self._extra.addWidget(self.count_label)
        self._extra.addWidget(self.table_view)
        self._extra.addWidget(self.save_button)
        self.table = None
        self.summary = None
        self.output = None
        self.points = None

    def parameters(self, mask_layer) -> dict:
        """The core's keyword arguments; spacing from the mask layer's scale."""
        time_axis = 0 if self.time_series.value else None
        scale = tuple(float(s) for s in mask_layer.scale)
        spacing = scale[1:] if time_axis is not None else scale
        return {
            "spacing": spacing,
            "connectivity": self.connectivity.value,
            "min_size": float(self.min_size.value),
            "max_size": float(self.max_size.value) or None,
            "split_touching": self.split_touching.value,
            "min_diameter": float(self.min_diameter.value) or None,
            "exclude_border": bool(self.exclude_border.value),
            "fill_holes": bool(self.fill_holes.value),
            "time_axis": time_axis,
        }

    def settings(self, base):
        """``base`` with the counting options of the form (spacing comes from each image)."""
        from dataclasses import replace

        from napari_binseg.pipeline import CountSettings

        count = CountSettings(
            connectivity=self.connectivity.value,
            split_touching=self.split_touching.value,
            min_diameter=float(self.min_diameter.value) or None,
            min_size=float(self.min_size.value),
            max_size=float(self.max_size.value) or None,
            exclude_border=bool(self.exclude_border.value),
            fill_holes=bool(self.fill_holes.value),
            time_axis=0 if self.time_series.value else None,
        )
        return replace(base, count=count)

    def apply_settings(self, settings):
        """Set the counting options of the form."""
        c = settings.count
        if c.time_axis not in (None, 0):
            raise ValueError(f"the widget counts time along axis 0, not {c.time_axis}")
        self.connectivity.value = c.connectivity
        self.split_touching.value = c.split_touching
        self.min_diameter.value = c.min_diameter or 0.0
        self.min_size.value = c.min_size
        self.max_size.value = c.max_size or 0.0
        self.exclude_border.value = c.exclude_border
        self.fill_holes.value = c.fill_holes
        self.time_series.value = c.time_axis == 0

    def run(self):
        mask_layer, image_layer = self.mask.value, self.image.value
        try:
            mask = labels_data(mask_layer, name="mask")
            image = image_data(image_layer, name="intensity image") if image_layer else None
            if image is not None and image.shape != mask.shape:
                raise ValueError(
                    f"intensity image {image_layer.name!r} has shape {image.shape}, the mask "
                    f"{mask.shape}: choose an image of the same shape"
                )
            params = self.parameters(mask_layer)
        except ValueError as exc:
            self.report_error(exc)
            return None
        progress = self.progress_callback
        add_points = bool(self.add_points.value)

        def work():
            from napari_binseg.counting import count_cells, count_summary

            labels, table = count_cells(mask, image, **params, progress=progress)
            summary = count_summary(table, per="frame")
            return labels, table, summary

        def done(result):
            labels, table, summary = result
            self.table, self.summary = table, summary
            n = int(len(table))
            per_frame = None
            if params["time_axis"] is not None and "frame" in summary.columns:
                per_frame = [int(c) for c in summary["count"].to_numpy()]
            features = table.copy()
            if "label" in features.columns:
                features.insert(0, "index", features["label"].to_numpy())
            self.output = upsert_layer(
                self.viewer,
                labels,
                layer_type="labels",
                source=mask_layer,
                widget=self.widget_id,
                name=f"{mask_layer.name} [count]",
                metadata={
                    "method": "count_cells",
                    "parameters": params,
                    "intensity_image": image_layer.name if image_layer else None,
                    "count": n,
                    "count_per_frame": per_frame,
                },
                features=features,
            )
            if add_points:
                translate = tuple(mask_layer.translate)
                pts = centroid_points(
                    table,
                    translate=translate,
                    time_axis=params["time_axis"],
                    frame_scale=float(mask_layer.scale[0]),
                )
                geometry = {
                    "scale": (1.0,) * mask_layer.ndim,
                    "translate": (0.0,) * mask_layer.ndim,
                }
                if hasattr(mask_layer, "units"):
                    geometry["units"] = tuple(mask_layer.units)
                    geometry["axis_labels"] = tuple(mask_layer.axis_labels)
                self.points = upsert_layer(
                    self.viewer,
                    pts,
                    layer_type="points",
                    source=mask_layer,
                    widget=self.widget_id,
                    role="points",
                    name=f"{mask_layer.name} [centroids]",
                    geometry=geometry,
                    metadata={
                        "method": "count_cells centroids",
                        "count": n,
                        "coordinates": "world",
                    },
                    features=table.reset_index(drop=True),
                    size=_point_size(mask_layer),
                )
            self.table_view.set_dataframe(table)
            self.save_button.setEnabled(True)
            text = f"{n} objects"
            if per_frame is not None:
                text += " | per frame: " + ", ".join(str(c) for c in per_frame[:50])
                text += " ..." if len(per_frame) > 50 else ""
            self.count_label.setText(text)
            self.status.setText(f"{self.output.name}: {text}")

        return self.start(work, on_result=done, label=f"Counting {mask_layer.name}")

    def save_csv(self, path) -> str:
        """Write the last table to ``path`` (the dialog-free part of "Save table as CSV")."""
        if self.table is None:
            raise ValueError("nothing to save yet: run the counter first")
        return save_table_csv(self.table, path)

    def _save_dialog(self):
        mask = self.mask.value
        path = ask_save_path(self, f"{mask.name if mask else 'count'}_objects.csv")
        if path:
            self.status.setText(f"Saved {self.save_csv(path)}")


def _point_size(layer) -> float:
    """A point size of about 5 pixels in world units."""
    return float(5 * np.mean(np.asarray(layer.scale)[-2:]))
