"""The "U-Net" dock widget: Image layer in, instance Labels (and optionally the
probability map) out.

torch and monai are imported by the core inside the worker, on the first run: opening this
widget (or any other) never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit

from ._axes import axes_combo, length_unit, spatial_spacing, update_axes_combo
from ._base import BinsegWidget
from ._form import OptionForm, number_control
from ._layers import image_data, show_in_3d, upsert_layer

if TYPE_CHECKING:
    import napari

MODEL_SOURCES = (
    ("bundled nuclei model", "nuclei"),
    ("model file", "file"),
    ("model folder (MONAI bundle)", "folder"),
)
#: Display text of UNetOptions.mode's values.
VOLUME_MODES = {"accurate": "accurate (XY, XZ, YZ)", "fast": "fast (XY planes)"}
RESCALE_MODES = (
    ("auto: measured per plane", "auto"),
    ("given nucleus diameter", "diameter"),
    ("off: pixel size as is", "off"),
)
#: The diameter box's value until a run measures one (a DSB-sized nucleus, about the model's).
TYPED_DIAMETER = 20.0


class PredictWidget(BinsegWidget):
    """Segment nuclei with a U-Net; outputs ``"<image> [unet]"`` (and ``[unet probability]``)."""

    widget_id = "predict"
    title = "U-Net"
    run_text = "Predict"
    has_settings = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Image

        from napari_binseg.options import UNetOptions, options_of

        help_of = {o.name: o.help for o in options_of(UNetOptions)}
        self.image = self.layer_combo(Image, label="image", tooltip="The image to segment")
        self.model_source = ComboBox(
            label="model", choices=list(MODEL_SOURCES), value="nuclei", tooltip=help_of["model"]
        )
        self.model_path = FileEdit(label="model path", mode="r")
        self.rescale = ComboBox(
            label="nucleus size",
            choices=list(RESCALE_MODES),
            tooltip="auto: the nucleus size is measured on each plane and the image is "
            "resized to the model's nucleus size (large nuclei downsampled, small ones "
            "upsampled); given: type the diameter; off: the pixel size as is",
        )
        self.diameter = number_control(
            UNetOptions, "diameter", TYPED_DIAMETER, label="nucleus diameter"
        )
        self.add_probability = CheckBox(
            text="also add probability map",
            value=False,
            tooltip="Add the network's foreground probability as an image layer",
        )
        self.stack = axes_combo()
        self.options = OptionForm(
            UNetOptions, skip=("model", "diameter"), choice_names={"mode": VOLUME_MODES}
        )
        for name, widget in self.options.widgets.items():
            setattr(self, name, widget)
        for name, w in (
            ("image", self.image),
            ("stack", self.stack),
            ("mode", self.mode),
            ("model_source", self.model_source),
            ("model_path", self.model_path),
            ("rescale", self.rescale),
            ("diameter", self.diameter),
        ):
            self.add_option(name, w)
        self.options.add_to(self, order=[n for n in self.options.widgets if n != "mode"])
        self.add_option("add_probability", self.add_probability, advanced=True)
        self.image.changed.connect(self._image_changed)
        self.stack.changed.connect(self._show_mode)
        self._image_changed()
        self.model_source.changed.connect(self._show_model_path)
        self._show_model_path()
        self.model_source.changed.connect(self._follow_model_threshold)
        self.model_path.changed.connect(self._follow_model_threshold)
        self._follow_model_threshold()
        self.rescale.changed.connect(self._show_diameter)
        self.set_diameter(UNetOptions().diameter)
        self._show_diameter()
        self.output = None
        self.probability = None
        self.table = None

    def _image_changed(self, *_):
        update_axes_combo(self.stack, self.image.value)
        self._show_mode()

    def _show_mode(self, *_):
        layer = self.image.value
        self.mode.visible = layer is not None and layer.ndim > 2 and "Z" in self.stack.value

    def axes(self, layer) -> str:
        return self.stack.value if layer.ndim > 2 else "YX"

    def _show_model_path(self, *_):
        source = self.model_source.value
        self.model_path.visible = source != "nuclei"
        self.model_path.mode = "d" if source == "folder" else "r"
        self.model_path.choose_btn.text = "Browse..."  # the mode resets it

    def _follow_model_threshold(self, *_):
        """One step up from "model" on the probability threshold gives the chosen model's."""
        try:
            model = self.model()
        except ValueError:  # no file chosen yet
            model = None
        from napari_binseg.unet.network import config_threshold

        self.options.set_first("prob_threshold", config_threshold(model))

    def _show_diameter(self, *_):
        self.diameter.visible = self.rescale.value == "diameter"

    def model(self) -> str:
        """``"nuclei"`` or the chosen file/folder path."""
        if self.model_source.value == "nuclei":
            return "nuclei"
        path = str(self.model_path.value or "")
        if path in ("", "."):
            raise ValueError("model: choose a model file or folder first")
        return path

    def parameters(self) -> dict:
        diameter = {"auto": "auto", "off": None}.get(self.rescale.value)
        if self.rescale.value == "diameter":
            diameter = float(self.diameter.value)
        options = self.options.read(diameter=diameter).to_dict()
        del options["model"]
        return options

    def settings(self, base):
        """``base`` with method ``"unet"`` and the U-Net options of the form."""
        from napari_binseg.options import UNetOptions

        return base.replace(
            method="unet", unet=UNetOptions(model=self.model(), **self.parameters())
        )

    def apply_settings(self, settings):
        """Set the model and the U-Net options of the form."""
        from pathlib import Path

        u = settings.unet
        if u.model == "nuclei":
            self.model_source.value = "nuclei"
        else:
            self.model_source.value = "folder" if Path(u.model).is_dir() else "file"
            self.model_path.value = u.model
        self.options.set(u)
        self.set_diameter(u.diameter)

    def set_diameter(self, diameter):
        """Show UNetOptions.diameter: ``"auto"``, None (off) or a number of pixels."""
        if diameter in ("auto", None):
            self.rescale.value = "auto" if diameter == "auto" else "off"
        else:
            self.rescale.value = "diameter"
            self.diameter.value = diameter

    def run(self):
        layer = self.image.value
        try:
            data = image_data(layer)
            model = self.model()
            params = self.parameters()
        except ValueError as exc:
            self.report_error(exc)
            return None
        axes = self.axes(layer)
        spacing = spatial_spacing(layer, axes)
        unit = length_unit(layer)
        # Z-stacks: the spacing also sets the accurate mode's resampling.
        params |= {"axes": axes, "spacing": spacing if unit or "Z" in axes else None}
        want_probability = bool(self.add_probability.value)
        progress = self.progress_callback

        def work():
            from napari_binseg.unet import load_model, segment

            loaded = load_model(model, device=params["device"])
            info = {
                "model": getattr(loaded, "name", str(model)),
                "model_path": None if model == "nuclei" else model,
                "weights_sha256": getattr(loaded, "sha256", None),
                "model_config": getattr(loaded, "config", None),
            }
            out = segment(
                data,
                loaded,
                **params,
                progress=progress,
                return_probabilities=want_probability,
                return_info=True,
            )
            labels, probability = out[0], (out[1] if want_probability else None)
            run_info = out[-1]
            # The same measurement table as Count cells gives (for napari's features).
            table = measure_labels(labels, np.asarray(data), spacing=spacing, unit=unit, axes=axes)
            # segment numbers the nuclei 1..n, so the count is the maximum (no np.unique).
            info |= {
                # The values that ran: the model's own where the form says "model".
                "parameters": params
                | {k: run_info.get(k) for k in ("prob_threshold", "min_confidence")},
                "n_objects": int(labels.max(initial=0)),
                "diameter": run_info.get("diameter"),
                "diameter_um": run_info.get("diameter_um"),
                "seconds": run_info.get("seconds"),
            }
            return labels, probability, info, table

        def done(result):
            labels, probability, info, table = result
            n = info["n_objects"]
            metadata = {"method": "unet"} | info
            features = table.copy()
            features.insert(0, "index", features["label"].to_numpy())
            self.table = table
            self.output = upsert_layer(
                self.viewer,
                labels,
                layer_type="labels",
                source=layer,
                widget=self.widget_id,
                name=f"{layer.name} [unet]",
                metadata=metadata,
                features=features,
            )
            if probability is not None:
                self.probability = upsert_layer(
                    self.viewer,
                    probability,
                    layer_type="image",
                    source=layer,
                    widget=self.widget_id,
                    role="probability",
                    name=f"{layer.name} [unet probability]",
                    metadata=metadata,
                    colormap="magma",
                    contrast_limits=(0.0, 1.0),
                    blending="additive",
                )
            if "Z" in axes:
                show_in_3d(self.viewer)
            size = diameter_text(info.get("diameter"), info.get("diameter_um"))
            self.status.setText(f"{self.output.name}: {n} objects ({info['model']}){size}")
            if info.get("diameter") and self.rescale.value != "diameter":
                # Offer the estimate as the value to type (or keep) for a given diameter.
                self.diameter.value = round(float(info["diameter"]), 1)

        return self.start(work, on_result=done, label=f"Predicting {layer.name}")


def diameter_text(px, um=None) -> str:
    """ ", nucleus diameter 18.2 px (4.1 µm)" for the status line; "" when unknown."""
    if not px:
        return ""
    text = f", nucleus diameter {float(px):.1f} px"
    return text + (f" ({float(um):.2f} µm)" if um else "")


def measure_labels(labels, image, *, spacing, unit, axes):
    """The measurement table of a label image (per frame with a time axis, as Count gives it)."""
    import pandas as pd

    from napari_binseg.measure import measure_objects

    spacing = spacing if unit else None
    if "T" not in axes:
        return measure_objects(labels, image, spacing=spacing, unit=unit)
    tables = []
    for t in range(labels.shape[0]):
        table = measure_objects(labels[t], image[t], spacing=spacing, unit=unit)
        table.insert(1, "frame", t)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)
