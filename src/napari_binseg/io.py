"""TIFF input and output that keeps dtype, axes and pixel size (ImageJ and OME-TIFF).

``imread`` returns the pixels and a plain ``meta`` dict (scale, units, axes, whether the file
holds labels); ``imwrite`` writes a file that Fiji/ImageJ, Bio-Formats, napari and tifffile
read back with the same pixel size. Neither imports napari or Qt.
"""

import json
import struct
from pathlib import Path

import numpy as np

from ._validation import as_array, is_dask

LABELS_MARKER = "napari-binseg labels=true"
LABEL_SUFFIXES = ("_labels", "_label", "_masks", "_mask")
LABEL_FOLDERS = ("labels", "masks")

_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_OME_DTYPES = tuple(
    np.dtype(t)
    for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64)
)
_DEFAULT_AXES = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}
_MICRO = ("micron", "microns", "um", "µm", "μm", "\\u00B5m", "micrometer", "micrometers")
_TIFF_RESOLUTION_UNIT_UM = {3: 1e4}  # CENTIMETER; inch resolutions are usually a 72 dpi default


def normalize_unit(unit):
    """Return a unit name napari (pint) and ImageJ both understand; None for no unit.

    ``micron``, ``um``, ``µm`` and the like become ``"µm"``; ``pixel``, empty strings and
    None become None.
    """
    if unit is None:
        return None
    text = str(unit).strip()
    if text.lower() in ("", "pixel", "pixels", "px", "none", "dimensionless"):
        return None
    if text.lower() in _MICRO or text in _MICRO:
        return "µm"
    if text.lower() in ("nanometer", "nm"):
        return "nm"
    if text.lower() in ("millimeter", "mm"):
        return "mm"
    if text.lower() in ("second", "sec", "s"):
        return "s"
    return text


def _ome_pixels(tif):
    """The ``Pixels`` attributes of the first OME image, or {}."""
    from tifffile import xml2dict

    try:
        ome = xml2dict(tif.ome_metadata)["OME"]
    except Exception:
        return {}
    image = ome.get("Image", {})
    if isinstance(image, list):
        image = image[0]
    return image.get("Pixels", {})


def _rational(tag):
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    return float(num) / float(den) if den else 0.0


def _pixel_sizes(tif, axes):
    """Scale and units per axis from ImageJ, OME, our JSON description or TIFF tags."""
    scale = {a: 1.0 for a in axes}
    units = {a: None for a in axes}
    page = tif.pages.first
    tags = page.tags
    fmt = "tiff"
    if tif.is_ome:
        fmt = "ome"
        pixels = _ome_pixels(tif)
        for a in "XYZ":
            if f"PhysicalSize{a}" in pixels:
                scale[a] = float(pixels[f"PhysicalSize{a}"])
                units[a] = normalize_unit(pixels.get(f"PhysicalSize{a}Unit", "µm"))
        if "TimeIncrement" in pixels:
            scale["T"] = float(pixels["TimeIncrement"])
            units["T"] = normalize_unit(pixels.get("TimeIncrementUnit", "s"))
    elif tif.is_imagej:
        fmt = "imagej"
        ij = tif.imagej_metadata or {}
        unit = normalize_unit(ij.get("unit"))
        for a, name in (("X", "XResolution"), ("Y", "YResolution")):
            if name in tags:
                res = _rational(tags[name])
                if res > 0:
                    scale[a] = 1.0 / res
                    units[a] = unit
        if ij.get("spacing"):
            scale["Z"] = float(ij["spacing"])
            units["Z"] = unit
        if ij.get("finterval"):
            scale["T"] = float(ij["finterval"])
            units["T"] = normalize_unit(ij.get("tunit", "s"))
    else:
        shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
        if "scale" in shaped and len(shaped["scale"]) == len(axes):
            scale.update(zip(axes, map(float, shaped["scale"]), strict=False))
            stored = map(normalize_unit, shaped.get("units", [None] * len(axes)))
            units.update(zip(axes, stored, strict=False))
        elif "ResolutionUnit" in tags and tags["ResolutionUnit"].value in _TIFF_RESOLUTION_UNIT_UM:
            factor = _TIFF_RESOLUTION_UNIT_UM[tags["ResolutionUnit"].value]
            for a, name in (("X", "XResolution"), ("Y", "YResolution")):
                if name in tags and _rational(tags[name]) > 0:
                    scale[a] = factor / _rational(tags[name])
                    units[a] = "µm"
    return tuple(scale[a] for a in axes), tuple(units[a] for a in axes), fmt


