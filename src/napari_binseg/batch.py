"""Segment and count many files: what ``napari-binseg segment`` runs, callable from Python.

:func:`segment_files` takes input files, an output folder and settings; it locks the folder,
records ``params.json``, runs :func:`segment_file` on every input not finished yet (in memory,
or in chunks to zarr when the in-memory run would exceed the memory limit) and pools the
per-file tables into ``objects.csv`` and ``counts.csv``. A file that fails is reported and
skipped; the others still run.

Examples
--------
>>> from napari_binseg.batch import segment_files  # doctest: +SKIP
>>> result = segment_files(["in/*.tif"], "out", PipelineSettings("li"))  # doctest: +SKIP
>>> result.failed  # doctest: +SKIP
[]
"""

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import TIFF_EXTENSIONS, source_name
from .options import BatchOptions, ThresholdOptions, UNetOptions

#: Peak bytes per pixel of an in-memory run beyond the input and the imported libraries, by
#: path and by what is counted at once (2: an image, 3: a z-stack). Measured (session 6) as
#: the growth of ``ru_maxrss`` of ``segment_file`` (read, Otsu, count, write) between two
#: sizes of a uint16 input, so numba's ~100 MB of code and runtime are not counted per pixel;
#: with the input, with / without splitting and hole filling: images (bench_memory.py's,
#: 4096^2 -> 8192^2) 6.1 / 5.6 B/px; z-stacks (synthetic_nuclei, 48 -> 96 x 512 x 512) 17.3
#: / 4-13 (39.5 with splitting before the 3D split's memory work of session 6). Set at about
#: 1.5x that, less the input, and at least the whole peak over the libraries at the smaller
#: size (images 11.8 / 9.6, z-stacks 24.3 / 19.3). The U-Net
#: (not re-measured) holds a float32 copy, its probabilities and labels. Above
#: ``max_memory`` a threshold run goes to chunks (see issue 15).
PEAK_BYTES_PER_PIXEL = {"split": {2: 12, 3: 26}, "threshold": {2: 12, 3: 20}, "unet": 48}
#: Bytes per pixel of a whole time series beyond its input (its labels, mask and their
#: uint16 copy), on top of one frame's :data:`PEAK_BYTES_PER_PIXEL`: measured 6-10 B/px with
#: the input (16 -> 32 frames of 1024^2, 2 -> 4 frames of 24 x 512 x 512), as above.
SERIES_BYTES_PER_PIXEL = 12
#: Working bytes per input pixel of one chunk of a chunked threshold run (not re-measured).
CHUNK_BYTES_PER_PIXEL = 20
#: Smallest processing chunk (bytes of input) a memory limit may ask for.
MIN_CHUNK_BYTES = 4096
_LOCK_NAME = ".napari-binseg.lock"
_OUTPUT_SUFFIXES = ("_labels.tif", "_labels.zarr", "_objects.csv", "_counts.csv")

#: params.json key of a folder whose sigma "auto" smoothed each plane / frame with its own
#: sigma (scope slice / frame, this release on): results of earlier releases, one sigma per
#: stack, are not resumed into it.
PER_UNIT = "threshold_sigma_per_unit"


def processing_chunks(chunksize, shape, dtype, limit):
    """Chunks of at most about ``limit`` bytes made of whole stored chunks, or parts of one.

    Splitting a stored chunk (halving its longest side) or merging whole stored chunks (along
    the axis they cover least) means every stored chunk is read for one processing chunk or a
    few neighbouring ones, never held for chunks far apart: memory stays bounded.
    """
    if not limit > 0:
        raise ValueError(f"chunk size must be > 0 bytes, got {limit!r}")
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


