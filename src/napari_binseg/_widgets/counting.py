"""The "Count" dock widget: a mask (Labels or Image layer) in, counted and measured
objects out as a Labels layer whose ``features`` hold the measurement table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton

from .._validation import is_mask
from ..measure import unit_columns
from ._axes import axes_combo, length_unit, spatial_spacing, update_axes_combo
from ._base import BinsegWidget
from ._files import ask_save_path, save_table_csv
from ._form import OptionForm
from ._layers import (
    check_mask_image,
    image_data,
    labels_data,
    layer_shape,
    output_meta,
    show_in_3d,
    spatial_meta,
    upsert_layer,
)
from ._table import DataFrameTable

if TYPE_CHECKING:
    import napari

CONNECTIVITY_NAMES = {None: "full (8 / 26 neighbours)", 1: "faces (4 / 6 neighbours)"}
SPLIT_NAMES = (
    (False, "no"),
    (True, "distance transform"),
    ("intensity", "distance + intensity valleys"),
)
#: Count options folded away in the widget (besides those the options mark advanced).
ADVANCED = ("min_diameter", "max_size", "exclude_border", "fill_holes", "connectivity")


def is_instance_labels(layer) -> bool:
    """A label image of instances already (U-Net or Count output, ground truth, or a Labels
    layer holding more than one non-zero value): counting it again should not split it."""
    import napari.layers

    from ._layers import layer_role

    if not isinstance(layer, napari.layers.Labels):
        return False
    if layer_role(layer) in ("labels", "count", "truth"):
        return True
    if layer_role(layer) == "mask":
        return False
    data = layer.data[0] if layer.multiscale else layer.data
    if not isinstance(data, np.ndarray) or data.size > 1 << 24:
        return False  # a lazy or huge layer is not read on the GUI thread to find out
    return not is_mask(data)


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
    """Count and measure the objects of a mask; results in a Labels layer ``"<mask> [count]"``.

    The options come from :class:`napari_binseg.options.CountOptions` (an
    :class:`~._form.OptionForm`); sizes are in the mask layer's units (µm² when it is
    calibrated, else px²).
    """

    widget_id = "count"
    title = "Count"
    run_text = "Count"
    has_settings = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Image, Labels

        from napari_binseg.options import CountOptions

        self.mask = self.layer_combo(
            (Labels, Image),
            label="mask",
            prefer=(("mask", "labels"), "input", "truth"),
            types_first=True,
            tooltip="The mask (Threshold's output) or label image (U-Net's) to count",
        )
        self.image = self.layer_combo(
            Image,
            label="intensity image",
            optional=True,
            tooltip="Optional: the image measured inside each object (mean, min, max)",
        )
        self.stack = axes_combo()
        self.options = OptionForm(
            CountOptions,
            skip=("time_axis",),
            choice_names={"split_touching": dict(SPLIT_NAMES), "connectivity": CONNECTIVITY_NAMES},
        )
        self.add_option("mask", self.mask)
        self.add_option("image", self.image)
        self.add_option("stack", self.stack)
        self.options.add_to(self, advanced=ADVANCED)
        self.add_points = self.add_option(
            "add_points", CheckBox(text="add centroid points", value=False), advanced=True
        )
        for name, widget in self.options.widgets.items():
            setattr(self, name, widget)
        self._split_chosen = False
        self._image_chosen = False
        self._setting_image = False
        self.split_touching.changed.connect(self._split_changed)
        self.image.changed.connect(self._image_changed)
        self.mask.changed.connect(self._mask_changed)
        self.stack.changed.connect(self._show_units)
        self._mask_changed()

        self.count_label = QLabel("")
        self.count_label.setWordWrap(True)
        self.table_view = DataFrameTable()
        self.save_button = QPushButton("Save CSV...")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        row = QHBoxLayout()
        row.addWidget(self.count_label, 1)
        row.addWidget(self.save_button)
        self._extra.addLayout(row)
        self._extra.addWidget(self.table_view)
        self.grow_extra()
        self.table = None
        self.table_unit = None
        self.summary = None
        self.output = None
        self.points = None

    # -- form --------------------------------------------------------------------------------
    def _split_changed(self, *_):
        if not self._setting_split:
            self._split_chosen = True

    _setting_split = False

    def _image_changed(self, *_):
        if not self._setting_image:
            self._image_chosen = True

    def _mask_changed(self, *_):
        """Axes and units follow the mask layer; a label image of instances is not split
        again unless the user chose a split; the intensity image is the one the mask was made
        from (until the user picks one)."""
        layer = self.mask.value
        if not self._image_chosen:
            self._setting_image = True
            try:
                self.image.value = source_image(self.viewer, layer)
            finally:
                self._setting_image = False
        update_axes_combo(self.stack, layer)
        self._show_units()
        if layer is not None and not self._split_chosen:
            self._setting_split = True
            try:
                self.split_touching.value = not is_instance_labels(layer)
            finally:
                self._setting_split = False

    def _show_units(self, *_):
        """Sizes in the mask's units, as areas for 2D images and frames, volumes for z-stacks."""
        layer = self.mask.value
        axes = self.stack.value if layer is not None else "YX"
        self.options.set_calibration(
            length_unit(layer) if layer is not None else None,
            ndim=3 if "Z" in axes else 2,
        )

    def axes(self, mask_layer) -> str:
        return self.stack.value if mask_layer.ndim > 2 else "YX"

    def parameters(self, mask_layer) -> dict:
        """The core's keyword arguments; spacing from the mask layer's scale."""
        axes = self.axes(mask_layer)
        return self.options.read().to_dict() | {
            "spacing": spatial_spacing(mask_layer, axes),
            "axes": axes,
            "time_axis": None,
        }

    def settings(self, base):
        """``base`` with the counting options of the form (spacing comes from each image)."""
        layer = self.mask.value
        axes = self.axes(layer) if layer is not None else None
        return base.replace(count=self.options.read(), axes=axes if axes != "YX" else None)

    def apply_settings(self, settings):
        """Set the counting options of the form (and the stack axes when the file has them)."""
        self.options.set(settings.count)
        self._split_chosen = True
        if settings.count.time_axis not in (None, 0):
            raise ValueError(
                f"the widget counts time along axis 0, not {settings.count.time_axis}"
            )
        axes = getattr(settings, "axes", None)
        if settings.count.time_axis == 0 and axes is None:
            axes = "TYX"
        if axes and axes in [v for _, v in self.stack.choices]:
            self.stack.value = axes

    def run(self):
        import napari.layers

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
            if params["split_touching"] == "intensity" and image is None:
                names = dict(SPLIT_NAMES)
                raise ValueError(
                    f"intensity image: {names['intensity']!r} splits nuclei along the image's "
                    f"dark valleys; choose the image (or split by {names[True]})"
                )
        except ValueError as exc:
            self.report_error(exc)
            return None
        progress = self.progress_callback
        add_points = bool(self.add_points.value)
        image_as_mask = isinstance(mask_layer, napari.layers.Image)
        mask_name = mask_layer.name

        def work():
            from napari_binseg.counting import count_cells, count_summary

            if image_as_mask:
                check_mask_image(mask, layer_name=mask_name, name="mask")
            labels, table = count_cells(mask, image, **params, progress=progress)
            summary = count_summary(table, per="frame")
            return labels, table, summary

        def done(result):
            labels, table, summary = result
            self.table, self.summary = table, summary
            n = int(len(table))
            per_frame = None
            time_axis = 0 if "T" in params["axes"] else None
            if time_axis is not None and "frame" in summary.columns:
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
                # Physical centroids placed by the mask's own translate, rotation and affine.
                pts = centroid_points(
                    table,
                    translate=(0.0,) * mask_layer.ndim,
                    time_axis=time_axis,
                    frame_scale=float(mask_layer.scale[0]),
                )
                geometry = spatial_meta(mask_layer) | {"scale": (1.0,) * mask_layer.ndim}
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
            if "Z" in params["axes"]:
                show_in_3d(self.viewer)  # 3D objects
            self.table_unit = length_unit(mask_layer)
            self.table_view.set_dataframe(unit_columns(table, self.table_unit))
            self.save_button.setEnabled(True)
            text = f"{n} objects" + size_text(
                table.attrs, params["spacing"], length_unit(mask_layer)
            )
            if per_frame is not None:
                text += " | per frame: " + ", ".join(str(c) for c in per_frame[:50])
                text += " ..." if len(per_frame) > 50 else ""
            self.count_label.setText(text)
            self.status.setText(f"{self.output.name}: {text}")

        return self.start(work, on_result=done, label=f"Counting {mask_layer.name}")

    def save_csv(self, path) -> str:
        """Write the last table to ``path`` (the dialog-free part of "Save CSV..."), its
        columns named with their units (``area_um2``, ``centroid_y_um``...)."""
        if self.table is None:
            raise ValueError("nothing to save yet: run the counter first")
        return save_table_csv(unit_columns(self.table, self.table_unit), path)

    def _save_dialog(self):
        mask = self.mask.value
        path = ask_save_path(self, f"{mask.name if mask else 'count'}_objects.csv")
        if path:
            self.status.setText(f"Saved {self.save_csv(path)}")