def _says_labels(tif):
    """True when the file carries our labels marker (any of the places our writer puts it)."""
    page = tif.pages.first
    doc = page.tags.get("DocumentName")
    if doc is not None and LABELS_MARKER in str(doc.value):
        return True
    info = (tif.imagej_metadata or {}).get("Info", "") if tif.is_imagej else ""
    if LABELS_MARKER in str(info):
        return True
    shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    return bool(shaped.get("labels", False))


def is_labels_path(path):
    """True when the file name or folder marks a label image (see :func:`imread`)."""
    path = Path(path)
    stem = path.name.lower()
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return stem.endswith(LABEL_SUFFIXES) or path.parent.name.lower() in LABEL_FOLDERS


def _file_stem(path):
    name = Path(path).name
    for ext in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


#: File name endings of TIFF files.
TIFF_EXTENSIONS = (".tif", ".tiff")
#: Suffixes stripped when pairing files of two folders, so cells.tif matches cells_labels.tif.
PAIR_SUFFIXES = ("_labels", "_label", "_masks", "_mask", "_pred", "_prediction", "_gt")


def source_name(path):
    """The name outputs of an input are called after: a zarr store's or a TIFF file's stem."""
    path = Path(path)
    if not path.is_dir():
        return _file_stem(path)
    return path.name[: -len(".zarr")] if path.name.lower().endswith(".zarr") else path.name


def _pair_key(path):
    stem = _file_stem(path)
    for suffix in PAIR_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _tiffs(folder):
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_EXTENSIONS
    )


def _listing(names, limit=5):
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def pair_files(first, second, *, names=("first", "second")):
    """Pairs ``(name, first file, second file)`` from two files or two folders.

    Files of two folders pair by name, ignoring the extension and a trailing ``_labels``,
    ``_masks``, ``_mask``, ``_pred``, ``_gt`` (and the like). Every TIFF in each folder must have
    exactly one partner. ``names`` call the two sides (as paths, then as files) in messages.

    Raises
    ------
    ValueError
        Missing paths, a file paired with a folder, unmatched or ambiguous names, empty folders.
    """
    first, second = Path(first), Path(second)
    for label, p in zip(names, (first, second), strict=True):
        if not p.exists():
            raise ValueError(f"{label} path {p} does not exist")
    if first.is_file() and second.is_file():
        return [(_pair_key(second), first, second)]
    if first.is_dir() != second.is_dir():
        raise ValueError(
            f"the {names[0]} and {names[1]} paths must both be files or both be folders, "
            f"got {first} and {second}"
        )
    groups = []
    for folder in (first, second):
        files = _tiffs(folder)
        if not files:
            raise ValueError(f"no .tif/.tiff files in {folder}")
        keyed = {}
        for f in files:
            if _pair_key(f) in keyed:
                raise ValueError(
                    f"{keyed[_pair_key(f)].name} and {f.name} in {folder} pair with the same name"
                )
            keyed[_pair_key(f)] = f
        groups.append(keyed)
    only_first = groups[0].keys() - groups[1].keys()
    only_second = groups[1].keys() - groups[0].keys()
    if only_first or only_second:
        parts = []
        if only_first:
            parts.append(f"no {names[1]} in {second} for: {_listing(only_first)}")
        if only_second:
            parts.append(f"no {names[0]} in {first} for: {_listing(only_second)}")
        raise ValueError("; ".join(parts))
    return [(k, groups[0][k], groups[1][k]) for k in sorted(groups[0])]


