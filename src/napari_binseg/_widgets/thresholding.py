"""The "Threshold" dock widget: Image layer in, Labels mask out, with a live preview of the
displayed plane and a histogram showing the threshold(s)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, SpinBox
from qtpy.QtCore import QTimer

from napari_binseg._validation import is_dask

from ._base import BinsegWidget
from ._form import OptionForm, _decimals, number_control
from ._histogram import HistogramPlot, histogram
from ._layers import (
    current_index,
    image_data,
    output_meta,
    same_layer,
    spatial_meta,
    unwrap,
    upsert_layer,
)

if TYPE_CHECKING:
    import napari

#: A mask from a dask image stays lazy (computed plane by plane as napari displays it) above
#: this many bytes; smaller ones are computed in the worker.
LAZY_ABOVE = 1 << 30
#: Whole-stack thresholds for the preview are computed in the GUI thread up to this many
#: values (a few ms); above, once in a background worker, and the preview waits for it.
PREVIEW_SYNC_LIMIT = 1 << 23


class _Pending(Exception):
    """The stack threshold is being computed in the background."""


class ThresholdWidget(BinsegWidget):
    """Threshold an Image layer into a Labels layer named ``"<image> [<method>]"``.

    The preview only thresholds the plane shown in the viewer (last two axes); with the "image"
    scope it uses the threshold of the whole array, computed once per image and parameter set
    and cached. "Run" thresholds the whole array in a worker, with progress and cancel.
    """

    widget_id = "threshold"
    title = "Threshold"
    run_text = "Run on full stack"
    has_settings = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(napari_viewer, parent)
        from napari.layers import Image

        from napari_binseg.options import THRESHOLD_METHODS, ThresholdOptions

        self.image = self.layer_combo(Image, label="image", tooltip="The image to threshold")
        self.method = ComboBox(
            label="method",
            choices=list(THRESHOLD_METHODS),
            value="otsu",
            tooltip="Global threshold method (scikit-image's threshold_<method>); manual: "
            "type the value; multiotsu: classes instead of a mask",
        )
        self.value = number_control(ThresholdOptions, "value", 0.0, label="value (intensity)")
        self.classes = SpinBox(
            label="classes",
            min=2,
            max=5,
            value=3,
            tooltip="Number of classes of multi-Otsu (the output holds classes 0..n-1)",
        )
        self.options = OptionForm(ThresholdOptions, skip=("value",))
        for name, widget in self.options.widgets.items():
            setattr(self, name, widget)
        self.preview = CheckBox(
            text="live preview (displayed plane)",
            value=False,
            tooltip="Threshold the plane on screen as you change the options, in a [preview] "
            "layer; Run makes the result for the whole image",
        )
        self.log_counts = CheckBox(
            text="log counts", value=True, tooltip="Histogram heights as log(1 + count)"
        )
        for name, w in (
            ("image", self.image),
            ("method", self.method),
            ("value", self.value),
            ("classes", self.classes),
        ):
            self.add_option(name, w)
        self.options.add_to(self, advanced=("invert",))
        self.add_option("preview", self.preview)
        self.add_option("log_counts", self.log_counts, advanced=True)
        self.histogram = HistogramPlot()
        self._extra.addWidget(self.histogram)

        # value cache: (image id, data id, method, scope, classes, sigma, frame) -> threshold(s)
        self._cache: dict = {}
        self._hist_cache: dict = {}
        self._pending: dict = {}  # cache key -> worker computing a stack threshold
        self.preview_thresholds = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(30)
        self._timer.timeout.connect(self.update_preview)

        # Every option of the form (those added to ThresholdOptions later too) redraws it.
        for w in (self.image, self.method, self.value, self.classes, self.preview):
            w.changed.connect(self.schedule_preview)
        for w in self.options.widgets.values():
            w.changed.connect(self.schedule_preview)
        self.method.changed.connect(self._show_method_options)
        self.log_counts.changed.connect(self.histogram.set_log)
        napari_viewer.dims.events.current_step.connect(self.schedule_preview)
        napari_viewer.layers.events.removed.connect(self._forget_removed)
        self.image.changed.connect(self._show_run_text)
        self._show_method_options()
        self._show_run_text()
        self.schedule_preview()

    def _disconnect_viewer(self):
        self._timer.stop()
        self.viewer.dims.events.current_step.disconnect(self.schedule_preview)
        self.viewer.layers.events.removed.disconnect(self._forget_removed)

    def _show_run_text(self, *_):
        """Run button text: "Run" for a 2D image, "Run on full stack" for a stack."""
        layer = self.image.value
        stack = layer is not None and layer.ndim - (3 if getattr(layer, "rgb", False) else 2) > 0
        self.run_button.setText("Run on full stack" if stack else "Run")

    # -- parameters --------------------------------------------------------------------------
    def parameters(self) -> dict:
        """The core's keyword arguments as chosen in the form."""
        method = self.method.value
        value = float(self.value.value) if method == "manual" else None
        return {
            "method": method,
            "classes": int(self.classes.value),
            **self.options.read(value=value).to_dict(),
        }

    def settings(self, base):
        """``base`` with the method and threshold options of the form."""
        method = self.method.value
        if method == "multiotsu":
            raise ValueError("multi-Otsu gives classes, not a mask: choose a binary method")
        value = float(self.value.value) if method == "manual" else None
        return base.replace(method=method, threshold=self.options.read(value=value))

    def apply_settings(self, settings):
        """Set the method (unless it is the U-Net) and the threshold options."""
        t = settings.threshold
        self.options.set(t)
        if settings.method != "unet":
            self.method.value = settings.method
        if t.value is not None:
            self.value.value = t.value

    def _show_method_options(self, *_):
        self.value.visible = self.method.value == "manual"
        self.classes.visible = self.method.value == "multiotsu"
        edges = self.histogram.edges
        span = float(edges[-1] - edges[0])
        if self.method.value == "manual" and span > 0:
            # A step of about 1/200 of the grey-level range: 1 for 8-bit, 0.005 for [0, 1].
            step = float(min(1.0, 10 ** np.floor(np.log10(span / 200))))
            self.value.step = step
            # Decimals follow the step both ways (an earlier [0, 1e-4] image left seven).
            self.value.native.setDecimals(_decimals(step))
        if self.method.value == "manual" and self.preview_thresholds is not None:
            # Start a manual threshold where the last automatic one was.
            first = float(np.atleast_1d(self.preview_thresholds)[0])
            if np.isfinite(first):
                self.value.value = first

    def _forget_removed(self, event):
        layer = event.value
        self._cache = {k: v for k, v in self._cache.items() if k[0] != id(unwrap(layer))}
        self._hist_cache = {k: v for k, v in self._hist_cache.items() if k[0] != id(unwrap(layer))}

    # -- preview -----------------------------------------------------------------------------
    def schedule_preview(self, *_):
        """Recompute the preview soon (coalesces bursts of slider or spin box events)."""
        self._timer.start()

    def _thresholds_for(self, layer, data, index, params):
        """Threshold value(s) for the displayed plane, cached for whole-image and frame scope."""
        from napari_binseg.thresholding import threshold_value

        method, scope = params["method"], params["scope"]
        if method == "manual":
            return np.float64(params["value"])
        # The histogram rules the run applies (clipping, ignoring a few bright outliers).
        rules = {k: params[k] for k in ("sigma", "clip", "ignore_bright_outliers")}
        kwargs = {"scope": "image", **rules}
        if method == "multiotsu":
            kwargs["classes"] = params["classes"]
        if scope == "slice" or data.ndim == 2:
            return threshold_value(np.asarray(data[index]), method, **kwargs)
        key = (id(unwrap(layer)), id(data), method, scope, params["classes"], *rules.values())
        unit = data
        if scope == "frame":
            key, unit = (*key, index[0]), data[index[0]]
        if key not in self._cache:
            # A big frame or stack (often lazy) would freeze the viewer while it is read.
            if unit.size > PREVIEW_SYNC_LIMIT:
                self._compute_in_background(key, threshold_value, unit, method, **kwargs)
                raise _Pending
            if scope == "frame":
                unit = np.asarray(unit)
            self._cache[key] = threshold_value(unit, method, **kwargs)
        return self._cache[key]

    def _resolve_sigma(self, layer, data, index, params):
        """``params`` with ``sigma="auto"`` replaced by the sigma a run gives the displayed
        plane (measured once per image, or per plane / frame where each has its own
        threshold), so the preview smooths it as the run does."""
        if params["sigma"] != "auto":
            return params
        from napari_binseg._threshold_noise import resolve_sigma, unit_sigma

        scope = params["scope"] if data.ndim > 2 else "image"
        key = (id(unwrap(layer)), id(data), "sigma", params["invert"])
        if scope == "image":
            func, args = resolve_sigma, ("auto",)
        else:  # the displayed unit, measured as the run measures each
            at = index if scope == "slice" else index[:1]
            key, func, args = (*key, scope, at), unit_sigma, (at,)
        if key not in self._cache:
            self._measure(key, func, data, *args, invert=params["invert"], scope=scope)
        return params | {"sigma": float(self._cache[key][0])}

    def _resolve_background(self, layer, data, params):
        """``params`` with ``background="uneven"`` replaced by what a run on the whole image
        decides (``"auto"`` or None, measured once per image), so the preview subtracts where
        the run does; and the unevenness measured (None where not "uneven")."""
        if params["background"] != "uneven":
            return params, None
        from napari_binseg.background import resolve_background

        manual = params["method"] == "manual"
        key = (id(unwrap(layer)), id(data), "background", params["invert"], manual)
        if key not in self._cache:
            kwargs = {"invert": params["invert"], "method": params["method"]}
            self._measure(key, resolve_background, data, "uneven", **kwargs)
        background, unevenness = self._cache[key]
        return params | {"background": background}, unevenness

    def _measure(self, key, func, data, *args, **kwargs):
        """``self._cache[key] = func(data, ...)``: in a worker when ``data`` is lazy or large
        (reading its sampled planes would freeze the viewer; raises ``_Pending``)."""
        if is_dask(data) or data.size > PREVIEW_SYNC_LIMIT:
            self._compute_in_background(key, func, data, *args, **kwargs)
            raise _Pending
        self._cache[key] = func(data, *args, **kwargs)

    def _compute_in_background(self, key, func, *args, **kwargs):
        """``func(*args, **kwargs)`` once in a worker (a whole-stack threshold or measure),
        stored under ``key``; then refresh the preview."""
        from superqt.utils import FunctionWorker, create_worker

        if key in self._pending:
            return

        def store(value):
            self._cache[key] = value
            self._pending.pop(key, None)
            self.schedule_preview()

        def failed(exc):
            self._pending.pop(key, None)
            self.status.setText(f"Preview: {exc}")

        store, failed = self._gui_call(store), self._gui_call(failed)

        worker = create_worker(
            func,
            *args,
            **kwargs,
            _worker_class=FunctionWorker,
            _start_thread=False,
            _connect={"returned": store, "errored": failed},
        )
        self._pending[key] = worker
        worker.start()

    def _histogram_for(self, layer, data, index, scope):
        if scope == "image" and data.ndim > 2:
            key = (id(unwrap(layer)), id(data), "image")
            if key not in self._hist_cache:
                self._hist_cache[key] = histogram(_sample(data))
            return self._hist_cache[key]
        if scope == "frame" and data.ndim > 3:
            return histogram(_sample(data[index[0]]))
        return histogram(np.asarray(data[index]))

    def update_preview(self):
        """Redraw the histogram with the threshold(s) and, with the live preview on, threshold
        the displayed plane into the preview layer."""
        layer = self.image.value
        if layer is None:
            return
        params = self.parameters()
        try:
            data = image_data(layer)
            index = current_index(self.viewer, layer)
            counts, edges = self._histogram_for(layer, data, index, params["scope"])
            self.histogram.set_histogram(counts, edges)
            self.histogram.set_log(self.log_counts.value)
            params, unevenness = self._resolve_background(layer, data, params)
            if params["background"] is not None:
                mask = self._background_preview(data, index, params, unevenness)
                if mask is None:
                    return
            else:
                params = self._resolve_sigma(layer, data, index, params)
                # The threshold line is drawn even without the preview layer.
                t = self._thresholds_for(layer, data, index, params)
                self.preview_thresholds = np.asarray(t, dtype=np.float64)
                self.histogram.set_thresholds(self.preview_thresholds)
                if not self.preview.value:
                    self._set_preview_visible(False)
                    return
                mask = self._threshold_plane(np.asarray(data[index]), t, params)
        except _Pending:
            self.status.setText("Preview: measuring the stack...")
            return
        except ValueError as exc:  # e.g. RGB, constant or NaN image: say so, show nothing
            self.status.setText(f"Preview: {exc}")
            self._set_preview_visible(False)
            return
        geometry = {
            "scale": tuple(layer.scale[-2:]),
            "translate": tuple(layer.translate[-2:]),
        }
        for attr in ("units", "axis_labels"):
            if hasattr(layer, attr):
                geometry[attr] = tuple(getattr(layer, attr))[-2:]
        if layer.ndim == 2:
            geometry = spatial_meta(layer)  # with its rotation or affine, if any
        upsert_layer(
            self.viewer,
            mask,
            layer_type="labels",
            source=layer,
            widget=self.widget_id,
            role="preview",
            name=f"{layer.name} [preview]",
            geometry=geometry,
            metadata={
                "method": params["method"],
                "parameters": params,
                "plane": index,
                "thresholds": self.preview_thresholds,
            },
            opacity=0.5,
        )
        self._set_preview_visible(True)
        if self.status.text().startswith("Preview:"):
            self.status.setText("")

    def _background_preview(self, data, index, params, unevenness=None):
        """With background subtraction on, the threshold applies to the corrected intensities,
        not to the histogram shown (no line): the core thresholds the displayed plane as the
        run does (a stack's planes with scope "slice", where ``"auto"`` measures the radius on
        the displayed plane and the run on the middle one). ``unevenness``: what background
        ``"uneven"`` measured, when it chose the subtraction. None while the preview is off."""
        from napari_binseg.background import UNEVEN_GATE
        from napari_binseg.thresholding import threshold

        self.histogram.set_thresholds([])
        self.preview_thresholds = None
        if not self.preview.value:
            self._set_preview_visible(False)
            return None
        if data.ndim > 2 and params["scope"] != "slice":
            why = "with background subtraction"
            if unevenness is not None:  # the user chose "uneven", not a subtraction
                why = (
                    f"the background is uneven here (unevenness {unevenness:.2f} > "
                    f"{UNEVEN_GATE:g}), so Run subtracts it, and with a subtraction"
                )
            raise ValueError(
                f"{why} only scope 'slice' previews a stack (Run corrects the whole stack "
                "before its threshold)"
            )
        plane = np.asarray(data[index])
        mask, t = threshold(plane, **(params | {"scope": "image"}), return_thresholds=True)
        self.preview_thresholds = np.asarray(t, dtype=np.float64)
        return mask

    def _threshold_plane(self, plane, t, params):
        """The displayed plane at the preview's threshold(s), made by the core exactly as the
        run makes it (:func:`~napari_binseg.thresholding.apply_threshold`)."""
        from napari_binseg.thresholding import apply_threshold, threshold

        if params["method"] != "multiotsu":
            options = {k: params[k] for k in ("sigma", "invert", "fill_holes", "min_size")}
            return apply_threshold(plane, float(t), **options)
        if params["scope"] == "slice" or self.image.value.ndim == 2:
            return threshold(plane, "multiotsu", classes=params["classes"], sigma=params["sigma"])
        # Stack thresholds applied to this plane.
        return apply_threshold(plane, t, classes=True, sigma=params["sigma"])

    def _mark_run_thresholds(self, layer, thresholds, scope):
        """Draw the run's threshold(s) for the displayed plane on the histogram."""
        if same_layer(self.image.value, layer):
            t = _unit_thresholds(thresholds, scope, current_index(self.viewer, layer))
            self.histogram.set_thresholds(t)

    def _set_preview_visible(self, visible: bool):
        """Show or hide the chosen image's preview; other images' previews are hidden (a
        preview of the image chosen before stayed on screen over the new one)."""
        layer = self.image.value
        for other in self.viewer.layers:
            meta = output_meta(other)
            if meta.get("widget") == self.widget_id and meta.get("role") == "preview":
                other.visible = visible and layer is not None and meta.get("source") == layer.name

    # -- full run ----------------------------------------------------------------------------
    def run(self):
        """Threshold the whole array of the chosen layer in a worker."""
        layer = self.image.value
        params = self.parameters()
        try:
            data = image_data(layer)
        except ValueError as exc:
            self.report_error(exc)
            return None
        progress = self.progress_callback

        def work():
            from napari_binseg.thresholding import threshold

            mask, thresholds, info = threshold(
                data, **params, return_thresholds=True, return_info=True, progress=progress
            )
            if is_dask(mask) and mask.nbytes <= LAZY_ABOVE:
                mask = mask.compute()  # small enough: browse it without recomputing
            return mask, thresholds, info

        def done(result):
            from napari_binseg.pipeline import background_note, outliers_note, smoothing_note

            mask, thresholds, info = result
            outliers = info["bright_outliers"]
            out = upsert_layer(
                self.viewer,
                mask,
                layer_type="labels",
                source=layer,
                widget=self.widget_id,
                name=f"{layer.name} [{params['method']}]",
                metadata={
                    "method": params["method"],
                    "parameters": params,
                    "thresholds": np.asarray(thresholds, dtype=np.float64),
                    "bright_outliers": outliers,
                    "sigma": info["sigma"],
                    "noise_ratio": info["noise_ratio"],
                    "background": info["background"],
                    "unevenness": info["unevenness"],
                    "shape": mask.shape,
                    "lazy": not isinstance(mask, np.ndarray),
                },
            )
            self._set_preview_visible(False)
            self._mark_run_thresholds(layer, thresholds, params["scope"])
            t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
            shown = ", ".join(f"{v:.4g}" for v in t[:6]) + (" ..." if t.size > 6 else "")
            notes = (
                outliers_note(outliers),
                smoothing_note(info["sigma"], info["noise_ratio"], params["scope"]),
                background_note(info["background"], info["unevenness"]),
            )
            note = "; ".join(n for n in notes if n)
            self.status.setText(f"{out.name}: threshold {shown}" + (f" ({note})" if note else ""))
            self.output = out

        self.output = None
        return self.start(work, on_result=done, label=f"Thresholding {layer.name}")


def _unit_thresholds(thresholds, scope, index):
    """The threshold(s) of the displayed plane or frame from a full run's thresholds."""
    t = np.asarray(thresholds, dtype=np.float64)
    if scope == "image" or t.ndim == 0 or not index:
        return t
    lead = index[:1] if scope == "frame" else index
    try:
        return t[lead]
    except IndexError:
        return t


def _sample(data, max_values: int = 2_000_000):
    """Evenly spaced planes of a (possibly lazy) stack for the histogram: at most about
    ``max_values`` values are read, never the whole of a big stack."""
    lead = data.shape[:-2]
    n_planes = int(np.prod(lead))
    plane = int(np.prod(data.shape[-2:]))
    if n_planes * plane <= max_values:
        return np.asarray(data)
    k = max(1, min(n_planes, max_values // max(plane, 1)))
    picks = np.unique(np.linspace(0, n_planes - 1, k).round().astype(int))
    return np.stack([np.asarray(data[np.unravel_index(p, lead)]) for p in picks])
