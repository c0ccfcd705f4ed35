"""napari reader: TIFF files (ImageJ, OME, plain) with pixel size, axes and labels detection.

Only the file's metadata decides the layer type (see :func:`napari_binseg.io.imread`), so no
pixels are read until napari asks for the layer data.

napari's own reader also claims ``*.tif``; with two readers ``viewer.open("x.tif")`` raises
``MultipleReaderError`` (the GUI asks which one) unless a reader preference exists
(``napari.settings``: ``plugins.extension2reader``, what the dialog's "remember" sets).
:func:`prefer_for_tiff` records this plugin for ``*.tif``/``*.tiff`` when the user has no
preference for them, as soon as the plugin is used (a widget, a sample, this reader): a
preference the user chose is never changed, and ``viewer.open(path, plugin="napari")``
still reads with napari's reader.
"""

from pathlib import Path

from .io import LABEL_FOLDERS, TIFF_EXTENSIONS, imread

# Files larger than this open as lazy dask arrays (tifffile zarr store) instead of in memory.
LAZY_BYTES = 1 << 30


PLUGIN = "napari-binseg"
TIFF_PATTERNS = ("*.tif", "*.tiff")


def prefer_for_tiff() -> bool:
    """Make this plugin napari's reader for TIFF files unless the user prefers another.

    Returns True when a preference was added (False: the user has one, or no napari).
    """
    try:
        from napari.settings import get_settings
    except ImportError:  # pragma: no cover - napari is a dependency of the widgets only
        return False
    plugins = get_settings().plugins
    current = dict(plugins.extension2reader)
    missing = {p: PLUGIN for p in TIFF_PATTERNS if p not in current}
    if not missing:
        return False
    plugins.extension2reader = current | missing
    return True


def napari_get_reader(path):
    """Return :func:`read_tiff` for TIFF paths (a path or a list of paths), else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(str(p).lower().endswith(TIFF_EXTENSIONS) for p in paths):
        return None
    return read_tiff


def layer_data(data, meta):
    """One napari ``LayerDataTuple`` from :func:`~napari_binseg.io.imread`'s output.

    Image files become Image layers (split per channel when the file has a ``C`` axis, RGB when
    its last axis holds colour samples); label files become Labels layers. Scale, units and axis
    labels follow the file; ``metadata`` keeps everything ``imread`` found.
    """
    axes = meta["axes"]
    keep = list(range(len(axes)))
    kwargs = {"name": meta["name"], "metadata": dict(meta)}
    layer_type = "labels" if meta["is_labels"] else "image"
    folder = Path(meta.get("path", "")).parent.name
    if layer_type == "labels" and folder.lower() in LABEL_FOLDERS:
        # images/a.tif and labels/a.tif: "a" and "a labels", not "a" and "a [1]"
        kwargs["name"] = f"{meta['name']} {folder}"
    if layer_type == "labels":
        if data.dtype == bool:
            data = data.astype("uint8")
    elif meta.get("rgb"):
        kwargs["rgb"] = True
        keep.remove(len(axes) - 1)
    elif meta.get("channel_axis") is not None:
        kwargs["channel_axis"] = meta["channel_axis"]
        keep.remove(meta["channel_axis"])
    if layer_type == "labels" and (meta.get("rgb") or meta.get("channel_axis") is not None):
        layer_type = "image"  # a label image cannot have colour or channel axes
        keep = list(range(len(axes)))
    kwargs["scale"] = tuple(meta["scale"][i] for i in keep)
    kwargs["units"] = tuple(meta["units"][i] or "pixel" for i in keep)
    kwargs["axis_labels"] = tuple(axes[i].lower() for i in keep)
    return data, kwargs, layer_type


def read_tiff(path):
    """Read one or more TIFF files into napari layer data.

    Parameters
    ----------
    path : str, Path or list of them

    Returns
    -------
    layers : list of (data, kwargs, layer_type)
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    prefer_for_tiff()  # chosen once (e.g. in napari's dialog): TIFFs open in one step after
    layers = []
    for p in paths:
        lazy = Path(p).stat().st_size > LAZY_BYTES
        layers.append(layer_data(*imread(p, lazy=lazy)))
    return layers