def available_memory():
    """Bytes of memory available to this process now (psutil, else the OS; None if unknown)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with dask.distributed and napari
        import os

        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def check_fits_in_memory(shape, dtype, *, name="image", available=None):
    """Refuse to read an array that cannot fit in the memory available now.

    A tiny damaged file may declare 200000 x 200000 pixels: checking the declared size first
    gives a message instead of a MemoryError after trying to allocate it.

    Raises
    ------
    ValueError
        The array's bytes exceed the available memory.
    """
    nbytes = float(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    available = available_memory() if available is None else available
    if available is not None and nbytes > available:
        raise ValueError(
            f"{name} declares {' x '.join(map(str, shape))} {np.dtype(dtype)} pixels "
            f"({nbytes / 2**30:.1f} GiB), more than the available memory "
            f"({available / 2**30:.1f} GiB); read it lazily (imread(..., lazy=True)) or "
            "check that the file is intact"
        )


def _lazy(path, series):
    """A dask array over the file through tifffile's zarr store (no pixels read yet)."""
    import dask.array as da
    import tifffile

    try:
        import zarr

        store = tifffile.imread(path, aszarr=True, series=series)
        array = zarr.open(store, mode="r")
        if hasattr(array, "shape"):
            return da.from_zarr(array)
    except ImportError:
        pass
    # No zarr, or a pyramid (zarr group): memory-map when the layout allows, else read.
    try:
        return da.from_array(tifffile.memmap(path, series=series, mode="r"))
    except ValueError:
        return da.from_array(tifffile.imread(path, series=series))


