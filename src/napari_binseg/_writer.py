"""napari writer: Labels layers to TIFF, keeping dtype, pixel size and units."""

from pathlib import Path

from .io import imwrite, normalize_unit

_AXES = "TZCYX"


def _axes_from_labels(axis_labels, ndim):
    """File axes from napari axis labels when they are TZCYX letters ending in y, x."""
    if axis_labels and len(axis_labels) == ndim:
        letters = "".join(str(a).upper() for a in axis_labels)
        if (
            all(len(str(a)) == 1 for a in axis_labels)
            and set(letters) <= set(_AXES)
            and len(set(letters)) == ndim
            and letters.endswith("YX")
        ):
            return letters
    return None


def write_labels(path, data, meta):
    """Write a napari Labels layer to a TIFF file readable by the plugin's reader.

    The file keeps the layer's dtype, scale and units (ImageJ or OME-TIFF, see
    :func:`napari_binseg.io.imwrite`) and is marked as labels, so it opens as a Labels layer
    again whatever its name.

    Parameters
    ----------
    path : str
        Destination; ``.tif`` is appended when the name has no TIFF extension.
    data : array-like
        The layer data.
    meta : dict
        The layer attributes napari passes (``scale``, ``units``, ``axis_labels``...).

    Returns
    -------
    paths : list of str
        The file written.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        path = path.with_name(path.name + ".tif")
    ndim = len(data.shape)
    scale = meta.get("scale")
    units = meta.get("units")
    units = tuple(normalize_unit(u) for u in units) if units is not None else None
    imwrite(
        path,
        data,
        scale=tuple(scale) if scale is not None else None,
        units=units,
        axes=_axes_from_labels(meta.get("axis_labels"), ndim),
        labels=True,
    )
    return [str(path)]
