"""The segment-and-count pipeline as one function, with settings that travel as JSON.

``PipelineSettings`` holds everything that decides a result: the segmentation method (a global
threshold or the U-Net) with its options, and the counting options. The widgets save it, the
``napari-binseg segment`` command reads it, and :func:`run_pipeline` runs it on a numpy array
in memory or on a dask array chunk by chunk (bigger than memory, or on a dask.distributed
cluster: the work is a dask graph, computed by whatever scheduler is active).
"""

import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ._validation import is_dask
from .thresholding import SCOPES, THRESHOLD_METHODS

#: Segmentation methods of the pipeline: a binary global threshold or the U-Net.
PIPELINE_METHODS = tuple(m for m in THRESHOLD_METHODS if m != "multiotsu") + ("unet",)
SETTINGS_VERSION = 1
_DEVICES = ("auto", "cpu", "cuda", "mps")
_CONNECTIVITIES = (None, 1, 2, 3, 4, 6, 8, 18, 26)


def _number(value, name, *, low=None, high=None, integer=False, open_low=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if open_low else value < low):
        raise ValueError(f"{name} must be {'>' if open_low else '>='} {low}, got {value!r}")
    if high is not None and value >= high:
        raise ValueError(f"{name} must be < {high}, got {value!r}")


def _flag(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class ThresholdSettings:
    """Options of :func:`napari_binseg.threshold` (the method is ``PipelineSettings.method``)."""

    scope: str = "image"
    value: float | None = None
    sigma: float = 0.0
    invert: bool = False
    fill_holes: bool = False
    min_size: int = 0

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"threshold.scope must be one of {SCOPES}, got {self.scope!r}")
        if self.value is not None:
            _number(self.value, "threshold.value")
        _number(self.sigma, "threshold.sigma", low=0)
        _flag(self.invert, "threshold.invert")
        _flag(self.fill_holes, "threshold.fill_holes")
        _number(self.min_size, "threshold.min_size", low=0, integer=True)


@dataclass(frozen=True)
class UNetSettings:
    """Options of :func:`napari_binseg.segment`."""

    model: str = "nuclei"
    device: str = "auto"
    tile_size: int = 1024
    overlap: float = 0.25
    batch_size: int = 4
    prob_threshold: float = 0.5
    #: ``"auto"``, ``None`` (JSON null: no rescaling) or the nucleus diameter in pixels.
    diameter: str | float | None = "auto"

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"unet.model must be 'nuclei' or a model path, got {self.model!r}")
        if self.device not in _DEVICES:
            raise ValueError(f"unet.device must be one of {_DEVICES}, got {self.device!r}")
        _number(self.tile_size, "unet.tile_size", low=32, integer=True)
        _number(self.overlap, "unet.overlap", low=0, high=1)
        _number(self.batch_size, "unet.batch_size", low=1, integer=True)
        _number(self.prob_threshold, "unet.prob_threshold", low=0, high=1, open_low=True)
        if self.diameter not in ("auto", None):
            _number(self.diameter, "unet.diameter ('auto', null or pixels)", low=0, open_low=True)


@dataclass(frozen=True)
class CountSettings:
    """Options of :func:`napari_binseg.count_cells` (``spacing`` comes from the image)."""

    connectivity: int | None = None
    split_touching: bool | str = True
    min_diameter: float | None = None
    min_size: float = 0.0
    max_size: float | None = None
    exclude_border: bool = False
    fill_holes: bool = True
    time_axis: int | None = None

    def __post_init__(self):
        if self.connectivity not in _CONNECTIVITIES or isinstance(self.connectivity, bool):
            raise ValueError(
                f"count.connectivity must be one of {_CONNECTIVITIES}, got {self.connectivity!r}"
            )
        if self.split_touching not in (True, False, "intensity"):
            raise ValueError(
                f"count.split_touching must be true, false or 'intensity', "
                f"got {self.split_touching!r}"
            )
        if self.min_diameter is not None:
            _number(self.min_diameter, "count.min_diameter", low=0)
        _number(self.min_size, "count.min_size", low=0)
        if self.max_size is not None:
            _number(self.max_size, "count.max_size", low=self.min_size)
        _flag(self.exclude_border, "count.exclude_border")
        _flag(self.fill_holes, "count.fill_holes")
        if self.time_axis is not None:
            _number(self.time_axis, "count.time_axis", integer=True)


_SECTIONS = {"threshold": ThresholdSettings, "unet": UNetSettings, "count": CountSettings}