def imread(path, *, lazy=False, series=0):
    """Read a TIFF file with its pixel size, axes and whether it holds labels.

    Pixel sizes come from OME-XML (``PhysicalSizeX/Y/Z``, ``TimeIncrement``), ImageJ
    metadata (X/Y resolution tags, ``spacing`` for z, ``finterval`` for t, ``unit``), the JSON
    description our writer adds to other files, or plain TIFF resolution tags in centimetres.

    A file holds **labels** when (1) it says so: our writer's marker
    ``"napari-binseg labels=true"`` in the TIFF ``DocumentName`` tag or ImageJ ``Info``
    (or ``"labels": true`` in its JSON description); or (2) its name ends with ``_labels``,
    ``_label``, ``_masks`` or ``_mask`` before the extension, or its folder is named
    ``labels`` or ``masks`` — and in both cases its dtype is integer or boolean. Values are
    never used to guess: an 8-bit image with few grey levels stays an image.

    Parameters
    ----------
    path : str or Path
        A ``.tif``/``.tiff`` (including ``.ome.tif``) file.
    lazy : bool, optional
        Return a dask array backed by tifffile's zarr store, reading pixels only when
        computed (for files larger than memory).
    series : int, optional
        Which image series of the file to read.

    Returns
    -------
    data : ndarray or dask array
        The pixels, in the file's dtype and axis order.
    meta : dict
        ``name`` (file name without extension), ``path``, ``axes`` (tifffile axes string such
        as ``"ZYX"``, ``"TZCYX"`` or ``"YXS"`` for RGB), ``scale`` (pixel size per axis, 1.0
        where unknown), ``units`` (per axis, e.g. ``"µm"``; None where unknown),
        ``is_labels``, ``format`` (``"imagej"``, ``"ome"`` or ``"tiff"``), ``channel_axis``
        (index of a ``C`` axis or None) and ``rgb`` (last axis holds 3 or 4 colour samples).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is not a TIFF tifffile can read.

    References
    ----------
    .. [1] Goldberg et al., "The Open Microscopy Environment (OME) Data Model and XML file",
       Genome Biology 6, R47 (2005).
    .. [2] Schneider, Rasband, Eliceiri, "NIH Image to ImageJ: 25 years of image analysis",
       Nature Methods 9, 671-675 (2012).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "cells_labels.tif")
    >>> _ = imwrite(path, np.ones((2, 8, 8), np.uint16), scale=(2.0, 0.5, 0.5), labels=True)
    >>> data, meta = imread(path)
    >>> meta["axes"], meta["scale"], meta["units"], meta["is_labels"]
    ('ZYX', (2.0, 0.5, 0.5), ('µm', 'µm', 'µm'), True)
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError(f"{path} holds no image (a TIFF header without image pages)")
            if not 0 <= series < len(tif.series):
                raise ValueError(f"{path} has {len(tif.series)} image series, not {series + 1}")
            s = tif.series[series]
            axes = s.axes
            dtype = np.dtype(s.dtype)
            if not lazy:
                check_fits_in_memory(s.shape, dtype, name=str(path))
            scale, units, fmt = _pixel_sizes(tif, axes)
            marked = _says_labels(tif)
            data = None if lazy else s.asarray()
    except tifffile.TiffFileError as exc:
        raise ValueError(f"{path} is not a readable TIFF file: {exc}") from exc
    except (OSError, EOFError, IndexError, KeyError, struct.error) as exc:
        raise ValueError(f"{path} is truncated or damaged: {exc}") from exc
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path} is truncated or damaged: {exc}") from exc
    if lazy:
        data = _lazy(path, series)
    is_labels = dtype.kind in "biu" and (marked or is_labels_path(path))
    meta = {
        "name": _file_stem(path),
        "path": str(path),
        "axes": axes,
        "scale": scale,
        "units": units,
        "is_labels": bool(is_labels),
        "format": fmt,
        "channel_axis": axes.index("C") if "C" in axes else None,
        "rgb": axes.endswith("S") and data.shape[-1] in (3, 4),
    }
    return data, meta


def _check_axes(axes, ndim):
    if axes is None:
        if ndim not in _DEFAULT_AXES:
            raise ValueError(f"give axes for {ndim}D data (2 to 5 dimensions are guessed)")
        return _DEFAULT_AXES[ndim]
    axes = "".join(axes).upper()
    if len(axes) != ndim or len(set(axes)) != ndim:
        raise ValueError(f"axes {axes!r} must name each of the {ndim} axes once")
    if not axes.endswith("YX") and not axes.endswith("YXS"):
        raise ValueError(f"axes {axes!r} must end with 'YX' (or 'YXS' for RGB)")
    return axes


def imwrite(
    path,
    data,
    *,
    scale=None,
    units=None,
    axes=None,
    labels=False,
    compression=None,
    ome=None,
):
    """Write an array to TIFF keeping its dtype, axes and pixel size.

    The format is chosen so that common readers get the pixel size: an ImageJ hyperstack for
    uint8, uint16 and float32 data whose axes are in ImageJ's ``TZCYXS`` order (Fiji reads the
    calibration); OME-TIFF for the other OME pixel types (int8, int16, int32, uint32, float64)
    or when the name ends with ``.ome.tif(f)``; otherwise (int64, uint64, ...) a plain TIFF with
    a JSON description holding scale, units and axes, which :func:`imread` understands.
    Boolean data is stored as uint8 0/1. Label images are marked (``DocumentName`` tag and,
    for ImageJ, the ``Info`` property) so :func:`imread` and the napari reader open them as
    labels whatever the file name.

    Parameters
    ----------
    path : str or Path
        Output file (``.tif``/``.tiff``); parent folders are created.
    data : (..., Y, X) array-like
        Numpy or dask array (a dask array is computed).
    scale : sequence of float, optional
        Pixel size per axis (same length as ``data.ndim``); default all 1.
    units : str or sequence of str, optional
        Unit of the spatial axes (``"µm"``, ``"um"``, ``"micron"``, ``"nm"``...), or one per
        axis. Default ``"µm"`` when ``scale`` is given, else none.
    axes : str, optional
        Axis letters among ``TZCYXS`` (and others for OME/plain TIFF), e.g. ``"ZYX"``. Default
        by dimension: ``YX``, ``ZYX``, ``TZYX``, ``TZCYX``.
    labels : bool, optional
        Mark the file as a label image.
    compression : str, optional
        tifffile compression, e.g. ``"zlib"``. Default: ``"zlib"`` for labels (they compress
        10-100x), none for images.
    ome : bool, optional
        Force (True) or forbid (False) OME-TIFF; default as described above.

    Returns
    -------
    path : Path
        The file written.

    Raises
    ------
    ValueError
        Scale or units of the wrong length, non-positive pixel sizes, bad axes, empty data.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "stack.tif")
    >>> _ = imwrite(path, np.zeros((3, 16, 16), np.uint16), scale=(2.0, 0.25, 0.25))
    >>> imread(path)[1]["scale"]
    (2.0, 0.25, 0.25)
    """
    import tifffile

    data = as_array(data, name="data")
    if is_dask(data):
        data = data.compute()
    data = np.asarray(data)
    if data.size == 0:
        raise ValueError(f"data is empty (shape {data.shape})")
    if data.dtype == bool:
        data = data.view(np.uint8)
    ndim = data.ndim
    axes = _check_axes(axes, ndim)
    spatial = [a for a in axes if a in "XYZ"]

    if scale is None:
        scale = (1.0,) * ndim
    scale = tuple(float(s) for s in np.atleast_1d(scale))
    if len(scale) != ndim:
        raise ValueError(f"scale must have one value per axis ({ndim}), got {len(scale)}")
    if not all(np.isfinite(s) and s > 0 for s in scale):
        raise ValueError(f"scale values must be positive, got {scale}")
    if units is None:
        given = any(s != 1.0 for s in scale)
        units = tuple(("µm" if given and a in spatial else None) for a in axes)
    elif isinstance(units, str):
        units = tuple((units if a in spatial else None) for a in axes)
    units = tuple(normalize_unit(u) for u in units)
    if len(units) != ndim:
        raise ValueError(f"units must have one value per axis ({ndim}), got {len(units)}")
    if compression is None and labels:
        compression = "zlib"
    sizes = dict(zip(axes, scale, strict=False))
    unit = dict(zip(axes, units, strict=False))
    space_unit = next((unit[a] for a in ("X", "Y", "Z") if a in unit and unit[a]), None)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    wants_ome = name.endswith((".ome.tif", ".ome.tiff")) if ome is None else ome
    imagej_ok = (
        data.dtype in _IMAGEJ_DTYPES
        and all(a in "TZCYXS" for a in axes)
        and axes == "".join(a for a in "TZCYXS" if a in axes)
    )
    extratags = [(269, "s", 0, LABELS_MARKER, True)] if labels else []
    resolution = (1.0 / sizes["X"], 1.0 / sizes["Y"])
    common = dict(compression=compression, extratags=extratags, resolution=resolution)
    if not wants_ome and imagej_ok and ome is not True:
        metadata = {"axes": axes, "unit": {"µm": "micron"}.get(space_unit, space_unit or "pixel")}
        if "Z" in sizes:
            metadata["spacing"] = sizes["Z"]
        if "T" in sizes:
            metadata["finterval"] = sizes["T"]
        if labels:
            metadata["Info"] = LABELS_MARKER
        tifffile.imwrite(path, data, imagej=True, metadata=metadata, **common)
    elif data.dtype in _OME_DTYPES and ome is not False:
        metadata = {"axes": axes}
        for a in "XYZ":
            if a in sizes:
                metadata[f"PhysicalSize{a}"] = sizes[a]
                # OME's default unit is µm; "pixel" (a valid OME length unit) keeps "no unit".
                metadata[f"PhysicalSize{a}Unit"] = unit[a] or "pixel"
        if "T" in sizes:
            metadata["TimeIncrement"] = sizes["T"]
            if unit["T"]:
                metadata["TimeIncrementUnit"] = unit["T"]
        tifffile.imwrite(
            path, data, ome=True, photometric="minisblack", metadata=metadata, **common
        )
    else:
        metadata = {"axes": axes, "scale": list(scale), "units": list(units)}
        if labels:
            metadata["labels"] = True
        json.dumps(metadata)  # fail here, not inside tifffile, on odd values
        tifffile.imwrite(path, data, metadata=metadata, photometric="minisblack", **common)
    return path


def _check_chunks(array, path):
    """Refuse a store with chunks missing: zarr would read them as the fill value (zeros)."""
    try:
        stored, expected = array.nchunks_initialized, array.nchunks
    except Exception:  # a store that cannot list its keys (HTTP): nothing to check
        return
    if stored < expected:
        raise ValueError(
            f"{path} is missing {expected - stored} of its {expected} chunks, which would read "
            "as zeros; restore the store, or pass allow_missing_chunks=True if it was written "
            "without empty chunks on purpose"
        )


def read_zarr(path, *, allow_missing_chunks=False):
    """Open a zarr array lazily, with the pixel size our writer or OME-Zarr (NGFF) stores.

    Parameters
    ----------
    path : str or Path
        A zarr array, or a group whose array ``"0"`` is the full resolution (OME-Zarr).
    allow_missing_chunks : bool
        Read chunks missing from the store as the fill value. By default a store with missing
        chunks is refused: :func:`write_zarr` stores every chunk, so a missing one is damage.

    Returns
    -------
    data : dask array
        Chunked like the store; nothing is read yet.
    meta : dict
        The keys of :func:`imread` (``format`` is ``"zarr"``).

    Raises
    ------
    ValueError
        ``path`` is not a zarr array or OME-Zarr group, or chunks are missing.
    """
    import dask.array as da
    import zarr

    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
        array = node if hasattr(node, "shape") else node["0"]
    except Exception as exc:
        raise ValueError(f"{path} is not a readable zarr array: {exc}") from exc
    if not allow_missing_chunks:
        _check_chunks(array, path)
    attrs = dict(node.attrs)
    ndim = array.ndim
    axes = attrs.get("axes")
    scale = attrs.get("scale")
    units = attrs.get("units")
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
    if multiscales:
        ngff = multiscales[0]
        axes = "".join(a["name"] if isinstance(a, dict) else a for a in ngff["axes"]).upper()
        units = [a.get("unit") if isinstance(a, dict) else None for a in ngff["axes"]]
        for transform in ngff["datasets"][0].get("coordinateTransformations", []):
            if transform.get("type") == "scale":
                scale = transform["scale"]
    axes = _check_axes(axes, ndim)
    scale = tuple(float(s) for s in scale) if scale else (1.0,) * ndim
    units = tuple(normalize_unit(u) for u in units) if units else (None,) * ndim
    if len(scale) != ndim or len(units) != ndim:
        raise ValueError(f"{path}: scale/units do not have one value per axis ({ndim})")
    data = da.from_zarr(array)
    meta = {
        "name": source_name(path),
        "path": str(path),
        "axes": axes,
        "scale": scale,
        "units": units,
        "is_labels": bool(attrs.get("labels", False)) and np.dtype(data.dtype).kind in "biu",
        "format": "zarr",
        "channel_axis": axes.index("C") if "C" in axes else None,
        "rgb": axes.endswith("S"),
    }
    return data, meta


def write_zarr(path, data, *, scale=None, units=None, axes=None, labels=False):
    """Write a numpy or dask array to a zarr array, chunk by chunk, with its pixel size.

    The attributes ``axes``, ``scale``, ``units`` and ``labels`` are what :func:`read_zarr`
    reads back. A dask array is computed one chunk at a time (bounded memory).

    Parameters
    ----------
    path : str or Path
        Output ``.zarr`` folder (must not exist).
    data : array-like
        Numpy or dask array.
    scale, units, axes, labels
        As in :func:`imwrite`.

    Returns
    -------
    path : Path
    """
    import dask.array as da

    data = as_array(data, name="data")
    if not is_dask(data):
        data = da.from_array(data, chunks="auto")
    axes = _check_axes(axes, data.ndim)
    scale = tuple(float(s) for s in (scale if scale is not None else (1.0,) * data.ndim))
    if len(scale) != data.ndim:
        raise ValueError(f"scale must have one value per axis ({data.ndim}), got {len(scale)}")
    if units is None or isinstance(units, str):
        spatial = units if isinstance(units, str) else None
        units = tuple((spatial if a in "XYZ" else None) for a in axes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import zarr

    # Every chunk is stored, zeros too: a missing chunk then means damage (read_zarr refuses
    # it) instead of zarr's silent fill value.
    major = int(zarr.__version__.split(".")[0])
    every_chunk = {"config": {"write_empty_chunks": True}} if major >= 3 else {}
    da.to_zarr(data, str(path), overwrite=False, **every_chunk)  # zarr 2 stores them all

    stored = zarr.open(str(path), mode="r+")
    stored.attrs.update(
        {
            "axes": axes,
            "scale": list(scale),
            "units": [normalize_unit(u) for u in units],
            "labels": bool(labels),
        }
    )
    return path