def source_image(viewer, layer):
    """The Image layer a widget output was made from (through a chain of outputs: a count of
    a U-Net result), when it is in the viewer with the output's shape; else None."""
    import napari.layers

    shape = None if layer is None else layer_shape(layer)
    for _ in range(4):
        name = output_meta(layer).get("source") if layer is not None else None
        layer = viewer.layers[name] if name in viewer.layers else None
        if layer is None or not isinstance(layer, (napari.layers.Image, napari.layers.Labels)):
            return None
        if isinstance(layer, napari.layers.Image) and not layer.rgb:
            return layer if layer_shape(layer) == shape else None
    return None


def size_text(attrs, spacing, unit) -> str:
    """ ", nucleus diameter 8.1 µm (16.2 px), min size 5.2 µm²" from a count table's attrs
    (the sizes the counter used, estimated when the form says auto)."""
    diameter = attrs.get("diameter")
    if not diameter:
        return ""
    pixel = float(np.mean(spacing[-2:])) if spacing else 1.0
    if unit:
        text = f", nucleus diameter {diameter:.3g} {unit} ({diameter / pixel:.1f} px)"
    else:
        text = f", nucleus diameter {diameter:.1f} px"
    min_size = attrs.get("min_size")
    if min_size is not None:
        power = "³" if len(spacing) == 3 else "²"
        text += f", min size {min_size:.3g} {unit or 'px'}{power}"
    return text


def _point_size(layer) -> float:
    """A point size of about 5 pixels in world units."""
    return float(5 * np.mean(np.asarray(layer.scale)[-2:]))