@dataclass(frozen=True)
class PipelineSettings:
    """Everything that decides a pipeline result, serializable to JSON.

    Parameters
    ----------
    method : str
        A threshold method of :data:`PIPELINE_METHODS` (``"otsu"``, ``"li"``, ...,
        ``"manual"`` with ``threshold.value``) or ``"unet"``.
    threshold : ThresholdSettings or dict
        Threshold options (used by the threshold methods).
    unet : UNetSettings or dict
        U-Net options (used by ``"unet"``).
    count : CountSettings or dict
        Counting options. With ``"unet"`` only ``min_size``, ``max_size`` and
        ``exclude_border`` apply: the network's instances are kept as they are.

    Raises
    ------
    ValueError
        An unknown method, section or key, or a value out of range; the message names it.

    Examples
    --------
    >>> s = PipelineSettings("li", count={"min_size": 20, "split_touching": False})
    >>> PipelineSettings.from_json(s.to_json()) == s
    True
    """

    method: str = "otsu"
    threshold: ThresholdSettings = field(default_factory=ThresholdSettings)
    unet: UNetSettings = field(default_factory=UNetSettings)
    count: CountSettings = field(default_factory=CountSettings)

    def __post_init__(self):
        if self.method not in PIPELINE_METHODS:
            raise ValueError(f"method must be one of {PIPELINE_METHODS}, got {self.method!r}")
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                known = {f.name for f in fields(cls)}
                unknown = sorted(set(value) - known)
                if unknown:
                    raise ValueError(
                        f"unknown setting {name}.{unknown[0]}; known: {', '.join(sorted(known))}"
                    )
                object.__setattr__(self, name, cls(**value))
            elif not isinstance(value, cls):
                raise ValueError(f"{name} must be a {cls.__name__} or a dict, got {value!r}")
        if self.method == "manual" and self.threshold.value is None:
            raise ValueError("method 'manual' needs threshold.value")

    def to_dict(self):
        """Plain dict (JSON types only), with a ``version`` key."""
        return {"version": SETTINGS_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data):
        """Settings from :meth:`to_dict`'s dict; missing keys take their defaults.

        A ``params.json`` written by ``napari-binseg segment`` (settings, inputs, command) gives
        its settings.
        """
        if not isinstance(data, dict):
            raise ValueError(f"settings must be a JSON object, got {type(data).__name__}")
        if "settings" in data and "inputs" in data:
            data = data["settings"]
            if not isinstance(data, dict):
                raise ValueError(f"settings must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", SETTINGS_VERSION)
        if version != SETTINGS_VERSION:
            raise ValueError(f"settings version {version!r} is not supported (expected 1)")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}")
        return cls(**data)

    def to_json(self, path=None):
        """The settings as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source):
        """Settings from a JSON file path or JSON text.

        Raises
        ------
        ValueError
            Unreadable JSON or invalid settings (the message names the file).
        """
        text = str(source)
        where = "settings"
        if not text.lstrip().startswith("{"):
            where = str(source)
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"cannot read settings file {source}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


def _time_axis(settings, ndim):
    axis = settings.count.time_axis
    if axis is not None and not -ndim <= axis < ndim:
        raise ValueError(f"count.time_axis {axis} is not an axis of a {ndim}D image")
    return None if axis is None else axis % ndim


def run_pipeline(image, settings=None, *, spacing=None):
    """Segment and count the nuclei of one image: labels and a table of objects.

    A threshold method thresholds ``image`` and counts the mask with
    :func:`napari_binseg.count_cells`; ``"unet"`` segments it with
    :func:`napari_binseg.segment` and measures (and size/border filters) the instances.

    A **dask** image is processed chunk by chunk with a threshold method: a global histogram,
    connected components joined across chunk borders, per-chunk measurements; memory follows
    the chunk size, and the returned labels stay lazy (store them with
    :func:`napari_binseg.io.write_zarr`). Splitting touching nuclei and hole filling need whole
    objects in memory and are refused there; the labels equal those of a numpy run up to their
    numbering. The U-Net reads a dask image plane by plane, but its labels and the measurement
    need the image in memory (``segment_file`` refuses it above its memory limit).

    Parameters
    ----------
    image : (Y, X), (Z, Y, X), (T, Y, X) or (T, Z, Y, X) ndarray or dask array
        Single-channel intensities; never modified.
    settings : PipelineSettings, optional
        Default ``PipelineSettings()`` (Otsu, then ``count_cells`` defaults).
    spacing : sequence of float, optional
        Pixel size of the spatial axes (not the time axis).

    Returns
    -------
    labels : ndarray or dask array of int32
        Objects ``1..n``; lazy for a dask image with a threshold method.
    table : pandas.DataFrame
        One row per object, as :func:`napari_binseg.count_cells` gives it.

    Raises
    ------
    ValueError
        Invalid settings or image, or options a chunked run cannot honour.

    Examples
    --------
    >>> from napari_binseg import synthetic_nuclei
    >>> image = synthetic_nuclei((64, 64), n=6, seed=1)[0]
    >>> s = PipelineSettings("otsu", count={"split_touching": False})
    >>> labels, table = run_pipeline(image, s)
    >>> int(labels.max()) == len(table)
    True
    """
    from .counting import _connectivity, count_cells
    from .measure import _spacing
    from .thresholding import threshold

    settings = PipelineSettings() if settings is None else settings
    if not isinstance(settings, PipelineSettings):
        raise ValueError(f"settings must be PipelineSettings, got {type(settings).__name__}")
    c = settings.count
    time_axis = _time_axis(settings, np.ndim(image))

    if settings.method == "unet":
        from .unet.inference import segment

        u = settings.unet
        instances = segment(
            image,
            u.model,
            device=u.device,
            tile_size=u.tile_size,
            overlap=u.overlap,
            batch_size=u.batch_size,
            prob_threshold=u.prob_threshold,
            diameter=u.diameter,
        )
        return count_cells(
            instances,
            np.asarray(image),
            spacing=spacing,
            min_size=c.min_size,
            max_size=c.max_size,
            exclude_border=c.exclude_border,
            split_touching=False,
            fill_holes=False,
            time_axis=time_axis,
        )

    t = settings.threshold
    chunked = is_dask(image)
    if chunked and (c.split_touching or c.fill_holes):
        raise ValueError(
            "count.split_touching and count.fill_holes need whole objects in memory: set both "
            "to false to process an image in chunks"
        )
    if chunked and t.scope == "image" and (t.fill_holes or t.min_size > 1):
        raise ValueError(
            "threshold.fill_holes and threshold.min_size with scope 'image' need the whole "
            "image in memory: use scope 'slice' or count.min_size to process it in chunks"
        )
    mask = threshold(
        image,
        settings.method,
        scope=t.scope,
        value=t.value,
        sigma=t.sigma,
        invert=t.invert,
        fill_holes=t.fill_holes,
        min_size=t.min_size,
    )
    if not chunked:
        return count_cells(
            mask,
            image,
            spacing=spacing,
            connectivity=c.connectivity,
            min_size=c.min_size,
            max_size=c.max_size,
            split_touching=c.split_touching,
            min_diameter=c.min_diameter,
            exclude_border=c.exclude_border,
            fill_holes=c.fill_holes,
            time_axis=time_axis,
        )

    from ._chunked_label import label_and_measure

    mask = mask.rechunk(image.chunks)
    if time_axis is not None:
        mask, image = np.moveaxis(mask, time_axis, 0), np.moveaxis(image, time_axis, 0)
    spatial = mask.ndim - (time_axis is not None)
    if spatial not in (2, 3):
        raise ValueError(
            f"image must be 2D or 3D (plus count.time_axis), got shape {tuple(mask.shape)}"
        )
    labels, table = label_and_measure(
        mask,
        image,
        spacing=_spacing(spacing, spatial),
        connectivity=_connectivity(c.connectivity, spatial)[1],
        min_size=c.min_size,
        max_size=c.max_size,
        exclude_border=c.exclude_border,
        time=time_axis is not None,
    )
    if time_axis is not None:
        labels = np.moveaxis(labels, 0, time_axis)
    return labels, table


# --------------------------------------------------------------------------------- files


def processing_chunks(chunksize, shape, dtype, limit):
    """Chunks of at most about ``limit`` bytes made of whole stored chunks, or parts of one.

    Splitting a stored chunk (halving its longest side) or merging whole stored chunks (along
    the axis they cover least) means every stored chunk is read for one processing chunk or a
    few neighbouring ones, never held for chunks far apart: memory stays bounded.
    """
    itemsize = np.dtype(dtype).itemsize
    chunk = [min(int(c), int(s)) for c, s in zip(chunksize, shape, strict=True)]
    while np.prod(chunk) * itemsize > limit and max(chunk) > 1:
        longest = int(np.argmax(chunk))
        chunk[longest] = -(-chunk[longest] // 2)
    while True:
        growable = [a for a in range(len(chunk)) if chunk[a] < shape[a]]
        if not growable:
            break
        axis = min(growable, key=lambda a: chunk[a] / shape[a])
        if np.prod(chunk) * itemsize * 2 > limit:
            break
        chunk[axis] = min(chunk[axis] * 2, shape[axis])
    return tuple(chunk)


def open_image(path):
    """A TIFF/OME-TIFF file or a zarr store as a lazy dask array, with its ``meta``.

    Raises
    ------
    ValueError
        Unreadable files, multichannel or RGB images.
    """
    from .io import imread, read_zarr

    path = Path(path)
    if path.is_dir():
        data, meta = read_zarr(path)
    else:
        data, meta = imread(path, lazy=True)
    if meta["rgb"] or meta["channel_axis"] is not None:
        raise ValueError(
            f"{path.name} has colour channels (axes {meta['axes']}); save one channel per file"
        )
    return data, meta


def output_names(name):
    """File names :func:`segment_file` writes for the input named ``name``."""
    return {
        "tif": f"{name}_labels.tif",
        "zarr": f"{name}_labels.zarr",
        "objects": f"{name}_objects.csv",
        "counts": f"{name}_counts.csv",
    }


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def segment_file(path, out_dir, settings, *, max_memory=1 << 30, chunk_bytes=64 << 20):
    """Run the pipeline on one file and write its labels and tables, all or nothing.

    Files up to ``max_memory`` bytes run in memory and give ``NAME_labels.tif``; larger ones
    run in chunks of about ``chunk_bytes`` and give ``NAME_labels.zarr``. Both keep the
    input's pixel size. The per-file tables ``NAME_objects.csv`` and ``NAME_counts.csv`` go
    to ``out_dir/per_file``. Every output is written under a temporary name and renamed when
    complete, the labels last, so a crash never leaves a file that looks finished.

    Parameters
    ----------
    path : str or Path
        A TIFF file or a zarr store.
    out_dir : str or Path
        Output folder.
    settings : PipelineSettings
    max_memory, chunk_bytes : int
        Bytes of input processed in memory; bytes per chunk above that.

    Returns
    -------
    objects, counts : pandas.DataFrame
        The object table and the count per frame (frame 0 without a time axis).
    """
    from .counting import count_summary
    from .io import imwrite, write_zarr

    data, meta = open_image(path)
    time_axis = _time_axis(settings, data.ndim)
    if time_axis is None and "T" in meta["axes"]:
        time_axis = meta["axes"].index("T")
        settings = replace(settings, count=replace(settings.count, time_axis=time_axis))
    spacing = [s for a, s in enumerate(meta["scale"]) if a != time_axis]
    large = data.nbytes > max_memory
    if large and settings.method == "unet":
        raise ValueError(
            f"{meta['name']}: {data.nbytes / 2**20:.0f} MB is above the in-memory limit "
            f"({max_memory / 2**20:.0f} MB) and the U-Net keeps the image and its labels in "
            "memory: raise the limit (--max-memory-mb) or use a threshold method"
        )
    if large:
        data = data.rechunk(processing_chunks(data.chunksize, data.shape, data.dtype, chunk_bytes))
    else:
        data = np.asarray(data.compute())
    labels, table = run_pipeline(data, settings, spacing=spacing)
    counts = count_summary(table)

    out_dir = Path(out_dir)
    names = output_names(meta["name"])
    final = {
        "labels": out_dir / names["zarr" if large else "tif"],
        "objects": out_dir / "per_file" / names["objects"],
        "counts": out_dir / "per_file" / names["counts"],
    }
    partial = {k: p.with_name(f".partial-{p.name}") for k, p in final.items()}
    final["labels"].parent.mkdir(parents=True, exist_ok=True)
    final["objects"].parent.mkdir(parents=True, exist_ok=True)
    try:
        for p in partial.values():
            _remove(p)
        geometry = dict(scale=meta["scale"], units=meta["units"], axes=meta["axes"], labels=True)
        if large:
            write_zarr(partial["labels"], labels, **geometry)
        else:
            imwrite(partial["labels"], labels, **geometry)
        table.to_csv(partial["objects"], index=False)
        counts.to_csv(partial["counts"], index=False)
        for key in ("objects", "counts", "labels"):
            _remove(final[key])
            os.replace(partial[key], final[key])
    finally:
        for p in partial.values():
            _remove(p)
    return table, counts