def peak_bytes(shape, dtype, settings, time_axis=None):
    """Estimated peak memory of an in-memory pipeline run on an image (input included).

    Parameters
    ----------
    shape, dtype
        Of the input image.
    settings : PipelineSettings
        The path (U-Net, threshold with or without splitting) decides the working arrays.
    time_axis : int, optional
        The time axis of a time series: its frames are counted one at a time.
    """
    pixels = int(np.prod(shape, dtype=np.float64))
    itemsize = np.dtype(dtype).itemsize
    if settings.method == "unet":
        return pixels * (itemsize + PEAK_BYTES_PER_PIXEL["unet"])
    split = settings.count.split_touching or settings.count.fill_holes
    rate = PEAK_BYTES_PER_PIXEL["split" if split else "threshold"]
    spatial = len(shape) - (time_axis is not None)
    frame_rate = rate[3 if spatial >= 3 else 2]
    if time_axis is None:
        return pixels * (itemsize + frame_rate)
    frame = pixels // max(int(shape[time_axis]), 1)
    return pixels * (itemsize + SERIES_BYTES_PER_PIXEL) + frame * frame_rate


def chunk_limit(chunk_bytes, max_memory, dtype, threads=None):
    """Input bytes per chunk so that chunks processed at once stay under ``max_memory``.

    Every thread of dask's scheduler works on one chunk, holding its working arrays
    (:data:`CHUNK_BYTES_PER_PIXEL`); chunks never go below
    :data:`MIN_CHUNK_BYTES`, where the per-chunk overhead would dominate.
    """
    threads = threads or os.cpu_count() or 1
    itemsize = np.dtype(dtype).itemsize
    share = max_memory / threads * itemsize / (itemsize + CHUNK_BYTES_PER_PIXEL)
    return int(min(chunk_bytes, max(share, MIN_CHUNK_BYTES)))


def _remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _file_axes(meta, axes, ndim):
    """Axes of a file: given, else its metadata when it names T/Z/Y/X only, else None."""
    if axes is not None:
        return axes
    known = meta.get("axes") or ""
    if len(known) == ndim and set(known) <= set("TZYX") and known.endswith("YX"):
        order = "".join(a for a in "TZYX" if a in known)
        if known == order:
            return known
    return None


