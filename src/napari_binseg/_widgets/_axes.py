"""The "stack is" control: what the leading axes of a layer are (z-stack or time series), read
from the layer's axis labels when it has them, and the layer's calibration for the core."""

from __future__ import annotations

from magicgui.widgets import ComboBox

#: Choices per number of layer dimensions (an unlabeled 3D stack is a z-stack, as in the core).
STACK_CHOICES = {
    3: (("z-stack (3D objects)", "ZYX"), ("time series (2D frames)", "TYX")),
    4: (("time series of z-stacks", "TZYX"),),
}
_MICRO = {"micrometer", "micron", "um", "µm"}


def layer_axes(layer) -> str | None:
    """Axes named by the layer's axis labels (``("t", "y", "x")`` -> ``"TYX"``), else None."""
    labels = [str(a).upper() for a in getattr(layer, "axis_labels", ())]
    letters = "".join(a for a in labels if len(a) == 1)
    if len(letters) == layer.ndim and letters in ("YX", "ZYX", "TYX", "TZYX"):
        return letters
    return None


def axes_combo(tooltip: str | None = None) -> ComboBox:
    """An empty "stack is" ComboBox; :func:`update_axes_combo` fills it for a layer."""
    combo = ComboBox(label="stack is", choices=[("2D image", "YX")], value="YX")
    combo.tooltip = tooltip or (
        "What the leading axis of the stack is: a z-stack (objects are 3D) or a time series "
        "(each frame on its own). Read from the layer's axis labels when it has them; an "
        "unlabeled 3D stack is a z-stack."
    )
    return combo


def update_axes_combo(combo: ComboBox, layer) -> None:
    """Choices for ``layer``'s dimensions, set to its labelled axes (or the default); hidden
    for 2D layers."""
    ndim = 0 if layer is None else layer.ndim - (1 if getattr(layer, "rgb", False) else 0)
    choices = STACK_CHOICES.get(ndim, (("2D image", "YX"),))
    current = combo.value
    combo.choices = list(choices)
    values = [v for _, v in choices]
    labelled = layer_axes(layer) if layer is not None else None
    combo.value = labelled if labelled in values else (current if current in values else values[0])
    combo.visible = ndim in STACK_CHOICES


def spatial_spacing(layer, axes: str) -> tuple:
    """The layer's scale along the spatial axes (Z, Y, X) of ``axes``."""
    scale = tuple(float(s) for s in layer.scale)
    return tuple(s for s, a in zip(scale[-len(axes) :], axes, strict=True) if a != "T")


def length_unit(layer) -> str | None:
    """The layer's spatial unit as shown in labels ("µm", "nm"), None when uncalibrated.

    A pixel size without a unit (napari's default unit "pixel" with a scale other than 1, as
    scripts add layers) is in µm, as the core reads a spacing without a unit: the form, the
    status line and the CSV columns then name the unit the numbers are in.
    """
    units = [str(u) for u in getattr(layer, "units", ())][-2:]
    if not units or all(u in ("pixel", "px", "") for u in units):
        scale = [float(s) for s in getattr(layer, "scale", ())][-2:]
        return "µm" if any(s != 1.0 for s in scale) else None
    unit = units[-1]
    if unit in _MICRO:
        return "µm"
    return {"nanometer": "nm", "millimeter": "mm", "meter": "m"}.get(unit, unit)
