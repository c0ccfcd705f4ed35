"""The "U-Net predict" dock widget: Image layer in, instance Labels (and optionally the
probability map) out.

torch and monai are imported by the core inside the worker, on the first run: opening this
widget (or any other) never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, SpinBox

from ._common import BinsegWidget, image_data, layer_combo, upsert_layer

if TYPE_CHECKING:
    import napari

MODEL_SOURCES = (
    ("bundled nuclei model", "nuclei"),
    ("model file", "file"),
    ("model folder (MONAI bundle)", "folder"),
)
DEVICES = ("auto", "cpu", "cuda", "mps")
RESCALE_MODES = (
    ("auto: upsample small nuclei", "auto"),
    ("given nucleus diameter", "diameter"),
    ("off: pixel size as is", "off"),
)


class PredictWidget(BinsegWidget):
    """Segment nuclei with a U-Net; outputs ``"<image> [unet]"`` (and ``[unet probability]``)."""

    widget_id = "predict"
    run_text = "Predict"
    has_settings = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Image

        self.image = layer_combo(napari_viewer, Image, label="image")
        self.model_source = ComboBox(label="model", choices=list(MODEL_SOURCES), value="nuclei")
        self.model_path = FileEdit(label="model path", mode="r")
        self.device = ComboBox(label="device", choices=list(DEVICES), value="auto")
        self.tile_size = SpinBox(label="tile size", min=32, max=4096, step=32, value=1024)
        self.overlap = FloatSpinBox(label="tile overlap", min=0.0, max=0.75, step=0.05, value=0.25)
        self.batch_size = SpinBox(label="batch size", min=1, max=64, value=4)
        self.prob_threshold = FloatSpinBox(
            label="probability threshold", min=0.01, max=0.99, step=0.05, value=0.5
        )
        self.rescale = ComboBox(
            label="rescale",
            choices=list(RESCALE_MODES),
            value="auto",
            tooltip="auto: planes whose nuclei are much smaller than the model's training nuclei "
            "are upsampled and segmented again (slower on those planes, more accurate)",
        )
        self.diameter = FloatSpinBox(
            label="nucleus diameter (pixels)",
            min=1.0,
            max=1000.0,
            step=1.0,
            value=20.0,
            tooltip="typical nucleus diameter: the image is resized to the model's nucleus size",
        )
        self.add_probability = CheckBox(text="also add probability map", value=False)
        for name, w in (
            ("image", self.image),
            ("model_source", self.model_source),
            ("model_path", self.model_path),
            ("device", self.device),
            ("tile_size", self.tile_size),
            ("overlap", self.overlap),
            ("batch_size", self.batch_size),
            ("prob_threshold", self.prob_threshold),
            ("rescale", self.rescale),
            ("diameter", self.diameter),
            ("add_probability", self.add_probability),
        ):
            w.name = name
            self.form.append(w)
        self.model_source.changed.connect(self._show_model_path)
        self._show_model_path()
        self.rescale.changed.connect(self._show_diameter)
        self._show_diameter()
        self.output = None
        self.probability = None

    def _show_model_path(self, *_):
        source = self.model_source.value
        self.model_path.visible = source != "nuclei"
        self.model_path.mode = "d" if source == "folder" else "r"

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
        return {
            "device": self.device.value,
            "tile_size": int(self.tile_size.value),
            "overlap": float(self.overlap.value),
            "batch_size": int(self.batch_size.value),
            "prob_threshold": float(self.prob_threshold.value),
            "diameter": {"auto": "auto", "off": None}.get(
                self.rescale.value, float(self.diameter.value)
            ),
        }

    def settings(self, base):
        """``base`` with method ``"unet"`` and the U-Net options of the form."""
        from dataclasses import replace

        from napari_binseg.pipeline import UNetSettings

        return replace(
            base, method="unet", unet=UNetSettings(model=self.model(), **self.parameters())
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
        self.device.value = u.device
        self.tile_size.value = u.tile_size
        self.overlap.value = u.overlap
        self.batch_size.value = u.batch_size
        self.prob_threshold.value = u.prob_threshold
        if u.diameter in ("auto", None):
            self.rescale.value = "auto" if u.diameter == "auto" else "off"
        else:
            self.rescale.value = "diameter"
            self.diameter.value = u.diameter

    def run(self):
        layer = self.image.value
        try:
            data = image_data(layer)
            model = self.model()
        except ValueError as exc:
            self.report_error(exc)
            return None
        params = self.parameters()
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
            if want_probability:
                labels, probability = segment(
                    data, loaded, **params, progress=progress, return_probabilities=True
                )
            else:
                labels = segment(data, loaded, **params, progress=progress)
                probability = None
            # segment numbers the nuclei 1..n, so the count is the maximum (no np.unique).
            return labels, probability, info | {"n_objects": int(labels.max(initial=0))}

        def done(result):
            labels, probability, info = result
            n = info["n_objects"]
            metadata = {"method": "unet", "parameters": params} | info
            self.output = upsert_layer(
                self.viewer,
                labels,
                layer_type="labels",
                source=layer,
                widget=self.widget_id,
                name=f"{layer.name} [unet]",
                metadata=metadata,
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
            self.status.setText(f"{self.output.name}: {n} objects ({info['model']})")

        return self.start(work, on_result=done, label=f"Predicting {layer.name}")