def segment_file(
    path,
    out_dir,
    settings,
    *,
    max_memory=None,
    chunk_bytes=None,
    axes=None,
    spacing=None,
    diameter_px=None,
):
    """Run the pipeline on one file and write its labels and tables, all or nothing.

    A file whose in-memory run would stay under ``max_memory`` bytes at its peak
    (:func:`peak_bytes`) runs in memory and gives ``NAME_labels.tif``; larger ones run in
    chunks of about ``chunk_bytes`` of input and give ``NAME_labels.zarr``. Both keep the
    input's pixel size. The per-file tables ``NAME_objects.csv`` (columns named with their
    units, :func:`.measure.unit_columns`) and ``NAME_counts.csv`` go to ``out_dir/per_file``.
    Every output is written under a temporary name and renamed when complete, the labels
    last, so a crash never leaves a file that looks finished.

    Parameters
    ----------
    path : str or Path
        A TIFF file or a zarr store.
    out_dir : str or Path
        Output folder.
    settings : PipelineSettings
    max_memory, chunk_bytes : int, optional
        Peak bytes of the run; bytes of input per chunk above that (smaller when the
        chunks processed at once would exceed ``max_memory``, :func:`chunk_limit`).
        Default :class:`BatchOptions`' ``max_memory_mb`` and ``chunk_mb``.
    axes : str, optional
        What the axes are (``"ZYX"``, ``"TYX"``, ...); default ``settings.axes``, else the
        file's ImageJ/OME axes, else the default for its dimensions.
    spacing : sequence of float, optional
        Pixel size per spatial axis; default the file's.
    diameter_px : float, optional
        Typical nucleus diameter in x pixels for the count: replaces ``settings.count.diameter``
        (which is in the file's physical units) by this many times the file's x pixel size.

    Returns
    -------
    objects, counts : pandas.DataFrame
        The object table (its ``attrs`` hold the estimated nucleus ``diameter`` where the
        count gives one) and the count per frame (frame 0 without a time axis).
    """
    from .counting import count_summary
    from .io import imwrite, normalize_unit, write_zarr
    from .measure import unit_columns
    from .pipeline import resolve_image_axes, run_pipeline

    defaults = BatchOptions()
    if max_memory is None:
        max_memory = int(defaults.max_memory_mb * 2**20)
    if chunk_bytes is None:
        chunk_bytes = int(defaults.chunk_mb * 2**20)
    data, meta = open_image(path)
    given = axes if axes is not None else settings.axes
    axes, time_axis = resolve_image_axes(settings, data.ndim, _file_axes(meta, given, data.ndim))
    if spacing is None:
        spacing = [s for a, s in enumerate(meta["scale"]) if a != time_axis]
    if diameter_px is not None:
        settings = settings.replace(count={"diameter": diameter_px * float(spacing[-1])})
    estimate = peak_bytes(data.shape, data.dtype, settings, time_axis)
    large = estimate > max_memory
    if large and settings.method == "unet":
        raise ValueError(
            f"{meta['name']}: {data.nbytes / 2**20:.0f} MB is above the in-memory limit "
            f"({max_memory / 2**20:.0f} MB; the U-Net needs about {estimate / 2**20:.0f} MB) "
            "and the U-Net keeps the image and its labels in memory: raise the limit "
            "(--max-memory-mb) or use a threshold method"
        )
    if large:
        chunk_bytes = chunk_limit(chunk_bytes, max_memory, data.dtype)
        data = data.rechunk(processing_chunks(data.chunksize, data.shape, data.dtype, chunk_bytes))
    else:
        data = np.asarray(data.compute())
    if large and (settings.count.split_touching or settings.count.fill_holes):
        raise ValueError(
            f"{meta['name']}: an in-memory run needs about {estimate / 2**20:.0f} MB, above the "
            f"limit ({max_memory / 2**20:.0f} MB), and count.split_touching and "
            "count.fill_holes need whole objects in memory: raise --max-memory-mb, or set "
            "both off (--no-split --no-fill-holes) to process it in chunks"
        )
    labels, table = run_pipeline(data, settings, axes=axes, spacing=spacing)
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
        named = unit_columns(table, normalize_unit(meta["units"][-1]) if meta["units"] else None)
        named.to_csv(partial["objects"], index=False)
        table.attrs["unit"] = named.attrs["unit"]  # the file's (for the diameter printed)
        counts.to_csv(partial["counts"], index=False)
        for key in ("objects", "counts", "labels"):
            _remove(final[key])
            os.replace(partial[key], final[key])
    finally:
        for p in partial.values():
            _remove(p)
    return table, counts


# --------------------------------------------------------------------------------- inputs


def _is_output(path):
    name = path.name.lower()
    return name.startswith(".partial-") or name.endswith(_OUTPUT_SUFFIXES)


def _inside(path, folder):
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def find_inputs(items, *, out=None):
    """TIFF files and zarr stores named by files, folders (not recursive) or glob patterns.

    Folders and patterns skip what a run writes: anything inside ``out``, and files named
    like its outputs (``*_labels.tif``, ``*_labels.zarr``), so a rerun with ``out`` inside
    the input folder never segments its own labels. A file named on its own is kept unless it
    lies in ``out``.

    Raises
    ------
    ValueError
        A name that matches nothing, no inputs at all, or two inputs whose outputs would have
        the same name.
    """
    import glob

    out = None if out is None else Path(out)
    if isinstance(items, (str, os.PathLike)):
        items = [items]

    def usable(p):
        kind = (p.is_file() and p.suffix.lower() in TIFF_EXTENSIONS) or (
            p.is_dir() and p.suffix.lower() == ".zarr"
        )
        return kind and not _is_output(p) and not _inside(p, out)

    found = []
    for item in items:
        path = Path(item)
        if path.is_dir() and path.suffix.lower() != ".zarr":
            found += sorted(p for p in path.iterdir() if usable(p))
        elif path.exists():
            if not _inside(path, out):
                found.append(path)
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(item)))]
            if not matches:
                raise ValueError(f"{item} does not exist")
            found += [p for p in matches if usable(p)]
    if not found:
        raise ValueError("no .tif/.tiff files or .zarr stores in the given inputs")
    unique, names = [], {}
    for p in found:
        if p.resolve() in (q.resolve() for q in unique):
            continue
        name = source_name(p)
        if name in names:
            raise ValueError(f"{names[name]} and {p} would write the same outputs ({name}_labels)")
        names[name] = p
        unique.append(p)
    return unique


