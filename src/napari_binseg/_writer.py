"""napari writer: Labels layers to TIFF that Fiji shows as they look in napari, with pixel
size and units.

A binary mask (values 0 and 1) is written as uint8 0/255, so it is white on black in Fiji and
any image viewer; a label image in the smallest unsigned type that holds its labels (uint8,
uint16, uint32), since Fiji reads 32-bit integer images poorly.
"""

from pathlib import Path

import numpy as np

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


def file_data(data):
    """The array to write for a Labels layer: a 0/1 mask as uint8 0/255, labels in the
    smallest unsigned type that holds them (negative labels keep a signed type)."""
    data = np.asarray(data)
    if data.dtype == bool:
        return data.astype(np.uint8) * np.uint8(255)
    if data.size == 0 or data.dtype.kind not in "iu":
        return data
    low, high = int(data.min()), int(data.max())
    if low >= 0 and high <= 1:
        return data.astype(np.uint8) * np.uint8(255)
    if low < 0:
        return data
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if high <= np.iinfo(dtype).max:
            return data.astype(dtype, copy=False)
    return data  # pragma: no cover


def write_labels(path, data, meta):
    """Write a napari Labels layer to a TIFF file readable by the plugin's reader.

    The file keeps the layer's scale and units (ImageJ or OME-TIFF, see
    :func:`napari_binseg.io.imwrite`) and is marked as labels, so it opens as a Labels layer
    again whatever its name; masks are written 0/255 and labels in the smallest unsigned
    type (:func:`file_data`).

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
        file_data(data),
        scale=tuple(scale) if scale is not None else None,
        units=units,
        axes=_axes_from_labels(meta.get("axis_labels"), ndim),
        labels=True,
    )
    return [str(path)]
