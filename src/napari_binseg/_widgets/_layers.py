"""Layers in and out of the widgets: layer pickers that choose by role, the data of input
layers, and the output layers a widget updates in place on every re-run."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
from magicgui.widgets import ComboBox

from napari_binseg import __version__

METADATA_KEY = "napari_binseg"

#: Roles a layer picker never chooses by default while another layer fits: they are views of
#: a result, not an input of the next step.
UNWANTED_ROLES = frozenset({"preview", "probability", "errors"})
_OUTPUT_ROLES = {"threshold": "mask", "predict": "labels", "count": "count", "train": "labels"}
_NAME_ROLES = (
    ("[preview]", "preview"),
    ("[train preview]", "preview"),
    ("probability]", "probability"),
    ("[errors]", "errors"),
)
_TRUTH_WORDS = re.compile(r"(truth|ground|\bgt\b|annotat)", re.IGNORECASE)


def unwrap(layer):
    """The layer itself: a widget docked from the manifest sees napari's public-only proxies,
    a new one for each access, so layers are compared through this."""
    return getattr(layer, "__wrapped__", layer)


def same_layer(a, b) -> bool:
    """Whether ``a`` and ``b`` are the same layer (proxied or not)."""
    return a is not None and b is not None and unwrap(a) is unwrap(b)


def output_meta(layer) -> dict:
    """What a widget wrote in its output layer's metadata; ``{}`` for any other layer."""
    meta = layer.metadata.get(METADATA_KEY) if isinstance(layer.metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def layer_role(layer) -> str:
    """What a layer is to the workflow.

    ``"preview"``, ``"probability"`` and ``"errors"`` (views of a result); ``"mask"`` (a
    Threshold output), ``"labels"`` (U-Net output), ``"count"`` (Count output); ``"truth"`` (a
    layer named like ground truth); ``"input"`` (anything else: an opened image, painted labels).
    Outputs are known by the metadata the widgets write, or by their name once saved and reopened.
    """
    meta = output_meta(layer)
    if "widget" in meta:
        role = meta.get("role", "main")
        if role in ("preview", "probability"):
            return role
        if meta["widget"] == "evaluate":
            return "errors"
        return _OUTPUT_ROLES.get(meta["widget"], "input")
    name = layer.name.lower()
    for tag, role in _NAME_ROLES:
        if name.endswith(tag):
            return role
    if _TRUTH_WORDS.search(name):
        return "truth"
    return "input"


def best_layer(layers: Sequence, prefer: Sequence, avoid: Sequence = ()):
    """The layer to choose by default among ``layers`` (newest first), or None.

    ``prefer`` lists roles (or tuples of equally good roles) from best to worst; other roles
    come next, then the unwanted ones (:data:`UNWANTED_ROLES`) and the layers in ``avoid``
    (never chosen while another fits). Ties go to the earlier (newer) layer.
    """
    ranks = {}
    for i, item in enumerate(prefer):
        for role in (item,) if isinstance(item, str) else item:
            ranks.setdefault(role, i)
    avoid_ids = {id(unwrap(a)) for a in avoid if a is not None}

    def rank(layer):
        role = layer_role(layer)
        if id(unwrap(layer)) in avoid_ids:
            return len(prefer) + 2
        if role in UNWANTED_ROLES and role not in ranks:
            return len(prefer) + 1
        return ranks.get(role, len(prefer))

    candidates = [layer for layer in layers if layer is not None]
    if not candidates:
        return None
    return min(candidates, key=rank)  # min keeps the first (newest) of equal ranks


def layer_combo(
    viewer,
    layer_types: type | tuple,
    *,
    label: str,
    optional: bool = False,
    prefer: Sequence = ("input",),
    avoid: Callable[[], Sequence] | None = None,
    auto: bool | None = None,
    types_first: bool = False,
    tooltip: str | None = None,
) -> ComboBox:
    """A ComboBox listing the viewer's layers of ``layer_types``, kept in sync with the viewer.

    The choices are recomputed when layers are added, removed, reordered or renamed, so the
    widget works whether or not it is docked. Until the user picks a layer, the value follows
    :func:`best_layer` (``prefer``, ``avoid()``): a new output of the previous step is chosen,
    a preview or probability layer is not. An optional picker starts at ``(none)`` unless
    ``auto`` is true; then it shows ``(none)`` only when no layer fits (rather than a layer to
    avoid). With ``types_first``, a layer of the first type (Labels, for a mask) wins over any
    layer of the next (an Image).
    """
    auto = not optional if auto is None else auto
    layer_types = layer_types if isinstance(layer_types, tuple) else (layer_types,)

    def layers():
        # Layers of the first type first (e.g. Labels before Image for a mask), newest first.
        found = [
            layer
            for kind in layer_types
            for layer in reversed(viewer.layers)
            if isinstance(layer, kind)
        ]
        seen = set()
        return [lay for lay in found if not (id(unwrap(lay)) in seen or seen.add(id(unwrap(lay))))]

    def choices(_widget=None):
        found = [(layer.name, layer) for layer in layers()]
        return ([("(none)", None)] if optional else []) + found

    combo = ComboBox(label=label, choices=choices, nullable=optional)
    # Long layer names must not widen the dock (the list shows them in full).
    from qtpy.QtWidgets import QComboBox

    combo.native.setSizeAdjustPolicy(
        QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
    )
    combo.native.setMinimumContentsLength(12)
    if tooltip:
        combo.tooltip = tooltip
    state = {"user": False, "auto": False}

    def default():
        if not auto:
            return None
        found = layers()
        avoided = list(avoid()) if avoid is not None else []
        if optional:
            found = [
                lay
                for lay in found
                if not any(same_layer(lay, a) for a in avoided)
                and layer_role(lay) not in UNWANTED_ROLES
            ]
        if types_first:
            for kind in layer_types:
                group = [
                    lay
                    for lay in found
                    if isinstance(lay, kind)
                    and layer_role(lay) not in UNWANTED_ROLES
                    and not any(same_layer(lay, a) for a in avoided)
                ]
                if group:
                    return best_layer(group, prefer, avoided)
        return best_layer(found, prefer, avoided)

    def set_auto(value):
        if value is None and not optional:
            return  # no layer to choose: the picker stays empty
        state["auto"] = True
        try:
            combo.value = value
        finally:
            state["auto"] = False

    def refresh(event=None):
        current = combo.value
        state["auto"] = True
        try:
            combo.reset_choices()
        finally:
            state["auto"] = False
        present = [v for _, v in choices()]
        if state["user"] and current is not None and current in present:
            set_auto(current)
        else:
            state["user"] = False
            set_auto(default())

    def chosen(value):
        if not state["auto"]:
            state["user"] = True

    def watch_name(event):
        layer = event.value
        layer.events.name.connect(refresh)
        refresh()

    def disconnect_viewer():
        viewer.layers.events.inserted.disconnect(watch_name)
        viewer.layers.events.removed.disconnect(refresh)
        viewer.layers.events.reordered.disconnect(refresh)
        for layer in viewer.layers:
            layer.events.name.disconnect(refresh)

    combo.changed.connect(chosen)
    viewer.layers.events.inserted.connect(watch_name)
    viewer.layers.events.removed.connect(refresh)
    viewer.layers.events.reordered.connect(refresh)
    for layer in viewer.layers:
        layer.events.name.connect(refresh)
    combo.refresh_default = refresh  # for pickers whose default depends on another picker
    combo.disconnect_viewer = disconnect_viewer
    refresh()
    return combo


def spatial_meta(layer) -> dict:
    """Layer geometry to copy onto an output layer: scale, translate, units, axis labels,
    rotation, shear and affine transform (outputs lay beside a rotated input before; an
    identity is copied too, so an output updated in place drops a rotation its input lost)."""
    meta = {"scale": tuple(layer.scale), "translate": tuple(layer.translate)}
    for attr in ("units", "axis_labels"):
        if hasattr(layer, attr):  # napari >= 0.6
            meta[attr] = tuple(getattr(layer, attr))
    meta["rotate"] = np.asarray(layer.rotate)
    meta["shear"] = np.asarray(layer.shear)
    meta["affine"] = np.asarray(layer.affine.affine_matrix)
    return meta


def jsonable(value):
    """Metadata values as plain Python (floats, lists, str) so they survive saving."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def source_path(layer) -> str | None:
    """The file an input layer was read from (napari's layer source, or the reader's
    metadata); an output's own ``source_path`` for an output of an output."""
    path = getattr(getattr(layer, "source", None), "path", None)
    meta = layer.metadata if isinstance(layer.metadata, dict) else {}
    path = path or meta.get("path") or output_meta(layer).get("source_path")
    return str(path) if path else None


def find_output(viewer, *, widget: str, source: str, role: str = "main", layer_type=None):
    """The output layer a widget made earlier for the input layer named ``source``, or None."""
    for layer in viewer.layers:
        meta = output_meta(layer)
        if (
            meta.get("widget") == widget
            and meta.get("source") == source
            and meta.get("role", "main") == role
            and (layer_type is None or isinstance(layer, layer_type))
        ):
            return layer
    return None


def upsert_layer(
    viewer,
    data,
    *,
    layer_type: str,
    source,
    widget: str,
    name: str,
    metadata: dict,
    role: str = "main",
    geometry: dict | None = None,
    **kwargs,
):
    """Add an output layer, or update the one this widget made before for ``source``.

    Parameters
    ----------
    viewer : napari.Viewer
    data : array
        Layer data.
    layer_type : {"labels", "image", "points"}
    source : napari.layers.Layer
        The input layer: the output is named after it and takes its scale, translate, units
        and axis labels (unless ``geometry`` is given).
    widget : str
        Which widget made the output; with ``source.name`` and ``role`` it identifies the layer
        to update on a re-run.
    name : str
        Layer name, e.g. ``"nuclei [otsu]"``.
    metadata : dict
        Method, parameters and results, stored under ``layer.metadata["napari_binseg"]``.
    role : str
        Distinguishes several outputs of one widget (e.g. ``"points"``, ``"probability"``).
    **kwargs
        Extra keyword arguments for ``viewer.add_<layer_type>`` (e.g. ``features``); on an
        update, they are set as attributes.

    Returns
    -------
    layer : napari.layers.Layer
    """
    import napari.layers

    cls = {
        "labels": napari.layers.Labels,
        "image": napari.layers.Image,
        "points": napari.layers.Points,
    }[layer_type]
    meta = {
        METADATA_KEY: jsonable(
            {"widget": widget, "source": source.name, "role": role, "version": __version__}
            | ({"source_path": path} if (path := source_path(source)) else {})
            | metadata
        )
    }
    geometry = spatial_meta(source) if geometry is None else geometry
    layer = find_output(viewer, widget=widget, source=source.name, role=role, layer_type=cls)
    if layer is None:
        return _add_layer(viewer, layer_type, data, name=name, metadata=meta, **geometry, **kwargs)
    if np.ndim(data) != layer.ndim and layer_type != "points":
        # A different dimensionality cannot be set in place; replace the layer at its index.
        index = viewer.layers.index(layer)
        viewer.layers.remove(layer)
        new = _add_layer(viewer, layer_type, data, name=name, metadata=meta, **geometry, **kwargs)
        viewer.layers.move(viewer.layers.index(new), index)
        return new
    layer.data = data
    for attr, value in geometry.items():
        setattr(layer, attr, value)
    for attr, value in kwargs.items():
        setattr(layer, attr, value)
    layer.metadata = meta
    layer.name = name
    layer.refresh()
    return layer


def _add_layer(viewer, layer_type: str, data, **kwargs):
    """``viewer.add_<layer_type>(data, **kwargs)``, a Labels layer's features set after it is
    added: napari 0.9 fails to add a Labels layer with features in the 3D view before the mouse
    has moved over the canvas (its status line reads the cursor's unset view direction)."""
    features = kwargs.pop("features", None) if layer_type == "labels" else None
    layer = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    if features is not None:
        layer.features = features
    return layer


def current_index(viewer, layer) -> tuple[int, ...]:
    """Indices of the leading (non-plane) axes of ``layer`` at the viewer's current point.

    Through the layer's own transform, so layers of another scale or translate get their own
    plane, not the viewer's step number.
    """
    if layer.ndim <= 2:
        return ()
    point = np.asarray(viewer.dims.point)[-layer.ndim :]
    coords = np.asarray(layer.world_to_data(point))[: layer.ndim - 2]
    data = layer.data[0] if layer.multiscale else layer.data
    shape = data.shape[: layer.ndim - 2]
    return tuple(int(np.clip(np.round(c), 0, s - 1)) for c, s in zip(coords, shape, strict=True))


def image_data(layer, *, name="image"):
    """The data of an Image layer for a core function, or a ValueError for unusable layers.

    Multiscale layers use the full-resolution level; RGB layers are refused (choose a channel).
    """
    import napari.layers

    if not isinstance(layer, napari.layers.Image):
        kind = type(layer).__name__ if layer is not None else "nothing"
        raise ValueError(f"{name}: choose an Image layer (got {kind})")
    if getattr(layer, "rgb", False):
        raise ValueError(
            f"{name}: layer {layer.name!r} is RGB(A) (shape {layer.data.shape}); choose one "
            "channel first (right-click the layer > Split RGB) and run on that layer"
        )
    data = layer.data[0] if layer.multiscale else layer.data
    return data


def layer_shape(layer) -> tuple:
    """Shape of a layer's (full-resolution) data, read without checks."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return tuple(np.shape(data))


def labels_data(layer, *, name="labels"):
    """Data of a Labels layer (or an integer Image layer used as a mask); a multi-Otsu class
    image is refused."""
    if layer is None:
        raise ValueError(f"{name}: choose a layer")
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if getattr(layer, "rgb", False):
        raise ValueError(f"{name}: layer {layer.name!r} is RGB(A); choose a mask layer")
    meta = output_meta(layer)
    if meta.get("method") == "multiotsu":
        lowest = np.atleast_1d(meta.get("thresholds", [np.nan]))[0]
        raise ValueError(
            f"{name}: {layer.name!r} holds multi-Otsu classes, not a mask (each class "
            "region would be taken as an object): threshold with a binary method, or with "
            f"method manual at the lowest multi-Otsu threshold ({float(lowest):.4g}) to keep "
            "every class"
        )
    return data


def check_mask_image(data, *, layer_name: str, name="mask"):
    """Refuse the data of an Image layer chosen as a mask unless it holds a binary mask (0/1,
    0/255); returns ``data``.

    Counted as labels, a raw 8-bit image gave 100,000 one-grey-level "objects". A label image
    opened as an Image layer is converted by the user (napari's Convert to Labels). It reads
    the whole array, so a widget calls it in its worker, not on the GUI thread; a lazy array
    is not read for it.
    """
    from napari_binseg._validation import is_mask

    if isinstance(data, np.ndarray) and (data.size == 0 or not is_mask(data)):
        raise ValueError(
            f"{name}: {layer_name!r} is an Image layer of {data.dtype} intensities, not a "
            "mask: threshold it first (Threshold or U-Net), or, if it holds labels, "
            "convert it (right-click the layer > Convert to Labels)"
        )
    return data


def show_in_3d(viewer):
    """Volumes are seen in napari's 3D view: switch to it (the user may switch back)."""
    if viewer.dims.ndisplay != 3:
        viewer.dims.ndisplay = 3