# ------------------------------------------------------------------------------- the run


@contextlib.contextmanager
def output_lock(out):
    """Hold an exclusive lock on the output folder ``out`` for one run.

    Raises
    ------
    ValueError
        Another run holds the folder.
    """
    path = Path(out) / _LOCK_NAME
    while True:
        handle = open(path, "a+")  # noqa: SIM115 - closed in finally
        try:
            if os.name == "nt":  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ValueError(
                f"{out} is in use by another napari-binseg segment run; wait for it to "
                "finish or choose another --out"
            ) from None
        try:
            same = os.path.exists(path) and os.path.samefile(path, handle.name)
            same = same and os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if same:
            break
        handle.close()  # the previous holder removed the file while we waited: retry
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        handle.close()


def _write_atomic(path, write):
    partial = path.with_name(f".partial-{path.name}")
    write(partial)
    partial.replace(path)


def collect_tables(inputs, out):
    """OUT/objects.csv and OUT/counts.csv from the per-file tables of every finished input."""
    import pandas as pd

    out = Path(out)
    objects, counts = [], []
    for p in inputs:
        names = output_names(source_name(p))
        o, c = out / "per_file" / names["objects"], out / "per_file" / names["counts"]
        if o.is_file() and c.is_file():
            objects.append(pd.read_csv(o).assign(file=p.name))
            counts.append(pd.read_csv(c).assign(file=p.name))
    for name, tables in (("objects.csv", objects), ("counts.csv", counts)):
        if tables:
            table = pd.concat(tables, ignore_index=True)
            table = table[["file"] + [col for col in table.columns if col != "file"]]
            _write_atomic(out / name, lambda p, t=table: t.to_csv(p, index=False))


def is_done(path, out):
    """True when ``out`` holds the labels and both tables of input ``path``."""
    names = output_names(source_name(path))
    out = Path(out)
    labels = (out / names["tif"]).exists() or (out / names["zarr"]).exists()
    tables = all((out / "per_file" / names[k]).is_file() for k in ("objects", "counts"))
    return labels and tables


@dataclass
class BatchResult:
    """What :func:`segment_files` did."""

    inputs: list
    out: Path
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    #: ``(path, message)`` of every input that failed.
    failed: list = field(default_factory=list)
    #: ``(diameter, unit, diameter in x pixels)`` of the count's nucleus size (estimated or
    #: given) per finished input (diameters None where the count gives none).
    diameters: dict = field(default_factory=dict)
    #: Where the threshold ignored a few bright outliers (debris), per finished input: its
    #: ``table.attrs["bright_outliers"]`` (see :func:`.pipeline.outliers_note`).
    outliers: dict = field(default_factory=dict)
    #: ``(sigma, noise ratio)`` of the threshold's smoothing per finished input (threshold
    #: methods; the ratio None unless ``sigma`` was ``"auto"``; lists per plane / frame with
    #: scope ``"slice"`` / ``"frame"``).
    smoothing: dict = field(default_factory=dict)
    #: ``(radius, unevenness)`` of the threshold's background subtraction per finished input
    #: (threshold methods; radius None where none ran, unevenness None unless ``background``
    #: was ``"uneven"``).
    background: dict = field(default_factory=dict)


def _used(settings):
    """``settings`` with the section its method does not run at its defaults: an older file
    migrates it to other values (``unet.prob_threshold`` 0.5 before settings version 4),
    which do not change the results."""
    if settings.method == "unet":
        return settings.replace(threshold=ThresholdOptions())
    return settings.replace(unet=UNetOptions())


def _differences(there, here):
    """`` (threshold.sigma 0.0 there, 'auto' now)``: the options two settings dicts differ in,
    so a user can pass the old values to resume."""
    items = [
        f"{section}.{key} {value!r} there, {here[section].get(key)!r} now"
        for section, values in there.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if here.get(section, {}).get(key) != value
    ]
    items += [
        f"{key} {value!r} there, {here.get(key)!r} now"
        for key, value in there.items()
        if not isinstance(value, dict) and here.get(key) != value
    ]
    return f" ({'; '.join(items)})" if items else ""


def check_model(settings):
    """Load the settings' U-Net once, so a bad model or device fails before any file.

    Returns
    -------
    settings : PipelineSettings
        ``settings`` with the model's own probability threshold and object confidence floor
        in place of ``None``, so that ``params.json`` records the numbers that ran.

    Raises
    ------
    ValueError
        An unknown model, an unreadable model file or an unavailable device.
    """
    if settings.method != "unet":
        return settings
    from .unet.network import load_model
    from .unet.passes import model_confidence, model_threshold

    u = settings.unet
    try:
        lm = load_model(u.model, device=u.device)
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"cannot load the model {u.model!r} on {u.device}: {exc}") from None
    return settings.replace(
        unet={
            "prob_threshold": model_threshold(u.prob_threshold, lm),
            "min_confidence": model_confidence(u.min_confidence, lm),
        }
    )


def segment_files(
    inputs,
    out,
    settings=None,
    *,
    batch=None,
    axes=None,
    spacing=None,
    overwrite=False,
    scheduler=None,
    record=None,
    progress=None,
    diameter_px=None,
):
    """Segment and count every input into the folder ``out``, skipping finished ones.

    Parameters
    ----------
    inputs : sequence of str or Path
        Files, folders or glob patterns (:func:`find_inputs`).
    out : str or Path
        Output folder: ``NAME_labels.tif`` (``.zarr`` for chunked runs), ``per_file/``,
        ``objects.csv``, ``counts.csv`` and ``params.json``.
    settings : PipelineSettings or dict, optional
        Default ``PipelineSettings()``.
    batch : BatchOptions, optional
        Memory limit and chunk size.
    axes, spacing, diameter_px : optional
        As in :func:`segment_file` (for every input); ``diameter_px`` is recorded in
        ``params.json`` and belongs to the settings of the output folder.
    overwrite : bool
        Redo finished inputs, and replace results of other settings.
    scheduler : str, optional
        Address of a dask.distributed scheduler for the chunked inputs.
    record : dict, optional
        Extra entries of ``params.json`` (the command line, for example).
    progress : callable, optional
        ``progress(done, total, name)`` before each input and at the end.

    Returns
    -------
    BatchResult

    Raises
    ------
    ValueError
        Bad inputs, settings or model, an output folder in use by another run or holding
        results of other settings; nothing is written then.
    """
    from . import __version__
    from .settings import PipelineSettings

    if settings is None or isinstance(settings, dict):
        settings = PipelineSettings.from_dict(settings or {})
    if not isinstance(settings, PipelineSettings):
        raise ValueError(f"settings must be PipelineSettings, got {type(settings).__name__}")
    if diameter_px is not None and not diameter_px > 0:
        raise ValueError(f"diameter_px must be > 0 (pixels), got {diameter_px!r}")
    batch = BatchOptions() if batch is None else batch
    if not isinstance(batch, BatchOptions):
        raise ValueError(f"batch must be BatchOptions, got {type(batch).__name__}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    inputs = find_inputs(inputs, out=out)
    settings = check_model(settings)
    client = contextlib.nullcontext()
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=30)
        except OSError as exc:
            raise ValueError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create --out {out}: {exc.strerror}") from None
    result = BatchResult(inputs=inputs, out=out)
    with output_lock(out), client:
        params_path = out / "params.json"
        recorded = {}
        per_unit = settings.threshold.sigma == "auto" and settings.threshold.scope != "image"
        if params_path.is_file() and not overwrite:
            try:
                recorded = json.loads(params_path.read_text(encoding="utf-8"))
                previous = recorded.get("settings")
            except (ValueError, AttributeError, RecursionError):
                recorded, previous = {}, None
            same = recorded.get("diameter_px") == diameter_px
            differ = ""
            if same and previous != settings.to_dict():
                try:
                    there = _used(PipelineSettings.from_dict(previous))
                except (TypeError, ValueError):
                    same = False
                else:
                    same = there == _used(settings)
                    differ = _differences(there.to_dict(), _used(settings).to_dict())
            if not same:
                raise ValueError(
                    f"{out} holds results of other settings{differ} (see {params_path}); "
                    "choose another --out or pass --overwrite"
                )
            if per_unit and recorded.get("threshold_sigma") and not recorded.get(PER_UNIT):
                raise ValueError(
                    f"{out} holds results of an earlier release, whose sigma 'auto' smoothed "
                    "a stack with one sigma, not each plane / frame with its own (see "
                    f"{params_path}); choose another --out or pass --overwrite"
                )
        params = {
            "napari_binseg": __version__,
            **(record or {}),
            "inputs": [str(p.resolve()) for p in inputs],
            "settings": settings.to_dict(),
            "max_memory_mb": batch.max_memory_mb,
            "chunk_mb": batch.chunk_mb,
        }
        if per_unit:
            params[PER_UNIT] = True
        if axes is not None or spacing is not None:
            params |= {"axes": axes, "spacing": None if spacing is None else list(spacing)}
        if diameter_px is not None:
            params["diameter_px"] = diameter_px
        for key in ("threshold_sigma", "threshold_background"):
            # What "auto" / "uneven" chose for the files an earlier run finished: kept when
            # this run redoes none of them, or stops.
            if isinstance(recorded.get(key), dict):
                params[key] = recorded[key]
        _write_atomic(params_path, lambda p: p.write_text(json.dumps(params, indent=2) + "\n"))
        for i, path in enumerate(inputs):
            if progress is not None:
                progress(i, len(inputs), path.name)
            if not overwrite and is_done(path, out):
                result.skipped.append(path)
                continue
            try:
                table, _ = segment_file(
                    path,
                    out,
                    settings,
                    max_memory=int(batch.max_memory_mb * 2**20),
                    chunk_bytes=int(batch.chunk_mb * 2**20),
                    axes=axes,
                    spacing=spacing,
                    diameter_px=diameter_px,
                )
            except Exception as exc:  # one bad file must not stop the others
                message = (
                    str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                )
                result.failed.append((path, message))
                continue
            result.done.append(path)
            result.diameters[path] = (
                table.attrs.get("diameter"),
                table.attrs.get("unit") or "px",
                table.attrs.get("diameter_px"),
            )
            if table.attrs.get("bright_outliers"):
                result.outliers[path] = table.attrs["bright_outliers"]
            sigma = table.attrs.get("threshold_sigma")
            if sigma is not None:
                result.smoothing[path] = (sigma, table.attrs["noise_ratio"])
            if "threshold_background" in table.attrs:
                result.background[path] = (
                    table.attrs["threshold_background"],
                    table.attrs["unevenness"],
                )
        if result.smoothing and settings.threshold.sigma == "auto":
            # What "auto" chose per file.
            ran = params.get("threshold_sigma", {})
            params["threshold_sigma"] = ran | {p.name: s for p, (s, _) in result.smoothing.items()}
        if result.background and settings.threshold.background == "uneven":
            # The radius "uneven" subtracted per file (null: none).
            ran = params.get("threshold_background", {})
            params["threshold_background"] = ran | {
                p.name: r for p, (r, _) in result.background.items()
            }
        if "threshold_sigma" in params or "threshold_background" in params:
            _write_atomic(params_path, lambda p: p.write_text(json.dumps(params, indent=2) + "\n"))
        if progress is not None:
            progress(len(inputs), len(inputs), "done")
        collect_tables(inputs, out)
    return result
